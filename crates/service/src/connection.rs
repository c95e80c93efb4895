//! One connection: handshake, routing, and what happens when it ends.
//!
//! [`serve_connection`] reads [`Incoming`] messages in order and handles
//! each request before reading the next, so requests on one connection take
//! effect in the order they were sent (two writes to one process are never
//! reordered). Handlers never wait on a process: spawning takes about a
//! millisecond, writes are queued, and output flows through forwarder
//! tasks. The requests that do wait by design (`process/wait`, a long-poll
//! `process/read`) validate their params in order, then finish in a task of
//! their own and answer when ready; at most [`MAX_DEFERRED`] of them run
//! per connection.
//!
//! When the connection ends for any reason (end of input, transport error,
//! protocol error) its session is detached: processes that must die are
//! killed at once (SPEC 1.6, 3.2).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use exec_server_core::ProcessEvent;
use exec_server_protocol::jsonrpc::codes;
use exec_server_protocol::process::method as process_method;
use exec_server_protocol::v0::{self, method};
use exec_server_protocol::wire::{DecodeError, DecodedClientMessage};
use exec_server_protocol::{ClientMessage, RequestId, RpcError, ServerMessage};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::Server;
use crate::forwarder::Target;
use crate::session::{ProcessEntry, Session};

/// What a transport hands to the connection.
#[derive(Debug)]
pub enum Incoming {
    Message(DecodedClientMessage),
    /// Bytes that did not decode; answered with an error and `id: null`.
    Invalid(DecodeError),
    /// A message over the size limit, already discarded by the transport.
    TooLarge {
        bytes: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handshake {
    /// Waiting for `initialize`.
    New,
    /// `initialize` answered; waiting for `initialized`.
    Initializing,
    Ready,
}

/// Whether the connection goes on after a message.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// A protocol error: close the connection.
    Close(&'static str),
}

/// A handler's answer: now, or from a task of its own.
pub(crate) enum Reply {
    Now(Result<Value, RpcError>),
    Later(Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>>),
}

impl Reply {
    pub fn now<T: serde::Serialize>(result: Result<T, RpcError>) -> Reply {
        Reply::Now(result.and_then(to_value))
    }

    pub fn later<T, F>(future: F) -> Reply
    where
        T: serde::Serialize,
        F: Future<Output = Result<T, RpcError>> + Send + 'static,
    {
        Reply::Later(Box::pin(async move { future.await.and_then(to_value) }))
    }
}

/// Requests answered from their own task (waits, long-polls) that one
/// connection may have running at once.
pub const MAX_DEFERRED: usize = 256;

pub(crate) struct Connection {
    pub server: Server,
    pub out: mpsc::Sender<ServerMessage>,
    handshake: Handshake,
    session: Option<Arc<Session>>,
    /// Forwarders to start once the current response is queued, so a client
    /// learns a process's id before it sees output for it.
    pending_starts: Vec<(Arc<ProcessEntry>, mpsc::Receiver<ProcessEvent>)>,
    deferred: JoinSet<()>,
}

/// Serves one connection until its input ends, then detaches its session.
pub async fn serve_connection(
    server: Server,
    mut incoming: mpsc::Receiver<Incoming>,
    out: mpsc::Sender<ServerMessage>,
) {
    let mut connection = Connection {
        server,
        out,
        handshake: Handshake::New,
        session: None,
        pending_starts: Vec::new(),
        deferred: JoinSet::new(),
    };
    while let Some(message) = incoming.recv().await {
        match connection.handle(message).await {
            Flow::Continue => {}
            Flow::Close(reason) => {
                tracing::info!(reason, "closing the connection after a protocol error");
                break;
            }
        }
    }
    connection.deferred.abort_all();
    if let Some(session) = connection.session.take() {
        session.detach();
    }
}

impl Connection {
    async fn handle(&mut self, incoming: Incoming) -> Flow {
        let message = match incoming {
            Incoming::Message(decoded) => decoded.message,
            Incoming::Invalid(error) => {
                return self
                    .send(ServerMessage::error_without_id(error.into_rpc_error()))
                    .await;
            }
            Incoming::TooLarge { bytes } => {
                let limit = self.server.config().max_message_bytes;
                let error = RpcError::invalid_request(format!(
                    "message of {bytes} bytes exceeds the limit of {limit} bytes (--max-message-bytes)"
                ));
                return self.send(ServerMessage::error_without_id(error)).await;
            }
        };
        match message {
            ClientMessage::Request { id, method, params } => {
                let flow = match self.route(&method, params).await {
                    Reply::Now(result) => self.respond(id, result).await,
                    Reply::Later(future) => self.defer(id, future).await,
                };
                for (entry, events) in self.pending_starts.drain(..) {
                    let session = self.session.clone().expect("processes start in a session");
                    let target = if entry.detachable() {
                        Target::Session
                    } else {
                        Target::Connection(self.out.clone())
                    };
                    tokio::spawn(crate::forwarder::run(session, entry, target, events));
                }
                flow
            }
            ClientMessage::Notification { method, .. } if method == method::INITIALIZED => {
                match self.handshake {
                    Handshake::New => Flow::Close("`initialized` before `initialize`"),
                    Handshake::Initializing | Handshake::Ready => {
                        self.handshake = Handshake::Ready;
                        Flow::Continue
                    }
                }
            }
            ClientMessage::Notification { .. } => Flow::Close("unexpected notification"),
            ClientMessage::Response { .. } => Flow::Close("the server sends no requests"),
        }
    }

    /// The router: handshake checks, then one typed handler per method.
    async fn route(&mut self, method_name: &str, params: Option<Value>) -> Reply {
        if method_name == method::INITIALIZE {
            return Reply::now(self.initialize(params));
        }
        match self.handshake {
            Handshake::New => {
                return Reply::Now(Err(RpcError::invalid_request(
                    "client must call initialize before using exec methods",
                )));
            }
            Handshake::Initializing => {
                return Reply::Now(Err(RpcError::invalid_request(
                    "client must send initialized before using exec methods",
                )));
            }
            Handshake::Ready => {}
        }
        macro_rules! params {
            () => {
                match decode_params(params) {
                    Ok(params) => params,
                    Err(error) => return Reply::Now(Err(error)),
                }
            };
        }
        match method_name {
            method::EXEC => Reply::now(self.exec(params!()).await),
            method::EXEC_WRITE => Reply::now(self.write(params!()).await),
            method::EXEC_TERMINATE => Reply::now(self.terminate(params!())),
            process_method::START => Reply::now(self.process_start(params!()).await),
            process_method::WRITE => Reply::now(self.process_write(params!()).await),
            process_method::CLOSE_STDIN => Reply::now(self.process_close_stdin(params!()).await),
            process_method::RESIZE => Reply::now(self.process_resize(params!())),
            process_method::SIGNAL => Reply::now(self.process_signal(params!())),
            process_method::TERMINATE => Reply::now(self.process_terminate(params!())),
            process_method::WAIT => self.process_wait(params!()),
            process_method::READ => self.process_read(params!()),
            process_method::SNAPSHOT => Reply::now(self.process_snapshot(params!())),
            process_method::LIST => Reply::now(self.process_list(params!())),
            process_method::RELEASE => Reply::now(self.process_release(params!())),
            _ => Reply::Now(Err(RpcError::invalid_request(format!(
                "unknown method: {}",
                truncate(method_name, 256)
            )))),
        }
    }

    fn initialize(&mut self, params: Option<Value>) -> Result<v0::InitializeResponse, RpcError> {
        if self.handshake != Handshake::New {
            return Err(RpcError::invalid_request(
                "initialize may only be sent once per connection",
            ));
        }
        let params: v0::InitializeParams = decode_params(params)?;
        let (session, resumed) = match &params.resume_session_id {
            Some(token) => {
                crate::fleet::check_owner(&self.server.config().server_id, token)?;
                let session = Session::resume(&self.server, token, self.out.clone())
                    .map_err(|error| RpcError::invalid_request(error.to_string()))?;
                (session, true)
            }
            None => (Session::create(&self.server, self.out.clone()), false),
        };
        tracing::info!(client = %params.client_name, resumed, "client initialized");
        let token = session.token.clone();
        self.session = Some(session);
        self.handshake = Handshake::Initializing;
        let config = self.server.config();
        Ok(v0::InitializeResponse {
            protocol_version: exec_server_protocol::PROTOCOL_VERSION.to_string(),
            server_name: Some("exec-server".into()),
            server_version: Some(env!("CARGO_PKG_VERSION").into()),
            session_id: Some(token),
            resumed,
            server_id: Some(config.server_id.to_string()),
            limits: Some(v0::ServerLimits {
                max_message_bytes: config.max_message_bytes as u64,
                max_processes_per_connection: config.max_processes_per_connection as u64,
                retained_output_bytes: config.retained_output_bytes as u64,
                max_exited_records: config.max_exited_records as u64,
                detach_ttl_ms: config.detach_ttl.as_millis() as u64,
            }),
        })
    }

    /// The session of this connection (always set once initialized).
    pub(crate) fn session(&self) -> Result<Arc<Session>, RpcError> {
        self.session
            .clone()
            .ok_or_else(|| RpcError::internal("no session after the handshake"))
    }

    /// Refuses a new process when the connection is at its limit.
    pub(crate) fn check_process_limit(&self) -> Result<(), RpcError> {
        let limit = self.server.config().max_processes_per_connection;
        if self.session()?.running_count() >= limit {
            return Err(RpcError::invalid_request(format!(
                "too many processes: this connection already has {limit} running (--max-processes-per-connection)"
            )));
        }
        Ok(())
    }

    /// Registers a started process and arranges for its events to be
    /// forwarded once the current response is queued.
    pub(crate) fn start_forwarding(
        &mut self,
        entry: Arc<ProcessEntry>,
        events: mpsc::Receiver<ProcessEvent>,
    ) {
        if let Some(session) = &self.session {
            session.insert(entry.clone());
        }
        self.pending_starts.push((entry, events));
    }

    async fn respond(&mut self, id: RequestId, result: Result<Value, RpcError>) -> Flow {
        self.send(ServerMessage::Response {
            id: Some(id),
            result,
        })
        .await
    }

    async fn defer(
        &mut self,
        id: RequestId,
        future: Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>>,
    ) -> Flow {
        while self.deferred.try_join_next().is_some() {}
        if self.deferred.len() >= MAX_DEFERRED {
            let error = RpcError::invalid_request(format!(
                "too many waiting requests: this connection already has {MAX_DEFERRED}"
            ));
            return self.respond(id, Err(error)).await;
        }
        let out = self.out.clone();
        self.deferred.spawn(async move {
            let result = future.await;
            let _ = out
                .send(ServerMessage::Response {
                    id: Some(id),
                    result,
                })
                .await;
        });
        Flow::Continue
    }

    async fn send(&self, message: ServerMessage) -> Flow {
        match self.out.send(message).await {
            Ok(()) => Flow::Continue,
            // The transport writer is gone: nobody can read our answers.
            Err(_) => Flow::Close("the transport closed"),
        }
    }
}

/// Decodes params into a typed struct. Absent params decode like `{}`, so
/// optional fields take their defaults and missing ones are named.
pub(crate) fn decode_params<T: DeserializeOwned>(params: Option<Value>) -> Result<T, RpcError> {
    let params = match params {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(params) => params,
    };
    serde_json::from_value(params)
        .map_err(|error| RpcError::invalid_params(format!("invalid params: {error}")))
}

/// At most `max` bytes of `text`, cut at a character boundary, with `…`
/// when cut: client-supplied strings echoed in errors stay bounded.
fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}

fn to_value<T: serde::Serialize>(response: T) -> Result<Value, RpcError> {
    serde_json::to_value(response).map_err(|error| RpcError::internal(error.to_string()))
}

/// How errors from the process core become JSON-RPC errors.
pub(crate) trait ErrorMapping {
    fn into_rpc(self) -> RpcError;
}

impl ErrorMapping for exec_server_core::SpawnError {
    fn into_rpc(self) -> RpcError {
        let code = match self {
            exec_server_core::SpawnError::Invalid(_) => codes::INVALID_PARAMS,
            exec_server_core::SpawnError::Os { .. } => codes::INTERNAL_ERROR,
        };
        RpcError::new(code, self.to_string())
    }
}
