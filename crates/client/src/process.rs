//! [`RemoteProcess`]: a process started with `process/start`, its ordered
//! event stream, and the helpers built on it.

use std::time::Duration;

use bytes::Bytes;
use exec_server_protocol::process::{
    ProcessStream, ReadParams, ReadResponse, SignalResponse, SnapshotResponse, StartResponse,
    WaitParams, WaitResponse,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::{ClientError, ExecServerClient};
use crate::collect::{Budgeted, Collected};

/// What a process reports, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessEvent {
    /// A chunk of output.
    Output {
        /// Position in the process's sequence (output and exit share it).
        seq: u64,
        /// Which stream it came from.
        stream: ProcessStream,
        /// The bytes.
        chunk: Bytes,
    },
    /// After a resume: bytes that retention dropped while this client was
    /// away. They are gone; the gap is reported, never hidden.
    Gap {
        /// How many bytes.
        dropped_bytes: u64,
    },
    /// Everything the process wrote before exiting came before this.
    Exited {
        /// Position in the process's sequence.
        seq: u64,
        /// The exit status, or 128 + N after death by signal N.
        exit_code: i32,
        /// Name of the signal that killed it (`"SIGKILL"`), if one did.
        signal: Option<String>,
        /// Killed by its own `timeoutMs`.
        timed_out: bool,
    },
    /// All output delivered and the process reaped: the last event.
    Closed,
}

/// How a process ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit status, or 128 + N after death by signal N.
    pub exit_code: i32,
    /// Name of the signal that killed it, if one did.
    pub signal: Option<String>,
    /// Killed by its own `timeoutMs`.
    pub timed_out: bool,
}

/// Everything a finished process printed, and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessOutput {
    /// Everything written to stdout (pipe mode).
    pub stdout: Vec<u8>,
    /// Everything written to stderr (pipe mode).
    pub stderr: Vec<u8>,
    /// The terminal stream of a PTY process.
    pub pty: Vec<u8>,
    /// How it ended.
    pub exit: ExitInfo,
}

exec_server_protocol::index_by_stream!(ProcessOutput => Vec<u8>);

/// A process started through [`ExecServerClient::start`].
///
/// Its events arrive through a bounded channel: while nobody calls
/// [`next_event`](Self::next_event), the server stops reading the process's
/// output and the process blocks, as with a pipe. Nothing is lost.
///
/// ```no_run
/// # use exec_server_client::{ClientOptions, ExecServerClient};
/// # use exec_server_protocol::process::StartParams;
/// # async fn demo(client: ExecServerClient) -> Result<(), exec_server_client::ClientError> {
/// let mut python = client
///     .start(StartParams {
///         argv: vec!["python3".into(), "-i".into()],
///         cwd: "/tmp".into(),
///         inherit_env: true,
///         tty: true,
///         ..Default::default()
///     })
///     .await?;
/// python.write(&b"print(6 * 7)\n"[..]).await?;
/// let window = python.collect(std::time::Duration::from_secs(2), 64 * 1024).await?;
/// println!("{}", String::from_utf8_lossy(&window.pty.contents()));
/// # Ok(())
/// # }
/// ```
pub struct RemoteProcess {
    client: ExecServerClient,
    process_id: String,
    pid: i32,
    events: mpsc::Receiver<ProcessEvent>,
    exit: Option<ExitInfo>,
    sandbox: Option<exec_server_protocol::sandbox::SandboxApplied>,
}

impl RemoteProcess {
    pub(crate) fn new(
        client: ExecServerClient,
        started: StartResponse,
        events: mpsc::Receiver<ProcessEvent>,
    ) -> Self {
        RemoteProcess {
            client,
            process_id: started.process_id,
            pid: started.pid,
            events,
            exit: None,
            sandbox: started.sandbox,
        }
    }

    /// The confinement the server applied; `None` when unconfined.
    pub fn sandbox(&self) -> Option<&exec_server_protocol::sandbox::SandboxApplied> {
        self.sandbox.as_ref()
    }

    /// The client this process belongs to.
    pub fn client(&self) -> &ExecServerClient {
        &self.client
    }

    /// The process id (client-chosen or `proc-N`).
    pub fn id(&self) -> &str {
        &self.process_id
    }

    /// The OS pid on the server's machine (also its process group id).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// How it ended, once its exit event was received.
    pub fn exit(&self) -> Option<&ExitInfo> {
        self.exit.as_ref()
    }

    /// The next event; `None` after [`ProcessEvent::Closed`] or when the
    /// connection closed for good.
    pub async fn next_event(&mut self) -> Option<ProcessEvent> {
        let event = self.events.recv().await?;
        if let ProcessEvent::Exited {
            exit_code,
            signal,
            timed_out,
            ..
        } = &event
        {
            self.exit = Some(ExitInfo {
                exit_code: *exit_code,
                signal: signal.clone(),
                timed_out: *timed_out,
            });
        }
        Some(event)
    }

    /// Queues bytes for stdin (a pipe with `stdin: "pipe"`, or the terminal).
    pub async fn write(&self, chunk: impl Into<Bytes>) -> Result<(), ClientError> {
        self.client
            .process_write(&self.process_id, chunk, None)
            .await
            .map(|_| ())
    }

    /// Like [`write`](Self::write), idempotent under `write_id`: safe to
    /// retry after [`ClientError::ConnectionLost`].
    pub async fn write_once(
        &self,
        chunk: impl Into<Bytes>,
        write_id: impl Into<String>,
    ) -> Result<(), ClientError> {
        self.client
            .process_write(&self.process_id, chunk, Some(write_id.into()))
            .await
            .map(|_| ())
    }

    /// Closes stdin (pipe) or sends the terminal's EOF character (PTY).
    pub async fn close_stdin(&self) -> Result<(), ClientError> {
        self.client.close_stdin(&self.process_id).await.map(|_| ())
    }

    /// Changes the terminal size; the program sees SIGWINCH.
    pub async fn resize(&self, rows: u16, cols: u16) -> Result<(), ClientError> {
        self.client
            .resize(&self.process_id, rows, cols)
            .await
            .map(|_| ())
    }

    /// Sends a signal (`"SIGINT"`, ...) to the process group.
    pub async fn signal(&self, signal: &str) -> Result<SignalResponse, ClientError> {
        self.client.signal(&self.process_id, signal).await
    }

    /// SIGKILL now, or SIGTERM then SIGKILL after `grace`. Returns whether it
    /// was still running; its exit still arrives as an event.
    pub async fn terminate(&self, grace: Option<Duration>) -> Result<bool, ClientError> {
        self.client
            .terminate_process(&self.process_id, grace)
            .await
            .map(|r| r.running)
    }

    /// Server-side wait: exit, a regex match, quiet, or timeout.
    pub async fn wait_for(
        &self,
        timeout: Option<Duration>,
        quiet: Option<Duration>,
        pattern: Option<&str>,
    ) -> Result<WaitResponse, ClientError> {
        self.client
            .wait(WaitParams {
                process_id: self.process_id.clone(),
                timeout_ms: timeout.map(|t| t.as_millis() as u64),
                quiet_ms: quiet.map(|q| q.as_millis() as u64),
                pattern: pattern.map(str::to_string),
            })
            .await
    }

    /// Retained output after `after_seq`, long-polling up to `wait`.
    pub async fn read(
        &self,
        after_seq: u64,
        max_bytes: Option<u64>,
        wait: Option<Duration>,
    ) -> Result<ReadResponse, ClientError> {
        self.client
            .read(ReadParams {
                process_id: self.process_id.clone(),
                after_seq,
                max_bytes,
                wait_ms: wait.map(|w| w.as_millis() as u64),
            })
            .await
    }

    /// Retained output, rendered screen (PTY) and status.
    pub async fn snapshot(&self) -> Result<SnapshotResponse, ClientError> {
        self.client.snapshot(&self.process_id).await
    }

    /// Reads events until the exit, discarding output.
    pub async fn wait(&mut self) -> Result<ExitInfo, ClientError> {
        while self.exit.is_none() {
            self.next_event().await.ok_or(ClientError::Closed)?;
        }
        Ok(self.exit.clone().expect("loop ends with an exit"))
    }

    /// Runs to completion, collecting every stream and the exit.
    pub async fn output(mut self) -> Result<ProcessOutput, ClientError> {
        let mut output = ProcessOutput::default();
        loop {
            match self.next_event().await.ok_or(ClientError::Closed)? {
                ProcessEvent::Output { stream, chunk, .. } => {
                    output[stream].extend_from_slice(&chunk)
                }
                ProcessEvent::Gap { .. } => {}
                ProcessEvent::Exited { .. } => {
                    output.exit = self.exit.clone().expect("set by next_event");
                    return Ok(output);
                }
                ProcessEvent::Closed => return Err(ClientError::Closed),
            }
        }
    }

    /// Writes `stdin`, closes it, and runs to completion (the process needs
    /// `stdin: "pipe"` or a terminal).
    pub async fn communicate(self, stdin: impl Into<Bytes>) -> Result<ProcessOutput, ClientError> {
        let stdin = stdin.into();
        if !stdin.is_empty() {
            self.write(stdin).await?;
        }
        self.close_stdin().await?;
        self.output().await
    }

    /// The yield-window collector for LLM tool layers: collects output until
    /// `window` passes or the process exits, keeping at most `max_bytes` per
    /// stream (its head and its tail, counting what was cut in between).
    /// Output after the window stays queued for the next call.
    pub async fn collect(
        &mut self,
        window: Duration,
        max_bytes: usize,
    ) -> Result<Collected, ClientError> {
        let deadline = Instant::now() + window;
        let mut collected = Collected {
            stdout: Budgeted::new(max_bytes),
            stderr: Budgeted::new(max_bytes),
            pty: Budgeted::new(max_bytes),
            dropped_bytes: 0,
            exit: None,
        };
        loop {
            let event = match tokio::time::timeout_at(deadline, self.next_event()).await {
                Err(_elapsed) => return Ok(collected),
                Ok(None) => return Err(ClientError::Closed),
                Ok(Some(event)) => event,
            };
            match event {
                ProcessEvent::Output { stream, chunk, .. } => collected[stream].push(&chunk),
                ProcessEvent::Gap { dropped_bytes } => collected.dropped_bytes += dropped_bytes,
                ProcessEvent::Exited { .. } => {
                    collected.exit = self.exit.clone();
                    return Ok(collected);
                }
                ProcessEvent::Closed => return Ok(collected),
            }
        }
    }
}
