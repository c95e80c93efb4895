//! The dispatcher: one task per client that matches responses to requests,
//! routes notifications to process handles, and, for websocket clients with
//! a reconnect policy, resumes the session when the connection drops.
//!
//! Routing is lossless: a handle's channel is bounded, and the dispatcher
//! waits for room, which holds up the connection and, through the server,
//! the process itself. Output of the process API is routed by `seq`, so a
//! chunk is delivered at most once even when a resume replays it.
//!
//! Resume, step by step: reconnect with `initialize {resumeSessionId}`;
//! fail every request that was in flight (it is never sent again); put each
//! process route in replay mode, where live notifications are buffered; a
//! replay task reads what the handle missed with `process/read` from its
//! last seq (telling the handle about any gap), then asks the dispatcher to
//! flush the buffer and go live again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use exec_server_protocol::process::{ReadParams, WaitParams};
use exec_server_protocol::v0::{InitializeParams, InitializeResponse, method};
use exec_server_protocol::wire::DecodedServerMessage;
use exec_server_protocol::{ClientMessage, RequestId, RpcError, ServerMessage, ServerNotification};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::client::{
    ClientError, ClientEvent, ExecServerClient, Inner, WebSocketConnectArgs, decode,
};
use crate::process::ProcessEvent;
use crate::route;
use crate::session::ExecEvent;
use crate::transport::{self, Inbound};

/// Events buffered per handle before the dispatcher waits for its reader.
pub(crate) const HANDLE_CHANNEL_CAPACITY: usize = 256;
const UNCLAIMED_CHANNEL_CAPACITY: usize = 256;
/// Live notifications a replaying route buffers; beyond this they are
/// dropped and the replay reads them from retention instead.
const REPLAY_BUFFER_LIMIT: usize = 4096;

/// Where the result of a request goes, and what it sets up.
pub(crate) enum PendingRoute {
    None,
    /// `command/exec`: the new session's events go here.
    Exec(mpsc::Sender<ExecEvent>),
    /// `process/start`: the new process's events go here.
    Process(mpsc::Sender<ProcessEvent>),
}

pub(crate) struct Pending {
    pub reply: oneshot::Sender<Result<Value, ClientError>>,
    /// Registered by the dispatcher itself when the response arrives, before
    /// it reads the next message, so no output can precede its route.
    pub route: PendingRoute,
}

/// One process handle's route.
struct ProcessRoute {
    sender: mpsc::Sender<ProcessEvent>,
    /// The highest seq delivered (output or exit).
    last_seq: u64,
    /// The exit was delivered.
    exited: bool,
    /// In replay mode: live notifications held back until the replay ends.
    replay: Option<Vec<ServerNotification>>,
}

/// What the dispatcher needs to route messages.
pub(crate) struct Routes {
    pending: HashMap<RequestId, Pending>,
    sessions: HashMap<String, mpsc::Sender<ExecEvent>>,
    processes: HashMap<String, ProcessRoute>,
    unclaimed: Option<mpsc::Sender<ClientEvent>>,
    unclaimed_rx: Option<mpsc::Receiver<ClientEvent>>,
    closed: bool,
    /// Why the client closed for good, once it has.
    ended: watch::Sender<Option<ClientError>>,
}

impl Routes {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel(UNCLAIMED_CHANNEL_CAPACITY);
        Routes {
            pending: HashMap::new(),
            sessions: HashMap::new(),
            processes: HashMap::new(),
            unclaimed: Some(tx),
            unclaimed_rx: Some(rx),
            closed: false,
            ended: watch::Sender::new(None),
        }
    }

    pub fn add_pending(&mut self, id: RequestId, pending: Pending) -> Result<(), ClientError> {
        if self.closed {
            return Err(self.ended.borrow().clone().unwrap_or(ClientError::Closed));
        }
        self.pending.insert(id, pending);
        Ok(())
    }

    pub fn remove_pending(&mut self, id: &RequestId) {
        self.pending.remove(id);
    }

    pub fn subscribe_ended(&self) -> watch::Receiver<Option<ClientError>> {
        self.ended.subscribe()
    }

    pub fn take_unclaimed(&mut self) -> Option<mpsc::Receiver<ClientEvent>> {
        self.unclaimed_rx.take()
    }
}

/// Messages to the dispatcher from replay tasks.
enum Control {
    /// The replay of `process_id` delivered everything up to `last_seq`:
    /// flush the buffered live notifications after it and go live.
    ReplayDone { process_id: String, last_seq: u64 },
}

fn lock(routes: &Mutex<Routes>) -> std::sync::MutexGuard<'_, Routes> {
    routes.lock().expect("routes lock poisoned")
}

/// The dispatcher task.
pub(crate) async fn run(
    mut inbound: Inbound,
    inner: Weak<Inner>,
    reconnect: Option<WebSocketConnectArgs>,
) {
    let Some(routes) = inner.upgrade().map(|inner| inner.routes.clone()) else {
        return;
    };
    let (control_tx, mut control) = mpsc::unbounded_channel();
    let ended = loop {
        tokio::select! {
            message = inbound.recv() => match message {
                Some(message) => handle(&routes, message).await,
                None => {
                    let resumed = match &reconnect {
                        Some(args) => resume(args, &inner, &routes, &control_tx).await,
                        None => Err(ClientError::Closed),
                    };
                    match resumed {
                        Ok(new_inbound) => inbound = new_inbound,
                        Err(error) => break error,
                    }
                }
            },
            Some(Control::ReplayDone { process_id, last_seq }) = control.recv() => {
                finish_replay(&routes, &process_id, last_seq).await;
            }
        }
    };
    let mut routes = lock(&routes);
    routes.closed = true;
    for (_, pending) in routes.pending.drain() {
        let _ = pending.reply.send(Err(ended.clone()));
    }
    routes.ended.send_replace(Some(ended));
    routes.sessions.clear();
    routes.processes.clear();
    routes.unclaimed = None;
}

async fn handle(routes: &Mutex<Routes>, message: DecodedServerMessage) {
    match message {
        DecodedServerMessage::Known(ServerMessage::Response { id, result }) => {
            let mut guard = lock(routes);
            let Some(pending) = id.and_then(|id| guard.pending.remove(&id)) else {
                tracing::warn!(?result, "response to no pending request");
                return;
            };
            if let Ok(value) = &result {
                match pending.route {
                    PendingRoute::Exec(sender) => {
                        if let Some(Value::String(id)) = value.get("sessionId") {
                            guard.sessions.insert(id.clone(), sender);
                        }
                    }
                    PendingRoute::Process(sender) => {
                        if let Some(Value::String(id)) = value.get("processId") {
                            let route = ProcessRoute {
                                sender,
                                last_seq: 0,
                                exited: false,
                                replay: None,
                            };
                            guard.processes.insert(id.clone(), route);
                        }
                    }
                    PendingRoute::None => {}
                }
            }
            let _ = pending.reply.send(result.map_err(ClientError::Rpc));
        }
        DecodedServerMessage::Known(ServerMessage::Notification(notification)) => {
            route_notification(routes, notification).await;
        }
        DecodedServerMessage::UnknownNotification { method, params } => {
            send_unclaimed(routes, ClientEvent::Unknown { method, params }).await;
        }
    }
}

/// The process id a process-API notification is about.
fn process_id_of(notification: &ServerNotification) -> Option<&str> {
    match notification {
        ServerNotification::ProcessOutput(n) => Some(&n.process_id),
        ServerNotification::ProcessExited(n) => Some(&n.process_id),
        ServerNotification::ProcessClosed(n) => Some(&n.process_id),
        ServerNotification::ExecOutputDelta(_)
        | ServerNotification::ExecExited(_)
        | ServerNotification::FsChanged(_) => None,
    }
}

async fn route_notification(routes: &Mutex<Routes>, notification: ServerNotification) {
    if let Some(process_id) = process_id_of(&notification).map(str::to_string) {
        return route_process(routes, &process_id, notification).await;
    }
    // `fs/changed` has no handle: it goes to `take_events`.
    if let ServerNotification::FsChanged(_) = &notification {
        return send_unclaimed(routes, ClientEvent::Notification(notification)).await;
    }
    let (session_id, event) = match &notification {
        ServerNotification::ExecOutputDelta(delta) => (
            delta.session_id.clone(),
            ExecEvent::Output {
                stream: delta.stream,
                chunk: delta.chunk.clone(),
            },
        ),
        ServerNotification::ExecExited(exited) => (
            exited.session_id.clone(),
            ExecEvent::Exited {
                exit_code: exited.exit_code,
            },
        ),
        _ => unreachable!("process notifications are routed above"),
    };
    let exited = matches!(event, ExecEvent::Exited { .. });
    let sender = {
        let mut guard = lock(routes);
        if exited {
            guard.sessions.remove(&session_id)
        } else {
            guard.sessions.get(&session_id).cloned()
        }
    };
    if let Some(sender) = sender {
        // Waiting here is the backpressure: never drop a session's output.
        if sender.send(event).await.is_ok() {
            return;
        }
        lock(routes).sessions.remove(&session_id);
    }
    send_unclaimed(routes, ClientEvent::Notification(notification)).await;
}

/// Converts a process notification to a handle event, with its seq.
fn process_event(notification: &ServerNotification) -> (Option<u64>, ProcessEvent) {
    match notification {
        ServerNotification::ProcessOutput(n) => (
            Some(n.seq),
            ProcessEvent::Output {
                seq: n.seq,
                stream: n.stream,
                chunk: n.chunk.clone(),
            },
        ),
        ServerNotification::ProcessExited(n) => (
            Some(n.seq),
            ProcessEvent::Exited {
                seq: n.seq,
                exit_code: n.exit_code,
                signal: n.signal.clone(),
                timed_out: n.timed_out,
            },
        ),
        ServerNotification::ProcessClosed(_) => (None, ProcessEvent::Closed),
        _ => unreachable!("only process notifications reach here"),
    }
}

/// What to do with a process notification, decided under the lock.
enum Decision {
    Deliver(mpsc::Sender<ProcessEvent>),
    /// Buffered for a replay, or a duplicate.
    Skip,
    Unclaimed(ServerNotification),
}

fn decide(
    routes: &Mutex<Routes>,
    process_id: &str,
    seq: Option<u64>,
    exited: bool,
    notification: ServerNotification,
) -> Decision {
    let mut guard = lock(routes);
    let Some(route) = guard.processes.get_mut(process_id) else {
        return Decision::Unclaimed(notification);
    };
    if let Some(buffer) = &mut route.replay {
        if buffer.len() < REPLAY_BUFFER_LIMIT {
            buffer.push(notification);
        }
        return Decision::Skip;
    }
    if let Some(seq) = seq {
        if seq <= route.last_seq {
            return Decision::Skip; // Already delivered by a replay.
        }
        route.last_seq = seq;
    }
    if exited {
        if route.exited {
            return Decision::Skip;
        }
        route.exited = true;
    }
    Decision::Deliver(route.sender.clone())
}

async fn route_process(routes: &Mutex<Routes>, process_id: &str, notification: ServerNotification) {
    let (seq, event) = process_event(&notification);
    let exited = matches!(event, ProcessEvent::Exited { .. });
    let sender = match decide(routes, process_id, seq, exited, notification) {
        Decision::Deliver(sender) => sender,
        Decision::Skip => return,
        Decision::Unclaimed(notification) => {
            return send_unclaimed(routes, ClientEvent::Notification(notification)).await;
        }
    };
    let closed = matches!(event, ProcessEvent::Closed);
    if sender.send(event).await.is_err() || closed {
        lock(routes).processes.remove(process_id);
    }
}

async fn send_unclaimed(routes: &Mutex<Routes>, event: ClientEvent) {
    let sender = {
        let guard = lock(routes);
        // Only a taken receiver is worth waiting for; an untaken one would
        // fill up and stall the connection.
        if guard.unclaimed_rx.is_some() {
            return;
        }
        guard.unclaimed.clone()
    };
    if let Some(sender) = sender
        && sender.send(event).await.is_err()
    {
        lock(routes).unclaimed = None;
    }
}

/// Reconnects and resumes the session on the server that owns it. Returns
/// the new inbound stream, or the error the client closes with: the owner
/// could not be reached within the policy's bounds, or refused the resume.
async fn resume(
    args: &WebSocketConnectArgs,
    inner: &Weak<Inner>,
    routes: &Arc<Mutex<Routes>>,
    control: &mpsc::UnboundedSender<Control>,
) -> Result<Inbound, ClientError> {
    let dropped_at = tokio::time::Instant::now();
    let policy = args.reconnect.clone().unwrap_or_default();
    let info = inner
        .upgrade()
        .ok_or(ClientError::Closed)?
        .initialize
        .lock()
        .expect("lock poisoned")
        .clone();
    let token = info
        .as_ref()
        .and_then(|info| info.session_id.clone())
        .ok_or(ClientError::Closed)?;
    let server_id = route::server_name(info.as_ref(), &args.url);
    let mut target = args.clone();
    target.url = route::resume_url(
        &args.url,
        &policy.target,
        info.as_ref().and_then(|info| info.server_id.as_deref()),
    );
    let deadline = dropped_at + policy.give_up_after;
    let mut last_failure = String::from("no attempt was made");
    {
        // Whatever was in flight got no answer and is not sent again.
        let mut guard = lock(routes);
        for (_, pending) in guard.pending.drain() {
            let _ = pending.reply.send(Err(ClientError::ConnectionLost));
        }
        // v0 sessions die with their connection; end their streams.
        guard.sessions.clear();
        for route in guard.processes.values_mut() {
            route.replay = Some(Vec::new());
        }
    }
    for attempt in 1..=policy.attempts {
        if tokio::time::Instant::now() + policy.delay >= deadline {
            break;
        }
        tokio::time::sleep(policy.delay).await;
        let inner_strong = inner.upgrade().ok_or(ClientError::Closed)?;
        target.connect_timeout = args
            .connect_timeout
            .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        let (outbound, mut inbound) = match transport::websocket(&target).await {
            Ok(connected) => connected,
            Err(error) => {
                tracing::info!(attempt, %error, "reconnect failed");
                // A timeout cut short by the deadline says less than what
                // an earlier attempt ran into (a refusal, a 503).
                let cut_short =
                    matches!(&error, ClientError::Connect(m) if m.starts_with("timed out"));
                if !cut_short || attempt == 1 {
                    last_failure = error.to_string();
                }
                continue;
            }
        };
        let id = inner_strong.next_id();
        let params = InitializeParams {
            client_name: args.options.client_name.clone(),
            resume_session_id: Some(token.clone()),
            capabilities: crate::client::capabilities(args),
        };
        let request = ClientMessage::Request {
            id: id.clone(),
            method: method::INITIALIZE.into(),
            params: serde_json::to_value(params).ok(),
        };
        if outbound.send(request).await.is_err() {
            last_failure = "the connection closed before initialize".into();
            continue;
        }
        let wait = args
            .options
            .initialize_timeout
            .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        let answer = tokio::time::timeout(wait, inbound.recv()).await;
        let result = match answer {
            Ok(Some(DecodedServerMessage::Known(ServerMessage::Response {
                id: Some(got),
                result,
            }))) if got == id => result,
            _ => {
                last_failure = "no answer to initialize".into();
                continue;
            }
        };
        let response: InitializeResponse = match result {
            Ok(value) => decode(method::INITIALIZE, value)?,
            Err(error) => {
                // Expired, attached elsewhere, or owned by another server:
                // trying again cannot help.
                tracing::warn!(%error, "the server refused to resume the session");
                return Err(route::refusal_error(error));
            }
        };
        *inner_strong.outbound.lock().expect("lock poisoned") = outbound;
        *inner_strong.initialize.lock().expect("lock poisoned") = Some(response);
        let client = ExecServerClient {
            inner: inner_strong,
        };
        if client.notify_initialized().await.is_err() {
            last_failure = "the connection closed after initialize".into();
            continue;
        }
        let replays: Vec<(String, u64)> = lock(routes)
            .processes
            .iter()
            .map(|(id, route)| (id.clone(), route.last_seq))
            .collect();
        for (process_id, last_seq) in replays {
            tokio::spawn(replay(
                client.clone(),
                routes.clone(),
                control.clone(),
                process_id,
                last_seq,
            ));
        }
        tracing::info!(attempt, "session resumed");
        return Ok(inbound);
    }
    let waited = dropped_at.elapsed();
    Err(ClientError::ServerUnavailable {
        server_id,
        reason: format!(
            "{last_failure} (gave up reconnecting to {} after {:.1} s)",
            route::without_query(&target.url),
            waited.as_secs_f64()
        ),
    })
}

/// Reads what a handle missed and delivers it, then hands back to the
/// dispatcher.
async fn replay(
    client: ExecServerClient,
    routes: Arc<Mutex<Routes>>,
    control: mpsc::UnboundedSender<Control>,
    process_id: String,
    mut last_seq: u64,
) {
    let Some((sender, mut exited)) = lock(&routes)
        .processes
        .get(&process_id)
        .map(|r| (r.sender.clone(), r.exited))
    else {
        return;
    };
    loop {
        let params = ReadParams {
            process_id: process_id.clone(),
            after_seq: last_seq,
            max_bytes: Some(1024 * 1024),
            wait_ms: None,
        };
        let read = match client.read(params).await {
            Ok(read) => read,
            Err(ClientError::Rpc(RpcError { message, .. })) => {
                // Released or evicted while we were away: nothing to replay.
                tracing::warn!(%process_id, %message, "cannot replay a process after resuming");
                break;
            }
            Err(_) => return, // Dropped again: the next resume replays.
        };
        if read.dropped_bytes > 0 {
            let _ = sender
                .send(ProcessEvent::Gap {
                    dropped_bytes: read.dropped_bytes,
                })
                .await;
        }
        // A budget-limited answer ends at its last chunk; one that reached
        // the newest output may end later (the exit, or dropped output).
        let caught_up = read.chunks.last().is_none_or(|c| read.next_seq > c.seq);
        for chunk in read.chunks {
            last_seq = last_seq.max(chunk.seq);
            let event = ProcessEvent::Output {
                seq: chunk.seq,
                stream: chunk.stream,
                chunk: chunk.chunk,
            };
            let _ = sender.send(event).await;
        }
        if read.exited && !exited && caught_up {
            // The exit happened while we were away; its details come from a
            // zero-length wait.
            let wait = WaitParams {
                process_id: process_id.clone(),
                timeout_ms: Some(0),
                ..Default::default()
            };
            if let Ok(wait) = client.wait(wait).await {
                exited = true;
                let event = ProcessEvent::Exited {
                    seq: read.next_seq,
                    exit_code: wait.exit_code.unwrap_or(-1),
                    signal: wait.signal,
                    timed_out: wait.timed_out,
                };
                let _ = sender.send(event).await;
            }
        }
        last_seq = last_seq.max(read.next_seq);
        if read.closed && caught_up {
            let _ = sender.send(ProcessEvent::Closed).await;
            lock(&routes).processes.remove(&process_id);
            return;
        }
        if caught_up {
            break;
        }
    }
    if let Some(route) = lock(&routes).processes.get_mut(&process_id) {
        route.exited |= exited;
    }
    let _ = control.send(Control::ReplayDone {
        process_id,
        last_seq,
    });
}

/// Flushes the live notifications buffered during a replay and goes live.
async fn finish_replay(routes: &Mutex<Routes>, process_id: &str, last_seq: u64) {
    let buffered = {
        let mut guard = lock(routes);
        let Some(route) = guard.processes.get_mut(process_id) else {
            return;
        };
        route.last_seq = route.last_seq.max(last_seq);
        route.replay.take().unwrap_or_default()
    };
    for notification in buffered {
        route_process(routes, process_id, notification).await;
    }
}
