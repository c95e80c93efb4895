//! The dispatcher: one task per client, the only owner of the routing
//! table. Callers reach it through a command channel; it reaches the
//! server through the [`Link`].
//!
//! It owns:
//! - the requests in flight (each answer goes to its caller's oneshot, or
//!   back into a route for the dispatcher's own replay reads);
//! - the routes: one per v0 session and one [`ProcessRoute`] per process
//!   handle, registered when the answer that creates it arrives and before
//!   the next message is read, so no output can precede its route;
//! - an outbox of requests waiting for room in the transport, and a queue
//!   of events waiting for room in a handle's channel.
//!
//! Backpressure: a handle's channel is bounded, and while an event waits
//! for room the dispatcher reads nothing more from the link. The server
//! then waits for the client, and the process for the server: nothing is
//! dropped to make room. Requests keep flowing out meanwhile.
//!
//! When the link reports the connection lost, requests in flight fail with
//! [`ClientError::ConnectionLost`] (never sent twice), v0 sessions end, and
//! once the link resumed the session every process route catches up on
//! what it missed (see [`route`]). When the connection is gone for good,
//! every process handle gets a last [`ProcessEvent::Lost`] event.

pub(crate) mod route;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use exec_server_protocol::methods::{Method, ProcessRead, ProcessWait};
use exec_server_protocol::process::{ReadParams, WaitParams};
use exec_server_protocol::v0::InitializeResponse;
use exec_server_protocol::wire::DecodedServerMessage;
use exec_server_protocol::{ClientMessage, RequestId, RpcError, ServerMessage, ServerNotification};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use self::route::{Live, Next, ProcessRoute};
use crate::event::{ClientEvent, ExecEvent, ProcessEvent};
use crate::link::{Link, LinkEvent, Opened};
use crate::transport::{Sink, Transport, TrySendError};
use crate::{ClientError, ClientOptions, WebSocketConnectArgs};

/// Events buffered per handle before the dispatcher waits for its reader.
pub(crate) const HANDLE_CHANNEL_CAPACITY: usize = 256;
/// Notifications without a handle buffered before the dispatcher waits.
pub(crate) const UNCLAIMED_CHANNEL_CAPACITY: usize = 256;
/// Commands queued before callers wait.
pub(crate) const COMMAND_CAPACITY: usize = 64;
/// Requests accepted but not yet taken by the transport before the
/// dispatcher stops taking commands.
const OUTBOX_LIMIT: usize = 64;
/// Budget of one replay read: what the client holds of a replay at once.
const REPLAY_READ_BYTES: u64 = 1024 * 1024;

/// What callers ask of the dispatcher.
pub(crate) enum Command {
    /// Send a request; the answer goes to `reply`, and a successful one
    /// sets up `route` first.
    Request {
        method: String,
        params: Value,
        route: NewRoute,
        reply: oneshot::Sender<Result<Value, ClientError>>,
    },
}

/// The route a request creates when it succeeds.
pub(crate) enum NewRoute {
    None,
    /// `command/exec`: the new session's events go here.
    Exec(mpsc::Sender<ExecEvent>),
    /// `process/start`: the new process's events go here.
    Process {
        sender: mpsc::Sender<ProcessEvent>,
        streaming: bool,
        tty: bool,
    },
}

enum Pending {
    Caller {
        reply: oneshot::Sender<Result<Value, ClientError>>,
        route: NewRoute,
    },
    /// A replay read of the dispatcher's own.
    Read { process_id: String },
    /// The zero-length wait for the details of an exit missed while away.
    ExitDetails { process_id: String },
}

struct Route {
    route: ProcessRoute,
    sender: mpsc::Sender<ProcessEvent>,
}

/// An event on its way to a handle (or to the unclaimed stream).
enum Delivery {
    Process {
        id: String,
        sender: mpsc::Sender<ProcessEvent>,
        event: ProcessEvent,
    },
    Session {
        id: String,
        sender: mpsc::Sender<ExecEvent>,
        event: ExecEvent,
    },
    Unclaimed {
        sender: mpsc::Sender<ClientEvent>,
        event: ClientEvent,
    },
}

impl Delivery {
    /// Waits until the receiving channel has room (or is closed).
    async fn ready(&self) {
        let _ = match self {
            Delivery::Process { sender, .. } => sender.reserve().await.map(drop).is_ok(),
            Delivery::Session { sender, .. } => sender.reserve().await.map(drop).is_ok(),
            Delivery::Unclaimed { sender, .. } => sender.reserve().await.map(drop).is_ok(),
        };
    }
}

/// What the dispatcher shares with the client API: nothing of the routes.
pub(crate) struct Shared {
    pub commands: mpsc::Sender<Command>,
    pub info: watch::Receiver<InitializeResponse>,
    /// Why the client closed for good, once it has.
    pub ended: watch::Receiver<Option<ClientError>>,
    /// The unclaimed-notification stream, until taken.
    pub unclaimed: mpsc::Receiver<ClientEvent>,
    /// Set when [`Self::unclaimed`] was taken: only then is it fed.
    pub unclaimed_taken: Arc<AtomicBool>,
}

pub(crate) struct Dispatcher {
    link: Link,
    /// The current connection's outgoing half; `None` while reconnecting.
    sink: Option<Sink>,
    commands: mpsc::Receiver<Command>,
    info: watch::Sender<InitializeResponse>,
    next_id: i64,
    pending: HashMap<RequestId, Pending>,
    sessions: HashMap<String, mpsc::Sender<ExecEvent>>,
    processes: HashMap<String, Route>,
    unclaimed: Option<mpsc::Sender<ClientEvent>>,
    unclaimed_taken: Arc<AtomicBool>,
    outbox: VecDeque<ClientMessage>,
    deliveries: VecDeque<Delivery>,
    /// Why the client closed for good, once it has: every call fails with
    /// it at once.
    ended: watch::Sender<Option<ClientError>>,
    /// Scratch space for the events a route produces.
    events: Vec<ProcessEvent>,
}

/// One turn of the loop.
enum Step {
    Deliverable,
    Writable,
    Command(Option<Command>),
    Link(LinkEvent),
}

impl Dispatcher {
    /// Performs the handshake over `transport` (the link), then starts the
    /// dispatcher task.
    pub async fn start(
        transport: Transport,
        options: &ClientOptions,
        reconnect: Option<WebSocketConnectArgs>,
    ) -> Result<Shared, ClientError> {
        Ok(Self::spawn(
            Link::open(transport, options, reconnect).await?,
        ))
    }

    fn spawn(opened: Opened) -> Shared {
        let Opened {
            link,
            sink,
            info,
            early,
        } = opened;
        let (commands_tx, commands) = mpsc::channel(COMMAND_CAPACITY);
        let (info_tx, info_rx) = watch::channel(info);
        let (unclaimed_tx, unclaimed_rx) = mpsc::channel(UNCLAIMED_CHANNEL_CAPACITY);
        let unclaimed_taken = Arc::new(AtomicBool::new(false));
        let ended = watch::Sender::new(None);
        let ended_rx = ended.subscribe();
        let mut dispatcher = Dispatcher {
            link,
            sink: Some(sink),
            commands,
            info: info_tx,
            next_id: 1,
            pending: HashMap::new(),
            sessions: HashMap::new(),
            processes: HashMap::new(),
            unclaimed: Some(unclaimed_tx),
            unclaimed_taken: unclaimed_taken.clone(),
            outbox: VecDeque::new(),
            deliveries: VecDeque::new(),
            ended,
            events: Vec::new(),
        };
        for message in early {
            dispatcher.on_message(message);
        }
        tokio::spawn(dispatcher.run());
        Shared {
            commands: commands_tx,
            info: info_rx,
            ended: ended_rx,
            unclaimed: unclaimed_rx,
            unclaimed_taken,
        }
    }

    fn closed(&self) -> Option<ClientError> {
        self.ended.borrow().clone()
    }

    async fn run(mut self) {
        loop {
            self.flush_outbox();
            let closed = self.ended.borrow().is_some();
            if closed && self.deliveries.is_empty() {
                return;
            }
            let step = tokio::select! {
                // Events first: they are what holds the connection back.
                biased;
                () = front_ready(&self.deliveries) => Step::Deliverable,
                () = sink_ready(self.sink.as_ref(), &self.outbox) => Step::Writable,
                command = self.commands.recv(), if self.outbox.len() < OUTBOX_LIMIT => {
                    Step::Command(command)
                }
                event = self.link.next(), if self.deliveries.is_empty() && !closed => {
                    Step::Link(event)
                }
            };
            match step {
                Step::Deliverable => self.deliver_front(),
                Step::Writable => {}
                // Every client and handle is gone: nobody to serve.
                Step::Command(None) => return,
                Step::Command(Some(command)) => self.on_command(command),
                Step::Link(LinkEvent::Message(message)) => self.on_message(message),
                Step::Link(LinkEvent::Lost { resuming }) => self.on_lost(resuming),
                Step::Link(LinkEvent::Resumed { sink, info, early }) => {
                    self.on_resumed(sink, info, early)
                }
                Step::Link(LinkEvent::Closed { error }) => self.close(error),
            }
        }
    }

    // ---- requests ---------------------------------------------------

    fn on_command(&mut self, command: Command) {
        let Command::Request {
            method,
            params,
            route,
            reply,
        } = command;
        if let Some(error) = self.closed() {
            let _ = reply.send(Err(error));
            return;
        }
        self.send_request(method, params, Pending::Caller { reply, route });
    }

    fn send_request(&mut self, method: String, params: Value, pending: Pending) {
        let id = RequestId::from(self.next_id);
        self.next_id += 1;
        self.pending.insert(id.clone(), pending);
        self.outbox.push_back(ClientMessage::Request {
            id,
            method,
            params: Some(params),
        });
    }

    /// A request of the dispatcher's own (replay reads and waits).
    fn send_internal<M: Method>(&mut self, params: M::Params, pending: Pending) {
        match serde_json::to_value(params) {
            Ok(params) => self.send_request(M::NAME.into(), params, pending),
            Err(error) => tracing::error!(%error, method = M::NAME, "cannot encode a request"),
        }
    }

    /// Hands queued requests to the transport while it has room.
    fn flush_outbox(&mut self) {
        let Some(sink) = &self.sink else {
            return;
        };
        while let Some(message) = self.outbox.pop_front() {
            match sink.try_send(message) {
                Ok(()) => {}
                Err(TrySendError::Full(message)) => {
                    self.outbox.push_front(message);
                    return;
                }
                // The link reports the loss next; the outbox goes with it.
                Err(TrySendError::Closed) => return,
            }
        }
    }

    fn on_response(&mut self, id: Option<RequestId>, result: Result<Value, RpcError>) {
        let Some(pending) = id.and_then(|id| self.pending.remove(&id)) else {
            tracing::warn!("a response to no pending request");
            return;
        };
        match pending {
            Pending::Caller { reply, route } => {
                if let Ok(value) = &result {
                    self.register(route, value);
                }
                let _ = reply.send(result.map_err(ClientError::Rpc));
            }
            Pending::Read { process_id } => {
                let read = result
                    .map_err(|error| error.message)
                    .and_then(|value| decode::<ProcessRead>(value).map_err(|e| e.to_string()));
                self.with_route(&process_id, |route, out| match read {
                    Ok(read) => route.on_read(read, out),
                    Err(message) => {
                        route.lose(format!("cannot read back its output: {message}"), out);
                        Next::Finished
                    }
                });
            }
            Pending::ExitDetails { process_id } => {
                let wait = result.ok().and_then(|v| decode::<ProcessWait>(v).ok());
                self.with_route(&process_id, |route, out| route.on_exit_details(wait, out));
            }
        }
    }

    /// Sets up the route a successful request creates.
    fn register(&mut self, route: NewRoute, value: &Value) {
        let id_of = |field: &str| value.get(field).and_then(Value::as_str).map(str::to_string);
        match route {
            NewRoute::None => {}
            NewRoute::Exec(sender) => {
                if let Some(id) = id_of("sessionId") {
                    self.sessions.insert(id, sender);
                }
            }
            NewRoute::Process {
                sender,
                streaming,
                tty,
            } => {
                if let Some(id) = id_of("processId") {
                    let route = ProcessRoute::new(streaming, tty);
                    self.processes.insert(id, Route { route, sender });
                }
            }
        }
    }

    // ---- notifications ----------------------------------------------

    fn on_message(&mut self, message: DecodedServerMessage) {
        match message {
            DecodedServerMessage::Known(ServerMessage::Response { id, result }) => {
                self.on_response(id, result)
            }
            DecodedServerMessage::Known(ServerMessage::Notification(notification)) => {
                self.on_notification(notification)
            }
            DecodedServerMessage::UnknownNotification { method, params } => {
                self.unclaimed(ClientEvent::Unknown { method, params })
            }
        }
    }

    fn on_notification(&mut self, notification: ServerNotification) {
        let process_id = match &notification {
            ServerNotification::ProcessOutput(n) => Some(&n.process_id),
            ServerNotification::ProcessExited(n) => Some(&n.process_id),
            ServerNotification::ProcessClosed(n) => Some(&n.process_id),
            _ => None,
        };
        if let Some(id) = process_id {
            if !self.processes.contains_key(id) {
                return self.unclaimed(ClientEvent::Notification(notification));
            }
            let id = id.clone();
            let live = match notification {
                ServerNotification::ProcessOutput(n) => Live::Output(n),
                ServerNotification::ProcessExited(n) => Live::Exited(n),
                _ => Live::Closed,
            };
            return self.with_route(&id, |route, out| route.live(live, out));
        }
        let (id, event, last) = match &notification {
            ServerNotification::ExecOutputDelta(delta) => (
                &delta.session_id,
                ExecEvent::Output {
                    stream: delta.stream,
                    chunk: delta.chunk.clone(),
                },
                false,
            ),
            ServerNotification::ExecExited(exited) => (
                &exited.session_id,
                ExecEvent::Exited {
                    exit_code: exited.exit_code,
                },
                true,
            ),
            // Process notifications were routed above; a kind this client
            // has no handle for goes to the unclaimed stream.
            _ => return self.unclaimed(ClientEvent::Notification(notification)),
        };
        let sender = if last {
            self.sessions.remove(id)
        } else {
            self.sessions.get(id).cloned()
        };
        match sender.filter(|sender| !sender.is_closed()) {
            Some(sender) => {
                let id = id.clone();
                self.deliver(Delivery::Session { id, sender, event })
            }
            None => self.unclaimed(ClientEvent::Notification(notification)),
        }
    }

    fn unclaimed(&mut self, event: ClientEvent) {
        // Only a taken receiver is worth waiting for; an untaken one would
        // fill up and stall the connection.
        if !self.unclaimed_taken.load(Ordering::Relaxed) {
            return;
        }
        if let Some(sender) = &self.unclaimed {
            let sender = sender.clone();
            self.deliver(Delivery::Unclaimed { sender, event });
        }
    }

    // ---- process routes ---------------------------------------------

    /// Runs `step` on a process route, queues the events it produced and
    /// carries out what it asks for next.
    fn with_route(
        &mut self,
        id: &str,
        step: impl FnOnce(&mut ProcessRoute, &mut Vec<ProcessEvent>) -> Next,
    ) {
        let Some(route) = self.processes.get_mut(id) else {
            return;
        };
        if route.sender.is_closed() {
            // The handle was dropped: nobody to catch up for.
            self.processes.remove(id);
            return;
        }
        let mut events = std::mem::take(&mut self.events);
        let next = step(&mut route.route, &mut events);
        let mut gone = false;
        for event in events.drain(..) {
            // The hot path (live output, room in the channel) allocates
            // nothing: a queued delivery needs its own id and sender.
            let event = if self.deliveries.is_empty() {
                match route.sender.try_send(event) {
                    Ok(()) => continue,
                    Err(mpsc::error::TrySendError::Full(event)) => event,
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        gone = true;
                        break;
                    }
                }
            } else {
                event
            };
            self.deliveries.push_back(Delivery::Process {
                id: id.to_string(),
                sender: route.sender.clone(),
                event,
            });
        }
        events.clear();
        self.events = events;
        if gone {
            self.processes.remove(id);
            return;
        }
        self.carry_out(id, next);
    }

    fn carry_out(&mut self, id: &str, next: Next) {
        let process_id = id.to_string();
        match next {
            Next::Nothing => {}
            Next::Read { after_seq } => {
                let params = ReadParams {
                    process_id: process_id.clone(),
                    after_seq,
                    max_bytes: Some(REPLAY_READ_BYTES),
                    ..Default::default()
                };
                self.send_internal::<ProcessRead>(params, Pending::Read { process_id });
            }
            Next::ExitDetails => {
                let params = WaitParams {
                    process_id: process_id.clone(),
                    timeout_ms: Some(0),
                    ..Default::default()
                };
                self.send_internal::<ProcessWait>(params, Pending::ExitDetails { process_id });
            }
            Next::Finished => {
                self.processes.remove(id);
            }
        }
    }

    // ---- the link ---------------------------------------------------

    /// The connection dropped: fail what was in flight (it is never sent
    /// again), end v0 sessions (they die with their connection).
    fn on_lost(&mut self, resuming: bool) {
        self.sink = None;
        self.outbox.clear();
        let error = || {
            if resuming {
                ClientError::ConnectionLost
            } else {
                ClientError::Closed
            }
        };
        for (_, pending) in self.pending.drain() {
            if let Pending::Caller { reply, .. } = pending {
                let _ = reply.send(Err(error()));
            }
        }
        self.sessions.clear();
        if !resuming {
            self.close(ClientError::Closed);
        }
    }

    /// A new connection resumed the session: every process route reads
    /// back what it missed, then goes live again.
    fn on_resumed(
        &mut self,
        sink: Sink,
        info: Box<InitializeResponse>,
        early: Vec<DecodedServerMessage>,
    ) {
        self.sink = Some(sink);
        self.info.send_replace(*info);
        let ids: Vec<String> = self.processes.keys().cloned().collect();
        for id in ids {
            self.with_route(&id, |route, _| route.resume());
        }
        for message in early {
            self.on_message(message);
        }
    }

    /// The connection is gone for good: every call fails with `error`
    /// from now on, and every process handle learns why.
    fn close(&mut self, error: ClientError) {
        self.sink = None;
        self.outbox.clear();
        for (_, pending) in self.pending.drain() {
            if let Pending::Caller { reply, .. } = pending {
                let _ = reply.send(Err(error.clone()));
            }
        }
        self.sessions.clear();
        let reason = error.to_string();
        let ids: Vec<String> = self.processes.keys().cloned().collect();
        for id in ids {
            self.with_route(&id, |route, out| {
                route.lose(reason.clone(), out);
                Next::Finished
            });
        }
        self.unclaimed = None;
        tracing::info!(%reason, "the client is closed");
        self.ended.send_replace(Some(error));
    }

    // ---- deliveries -------------------------------------------------

    /// Delivers now if nothing is queued and there is room; queues it
    /// otherwise (the loop then waits for room before reading more).
    fn deliver(&mut self, delivery: Delivery) {
        if self.deliveries.is_empty() {
            if let Some(delivery) = self.try_deliver(delivery) {
                self.deliveries.push_back(delivery);
            }
        } else {
            self.deliveries.push_back(delivery);
        }
    }

    fn deliver_front(&mut self) {
        if let Some(delivery) = self.deliveries.pop_front()
            && let Some(delivery) = self.try_deliver(delivery)
        {
            self.deliveries.push_front(delivery);
        }
    }

    /// Sends without waiting; gives the delivery back when the channel is
    /// full. A closed channel means its handle was dropped: forget it.
    fn try_deliver(&mut self, delivery: Delivery) -> Option<Delivery> {
        use mpsc::error::TrySendError::{Closed, Full};
        match delivery {
            Delivery::Process { id, sender, event } => match sender.try_send(event) {
                Ok(()) => None,
                Err(Full(event)) => Some(Delivery::Process { id, sender, event }),
                Err(Closed(_)) => {
                    if self
                        .processes
                        .get(&id)
                        .is_some_and(|route| route.sender.same_channel(&sender))
                    {
                        self.processes.remove(&id);
                    }
                    None
                }
            },
            Delivery::Session { id, sender, event } => match sender.try_send(event) {
                Ok(()) => None,
                Err(Full(event)) => Some(Delivery::Session { id, sender, event }),
                Err(Closed(event)) => {
                    // Nobody reads this session any more: this and what
                    // follows is unclaimed, as if it had never had a handle.
                    self.sessions.remove(&id);
                    self.unclaimed(ClientEvent::Notification(event.into_notification(id)));
                    None
                }
            },
            Delivery::Unclaimed { sender, event } => match sender.try_send(event) {
                Ok(()) => None,
                Err(Full(event)) => Some(Delivery::Unclaimed { sender, event }),
                Err(Closed(_)) => {
                    self.unclaimed = None;
                    None
                }
            },
        }
    }
}

/// Resolves when the first queued delivery can be made; never when none is
/// queued.
async fn front_ready(deliveries: &VecDeque<Delivery>) {
    match deliveries.front() {
        Some(delivery) => delivery.ready().await,
        None => pending().await,
    }
}

/// Resolves when queued requests can be handed to the transport; never
/// when nothing is queued or there is no connection (a closed one is
/// reported by the link).
async fn sink_ready(sink: Option<&Sink>, outbox: &VecDeque<ClientMessage>) {
    match sink {
        Some(sink) if !outbox.is_empty() => {
            if sink.ready().await.is_err() {
                pending::<()>().await;
            }
        }
        _ => pending().await,
    }
}

/// Decodes a method's result.
pub(crate) fn decode<M: Method>(value: Value) -> Result<M::Result, ClientError> {
    serde_json::from_value(value).map_err(|e| ClientError::Protocol(format!("{}: {e}", M::NAME)))
}

/// Encodes params for the wire.
pub(crate) fn encode<P: Serialize>(params: &P) -> Result<Value, ClientError> {
    serde_json::to_value(params).map_err(|e| ClientError::Protocol(e.to_string()))
}
