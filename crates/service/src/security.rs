//! Who may open a websocket connection (SPEC section 4).
//!
//! exec-server runs arbitrary commands as its user, so the websocket upgrade
//! is where trust is decided, before any protocol message is read:
//!
//! 1. **Origin.** A browser always sends `Origin`. A page the user happens
//!    to visit must not reach a server on their machine (cross-site
//!    websocket hijacking), including through DNS rebinding, where a host
//!    name the attacker controls resolves to 127.0.0.1. An upgrade with an
//!    `Origin` header is refused with 403 unless the origin is listed with
//!    `--allow-origin`, or is the server's own page: `http(s)://` plus the
//!    request's `Host`, and only when that `Host` is an IP literal or
//!    `localhost` (a rebinding attack needs a host name of its own, so it
//!    never qualifies).
//! 2. **Token.** With a token configured, the upgrade must carry
//!    `Authorization: Bearer TOKEN`, the subprotocol
//!    `exec-server.bearer.BASE64URL(TOKEN)` in `Sec-WebSocket-Protocol`
//!    (browsers cannot set headers on a websocket, but they can offer
//!    subprotocols; the browser page uses this, see docs/SECURITY.md), or
//!    `?token=TOKEN`; otherwise 401. The comparison takes the same time
//!    wherever the first difference is. The token is never logged, and its
//!    `Debug` form is redacted.
//! 3. **One credential.** A request presents the token once, in one of
//!    those three places: two `Authorization` headers, two `token=`
//!    parameters, two bearer subprotocols, or any two places together (a
//!    bearer header next to a `token=` parameter, a bearer subprotocol next
//!    to either) are refused with 400 whatever they hold, so no combination
//!    passes on whichever part happens to match (and a proxy that adds a
//!    header cannot be confused with the client's). `Authorization` headers
//!    of other schemes (`Basic` for a proxy in front) and subprotocols other
//!    than the bearer one are not credentials and are ignored.

use std::net::IpAddr;

use axum::http::{HeaderMap, Uri, header};
use base64::Engine as _;

/// The subprotocol a websocket client offers (and the server selects) to
/// speak exec-server's JSON-RPC; browsers need one selected when they
/// offer any.
pub const SUBPROTOCOL: &str = "exec-server";

/// The prefix of the subprotocol that carries the token, base64url-encoded
/// without padding (subprotocol names allow no `+`, `/` or `=`). The
/// server never selects it, so the token is not echoed back.
pub const BEARER_SUBPROTOCOL_PREFIX: &str = "exec-server.bearer.";

/// A secret bearer token.
#[derive(Clone)]
pub struct AuthToken(String);

impl AuthToken {
    /// A token must be non-empty; surrounding whitespace (a trailing
    /// newline in a token file) is not part of it.
    pub fn new(token: &str) -> Option<AuthToken> {
        let token = token.trim();
        (!token.is_empty()).then(|| AuthToken(token.to_string()))
    }

    /// Compares in time independent of where the inputs differ.
    pub fn matches(&self, candidate: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate.as_bytes())
    }

    /// Compares with a token carried base64url-encoded (no padding), as in
    /// the bearer subprotocol. The server encodes its own token rather than
    /// decoding the candidate, so no attacker input is decoded.
    pub fn matches_base64url(&self, candidate: &str) -> bool {
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0.as_bytes());
        constant_time_eq(encoded.as_bytes(), candidate.as_bytes())
    }
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthToken([redacted])")
    }
}

/// Equal-length inputs take the same time whatever their content; the
/// length itself is not secret-dependent work.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut difference = 0u8;
    for (x, y) in a.iter().zip(b) {
        difference |= x ^ y;
    }
    // Keep the compiler from turning the loop into an early exit.
    std::hint::black_box(difference) == 0
}

/// The access rules for websocket upgrades.
#[derive(Clone, Debug, Default)]
pub struct AccessPolicy {
    /// Required bearer token; `None` means no authentication.
    pub token: Option<AuthToken>,
    /// Origins allowed besides the server's own page, e.g.
    /// `https://ide.example.com` (scheme, host and port, no path).
    pub allowed_origins: Vec<String>,
}

/// Why an upgrade was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401: missing or wrong token.
    Unauthorized,
    /// 400: the token presented more than once (see the module docs).
    AmbiguousCredentials,
    /// 403: a browser origin that is not allowed.
    ForbiddenOrigin,
}

impl AccessPolicy {
    /// Decides on one upgrade request.
    pub fn check(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), Refusal> {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().map_err(|_| Refusal::ForbiddenOrigin)?;
            if !self.origin_allowed(origin, headers) {
                return Err(Refusal::ForbiddenOrigin);
            }
        }
        let Some(token) = &self.token else {
            return Ok(());
        };
        let matched = match presented_credential(headers, uri)? {
            Some(Credential::Plain(candidate)) => token.matches(&candidate),
            Some(Credential::Base64Url(candidate)) => token.matches_base64url(&candidate),
            None => false,
        };
        if matched {
            Ok(())
        } else {
            Err(Refusal::Unauthorized)
        }
    }

    fn origin_allowed(&self, origin: &str, headers: &HeaderMap) -> bool {
        let origin = origin.trim_end_matches('/');
        if self
            .allowed_origins
            .iter()
            .any(|allowed| allowed.trim_end_matches('/') == origin)
        {
            return true;
        }
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        is_literal_host(host)
            && (origin == format!("http://{host}") || origin == format!("https://{host}"))
    }
}

/// A token as one request presents it.
enum Credential {
    /// `Authorization: Bearer TOKEN`, or `token=TOKEN` percent-decoded.
    Plain(String),
    /// The bearer subprotocol: the token base64url-encoded.
    Base64Url(String),
}

/// The one token a request presents: from a `Bearer` header, a `token=`
/// query parameter or the bearer subprotocol; more than one is
/// [`Refusal::AmbiguousCredentials`].
fn presented_credential(headers: &HeaderMap, uri: &Uri) -> Result<Option<Credential>, Refusal> {
    let authorization: Vec<_> = headers.get_all(header::AUTHORIZATION).iter().collect();
    if authorization.len() > 1 {
        return Err(Refusal::AmbiguousCredentials);
    }
    let mut candidates = Vec::new();
    if let Some(value) = authorization.first() {
        // Not UTF-8: not a bearer token of ours, but not ignorable either.
        let value = value.to_str().map_err(|_| Refusal::Unauthorized)?;
        if let Some(candidate) = value.strip_prefix("Bearer ") {
            candidates.push(Credential::Plain(candidate.trim().to_string()));
        }
    }
    candidates.extend(
        uri.query()
            .into_iter()
            .flat_map(|query| query.split('&'))
            .filter_map(|pair| pair.strip_prefix("token="))
            .map(|candidate| Credential::Plain(percent_decode(candidate))),
    );
    for value in headers.get_all(header::SEC_WEBSOCKET_PROTOCOL) {
        // Same as a non-UTF-8 `Authorization`: it may hide a second token.
        let value = value.to_str().map_err(|_| Refusal::Unauthorized)?;
        candidates.extend(
            value
                .split(',')
                .filter_map(|protocol| protocol.trim().strip_prefix(BEARER_SUBPROTOCOL_PREFIX))
                .map(|candidate| Credential::Base64Url(candidate.to_string())),
        );
    }
    if candidates.len() > 1 {
        return Err(Refusal::AmbiguousCredentials);
    }
    Ok(candidates.pop())
}

/// `127.0.0.1:8080`, `[::1]:8080`, `localhost:8080`: hosts a DNS rebinding
/// attack cannot impersonate.
fn is_literal_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

/// Decodes `%XX` escapes (tokens in a query string may be escaped).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn policy(token: Option<&str>, origins: &[&str]) -> AccessPolicy {
        AccessPolicy {
            token: token.and_then(AuthToken::new),
            allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
        }
    }

    #[test]
    fn tokens_are_required_when_configured() {
        let p = policy(Some("s3cret"), &[]);
        let root: Uri = "/".parse().unwrap();
        assert_eq!(p.check(&headers(&[]), &root), Err(Refusal::Unauthorized));
        let wrong = headers(&[(header::AUTHORIZATION, "Bearer nope")]);
        assert_eq!(p.check(&wrong, &root), Err(Refusal::Unauthorized));
        let right = headers(&[(header::AUTHORIZATION, "Bearer s3cret")]);
        assert_eq!(p.check(&right, &root), Ok(()));
        assert_eq!(
            p.check(&headers(&[]), &"/?token=s3cret".parse().unwrap()),
            Ok(())
        );
        assert_eq!(
            p.check(&headers(&[]), &"/?a=1&token=s3cre".parse().unwrap()),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(policy(None, &[]).check(&headers(&[]), &root), Ok(()));
    }

    #[test]
    fn browsers_may_carry_the_token_in_a_subprotocol() {
        let p = policy(Some("s3cret/+="), &[]);
        let root: Uri = "/".parse().unwrap();
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("s3cret/+=");
        let offer = |value: &str| headers(&[(header::SEC_WEBSOCKET_PROTOCOL, value)]);
        let right = format!("exec-server, exec-server.bearer.{encoded}");
        assert_eq!(p.check(&offer(&right), &root), Ok(()));
        let wrong = format!("exec-server, exec-server.bearer.{encoded}x");
        assert_eq!(p.check(&offer(&wrong), &root), Err(Refusal::Unauthorized));
        // The raw token is not accepted in place of its encoding.
        assert_eq!(
            p.check(&offer("exec-server.bearer.s3cret/+="), &root),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            p.check(&offer("exec-server"), &root),
            Err(Refusal::Unauthorized)
        );
    }

    #[test]
    fn the_token_is_presented_exactly_once() {
        let p = policy(Some("s3cret"), &[]);
        let root: Uri = "/".parse().unwrap();
        let right = "Bearer s3cret";
        let mut twice = HeaderMap::new();
        twice.append(header::AUTHORIZATION, HeaderValue::from_static(right));
        twice.append(header::AUTHORIZATION, HeaderValue::from_static(right));
        assert_eq!(p.check(&twice, &root), Err(Refusal::AmbiguousCredentials));
        let mut wrong_then_right = HeaderMap::new();
        wrong_then_right.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        wrong_then_right.append(header::AUTHORIZATION, HeaderValue::from_static(right));
        assert_eq!(
            p.check(&wrong_then_right, &root),
            Err(Refusal::AmbiguousCredentials)
        );
        // A header and a query parameter, whichever is right.
        let query: Uri = "/?token=s3cret".parse().unwrap();
        let wrong = headers(&[(header::AUTHORIZATION, "Bearer nope")]);
        assert_eq!(p.check(&wrong, &query), Err(Refusal::AmbiguousCredentials));
        let both_right = headers(&[(header::AUTHORIZATION, right)]);
        assert_eq!(
            p.check(&both_right, &query),
            Err(Refusal::AmbiguousCredentials)
        );
        let two_params: Uri = "/?token=nope&token=s3cret".parse().unwrap();
        assert_eq!(
            p.check(&headers(&[]), &two_params),
            Err(Refusal::AmbiguousCredentials)
        );
        // Another scheme is a proxy's business, not a second credential.
        let basic = headers(&[(header::AUTHORIZATION, "Basic dXNlcjpwdw==")]);
        assert_eq!(p.check(&basic, &query), Ok(()));
        assert_eq!(p.check(&basic, &root), Err(Refusal::Unauthorized));
        // Without a token configured, credentials are not looked at.
        assert_eq!(policy(None, &[]).check(&twice, &query), Ok(()));
    }

    #[test]
    fn the_bearer_subprotocol_is_one_credential_among_the_others() {
        let p = policy(Some("s3cret"), &[]);
        let root: Uri = "/".parse().unwrap();
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("s3cret");
        let offer = format!("exec-server, exec-server.bearer.{encoded}");
        let protocol = (header::SEC_WEBSOCKET_PROTOCOL, offer.as_str());
        // Next to a header or a query token, whichever is right.
        for authorization in ["Bearer s3cret", "Bearer nope"] {
            let both = headers(&[protocol.clone(), (header::AUTHORIZATION, authorization)]);
            assert_eq!(
                p.check(&both, &root),
                Err(Refusal::AmbiguousCredentials),
                "{authorization}"
            );
        }
        for query in ["/?token=s3cret", "/?token=nope"] {
            assert_eq!(
                p.check(
                    &headers(std::slice::from_ref(&protocol)),
                    &query.parse().unwrap()
                ),
                Err(Refusal::AmbiguousCredentials),
                "{query}"
            );
        }
        // Two bearer subprotocols, in one list or in two headers.
        let listed_twice = format!("exec-server.bearer.nope, exec-server.bearer.{encoded}");
        let twice = headers(&[(header::SEC_WEBSOCKET_PROTOCOL, listed_twice.as_str())]);
        assert_eq!(p.check(&twice, &root), Err(Refusal::AmbiguousCredentials));
        let mut two_headers = HeaderMap::new();
        for value in ["exec-server.bearer.nope", offer.as_str()] {
            two_headers.append(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(value).unwrap(),
            );
        }
        assert_eq!(
            p.check(&two_headers, &root),
            Err(Refusal::AmbiguousCredentials)
        );
        // Other subprotocols are not credentials; a proxy's Basic header is
        // not one either.
        let with_basic = headers(&[
            protocol.clone(),
            (header::AUTHORIZATION, "Basic dXNlcjpwdw=="),
        ]);
        assert_eq!(p.check(&with_basic, &root), Ok(()));
        assert_eq!(p.check(&headers(&[protocol]), &root), Ok(()));
    }

    #[test]
    fn browser_origins_need_to_be_the_servers_own_page_or_allowed() {
        let p = policy(None, &["https://ide.example.com"]);
        let root: Uri = "/".parse().unwrap();
        let own = headers(&[
            (header::HOST, "127.0.0.1:9000"),
            (header::ORIGIN, "http://127.0.0.1:9000"),
        ]);
        assert_eq!(p.check(&own, &root), Ok(()));
        let foreign = headers(&[
            (header::HOST, "127.0.0.1:9000"),
            (header::ORIGIN, "https://evil.example"),
        ]);
        assert_eq!(p.check(&foreign, &root), Err(Refusal::ForbiddenOrigin));
        // DNS rebinding: the attacker's name resolves to us; Host and Origin agree.
        let rebinding = headers(&[
            (header::HOST, "evil.example:9000"),
            (header::ORIGIN, "http://evil.example:9000"),
        ]);
        assert_eq!(p.check(&rebinding, &root), Err(Refusal::ForbiddenOrigin));
        let listed = headers(&[
            (header::HOST, "127.0.0.1:9000"),
            (header::ORIGIN, "https://ide.example.com"),
        ]);
        assert_eq!(p.check(&listed, &root), Ok(()));
        let localhost = headers(&[
            (header::HOST, "localhost:9000"),
            (header::ORIGIN, "http://localhost:9000"),
        ]);
        assert_eq!(p.check(&localhost, &root), Ok(()));
    }

    #[test]
    fn the_token_is_redacted_and_compared_exactly() {
        let token = AuthToken::new(" abc\n").unwrap();
        assert_eq!(format!("{token:?}"), "AuthToken([redacted])");
        assert!(token.matches("abc"));
        assert!(!token.matches("abd"));
        assert!(!token.matches("abcd"));
        assert!(AuthToken::new("  \n").is_none());
        assert_eq!(percent_decode("a%2Fb+c"), "a/b c");
    }
}
