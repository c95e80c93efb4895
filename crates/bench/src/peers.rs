//! Peers: other programs that put a process behind a websocket, measured
//! in the same run as exec-server so that every table shows our ratio to
//! them.
//!
//! The peer is websocketd (Debian `websocketd`, a Go program): one child
//! per websocket connection, its stdin and stdout bridged to the socket.
//! With `--binary` it sends each read of the child's stdout as one binary
//! message and writes each binary message to the child's stdin: raw
//! bytes, no JSON, no base64 — the floor of what a websocket bridge costs.
//!
//! websocketd knows only pipes. To run the same raw-mode `cat` on a PTY as
//! our echo workloads, its child is `script` (util-linux), which relays
//! between those pipes and a PTY; that relay is one more hop than
//! exec-server takes, so the bench also measures websocketd with `cat` on
//! plain pipes, the cheapest echo it can do.
//!
//! When websocketd is not installed the rows say so ("skipped: websocketd
//! not installed") and the bench goes on.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};

use crate::raw::{self, CHILD_PATH, ECHO_SCRIPT};

/// What a row says when websocketd is absent.
pub const WEBSOCKETD_MISSING: &str = "websocketd not installed";

/// How long websocketd may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The `websocketd` executable on `PATH`, if installed.
pub fn websocketd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("websocketd"))
        .find(|candidate| candidate.is_file())
}

/// The raw-mode `cat` of the echo workloads on a PTY, behind `script`.
pub fn echo_on_pty_argv() -> Vec<String> {
    vec![
        "script".into(),
        "--quiet".into(),
        "--flush".into(),
        "--return".into(),
        "--command".into(),
        ECHO_SCRIPT.into(),
        "/dev/null".into(),
    ]
}

/// `cat` on plain pipes, saying `R` first like the PTY version.
pub fn echo_on_pipes_argv() -> Vec<String> {
    vec!["sh".into(), "-c".into(), "printf R && exec cat".into()]
}

/// A `websocketd --binary` child serving one command on a loopback port,
/// killed on drop.
pub struct Websocketd {
    child: Child,
    pub url: String,
}

impl Websocketd {
    /// Starts websocketd for `argv`, everything pinned to CPU 0 when asked.
    pub fn start(binary: &Path, argv: &[String], pin_cpu0: bool) -> anyhow::Result<Websocketd> {
        // websocketd cannot pick a free port itself (`--port=0` means 80):
        // take one from the kernel and hand it over; retry if another
        // program grabbed it in between.
        let mut last_error = None;
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            match Self::start_on(binary, argv, pin_cpu0, port) {
                Ok(server) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.expect("three attempts were made"))
    }

    fn start_on(
        binary: &Path,
        argv: &[String],
        pin_cpu0: bool,
        port: u16,
    ) -> anyhow::Result<Websocketd> {
        let mut command = Command::new(binary);
        command
            .arg(format!("--port={port}"))
            .arg("--address=127.0.0.1")
            .arg("--binary")
            .arg("--loglevel=error")
            .args(argv)
            .env_clear()
            .env("PATH", CHILD_PATH)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if pin_cpu0 {
            // SAFETY: sched_setaffinity is async-signal-safe; websocketd's
            // threads and children inherit the mask.
            unsafe {
                command.pre_exec(|| raw::pin_current_thread(0));
            }
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Some(status) = child.try_wait()? {
                bail!("websocketd exited before listening on port {port}: {status}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("websocketd did not listen on port {port} within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Websocketd {
            child,
            url: format!("ws://127.0.0.1:{port}/"),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Websocketd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> anyhow::Result<Socket> {
    // `TCP_NODELAY` on our side too, as the Rust client does.
    let (socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .with_context(|| format!("connecting to websocketd at {url}"))?;
    Ok(socket)
}

/// The next binary message; websocketd sends nothing else but a close.
async fn next_binary(socket: &mut Socket) -> anyhow::Result<Option<bytes::Bytes>> {
    while let Some(message) = socket.next().await {
        match message? {
            Message::Binary(bytes) => return Ok(Some(bytes)),
            Message::Close(_) => return Ok(None),
            _ => {}
        }
    }
    Ok(None)
}

/// `warmup + count` one-byte round trips through websocketd's echo child,
/// on a single-threaded runtime on the calling thread; returns the last
/// `count`.
pub fn echo(url: &str, warmup: usize, count: usize) -> anyhow::Result<Vec<Duration>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut socket = connect(url).await?;
        let mut seen = Vec::new();
        while !seen.contains(&b'R') {
            match next_binary(&mut socket).await? {
                Some(bytes) => seen.extend_from_slice(&bytes),
                None => bail!("websocketd's echo child ended before it was ready: {seen:?}"),
            }
        }
        let mut samples = Vec::with_capacity(warmup + count);
        for _ in 0..warmup + count {
            let started = Instant::now();
            socket.send(Message::binary(&b"x"[..])).await?;
            match next_binary(&mut socket).await? {
                Some(bytes) if bytes.as_ref() == b"x" => samples.push(started.elapsed()),
                other => bail!("unexpected echo from websocketd: {other:?}"),
            }
        }
        let _ = socket.close(None).await;
        Ok(samples.split_off(warmup))
    })
}

/// Reads everything websocketd's child prints until the connection
/// closes; returns the time from connecting to the close, and checks the
/// byte count.
pub async fn read_all(url: &str, expected_bytes: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut socket = connect(url).await?;
    let mut total = 0u64;
    while let Some(message) = socket.next().await {
        match message {
            Ok(Message::Binary(bytes)) => total += bytes.len() as u64,
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            // websocketd may close the TCP connection as its child exits
            // without a close frame; the byte count below still says
            // whether everything arrived.
            Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => break,
            Err(error) => return Err(error.into()),
        }
    }
    let elapsed = started.elapsed();
    if total != expected_bytes {
        bail!("websocketd delivered {total} bytes, expected {expected_bytes}");
    }
    Ok(elapsed)
}
