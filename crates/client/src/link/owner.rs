//! Where a reconnecting client resumes its session, and how it names the
//! server when it gives up.
//!
//! A session lives on one server of a fleet, the `serverId` of the
//! initialize result. Through a load balancer a resume must reach that
//! server: by default the client appends the id to the connect URL's path
//! (`wss://balancer/exec/` → `wss://balancer/exec/SERVER_ID/`), which a
//! balancer routes on and a lone server accepts as its own (see
//! docs/DEPLOY.md).

use exec_server_protocol::RpcError;
use exec_server_protocol::v0::InitializeResponse;

use crate::{ClientError, ResumeTarget};

/// The URL to resume at, for a session owned by `server_id`.
pub(crate) fn resume_url(
    connect_url: &str,
    target: &ResumeTarget,
    server_id: Option<&str>,
) -> String {
    let Some(server_id) = server_id else {
        return connect_url.to_string();
    };
    match target {
        ResumeTarget::SameUrl => connect_url.to_string(),
        ResumeTarget::Template(template) => template.replace("{serverId}", server_id),
        ResumeTarget::OwnerPath => append_to_path(connect_url, server_id),
    }
}

/// `scheme://authority/path?query` with `/segment/` appended to the path,
/// unless the path already ends with that segment.
fn append_to_path(url: &str, segment: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let (base, query) = match url.find(['?', '#']) {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let path_start = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let (authority, path) = base.split_at(path_start);
    let path = path.trim_end_matches('/');
    if path.rsplit('/').next() == Some(segment) {
        return format!("{authority}{path}/{query}");
    }
    format!("{authority}{path}/{segment}/{query}")
}

/// A URL without its query (which may carry `?token=`), for messages.
pub(crate) fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// The name used for the server in errors: its `serverId`, or the URL.
pub(crate) fn server_name(info: Option<&InitializeResponse>, url: &str) -> String {
    info.and_then(|info| info.server_id.clone())
        .unwrap_or_else(|| url.to_string())
}

/// The error for a resume the server refused. A refusal that names another
/// owner means the balancer did not reach ours (it may have routed around
/// a dead server): the owner is unavailable.
pub(crate) fn refusal_error(error: RpcError) -> ClientError {
    let owner = error
        .data
        .as_ref()
        .and_then(|data| data.get("ownerServerId"))
        .and_then(|owner| owner.as_str())
        .map(str::to_string);
    match owner {
        Some(server_id) => ClientError::ServerUnavailable {
            server_id,
            reason: format!("the resume reached another server: {}", error.message),
        },
        None => ClientError::Rpc(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_path_is_appended_once_keeping_the_query() {
        let owner = ResumeTarget::OwnerPath;
        let url = |u: &str| resume_url(u, &owner, Some("h2"));
        assert_eq!(url("ws://lb:8080/exec/"), "ws://lb:8080/exec/h2/");
        assert_eq!(url("ws://lb:8080/exec"), "ws://lb:8080/exec/h2/");
        assert_eq!(url("ws://lb:8080"), "ws://lb:8080/h2/");
        assert_eq!(url("ws://lb:8080/"), "ws://lb:8080/h2/");
        assert_eq!(url("wss://lb/exec/?token=t"), "wss://lb/exec/h2/?token=t");
        assert_eq!(url("ws://lb/exec/h2/"), "ws://lb/exec/h2/");
        assert_eq!(url("ws://lb/exec/h2"), "ws://lb/exec/h2/");
        assert_eq!(
            resume_url("ws://lb/", &owner, None),
            "ws://lb/",
            "a server without an id is resumed where it was"
        );
        assert_eq!(
            resume_url("ws://lb/x", &ResumeTarget::SameUrl, Some("h2")),
            "ws://lb/x"
        );
        let template = ResumeTarget::Template("wss://{serverId}.example.com/".into());
        assert_eq!(
            resume_url("ws://lb/", &template, Some("h2")),
            "wss://h2.example.com/"
        );
    }

    #[test]
    fn a_refusal_naming_another_owner_means_the_owner_is_unavailable() {
        let mut error =
            RpcError::invalid_request("cannot resume session: it belongs to server `h2`");
        error.data = Some(serde_json::json!({"ownerServerId": "h2", "serverId": "h1"}));
        match refusal_error(error) {
            ClientError::ServerUnavailable { server_id, .. } => assert_eq!(server_id, "h2"),
            other => panic!("{other:?}"),
        }
        let expired = RpcError::invalid_request("cannot resume session: it does not exist");
        assert!(matches!(refusal_error(expired), ClientError::Rpc(_)));
    }
}
