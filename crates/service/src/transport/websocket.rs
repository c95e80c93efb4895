//! Websocket transport: one JSON message per text (or binary) frame, many
//! independent connections per listener.

use std::io;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use exec_server_protocol::ServerMessage;
use exec_server_protocol::wire::encode_server_message;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::{JsonRpcEcho, WRITE_BATCH_BYTES, decode_incoming};
use crate::{INCOMING_CAPACITY, Incoming, OUTGOING_CAPACITY, Server, serve_connection};

/// Serves websocket connections on `listener` until the process ends.
pub async fn serve_websocket(server: Server, listener: TcpListener) -> io::Result<()> {
    let app = Router::new().route("/", get(upgrade)).with_state(server);
    axum::serve(listener, app).await
}

/// The frame size beyond which the websocket library itself closes the
/// connection. Messages between the configured `max_message_bytes` and this
/// are received, refused with `-32600`, and the connection goes on; only
/// absurd frames cost the connection, because receiving them at all means
/// buffering them.
fn hard_frame_limit(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_mul(4).max(64 * 1024 * 1024)
}

async fn upgrade(State(server): State<Server>, upgrade: WebSocketUpgrade) -> Response {
    let limit = hard_frame_limit(server.config().max_message_bytes);
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| serve_socket(server, socket))
}

async fn serve_socket(server: Server, socket: WebSocket) {
    let (sink, stream) = socket.split();
    let (incoming_tx, incoming_rx) = mpsc::channel(INCOMING_CAPACITY);
    let (outgoing_tx, outgoing_rx) = mpsc::channel(OUTGOING_CAPACITY);
    let echo = JsonRpcEcho::default();
    let max = server.config().max_message_bytes;
    let read_task = tokio::spawn(read_frames(stream, incoming_tx, max, echo.clone()));
    let write_task = tokio::spawn(write_frames(sink, outgoing_rx, echo));
    serve_connection(server, incoming_rx, outgoing_tx).await;
    read_task.abort();
    // The writer ends once the forwarders of the killed processes finish.
    let _ = write_task.await;
}

async fn read_frames(
    mut stream: futures_util::stream::SplitStream<WebSocket>,
    incoming: mpsc::Sender<Incoming>,
    max: usize,
    echo: JsonRpcEcho,
) {
    while let Some(frame) = stream.next().await {
        let bytes = match frame {
            Ok(Message::Text(text)) => text.as_str().as_bytes().to_vec(),
            Ok(Message::Binary(bytes)) => bytes.to_vec(),
            // Pings are answered by the websocket library.
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) => return,
            Err(error) => {
                tracing::info!(%error, "websocket read failed; ending the connection");
                return;
            }
        };
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
) {
    while let Some(message) = outgoing.recv().await {
        let mut batched = 0;
        let mut next = Some(message);
        while let Some(message) = next.take() {
            let mut frame = Vec::new();
            encode_server_message(&message, echo.enabled(), &mut frame);
            batched += frame.len();
            let text = String::from_utf8(frame).expect("encoded JSON is UTF-8");
            if let Err(error) = sink.feed(Message::Text(text.into())).await {
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
    }
    let _ = sink.close().await;
}
