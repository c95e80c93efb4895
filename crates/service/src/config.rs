//! Server configuration: limits and defaults, validated once at startup.

use std::time::Duration;

use exec_server_core::retention::DEFAULT_RETAINED_BYTES;
use exec_server_core::{DEFAULT_SCREEN_MEMORY_BYTES, DEFAULT_STDIN_QUEUE_BYTES, TerminalSize};
use exec_server_protocol::DEFAULT_MAX_MESSAGE_BYTES;

use crate::fleet::ServerId;

/// Limits and defaults that apply to every connection (SPEC 3.3).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest incoming message, in bytes; larger ones are refused with
    /// `-32600` and the connection stays usable.
    pub max_message_bytes: usize,
    /// Retained output per process stream (SPEC 3.1).
    pub retained_output_bytes: usize,
    /// Running processes one connection may have at once.
    pub max_processes_per_connection: usize,
    /// Exited `process/*` records a session keeps before evicting the oldest.
    pub max_exited_records: usize,
    /// Default and maximum time a detached process waits to be resumed.
    pub detach_ttl: Duration,
    /// On SIGINT/SIGTERM: SIGTERM every process group, wait this long, then
    /// SIGKILL what is left. Zero: SIGKILL at once.
    pub shutdown_grace: Duration,
    /// Longest `process/wait` or `process/read` long-poll.
    pub max_wait: Duration,
    /// This server's public name in a fleet (`--server-id`).
    pub server_id: ServerId,
    /// The sandbox every process runs under, at most (`--sandbox`); its
    /// roots are canonical paths. `None`: processes are confined only when
    /// they ask (see [`crate::sandbox`]).
    pub sandbox: Option<exec_server_core::SandboxPolicy>,
    /// What the `fs/*` methods may read and write (default: everything the
    /// server process may).
    pub fs_policy: exec_server_fs::FsPolicy,
    /// Bytes per call, handles, watches and listing sizes of `fs/*`.
    pub fs_limits: exec_server_fs::FsLimits,
    /// Largest terminal a client may ask for (`process/start` `size`,
    /// `process/resize`); larger ones are refused with `-32602`.
    pub max_terminal_size: TerminalSize,
    /// Memory for terminal emulators kept between snapshots (and through
    /// output retention drops, which keeps screens exact), for all PTY
    /// processes together (see `exec_server_core::ScreenBudget`).
    pub screen_memory_bytes: usize,
    /// Bytes written to a process's stdin and not yet read by it, at most;
    /// a write beyond waits up to [`STDIN_FULL_WAIT`] for room, then is
    /// refused.
    pub stdin_queue_bytes: usize,
    /// Running processes on the whole server, detached ones included.
    pub max_processes: usize,
    /// How long a websocket client may take from the upgrade to a
    /// successful `initialize` before the connection is closed.
    pub initialize_timeout: Duration,
}

/// How long a write waits for room in a full stdin queue before it is
/// refused (nothing of it queued). Short enough that a client writing to a
/// process that stopped reading learns it soon and can still terminate it;
/// long enough that a reader that is merely slow keeps up.
pub const STDIN_FULL_WAIT: Duration = Duration::from_secs(5);

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            retained_output_bytes: DEFAULT_RETAINED_BYTES,
            max_processes_per_connection: 1024,
            max_exited_records: 256,
            detach_ttl: Duration::from_millis(30_000),
            shutdown_grace: Duration::ZERO,
            max_wait: Duration::from_secs(3600),
            server_id: ServerId::from_host_name(),
            sandbox: None,
            fs_policy: exec_server_fs::FsPolicy::default(),
            fs_limits: exec_server_fs::FsLimits::default(),
            max_terminal_size: TerminalSize {
                rows: 1000,
                cols: 1000,
            },
            screen_memory_bytes: DEFAULT_SCREEN_MEMORY_BYTES,
            stdin_queue_bytes: DEFAULT_STDIN_QUEUE_BYTES,
            max_processes: 4096,
            initialize_timeout: Duration::from_secs(10),
        }
    }
}
