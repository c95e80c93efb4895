//! One connection: the read loop, the handshake, the ordering rule, and
//! what happens when it ends. What a request *does* is elsewhere: the
//! router (`router.rs`, generated from the method table) calls a handler
//! (`handlers/`) over the connection's `Context`.
//!
//! [`serve_connection`] reads [`Incoming`] messages in order and handles
//! each request before reading the next, so requests on one connection take
//! effect in the order they were sent (two writes to one process are never
//! reordered). Handlers never wait on a process: spawning takes about a
//! millisecond, writes are queued, and output flows through forwarder
//! tasks, started only once the response that names the process is queued.
//! The requests that do wait by design (`process/wait`, a long-poll
//! `process/read`) validate their params in order, then finish in a task of
//! their own and answer when ready; at most [`MAX_DEFERRED`] of them run
//! per connection.
//!
//! When the connection ends for any reason (end of input, transport error,
//! protocol error) its session is detached: processes that must die are
//! killed at once (SPEC 1.6, 3.2). When the server shuts down
//! ([`Phase::Closing`](crate::Phase::Closing)) the connection stops reading
//! and ends its session instead: nothing will be left to resume.

use exec_server_protocol::binary::BinaryWrite;
use exec_server_protocol::methods::{Initialize, Initialized, Method, Notification};
use exec_server_protocol::wire::{DecodeError, DecodedClientMessage};
use exec_server_protocol::{ClientMessage, RequestId, RpcError, ServerMessage};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::Server;
use crate::context::Context;
use crate::error::ApiError;
use crate::forwarder::Target;
use crate::frames::BinaryFrames;
use crate::router::{self, Deferred, Reply};

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
    /// A `process/write` that came as a binary frame (only once the
    /// handshake turned binary frames on): handled like the JSON request,
    /// answered with a JSON response.
    Write(BinaryWrite),
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

/// Requests answered from their own task (waits, long-polls) that one
/// connection may have running at once.
pub const MAX_DEFERRED: usize = 256;

struct Connection {
    cx: Context,
    handshake: Handshake,
    deferred: JoinSet<()>,
}

/// What a transport asks of a connection beyond the server's config.
#[derive(Clone, Debug, Default)]
pub struct ConnectionOptions {
    /// Close the connection when `initialize` has not succeeded this long
    /// after it started (websockets; stdio trusts its parent and waits).
    pub initialize_within: Option<std::time::Duration>,
    /// The switch of a transport that can carry binary frames
    /// (websockets): `initialize` turns it on when the client asks. `None`:
    /// the transport cannot, and a client that asks is told they are off.
    pub binary_frames: Option<BinaryFrames>,
}

/// Serves one connection until its input ends, then detaches its session.
pub async fn serve_connection(
    server: Server,
    incoming: mpsc::Receiver<Incoming>,
    out: mpsc::Sender<ServerMessage>,
) {
    serve_connection_with(server, incoming, out, ConnectionOptions::default()).await
}

/// [`serve_connection`] with transport-specific [`ConnectionOptions`].
pub async fn serve_connection_with(
    server: Server,
    mut incoming: mpsc::Receiver<Incoming>,
    out: mpsc::Sender<ServerMessage>,
    options: ConnectionOptions,
) {
    let mut shutdown = server.lifecycle().shutdown();
    let mut cx = Context::new(server, out);
    cx.set_binary_frames(options.binary_frames.clone());
    let mut connection = Connection {
        cx,
        handshake: Handshake::New,
        deferred: JoinSet::new(),
    };
    let initialize_by = options
        .initialize_within
        .map(|within| tokio::time::Instant::now() + within);
    loop {
        // Before `initialize`, a websocket client has a deadline; after,
        // only the input's end or the server's shutdown ends the loop.
        let deadline = initialize_by.filter(|_| connection.handshake == Handshake::New);
        let initializing = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let message = tokio::select! {
            message = incoming.recv() => message,
            () = shutdown.closing() => None,
            () = initializing => {
                tracing::info!("closing a connection that sent no initialize in time");
                None
            }
        };
        let Some(message) = message else { break };
        match connection.handle(message).await {
            Flow::Continue => {}
            Flow::Close(reason) => {
                tracing::info!(reason, "closing the connection after a protocol error");
                break;
            }
        }
    }
    connection.deferred.abort_all();
    if let Some(session) = connection.cx.take_session() {
        if shutdown.is_closing() {
            session.end();
        } else {
            session.detach();
        }
    }
}

impl Connection {
    async fn handle(&mut self, incoming: Incoming) -> Flow {
        let message = match incoming {
            Incoming::Message(decoded) => decoded.message,
            Incoming::Invalid(error) => return self.send_error_without_id(error.into()).await,
            Incoming::TooLarge { bytes } => {
                let limit = self.cx.config().max_message_bytes;
                let error = ApiError::MessageTooLarge { bytes, limit };
                return self.send_error_without_id(error).await;
            }
            Incoming::Write(write) => {
                let result = match self.gate(false) {
                    Ok(()) => router::binary_write(&mut self.cx, write.params).await,
                    Err(error) => Err(error),
                };
                return self.respond(write.id, result).await;
            }
        };
        match message {
            ClientMessage::Request { id, method, params } => {
                let started = Instant::now();
                let flow = match self.route(&method, params).await {
                    Reply::Now(result) => {
                        let metrics = self.cx.server().metrics();
                        metrics.answered(&method, started.elapsed(), result.is_ok());
                        self.respond(id, result).await
                    }
                    Reply::Later(future) => self.defer(id, &method, started, future).await,
                };
                self.start_forwarders();
                flow
            }
            ClientMessage::Notification { method, .. } if method == Initialized::NAME => {
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

    /// The handshake gate (SPEC 1.3), then the router. Handshake errors
    /// come before any other: an unknown method before `initialize` is
    /// told to initialize first.
    async fn route(&mut self, method: &str, params: Option<Value>) -> Reply<Value> {
        let initialize = method == Initialize::NAME;
        if let Err(error) = self.gate(initialize) {
            return Reply::Now(Err(error));
        }
        let reply = router::route(&mut self.cx, method, params).await;
        if initialize && let Reply::Now(Ok(_)) = reply {
            self.handshake = Handshake::Initializing;
        }
        reply
    }

    /// Whether a request may go to the router now (SPEC 1.3).
    fn gate(&self, initialize: bool) -> Result<(), ApiError> {
        match (self.handshake, initialize) {
            (Handshake::New, true) | (Handshake::Ready, false) => Ok(()),
            (_, true) => Err(ApiError::AlreadyInitialized),
            (Handshake::New, false) => Err(ApiError::NotInitialized),
            (Handshake::Initializing, false) => Err(ApiError::NotInitializedYet),
        }
    }

    /// Now that the last response is queued: attaches a session that
    /// request resumed, and starts the forwarders of processes it started
    /// (a client learns a process's id before it sees output for it).
    fn start_forwarders(&mut self) {
        if let Some(session) = self.cx.take_pending_attach() {
            session.attach(self.cx.out().clone());
        }
        for (entry, events) in self.cx.take_pending_starts() {
            let Ok(session) = self.cx.session() else {
                // Unreachable: processes start only after `initialize`.
                continue;
            };
            let target = if entry.detachable() {
                Target::Session
            } else {
                Target::Connection(self.cx.out().clone())
            };
            tokio::spawn(crate::forwarder::run(
                session.clone(),
                entry,
                target,
                events,
            ));
        }
    }

    async fn respond(&mut self, id: RequestId, result: Result<Value, ApiError>) -> Flow {
        self.send(ServerMessage::Response {
            id: Some(id),
            result: result.map_err(RpcError::from),
        })
        .await
    }

    async fn defer(
        &mut self,
        id: RequestId,
        method: &str,
        started: Instant,
        future: Deferred<Value>,
    ) -> Flow {
        let server = self.cx.server().clone();
        while self.deferred.try_join_next().is_some() {}
        if self.deferred.len() >= MAX_DEFERRED {
            let error = ApiError::TooManyWaits {
                limit: MAX_DEFERRED,
            };
            server.metrics().answered(method, started.elapsed(), false);
            return self.respond(id, Err(error)).await;
        }
        let out = self.cx.out().clone();
        let method = method.to_owned();
        self.deferred.spawn(async move {
            let result = future.await.map_err(RpcError::from);
            let metrics = server.metrics();
            metrics.answered(&method, started.elapsed(), result.is_ok());
            let _ = out
                .send(ServerMessage::Response {
                    id: Some(id),
                    result,
                })
                .await;
        });
        Flow::Continue
    }

    async fn send_error_without_id(&self, error: ApiError) -> Flow {
        self.send(ServerMessage::error_without_id(error.into()))
            .await
    }

    async fn send(&self, message: ServerMessage) -> Flow {
        match self.cx.out().send(message).await {
            Ok(()) => Flow::Continue,
            // The transport writer is gone: nobody can read our answers.
            Err(_) => Flow::Close("the transport closed"),
        }
    }
}
