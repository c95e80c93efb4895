//! Websocket transport: one JSON message per text (or binary) frame, many
//! independent connections per listener, over plain TCP or TLS. A client
//! that asks in `initialize` gets output as binary frames and may send
//! `process/write` as one ([`crate::frames`], `schema/binary-frames.md`).
//!
//! Connections are accepted by [`super::listener`], which bounds how long
//! and how many of them may stay short of an upgrade; after the upgrade,
//! `initialize` must succeed within `--initialize-timeout-ms`.
//!
//! HTTP routes: `GET /readyz` (200 naming the server id, 503 while
//! draining) and `GET /livez` (200 while the process serves) answer without
//! authentication and say nothing else; `GET /metrics` (Prometheus text,
//! [`crate::metrics`]) needs what an upgrade needs (origin, token); `PREFIX/` and `PREFIX/SERVER_ID/`
//! are the websocket endpoint (see [`crate::fleet`]), where the
//! [`AccessPolicy`] (origin, then token), the routing rules and the
//! connection limit are checked before the upgrade.
//! With [`WebSocketOptions::web`], each endpoint path also serves the
//! browser terminal to requests that are not upgrades, with its files under
//! `ENDPOINT/assets/` and `ENDPOINT/auth` ([`super::web`]).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use exec_server_protocol::ServerMessage;
use exec_server_protocol::binary;
use exec_server_protocol::wire::{DecodeError, encode_server_message};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::listener::PendingLimits;
use super::{JsonRpcEcho, WRITE_BATCH_BYTES, WriterEnd, decode_incoming, run_connection};
use crate::fleet::{self, PathPrefix, PathTarget};
use crate::frames::BinaryFrames;
use crate::metrics::{Traffic, Transport};
use crate::security::{AccessPolicy, Refusal};
use crate::{ConnectionOptions, Incoming, Server};

/// Websocket listener settings beyond the protocol's.
#[derive(Clone, Debug)]
pub struct WebSocketOptions {
    pub policy: AccessPolicy,
    /// Open websocket connections allowed at once; more get HTTP 503.
    pub max_connections: usize,
    /// Where the endpoint lives (`--path-prefix`); the root by default.
    pub path_prefix: PathPrefix,
    /// Serve the browser terminal (`--web`).
    pub web: bool,
    /// Rules for connections that have not upgraded yet.
    pub pending: PendingLimits,
}

impl Default for WebSocketOptions {
    fn default() -> Self {
        WebSocketOptions {
            policy: AccessPolicy::default(),
            max_connections: 1024,
            path_prefix: PathPrefix::default(),
            web: false,
            pending: PendingLimits::default(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct WsState {
    server: Server,
    pub(crate) options: Arc<WebSocketOptions>,
    open: Arc<AtomicUsize>,
}

fn router(server: Server, options: WebSocketOptions) -> Router {
    let endpoints = options.path_prefix.endpoint_routes();
    let web = options.web;
    let state = WsState {
        server,
        options: Arc::new(options),
        open: Arc::default(),
    };
    let mut router = Router::new()
        .route("/readyz", get(readyz))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics));
    for path in endpoints {
        if web && path.ends_with('/') {
            router = router
                .route(&format!("{path}assets/{{*file}}"), get(super::web::asset))
                .route(&format!("{path}auth"), get(super::web::auth));
        }
        router = router.route(&path, get(upgrade));
    }
    router.with_state(state)
}

/// Prometheus text; behind the same origin and token rules as the
/// endpoint, since it tells who is doing how much.
async fn metrics(State(state): State<WsState>, headers: HeaderMap, uri: Uri) -> Response {
    if let Err(refusal) = state.options.policy.check(&headers, &uri) {
        return refused(refusal);
    }
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    let body = crate::metrics::render(&state.server);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn readyz(State(state): State<WsState>) -> (StatusCode, String) {
    let draining = state.server.lifecycle().is_draining();
    fleet::readiness(&state.server.config().server_id, draining)
}

/// Serves websocket connections on `listener` with default options (no
/// token, own-origin browsers only).
pub async fn serve_websocket(server: Server, listener: TcpListener) -> io::Result<()> {
    serve_websocket_tcp(server, listener, WebSocketOptions::default()).await
}

/// Serves websocket connections on a plain TCP listener (`ws://`), with
/// the pre-upgrade rules of [`super::listener`], until the server starts
/// terminating (see [`crate::lifecycle`]): then it stops accepting and
/// returns `Ok`, and the open connections close when the server tells them
/// to.
pub async fn serve_websocket_tcp(
    server: Server,
    listener: TcpListener,
    options: WebSocketOptions,
) -> io::Result<()> {
    serve_until_terminating(server, listener, None, options).await
}

/// Serves websocket connections over TLS (`wss://`), like
/// [`serve_websocket_tcp`]. Each TLS handshake runs in a task of its own,
/// within the handshake timeout, so a slow or silent client cannot hold up
/// the others.
pub async fn serve_websocket_tls(
    server: Server,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    options: WebSocketOptions,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    serve_until_terminating(server, listener, Some(acceptor), options).await
}

async fn serve_until_terminating(
    server: Server,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    options: WebSocketOptions,
) -> io::Result<()> {
    let limits = options.pending.clone();
    let app = router(server.clone(), options);
    let serving = super::listener::serve(listener, tls, app, limits);
    let stopped = server.lifecycle().until_terminating(serving).await;
    stopped.unwrap_or(Ok(()))
}

/// The frame size beyond which the websocket library itself closes the
/// connection. Messages between the configured `max_message_bytes` and this
/// are received, refused with `-32600`, and the connection goes on; only
/// absurd frames cost the connection, because receiving them at all means
/// buffering them.
fn hard_frame_limit(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_mul(4).max(64 * 1024 * 1024)
}

/// Counts an open connection for as long as it lives.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn acquire(open: &Arc<AtomicUsize>, max: usize) -> Option<OpenConnection> {
        open.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| OpenConnection(open.clone()))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The answer to an upgrade (or `/auth` request) the [`AccessPolicy`]
/// refuses.
pub(crate) fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::ForbiddenOrigin => (StatusCode::FORBIDDEN, "origin not allowed\n").into_response(),
        Refusal::AmbiguousCredentials => (
            StatusCode::BAD_REQUEST,
            "present the token once: one Authorization header, one token= parameter or one bearer subprotocol\n",
        )
            .into_response(),
        Refusal::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or invalid bearer token\n",
        )
            .into_response(),
    }
}

async fn upgrade(
    State(state): State<WsState>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if state.options.web && !super::web::is_websocket_upgrade(&headers) {
        return super::web::page(uri.path());
    }
    if let Err(refusal) = state.options.policy.check(&headers, &uri) {
        return refused(refusal);
    }
    let own = &state.server.config().server_id;
    match fleet::path_target(&state.options.path_prefix, own, uri.path()) {
        PathTarget::ThisServer => {}
        PathTarget::Pool if state.server.lifecycle().is_draining() => {
            let body = format!("server {own} is draining: start new sessions on another server\n");
            return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
        }
        PathTarget::Pool => {}
        PathTarget::OtherServer(named) => {
            let body =
                format!("this is server {own}, not {named:?}: check the balancer's routes\n");
            return (StatusCode::MISDIRECTED_REQUEST, body).into_response();
        }
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(slot) = OpenConnection::acquire(&state.open, state.options.max_connections) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections (--max-connections)\n",
        )
            .into_response();
    };
    let server = state.server.clone();
    let limit = hard_frame_limit(server.config().max_message_bytes);
    upgrade
        .protocols([crate::security::SUBPROTOCOL])
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            serve_socket(server, socket).await
        })
}

async fn serve_socket(server: Server, socket: WebSocket) {
    let (sink, stream) = socket.split();
    let echo = JsonRpcEcho::default();
    let frames = BinaryFrames::default();
    let max = server.config().max_message_bytes;
    let read_echo = echo.clone();
    let (read_switch, write_switch) = (frames.clone(), frames.clone());
    let options = ConnectionOptions {
        initialize_within: Some(server.config().initialize_timeout),
        binary_frames: Some(frames),
    };
    let traffic = server.metrics().traffic(Transport::WebSocket);
    let read_traffic = traffic.clone();
    run_connection(
        server,
        Transport::WebSocket,
        options,
        move |incoming| read_frames(stream, incoming, max, read_echo, read_switch, read_traffic),
        move |outgoing, end| write_frames(sink, outgoing, echo, write_switch, end, traffic),
    )
    .await
}

async fn read_frames(
    mut stream: futures_util::stream::SplitStream<WebSocket>,
    incoming: mpsc::Sender<Incoming>,
    max: usize,
    echo: JsonRpcEcho,
    frames: BinaryFrames,
    traffic: Traffic,
) {
    while let Some(frame) = stream.next().await {
        let bytes = match frame {
            Ok(Message::Text(text)) => text.as_str().as_bytes().to_vec(),
            // Before the switch, and for JSON in binary messages (accepted
            // since v0), the bytes go the JSON way: a binary frame is told
            // apart by its first byte, which cannot start JSON.
            Ok(Message::Binary(bytes))
                if frames.is_on() && binary::is_binary_frame(&bytes) && bytes.len() <= max =>
            {
                traffic.received(bytes.len());
                let message = match binary::decode_client_frame(&bytes) {
                    Ok(write) => Incoming::Write(write),
                    Err(error) => Incoming::Invalid(DecodeError::NotJsonRpc(error.to_string())),
                };
                if incoming.send(message).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(Message::Binary(bytes)) => bytes.to_vec(),
            // Pings are answered by the websocket library.
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) => return,
            Err(error) => {
                tracing::info!(%error, "websocket read failed; ending the connection");
                return;
            }
        };
        traffic.received(bytes.len());
        let message = if bytes.len() > max {
            Incoming::TooLarge { bytes: bytes.len() }
        } else {
            decode_incoming(&bytes, &echo)
        };
        if incoming.send(message).await.is_err() {
            return;
        }
    }
}

async fn write_frames(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut outgoing: mpsc::Receiver<ServerMessage>,
    echo: JsonRpcEcho,
    frames: BinaryFrames,
    mut end: WriterEnd,
    traffic: Traffic,
) {
    while let Some(message) = end.next(&mut outgoing).await {
        let mut batched = 0;
        let mut next = Some(message);
        while let Some(message) = next.take() {
            let frame = match frames
                .is_on()
                .then(|| binary::encode_server_frame(&message))
            {
                Some(Some(frame)) => {
                    batched += frame.len();
                    Message::Binary(frame.into())
                }
                _ => {
                    let mut frame = Vec::new();
                    encode_server_message(&message, echo.enabled(), &mut frame);
                    batched += frame.len();
                    let text = String::from_utf8(frame).expect("encoded JSON is UTF-8");
                    Message::Text(text.into())
                }
            };
            if let Err(error) = sink.feed(frame).await {
                tracing::info!(%error, "websocket write failed; ending the connection");
                return;
            }
            if batched < WRITE_BATCH_BYTES {
                next = outgoing.try_recv().ok();
            }
        }
        if let Err(error) = sink.flush().await {
            tracing::info!(%error, "websocket flush failed; ending the connection");
            return;
        }
        traffic.sent(batched);
    }
    // A clean close: 1001 tells a client that this server is going away
    // (reconnect elsewhere), 1000 that the connection simply ended. The
    // peer may have closed first, in which case this fails harmlessly.
    let (code, reason) = if end.server_closing() {
        (close_code::AWAY, "server shutting down")
    } else {
        (close_code::NORMAL, "")
    };
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
}

/// Loads a PEM certificate chain and private key into a server config.
pub fn load_tls_config(cert: &Path, key: &Path) -> io::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |what: &str, path: &Path, error: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} {}: {error}", path.display()),
        )
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| invalid("cannot read --tls-cert", cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("invalid --tls-cert", cert, &e))?;
    if chain.is_empty() {
        return Err(invalid("no certificate in --tls-cert", cert, &"empty"));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| invalid("cannot read --tls-key", key, &e))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| io::Error::other(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| invalid("the --tls-key does not fit --tls-cert", key, &e))?;
    Ok(Arc::new(config))
}
