//! Starting a process and controlling it afterwards.
//!
//! [`spawn_process`] validates a [`ProcessConfig`], sets up pipes or a PTY,
//! creates the child through [`crate::spawn`] and starts its output pump.
//! The result is a [`Process`]: a cloneable [`ProcessHandle`] for control
//! (stdin, resize, signals, retained output, exit status) and the receiver
//! of its [`ProcessEvent`]s.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rustix::fs::{Mode, OFlags};
use rustix::pipe::PipeFlags;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};

use crate::groups::GracefulKill;
use crate::pty::{self, TerminalSize};
use crate::pump::{self, PumpStreams};
use crate::retention::{DEFAULT_RETAINED_BYTES, RetainedOutput, RetainedRead};
use crate::sandbox::{self, AppliedSandbox, SandboxError, SandboxPolicy};
use crate::screen::{ScreenBudget, TerminalScreen};
use crate::spawn::{self, ChildSpec, SandboxSpec};
use crate::stdin::{DEFAULT_STDIN_QUEUE_BYTES, StdinOp, StdinQueue};

/// Which stream a chunk of output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputStream {
    Stdout,
    Stderr,
    /// The terminal of a PTY-backed process (stdout and stderr merged).
    Pty,
}

/// How a pipe-mode process's stdin is set up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StdinMode {
    /// `/dev/null`: the child reads end-of-file at once.
    #[default]
    Null,
    /// A pipe the client writes to.
    Pipe,
}

/// Pipes or a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StdioMode {
    Pipes { stdin: StdinMode },
    Terminal { size: TerminalSize },
}

/// Everything needed to start one process.
#[derive(Clone, Debug)]
pub struct ProcessConfig {
    /// Program and arguments; `argv[0]` is looked up in `PATH` (the child's
    /// `PATH` if `env` sets one, else the server's) unless it contains `/`.
    pub argv: Vec<String>,
    /// What the child sees as `argv[0]`, if not `argv[0]` itself.
    pub arg0: Option<String>,
    /// Absolute working directory.
    pub cwd: PathBuf,
    /// The child's complete environment.
    pub env: Vec<(String, String)>,
    pub stdio: StdioMode,
    /// Retention cap per output stream (SPEC 3.1).
    pub retained_bytes: usize,
    /// Kill the process group when it runs longer than this; the exit then
    /// reports `timed_out`.
    pub timeout: Option<Duration>,
    /// Confine the process and its descendants (see [`crate::sandbox`]).
    pub sandbox: Option<SandboxPolicy>,
    /// Bytes of stdin writes queued and not yet read by the child, at most
    /// (see [`ProcessHandle::write_stdin`]).
    pub stdin_queue_bytes: usize,
    /// Where a PTY process's screen emulator may be kept between
    /// snapshots and through output retention drops (default:
    /// [`ScreenBudget::process_wide`]); `None` keeps none, so every
    /// snapshot is rendered from retention and is approximate once
    /// retention dropped output.
    pub screen_budget: Option<ScreenBudget>,
}

impl ProcessConfig {
    pub fn new(argv: Vec<String>, cwd: impl Into<PathBuf>) -> Self {
        ProcessConfig {
            argv,
            arg0: None,
            cwd: cwd.into(),
            env: Vec::new(),
            stdio: StdioMode::Pipes {
                stdin: StdinMode::Null,
            },
            retained_bytes: DEFAULT_RETAINED_BYTES,
            timeout: None,
            sandbox: None,
            stdin_queue_bytes: DEFAULT_STDIN_QUEUE_BYTES,
            screen_budget: Some(ScreenBudget::process_wide()),
        }
    }
}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The request itself is wrong (maps to invalid params).
    #[error("{0}")]
    Invalid(String),
    /// The operating system refused (maps to an internal error).
    #[error("failed to spawn `{program}`: {source}")]
    Os {
        program: String,
        #[source]
        source: io::Error,
    },
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit status, if it exited normally.
    pub code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// It was killed because it exceeded its timeout.
    pub timed_out: bool,
}

impl ExitStatus {
    /// The exit status, or 128 + N for a death by signal N (shell convention).
    pub fn code_or_signal(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            (None, None) => -1,
        }
    }

    /// The name of the signal that killed it (`"SIGKILL"`), if any.
    pub fn signal_name(&self) -> Option<&'static str> {
        self.signal.and_then(signal_name)
    }
}

/// Signals known by name, for reports and for `process/signal`.
const SIGNAL_NAMES: &[(i32, &str)] = &[
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGILL, "SIGILL"),
    (libc::SIGTRAP, "SIGTRAP"),
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGFPE, "SIGFPE"),
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGPIPE, "SIGPIPE"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGCHLD, "SIGCHLD"),
    (libc::SIGCONT, "SIGCONT"),
    (libc::SIGSTOP, "SIGSTOP"),
    (libc::SIGTSTP, "SIGTSTP"),
    (libc::SIGTTIN, "SIGTTIN"),
    (libc::SIGTTOU, "SIGTTOU"),
    (libc::SIGXCPU, "SIGXCPU"),
    (libc::SIGXFSZ, "SIGXFSZ"),
    (libc::SIGWINCH, "SIGWINCH"),
    (libc::SIGSYS, "SIGSYS"),
];

/// `SIGKILL` for 9, and so on.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    SIGNAL_NAMES
        .iter()
        .find(|(n, _)| *n == signal)
        .map(|(_, name)| *name)
}

/// 9 for `SIGKILL`, and so on.
pub fn signal_number(name: &str) -> Option<i32> {
    SIGNAL_NAMES
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(number, _)| *number)
}

/// What a running process reports, in order. `seq` counts from 1 per
/// process across output and exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessEvent {
    Output {
        seq: u64,
        stream: OutputStream,
        data: Bytes,
    },
    /// Sent after every byte the process wrote before it exited.
    Exited { seq: u64, status: ExitStatus },
    /// Every stream reached end-of-file and the process was reaped: nothing
    /// more will come.
    Closed,
}

/// A started process: its control handle and its event stream.
///
/// The events channel is bounded: when nobody receives, the pump stops
/// reading and the process blocks on its writes, as with a plain pipe. Drop
/// the receiver to switch the process to retention-only output: it then never
/// blocks on output again.
pub struct Process {
    pub handle: ProcessHandle,
    pub events: mpsc::Receiver<ProcessEvent>,
}

/// Shared control over one process. Cheap to clone.
#[derive(Clone)]
pub struct ProcessHandle {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub pid: i32,
    pub terminal: Option<Arc<AsyncFd<OwnedFd>>>,
    pub stdin: Option<StdinQueue>,
    pub retained: Mutex<RetainedOutput>,
    pub exit: watch::Sender<Option<ExitStatus>>,
    /// The last seq sent (output or exit): waiters watch it for new output.
    pub progress: watch::Sender<u64>,
    /// PTY processes: the emulated screen, fed from retention on demand and
    /// by the pump before retention drops output.
    pub screen: Option<Mutex<TerminalScreen>>,
    /// Set just before a timeout kills the group.
    pub timed_out: AtomicBool,
    /// The confinement it runs under, if sandboxed.
    pub sandbox: Option<AppliedSandbox>,
}

/// The rendered screen of a PTY process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScreenText {
    /// The visible rows, trailing blanks removed.
    pub lines: Vec<String>,
    /// True when retention dropped output the screen would have needed
    /// before an emulator parsed it: the screen is then reconstructed from
    /// what retention kept.
    pub approximate: bool,
    /// Bytes that redraw the screen on a fresh terminal of `size`
    /// (alternate screen, colours, cursor, input modes).
    pub formatted: Vec<u8>,
    /// The size the screen is rendered at.
    pub size: TerminalSize,
}

/// Errors from controlling a process.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("stdin is closed")]
    StdinClosed,
    #[error("process has no terminal")]
    NoTerminal,
    #[error("{0}")]
    Os(#[from] io::Error),
}

/// Capacity of a process's event channel, in events (each up to
/// [`pump::MAX_CHUNK_BYTES`]).
const EVENT_CHANNEL_CAPACITY: usize = 16;

impl ProcessHandle {
    /// The child's pid, which is also its process group id.
    pub fn pid(&self) -> i32 {
        self.shared.pid
    }

    pub fn has_terminal(&self) -> bool {
        self.shared.terminal.is_some()
    }

    pub fn has_stdin(&self) -> bool {
        self.shared.stdin.is_some()
    }

    /// The confinement the process runs under; `None` when unconfined.
    pub fn sandbox(&self) -> Option<&AppliedSandbox> {
        self.shared.sandbox.as_ref()
    }

    /// Queues bytes for the child's stdin, in order. Waits while the queue
    /// holds [`ProcessConfig::stdin_queue_bytes`] the child has not read
    /// yet. Cancel-safe: dropped while waiting, nothing was queued, so a
    /// caller that bounds the wait can refuse the write and lose nothing.
    pub async fn write_stdin(&self, data: Bytes) -> Result<(), ControlError> {
        let queue = self
            .shared
            .stdin
            .as_ref()
            .ok_or(ControlError::StdinClosed)?;
        queue
            .send(StdinOp::Write(data))
            .await
            .map_err(|_| ControlError::StdinClosed)
    }

    /// Pipe: closes stdin. PTY: sends the terminal's end-of-file character.
    /// Queued behind earlier writes, like them.
    pub async fn close_stdin(&self) -> Result<(), ControlError> {
        let queue = self
            .shared
            .stdin
            .as_ref()
            .ok_or(ControlError::StdinClosed)?;
        queue
            .send(StdinOp::Close)
            .await
            .map_err(|_| ControlError::StdinClosed)
    }

    /// Bytes queued for stdin and not yet written, and the queue's bound
    /// (`(0, 0)` without stdin).
    pub fn stdin_queue(&self) -> (usize, usize) {
        self.shared
            .stdin
            .as_ref()
            .map_or((0, 0), |queue| (queue.queued(), queue.capacity()))
    }

    /// Sets the terminal's window size. Allocates nothing for the screen
    /// (see `screen`): callers bound the size.
    pub fn resize(&self, size: TerminalSize) -> Result<(), ControlError> {
        let terminal = self
            .shared
            .terminal
            .as_ref()
            .ok_or(ControlError::NoTerminal)?;
        pty::set_size(terminal.get_ref(), size)?;
        if let Some(screen) = &self.shared.screen {
            // Output so far was drawn at the old size.
            let seq = *self.shared.progress.borrow();
            screen
                .lock()
                .expect("screen lock poisoned")
                .resize(seq, size);
        }
        Ok(())
    }

    /// The rendered screen, for PTY processes (see `screen`).
    pub fn screen(&self) -> Option<ScreenText> {
        self.screen_and_retained(|screen, _| screen)
    }

    /// The rendered screen (PTY processes) and the retained output at the
    /// same instant, under one lock: the screen shows exactly the output up
    /// to [`RetainedOutput::last_seq`], rendered at the terminal's current
    /// size.
    pub fn screen_and_retained<R>(
        &self,
        f: impl FnOnce(Option<ScreenText>, &RetainedOutput) -> R,
    ) -> R {
        let retained = self
            .shared
            .retained
            .lock()
            .expect("retention lock poisoned");
        let screen = self.shared.screen.as_ref().map(|screen| {
            let mut screen = screen.lock().expect("screen lock poisoned");
            screen.render(&retained, |rendered| ScreenText {
                lines: crate::screen::text_lines(rendered.screen),
                approximate: rendered.approximate,
                formatted: crate::screen::formatted(rendered.screen),
                size: rendered.size,
            })
        });
        f(screen, &retained)
    }

    /// The terminal's current window size; `None` without a terminal.
    pub fn terminal_size(&self) -> Option<TerminalSize> {
        let terminal = self.shared.terminal.as_ref()?;
        pty::get_size(terminal.get_ref()).ok()
    }

    /// Retained output after `after_seq` (see [`RetainedOutput::read_after`]).
    pub fn read_after(&self, after_seq: u64, max_bytes: usize) -> RetainedRead {
        self.with_retained(|r| r.read_after(after_seq, max_bytes))
    }

    /// Watches the last seq sent (output or exit): changes on new output.
    pub fn subscribe_progress(&self) -> watch::Receiver<u64> {
        self.shared.progress.subscribe()
    }

    /// Terminates the process group. Without a grace period: SIGKILL now.
    /// With one: SIGTERM now, SIGKILL when the process has not exited after
    /// `grace`. Returns whether the process was still running.
    pub fn terminate(&self, grace: Option<Duration>) -> io::Result<bool> {
        if self.exit_status().is_some() {
            return Ok(false);
        }
        let Some(grace) = grace.filter(|g| !g.is_zero()) else {
            self.kill_group()?;
            return Ok(true);
        };
        let kill = GracefulKill::start(vec![self.shared.pid], grace)?;
        let handle = self.clone();
        tokio::spawn(async move {
            kill.finish(async move {
                handle.wait().await;
            })
            .await
        });
        Ok(true)
    }

    /// Sends `signal` to the whole process group. `Ok(false)` when the group
    /// no longer exists.
    pub fn signal_group(&self, signal: i32) -> io::Result<bool> {
        signal_process_group(self.shared.pid, signal)
    }

    /// SIGKILL to the whole process group.
    pub fn kill_group(&self) -> io::Result<bool> {
        self.signal_group(libc::SIGKILL)
    }

    /// The exit status, once the process was reaped.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        *self.shared.exit.borrow()
    }

    /// Waits until the process was reaped and its pre-exit output drained.
    pub async fn wait(&self) -> ExitStatus {
        let mut exit = self.shared.exit.subscribe();
        let status = exit
            .wait_for(Option::is_some)
            .await
            .expect("the sender lives in self");
        status.expect("waited for Some")
    }

    /// Runs `f` with the retained output.
    pub fn with_retained<R>(&self, f: impl FnOnce(&RetainedOutput) -> R) -> R {
        f(&self
            .shared
            .retained
            .lock()
            .expect("retention lock poisoned"))
    }
}

/// `killpg(pgid, signal)`; `Ok(false)` if the group does not exist (ESRCH).
pub fn signal_process_group(pgid: i32, signal: i32) -> io::Result<bool> {
    // SAFETY: killpg has no memory-safety preconditions.
    if unsafe { libc::killpg(pgid, signal) } == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::ESRCH) {
        Ok(false)
    } else {
        Err(error)
    }
}

/// Starts a process. Must be called within a tokio runtime.
pub async fn spawn_process(config: ProcessConfig) -> Result<Process, SpawnError> {
    let program_name = config.argv.first().cloned().unwrap_or_default();
    let os_error = |source: io::Error| SpawnError::Os {
        program: program_name.clone(),
        source,
    };
    let mut prepared = prepare(&config)?;

    let (stdio, streams, terminal, stdin_fd) = match config.stdio {
        StdioMode::Pipes { stdin } => {
            let (stdout_read, stdout_write) = pipe().map_err(os_error)?;
            let (stderr_read, stderr_write) = pipe().map_err(os_error)?;
            // A larger pipe lets a fast writer run ahead of our reads.
            let _ = rustix::pipe::fcntl_setpipe_size(&stdout_write, 1024 * 1024);
            let (child_stdin, our_stdin) = match stdin {
                StdinMode::Null => (dev_null().map_err(os_error)?, None),
                StdinMode::Pipe => {
                    let (read, write) = pipe().map_err(os_error)?;
                    rustix::io::ioctl_fionbio(&write, true)
                        .map_err(io::Error::from)
                        .map_err(os_error)?;
                    (read, Some(write))
                }
            };
            for fd in [&stdout_read, &stderr_read] {
                rustix::io::ioctl_fionbio(fd, true)
                    .map_err(io::Error::from)
                    .map_err(os_error)?;
            }
            let stdio = [child_stdin, stdout_write, stderr_write];
            let streams = PumpStreams::Pipes {
                stdout: register(stdout_read).map_err(os_error)?,
                stderr: register(stderr_read).map_err(os_error)?,
            };
            (
                stdio,
                streams,
                None,
                our_stdin.map(register).transpose().map_err(os_error)?,
            )
        }
        StdioMode::Terminal { size } => {
            let pair = pty::open_pty(size).map_err(os_error)?;
            let slave = spawn::above_stdio(pair.slave).map_err(os_error)?;
            let stdio = [
                slave.try_clone().map_err(os_error)?,
                slave.try_clone().map_err(os_error)?,
                slave,
            ];
            let master = Arc::new(register(pair.master).map_err(os_error)?);
            (
                stdio,
                PumpStreams::Terminal(master.clone()),
                Some(master),
                None,
            )
        }
    };
    let mut sandbox = match &config.sandbox {
        None => None,
        Some(policy) => {
            let terminal = terminal.is_some().then(|| stdio[0].as_fd());
            Some(
                sandbox::prepare(policy, terminal).map_err(|error| match error {
                    SandboxError::Invalid(message) => SpawnError::Invalid(message),
                    other => os_error(io::Error::other(other.to_string())),
                })?,
            )
        }
    };
    if let Some(tmpdir) = sandbox.as_ref().and_then(|s| s.applied.tmpdir.as_deref()) {
        set_tmpdir(&mut prepared.envp, tmpdir)?;
    }
    let [child_stdin, child_stdout, child_stderr] = stdio;
    let spec = ChildSpec {
        program: prepared.program,
        argv: prepared.argv,
        envp: prepared.envp,
        cwd: prepared.cwd,
        stdio: [
            spawn::above_stdio(child_stdin).map_err(os_error)?,
            spawn::above_stdio(child_stdout).map_err(os_error)?,
            spawn::above_stdio(child_stderr).map_err(os_error)?,
        ],
        controlling_tty: terminal.is_some(),
        sandbox: sandbox.as_mut().map(|s| SandboxSpec {
            ruleset: s.ruleset.take(),
            seccomp: s.seccomp,
            protected: std::mem::take(&mut s.protected),
            user_namespace: s.user_namespace,
            drop_bounding_set: s.drop_bounding_set,
            last_capability: s.last_capability,
        }),
    };
    // The spec owns the child's ends of the pipes or the PTY slave; dropping
    // it after the spawn closes our copies, so end-of-file arrives when the
    // child side is gone.
    let confined = spec.sandbox.is_some();
    let child = spawn::spawn(spec).await.map_err(|error| {
        if confined && error.raw_os_error() == Some(libc::EACCES) {
            // execve refused by the sandbox (e.g. outside readableRoots).
            os_error(io::Error::new(
                error.kind(),
                format!("{error}; the sandbox may not allow running it"),
            ))
        } else {
            os_error(error)
        }
    })?;
    let pidfd = register(child.pidfd).map_err(os_error)?;

    let stdin = match (&terminal, stdin_fd) {
        (Some(master), _) => Some(StdinQueue::start(
            master.clone(),
            true,
            config.stdin_queue_bytes,
        )),
        (None, Some(fd)) => Some(StdinQueue::start(
            Arc::new(fd),
            false,
            config.stdin_queue_bytes,
        )),
        (None, None) => None,
    };
    let (exit, _) = watch::channel(None);
    let (progress, _) = watch::channel(0);
    let screen = match config.stdio {
        StdioMode::Terminal { size } => Some(Mutex::new(TerminalScreen::new(
            size,
            config.screen_budget.clone(),
        ))),
        StdioMode::Pipes { .. } => None,
    };
    let shared = Arc::new(Shared {
        pid: child.pid,
        terminal,
        stdin,
        retained: Mutex::new(RetainedOutput::new(config.retained_bytes)),
        exit,
        progress,
        screen,
        timed_out: AtomicBool::new(false),
        sandbox: sandbox.as_ref().map(|s| s.applied.clone()),
    });
    if let Some(timeout) = config.timeout {
        tokio::spawn(enforce_timeout(shared.clone(), timeout));
    }
    let (events_tx, events) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
    // The private TMPDIR lives until the process is closed (every stream at
    // end-of-file, the child reaped), then goes away with its contents.
    let tmpdir = sandbox.and_then(|s| s.tmpdir);
    let pump = pump::run(streams, pidfd, shared.clone(), events_tx);
    tokio::spawn(async move {
        pump.await;
        // Removal happens on a background thread.
        drop(tmpdir);
    });
    Ok(Process {
        handle: ProcessHandle { shared },
        events,
    })
}

/// Kills the group when the process outlives `timeout`.
async fn enforce_timeout(shared: Arc<Shared>, timeout: Duration) {
    let mut exit = shared.exit.subscribe();
    if tokio::time::timeout(timeout, exit.wait_for(Option::is_some))
        .await
        .is_err()
    {
        shared.timed_out.store(true, Ordering::SeqCst);
        let _ = signal_process_group(shared.pid, libc::SIGKILL);
    }
}

fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd takes ownership of the OwnedFd, so the descriptor
    // stays open and unchanged for as long as it is registered.
    unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?)
}

fn dev_null() -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        "/dev/null",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

struct Prepared {
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
}

fn cstring(what: &str, value: impl Into<Vec<u8>>) -> Result<CString, SpawnError> {
    CString::new(value)
        .map_err(|_| SpawnError::Invalid(format!("{what} must not contain a NUL byte")))
}

/// A sandboxed process gets its private temporary directory as `TMPDIR`.
fn set_tmpdir(envp: &mut Vec<CString>, tmpdir: &Path) -> Result<(), SpawnError> {
    envp.retain(|entry| !entry.as_bytes().starts_with(b"TMPDIR="));
    let mut entry = b"TMPDIR=".to_vec();
    entry.extend_from_slice(tmpdir.as_os_str().as_bytes());
    envp.push(cstring("env", entry)?);
    Ok(())
}

/// Validates the config and converts it to C strings, resolving the program
/// against `PATH`. Runs before any descriptor is created.
fn prepare(config: &ProcessConfig) -> Result<Prepared, SpawnError> {
    let Some(program) = config.argv.first() else {
        return Err(SpawnError::Invalid("argv must not be empty".into()));
    };
    if !config.cwd.is_absolute() {
        return Err(SpawnError::Invalid("cwd must be an absolute path".into()));
    }
    let mut argv = Vec::with_capacity(config.argv.len());
    argv.push(cstring("arg0", config.arg0.as_deref().unwrap_or(program))?);
    for arg in &config.argv[1..] {
        argv.push(cstring("argv", arg.as_str())?);
    }
    let mut envp = Vec::with_capacity(config.env.len() + 1);
    for (key, value) in &config.env {
        if key.is_empty() || key.contains('=') {
            return Err(SpawnError::Invalid(format!(
                "env name `{key}` must be non-empty and must not contain `=`"
            )));
        }
        envp.push(cstring("env", format!("{key}={value}"))?);
    }
    let child_path = config
        .env
        .iter()
        .rev()
        .find(|(key, _)| key == "PATH")
        .map(|(_, value)| value.clone());
    let resolved =
        resolve_program(program, child_path.as_deref()).ok_or_else(|| SpawnError::Os {
            program: program.clone(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        })?;
    Ok(Prepared {
        program: cstring("argv", resolved.into_os_string().into_vec())?,
        argv,
        envp,
        cwd: cstring("cwd", config.cwd.as_os_str().as_bytes())?,
    })
}

/// `execvp`-style lookup: a name with a `/` is used as given (relative to
/// the child's cwd); otherwise the first executable regular file in `PATH`.
fn resolve_program(program: &str, child_path: Option<&str>) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    if program.is_empty() {
        return None;
    }
    let server_path = std::env::var_os("PATH");
    let search = match child_path {
        Some(path) => OsStr::new(path).to_owned(),
        None => server_path.unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
    };
    std::env::split_paths(&search)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable_file(candidate))
}

fn is_executable_file(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    meta.is_file() && rustix::fs::access(path, rustix::fs::Access::EXEC_OK).is_ok()
}
