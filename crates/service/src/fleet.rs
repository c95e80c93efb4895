//! Many hosts behind a load balancer: who this server is, how a session
//! finds its way back to it, and draining before a shutdown (SPEC section 7,
//! docs/DEPLOY.md).
//!
//! A fleet is many independent servers; there is no cluster state. What
//! makes it work with ordinary balancers (HAProxy, nginx, a Kubernetes
//! Gateway) is three public facts:
//!
//! - **A server id** ([`ServerId`], `--server-id`, default the host name, so
//!   a Kubernetes pod is named after itself). `initialize` returns it as
//!   `serverId`, `/readyz` names it.
//! - **Routable paths.** The websocket endpoint is `PREFIX/` (any server: a
//!   balancer sends new sessions there) and `PREFIX/SERVER_ID/` (exactly
//!   this server: a balancer routes resumes there by the path alone, which
//!   browsers can set, unlike websocket headers). A request whose path names
//!   another server is answered `421 Misdirected Request`, so a wrong
//!   balancer map shows up at once instead of as a strange session.
//! - **Owner-stamped session ids.** A session id is `SERVER_ID~SECRET`: the
//!   owner is readable by anyone who holds the id, the secret part never
//!   leaves the JSON body and is never logged. Resuming on the wrong server
//!   is refused with `-32600` naming the owner ([`check_owner`]), never a
//!   silently new session.
//!
//! Draining is a phase of the server's lifecycle
//! ([`Phase::Draining`](crate::Phase::Draining)): from the first SIGTERM
//! with a grace period, `/readyz` answers 503 (the balancer stops sending
//! new sessions) and upgrades on the unrouted path are refused with 503 (a
//! balancer with `retry-on 503` sends them elsewhere), while attached
//! connections and resumes by server id keep working until the grace ends.

use std::sync::Arc;

use crate::error::ApiError;
use axum::http::StatusCode;

/// Longest server id, in bytes. Kubernetes pod names are at most 63.
pub const MAX_SERVER_ID_BYTES: usize = 128;

/// Separates the owner's server id from the secret in a session id.
const OWNER_SEPARATOR: char = '~';

/// The public name of one server in a fleet: a path segment and a DNS-safe
/// label (`[A-Za-z0-9._-]`, at most [`MAX_SERVER_ID_BYTES`], not only dots).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerId(Arc<str>);

/// Why a `--server-id` value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServerIdError {
    #[error("--server-id must not be empty")]
    Empty,
    #[error("--server-id is longer than {MAX_SERVER_ID_BYTES} bytes")]
    TooLong,
    #[error(
        "--server-id `{0}` may only contain letters, digits, `.`, `_` and `-` (it is a URL path segment), and not only dots"
    )]
    Invalid(String),
}

impl ServerId {
    /// A validated server id.
    pub fn new(id: &str) -> Result<ServerId, ServerIdError> {
        if id.is_empty() {
            return Err(ServerIdError::Empty);
        }
        if id.len() > MAX_SERVER_ID_BYTES {
            return Err(ServerIdError::TooLong);
        }
        if !id.bytes().all(is_id_byte) || id.bytes().all(|b| b == b'.') {
            return Err(ServerIdError::Invalid(id.to_string()));
        }
        Ok(ServerId(id.into()))
    }

    /// The host name (on Kubernetes: the pod name), made valid if needed:
    /// other characters become `-`, and an unusable name becomes
    /// `exec-server`.
    pub fn from_host_name() -> ServerId {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let cleaned: String = name
            .trim()
            .bytes()
            .take(MAX_SERVER_ID_BYTES)
            .map(|b| if is_id_byte(b) { b as char } else { '-' })
            .collect();
        ServerId::new(&cleaned).unwrap_or_else(|_| ServerId("exec-server".into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ServerId {
    fn default() -> Self {
        ServerId::from_host_name()
    }
}

impl std::fmt::Display for ServerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// A session id owned by `owner`: `OWNER~SECRET`.
pub(crate) fn session_id(owner: &ServerId, secret: &str) -> String {
    format!("{owner}{OWNER_SEPARATOR}{secret}")
}

/// The owner named by a session id, if it names a valid one.
fn owner_of(session_id: &str) -> Option<&str> {
    let (owner, _secret) = session_id.split_once(OWNER_SEPARATOR)?;
    ServerId::new(owner).ok().map(|_| owner)
}

/// Refuses to resume a session that another server owns, naming the owner
/// (in the message and as `data.ownerServerId`) so the client can go there.
/// Ids that name no valid owner pass: the session lookup refuses them.
pub(crate) fn check_owner(own: &ServerId, session_id: &str) -> Result<(), ApiError> {
    match owner_of(session_id) {
        Some(owner) if owner != own.as_str() => Err(ApiError::SessionOnOtherServer {
            owner: owner.to_string(),
            own: own.to_string(),
        }),
        _ => Ok(()),
    }
}

/// A normalized `--path-prefix`: empty (the root) or `/a/b` without a
/// trailing slash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathPrefix(String);

/// Why a `--path-prefix` was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "--path-prefix `{0}` must be an absolute URL path of letters, digits, `.`, `_`, `-` and `/`, e.g. `/exec`"
)]
pub struct PathPrefixError(String);

impl PathPrefix {
    pub fn new(prefix: &str) -> Result<PathPrefix, PathPrefixError> {
        let invalid = || PathPrefixError(prefix.to_string());
        if !prefix.starts_with('/') || prefix.len() > 256 {
            return Err(invalid());
        }
        let trimmed = prefix.trim_end_matches('/');
        let segments_ok = trimmed.split('/').skip(1).all(|segment| {
            !segment.is_empty()
                && segment.bytes().all(is_id_byte)
                && !segment.bytes().all(|b| b == b'.')
        });
        if !segments_ok {
            return Err(invalid());
        }
        Ok(PathPrefix(trimmed.to_string()))
    }

    /// `""` for the root, else `/a/b`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The axum route patterns of the websocket endpoint: the pool path and
    /// the routed path, each with and without a trailing slash.
    pub(crate) fn endpoint_routes(&self) -> Vec<String> {
        let base = &self.0;
        let mut routes = vec![format!("{base}/")];
        if !base.is_empty() {
            routes.push(base.clone());
        }
        routes.push(format!("{base}/{{server_id}}"));
        routes.push(format!("{base}/{{server_id}}/"));
        routes
    }
}

/// Which server a request path asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathTarget {
    /// `PREFIX/`: any server.
    Pool,
    /// `PREFIX/OWN_ID/`: this server by name.
    ThisServer,
    /// `PREFIX/OTHER/`: a balancer sent another server's traffic here.
    OtherServer(String),
}

/// Classifies a path that matched one of [`PathPrefix::endpoint_routes`].
pub(crate) fn path_target(prefix: &PathPrefix, own: &ServerId, path: &str) -> PathTarget {
    let rest = path.strip_prefix(prefix.as_str()).unwrap_or(path);
    let named = rest.trim_matches('/');
    if named.is_empty() {
        PathTarget::Pool
    } else if named == own.as_str() {
        PathTarget::ThisServer
    } else {
        // Bounded by the route pattern (one segment) and echoed escaped by
        // Debug in the response, never interpreted.
        PathTarget::OtherServer(named.chars().take(MAX_SERVER_ID_BYTES).collect())
    }
}

/// `GET /readyz`: 200 `ok ID` while the server takes new sessions, 503
/// `draining ID` from the start of a drain. No authentication, nothing
/// else revealed.
pub(crate) fn readiness(own: &ServerId, draining: bool) -> (StatusCode, String) {
    if draining {
        (StatusCode::SERVICE_UNAVAILABLE, format!("draining {own}\n"))
    } else {
        (StatusCode::OK, format!("ok {own}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> ServerId {
        ServerId::new(text).unwrap()
    }

    #[test]
    fn server_ids_are_path_segments() {
        assert!(ServerId::new("exec-server-0").is_ok());
        assert!(ServerId::new("host.example.com").is_ok());
        assert_eq!(ServerId::new(""), Err(ServerIdError::Empty));
        assert!(ServerId::new("a/b").is_err());
        assert!(ServerId::new("a~b").is_err());
        assert!(ServerId::new("..").is_err());
        assert!(ServerId::new(&"x".repeat(129)).is_err());
        let host = ServerId::from_host_name();
        assert!(ServerId::new(host.as_str()).is_ok(), "{host}");
    }

    #[test]
    fn session_ids_name_their_owner_and_other_servers_refuse_them() {
        let h1 = id("h1");
        let token = session_id(&h1, "0123abcd");
        assert_eq!(token, "h1~0123abcd");
        assert!(check_owner(&h1, &token).is_ok());
        let error =
            exec_server_protocol::RpcError::from(check_owner(&id("h2"), &token).unwrap_err());
        assert_eq!(error.code, -32600);
        assert!(error.message.contains("belongs to server `h1`"), "{error}");
        assert_eq!(error.data.unwrap()["ownerServerId"], "h1");
        // Ids without a valid owner are left to the session lookup.
        assert!(check_owner(&h1, "legacy-token").is_ok());
        assert!(check_owner(&h1, "bad/owner~x").is_ok());
    }

    #[test]
    fn path_prefixes_are_normalized_and_classify_paths() {
        assert_eq!(PathPrefix::new("/").unwrap().as_str(), "");
        assert_eq!(PathPrefix::new("/exec/").unwrap().as_str(), "/exec");
        assert!(PathPrefix::new("exec").is_err());
        assert!(PathPrefix::new("/a//b").is_err());
        assert!(PathPrefix::new("/a/../b").is_err());
        let prefix = PathPrefix::new("/exec").unwrap();
        assert_eq!(
            prefix.endpoint_routes(),
            ["/exec/", "/exec", "/exec/{server_id}", "/exec/{server_id}/"]
        );
        let h1 = id("h1");
        assert_eq!(path_target(&prefix, &h1, "/exec/"), PathTarget::Pool);
        assert_eq!(path_target(&prefix, &h1, "/exec"), PathTarget::Pool);
        assert_eq!(
            path_target(&prefix, &h1, "/exec/h1/"),
            PathTarget::ThisServer
        );
        assert_eq!(
            path_target(&prefix, &h1, "/exec/h2"),
            PathTarget::OtherServer("h2".into())
        );
        let root = PathPrefix::default();
        assert_eq!(root.endpoint_routes()[0], "/");
        assert_eq!(path_target(&root, &h1, "/h1/"), PathTarget::ThisServer);
    }

    #[test]
    fn readiness_turns_503_when_draining() {
        let h1 = id("h1");
        assert_eq!(readiness(&h1, false), (StatusCode::OK, "ok h1\n".into()));
        assert_eq!(
            readiness(&h1, true),
            (StatusCode::SERVICE_UNAVAILABLE, "draining h1\n".into())
        );
    }
}
