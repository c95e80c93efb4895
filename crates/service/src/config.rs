//! Server configuration: limits and defaults, validated once at startup.

use std::time::Duration;

use exec_server_core::retention::DEFAULT_RETAINED_BYTES;
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
}

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
        }
    }
}
