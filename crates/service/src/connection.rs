//! One connection: handshake, routing, and cleanup when it ends.
//!
//! [`serve_connection`] reads [`Incoming`] messages in order and answers
//! each request before reading the next, so requests on one connection take
//! effect in the order they were sent (two writes to one process are never
//! reordered). Handlers therefore never wait on a process: spawning takes
//! about a millisecond, writes are queued, and output flows through
//! separate forwarder tasks.
//!
//! When the connection ends for any reason (end of input, transport error,
//! protocol error) every process group it started is killed (SPEC 1.6).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use exec_server_core::{ProcessGroups, ProcessHandle};
use exec_server_protocol::jsonrpc::codes;
use exec_server_protocol::v0::method;
use exec_server_protocol::wire::{DecodeError, DecodedClientMessage};
use exec_server_protocol::{ClientMessage, RequestId, RpcError, ServerMessage};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::Server;

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

/// The live sessions of a connection, shared with their forwarders.
pub(crate) type Sessions = Arc<Mutex<HashMap<String, ProcessHandle>>>;

/// A process whose output forwarding starts once its `command/exec`
/// response is queued, so the client learns the session id before it sees
/// output for it.
pub(crate) type PendingStart = Box<dyn FnOnce() + Send + Sync>;

pub(crate) struct Connection {
    pub server: Server,
    pub out: mpsc::Sender<ServerMessage>,
    handshake: Handshake,
    pub sessions: Sessions,
    pub next_session: u64,
    /// Every process group this connection started, killed when it ends.
    pub groups: ProcessGroups,
    pub pending_starts: Vec<PendingStart>,
}

/// Serves one connection until its input ends, then kills its processes.
pub async fn serve_connection(
    server: Server,
    mut incoming: mpsc::Receiver<Incoming>,
    out: mpsc::Sender<ServerMessage>,
) {
    let mut connection = Connection {
        server,
        out,
        handshake: Handshake::New,
        sessions: Arc::default(),
        next_session: 1,
        groups: ProcessGroups::new(),
        pending_starts: Vec::new(),
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
    connection.shut_down();
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
                    "message of {bytes} bytes exceeds the limit of {limit} bytes"
                ));
                return self.send(ServerMessage::error_without_id(error)).await;
            }
        };
        match message {
            ClientMessage::Request { id, method, params } => {
                let result = self.route(&method, params).await;
                let flow = self.respond(id, result).await;
                for start in self.pending_starts.drain(..) {
                    start();
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
    /// JSON-RPC error codes are decided here and in [`ErrorMapping`].
    async fn route(&mut self, method_name: &str, params: Option<Value>) -> Result<Value, RpcError> {
        if method_name == method::INITIALIZE {
            return self.initialize(params);
        }
        match self.handshake {
            Handshake::New => {
                return Err(RpcError::invalid_request(
                    "client must call initialize before using exec methods",
                ));
            }
            Handshake::Initializing => {
                return Err(RpcError::invalid_request(
                    "client must send initialized before using exec methods",
                ));
            }
            Handshake::Ready => {}
        }
        match method_name {
            method::EXEC => to_value(self.exec(decode_params(params)?).await?),
            method::EXEC_WRITE => to_value(self.write(decode_params(params)?).await?),
            method::EXEC_TERMINATE => to_value(self.terminate(decode_params(params)?)?),
            _ => Err(RpcError::invalid_request(format!(
                "unknown method: {method_name}"
            ))),
        }
    }

    fn initialize(&mut self, params: Option<Value>) -> Result<Value, RpcError> {
        if self.handshake != Handshake::New {
            return Err(RpcError::invalid_request(
                "initialize may only be sent once per connection",
            ));
        }
        let params: exec_server_protocol::v0::InitializeParams = decode_params(params)?;
        tracing::info!(client = %params.client_name, "client initialized");
        self.handshake = Handshake::Initializing;
        to_value(exec_server_protocol::v0::InitializeResponse {
            protocol_version: exec_server_protocol::PROTOCOL_VERSION.to_string(),
            server_name: Some("exec-server".into()),
            server_version: Some(env!("CARGO_PKG_VERSION").into()),
        })
    }

    async fn respond(&mut self, id: RequestId, result: Result<Value, RpcError>) -> Flow {
        self.send(ServerMessage::Response {
            id: Some(id),
            result,
        })
        .await
    }

    async fn send(&self, message: ServerMessage) -> Flow {
        match self.out.send(message).await {
            Ok(()) => Flow::Continue,
            // The transport writer is gone: nobody can read our answers.
            Err(_) => Flow::Close("the transport closed"),
        }
    }

    /// Kills every process group this connection started.
    fn shut_down(&mut self) {
        let groups = self.groups.kill_all();
        for &pgid in &groups {
            self.server.groups().remove(pgid);
        }
        if !groups.is_empty() {
            tracing::info!(
                groups = groups.len(),
                "connection ended; killed its process groups"
            );
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
