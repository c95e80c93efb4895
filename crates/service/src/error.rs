//! [`ApiError`]: every way a request can fail, and the one place that turns
//! a failure into a JSON-RPC error code and message.
//!
//! Handlers return `Result<_, ApiError>` and name the fault with a variant;
//! they never pick a code. `impl From<ApiError> for RpcError` below is the
//! whole mapping, so a reader checks the wire contract (SPEC 1.4, the exact
//! v0 messages of SPEC 2) in one screen.
//!
//! Client-supplied strings echoed in a message (method names, process and
//! session ids, signal names, serde's description of bad params) are cut at
//! [`MAX_ECHO_BYTES`] on a character boundary, with `…` when cut: a client
//! cannot make the server copy megabytes into an error.

use std::fmt;

use exec_server_core::SpawnError;
use exec_server_protocol::RpcError;
use exec_server_protocol::jsonrpc::codes;
use exec_server_protocol::wire::DecodeError;

use crate::config::STDIN_FULL_WAIT;
use crate::limits::{ProcessIdError, TerminalSizeError};
use crate::pattern::PatternError;
use crate::session::ResumeError;

/// Longest client-supplied string echoed in an error, in bytes.
pub(crate) const MAX_ECHO_BYTES: usize = 256;

/// Longest serde description of invalid params echoed, in bytes: it may
/// quote a client's value (an unknown enum variant, say).
const MAX_PARAMS_MESSAGE_BYTES: usize = 1024;

/// Why a request (or an incoming message) failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    // ---- messages and the handshake ------------------------------------
    /// Bytes that are not JSON, or JSON that is not JSON-RPC.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A message over `--max-message-bytes`, discarded by the transport.
    #[error("message of {bytes} bytes exceeds the limit of {limit} bytes (--max-message-bytes)")]
    MessageTooLarge { bytes: usize, limit: usize },
    #[error("unknown method: {}", echo(.0))]
    UnknownMethod(String),
    /// Any method but `initialize` before `initialize`.
    #[error("client must call initialize before using exec methods")]
    NotInitialized,
    /// Any method between `initialize` and `initialized`.
    #[error("client must send initialized before using exec methods")]
    NotInitializedYet,
    #[error("initialize may only be sent once per connection")]
    AlreadyInitialized,
    /// `initialize {resumeSessionId}` refused.
    #[error(transparent)]
    Resume(#[from] ResumeError),
    /// `initialize {resumeSessionId}` on the wrong server of a fleet; the
    /// error's `data` names the owner so the client can go there.
    #[error(
        "cannot resume session: it belongs to server `{owner}`, not `{own}`; reconnect through the route for `{owner}`"
    )]
    SessionOnOtherServer { owner: String, own: String },

    // ---- params ---------------------------------------------------------
    /// Params that do not decode into the method's type.
    #[error("invalid params: {}", echo_at_most(.0, MAX_PARAMS_MESSAGE_BYTES))]
    BadParams(String),
    /// Params that decode but make no sense (the message says why).
    #[error("{0}")]
    InvalidParams(String),
    #[error("unsupported signal `{}`; expected one of {expected}", echo(.signal))]
    UnsupportedSignal { signal: String, expected: String },

    // ---- v0 sessions (messages fixed by SPEC 2) -------------------------
    #[error("unknown session id {}", echo(.0))]
    UnknownSession(String),
    #[error("stdin is closed for session {}", echo(.0))]
    StdinClosedSession(String),

    // ---- processes ------------------------------------------------------
    #[error("unknown process id {}", echo(.0))]
    UnknownProcess(String),
    /// `observe/*`: no live session has this public handle.
    #[error("unknown owner {}", echo(.0))]
    UnknownOwner(String),
    /// `observe/*`: the session has no `process/*` process with this id.
    #[error("unknown process id {} of owner {}", echo(.id), echo(.owner))]
    UnknownObservedProcess { id: String, owner: String },
    #[error("process id {} already exists", echo(.0))]
    ProcessExists(String),
    #[error("stdin is closed for process {}", echo(.0))]
    StdinClosed(String),
    #[error("process {} has no terminal", echo(.0))]
    NoTerminal(String),
    /// `process/release` of a running process.
    #[error("process {} is still running; terminate it first", echo(.0))]
    StillRunning(String),

    // ---- limits ---------------------------------------------------------
    #[error(
        "too many processes: this connection already has {limit} running (--max-processes-per-connection)"
    )]
    TooManyProcesses { limit: usize },
    /// More deferred requests (waits, long-polls) than one connection may run.
    #[error("too many waiting requests: this connection already has {limit}")]
    TooManyWaits { limit: usize },
    /// A `sandbox` param asking for more than the server's policy; the
    /// message names the flag that sets the ceiling.
    #[error("{0}")]
    SandboxWider(String),
    /// Running processes of the whole server, detached ones included.
    #[error("too many processes: the server already runs {limit} (--max-processes)")]
    TooManyProcessesOnServer { limit: usize },
    /// A `process/start` `size` or `process/resize` out of bounds.
    #[error(transparent)]
    TerminalSize(#[from] TerminalSizeError),
    /// A client-chosen process id that is not 1-256 printable ASCII bytes.
    #[error(transparent)]
    ProcessId(#[from] ProcessIdError),
    /// A `match` pattern that is invalid, too long, or over the
    /// connection's pattern budget (the last is a limit, `-32600`).
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// A stdin queue that stayed full for [`STDIN_FULL_WAIT`]: nothing of
    /// the request was queued. `what` is `process` or `session` (v0).
    #[error(
        "stdin of {what} {} is full: {queued} of {capacity} bytes (--stdin-queue-bytes) are still unread after {} s; nothing of this request was queued",
        echo(.id),
        STDIN_FULL_WAIT.as_secs()
    )]
    StdinFull {
        what: &'static str,
        id: String,
        queued: usize,
        capacity: usize,
    },

    // ---- files (`fs/*`) -------------------------------------------------
    /// A file system operation failed: one code per cause, and
    /// `data: {kind, errno}` (docs/FILES.md).
    #[error("{}", .0.message())]
    Fs(#[from] exec_server_fs::FsError),
    /// An unknown or misused handle or watch id, or a connection limit of
    /// `fs/*` (the message names it).
    #[error("{0}")]
    FsRequest(String),

    // ---- the server could not do it -------------------------------------
    /// Spawning failed: bad input (`-32602`) or the OS refused (`-32603`).
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// A system call on an existing process failed.
    #[error("{context}: {source}")]
    Os {
        context: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A broken invariant of the server itself.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A failed system call on behalf of `context` ("resizing process p").
    pub fn os(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        ApiError::Os {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// The mapping: every JSON-RPC error the server sends is decided here.
impl From<ApiError> for RpcError {
    fn from(error: ApiError) -> Self {
        use ApiError::*;
        let code = match &error {
            Decode(DecodeError::Parse(_)) => codes::PARSE_ERROR,
            Decode(DecodeError::NotJsonRpc(_))
            | MessageTooLarge { .. }
            | UnknownMethod(_)
            | NotInitialized
            | NotInitializedYet
            | AlreadyInitialized
            | Resume(_)
            | SessionOnOtherServer { .. }
            | UnknownSession(_)
            | StdinClosedSession(_)
            | UnknownProcess(_)
            | UnknownOwner(_)
            | UnknownObservedProcess { .. }
            | ProcessExists(_)
            | StdinClosed(_)
            | NoTerminal(_)
            | StillRunning(_)
            | TooManyProcesses { .. }
            | TooManyWaits { .. }
            | SandboxWider(_)
            | FsRequest(_)
            | TooManyProcessesOnServer { .. }
            | Pattern(PatternError::OverBudget { .. })
            | StdinFull { .. } => codes::INVALID_REQUEST,
            Fs(error) => crate::handlers::fs::wire_kind(error.kind()).code(),
            BadParams(_) | InvalidParams(_) | UnsupportedSignal { .. } => codes::INVALID_PARAMS,
            TerminalSize(_) | ProcessId(_) | Pattern(_) => codes::INVALID_PARAMS,
            Spawn(SpawnError::Invalid(_)) => codes::INVALID_PARAMS,
            Spawn(SpawnError::Os { .. }) | Os { .. } | Internal(_) => codes::INTERNAL_ERROR,
        };
        let data = match &error {
            SessionOnOtherServer { owner, own } => {
                Some(serde_json::json!({"ownerServerId": owner, "serverId": own}))
            }
            Fs(error) => serde_json::to_value(exec_server_protocol::fs::FsErrorData {
                kind: crate::handlers::fs::wire_kind(error.kind()),
                errno: error.errno_name().map(str::to_string),
            })
            .ok(),
            _ => None,
        };
        RpcError {
            code,
            message: error.to_string(),
            data,
        }
    }
}

/// A client-supplied string as echoed in an error: at most `max` bytes,
/// cut at a character boundary, with `…` when cut.
struct Echo<'a> {
    text: &'a str,
    max: usize,
}

/// `text` bounded to [`MAX_ECHO_BYTES`].
fn echo(text: &str) -> Echo<'_> {
    echo_at_most(text, MAX_ECHO_BYTES)
}

fn echo_at_most(text: &str, max: usize) -> Echo<'_> {
    Echo { text, max }
}

/// `text` bounded to [`MAX_ECHO_BYTES`], for messages built elsewhere
/// (the `fs/*` handlers' handle and watch ids).
pub(crate) fn echo_bounded(text: &str) -> String {
    echo(text).to_string()
}

impl fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Echo { text, max } = *self;
        if text.len() <= max {
            return f.write_str(text);
        }
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}…", &text[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpc(error: ApiError) -> (i64, String) {
        let error = RpcError::from(error);
        (error.code, error.message)
    }

    #[test]
    fn v0_messages_are_exact() {
        assert_eq!(
            rpc(ApiError::NotInitialized),
            (
                -32600,
                "client must call initialize before using exec methods".into()
            )
        );
        assert_eq!(
            rpc(ApiError::UnknownSession("session-9".into())),
            (-32600, "unknown session id session-9".into())
        );
        assert_eq!(
            rpc(ApiError::StdinClosedSession("session-1".into())),
            (-32600, "stdin is closed for session session-1".into())
        );
        assert_eq!(
            rpc(ApiError::InvalidParams("argv must not be empty".into())),
            (-32602, "argv must not be empty".into())
        );
        assert_eq!(
            rpc(ApiError::UnknownMethod("bogus".into())),
            (-32600, "unknown method: bogus".into())
        );
    }

    #[test]
    fn bounds_are_limits_or_bad_params() {
        use exec_server_core::TerminalSize;
        assert_eq!(
            rpc(ApiError::TooManyProcessesOnServer { limit: 20 }),
            (
                -32600,
                "too many processes: the server already runs 20 (--max-processes)".into()
            )
        );
        let max = TerminalSize {
            rows: 1000,
            cols: 1000,
        };
        let huge = TerminalSize {
            rows: 65535,
            cols: 65535,
        };
        let error = crate::limits::check_terminal_size(huge, max).unwrap_err();
        assert_eq!(rpc(error.into()).0, -32602);
        let error = crate::limits::check_process_id("a\0b").unwrap_err();
        assert_eq!(rpc(error.into()).0, -32602);
        let budget = crate::pattern::PatternBudget::new(0);
        assert_eq!(rpc(budget.compile("(").unwrap_err().into()).0, -32602);
        let (code, message) = rpc(budget.compile("ok").unwrap_err().into());
        assert_eq!(code, -32600, "over the budget is a limit: {message}");
        let (code, message) = rpc(ApiError::StdinFull {
            what: "process",
            id: "p".into(),
            queued: 1048576,
            capacity: 1048576,
        });
        assert_eq!(code, -32600);
        assert_eq!(
            message,
            "stdin of process p is full: 1048576 of 1048576 bytes (--stdin-queue-bytes) are still unread after 5 s; nothing of this request was queued"
        );
    }

    #[test]
    fn decode_errors_keep_their_codes() {
        assert_eq!(
            rpc(DecodeError::Parse("x".into()).into()),
            (-32700, "parse error: x".into())
        );
        assert_eq!(rpc(DecodeError::NotJsonRpc("y".into()).into()).0, -32600);
    }

    #[test]
    fn echoed_client_strings_are_bounded_at_a_char_boundary() {
        // 'é' is two bytes: 255 ASCII bytes then 'é' straddles the limit.
        let id = format!("{}é{}", "a".repeat(255), "b".repeat(100_000));
        for error in [
            ApiError::UnknownProcess(id.clone()),
            ApiError::UnknownSession(id.clone()),
            ApiError::UnknownMethod(id.clone()),
            ApiError::StdinClosed(id.clone()),
        ] {
            let (_, message) = rpc(error);
            assert!(message.len() < 300, "{} bytes", message.len());
            assert!(
                message.ends_with(&format!("{}…", "a".repeat(255))),
                "{message}"
            );
        }
        let exact = "x".repeat(MAX_ECHO_BYTES);
        assert_eq!(
            rpc(ApiError::UnknownProcess(exact.clone())).1,
            format!("unknown process id {exact}")
        );
        let (_, message) = rpc(ApiError::BadParams("v".repeat(5000)));
        assert!(message.len() < 1100 && message.ends_with('…'), "{message}");
    }
}
