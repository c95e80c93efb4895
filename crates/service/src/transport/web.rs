//! The browser terminal (`--web`): a page at each websocket endpoint path
//! (`/` by default; `PREFIX/` and `PREFIX/SERVER_ID/` with `--path-prefix`)
//! and its files under `ENDPOINT/assets/`, embedded in the binary. The page
//! speaks the process API over the websocket at its own path; it names its
//! files and the websocket relative to that path, so it works behind a
//! balancer that routes by prefix.
//!
//! Nothing here is secret: the page and its scripts are the same for
//! everyone, so they are served without the token; the token is what the
//! page presents when it opens the websocket (docs/SECURITY.md). Every
//! response carries a strict Content-Security-Policy: scripts only from
//! this origin (no inline script, no `eval`), connections only to this
//! origin. Styles allow `'unsafe-inline'` because xterm.js sizes and themes
//! its terminal with `<style>` elements it creates at run time; the page
//! never inserts markup it did not write, so there is nothing for injected
//! CSS to ride on.
//!
//! The vendored xterm.js files under `web/vendor/` are refreshed from the
//! npm registry by `scripts/refresh-web-vendor.sh` (pinned versions, with
//! their licences, which are served too).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::websocket::WsState;

/// The Content-Security-Policy of every page response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    /// Path under `/assets/`.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr, $file:literal) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), $file)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

static INDEX: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/index.html"));

static ASSETS: &[Asset] = &[
    asset!("app.js", JS, "/web/app.js"),
    asset!("terminal.js", JS, "/web/terminal.js"),
    asset!("app.css", CSS, "/web/app.css"),
    asset!("icon.svg", "image/svg+xml", "/web/icon.svg"),
    asset!("client/index.js", JS, "/../../clients/js/src/index.js"),
    asset!("client/cursor.js", JS, "/../../clients/js/src/cursor.js"),
    asset!("vendor/xterm/xterm.mjs", JS, "/web/vendor/xterm/xterm.mjs"),
    asset!("vendor/xterm/xterm.css", CSS, "/web/vendor/xterm/xterm.css"),
    asset!("vendor/xterm/LICENSE", TEXT, "/web/vendor/xterm/LICENSE"),
    asset!(
        "vendor/addon-fit/addon-fit.mjs",
        JS,
        "/web/vendor/addon-fit/addon-fit.mjs"
    ),
    asset!(
        "vendor/addon-fit/LICENSE",
        TEXT,
        "/web/vendor/addon-fit/LICENSE"
    ),
    asset!(
        "vendor/addon-webgl/addon-webgl.mjs",
        JS,
        "/web/vendor/addon-webgl/addon-webgl.mjs"
    ),
    asset!(
        "vendor/addon-webgl/LICENSE",
        TEXT,
        "/web/vendor/addon-webgl/LICENSE"
    ),
    asset!(
        "vendor/addon-unicode11/addon-unicode11.mjs",
        JS,
        "/web/vendor/addon-unicode11/addon-unicode11.mjs"
    ),
    asset!(
        "vendor/addon-unicode11/LICENSE",
        TEXT,
        "/web/vendor/addon-unicode11/LICENSE"
    ),
    asset!(
        "vendor/addon-web-links/addon-web-links.mjs",
        JS,
        "/web/vendor/addon-web-links/addon-web-links.mjs"
    ),
    asset!(
        "vendor/addon-web-links/LICENSE",
        TEXT,
        "/web/vendor/addon-web-links/LICENSE"
    ),
];

/// The security headers every page response carries.
fn secured(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_TYPE, content_type);
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    // Other sites may neither embed these files nor share a browsing
    // context group with the page.
    set(
        headers,
        header::HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(
        headers,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    // The files change with the binary; revalidating costs little on the
    // connections this page is used over.
    set(headers, header::CACHE_CONTROL, "no-cache");
    response
}

/// `GET ENDPOINT` without a websocket upgrade: the page. Its links are
/// relative, so an endpoint path without its final `/` is redirected to
/// the one with it.
pub(crate) fn page(path: &str) -> Response {
    if !path.ends_with('/') {
        let location = format!("{path}/");
        return match HeaderValue::from_str(&location) {
            Ok(location) => (
                StatusCode::PERMANENT_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response(),
            Err(_) => (StatusCode::NOT_FOUND, "not found\n").into_response(),
        };
    }
    secured("text/html; charset=utf-8", INDEX)
}

/// `GET ENDPOINT/assets/FILE`.
pub(crate) async fn asset(Path(params): Path<HashMap<String, String>>) -> Response {
    let file = params.get("file").map(String::as_str).unwrap_or_default();
    match ASSETS.iter().find(|asset| asset.path == file) {
        Some(asset) => secured(asset.content_type, asset.body),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// `GET /auth`: 204 when the request would be allowed to open the websocket
/// (origin, then `Authorization: Bearer TOKEN`), else the same 403, 401 or
/// 400.
/// The page asks it after a failed websocket handshake, whose status a
/// browser does not reveal, to tell a wrong token from a server that is
/// down. It answers nothing the websocket upgrade does not.
pub(crate) async fn auth(State(state): State<WsState>, headers: HeaderMap, uri: Uri) -> Response {
    match state.options.policy.check(&headers, &uri) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(refusal) => super::websocket::refused(refusal),
    }
}

/// Whether a request asks for a websocket upgrade (as opposed to a browser
/// navigating to the page).
pub(crate) fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
}

/// The total size of the embedded page and assets, for tests and docs.
pub fn embedded_bytes() -> usize {
    INDEX.len() + ASSETS.iter().map(|asset| asset.body.len()).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_embedded() {
        let index = std::str::from_utf8(INDEX).unwrap();
        for reference in index
            .split(['"', '\''])
            .filter_map(|piece| piece.strip_prefix("assets/"))
        {
            assert!(
                ASSETS.iter().any(|asset| asset.path == reference),
                "index.html names assets/{reference}, which is not embedded"
            );
        }
    }

    #[test]
    fn the_policy_forbids_inline_scripts_and_foreign_connections() {
        assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self';"));
        assert!(CONTENT_SECURITY_POLICY.contains("connect-src 'self';"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-eval"));
        let script = CONTENT_SECURITY_POLICY
            .split(';')
            .find(|directive| directive.trim().starts_with("script-src"))
            .unwrap();
        assert!(!script.contains("unsafe-inline"));
    }
}
