//! Sessions: the set of processes a client owns, which can outlive the
//! connection that created it (SPEC 3.2).
//!
//! Every connection gets a [`Session`] at `initialize`, identified by an
//! unguessable token (the `sessionId` of the initialize result, a secret
//! that is never logged). v0 sessions and `process/*` processes share its
//! id namespace. When the connection ends, processes started with
//! `onDisconnect: "kill"` (and every v0 process) die at once; if some were
//! started with `"detach"`, the session waits, its output going to
//! retention only, until a new connection resumes it with
//! `initialize {resumeSessionId}` or the detach TTL of its processes runs
//! out, which kills them like the rest. Detached processes that already
//! exited keep the session for their TTL too: their exit and output are
//! what a resuming client comes back for.
//!
//! Resuming takes two steps: [`Session::resume`] reserves the session for
//! the new connection while it answers `initialize`, and
//! [`Session::attach`] sends live output there once that answer is queued,
//! so the answer is always the first message a resumed client reads.
//!
//! When the server shuts down, every session ends (see
//! [`crate::lifecycle`]). A session's process groups live in the server's
//! one registry ([`exec_server_core::ProcessGroups`]) under the session's
//! [`GroupOwner`]; ending the session kills them there.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use exec_server_core::{GroupOwner, ProcessHandle};
use exec_server_protocol::ServerMessage;
use exec_server_protocol::process::OnDisconnect;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::Server;

/// Which protocol started a process: it decides the notifications and how
/// long the id lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProcessKind {
    /// `command/exec`: the id is forgotten when the exit is reported.
    V0,
    /// `process/start`: the record stays until released or evicted.
    Api { stream_output: bool },
}

/// What a process was started with, as `process/list` and cleanup need it.
pub(crate) struct ProcessMeta {
    pub argv: Vec<String>,
    pub tty: bool,
    pub labels: BTreeMap<String, String>,
    pub on_disconnect: OnDisconnect,
    pub detach_ttl: Duration,
}

/// One process of a session.
pub(crate) struct ProcessEntry {
    pub id: String,
    pub handle: ProcessHandle,
    pub kind: ProcessKind,
    pub meta: ProcessMeta,
    /// Set when every stream reached end-of-file and the process was reaped.
    pub closed: AtomicBool,
    /// Output up to this seq was examined by an earlier `process/wait`.
    pub wait_cursor: AtomicU64,
    /// `writeId`s already accepted, oldest first (bounded).
    write_ids: Mutex<WriteIds>,
}

/// Accepted write ids of one process, the most recent [`WRITE_ID_MEMORY`].
#[derive(Default)]
struct WriteIds {
    set: HashSet<String>,
    order: VecDeque<String>,
}

/// How many write ids a process remembers for idempotent retries.
pub(crate) const WRITE_ID_MEMORY: usize = 4096;

impl ProcessEntry {
    pub fn new(id: String, handle: ProcessHandle, kind: ProcessKind, meta: ProcessMeta) -> Self {
        ProcessEntry {
            id,
            handle,
            kind,
            meta,
            closed: AtomicBool::new(false),
            wait_cursor: AtomicU64::new(0),
            write_ids: Mutex::default(),
        }
    }

    /// Started with `onDisconnect: "detach"`: survives its connection.
    pub fn detachable(&self) -> bool {
        matches!(self.kind, ProcessKind::Api { .. })
            && self.meta.on_disconnect == OnDisconnect::Detach
    }

    pub fn running(&self) -> bool {
        self.handle.exit_status().is_none()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Whether `write_id` was already accepted.
    pub fn seen_write(&self, write_id: &str) -> bool {
        self.write_ids
            .lock()
            .expect("write ids poisoned")
            .set
            .contains(write_id)
    }

    pub fn remember_write(&self, write_id: String) {
        let mut ids = self.write_ids.lock().expect("write ids poisoned");
        if ids.set.insert(write_id.clone()) {
            ids.order.push_back(write_id);
            if ids.order.len() > WRITE_ID_MEMORY
                && let Some(oldest) = ids.order.pop_front()
            {
                ids.set.remove(&oldest);
            }
        }
    }
}

/// A client's processes and where their notifications go.
pub(crate) struct Session {
    /// The resume token. A secret: never logged.
    pub token: String,
    /// The public handle observers address this session by (`owner` in
    /// `observe/*`): drawn separately, so it reveals nothing of `token`.
    pub public_ref: String,
    server: Server,
    state: Mutex<SessionState>,
    /// The owner of this session's process groups in the server's
    /// registry: they are killed when the session ends.
    groups: GroupOwner,
    /// Changes whenever the session is attached or detached, so that
    /// forwarders re-read [`Session::out`] only then, not per chunk.
    attachment: AtomicU64,
}

pub(crate) struct SessionState {
    pub processes: HashMap<String, Arc<ProcessEntry>>,
    /// Ids of exited `process/*` records, oldest first, for the cap.
    exited: VecDeque<String>,
    next_v0: u64,
    next_proc: u64,
    /// The attached connection's outgoing channel; `None` while detached.
    out: Option<mpsc::Sender<ServerMessage>>,
    /// Resumed by a connection that has not attached yet.
    reserved: bool,
    /// The TTL timer while detached.
    expiry: Option<AbortHandle>,
    ended: bool,
    /// The `clientName` of the latest `initialize`, shown to observers.
    pub client_name: String,
}

/// Why a session cannot be resumed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResumeError {
    #[error("cannot resume session: it does not exist or has expired")]
    Unknown,
    #[error("cannot resume session: it is attached to another connection")]
    Attached,
}

impl Session {
    /// A new session attached to a connection, registered for resumption.
    pub fn create(server: &Server, out: mpsc::Sender<ServerMessage>) -> Arc<Session> {
        let session = Arc::new(Session {
            token: crate::fleet::session_id(&server.config().server_id, &new_token()),
            public_ref: new_token()[..16].to_string(),
            server: server.clone(),
            state: Mutex::new(SessionState {
                processes: HashMap::new(),
                exited: VecDeque::new(),
                next_v0: 1,
                next_proc: 1,
                out: Some(out),
                reserved: false,
                expiry: None,
                ended: false,
                client_name: String::new(),
            }),
            groups: server.groups().new_owner(),
            attachment: AtomicU64::new(0),
        });
        server
            .sessions()
            .insert(session.token.clone(), session.clone());
        session
    }

    /// Reserves a detached session for a new connection and stops its TTL.
    /// Output keeps going to retention only until [`attach`](Self::attach).
    pub fn resume(server: &Server, token: &str) -> Result<Arc<Session>, ResumeError> {
        let session = server.sessions().get(token).ok_or(ResumeError::Unknown)?;
        let mut state = session.lock();
        if state.ended {
            return Err(ResumeError::Unknown);
        }
        if state.out.is_some() || state.reserved {
            return Err(ResumeError::Attached);
        }
        if let Some(expiry) = state.expiry.take() {
            expiry.abort();
        }
        state.reserved = true;
        drop(state);
        Ok(session)
    }

    /// Sends live notifications to `out` from now on: called once the
    /// `initialize` answer of the resuming connection is queued there.
    pub fn attach(&self, out: mpsc::Sender<ServerMessage>) {
        let mut state = self.lock();
        if state.reserved && !state.ended {
            state.reserved = false;
            state.out = Some(out);
            self.attachment.fetch_add(1, Ordering::Release);
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().expect("session lock poisoned")
    }

    pub fn get(&self, id: &str) -> Option<Arc<ProcessEntry>> {
        self.lock().processes.get(id).cloned()
    }

    /// Whether a connection is attached right now.
    pub fn attached(&self) -> bool {
        self.lock().out.is_some()
    }

    /// Where notifications go right now; `None` while detached.
    pub fn out(&self) -> Option<mpsc::Sender<ServerMessage>> {
        self.lock().out.clone()
    }

    /// A number that changes whenever [`Session::out`] may have changed.
    pub fn attachment(&self) -> u64 {
        self.attachment.load(Ordering::Acquire)
    }

    pub fn running_count(&self) -> usize {
        self.lock()
            .processes
            .values()
            .filter(|p| p.running())
            .count()
    }

    /// Registers a started process under its id.
    pub fn insert(&self, entry: Arc<ProcessEntry>) {
        self.server.groups().insert(self.groups, entry.handle.pid());
        self.lock().processes.insert(entry.id.clone(), entry);
    }

    /// Forgets a v0 session id at its exit.
    pub fn remove(&self, id: &str) -> Option<Arc<ProcessEntry>> {
        self.lock().processes.remove(id)
    }

    /// Records the exit of a `process/*` process; evicts the oldest exited
    /// records beyond the server's cap.
    pub fn record_exit(&self, id: &str) {
        let cap = self.server.config().max_exited_records;
        let mut state = self.lock();
        state.exited.push_back(id.to_string());
        while state.exited.len() > cap {
            let oldest = state.exited.pop_front().expect("over the cap");
            state.processes.remove(&oldest);
        }
    }

    /// Removes an exited `process/*` record.
    pub fn release(&self, id: &str) {
        let mut state = self.lock();
        state.processes.remove(id);
        state.exited.retain(|e| e != id);
    }

    /// Called when a process is closed: its group is forgotten if no
    /// member is left.
    pub fn forget_group_if_empty(&self, pgid: i32) {
        self.server.groups().forget_if_empty(pgid);
    }

    /// The next free `session-N` id (v0 shares the namespace).
    pub fn next_v0_id(&self) -> String {
        let mut state = self.lock();
        loop {
            let id = format!("session-{}", state.next_v0);
            state.next_v0 += 1;
            if !state.processes.contains_key(&id) {
                return id;
            }
        }
    }

    /// The next free `proc-N` id.
    pub fn next_process_id(&self) -> String {
        let mut state = self.lock();
        loop {
            let id = format!("proc-{}", state.next_proc);
            state.next_proc += 1;
            if !state.processes.contains_key(&id) {
                return id;
            }
        }
    }

    /// The connection went away. Kills what must die; keeps detached
    /// processes for their TTL, or ends the session when there are none.
    pub fn detach(self: &Arc<Self>) {
        let mut state = self.lock();
        state.out = None;
        state.reserved = false;
        self.attachment.fetch_add(1, Ordering::Release);
        let mut keep = Vec::new();
        for entry in state.processes.values() {
            if entry.detachable() {
                // Running or not: an exited record holds the output and
                // exit a resuming client has not read yet.
                keep.push((entry.meta.detach_ttl, entry.clone()));
            } else if entry.running() || !entry.is_closed() {
                let _ = entry.handle.kill_group();
            }
        }
        if keep.is_empty() {
            drop(state);
            self.end();
            return;
        }
        keep.sort_by_key(|(ttl, _)| *ttl);
        let session = self.clone();
        let expiry = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            for (ttl, entry) in keep {
                tokio::time::sleep_until(started + ttl).await;
                if !entry.is_closed() {
                    let _ = entry.handle.kill_group();
                }
            }
            session.end();
        });
        state.expiry = Some(expiry.abort_handle());
        tracing::info!("connection ended; session keeps its detached processes");
    }

    /// Ends the session: kills every process group it started and forgets
    /// it. Idempotent.
    pub fn end(&self) {
        {
            let mut state = self.lock();
            if state.ended {
                return;
            }
            state.ended = true;
            state.out = None;
            self.attachment.fetch_add(1, Ordering::Release);
            if let Some(expiry) = state.expiry.take() {
                expiry.abort();
            }
        }
        self.server.sessions().remove(&self.token);
        self.server.groups().kill_owned_by(self.groups);
    }
}

/// 128 bits from the kernel's CSPRNG, hex-encoded.
fn new_token() -> String {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(error) => panic!("the kernel's random source failed: {error}"),
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// All sessions of a server, by token.
#[derive(Default)]
pub(crate) struct SessionRegistry {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl SessionRegistry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().expect("session registry poisoned")
    }

    pub fn insert(&self, token: String, session: Arc<Session>) {
        self.lock().insert(token, session);
    }

    pub fn get(&self, token: &str) -> Option<Arc<Session>> {
        self.lock().get(token).cloned()
    }

    pub fn remove(&self, token: &str) {
        self.lock().remove(token);
    }

    /// Every live session, for `observe/list` and owner lookups.
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Ends every session (server shutdown).
    pub fn end_all(&self) {
        let sessions: Vec<Arc<Session>> = self.lock().values().cloned().collect();
        for session in sessions {
            session.end();
        }
    }
}

impl std::fmt::Debug for SessionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are secrets: show only the count.
        write!(f, "SessionRegistry({} sessions)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use exec_server_core::{ProcessConfig, spawn_process};

    use super::*;
    use crate::ServerConfig;

    /// A session with one detached `sleep`, then detached from its connection.
    async fn detached_session(server: &Server) -> Arc<Session> {
        let (out, _rx) = mpsc::channel(16);
        let session = Session::create(server, out);
        let process = spawn_process(ProcessConfig::new(
            vec!["/bin/sleep".into(), "30".into()],
            "/",
        ))
        .await
        .unwrap();
        let meta = ProcessMeta {
            argv: vec!["/bin/sleep".into()],
            tty: false,
            labels: BTreeMap::new(),
            on_disconnect: OnDisconnect::Detach,
            detach_ttl: Duration::from_secs(30),
        };
        let kind = ProcessKind::Api {
            stream_output: true,
        };
        session.insert(Arc::new(ProcessEntry::new(
            "d".into(),
            process.handle,
            kind,
            meta,
        )));
        session.detach();
        session
    }

    #[tokio::test]
    async fn a_resumed_session_sends_nothing_until_it_is_attached() {
        let server = Server::new(ServerConfig::default());
        let session = detached_session(&server).await;
        let resumed = Session::resume(&server, &session.token).unwrap();
        assert!(
            resumed.out().is_none(),
            "output must wait for the initialize answer"
        );
        assert!(
            matches!(
                Session::resume(&server, &session.token),
                Err(ResumeError::Attached)
            ),
            "a reserved session is taken"
        );
        let (out, _rx) = mpsc::channel(16);
        resumed.attach(out);
        assert!(resumed.out().is_some());
        resumed.end();
    }

    #[tokio::test]
    async fn a_connection_lost_before_attaching_leaves_the_session_resumable() {
        let server = Server::new(ServerConfig::default());
        let session = detached_session(&server).await;
        let resumed = Session::resume(&server, &session.token).unwrap();
        resumed.detach();
        let again = Session::resume(&server, &session.token).unwrap();
        assert!(Arc::ptr_eq(&again, &session));
        again.end();
    }
}
