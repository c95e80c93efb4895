//! The in-memory test client: typed requests into the connection handler
//! through its channels ([`connect_in_process`]), typed messages back. No
//! transport, no serialization of the envelope, no binary: the handler
//! tier of the tests.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use exec_server_protocol::methods::{self, Method};
use exec_server_protocol::process::{self as api, StartParams};
use exec_server_protocol::v0::InitializeParams;
use exec_server_protocol::wire::DecodedClientMessage;
use exec_server_protocol::{ClientMessage, RequestId, RpcError, ServerMessage, ServerNotification};
use exec_server_service::{Incoming, Server, ServerConfig, connect_in_process};
use serde_json::Value;
use tokio::sync::mpsc;

/// How long any one message may take to arrive before a test fails.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(15);

/// One in-memory connection.
pub struct Conn {
    pub tx: mpsc::Sender<Incoming>,
    pub rx: mpsc::Receiver<ServerMessage>,
    next_id: i64,
    /// Responses that arrived while waiting for another one (deferred
    /// answers may overtake).
    responses: HashMap<RequestId, Result<Value, RpcError>>,
    /// Notifications that arrived while waiting for a response.
    notifications: VecDeque<ServerNotification>,
}

impl Conn {
    /// A connection that has not sent anything yet.
    pub fn open(server: &Server) -> Conn {
        let (tx, rx) = connect_in_process(server);
        Conn {
            tx,
            rx,
            next_id: 100,
            responses: HashMap::new(),
            notifications: VecDeque::new(),
        }
    }

    /// A connection to a new server with `config`, past the handshake.
    pub async fn ready(config: ServerConfig) -> Conn {
        Conn::ready_on(&Server::new(config)).await
    }

    /// A connection to `server`, past the handshake.
    pub async fn ready_on(server: &Server) -> Conn {
        let mut conn = Conn::open(server);
        conn.initialize(InitializeParams {
            client_name: "memory".into(),
            resume_session_id: None,
            ..Default::default()
        })
        .await
        .expect("initialize");
        conn.initialized().await;
        conn
    }

    pub async fn initialize(
        &mut self,
        params: InitializeParams,
    ) -> Result<exec_server_protocol::v0::InitializeResponse, RpcError> {
        self.call::<methods::Initialize>(params).await
    }

    pub async fn initialized(&mut self) {
        self.send(ClientMessage::Notification {
            method: <methods::Initialized as exec_server_protocol::Notification>::NAME.into(),
            params: None,
        })
        .await;
    }

    pub async fn send(&self, message: ClientMessage) {
        let message = Incoming::Message(DecodedClientMessage {
            message,
            jsonrpc: false,
        });
        self.tx.send(message).await.expect("the connection is open");
    }

    /// Sends a typed request without waiting for its answer.
    pub async fn send_call<M: Method>(&mut self, params: M::Params) -> RequestId {
        self.next_id += 1;
        let id = RequestId::from(self.next_id);
        let request = methods::request::<M>(id.clone(), &params).expect("params encode");
        self.send(request).await;
        id
    }

    /// A typed call: `M::Params` in, `M::Result` (or the error) out.
    pub async fn call<M: Method>(&mut self, params: M::Params) -> Result<M::Result, RpcError> {
        let id = self.send_call::<M>(params).await;
        self.response::<M>(id).await
    }

    /// A call that must succeed.
    pub async fn ok<M: Method>(&mut self, params: M::Params) -> M::Result {
        match self.call::<M>(params).await {
            Ok(result) => result,
            Err(error) => panic!("{} failed: {error}", M::NAME),
        }
    }

    /// A call that must fail.
    pub async fn err<M: Method>(&mut self, params: M::Params) -> RpcError {
        match self.call::<M>(params).await {
            Ok(_) => panic!("{} unexpectedly succeeded", M::NAME),
            Err(error) => error,
        }
    }

    /// The answer to request `id` of method `M`.
    pub async fn response<M: Method>(&mut self, id: RequestId) -> Result<M::Result, RpcError> {
        let result = self.raw_response(id).await?;
        Ok(methods::decode_result::<M>(result).expect("the result has the table's type"))
    }

    /// The untyped answer to request `id`.
    pub async fn raw_response(&mut self, id: RequestId) -> Result<Value, RpcError> {
        loop {
            if let Some(result) = self.responses.remove(&id) {
                return result;
            }
            match self.recv().await {
                ServerMessage::Response {
                    id: Some(got),
                    result,
                } => {
                    self.responses.insert(got, result);
                }
                ServerMessage::Response { id: None, result } => {
                    panic!("a response without id: {result:?}")
                }
                ServerMessage::Notification(n) => self.notifications.push_back(n),
            }
        }
    }

    /// The next response to arrive, whichever request it answers.
    pub async fn any_response(&mut self) -> (RequestId, Result<Value, RpcError>) {
        if let Some(id) = self.responses.keys().next().cloned() {
            let result = self.responses.remove(&id).expect("present");
            return (id, result);
        }
        loop {
            match self.recv().await {
                ServerMessage::Response {
                    id: Some(id),
                    result,
                } => return (id, result),
                ServerMessage::Response { id: None, result } => {
                    panic!("a response without id: {result:?}")
                }
                ServerMessage::Notification(n) => self.notifications.push_back(n),
            }
        }
    }

    /// The next notification, responses set aside.
    pub async fn notification(&mut self) -> ServerNotification {
        if let Some(n) = self.notifications.pop_front() {
            return n;
        }
        loop {
            match self.recv().await {
                ServerMessage::Notification(n) => return n,
                ServerMessage::Response {
                    id: Some(id),
                    result,
                } => {
                    self.responses.insert(id, result);
                }
                ServerMessage::Response { id: None, result } => {
                    panic!("a response without id: {result:?}")
                }
            }
        }
    }

    /// The next message from the server, within [`MESSAGE_TIMEOUT`].
    pub async fn recv(&mut self) -> ServerMessage {
        tokio::time::timeout(MESSAGE_TIMEOUT, self.rx.recv())
            .await
            .expect("a message in time")
            .expect("the connection is open")
    }

    /// The next notification about process `id`. Notifications about
    /// other processes stay queued, in order, for later calls.
    pub async fn next_for(&mut self, id: &str) -> ServerNotification {
        let about = |n: &ServerNotification| match n {
            ServerNotification::ProcessOutput(o) => o.process_id == id,
            ServerNotification::ProcessExited(e) => e.process_id == id,
            ServerNotification::ProcessClosed(c) => c.process_id == id,
            ServerNotification::ExecOutputDelta(d) => d.session_id == id,
            ServerNotification::ExecExited(e) => e.session_id == id,
            ServerNotification::FsChanged(_) => false,
        };
        if let Some(at) = self.notifications.iter().position(about) {
            return self.notifications.remove(at).expect("present");
        }
        loop {
            match self.recv().await {
                ServerMessage::Notification(n) if about(&n) => return n,
                ServerMessage::Notification(n) => self.notifications.push_back(n),
                ServerMessage::Response {
                    id: Some(request),
                    result,
                } => {
                    self.responses.insert(request, result);
                }
                ServerMessage::Response { id: None, result } => {
                    panic!("a response without id: {result:?}")
                }
            }
        }
    }

    /// Everything process `id` reports until `process/closed`.
    pub async fn report(&mut self, id: &str) -> Report {
        let mut r = Report::default();
        while !r.closed {
            match self.next_for(id).await {
                ServerNotification::ProcessOutput(o) => {
                    r.seqs.push(o.seq);
                    r[o.stream].extend_from_slice(&o.chunk);
                    r.order.push("output");
                }
                ServerNotification::ProcessExited(e) => {
                    r.seqs.push(e.seq);
                    r.exited = Some(e);
                    r.order.push("exited");
                }
                ServerNotification::ProcessClosed(_) => {
                    r.closed = true;
                    r.order.push("closed");
                }
                other => panic!("not a process/* notification: {other:?}"),
            }
        }
        r
    }

    /// Terminal output of process `id` until it contains `needle`.
    pub async fn pty_until(&mut self, id: &str, needle: &str) -> String {
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains(needle) {
            if let ServerNotification::ProcessOutput(o) = self.next_for(id).await {
                seen.extend_from_slice(&o.chunk);
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    }

    /// The next output chunk of process `id`.
    pub async fn next_output(&mut self, id: &str) -> Vec<u8> {
        loop {
            if let ServerNotification::ProcessOutput(o) = self.next_for(id).await {
                return o.chunk.to_vec();
            }
        }
    }

    /// Waits for the `process/exited` notification of `id`.
    pub async fn exited(&mut self, id: &str) -> api::ExitedNotification {
        loop {
            if let ServerNotification::ProcessExited(e) = self.next_for(id).await {
                return e;
            }
        }
    }
}

/// Everything one process reported, in order.
#[derive(Debug, Default)]
pub struct Report {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub pty: Vec<u8>,
    pub seqs: Vec<u64>,
    pub exited: Option<api::ExitedNotification>,
    pub closed: bool,
    /// Order of notification kinds ("output", "exited", "closed").
    pub order: Vec<&'static str>,
}

exec_server_protocol::index_by_stream!(Report => Vec<u8>);

/// `process/start` params running `script` with `/bin/sh`.
pub fn start(script: &str) -> StartParams {
    StartParams {
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        cwd: "/".into(),
        env: [("PATH".to_string(), "/usr/bin:/bin".to_string())].into(),
        ..StartParams::default()
    }
}

/// `start(script)` with a client-chosen id.
pub fn start_as(id: &str, script: &str) -> StartParams {
    StartParams {
        process_id: Some(id.into()),
        ..start(script)
    }
}

pub fn id(process_id: &str) -> api::ProcessIdParams {
    api::ProcessIdParams {
        process_id: process_id.into(),
    }
}

pub fn wait(process_id: &str, timeout_ms: u64) -> api::WaitParams {
    api::WaitParams {
        process_id: process_id.into(),
        timeout_ms: Some(timeout_ms),
        ..api::WaitParams::default()
    }
}

pub fn write(process_id: &str, bytes: &[u8]) -> api::WriteParams {
    api::WriteParams {
        process_id: process_id.into(),
        chunk: bytes.to_vec().into(),
        write_id: None,
    }
}

/// The JSON-RPC error with this code and message.
pub fn rpc_error(code: i64, message: &str) -> RpcError {
    RpcError::new(code, message)
}

/// Dead or a zombie (orphans may stay zombies a while before init reaps
/// them).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            state == Some("Z") || state == Some("X")
        }
    }
}

/// Waits up to `limit` for `pid` to be gone.
pub async fn wait_gone(pid: i32, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if process_gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    process_gone(pid)
}

/// Live (not zombie) members of process group `pgid`.
pub fn live_group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // Fields after the command: state, ppid, pgrp, ...
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            fields.len() > 2 && fields[2] == pgid.to_string() && !matches!(fields[0], "Z" | "X")
        })
        .collect()
}
