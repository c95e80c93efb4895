//! Binary websocket frames: output and stdin as raw bytes behind a small
//! fixed header, instead of base64 inside JSON.
//!
//! A websocket client turns them on in `initialize`
//! (`capabilities: {binaryFrames: true}`); the result says whether they are
//! on (`capabilities.binaryFrames`). From then on, on that connection only:
//!
//! - the server sends `process/output` and `command/exec/outputDelta` as
//!   binary messages laid out below (everything else stays JSON text);
//! - the client may send `process/write` as a binary message; the server
//!   answers it with an ordinary JSON response carrying the frame's
//!   request id.
//!
//! Stdio, v0 clients and clients that do not ask are unchanged. The layout
//! is documented for other clients in `schema/binary-frames.md`.
//!
//! # Layout
//!
//! Every frame starts with the same 12-byte header; integers are
//! big-endian.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | kind: [`PROCESS_OUTPUT`], [`EXEC_OUTPUT`] or [`PROCESS_WRITE`] |
//! | 1 | 1 | output: the stream (0 stdout, 1 stderr, 2 pty); write: flags |
//! | 2 | 2 | `N`, the id's length in bytes |
//! | 4 | 8 | output: `seq` (0 for `command/exec/outputDelta`); write: the request id |
//! | 12 | N | the process id (or v0 session id), UTF-8 |
//! | 12+N | … | write with flag [`FLAG_WRITE_ID`]: a 2-byte length `W`, then `W` bytes of `writeId` |
//! | … | rest | the payload: output bytes, or the bytes for stdin |
//!
//! # Telling frames apart
//!
//! A kind byte is a control character that is not JSON whitespace, so it
//! can never start a JSON text: binary messages that carry JSON (accepted
//! since v0) keep working, and a frame is one or the other by its first
//! byte alone.
//!
//! Nothing here does I/O: the transports call these functions on whole
//! websocket messages.

use bytes::{BufMut, Bytes};

use crate::jsonrpc::{RequestId, ServerMessage, ServerNotification};
use crate::{process, v0};

/// `process/output`: seq, stream, process id, bytes.
pub const PROCESS_OUTPUT: u8 = 0x01;
/// `command/exec/outputDelta`: stream, session id, bytes (no seq).
pub const EXEC_OUTPUT: u8 = 0x02;
/// `process/write` from the client: request id, process id, bytes.
pub const PROCESS_WRITE: u8 = 0x03;

/// Write flag: a `writeId` follows the process id.
pub const FLAG_WRITE_ID: u8 = 0x01;

/// Bytes before the id.
pub const HEADER_BYTES: usize = 12;

/// Whether a websocket message is a binary frame of this module (and not
/// JSON): its first byte is one of the kinds.
pub fn is_binary_frame(bytes: &[u8]) -> bool {
    matches!(
        bytes.first(),
        Some(&(PROCESS_OUTPUT | EXEC_OUTPUT | PROCESS_WRITE))
    )
}

/// Why a binary frame could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("binary frame of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("binary frame kind {0:#04x} is not one this side accepts")]
    Kind(u8),
    #[error("binary frame stream {0} is unknown")]
    Stream(u8),
    #[error("binary frame flags {0:#04x} are unknown")]
    Flags(u8),
    #[error("binary frame id of {0} bytes runs past the frame")]
    IdLength(usize),
    #[error("binary frame id is not UTF-8")]
    IdNotUtf8,
    #[error("binary frame writeId runs past the frame")]
    WriteIdLength,
    #[error("binary frame id of {0} bytes is longer than 65535")]
    IdTooLong(usize),
    #[error("binary frame field that must be zero is {0}")]
    NotZero(u64),
}

fn stream_code(stream: process::ProcessStream) -> u8 {
    match stream {
        process::ProcessStream::Stdout => 0,
        process::ProcessStream::Stderr => 1,
        process::ProcessStream::Pty => 2,
    }
}

fn header(out: &mut Vec<u8>, kind: u8, byte1: u8, id: &str, number: u64) -> Result<(), FrameError> {
    let len = u16::try_from(id.len()).map_err(|_| FrameError::IdTooLong(id.len()))?;
    out.push(kind);
    out.push(byte1);
    out.put_u16(len);
    out.put_u64(number);
    out.extend_from_slice(id.as_bytes());
    Ok(())
}

/// The binary frame of an output notification; `None` for every other
/// message (and for an id too long for the header, which then goes as
/// JSON), so a transport can write `None` as JSON text.
pub fn encode_server_frame(message: &ServerMessage) -> Option<Vec<u8>> {
    let ServerMessage::Notification(notification) = message else {
        return None;
    };
    let mut out = Vec::new();
    let chunk = match notification {
        ServerNotification::ProcessOutput(output) => {
            out.reserve(HEADER_BYTES + output.process_id.len() + output.chunk.len());
            let stream = stream_code(output.stream);
            header(
                &mut out,
                PROCESS_OUTPUT,
                stream,
                &output.process_id,
                output.seq,
            )
            .ok()?;
            &output.chunk
        }
        ServerNotification::ExecOutputDelta(delta) => {
            out.reserve(HEADER_BYTES + delta.session_id.len() + delta.chunk.len());
            let stream = match delta.stream {
                v0::ExecOutputStream::Stdout => 0,
                v0::ExecOutputStream::Stderr => 1,
            };
            header(&mut out, EXEC_OUTPUT, stream, &delta.session_id, 0).ok()?;
            &delta.chunk
        }
        _ => return None,
    };
    out.extend_from_slice(chunk);
    Some(out)
}

/// The fixed part of a frame, read.
struct Parts {
    kind: u8,
    byte1: u8,
    number: u64,
    id: String,
    /// Offset of what follows the id.
    rest: usize,
}

fn parts(bytes: &[u8]) -> Result<Parts, FrameError> {
    if bytes.len() < HEADER_BYTES {
        return Err(FrameError::Short(bytes.len()));
    }
    let id_len = u16::from_be_bytes([bytes[2], bytes[3]]) as usize;
    let number = u64::from_be_bytes(bytes[4..12].try_into().expect("8 bytes"));
    let rest = HEADER_BYTES + id_len;
    let id = bytes
        .get(HEADER_BYTES..rest)
        .ok_or(FrameError::IdLength(id_len))?;
    let id = std::str::from_utf8(id).map_err(|_| FrameError::IdNotUtf8)?;
    Ok(Parts {
        kind: bytes[0],
        byte1: bytes[1],
        number,
        id: id.to_string(),
        rest,
    })
}

/// Reads an output frame sent by the server. The chunk shares `frame`'s
/// memory: nothing is copied.
pub fn decode_server_frame(frame: &Bytes) -> Result<ServerNotification, FrameError> {
    let parts = parts(frame)?;
    let chunk = frame.slice(parts.rest..);
    match parts.kind {
        PROCESS_OUTPUT => {
            let stream = match parts.byte1 {
                0 => process::ProcessStream::Stdout,
                1 => process::ProcessStream::Stderr,
                2 => process::ProcessStream::Pty,
                other => return Err(FrameError::Stream(other)),
            };
            Ok(ServerNotification::ProcessOutput(
                process::OutputNotification {
                    process_id: parts.id,
                    seq: parts.number,
                    stream,
                    chunk,
                },
            ))
        }
        EXEC_OUTPUT if parts.number != 0 => Err(FrameError::NotZero(parts.number)),
        EXEC_OUTPUT => {
            let stream = match parts.byte1 {
                0 => v0::ExecOutputStream::Stdout,
                1 => v0::ExecOutputStream::Stderr,
                other => return Err(FrameError::Stream(other)),
            };
            Ok(ServerNotification::ExecOutputDelta(
                v0::ExecOutputDeltaNotification {
                    session_id: parts.id,
                    stream,
                    chunk,
                },
            ))
        }
        other => Err(FrameError::Kind(other)),
    }
}

/// A `process/write` request that arrived as a binary frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinaryWrite {
    /// The id the JSON response carries.
    pub id: RequestId,
    pub params: process::WriteParams,
}

/// The binary frame of a `process/write` request with a numeric id.
pub fn encode_write_frame(
    id: u64,
    params: &process::WriteParams,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let write_id = params.write_id.as_deref();
    let flags = if write_id.is_some() { FLAG_WRITE_ID } else { 0 };
    out.reserve(HEADER_BYTES + params.process_id.len() + params.chunk.len() + 2);
    header(out, PROCESS_WRITE, flags, &params.process_id, id)?;
    if let Some(write_id) = write_id {
        let len =
            u16::try_from(write_id.len()).map_err(|_| FrameError::IdTooLong(write_id.len()))?;
        out.put_u16(len);
        out.extend_from_slice(write_id.as_bytes());
    }
    out.extend_from_slice(&params.chunk);
    Ok(())
}

/// Reads a `process/write` frame sent by a client. The chunk shares
/// `frame`'s memory.
pub fn decode_client_frame(frame: &Bytes) -> Result<BinaryWrite, FrameError> {
    let parts = parts(frame)?;
    if parts.kind != PROCESS_WRITE {
        return Err(FrameError::Kind(parts.kind));
    }
    if parts.byte1 & !FLAG_WRITE_ID != 0 {
        return Err(FrameError::Flags(parts.byte1));
    }
    let mut rest = parts.rest;
    let write_id = if parts.byte1 & FLAG_WRITE_ID != 0 {
        let len = frame
            .get(rest..rest + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            .ok_or(FrameError::WriteIdLength)?;
        let text = frame
            .get(rest + 2..rest + 2 + len)
            .ok_or(FrameError::WriteIdLength)?;
        rest += 2 + len;
        Some(
            std::str::from_utf8(text)
                .map_err(|_| FrameError::IdNotUtf8)?
                .to_string(),
        )
    } else {
        None
    };
    Ok(BinaryWrite {
        id: RequestId::Number(parts.number.into()),
        params: process::WriteParams {
            process_id: parts.id,
            chunk: frame.slice(rest..),
            write_id,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(id: &str, seq: u64, chunk: &'static [u8]) -> ServerMessage {
        ServerMessage::Notification(ServerNotification::ProcessOutput(
            process::OutputNotification {
                process_id: id.into(),
                seq,
                stream: process::ProcessStream::Pty,
                chunk: Bytes::from_static(chunk),
            },
        ))
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let frame = encode_server_frame(&output("p1", 0x0102, b"\x00hi")).unwrap();
        assert_eq!(
            frame,
            [
                &[0x01, 2, 0, 2][..],
                &[0, 0, 0, 0, 0, 0, 0x01, 0x02],
                b"p1",
                b"\x00hi"
            ]
            .concat()
        );
    }

    #[test]
    fn output_frames_round_trip_without_copying_the_chunk() {
        for message in [
            output("proc-1", u64::MAX, b""),
            output("\u{e9}t\u{e9}", 7, &[0xff; 300]),
            ServerMessage::Notification(ServerNotification::ExecOutputDelta(
                v0::ExecOutputDeltaNotification {
                    session_id: "session-1".into(),
                    stream: v0::ExecOutputStream::Stderr,
                    chunk: Bytes::from_static(b"err\n"),
                },
            )),
        ] {
            let frame = Bytes::from(encode_server_frame(&message).unwrap());
            assert!(is_binary_frame(&frame));
            let decoded = decode_server_frame(&frame).unwrap();
            assert_eq!(ServerMessage::Notification(decoded.clone()), message);
            if let ServerNotification::ProcessOutput(o) = decoded
                && !o.chunk.is_empty()
            {
                let end = frame.as_ptr() as usize + frame.len();
                assert_eq!(o.chunk.as_ptr() as usize + o.chunk.len(), end);
            }
        }
    }

    #[test]
    fn other_messages_stay_json() {
        let exited = ServerMessage::Notification(ServerNotification::ProcessClosed(
            process::ClosedNotification {
                process_id: "p".into(),
            },
        ));
        assert!(encode_server_frame(&exited).is_none());
        let response = ServerMessage::Response {
            id: Some(1.into()),
            result: Ok(serde_json::json!({})),
        };
        assert!(encode_server_frame(&response).is_none());
    }

    #[test]
    fn write_frames_round_trip_with_and_without_a_write_id() {
        for write_id in [None, Some("w-1".to_string())] {
            let params = process::WriteParams {
                process_id: "proc-9".into(),
                chunk: Bytes::from_static(b"\x03ls\r"),
                write_id,
            };
            let mut out = Vec::new();
            encode_write_frame(41, &params, &mut out).unwrap();
            let decoded = decode_client_frame(&Bytes::from(out)).unwrap();
            assert_eq!(decoded.id, RequestId::Number(41.into()));
            assert_eq!(decoded.params, params);
        }
    }

    #[test]
    fn no_json_text_is_a_binary_frame() {
        // A JSON text starts with whitespace, `{`, `[`, `"`, a digit, `-`,
        // `t`, `f`, `n` or (tolerated by some) a UTF-8 byte order mark.
        for first in b" \t\r\n{[\"0123456789-tfn\xef" {
            assert!(!is_binary_frame(&[*first, b'x']), "{first:#04x}");
        }
        assert!(!is_binary_frame(b""));
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        let bad: [&[u8]; 7] = [
            &[0x01],
            &[0x01, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, b'a'],
            &[0x01, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            &[0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff],
            &[0x03, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            &[0x03, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 5, b'a'],
            &[0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ];
        for frame in bad {
            let frame = Bytes::copy_from_slice(frame);
            assert!(
                decode_server_frame(&frame).is_err() || decode_client_frame(&frame).is_err(),
                "{frame:?}"
            );
        }
        // Each side refuses the other side's kind.
        let mut write = Vec::new();
        let params = process::WriteParams {
            process_id: "p".into(),
            chunk: Bytes::new(),
            write_id: None,
        };
        encode_write_frame(1, &params, &mut write).unwrap();
        assert_eq!(
            decode_server_frame(&Bytes::from(write)),
            Err(FrameError::Kind(PROCESS_WRITE))
        );
        let out = encode_server_frame(&output("p", 1, b"x")).unwrap();
        assert_eq!(
            decode_client_frame(&Bytes::from(out)),
            Err(FrameError::Kind(PROCESS_OUTPUT))
        );
    }
}
