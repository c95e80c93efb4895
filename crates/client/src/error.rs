//! [`ClientError`]: everything a client call can fail with.

use exec_server_protocol::RpcError;

/// Errors seen by client callers.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a JSON-RPC error.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The connection is closed (or closed while waiting).
    #[error("the connection to the exec-server is closed")]
    Closed,
    /// The connection dropped while this request was in flight. The client
    /// may have resumed the session since, but it never sends a request
    /// twice on its own: the caller decides whether a retry is safe (writes
    /// with a `writeId` are).
    #[error("the connection dropped while the request was in flight")]
    ConnectionLost,
    /// Connecting or the handshake failed.
    #[error("{0}")]
    Connect(String),
    /// A response did not have the expected shape.
    #[error("unexpected response from the server: {0}")]
    Protocol(String),
    /// The connection dropped and the server that owns this client's
    /// session could not be reached again within the
    /// [`ReconnectPolicy`](crate::ReconnectPolicy) (host down, connection
    /// refused, the balancer answered 502/503, or routed the resume to
    /// another server). The session's processes are out of reach; every
    /// call fails with this error from then on.
    #[error("exec-server `{server_id}`, which owns this session, is unavailable: {reason}")]
    ServerUnavailable {
        /// The owner's `serverId` (its URL when the server sent none).
        server_id: String,
        /// What the last attempt ran into.
        reason: String,
    },
    /// The client can no longer follow this process: the connection closed
    /// and the session could not be resumed (the reason says why), or the
    /// server forgot the process while the client was away.
    #[error("lost track of process {process_id}: {reason}")]
    Lost {
        /// The process.
        process_id: String,
        /// Why.
        reason: String,
    },
}
