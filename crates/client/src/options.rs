//! Options for every way of connecting: [`ClientOptions`],
//! [`WebSocketConnectArgs`] and the [`ReconnectPolicy`] that makes a
//! websocket client resume its session when the connection drops.

use std::time::Duration;

/// Options for every way of connecting.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Sent as `clientName` in `initialize`.
    pub client_name: String,
    /// How long to wait for the `initialize` response.
    pub initialize_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            client_name: format!("exec-server-client/{}", env!("CARGO_PKG_VERSION")),
            initialize_timeout: Duration::from_secs(10),
        }
    }
}

/// How a websocket client reconnects after the connection drops. It gives
/// up after `attempts` or `give_up_after`, whichever comes first, with
/// [`ClientError::ServerUnavailable`](crate::ClientError::ServerUnavailable)
/// naming the server: every process handle then ends with
/// [`ProcessEvent::Lost`](crate::ProcessEvent::Lost) and every call fails
/// with that error.
#[derive(Clone, Debug)]
pub struct ReconnectPolicy {
    /// Attempts before giving up.
    pub attempts: u32,
    /// Pause before each attempt.
    pub delay: Duration,
    /// Longest time from the drop to giving up, whatever the attempts
    /// (each attempt's connect timeout is cut to fit).
    pub give_up_after: Duration,
    /// Where to reconnect.
    pub target: ResumeTarget,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            attempts: 10,
            delay: Duration::from_millis(200),
            give_up_after: Duration::from_secs(10),
            target: ResumeTarget::default(),
        }
    }
}

/// Where a reconnecting client resumes its session. A session lives on one
/// server (the `serverId` of the initialize result); through a load
/// balancer the resume must be routed there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ResumeTarget {
    /// The connect URL with the owner's server id appended to its path:
    /// `wss://balancer/exec/` resumes at `wss://balancer/exec/SERVER_ID/`
    /// (the query, e.g. `?token=`, is kept). Works through a balancer that
    /// routes by server id and on a lone server, which accepts its own id
    /// in the path. Falls back to the connect URL when the server sent no
    /// `serverId`.
    #[default]
    OwnerPath,
    /// The connect URL itself (a lone server, or sticky sessions).
    SameUrl,
    /// A URL in which `{serverId}` is replaced by the owner's server id,
    /// e.g. `wss://{serverId}.exec.example.com/`.
    Template(String),
}

/// Arguments of [`ExecServerClient::connect_websocket`](crate::ExecServerClient::connect_websocket).
#[derive(Clone, Debug)]
pub struct WebSocketConnectArgs {
    /// `ws://IP:PORT` (or a host name) of the server.
    pub url: String,
    /// Sent as `Authorization: Bearer TOKEN` on the upgrade request.
    pub bearer_token: Option<String>,
    /// How long to wait for the TCP and websocket handshakes.
    pub connect_timeout: Duration,
    /// Client name and initialize timeout.
    pub options: ClientOptions,
    /// Reconnect and resume the session when the connection drops: the
    /// same process ids come back, each process handle replays what it
    /// missed from its last `seq` (reporting gaps), and live output goes on.
    /// `None`: a dropped connection closes the client.
    pub reconnect: Option<ReconnectPolicy>,
    /// For `wss://`: extra trusted CA certificates (PEM), on top of the
    /// system's roots, e.g. for a self-signed server certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// Send a websocket ping this often, so that proxies which close idle
    /// connections (HAProxy's `timeout tunnel`, cloud balancers' idle
    /// timeouts) keep a quiet session open. `None`: no pings.
    pub keepalive: Option<Duration>,
    /// Ask for binary output frames (`schema/binary-frames.md`): output
    /// arrives as raw bytes behind a small header instead of base64 in
    /// JSON. A server that does not offer them answers in JSON as before.
    /// Asked again on every resume.
    pub binary_frames: bool,
}

impl WebSocketConnectArgs {
    /// Arguments for `url` with default timeouts, no token and no reconnect.
    pub fn new(url: impl Into<String>) -> Self {
        WebSocketConnectArgs {
            url: url.into(),
            bearer_token: None,
            connect_timeout: Duration::from_secs(10),
            options: ClientOptions::default(),
            reconnect: None,
            ca_pem: None,
            keepalive: None,
            binary_frames: true,
        }
    }
}
