//! The workloads of issue 5 and what they share: the run settings, the
//! three ways of reaching a server, and helpers that drive a process
//! through the Rust client.
//!
//! Every workload returns its table rows. It runs its baseline and our
//! figure interleaved, run after run, so that drift on a shared machine
//! hits both alike.

mod agent;
mod echo;
mod files;
mod flood;
mod sandbox;
mod scale;
mod spawn;
mod throughput;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use exec_server_client::{
    ClientOptions, ExecServerClient, LocalExecServer, ProcessEvent, RemoteProcess,
    WebSocketConnectArgs, spawn_local_exec_server,
};
use exec_server_protocol::process::StartParams;

use crate::raw::CHILD_PATH;
use crate::report::Row;
use crate::server::{ServerOptions, WsServer};

/// Settings shared by every workload.
pub struct Bench {
    pub runtime: tokio::runtime::Runtime,
    /// The `exec-server` binary for the stdio and websocket paths.
    pub binary: PathBuf,
    /// Tiny sizes, one run: proves every path works, measures nothing.
    pub smoke: bool,
    /// Runs per figure (the median of these is reported).
    pub runs: usize,
    /// The client paths of the throughput and spawn workloads.
    pub transports: Vec<Transport>,
}

impl Bench {
    /// `full` normally, `smoke` in a smoke run.
    pub fn pick<T>(&self, full: T, smoke: T) -> T {
        if self.smoke { smoke } else { full }
    }

    /// Opens one connection per chosen transport, each to a fresh server.
    pub async fn connections(&self) -> anyhow::Result<Vec<(Transport, Connection)>> {
        let mut connections = Vec::new();
        for &transport in &self.transports {
            connections.push((transport, Connection::open(self, transport).await?));
        }
        Ok(connections)
    }

    pub fn ws_server(&self, options: &ServerOptions) -> anyhow::Result<WsServer> {
        WsServer::start(&self.binary, options)
    }
}

/// A workload: its name on the command line, what it measures, and how.
pub struct Workload {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(&Bench) -> anyhow::Result<Vec<Row>>,
}

pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "pipe-throughput",
        about: "pipe-mode output of `head -c 1G /dev/zero` through in-process, stdio and websocket clients vs a raw 64 KiB pipe reader",
        run: throughput::pipe,
    },
    Workload {
        name: "pty-throughput",
        about: "PTY output of `head -c 256M /dev/zero` through each client vs a raw 64 KiB PTY master reader",
        run: throughput::pty,
    },
    Workload {
        name: "spawn",
        about: "start to exit notification of /bin/true, 1,000 in a row, vs posix_spawn + waitpid in this process",
        run: spawn::small,
    },
    Workload {
        name: "spawn-large",
        about: "the same while the server holds 2 GiB of retained output",
        run: spawn::large,
    },
    Workload {
        name: "spawn-sandbox",
        about: "start to exit of /bin/true, 1,000 in a row, sandboxed (workspace-write, .git read-only, no network) vs unsandboxed",
        run: sandbox::spawn,
    },
    Workload {
        name: "pty-echo",
        about: "one-byte keystroke echo through `cat` on a raw PTY over websocket, unpinned and pinned to CPU 0, vs the same on a raw PTY",
        run: echo::pty_echo,
    },
    Workload {
        name: "many-sleeps",
        about: "1,000 concurrent `sleep` processes on one connection: time to start them all, server RSS per process",
        run: scale::many_sleeps,
    },
    Workload {
        name: "many-connections",
        about: "200 websocket connections each typing into its own PTY (a keystroke every 20 ms) vs one connection alone",
        run: scale::many_connections,
    },
    Workload {
        name: "flood-latency",
        about: "process/list latency while another process on the same connection floods output, vs idle",
        run: flood::request_latency,
    },
    Workload {
        name: "agent-step",
        about: "an agent's step in a tty bash (pwd, cd, echo) collected until the prompt is back: input-wait detection vs the 500 ms quiet timer alone",
        run: agent::bash_step,
    },
    Workload {
        name: "slow-client-memory",
        about: "server peak RSS while a client that stops reading has a process flooding 1 GiB",
        run: flood::slow_client_memory,
    },
    Workload {
        name: "fs-read",
        about: "a 1 GiB file from the server's disk to a local file over websocket (fs/open + fs/readBlock) vs `cat SRC > DST`",
        run: files::read,
    },
    Workload {
        name: "fs-write",
        about: "a 1 GiB local file to the server's disk over websocket (fs/open + fs/writeBlock, atomic) vs `cp SRC DST`",
        run: files::write,
    },
];

/// How a client reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A server inside the bench process, no serialization.
    InProcess,
    /// The binary as a child, JSON lines on its stdin and stdout.
    Stdio,
    /// The binary listening on a loopback websocket port; the client asks
    /// for binary output frames (the Rust client's default).
    WebSocket,
    /// The same with JSON output (base64 chunks), as v0 clients and
    /// clients that do not ask for binary frames get.
    WebSocketJson,
}

impl Transport {
    pub const ALL: [Transport; 4] = [
        Transport::InProcess,
        Transport::Stdio,
        Transport::WebSocket,
        Transport::WebSocketJson,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Transport::InProcess => "in-process",
            Transport::Stdio => "stdio",
            Transport::WebSocket => "websocket",
            Transport::WebSocketJson => "websocket-json",
        }
    }
}

/// A connected client and whatever keeps its server alive.
pub struct Connection {
    pub client: ExecServerClient,
    // Dropped after the client: the server outlives its connection.
    _server: Option<ServerChild>,
}

enum ServerChild {
    Local(LocalExecServer),
    Ws(WsServer),
}

impl Connection {
    /// The server's pid when it runs as a child; `None` in process.
    pub fn server_pid(&self) -> Option<u32> {
        match &self._server {
            Some(ServerChild::Local(local)) => local.pid(),
            Some(ServerChild::Ws(server)) => Some(server.pid()),
            None => None,
        }
    }

    /// Starts a fresh server for `transport` (default configuration) and
    /// connects to it. Call inside the runtime.
    pub async fn open(bench: &Bench, transport: Transport) -> anyhow::Result<Connection> {
        let options = client_options();
        Ok(match transport {
            Transport::InProcess => Connection {
                client: ExecServerClient::connect_in_process(options).await?,
                _server: None,
            },
            Transport::Stdio => {
                let mut command = tokio::process::Command::new(&bench.binary);
                command.stderr(std::process::Stdio::inherit());
                let local = spawn_local_exec_server(command, options).await?;
                Connection {
                    client: local.client.clone(),
                    _server: Some(ServerChild::Local(local)),
                }
            }
            Transport::WebSocket | Transport::WebSocketJson => {
                let server = bench.ws_server(&ServerOptions::default())?;
                let binary_frames = transport == Transport::WebSocket;
                Connection {
                    client: connect_ws_with(&server.url, binary_frames).await?,
                    _server: Some(ServerChild::Ws(server)),
                }
            }
        })
    }
}

pub fn client_options() -> ClientOptions {
    ClientOptions {
        client_name: "exec-server-bench".into(),
        ..ClientOptions::default()
    }
}

pub async fn connect_ws(url: &str) -> anyhow::Result<ExecServerClient> {
    connect_ws_with(url, true).await
}

/// [`connect_ws`], asking for binary output frames or not.
pub async fn connect_ws_with(url: &str, binary_frames: bool) -> anyhow::Result<ExecServerClient> {
    let mut args = WebSocketConnectArgs::new(url);
    args.options = client_options();
    args.binary_frames = binary_frames;
    ExecServerClient::connect_websocket(args)
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// `process/start` params for `argv` in `/` with only `PATH` set.
pub fn start_params(argv: Vec<String>, tty: bool) -> StartParams {
    StartParams {
        argv,
        cwd: "/".into(),
        env: BTreeMap::from([("PATH".to_string(), CHILD_PATH.to_string())]),
        tty,
        ..StartParams::default()
    }
}

/// Runs a process to its exit, counting its output bytes; returns the
/// time from the start request to the exit event, and how many output
/// events carried the bytes.
pub async fn run_counting(
    client: &ExecServerClient,
    params: StartParams,
    expected_bytes: u64,
) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let mut process = client.start(params).await?;
    let mut total = 0u64;
    let mut chunks = 0u64;
    loop {
        match process.next_event().await {
            Some(ProcessEvent::Output { chunk, .. }) => {
                total += chunk.len() as u64;
                chunks += 1;
            }
            Some(ProcessEvent::Exited { .. }) => break,
            Some(ProcessEvent::Gap { .. }) => bail!("output gap on a live connection"),
            Some(ProcessEvent::Closed | ProcessEvent::Lost { .. }) | None => {
                bail!("process closed without an exit")
            }
        }
    }
    let elapsed = started.elapsed();
    if total != expected_bytes {
        bail!("received {total} bytes of output, expected {expected_bytes}");
    }
    Ok((elapsed, chunks))
}

/// Waits until the process's output contains `marker`.
pub async fn wait_for_output(process: &mut RemoteProcess, marker: u8) -> anyhow::Result<()> {
    let mut seen = Vec::new();
    while !seen.contains(&marker) {
        match process.next_event().await {
            Some(ProcessEvent::Output { chunk, .. }) => seen.extend_from_slice(&chunk),
            other => bail!("process ended before printing {marker:?}: {other:?}, output {seen:?}"),
        }
    }
    Ok(())
}

/// One keystroke round trip: writes `x` and waits for its echo.
pub async fn echo_once(
    client: &ExecServerClient,
    process: &mut RemoteProcess,
) -> anyhow::Result<Duration> {
    let id = process.id().to_string();
    let started = Instant::now();
    let write = client.process_write(&id, &b"x"[..], None);
    let echo = async {
        match process.next_event().await {
            Some(ProcessEvent::Output { chunk, .. }) if chunk.as_ref() == b"x" => {
                Ok(started.elapsed())
            }
            other => bail!("unexpected event while waiting for an echo: {other:?}"),
        }
    };
    let (written, echoed) = tokio::join!(write, echo);
    written?;
    echoed
}

/// MB/s for `bytes` moved in `elapsed`.
pub fn megabytes_per_second(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}

pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * MIB;
