//! Server configuration: limits and defaults, validated once at startup.

use exec_server_core::retention::DEFAULT_RETAINED_BYTES;
use exec_server_protocol::DEFAULT_MAX_MESSAGE_BYTES;

/// Limits and defaults that apply to every connection.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest incoming message, in bytes; larger ones are refused with
    /// `-32600` and the connection stays usable.
    pub max_message_bytes: usize,
    /// Retained output per process stream (SPEC 3.1).
    pub retained_output_bytes: usize,
    /// Live processes one connection may have at once.
    pub max_processes_per_connection: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            retained_output_bytes: DEFAULT_RETAINED_BYTES,
            max_processes_per_connection: 1024,
        }
    }
}
