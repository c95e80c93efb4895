//! Newline-delimited JSON over a byte stream pair: one message per line.

use exec_server_protocol::ClientMessage;
use exec_server_protocol::wire::{DecodedServerMessage, encode_client_message};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::{INCOMING_CAPACITY, OUTGOING_CAPACITY, Sink, Source, Transport, forward_decoded};

/// A transport over `writer` (to the server) and `reader` (from it).
pub(crate) fn connect<W, R>(writer: W, reader: R) -> Transport
where
    W: AsyncWrite + Unpin + Send + 'static,
    R: AsyncRead + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::channel(OUTGOING_CAPACITY);
    let (in_tx, in_rx) = mpsc::channel(INCOMING_CAPACITY);
    tokio::spawn(write_lines(writer, out_rx));
    tokio::spawn(read_lines(reader, in_tx));
    Transport {
        sink: Sink::Encoded(out_tx),
        source: Source::Decoded(in_rx),
        capabilities: None,
    }
}

/// Writes what is queued in one go, then flushes.
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
