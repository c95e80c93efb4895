//! The process API (`process/*`, SPEC section 3): the shapes of its
//! params, results and notifications. Its methods are entries of the
//! method table ([`crate::methods`]).
//!
//! Every process has one `seq` sequence, counting from 1 across its output
//! chunks and its exit. A client that remembers the last `seq` it saw can
//! always ask `process/read` for what came after, and is told how many
//! bytes retention dropped in between (`droppedBytes`): gaps are reported,
//! never hidden.

use std::collections::BTreeMap;

use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The wire names of the process API, taken from the method table
/// ([`crate::methods`]), for code written before the table. New code uses
/// `methods::Type::NAME`; new methods are not added here.
pub mod method {
    use crate::methods::{self, Method, Notification};

    pub const START: &str = methods::ProcessStart::NAME;
    pub const WRITE: &str = methods::ProcessWrite::NAME;
    pub const CLOSE_STDIN: &str = methods::ProcessCloseStdin::NAME;
    pub const RESIZE: &str = methods::ProcessResize::NAME;
    pub const SIGNAL: &str = methods::ProcessSignal::NAME;
    pub const TERMINATE: &str = methods::ProcessTerminate::NAME;
    pub const WAIT: &str = methods::ProcessWait::NAME;
    pub const READ: &str = methods::ProcessRead::NAME;
    pub const SNAPSHOT: &str = methods::ProcessSnapshot::NAME;
    pub const LIST: &str = methods::ProcessList::NAME;
    pub const RELEASE: &str = methods::ProcessRelease::NAME;
    pub const OUTPUT: &str = methods::ProcessOutput::NAME;
    pub const EXITED: &str = methods::ProcessExited::NAME;
    pub const CLOSED: &str = methods::ProcessClosed::NAME;
}

/// A terminal size in character cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TerminalSize {
    pub rows: u16,
    pub cols: u16,
}

/// Where a pipe-mode process's stdin comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StdinKind {
    /// `/dev/null`.
    #[default]
    Closed,
    /// A pipe written with `process/write` and closed with `process/closeStdin`.
    Pipe,
}

/// What happens to a process when its connection ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnDisconnect {
    /// Kill its process group at once (the v0 behaviour).
    #[default]
    Kill,
    /// Keep it running, output going to retention only, until the session
    /// is resumed or the detach TTL expires.
    Detach,
}

/// `process/start` params.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartParams {
    /// Client-chosen id; the server assigns `proc-N` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_id: Option<String>,
    pub argv: Vec<String>,
    /// Absolute working directory.
    pub cwd: String,
    /// With `inheritEnv: false` (default) the complete environment; with
    /// `true`, overlaid on the server's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub inherit_env: bool,
    #[serde(default)]
    pub tty: bool,
    /// Terminal size for `tty: true` (default 24×80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<TerminalSize>,
    /// stdin of a pipe-mode process (default `closed`). PTY processes always
    /// take input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<StdinKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg0: Option<String>,
    /// Kill the process group after this long; the exit reports `timedOut`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// `false`: no `process/output` notifications; read with `process/read`
    /// or `process/snapshot`. The process then never blocks on output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_output: Option<bool>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disconnect: Option<OnDisconnect>,
    /// How long a detached process waits for its session to be resumed
    /// (bounded by the server's `--detach-ttl-ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detach_ttl_ms: Option<u64>,
    /// Confine the process and its descendants (see [`crate::sandbox`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<crate::sandbox::SandboxParams>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartResponse {
    pub process_id: String,
    /// The OS pid, which is also the process group id.
    pub pid: i32,
    /// The confinement applied; absent when the process runs unconfined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<crate::sandbox::SandboxApplied>,
}

/// Params of methods that take only a process id (`closeStdin`,
/// `snapshot`, `release`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessIdParams {
    pub process_id: String,
}

/// The empty result `{}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EmptyResponse {}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteParams {
    pub process_id: String,
    /// Base64 bytes.
    #[serde(with = "crate::wire::base64_bytes")]
    #[schemars(with = "String")]
    pub chunk: Bytes,
    /// Idempotency key: a retry with an id this process already accepted is
    /// acknowledged without writing twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteResponse {
    pub accepted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResizeParams {
    pub process_id: String,
    pub rows: u16,
    pub cols: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalParams {
    pub process_id: String,
    /// One of SIGINT, SIGTERM, SIGKILL, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2.
    pub signal: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalResponse {
    /// False when the process group no longer exists.
    pub delivered: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TerminateParams {
    pub process_id: String,
    /// Without: SIGKILL the group now. With: SIGTERM now, SIGKILL after
    /// this many milliseconds if it has not exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TerminateResponse {
    /// Whether the process was still running.
    pub running: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitParams {
    pub process_id: String,
    /// Give up after this long (`reason: "timeout"`). Capped by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Return when no new output arrived for this long (`"quiet"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_ms: Option<u64>,
    /// Return when new output matches this regular expression (`"matched"`).
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// Why `process/wait` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WaitReason {
    Exited,
    Matched,
    Quiet,
    Timeout,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitResponse {
    pub reason: WaitReason,
    pub exited: bool,
    pub exit_code: Option<i32>,
    /// Name of the signal that killed the process, if one did.
    pub signal: Option<String>,
    /// The process was killed by its own `timeoutMs` (not the wait's).
    pub timed_out: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadParams {
    pub process_id: String,
    /// Return output with a greater seq (default 0: from the start).
    #[serde(default)]
    pub after_seq: u64,
    /// Budget for the chunks returned; whole chunks only, at least one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// When nothing is new, wait up to this long for output or the exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// Which stream a chunk belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProcessStream {
    Stdout,
    Stderr,
    Pty,
}

impl ProcessStream {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessStream::Stdout => "stdout",
            ProcessStream::Stderr => "stderr",
            ProcessStream::Pty => "pty",
        }
    }
}

/// Makes a struct with `stdout`, `stderr` and `pty` fields of one type
/// indexable by [`ProcessStream`]: the one mapping from a stream to the
/// place its output collects, so code that gathers output writes
/// `collected[chunk.stream].push(&chunk.chunk)`.
///
/// ```
/// # use exec_server_protocol::process::ProcessStream;
/// #[derive(Default)]
/// struct Output {
///     stdout: Vec<u8>,
///     stderr: Vec<u8>,
///     pty: Vec<u8>,
/// }
/// exec_server_protocol::index_by_stream!(Output => Vec<u8>);
///
/// let mut output = Output::default();
/// output[ProcessStream::Stderr].extend_from_slice(b"oops");
/// assert_eq!(output.stderr, b"oops");
/// ```
#[macro_export]
macro_rules! index_by_stream {
    ($type:ty => $slot:ty) => {
        impl ::std::ops::Index<$crate::process::ProcessStream> for $type {
            type Output = $slot;

            fn index(&self, stream: $crate::process::ProcessStream) -> &$slot {
                match stream {
                    $crate::process::ProcessStream::Stdout => &self.stdout,
                    $crate::process::ProcessStream::Stderr => &self.stderr,
                    $crate::process::ProcessStream::Pty => &self.pty,
                }
            }
        }

        impl ::std::ops::IndexMut<$crate::process::ProcessStream> for $type {
            fn index_mut(&mut self, stream: $crate::process::ProcessStream) -> &mut $slot {
                match stream {
                    $crate::process::ProcessStream::Stdout => &mut self.stdout,
                    $crate::process::ProcessStream::Stderr => &mut self.stderr,
                    $crate::process::ProcessStream::Pty => &mut self.pty,
                }
            }
        }
    };
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputChunk {
    pub seq: u64,
    pub stream: ProcessStream,
    #[serde(with = "crate::wire::base64_bytes")]
    #[schemars(with = "String")]
    pub chunk: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadResponse {
    pub chunks: Vec<OutputChunk>,
    /// Pass as `afterSeq` to continue: the highest seq this answer covers
    /// (including the exit once it is reported).
    pub next_seq: u64,
    /// Bytes after `afterSeq` that retention had already dropped.
    pub dropped_bytes: u64,
    pub exited: bool,
    pub exit_code: Option<i32>,
    /// All output delivered and the process reaped.
    pub closed: bool,
    /// The answer reached the newest output: nothing after `nextSeq`
    /// existed when it was made. False when `maxBytes` cut it short: read
    /// again from `nextSeq`. (Absent from older servers; read as false.)
    #[serde(default)]
    pub complete: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotResponse {
    /// Retained stdout (pipes), base64.
    #[serde(with = "crate::wire::base64_opt_bytes")]
    #[schemars(with = "Option<String>")]
    pub stdout: Option<Bytes>,
    /// Retained stderr (pipes), base64.
    #[serde(with = "crate::wire::base64_opt_bytes")]
    #[schemars(with = "Option<String>")]
    pub stderr: Option<Bytes>,
    /// Retained terminal output (PTY), base64.
    #[serde(with = "crate::wire::base64_opt_bytes")]
    #[schemars(with = "Option<String>")]
    pub terminal: Option<Bytes>,
    /// PTY: the rendered screen, one string per row.
    pub screen: Option<Vec<String>>,
    /// Retention dropped the middle of some stream.
    pub truncated: bool,
    pub exit_code: Option<i32>,
    pub running: bool,
    /// The newest output seq this snapshot reflects (0 before any output):
    /// continue with `process/read {afterSeq: seq}` to see every later byte
    /// exactly once.
    #[serde(default)]
    pub seq: u64,
    /// PTY: the terminal size `screen` is rendered at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<TerminalSize>,
    /// PTY: base64 bytes that redraw `screen` on a fresh terminal of `size`:
    /// the alternate screen when active, colours and attributes, cursor
    /// position, input modes. A terminal paints these, then the output
    /// after `seq`.
    #[serde(
        default,
        with = "crate::wire::base64_opt_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub screen_ansi: Option<Bytes>,
    /// PTY: true when retention dropped output before a terminal emulator
    /// parsed it (the server's screen memory had no room to keep one), so
    /// `screen` and `screenAnsi` are rebuilt from what retention kept and
    /// may differ from what a terminal would show. False: the screen is
    /// exact, however much output `truncated` says was dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen_approximate: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    /// Only processes carrying all these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInfo {
    pub process_id: String,
    pub pid: i32,
    pub argv: Vec<String>,
    pub tty: bool,
    pub labels: BTreeMap<String, String>,
    pub running: bool,
    pub exit_code: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse {
    pub processes: Vec<ProcessInfo>,
}

/// `process/output`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputNotification {
    pub process_id: String,
    pub seq: u64,
    pub stream: ProcessStream,
    #[serde(with = "crate::wire::base64_bytes")]
    #[schemars(with = "String")]
    pub chunk: Bytes,
}

/// `process/exited`: sent after all output the process wrote before exiting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExitedNotification {
    pub process_id: String,
    pub seq: u64,
    /// The exit status, or 128 + N after death by signal N.
    pub exit_code: i32,
    pub signal: Option<String>,
    pub timed_out: bool,
}

/// `process/closed`: the last notification of a process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClosedNotification {
    pub process_id: String,
}
