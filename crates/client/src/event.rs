//! The events a client hands out: [`ProcessEvent`] to a
//! [`RemoteProcess`](crate::RemoteProcess), [`ExecEvent`] to an
//! [`ExecSession`](crate::ExecSession), and [`ClientEvent`] for
//! notifications that no handle claimed.

use bytes::Bytes;
use exec_server_protocol::ServerNotification;
use exec_server_protocol::process::ProcessStream;
use exec_server_protocol::v0::{
    ExecExitedNotification, ExecOutputDeltaNotification, ExecOutputStream,
};
use serde_json::Value;

/// What a process reports, in order. Every byte the process wrote arrives
/// exactly once in an `Output`, or is counted in a `Gap` right before the
/// first byte after it; the last event is `Closed`, or `Lost` when the
/// client can no longer follow the process.
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
    /// After a resume: bytes of `stream` that the server's retention
    /// dropped while this client was away, right before the next bytes of
    /// that stream. They are gone; the gap is reported, never hidden, and
    /// its count is exact (see DESIGN.md for servers that predate chunk
    /// offsets).
    Gap {
        /// Which stream lost them.
        stream: ProcessStream,
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
    /// The client can no longer follow this process, and no event follows:
    /// the connection closed and the session could not be resumed, or the
    /// server forgot the process while the client was away. The process
    /// may still run on the server (a detached one, until its TTL).
    Lost {
        /// Why, e.g. the server's refusal to resume.
        reason: String,
    },
}

/// What a v0 session reports, in the order the server sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecEvent {
    /// A chunk of output.
    Output {
        /// stdout or stderr (PTY output is stdout).
        stream: ExecOutputStream,
        /// The bytes.
        chunk: Bytes,
    },
    /// The last event: everything the process wrote before exiting came first.
    Exited {
        /// The exit status, or 128 + N after death by signal N.
        exit_code: i32,
    },
}

impl ExecEvent {
    /// The notification this event came from.
    pub(crate) fn into_notification(self, session_id: String) -> ServerNotification {
        match self {
            ExecEvent::Output { stream, chunk } => {
                ServerNotification::ExecOutputDelta(ExecOutputDeltaNotification {
                    session_id,
                    stream,
                    chunk,
                })
            }
            ExecEvent::Exited { exit_code } => {
                ServerNotification::ExecExited(ExecExitedNotification {
                    session_id,
                    exit_code,
                })
            }
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
