//! Newline-delimited JSON over a byte stream: the server's stdin and stdout,
//! or any reader and writer (tests use in-memory pipes).

use std::io;

use exec_server_protocol::ServerMessage;
use exec_server_protocol::wire::encode_server_message;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::{JsonRpcEcho, WRITE_BATCH_BYTES, WriterEnd, decode_incoming, run_connection};
use crate::metrics::{Traffic, Transport};
use crate::{ConnectionOptions, Incoming, Server};

/// Serves one connection over the process's stdin and stdout.
pub async fn serve_stdio(server: Server) {
    serve_lines(server, tokio::io::stdin(), tokio::io::stdout()).await
}

/// Serves one connection over any byte stream pair, one JSON message per
/// line. Returns when the input ends (or the server shuts down) and the
/// output is flushed, within [`super::FINAL_FLUSH`].
pub async fn serve_lines<R, W>(server: Server, reader: R, writer: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let echo = JsonRpcEcho::default();
    let max = server.config().max_message_bytes;
    let read_echo = echo.clone();
    let traffic = server.metrics().traffic(Transport::Stdio);
    let read_traffic = traffic.clone();
    run_connection(
        server,
        Transport::Stdio,
        ConnectionOptions::default(),
        move |incoming| {
            read_lines(
                BufReader::new(reader),
                incoming,
                max,
                read_echo,
                read_traffic,
            )
        },
        move |outgoing, end| write_lines(writer, outgoing, echo, end, traffic),
    )
    .await
}

/// One line read with a length limit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A complete line (without its `\n`) is in the buffer.
    Complete,
    /// The line exceeded the limit and was discarded; its full length.
    TooLong(usize),
    Eof,
}

/// Reads one `\n`-terminated line into `buf` without ever holding more than
/// `max` bytes of it: an over-long line is skipped to its end.
pub(crate) async fn read_bounded_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    buf.clear();
    let mut length = 0usize;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            // End of input: a final line without `\n` still counts.
            return Ok(match length {
                0 => Line::Eof,
                n if n > max => Line::TooLong(n),
                _ => Line::Complete,
            });
        }
        let (piece, found_newline) = match memchr(available) {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        length += piece.len();
        if length <= max {
            buf.extend_from_slice(piece);
        } else {
            buf.clear();
        }
        let consumed = piece.len() + usize::from(found_newline);
        reader.consume(consumed);
        if found_newline {
            return Ok(if length > max {
                Line::TooLong(length)
            } else {
                Line::Complete
            });
        }
    }
}

fn memchr(haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == b'\n')
}

async fn read_lines<R: AsyncBufRead + Unpin>(
    mut reader: R,
    incoming: mpsc::Sender<Incoming>,
    max: usize,
    echo: JsonRpcEcho,
    traffic: Traffic,
) {
    let mut buf = Vec::new();
    loop {
        let line = read_bounded_line(&mut reader, &mut buf, max).await;
        let message = match line {
            Ok(Line::Complete) => {
                traffic.received(buf.len() + 1);
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                decode_incoming(&buf, &echo)
            }
            Ok(Line::TooLong(bytes)) => {
                traffic.received(bytes);
                Incoming::TooLarge { bytes }
            }
            Ok(Line::Eof) => return,
            Err(error) => {
                tracing::info!(%error, "reading the input failed; ending the connection");
                return;
            }
        };
        if incoming.send(message).await.is_err() {
            return;
        }
    }
}

async fn write_lines<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut outgoing: mpsc::Receiver<ServerMessage>,
    echo: JsonRpcEcho,
    mut end: WriterEnd,
    traffic: Traffic,
) {
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Some(message) = end.next(&mut outgoing).await {
        batch.clear();
        encode_server_message(&message, echo.enabled(), &mut batch);
        batch.push(b'\n');
        while batch.len() < WRITE_BATCH_BYTES {
            let Ok(message) = outgoing.try_recv() else {
                break;
            };
            encode_server_message(&message, echo.enabled(), &mut batch);
            batch.push(b'\n');
        }
        let written = async {
            writer.write_all(&batch).await?;
            writer.flush().await
        };
        if let Err(error) = written.await {
            tracing::info!(%error, "writing the output failed; ending the connection");
            return;
        }
        traffic.sent(batch.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<(Line, Vec<u8>)> {
        let mut reader = BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            let line = read_bounded_line(&mut reader, &mut buf, max).await.unwrap();
            if line == Line::Eof {
                return out;
            }
            out.push((line, buf.clone()));
        }
    }

    #[tokio::test]
    async fn long_lines_are_skipped_whole_and_reading_goes_on() {
        let got = lines(b"short\nthis line is too long\nok\nlast", 8).await;
        assert_eq!(
            got,
            vec![
                (Line::Complete, b"short".to_vec()),
                (Line::TooLong(21), Vec::new()),
                (Line::Complete, b"ok".to_vec()),
                (Line::Complete, b"last".to_vec()),
            ]
        );
    }
}
