//! `ws://` and `wss://`: one JSON message per text frame.

use std::sync::Arc;

use exec_server_protocol::ClientMessage;
use exec_server_protocol::wire::encode_client_message;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use exec_server_protocol::binary;
use exec_server_protocol::v0::ClientCapabilities;

use super::{
    INCOMING_CAPACITY, OUTGOING_CAPACITY, Sink, Source, Transport, forward_decoded, forward_frame,
};
use crate::{ClientError, WebSocketConnectArgs};

/// Largest message accepted from the server (its output chunks are far
/// smaller; a `process/read` answer is bounded by `maxBytes`).
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Opens a websocket connection (TCP, TLS for `wss://`, upgrade).
pub(crate) async fn connect(args: &WebSocketConnectArgs) -> Result<Transport, ClientError> {
    let url = args.url.as_str();
    // Messages name the URL without its query, which may carry `?token=`.
    let shown = url.split(['?', '#']).next().unwrap_or(url);
    let mut request = url
        .into_client_request()
        .map_err(|e| ClientError::Connect(format!("invalid websocket URL `{shown}`: {e}")))?;
    if let Some(token) = args.bearer_token.as_deref() {
        let value = format!("Bearer {token}").parse().map_err(|_| {
            ClientError::Connect("the bearer token is not a valid header value".into())
        })?;
        request.headers_mut().insert("authorization", value);
    }
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(MAX_MESSAGE_BYTES);
    config.max_frame_size = Some(MAX_MESSAGE_BYTES);
    let connector = if url.starts_with("wss://") {
        Some(tls_connector(args.ca_pem.as_deref())?)
    } else {
        None
    };
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector);
    let (socket, _response) = tokio::time::timeout(args.connect_timeout, connecting)
        .await
        .map_err(|_| ClientError::Connect(format!("timed out connecting to {shown}")))?
        .map_err(|e| ClientError::Connect(format!("cannot connect to {shown}: {e}")))?;
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<ClientMessage>(OUTGOING_CAPACITY);
    let (in_tx, in_rx) = mpsc::channel(INCOMING_CAPACITY);
    let keepalive = args.keepalive;
    tokio::spawn(async move {
        // Pings keep a quiet connection open through proxies that close
        // idle ones; the server's pong is traffic in the other direction.
        let mut pings = keepalive.map(|period| {
            let mut interval =
                tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        loop {
            let message = tokio::select! {
                message = out_rx.recv() => match message {
                    Some(message) => message,
                    None => break,
                },
                _ = async { pings.as_mut().expect("guarded").tick().await }, if pings.is_some() => {
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            // Feed what is queued, flush once: fewer syscalls under load.
            let mut next = Some(message);
            while let Some(message) = next.take() {
                let mut buf = Vec::new();
                encode_client_message(&message, false, &mut buf);
                let text = String::from_utf8(buf).expect("encoded JSON is UTF-8");
                if sink.feed(Message::text(text)).await.is_err() {
                    return;
                }
                next = out_rx.try_recv().ok();
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    tokio::spawn(async move {
        while let Some(frame) = stream.next().await {
            let forwarded = match frame {
                Ok(Message::Text(text)) => forward_decoded(text.as_bytes(), &in_tx).await,
                // Output as binary frames once `initialize` turned them on;
                // JSON in a binary message otherwise, as since v0.
                Ok(Message::Binary(bytes)) if binary::is_binary_frame(&bytes) => {
                    forward_frame(&bytes, &in_tx).await
                }
                Ok(Message::Binary(bytes)) => forward_decoded(&bytes, &in_tx).await,
                Ok(Message::Close(_)) | Err(_) => false,
                Ok(_) => true,
            };
            if !forwarded {
                return;
            }
        }
    });
    Ok(Transport {
        sink: Sink::Encoded(out_tx),
        source: Source::Decoded(in_rx),
        capabilities: args.binary_frames.then_some(ClientCapabilities {
            binary_frames: true,
        }),
    })
}

/// TLS settings for `wss://`: the system's roots plus any extra CA.
fn tls_connector(ca_pem: Option<&[u8]>) -> Result<tokio_tungstenite::Connector, ClientError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(pem) = ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert =
                cert.map_err(|e| ClientError::Connect(format!("invalid CA certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| ClientError::Connect(format!("unusable CA certificate: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Connect(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_tungstenite::Connector::Rustls(Arc::new(config)))
}
