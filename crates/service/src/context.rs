//! [`Context`]: what a handler may touch — the server's shared state, this
//! connection's session, and the hand-off of newly started processes to
//! their forwarders. Nothing about bytes, ordering or the handshake: those
//! stay in [`crate::connection`].

use std::sync::Arc;

use exec_server_core::ProcessEvent;
use exec_server_protocol::ServerMessage;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::frames::BinaryFrames;
use crate::limits::ProcessSlot;
use crate::pattern::{PATTERN_BUDGET_BYTES, PatternBudget};
use crate::session::{ProcessEntry, Session};
use crate::{Server, ServerConfig};

/// One connection's state as the handlers see it.
pub(crate) struct Context {
    server: Server,
    /// The connection's outgoing channel (responses and notifications).
    out: mpsc::Sender<ServerMessage>,
    /// Set by `initialize`; every other handler runs after it.
    session: Option<Arc<Session>>,
    /// Processes started by the current request, whose forwarders the
    /// connection starts once the response is queued (a client learns a
    /// process's id before it sees output for it).
    pending_starts: Vec<PendingStart>,
    /// A session resumed by the current request, attached to this
    /// connection once the response is queued (the `initialize` answer is
    /// the first message of a resumed connection).
    pending_attach: Option<Arc<Session>>,
    /// Open files and watches of the `fs/*` methods; they end with the
    /// connection.
    pub fs: crate::handlers::fs::FsState,
    /// Memory the `match` patterns of this connection's waits may hold.
    patterns: PatternBudget,
    /// The transport's binary-frame switch, when it can carry them.
    binary_frames: Option<BinaryFrames>,
}

/// A started process waiting for its forwarder.
pub(crate) type PendingStart = (Arc<ProcessEntry>, mpsc::Receiver<ProcessEvent>);

impl Context {
    pub fn new(server: Server, out: mpsc::Sender<ServerMessage>) -> Self {
        Context {
            server,
            out,
            session: None,
            pending_starts: Vec::new(),
            pending_attach: None,
            fs: Default::default(),
            patterns: PatternBudget::new(PATTERN_BUDGET_BYTES),
            binary_frames: None,
        }
    }

    pub fn set_binary_frames(&mut self, binary_frames: Option<BinaryFrames>) {
        self.binary_frames = binary_frames;
    }

    /// Turns binary frames on if the transport can carry them; whether
    /// they are on.
    pub fn turn_on_binary_frames(&self) -> bool {
        match &self.binary_frames {
            Some(switch) => {
                switch.turn_on();
                true
            }
            None => false,
        }
    }

    pub fn server(&self) -> &Server {
        &self.server
    }

    pub fn config(&self) -> &ServerConfig {
        self.server.config()
    }

    pub fn out(&self) -> &mpsc::Sender<ServerMessage> {
        &self.out
    }

    /// This connection's session (always set once initialized).
    pub fn session(&self) -> Result<&Arc<Session>, ApiError> {
        self.session
            .as_ref()
            .ok_or_else(|| ApiError::Internal("no session after the handshake".into()))
    }

    /// Attaches the session created or resumed by `initialize`.
    pub fn set_session(&mut self, session: Arc<Session>) {
        self.session = Some(session);
    }

    /// Detaches the session when the connection ends.
    pub fn take_session(&mut self) -> Option<Arc<Session>> {
        self.session.take()
    }

    /// Refuses a new process when the connection is at its limit.
    pub fn check_process_limit(&self) -> Result<(), ApiError> {
        let limit = self.config().max_processes_per_connection;
        if self.session()?.running_count() >= limit {
            return Err(ApiError::TooManyProcesses { limit });
        }
        Ok(())
    }

    /// A place among the server's running processes (`--max-processes`),
    /// held until the process is reaped.
    pub fn process_slot(&self) -> Result<ProcessSlot, ApiError> {
        let slots = self.server.process_slots();
        slots
            .acquire()
            .ok_or(ApiError::TooManyProcessesOnServer { limit: slots.max() })
    }

    /// Spawns a process, counted in the server's metrics.
    pub async fn spawn(
        &self,
        config: exec_server_core::ProcessConfig,
    ) -> Result<exec_server_core::Process, exec_server_core::SpawnError> {
        let started = std::time::Instant::now();
        let spawned = exec_server_core::spawn_process(config).await;
        let metrics = self.server.metrics();
        metrics.spawned(started.elapsed(), spawned.is_ok());
        spawned
    }

    /// This connection's budget for `match` patterns.
    pub fn patterns(&self) -> &PatternBudget {
        &self.patterns
    }

    /// Registers a started process in the session and arranges for its
    /// events to be forwarded once the current response is queued.
    pub fn start_forwarding(
        &mut self,
        entry: Arc<ProcessEntry>,
        events: mpsc::Receiver<ProcessEvent>,
    ) -> Result<(), ApiError> {
        self.session()?.insert(entry.clone());
        self.pending_starts.push((entry, events));
        Ok(())
    }

    /// The processes started by the request just answered.
    pub fn take_pending_starts(&mut self) -> Vec<PendingStart> {
        std::mem::take(&mut self.pending_starts)
    }

    /// Attaches `session` to this connection once the current response is
    /// queued.
    pub fn attach_after_response(&mut self, session: Arc<Session>) {
        self.pending_attach = Some(session);
    }

    /// The session the request just answered resumed, if any.
    pub fn take_pending_attach(&mut self) -> Option<Arc<Session>> {
        self.pending_attach.take()
    }
}
