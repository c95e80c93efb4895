//! [`ExecServerClient`]: requests, responses and notification routing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use exec_server_protocol::v0::{
    ExecParams, ExecResponse, InitializeParams, InitializeResponse, TerminateParams,
    TerminateResponse, WriteParams, WriteResponse, method,
};
use exec_server_protocol::wire::DecodedServerMessage;
use exec_server_protocol::{ClientMessage, RequestId, RpcError, ServerMessage, ServerNotification};
use exec_server_service::{Server, ServerConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use crate::session::{ExecEvent, ExecSession};
use crate::transport::{self, Inbound, Outbound};

/// Errors seen by client callers.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a JSON-RPC error.
    #[error("server error: {0}")]
    Rpc(#[from] RpcError),
    /// The connection is closed (or closed while waiting).
    #[error("the connection to the exec-server is closed")]
    Closed,
    /// Connecting or the handshake failed.
    #[error("{0}")]
    Connect(String),
    /// A response did not have the expected shape.
    #[error("unexpected response from the server: {0}")]
    Protocol(String),
}

/// Options for every way of connecting.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Sent as `clientName` in `initialize`.
    pub client_name: String,
    /// How long to wait for the `initialize` response.
    pub initialize_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            client_name: format!("exec-server-client/{}", env!("CARGO_PKG_VERSION")),
            initialize_timeout: Duration::from_secs(10),
        }
    }
}

/// Arguments of [`ExecServerClient::connect_websocket`].
#[derive(Clone, Debug)]
pub struct WebSocketConnectArgs {
    /// `ws://IP:PORT` (or a host name) of the server.
    pub url: String,
    /// Sent as `Authorization: Bearer TOKEN` on the upgrade request.
    pub bearer_token: Option<String>,
    pub connect_timeout: Duration,
    pub options: ClientOptions,
}

impl WebSocketConnectArgs {
    pub fn new(url: impl Into<String>) -> Self {
        WebSocketConnectArgs {
            url: url.into(),
            bearer_token: None,
            connect_timeout: Duration::from_secs(10),
            options: ClientOptions::default(),
        }
    }
}

/// A notification that no live [`ExecSession`] claimed.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    Notification(ServerNotification),
    /// A notification this client version does not know.
    Unknown {
        method: String,
        params: Value,
    },
}

/// A connected, initialized client. Cheap to clone; the connection closes
/// when the last clone and every session are dropped.
#[derive(Clone)]
pub struct ExecServerClient {
    inner: Arc<Inner>,
}

struct Inner {
    outbound: Outbound,
    next_id: AtomicI64,
    routes: Arc<Mutex<Routes>>,
    initialize: Mutex<Option<InitializeResponse>>,
}

/// What the dispatcher needs to route messages.
#[derive(Default)]
struct Routes {
    pending: HashMap<RequestId, Pending>,
    sessions: HashMap<String, mpsc::Sender<ExecEvent>>,
    unclaimed: Option<mpsc::Sender<ClientEvent>>,
    unclaimed_rx: Option<mpsc::Receiver<ClientEvent>>,
    closed: bool,
}

struct Pending {
    reply: oneshot::Sender<Result<Value, RpcError>>,
    /// For `command/exec`: where the new session's events go. Registered by
    /// the dispatcher itself when the response arrives, before it reads the
    /// next message, so no output can arrive before its route exists.
    session: Option<mpsc::Sender<ExecEvent>>,
}

/// Events buffered per session before the dispatcher waits for the reader.
const SESSION_CHANNEL_CAPACITY: usize = 256;
const UNCLAIMED_CHANNEL_CAPACITY: usize = 256;

impl ExecServerClient {
    /// Connects over a byte stream pair carrying one JSON message per line,
    /// e.g. the stdin and stdout of an `exec-server` child.
    pub async fn connect_stdio<W, R>(
        writer: W,
        reader: R,
        options: ClientOptions,
    ) -> Result<Self, ClientError>
    where
        W: AsyncWrite + Unpin + Send + 'static,
        R: AsyncRead + Unpin + Send + 'static,
    {
        let (outbound, inbound) = transport::lines(writer, reader);
        Self::start(outbound, inbound, options).await
    }

    /// Connects to a websocket listener and performs the handshake.
    pub async fn connect_websocket(args: WebSocketConnectArgs) -> Result<Self, ClientError> {
        let (outbound, inbound) = transport::websocket(
            &args.url,
            args.bearer_token.as_deref(),
            args.connect_timeout,
        )
        .await?;
        Self::start(outbound, inbound, args.options).await
    }

    /// Starts a server inside this process (default configuration) and
    /// connects to it without any serialization.
    pub async fn connect_in_process(options: ClientOptions) -> Result<Self, ClientError> {
        Self::connect_to_server(&Server::new(ServerConfig::default()), options).await
    }

    /// Connects to an in-process [`Server`], e.g. one shared by several
    /// clients or configured with non-default limits.
    pub async fn connect_to_server(
        server: &Server,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let (incoming, outgoing) = exec_server_service::connect_in_process(server);
        Self::start(
            Outbound::InProcess(incoming),
            Inbound::InProcess(outgoing),
            options,
        )
        .await
    }

    async fn start(
        outbound: Outbound,
        inbound: Inbound,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let (unclaimed_tx, unclaimed_rx) = mpsc::channel(UNCLAIMED_CHANNEL_CAPACITY);
        let routes = Arc::new(Mutex::new(Routes {
            unclaimed: Some(unclaimed_tx),
            unclaimed_rx: Some(unclaimed_rx),
            ..Routes::default()
        }));
        tokio::spawn(dispatch(inbound, routes.clone()));
        let client = ExecServerClient {
            inner: Arc::new(Inner {
                outbound,
                next_id: AtomicI64::new(1),
                routes,
                initialize: Mutex::new(None),
            }),
        };
        let params = InitializeParams {
            client_name: options.client_name,
            resume_session_id: None,
        };
        let response: InitializeResponse = tokio::time::timeout(
            options.initialize_timeout,
            client.request(method::INITIALIZE, &params),
        )
        .await
        .map_err(|_| {
            ClientError::Connect("timed out waiting for the initialize response".into())
        })??;
        client
            .inner
            .outbound
            .send(ClientMessage::Notification {
                method: method::INITIALIZED.into(),
                params: None,
            })
            .await?;
        *client.inner.initialize.lock().expect("lock poisoned") = Some(response);
        Ok(client)
    }

    /// The server's `initialize` result.
    pub fn server_info(&self) -> Option<InitializeResponse> {
        self.inner.initialize.lock().expect("lock poisoned").clone()
    }

    /// Notifications that no live session claimed. Can be taken once; until
    /// it is taken (and after it is dropped) such notifications are dropped.
    pub fn take_events(&self) -> Option<mpsc::Receiver<ClientEvent>> {
        self.inner
            .routes
            .lock()
            .expect("lock poisoned")
            .unclaimed_rx
            .take()
    }

    /// Sends any request and decodes its result.
    pub async fn request<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        let value = self.raw_request(method, params, None).await?;
        serde_json::from_value(value).map_err(|e| ClientError::Protocol(format!("{method}: {e}")))
    }

    async fn raw_request<P: Serialize>(
        &self,
        method: &str,
        params: &P,
        session: Option<mpsc::Sender<ExecEvent>>,
    ) -> Result<Value, ClientError> {
        let params =
            serde_json::to_value(params).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let id = RequestId::from(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let (reply, response) = oneshot::channel();
        {
            let mut routes = self.inner.routes.lock().expect("lock poisoned");
            if routes.closed {
                return Err(ClientError::Closed);
            }
            routes
                .pending
                .insert(id.clone(), Pending { reply, session });
        }
        let sent = self
            .inner
            .outbound
            .send(ClientMessage::Request {
                id: id.clone(),
                method: method.to_string(),
                params: Some(params),
            })
            .await;
        if let Err(error) = sent {
            self.inner
                .routes
                .lock()
                .expect("lock poisoned")
                .pending
                .remove(&id);
            return Err(error);
        }
        Ok(response.await.map_err(|_| ClientError::Closed)??)
    }

    /// `command/exec`: starts a process and returns its session, whose
    /// output and exit arrive in order on the session.
    pub async fn exec(&self, params: ExecParams) -> Result<ExecSession, ClientError> {
        let (events_tx, events) = mpsc::channel(SESSION_CHANNEL_CAPACITY);
        let value = self
            .raw_request(method::EXEC, &params, Some(events_tx))
            .await?;
        let response: ExecResponse = serde_json::from_value(value)
            .map_err(|e| ClientError::Protocol(format!("command/exec: {e}")))?;
        Ok(ExecSession::new(self.clone(), response.session_id, events))
    }

    /// `command/exec/write`: sends bytes to a session's stdin (PTY sessions).
    pub async fn write(
        &self,
        session_id: &str,
        chunk: impl Into<Bytes>,
    ) -> Result<WriteResponse, ClientError> {
        let params = WriteParams {
            session_id: session_id.to_string(),
            chunk: chunk.into(),
        };
        self.request(method::EXEC_WRITE, &params).await
    }

    /// `command/exec/terminate`: kills a session's process group.
    pub async fn terminate(&self, session_id: &str) -> Result<TerminateResponse, ClientError> {
        let params = TerminateParams {
            session_id: session_id.to_string(),
        };
        self.request(method::EXEC_TERMINATE, &params).await
    }
}

/// Reads server messages until the connection ends; then fails every
/// pending request and ends every session stream.
async fn dispatch(mut inbound: Inbound, routes: Arc<Mutex<Routes>>) {
    while let Some(message) = inbound.recv().await {
        match message {
            DecodedServerMessage::Known(ServerMessage::Response { id, result }) => {
                let mut routes = routes.lock().expect("lock poisoned");
                let Some(pending) = id.and_then(|id| routes.pending.remove(&id)) else {
                    tracing::warn!(?result, "response to no pending request");
                    continue;
                };
                if let (Some(session), Ok(value)) = (pending.session, &result)
                    && let Some(Value::String(session_id)) = value.get("sessionId")
                {
                    routes.sessions.insert(session_id.clone(), session);
                }
                let _ = pending.reply.send(result);
            }
            DecodedServerMessage::Known(ServerMessage::Notification(notification)) => {
                route_notification(&routes, notification).await;
            }
            DecodedServerMessage::UnknownNotification { method, params } => {
                send_unclaimed(&routes, ClientEvent::Unknown { method, params }).await;
            }
        }
    }
    let mut routes = routes.lock().expect("lock poisoned");
    routes.closed = true;
    routes.pending.clear();
    routes.sessions.clear();
    routes.unclaimed = None;
}

async fn route_notification(routes: &Mutex<Routes>, notification: ServerNotification) {
    let (session_id, event) = match &notification {
        ServerNotification::ExecOutputDelta(delta) => (
            &delta.session_id,
            ExecEvent::Output {
                stream: delta.stream,
                chunk: delta.chunk.clone(),
            },
        ),
        ServerNotification::ExecExited(exited) => (
            &exited.session_id,
            ExecEvent::Exited {
                exit_code: exited.exit_code,
            },
        ),
        _ => return send_unclaimed(routes, ClientEvent::Notification(notification)).await,
    };
    let exited = matches!(event, ExecEvent::Exited { .. });
    let sender = {
        let mut routes = routes.lock().expect("lock poisoned");
        if exited {
            routes.sessions.remove(session_id)
        } else {
            routes.sessions.get(session_id).cloned()
        }
    };
    if let Some(sender) = sender {
        // Waiting here is the backpressure: never drop a session's output.
        if sender.send(event).await.is_ok() {
            return;
        }
        // The session handle was dropped: stop routing to it.
        routes
            .lock()
            .expect("lock poisoned")
            .sessions
            .remove(session_id);
    }
    send_unclaimed(routes, ClientEvent::Notification(notification)).await;
}

async fn send_unclaimed(routes: &Mutex<Routes>, event: ClientEvent) {
    let sender = routes.lock().expect("lock poisoned").unclaimed.clone();
    let Some(sender) = sender else { return };
    // Only a taken receiver is worth waiting for; an untaken one would
    // fill up and stall the connection.
    let taken = routes.lock().expect("lock poisoned").unclaimed_rx.is_none();
    if taken && sender.send(event).await.is_err() {
        routes.lock().expect("lock poisoned").unclaimed = None;
    }
}
