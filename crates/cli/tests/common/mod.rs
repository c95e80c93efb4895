//! Helpers for black-box tests against the real `exec-server` binary:
//! raw JSON lines over its stdio, or raw frames over a websocket.

#![allow(dead_code)]

pub mod proxy;
pub mod resume;

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TIMEOUT: Duration = Duration::from_secs(20);

pub fn server_bin() -> &'static str {
    env!("CARGO_BIN_EXE_exec-server")
}

/// The Python that has the test packages (`scripts/python-requirements.txt`):
/// `EXEC_SERVER_TEST_PYTHON`, else the venv `scripts/test` makes under
/// `target/`. Panics, with the command that sets it up, when neither exists:
/// a test that needs Python packages fails rather than skips.
pub fn test_python() -> std::path::PathBuf {
    const HINT: &str = "run scripts/test (or `eval \"$(scripts/test --setup)\"` before a targeted cargo test): \
                        it makes target/test-venv with the packages of scripts/python-requirements.txt";
    if let Some(python) = std::env::var_os("EXEC_SERVER_TEST_PYTHON") {
        let python = std::path::PathBuf::from(python);
        assert!(
            python.exists(),
            "EXEC_SERVER_TEST_PYTHON={} does not exist; {HINT}",
            python.display()
        );
        return python;
    }
    let venv =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-venv/bin/python");
    assert!(
        venv.exists(),
        "the tests' Python environment is missing (EXEC_SERVER_TEST_PYTHON is unset and {} does not exist); {HINT}",
        venv.display()
    );
    venv
}

/// [`test_python`], after checking that it imports `modules`: a missing
/// package fails the test with the command that installs it.
pub fn test_python_with(modules: &[&str]) -> std::path::PathBuf {
    let python = test_python();
    let imports = std::process::Command::new(&python)
        .args(["-c", &format!("import {}", modules.join(", "))])
        .output()
        .expect("run the test Python");
    assert!(
        imports.status.success(),
        "{} cannot import {modules:?}: run scripts/test, which installs scripts/python-requirements.txt\n{}",
        python.display(),
        String::from_utf8_lossy(&imports.stderr)
    );
    python
}

/// A self-signed certificate for `names`, written with its key as
/// `cert.pem` and `key.pem` in `dir` (for `--tls-cert` / `--tls-key`).
pub struct SelfSigned {
    pub cert: rcgen::Certificate,
    pub cert_path: std::path::PathBuf,
    pub key_path: std::path::PathBuf,
}

pub fn self_signed(dir: &std::path::Path, names: &[&str]) -> SelfSigned {
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    SelfSigned {
        cert,
        cert_path,
        key_path,
    }
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(value: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().expect("base64 string"))
        .expect("valid base64")
}

/// `command/exec` params for `sh -c SCRIPT` with a small PATH.
pub fn sh(script: &str) -> Value {
    json!({
        "argv": ["/bin/sh", "-c", script],
        "cwd": "/",
        "env": {"PATH": "/usr/local/bin:/usr/bin:/bin"},
        "tty": false,
    })
}

pub fn sh_tty(script: &str) -> Value {
    let mut params = sh(script);
    params["tty"] = json!(true);
    params
}

/// A way to move raw JSON texts to and from the server.
pub trait RawTransport {
    async fn send_text(&mut self, text: String);
    /// The next message, or `None` when the server closed the connection.
    async fn recv_text(&mut self) -> Option<String>;
}

pub struct StdioTransport {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl StdioTransport {
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// Like [`StdioTransport::start`], with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(server_bin());
        command.args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        Self::from_command(command)
    }

    /// Speaks to whatever `command` starts (e.g. the server under another user).
    pub fn from_command(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start exec-server");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        StdioTransport {
            child,
            stdin,
            lines,
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Closes the server's stdin (end of the connection).
    pub fn close_input(&mut self) {
        self.stdin = None;
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("server running") as i32
    }
}

impl RawTransport for StdioTransport {
    async fn send_text(&mut self, text: String) {
        let mut line = text.into_bytes();
        line.push(b'\n');
        self.send_raw(&line).await;
    }

    async fn recv_text(&mut self) -> Option<String> {
        tokio::time::timeout(TIMEOUT, self.lines.next_line())
            .await
            .expect("timed out waiting for the server")
            .expect("reading server stdout")
    }
}

pub struct WsTransport {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsTransport {
    pub async fn connect(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connect");
        WsTransport { socket }
    }
}

impl RawTransport for WsTransport {
    async fn send_text(&mut self, text: String) {
        self.socket.send(Message::text(text)).await.unwrap();
    }

    async fn recv_text(&mut self) -> Option<String> {
        loop {
            let frame = tokio::time::timeout(TIMEOUT, self.socket.next())
                .await
                .expect("timed out waiting for the server");
            match frame {
                Some(Ok(Message::Text(text))) => return Some(text.to_string()),
                Some(Ok(Message::Binary(bytes))) => {
                    return Some(String::from_utf8(bytes.to_vec()).unwrap());
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }
}

/// A websocket server child, started on port 0.
pub struct WsServer {
    pub child: Child,
    /// `ws://IP:PORT` or `wss://IP:PORT`, from the banner.
    pub url: String,
    /// Everything the server wrote to stderr after its banner.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl WsServer {
    pub async fn start(extra: &[&str]) -> Self {
        let mut command = Command::new(server_bin());
        command.args(["--listen", "ws://127.0.0.1:0"]).args(extra);
        Self::start_command(command).await
    }

    /// Starts a server from a prepared command (arguments, environment).
    pub async fn start_command(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start exec-server");
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let banner = tokio::time::timeout(TIMEOUT, stderr.next_line())
            .await
            .expect("banner in time")
            .unwrap()
            .expect("a banner line");
        let url = banner
            .split_whitespace()
            .find(|token| token.starts_with("ws://") || token.starts_with("wss://"))
            .unwrap_or_else(|| panic!("no URL in banner {banner:?}"))
            .to_string();
        // Keep draining stderr so the server never blocks on logging.
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        WsServer { child, url, log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("server running") as i32
    }
}

/// A raw JSON-RPC client that keeps notifications aside while it waits for
/// responses.
pub struct Rpc<T: RawTransport> {
    pub transport: T,
    pub notifications: VecDeque<Value>,
    /// Responses that arrived while waiting for another one.
    responses: VecDeque<Value>,
    next_id: i64,
}

impl<T: RawTransport> Rpc<T> {
    pub fn new(transport: T) -> Self {
        Rpc {
            transport,
            notifications: VecDeque::new(),
            responses: VecDeque::new(),
            next_id: 100,
        }
    }

    pub async fn send(&mut self, value: Value) {
        self.transport.send_text(value.to_string()).await;
    }

    pub async fn recv(&mut self) -> Option<Value> {
        let text = self.transport.recv_text().await?;
        Some(
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("server sent invalid JSON {text:?}: {e}")),
        )
    }

    /// The next message that is a response (has `id`), setting notifications aside.
    pub async fn response(&mut self) -> Value {
        if let Some(response) = self.responses.pop_front() {
            return response;
        }
        loop {
            let message = self
                .recv()
                .await
                .expect("connection closed while waiting for a response");
            if message.get("id").is_some() {
                return message;
            }
            self.notifications.push_back(message);
        }
    }

    /// Sends a request and returns the whole response message.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"id": id, "method": method, "params": params}))
            .await;
        // Deferred answers (waits, long polls) may overtake: keep them.
        loop {
            let message = self
                .recv()
                .await
                .expect("connection closed while waiting for a response");
            if message.get("id").is_none() {
                self.notifications.push_back(message);
            } else if message["id"] == json!(id) {
                return message;
            } else {
                self.responses.push_back(message);
            }
        }
    }

    /// Sends a request and returns its `result`, panicking on an error.
    pub async fn ok(&mut self, method: &str, params: Value) -> Value {
        let response = self.call(method, params).await;
        assert!(
            response.get("error").is_none(),
            "{method} failed: {response}"
        );
        response["result"].clone()
    }

    /// Sends a request and returns its `error`, panicking on success.
    pub async fn err(&mut self, method: &str, params: Value) -> Value {
        let response = self.call(method, params).await;
        assert!(
            response.get("result").is_none(),
            "{method} unexpectedly succeeded: {response}"
        );
        response["error"].clone()
    }

    pub async fn handshake(&mut self) {
        let result = self.ok("initialize", json!({"clientName": "test"})).await;
        assert_eq!(result["protocolVersion"], "exec-server.v0");
        self.send(json!({"method": "initialized"})).await;
    }

    pub async fn exec(&mut self, params: Value) -> String {
        let result = self.ok("command/exec", params).await;
        result["sessionId"].as_str().unwrap().to_string()
    }

    pub async fn next_notification(&mut self) -> Value {
        if let Some(n) = self.notifications.pop_front() {
            return n;
        }
        let message = self
            .recv()
            .await
            .expect("connection closed while waiting for a notification");
        assert!(message.get("id").is_none(), "unexpected response {message}");
        message
    }

    /// Collects a session's output until its exit notification.
    pub async fn collect(&mut self, session: &str) -> Collected {
        let mut out = Collected::default();
        loop {
            let n = self.next_notification().await;
            let params = &n["params"];
            if params["sessionId"] != session {
                continue;
            }
            match n["method"].as_str().unwrap() {
                "command/exec/outputDelta" => {
                    let chunk = unb64(&params["chunk"]);
                    match params["stream"].as_str().unwrap() {
                        "stdout" => out.stdout.extend_from_slice(&chunk),
                        "stderr" => out.stderr.extend_from_slice(&chunk),
                        other => panic!("unknown stream {other}"),
                    }
                }
                "command/exec/exited" => {
                    out.exit_code = params["exitCode"].as_i64().unwrap();
                    return out;
                }
                other => panic!("unknown notification {other}"),
            }
        }
    }

    /// Reads output until it contains `needle`.
    pub async fn read_until(&mut self, session: &str, needle: &str) -> String {
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let n = self.next_notification().await;
            assert_eq!(
                n["method"], "command/exec/outputDelta",
                "waiting for {needle:?}: {n}"
            );
            assert_eq!(n["params"]["sessionId"], session);
            seen.extend_from_slice(&unb64(&n["params"]["chunk"]));
        }
        String::from_utf8_lossy(&seen).into_owned()
    }
}

#[derive(Debug, Default)]
pub struct Collected {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i64,
}

pub async fn stdio_client(args: &[&str]) -> Rpc<StdioTransport> {
    let mut rpc = Rpc::new(StdioTransport::start(args));
    rpc.handshake().await;
    rpc
}

/// True if the process is gone (or a zombie waiting for its reaper).
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

/// Resident set size of a process, in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}
