//! Harnesses shared by the fuzz targets (`fuzz/`) and the regression test
//! that replays their corpus in CI. Not part of the API.
//!
//! The router harness runs with `max_processes_per_connection = 0`, so no
//! input can ever start a process: fuzzing explores routing, decoding and
//! every handler's validation without running arbitrary commands. So that
//! inputs also reach what a live process does (resize and its screen,
//! writes, signals, waits, reads, snapshots), the harness itself starts one
//! terminal process, `/bin/cat` under the id `tty`, in the connection's
//! session before the fuzzed lines arrive, and reaps it afterwards.

use std::sync::Arc;
use std::time::Duration;

use exec_server_core::{ProcessConfig, ProcessHandle, StdioMode, TerminalSize, spawn_process};
use exec_server_protocol::process::OnDisconnect;

use exec_server_protocol::wire::{decode_client_message, decode_server_message};
use exec_server_protocol::{ClientMessage, RequestId, ServerMessage, wire};

use crate::session::{ProcessEntry, ProcessKind, ProcessMeta};
use crate::{Incoming, Server, ServerConfig, serve_connection};

/// Every decoder on arbitrary bytes (JSON both ways, binary frames both
/// ways), and re-encoding what decodes.
pub fn decode(data: &[u8]) {
    decode_binary(data);
    if let Ok(decoded) = decode_client_message(data) {
        let mut out = Vec::new();
        wire::encode_client_message(&decoded.message, decoded.jsonrpc, &mut out);
        let again = decode_client_message(&out).expect("re-encoded messages decode");
        // Ids and methods must survive exactly. Params may hold floats, which
        // JSON does not round-trip bit for bit, and which we never use.
        assert_eq!(envelope(&again.message), envelope(&decoded.message));
    }
    if let Ok(wire::DecodedServerMessage::Known(message)) = decode_server_message(data) {
        let mut out = Vec::new();
        wire::encode_server_message(&message, false, &mut out);
        let _ = decode_server_message(&out).expect("re-encoded messages decode");
    }
}

/// The binary frame decoders: what decodes re-encodes to the same frame.
fn decode_binary(data: &[u8]) {
    use exec_server_protocol::binary;
    let frame = bytes::Bytes::copy_from_slice(data);
    if let Ok(notification) = binary::decode_server_frame(&frame) {
        let message = ServerMessage::Notification(notification);
        let again = binary::encode_server_frame(&message).expect("an output frame");
        assert_eq!(again, data, "a decoded output frame re-encodes exactly");
    }
    if let Ok(write) = binary::decode_client_frame(&frame) {
        let RequestId::Number(id) = &write.id else {
            panic!("binary writes carry numeric ids");
        };
        let mut again = Vec::new();
        let id = id.as_u64().expect("a u64 id");
        binary::encode_write_frame(id, &write.params, &mut again).expect("encodable");
        assert_eq!(again, data, "a decoded write frame re-encodes exactly");
    }
}

/// What must survive a round trip exactly: the kind, the id, the method.
fn envelope(message: &ClientMessage) -> (u8, Option<RequestId>, Option<&str>) {
    match message {
        ClientMessage::Request { id, method, .. } => (0, Some(id.clone()), Some(method)),
        ClientMessage::Notification { method, .. } => (1, None, Some(method)),
        ClientMessage::Response { id } => (2, id.clone(), None),
    }
}

/// The id of the terminal process the router harness provides.
pub const FUZZ_PROCESS_ID: &str = "tty";

/// Feeds each line of `data` to a connection after a valid handshake, as
/// the stdio transport would, and drains every answer.
pub fn route(data: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let config = ServerConfig {
            max_processes_per_connection: 0,
            max_message_bytes: 64 * 1024,
            max_wait: Duration::from_millis(10),
            ..ServerConfig::default()
        };
        let server = Server::new(config);
        // The connection runs in this task, not a spawned one, so a panic
        // in any handler reaches the fuzzer.
        let (tx, incoming) = tokio::sync::mpsc::channel(crate::INCOMING_CAPACITY);
        let (outgoing, mut rx) = tokio::sync::mpsc::channel(crate::OUTGOING_CAPACITY);
        let connection = serve_connection(server.clone(), incoming, outgoing);
        let (session_tx, session_rx) = tokio::sync::oneshot::channel::<String>();
        let feed = async {
            let initialize = br#"{"id":0,"method":"initialize","params":{"clientName":"fuzz"}}"#;
            let _ = tx.send(incoming_line(initialize)).await;
            let Ok(session_id) = session_rx.await else {
                return None;
            };
            let process = start_terminal_process(&server, &session_id).await;
            let lines = std::iter::once(&br#"{"method":"initialized"}"#[..])
                .chain(data.split(|&b| b == b'\n'));
            for line in lines {
                if tx.send(incoming_line(line)).await.is_err() {
                    break;
                }
            }
            drop(tx);
            Some(process)
        };
        let drain = async {
            let mut session_tx = Some(session_tx);
            let mut answers = 0usize;
            while let Some(message) = rx.recv().await {
                if let ServerMessage::Response { result, .. } = &message {
                    answers += 1;
                    if let (Some(tx), Ok(result)) = (session_tx.take(), result) {
                        let id = result["sessionId"].as_str().unwrap_or_default();
                        let _ = tx.send(id.to_string());
                    }
                }
            }
            answers
        };
        let (process, (), answers) = tokio::join!(feed, connection, drain);
        // The connection's end killed it; reap it so no zombie is left.
        let process = process.expect("the initialize request succeeds");
        process.wait().await;
        assert!(answers >= 1, "the initialize request is always answered");
        assert_eq!(
            server.live_process_groups(),
            0,
            "fuzzing must never leave a process"
        );
    });
}

fn incoming_line(line: &[u8]) -> Incoming {
    if line.len() > 64 * 1024 {
        Incoming::TooLarge { bytes: line.len() }
    } else {
        match decode_client_message(line) {
            Ok(decoded) => Incoming::Message(decoded),
            Err(error) => Incoming::Invalid(error),
        }
    }
}

/// Starts `/bin/cat` on a terminal as process [`FUZZ_PROCESS_ID`] of the
/// session, as `process/start` would (its output goes to retention only).
async fn start_terminal_process(server: &Server, session_id: &str) -> ProcessHandle {
    let session = server
        .sessions()
        .get(session_id)
        .expect("initialize registered the session");
    let mut config = ProcessConfig::new(vec!["/bin/cat".into()], "/");
    config.stdio = StdioMode::Terminal {
        size: TerminalSize::default(),
    };
    config.retained_bytes = 64 * 1024;
    config.screen_budget = Some(server.screen_budget().clone());
    let process = spawn_process(config).await.expect("/bin/cat starts");
    let handle = process.handle.clone();
    let meta = ProcessMeta {
        argv: vec!["/bin/cat".into()],
        tty: true,
        labels: Default::default(),
        on_disconnect: OnDisconnect::Kill,
        detach_ttl: Duration::ZERO,
    };
    let kind = ProcessKind::Api {
        stream_output: false,
    };
    session.insert(Arc::new(ProcessEntry::new(
        FUZZ_PROCESS_ID.into(),
        process.handle,
        kind,
        meta,
    )));
    handle
}
