//! [`ExecServerClient`], the public API: connecting, and one typed call
//! per protocol method, each a [`Method`] of the protocol's method table
//! (`exec_server_protocol::methods`) sent through the dispatcher's command
//! channel; [`ExecServerClient::call`] reaches any method of the table.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use exec_server_protocol::process::{
    self, EmptyResponse, ListParams, ListResponse, ProcessIdParams, ProcessInfo, ReadParams,
    ReadResponse, ResizeParams, SignalParams, SignalResponse, SnapshotResponse, StartParams,
    WaitParams, WaitResponse,
};
use exec_server_protocol::v0::{
    ExecParams, InitializeResponse, TerminateParams, TerminateResponse, WriteParams, WriteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};

use crate::dispatch::{self, Command, Dispatcher, HANDLE_CHANNEL_CAPACITY, NewRoute, Shared};
use crate::event::ClientEvent;
use crate::process::RemoteProcess;
use crate::session::ExecSession;
use crate::transport::{self, Transport};
use crate::{ClientError, ClientOptions, WebSocketConnectArgs};
use exec_server_protocol::methods::{
    Exec, ExecTerminate, ExecWrite, Method, ProcessCloseStdin, ProcessList, ProcessRead,
    ProcessRelease, ProcessResize, ProcessSignal, ProcessSnapshot, ProcessStart, ProcessStatus,
    ProcessTerminate, ProcessWait, ProcessWrite,
};

/// A connected, initialized client. Cheap to clone.
///
/// Every protocol method has a typed call here. Processes started with
/// [`exec`](Self::exec) (v0) or [`start`](Self::start) (process API) come
/// back as handles that receive their own output, in order, without loss.
#[derive(Clone)]
pub struct ExecServerClient {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::Sender<Command>,
    info: watch::Receiver<InitializeResponse>,
    ended: watch::Receiver<Option<ClientError>>,
    /// The unclaimed-notification stream, until someone takes it.
    unclaimed: Mutex<Option<mpsc::Receiver<ClientEvent>>>,
    unclaimed_taken: Arc<std::sync::atomic::AtomicBool>,
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
        Self::open(transport::lines::connect(writer, reader), &options, None).await
    }

    /// Connects to a websocket listener and performs the handshake.
    pub async fn connect_websocket(args: WebSocketConnectArgs) -> Result<Self, ClientError> {
        let transport = transport::websocket::connect(&args).await?;
        let options = args.options.clone();
        Self::open(transport, &options, Some(args)).await
    }

    /// Starts a server inside this process (default configuration) and
    /// connects to it without any serialization. Needs the `in-process`
    /// feature, which links the whole server into the program.
    #[cfg(feature = "in-process")]
    pub async fn connect_in_process(options: ClientOptions) -> Result<Self, ClientError> {
        let server = exec_server_service::Server::new(exec_server_service::ServerConfig::default());
        Self::connect_to_server(&server, options).await
    }

    /// Connects to an in-process [`Server`](exec_server_service::Server),
    /// e.g. one shared by several clients or configured with non-default
    /// limits. Needs the `in-process` feature.
    #[cfg(feature = "in-process")]
    pub async fn connect_to_server(
        server: &exec_server_service::Server,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        Self::open(transport::in_process::connect(server), &options, None).await
    }

    /// The handshake, then the dispatcher takes the connection.
    pub(crate) async fn open(
        transport: Transport,
        options: &ClientOptions,
        reconnect: Option<WebSocketConnectArgs>,
    ) -> Result<Self, ClientError> {
        let Shared {
            commands,
            info,
            ended,
            unclaimed,
            unclaimed_taken,
        } = Dispatcher::start(transport, options, reconnect).await?;
        Ok(ExecServerClient {
            inner: Arc::new(Inner {
                commands,
                info,
                ended,
                unclaimed: Mutex::new(Some(unclaimed)),
                unclaimed_taken,
            }),
        })
    }

    /// The server's `initialize` result (the latest one after a resume).
    pub fn server_info(&self) -> Option<InitializeResponse> {
        Some(self.inner.info.borrow().clone())
    }

    /// This connection's session id, a secret that resumes it.
    pub fn session_id(&self) -> Option<String> {
        self.inner.info.borrow().session_id.clone()
    }

    /// Resolves when the client is closed for good, with the reason: the
    /// one error every call fails with from then on (e.g.
    /// [`ClientError::ServerUnavailable`] when a reconnecting client gave
    /// up on its server, [`ClientError::Closed`] after a plain close).
    pub async fn closed(&self) -> ClientError {
        let mut ended = self.inner.ended.clone();
        match ended.wait_for(Option::is_some).await {
            Ok(error) => error.clone().unwrap_or(ClientError::Closed),
            Err(_) => self.ended_error(),
        }
    }

    /// The error calls fail with once the dispatcher is gone.
    fn ended_error(&self) -> ClientError {
        self.inner
            .ended
            .borrow()
            .clone()
            .unwrap_or(ClientError::Closed)
    }

    /// Notifications that no live handle claimed. Can be taken once; until
    /// it is taken (and after it is dropped) such notifications are dropped.
    pub fn take_events(&self) -> Option<mpsc::Receiver<ClientEvent>> {
        let taken = self.inner.unclaimed.lock().expect("lock poisoned").take();
        if taken.is_some() {
            self.inner.unclaimed_taken.store(true, Ordering::Relaxed);
        }
        taken
    }

    /// Sends any request by its method name and decodes its result: the
    /// escape hatch for methods this client has no typed call for.
    pub async fn request<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        let value = self
            .send(
                method.to_string(),
                dispatch::encode(params)?,
                NewRoute::None,
            )
            .await?;
        serde_json::from_value(value).map_err(|e| ClientError::Protocol(format!("{method}: {e}")))
    }

    /// Calls method `M` of the protocol's method table
    /// (`exec_server_protocol::methods`), params and result typed by it:
    /// `client.call::<ProcessList>(params)`. Every method is reachable this
    /// way, including those without a convenience call here. A process
    /// started this way gets no handle: its notifications go to
    /// [`take_events`](Self::take_events); use [`start`](Self::start) or
    /// [`exec`](Self::exec) for a handle.
    pub async fn call<M: Method>(&self, params: M::Params) -> Result<M::Result, ClientError> {
        self.call_routed::<M>(params, NewRoute::None).await
    }

    /// Calls `M`; a successful answer sets up `route` before any later
    /// message is read.
    async fn call_routed<M: Method>(
        &self,
        params: M::Params,
        route: NewRoute,
    ) -> Result<M::Result, ClientError> {
        let value = self
            .send(M::NAME.into(), dispatch::encode(&params)?, route)
            .await?;
        dispatch::decode::<M>(value)
    }

    async fn send(
        &self,
        method: String,
        params: Value,
        route: NewRoute,
    ) -> Result<Value, ClientError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Request {
            method,
            params,
            route,
            reply,
        };
        if self.inner.commands.send(command).await.is_err() {
            return Err(self.ended_error());
        }
        answer.await.map_err(|_| self.ended_error())?
    }

    // ---- protocol v0 -------------------------------------------------

    /// `command/exec`: starts a process and returns its session, whose
    /// output and exit arrive in order on the session.
    pub async fn exec(&self, params: ExecParams) -> Result<ExecSession, ClientError> {
        let (events_tx, events) = mpsc::channel(HANDLE_CHANNEL_CAPACITY);
        let response = self
            .call_routed::<Exec>(params, NewRoute::Exec(events_tx))
            .await?;
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
        self.call::<ExecWrite>(params).await
    }

    /// `command/exec/terminate`: kills a session's process group.
    pub async fn terminate(&self, session_id: &str) -> Result<TerminateResponse, ClientError> {
        let params = TerminateParams {
            session_id: session_id.to_string(),
        };
        self.call::<ExecTerminate>(params).await
    }

    // ---- process API -------------------------------------------------

    /// `process/start`: starts a process and returns its handle, which
    /// receives the process's output, exit and close in order.
    pub async fn start(&self, params: StartParams) -> Result<RemoteProcess, ClientError> {
        let (sender, events) = mpsc::channel(HANDLE_CHANNEL_CAPACITY);
        let route = NewRoute::Process {
            sender,
            streaming: params.stream_output.unwrap_or(true),
            tty: params.tty,
        };
        let response = self.call_routed::<ProcessStart>(params, route).await?;
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
        self.call::<ProcessWrite>(params).await
    }

    /// `process/closeStdin`: EOF on a pipe, the EOF character on a terminal.
    pub async fn close_stdin(&self, process_id: &str) -> Result<EmptyResponse, ClientError> {
        self.call::<ProcessCloseStdin>(id_params(process_id)).await
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
        self.call::<ProcessResize>(params).await
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
        self.call::<ProcessSignal>(params).await
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
        self.call::<ProcessTerminate>(params).await
    }

    /// `process/wait`: exit, a match, quiet, or timeout, whichever is first.
    pub async fn wait(&self, params: WaitParams) -> Result<WaitResponse, ClientError> {
        self.call::<ProcessWait>(params).await
    }

    /// `process/read`: retained output after a seq, optionally long-polling.
    pub async fn read(&self, params: ReadParams) -> Result<ReadResponse, ClientError> {
        self.call::<ProcessRead>(params).await
    }

    /// `process/status`: one process's status, as `process/list` shows it.
    pub async fn status(&self, process_id: &str) -> Result<ProcessInfo, ClientError> {
        self.call::<ProcessStatus>(id_params(process_id)).await
    }

    /// `process/snapshot`.
    pub async fn snapshot(&self, process_id: &str) -> Result<SnapshotResponse, ClientError> {
        self.call::<ProcessSnapshot>(id_params(process_id)).await
    }

    /// `process/list`, optionally filtered by labels.
    pub async fn list(&self, params: ListParams) -> Result<ListResponse, ClientError> {
        self.call::<ProcessList>(params).await
    }

    /// `process/release`: forgets an exited process and its output.
    pub async fn release(&self, process_id: &str) -> Result<EmptyResponse, ClientError> {
        self.call::<ProcessRelease>(id_params(process_id)).await
    }
}

fn id_params(process_id: &str) -> ProcessIdParams {
    ProcessIdParams {
        process_id: process_id.to_string(),
    }
}
