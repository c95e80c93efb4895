//! `--listen` URLs: `stdio://`, `ws://IP:PORT` or `wss://IP:PORT`, with
//! the exact error messages of SPEC 1.2.

use std::net::SocketAddr;

/// Where the server accepts connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddress {
    Stdio,
    WebSocket(SocketAddr),
    /// Websocket over TLS (`--tls-cert`, `--tls-key`).
    SecureWebSocket(SocketAddr),
}

impl ListenAddress {
    /// The socket address of a websocket listener.
    pub fn socket_address(&self) -> Option<SocketAddr> {
        match self {
            ListenAddress::Stdio => None,
            ListenAddress::WebSocket(address) | ListenAddress::SecureWebSocket(address) => {
                Some(*address)
            }
        }
    }
}

/// A `--listen` value that cannot be used; the message is printed as is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ListenError {
    #[error("unsupported --listen URL `{0}`; expected `stdio://` or `ws://IP:PORT`")]
    Unsupported(String),
    #[error("invalid websocket --listen URL `{0}`; expected `ws://IP:PORT`")]
    InvalidWebSocket(String),
    #[error("invalid websocket --listen URL `{0}`; expected `wss://IP:PORT`")]
    InvalidSecureWebSocket(String),
}

impl std::str::FromStr for ListenAddress {
    type Err = ListenError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        if url == "stdio://" || url == "stdio" {
            return Ok(ListenAddress::Stdio);
        }
        if let Some(rest) = url.strip_prefix("ws://") {
            // Only a literal IP and port: no host names (nothing to resolve,
            // nothing ambiguous about which interface is exposed), no path.
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            return rest
                .parse::<SocketAddr>()
                .map(ListenAddress::WebSocket)
                .map_err(|_| ListenError::InvalidWebSocket(url.to_string()));
        }
        if let Some(rest) = url.strip_prefix("wss://") {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            return rest
                .parse::<SocketAddr>()
                .map(ListenAddress::SecureWebSocket)
                .map_err(|_| ListenError::InvalidSecureWebSocket(url.to_string()));
        }
        Err(ListenError::Unsupported(url.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        assert_eq!("stdio://".parse(), Ok(ListenAddress::Stdio));
        assert_eq!(
            "ws://127.0.0.1:0".parse(),
            Ok(ListenAddress::WebSocket("127.0.0.1:0".parse().unwrap()))
        );
        assert_eq!(
            "ws://[::1]:8080".parse(),
            Ok(ListenAddress::WebSocket("[::1]:8080".parse().unwrap()))
        );
    }

    #[test]
    fn errors_use_the_exact_v0_messages() {
        let err = "http://x".parse::<ListenAddress>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported --listen URL `http://x`; expected `stdio://` or `ws://IP:PORT`"
        );
        let err = "ws://localhost:80".parse::<ListenAddress>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid websocket --listen URL `ws://localhost:80`; expected `ws://IP:PORT`"
        );
        assert!(matches!(
            "ws://127.0.0.1".parse::<ListenAddress>(),
            Err(ListenError::InvalidWebSocket(_))
        ));
    }
}
