//! [`ExecServerClient`]: connecting, the handshake, and one typed call per
//! protocol method.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use exec_server_protocol::process::{
    self, EmptyResponse, ListParams, ListResponse, ProcessIdParams, ReadParams, ReadResponse,
    ResizeParams, SignalParams, SignalResponse, SnapshotResponse, StartParams, WaitParams,
    WaitResponse,
};
use exec_server_protocol::v0::{
    ClientCapabilities, ExecParams, ExecResponse, InitializeParams, InitializeResponse,
    TerminateParams, TerminateResponse, WriteParams, WriteResponse, method,
};
use exec_server_protocol::{ClientMessage, RequestId, RpcError, ServerNotification};
use exec_server_service::{Server, ServerConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use crate::dispatch::{self, Pending, PendingRoute, Routes};
use crate::process::RemoteProcess;
use crate::session::ExecSession;
use crate::transport::{self, Inbound, Outbound};

/// Errors seen by client callers.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a JSON-RPC error.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The connection is closed (or closed while waiting).
    #[error("the connection to the exec-server is closed")]
    Closed,
    /// The connection dropped while this request was in flight. The client
    /// may have resumed the session since, but it never sends a request
    /// twice on its own: the caller decides whether a retry is safe (writes
    /// with a `writeId` are).
    #[error("the connection dropped while the request was in flight")]
    ConnectionLost,
    /// Connecting or the handshake failed.
    #[error("{0}")]
    Connect(String),
    /// A response did not have the expected shape.
    #[error("unexpected response from the server: {0}")]
    Protocol(String),
    /// The connection dropped and the server that owns this client's
    /// session could not be reached again within the [`ReconnectPolicy`]
    /// (host down, connection refused, the balancer answered 502/503, or
    /// routed the resume to another server). The session's processes are
    /// out of reach; every call fails with this error from then on.
    #[error("exec-server `{server_id}`, which owns this session, is unavailable: {reason}")]
    ServerUnavailable {
        /// The owner's `serverId` (its URL when the server sent none).
        server_id: String,
        /// What the last attempt ran into.
        reason: String,
    },
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

/// How a websocket client reconnects after the connection drops. It gives
/// up after `attempts` or `give_up_after`, whichever comes first, with
/// [`ClientError::ServerUnavailable`] naming the server.
#[derive(Clone, Debug)]
pub struct ReconnectPolicy {
    /// Attempts before giving up.
    pub attempts: u32,
    /// Pause before each attempt.
    pub delay: Duration,
    /// Longest time from the drop to giving up, whatever the attempts
    /// (each attempt's connect timeout is cut to fit).
    pub give_up_after: Duration,
    /// Where to reconnect.
    pub target: ResumeTarget,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            attempts: 10,
            delay: Duration::from_millis(200),
            give_up_after: Duration::from_secs(10),
            target: ResumeTarget::default(),
        }
    }
}

/// Where a reconnecting client resumes its session. A session lives on one
/// server (the `serverId` of the initialize result); through a load
/// balancer the resume must be routed there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ResumeTarget {
    /// The connect URL with the owner's server id appended to its path:
    /// `wss://balancer/exec/` resumes at `wss://balancer/exec/SERVER_ID/`
    /// (the query, e.g. `?token=`, is kept). Works through a balancer that
    /// routes by server id and on a lone server, which accepts its own id
    /// in the path. Falls back to the connect URL when the server sent no
    /// `serverId`.
    #[default]
    OwnerPath,
    /// The connect URL itself (a lone server, or sticky sessions).
    SameUrl,
    /// A URL in which `{serverId}` is replaced by the owner's server id,
    /// e.g. `wss://{serverId}.exec.example.com/`.
    Template(String),
}

/// Arguments of [`ExecServerClient::connect_websocket`].
#[derive(Clone, Debug)]
pub struct WebSocketConnectArgs {
    /// `ws://IP:PORT` (or a host name) of the server.
    pub url: String,
    /// Sent as `Authorization: Bearer TOKEN` on the upgrade request.
    pub bearer_token: Option<String>,
    /// How long to wait for the TCP and websocket handshakes.
    pub connect_timeout: Duration,
    /// Client name and initialize timeout.
    pub options: ClientOptions,
    /// Reconnect and resume the session when the connection drops: the
    /// same process ids come back, each process handle replays what it
    /// missed from its last `seq` (reporting gaps), and live output goes on.
    /// `None`: a dropped connection closes the client.
    pub reconnect: Option<ReconnectPolicy>,
    /// For `wss://`: extra trusted CA certificates (PEM), on top of the
    /// system's roots, e.g. for a self-signed server certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// Send a websocket ping this often, so that proxies which close idle
    /// connections (HAProxy's `timeout tunnel`, cloud balancers' idle
    /// timeouts) keep a quiet session open. `None`: no pings.
    pub keepalive: Option<Duration>,
    /// Ask for binary output frames (`schema/binary-frames.md`): output
    /// arrives as raw bytes behind a small header instead of base64 in
    /// JSON. A server that does not offer them answers in JSON as before.
    pub binary_frames: bool,
}

/// What a websocket client asks for in `initialize`.
pub(crate) fn capabilities(args: &WebSocketConnectArgs) -> Option<ClientCapabilities> {
    args.binary_frames.then_some(ClientCapabilities {
        binary_frames: true,
    })
}

impl WebSocketConnectArgs {
    /// Arguments for `url` with default timeouts, no token and no reconnect.
    pub fn new(url: impl Into<String>) -> Self {
        WebSocketConnectArgs {
            url: url.into(),
            bearer_token: None,
            connect_timeout: Duration::from_secs(10),
            options: ClientOptions::default(),
            reconnect: None,
            ca_pem: None,
            keepalive: None,
            binary_frames: true,
        }
    }
}

/// A notification that no live handle claimed.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    /// A known notification for a session or process without a live handle.
    Notification(ServerNotification),
    /// A notification this client version does not know.
    Unknown {
        /// The notification's method name.
        method: String,
        /// Its params, as received.
        params: Value,
    },
}

/// A connected, initialized client. Cheap to clone.
///
/// Every protocol method has a typed call here. Processes started with
/// [`exec`](Self::exec) (v0) or [`start`](Self::start) (process API) come
/// back as handles that receive their own output, in order, without loss.
#[derive(Clone)]
pub struct ExecServerClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub outbound: Mutex<Outbound>,
    next_id: AtomicI64,
    pub routes: Arc<Mutex<Routes>>,
    pub initialize: Mutex<Option<InitializeResponse>>,
}

impl Inner {
    pub(crate) fn next_id(&self) -> RequestId {
        RequestId::from(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn outbound(&self) -> Outbound {
        self.outbound.lock().expect("lock poisoned").clone()
    }
}

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
        Self::start_connection(outbound, inbound, options, None, None).await
    }

    /// Connects to a websocket listener and performs the handshake.
    pub async fn connect_websocket(args: WebSocketConnectArgs) -> Result<Self, ClientError> {
        let (outbound, inbound) = transport::websocket(&args).await?;
        let options = args.options.clone();
        let capabilities = capabilities(&args);
        let reconnect = args.reconnect.is_some().then_some(args);
        Self::start_connection(outbound, inbound, options, reconnect, capabilities).await
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
        Self::start_connection(
            Outbound::InProcess(incoming),
            Inbound::InProcess(outgoing),
            options,
            None,
            None,
        )
        .await
    }

    async fn start_connection(
        outbound: Outbound,
        inbound: Inbound,
        options: ClientOptions,
        reconnect: Option<WebSocketConnectArgs>,
        capabilities: Option<ClientCapabilities>,
    ) -> Result<Self, ClientError> {
        let routes = Arc::new(Mutex::new(Routes::new()));
        let inner = Arc::new(Inner {
            outbound: Mutex::new(outbound),
            next_id: AtomicI64::new(1),
            routes: routes.clone(),
            initialize: Mutex::new(None),
        });
        let client = ExecServerClient { inner };
        tokio::spawn(dispatch::run(
            inbound,
            Arc::downgrade(&client.inner),
            reconnect,
        ));
        let params = InitializeParams {
            client_name: options.client_name,
            resume_session_id: None,
            capabilities,
        };
        let response: InitializeResponse = tokio::time::timeout(
            options.initialize_timeout,
            client.request(method::INITIALIZE, &params),
        )
        .await
        .map_err(|_| {
            ClientError::Connect("timed out waiting for the initialize response".into())
        })??;
        client.notify_initialized().await?;
        *client.inner.initialize.lock().expect("lock poisoned") = Some(response);
        Ok(client)
    }

    pub(crate) async fn notify_initialized(&self) -> Result<(), ClientError> {
        self.inner
            .outbound()
            .send(ClientMessage::Notification {
                method: method::INITIALIZED.into(),
                params: None,
            })
            .await
    }

    /// The server's `initialize` result (the latest one after a resume).
    pub fn server_info(&self) -> Option<InitializeResponse> {
        self.inner.initialize.lock().expect("lock poisoned").clone()
    }

    /// This connection's session id, a secret that resumes it.
    pub fn session_id(&self) -> Option<String> {
        self.server_info().and_then(|info| info.session_id)
    }

    /// Resolves when the client is closed for good, with the reason: the
    /// one error every call fails with from then on (e.g.
    /// [`ClientError::ServerUnavailable`] when a reconnecting client gave
    /// up on its server, [`ClientError::Closed`] after a plain close).
    pub async fn closed(&self) -> ClientError {
        let mut ended = self
            .inner
            .routes
            .lock()
            .expect("lock poisoned")
            .subscribe_ended();
        match ended.wait_for(Option::is_some).await {
            Ok(error) => error.clone().unwrap_or(ClientError::Closed),
            Err(_) => ClientError::Closed,
        }
    }

    /// Notifications that no live handle claimed. Can be taken once; until
    /// it is taken (and after it is dropped) such notifications are dropped.
    pub fn take_events(&self) -> Option<mpsc::Receiver<ClientEvent>> {
        self.inner
            .routes
            .lock()
            .expect("lock poisoned")
            .take_unclaimed()
    }

    /// Sends any request and decodes its result.
    pub async fn request<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        let value = self.raw_request(method, params, PendingRoute::None).await?;
        decode(method, value)
    }

    pub(crate) async fn raw_request<P: Serialize>(
        &self,
        method: &str,
        params: &P,
        route: PendingRoute,
    ) -> Result<Value, ClientError> {
        let params =
            serde_json::to_value(params).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let id = self.inner.next_id();
        let (reply, response) = oneshot::channel();
        self.inner
            .routes
            .lock()
            .expect("lock poisoned")
            .add_pending(id.clone(), Pending { reply, route })?;
        let sent = self
            .inner
            .outbound()
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
                .remove_pending(&id);
            return Err(error);
        }
        response.await.map_err(|_| ClientError::Closed)?
    }

    // ---- protocol v0 -------------------------------------------------

    /// `command/exec`: starts a process and returns its session, whose
    /// output and exit arrive in order on the session.
    pub async fn exec(&self, params: ExecParams) -> Result<ExecSession, ClientError> {
        let (events_tx, events) = mpsc::channel(dispatch::HANDLE_CHANNEL_CAPACITY);
        let value = self
            .raw_request(method::EXEC, &params, PendingRoute::Exec(events_tx))
            .await?;
        let response: ExecResponse = decode(method::EXEC, value)?;
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

    // ---- process API -------------------------------------------------

    /// `process/start`: starts a process and returns its handle, which
    /// receives the process's output, exit and close in order.
    pub async fn start(&self, params: StartParams) -> Result<RemoteProcess, ClientError> {
        let (events_tx, events) = mpsc::channel(dispatch::HANDLE_CHANNEL_CAPACITY);
        let value = self
            .raw_request(
                process::method::START,
                &params,
                PendingRoute::Process(events_tx),
            )
            .await?;
        let response: process::StartResponse = decode(process::method::START, value)?;
        Ok(RemoteProcess::new(self.clone(), response, events))
    }

    /// `process/write`: queues bytes for stdin. With a `write_id`, a retry of
    /// an accepted write is acknowledged without writing twice.
    pub async fn process_write(
        &self,
        process_id: &str,
        chunk: impl Into<Bytes>,
        write_id: Option<String>,
    ) -> Result<process::WriteResponse, ClientError> {
        let params = process::WriteParams {
            process_id: process_id.to_string(),
            chunk: chunk.into(),
            write_id,
        };
        self.request(process::method::WRITE, &params).await
    }

    /// `process/closeStdin`: EOF on a pipe, the EOF character on a terminal.
    pub async fn close_stdin(&self, process_id: &str) -> Result<EmptyResponse, ClientError> {
        self.request(process::method::CLOSE_STDIN, &id_params(process_id))
            .await
    }

    /// `process/resize`.
    pub async fn resize(
        &self,
        process_id: &str,
        rows: u16,
        cols: u16,
    ) -> Result<EmptyResponse, ClientError> {
        let params = ResizeParams {
            process_id: process_id.to_string(),
            rows,
            cols,
        };
        self.request(process::method::RESIZE, &params).await
    }

    /// `process/signal`: `signal` is a name such as `"SIGINT"`.
    pub async fn signal(
        &self,
        process_id: &str,
        signal: &str,
    ) -> Result<SignalResponse, ClientError> {
        let params = SignalParams {
            process_id: process_id.to_string(),
            signal: signal.to_string(),
        };
        self.request(process::method::SIGNAL, &params).await
    }

    /// `process/terminate`: SIGKILL now, or SIGTERM then SIGKILL after `grace`.
    pub async fn terminate_process(
        &self,
        process_id: &str,
        grace: Option<Duration>,
    ) -> Result<process::TerminateResponse, ClientError> {
        let params = process::TerminateParams {
            process_id: process_id.to_string(),
            grace_ms: grace.map(|g| g.as_millis() as u64),
        };
        self.request(process::method::TERMINATE, &params).await
    }

    /// `process/wait`: exit, a match, quiet, or timeout, whichever is first.
    pub async fn wait(&self, params: WaitParams) -> Result<WaitResponse, ClientError> {
        self.request(process::method::WAIT, &params).await
    }

    /// `process/read`: retained output after a seq, optionally long-polling.
    pub async fn read(&self, params: ReadParams) -> Result<ReadResponse, ClientError> {
        self.request(process::method::READ, &params).await
    }

    /// `process/snapshot`.
    pub async fn snapshot(&self, process_id: &str) -> Result<SnapshotResponse, ClientError> {
        self.request(process::method::SNAPSHOT, &id_params(process_id))
            .await
    }

    /// `process/list`, optionally filtered by labels.
    pub async fn list(&self, params: ListParams) -> Result<ListResponse, ClientError> {
        self.request(process::method::LIST, &params).await
    }

    /// `process/release`: forgets an exited process and its output.
    pub async fn release(&self, process_id: &str) -> Result<EmptyResponse, ClientError> {
        self.request(process::method::RELEASE, &id_params(process_id))
            .await
    }
}

fn id_params(process_id: &str) -> ProcessIdParams {
    ProcessIdParams {
        process_id: process_id.to_string(),
    }
}

pub(crate) fn decode<R: DeserializeOwned>(method: &str, value: Value) -> Result<R, ClientError> {
    serde_json::from_value(value).map_err(|e| ClientError::Protocol(format!("{method}: {e}")))
}
