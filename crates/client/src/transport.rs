//! Client-side transports. Each one is a pair of channels: client messages
//! out, server messages in. The dispatcher in `client` never sees bytes.

use std::time::Duration;

use bytes::Bytes;
use exec_server_protocol::binary;
use exec_server_protocol::wire::DecodedClientMessage;
use exec_server_protocol::wire::{
    DecodedServerMessage, decode_server_message, encode_client_message,
};
use exec_server_protocol::{ClientMessage, ServerMessage};
use exec_server_service::Incoming;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::client::ClientError;

/// Messages queued towards the server before `send` waits.
const OUTGOING_CAPACITY: usize = 64;
/// Messages decoded from the server before the reader waits.
const INBOUND_CAPACITY: usize = 64;

/// Where the dispatcher sends client messages.
#[derive(Clone)]
pub(crate) enum Outbound {
    /// Encoded and written by a transport task.
    Encoded(mpsc::Sender<ClientMessage>),
    /// Straight into an in-process connection.
    InProcess(mpsc::Sender<Incoming>),
}

impl Outbound {
    pub(crate) async fn send(&self, message: ClientMessage) -> Result<(), ClientError> {
        let sent = match self {
            Outbound::Encoded(tx) => tx.send(message).await.is_ok(),
            Outbound::InProcess(tx) => tx
                .send(Incoming::Message(DecodedClientMessage {
                    message,
                    jsonrpc: false,
                }))
                .await
                .is_ok(),
        };
        if sent {
            Ok(())
        } else {
            Err(ClientError::Closed)
        }
    }
}

/// Where the dispatcher receives server messages from.
pub(crate) enum Inbound {
    Decoded(mpsc::Receiver<DecodedServerMessage>),
    InProcess(mpsc::Receiver<ServerMessage>),
}

impl Inbound {
    pub(crate) async fn recv(&mut self) -> Option<DecodedServerMessage> {
        match self {
            Inbound::Decoded(rx) => rx.recv().await,
            Inbound::InProcess(rx) => rx.recv().await.map(DecodedServerMessage::Known),
        }
    }
}

/// Newline-delimited JSON over a byte stream pair.
pub(crate) fn lines<W, R>(writer: W, reader: R) -> (Outbound, Inbound)
where
    W: AsyncWrite + Unpin + Send + 'static,
    R: AsyncRead + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::channel(OUTGOING_CAPACITY);
    let (in_tx, in_rx) = mpsc::channel(INBOUND_CAPACITY);
    tokio::spawn(write_lines(writer, out_rx));
    tokio::spawn(read_lines(reader, in_tx));
    (Outbound::Encoded(out_tx), Inbound::Decoded(in_rx))
}

async fn write_lines<W: AsyncWrite + Unpin>(mut writer: W, mut rx: mpsc::Receiver<ClientMessage>) {
    let mut buf = Vec::new();
    while let Some(message) = rx.recv().await {
        buf.clear();
        encode_client_message(&message, false, &mut buf);
        buf.push(b'\n');
        while let Ok(message) = rx.try_recv() {
            encode_client_message(&message, false, &mut buf);
            buf.push(b'\n');
        }
        if writer.write_all(&buf).await.is_err() || writer.flush().await.is_err() {
            return;
        }
    }
}

async fn read_lines<R: AsyncRead + Unpin>(reader: R, tx: mpsc::Sender<DecodedServerMessage>) {
    // The server is trusted not to send absurd lines; its own messages are
    // bounded by its chunk size.
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if !forward_decoded(&line, &tx).await {
            return;
        }
    }
}

/// Decodes one server message and passes it on; false when the dispatcher
/// is gone or the server broke the protocol.
async fn forward_decoded(bytes: &[u8], tx: &mpsc::Sender<DecodedServerMessage>) -> bool {
    match decode_server_message(bytes) {
        Ok(message) => tx.send(message).await.is_ok(),
        Err(error) => {
            tracing::error!(%error, "undecodable message from the server; closing");
            false
        }
    }
}

/// Decodes one binary output frame and passes it on as the notification it
/// stands for; false when the dispatcher is gone or the frame is broken.
async fn forward_frame(frame: &Bytes, tx: &mpsc::Sender<DecodedServerMessage>) -> bool {
    match binary::decode_server_frame(frame) {
        Ok(notification) => {
            let message = ServerMessage::Notification(notification);
            tx.send(DecodedServerMessage::Known(message)).await.is_ok()
        }
        Err(error) => {
            tracing::error!(%error, "undecodable binary frame from the server; closing");
            false
        }
    }
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
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Connect(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(
        config,
    )))
}

/// A websocket connection, already established.
pub(crate) async fn websocket(
    args: &crate::WebSocketConnectArgs,
) -> Result<(Outbound, Inbound), ClientError> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = args.url.as_str();
    let bearer_token = args.bearer_token.as_deref();
    let connect_timeout: Duration = args.connect_timeout;
    let mut request = url
        .into_client_request()
        .map_err(|e| ClientError::Connect(format!("invalid websocket URL `{url}`: {e}")))?;
    if let Some(token) = bearer_token {
        let value = format!("Bearer {token}").parse().map_err(|_| {
            ClientError::Connect("the bearer token is not a valid header value".into())
        })?;
        request.headers_mut().insert("authorization", value);
    }
    let mut config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    config.max_message_size = Some(256 * 1024 * 1024);
    config.max_frame_size = Some(256 * 1024 * 1024);
    let connector = if url.starts_with("wss://") {
        Some(tls_connector(args.ca_pem.as_deref())?)
    } else {
        None
    };
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector);
    let (socket, _response) = tokio::time::timeout(connect_timeout, connecting)
        .await
        .map_err(|_| ClientError::Connect(format!("timed out connecting to {url}")))?
        .map_err(|e| ClientError::Connect(format!("cannot connect to {url}: {e}")))?;
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<ClientMessage>(OUTGOING_CAPACITY);
    let (in_tx, in_rx) = mpsc::channel(INBOUND_CAPACITY);
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
                // Output as binary frames when `initialize` turned them
                // on; JSON in a binary message otherwise, as since v0.
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
    Ok((Outbound::Encoded(out_tx), Inbound::Decoded(in_rx)))
}
