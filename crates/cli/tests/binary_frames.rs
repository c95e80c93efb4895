//! Binary output frames on websocket (`schema/binary-frames.md`) against
//! the real binary: negotiated in `initialize`, raw bytes behind the fixed
//! header, `process/write` as a binary frame answered in JSON, JSON in
//! binary messages still accepted, and nothing changed for clients that
//! do not ask or connect over stdio.

mod common;

use bytes::Bytes;
use common::*;
use exec_server_protocol::binary;
use exec_server_protocol::process::{ProcessStream, WriteParams};
use exec_server_protocol::{ServerNotification, v0};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// A raw websocket client that keeps every frame as it came.
struct Raw {
    ws: WsTransport,
}

/// One frame from the server, as the client sees it.
#[derive(Debug)]
enum Frame {
    Json(Value),
    Binary(Bytes),
}

impl Raw {
    async fn connect(server: &WsServer) -> Raw {
        Raw {
            ws: WsTransport::connect(&server.url).await,
        }
    }

    async fn send(&mut self, value: Value) {
        self.ws
            .socket
            .send(Message::text(value.to_string()))
            .await
            .unwrap();
    }

    async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.socket.send(Message::binary(bytes)).await.unwrap();
    }

    async fn next(&mut self) -> Frame {
        loop {
            let frame = tokio::time::timeout(TIMEOUT, self.ws.socket.next())
                .await
                .expect("timed out waiting for the server")
                .expect("the connection is open")
                .expect("a frame");
            match frame {
                Message::Text(text) => return Frame::Json(serde_json::from_str(&text).unwrap()),
                Message::Binary(bytes) => return Frame::Binary(bytes),
                Message::Close(close) => panic!("the server closed: {close:?}"),
                _ => continue,
            }
        }
    }

    async fn json(&mut self) -> Value {
        match self.next().await {
            Frame::Json(value) => value,
            Frame::Binary(bytes) => panic!("a binary frame where JSON was due: {bytes:?}"),
        }
    }

    /// `initialize` (with `capabilities` when given) and `initialized`;
    /// returns the result.
    async fn handshake(&mut self, capabilities: Option<Value>) -> Value {
        let mut params = json!({"clientName": "binary-test"});
        if let Some(capabilities) = capabilities {
            params["capabilities"] = capabilities;
        }
        self.send(json!({"id": 1, "method": "initialize", "params": params}))
            .await;
        let response = self.json().await;
        assert_eq!(response["id"], 1, "{response}");
        self.send(json!({"method": "initialized"})).await;
        response["result"].clone()
    }

    async fn call(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(json!({"id": id, "method": method, "params": params}))
            .await;
        let response = self.json().await;
        assert_eq!(response["id"], id, "{response}");
        response
    }
}

fn write_frame(id: u64, process_id: &str, bytes: &'static [u8]) -> Vec<u8> {
    let params = WriteParams {
        process_id: process_id.into(),
        chunk: Bytes::from_static(bytes),
        write_id: None,
    };
    let mut frame = Vec::new();
    binary::encode_write_frame(id, &params, &mut frame).unwrap();
    frame
}

fn cat_params() -> Value {
    json!({
        "processId": "cat",
        "argv": ["cat"],
        "cwd": "/",
        "env": {"PATH": "/usr/bin:/bin"},
        "stdin": "pipe",
    })
}

#[tokio::test]
async fn asked_for_binary_frames_output_and_writes_travel_as_raw_bytes() {
    let server = WsServer::start(&[]).await;
    let mut raw = Raw::connect(&server).await;
    let result = raw.handshake(Some(json!({"binaryFrames": true}))).await;
    assert_eq!(result["capabilities"], json!({"binaryFrames": true}));
    raw.call(2, "process/start", cat_params()).await;

    // Every byte value, NUL and invalid UTF-8 included, as a binary write.
    let payload: &'static [u8] = b"\x00\xff\xfehello\n";
    raw.send_binary(write_frame(3, "cat", payload)).await;
    let response = raw.json().await;
    assert_eq!(response, json!({"id": 3, "result": {"accepted": true}}));

    let mut echoed = Vec::new();
    let mut last_seq = 0;
    while echoed.len() < payload.len() {
        let Frame::Binary(frame) = raw.next().await else {
            panic!("output must come as a binary frame");
        };
        // The documented header, read by hand: kind, stream, id length, seq.
        assert_eq!(frame[0], binary::PROCESS_OUTPUT);
        assert_eq!(frame[1], 0, "stdout");
        assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 3);
        let seq = u64::from_be_bytes(frame[4..12].try_into().unwrap());
        assert!(seq > last_seq, "seq grows: {seq} after {last_seq}");
        last_seq = seq;
        assert_eq!(&frame[12..15], b"cat");
        echoed.extend_from_slice(&frame[15..]);
        // The protocol crate's decoder agrees.
        let ServerNotification::ProcessOutput(output) =
            binary::decode_server_frame(&frame).unwrap()
        else {
            panic!("not process output");
        };
        assert_eq!((output.seq, output.stream), (seq, ProcessStream::Stdout));
    }
    assert_eq!(echoed, payload);

    // Everything that is not output stays JSON text.
    raw.call(4, "process/closeStdin", json!({"processId": "cat"}))
        .await;
    let exited = raw.json().await;
    assert_eq!(exited["method"], "process/exited", "{exited}");
    assert_eq!(exited["params"]["seq"], last_seq + 1);
    assert_eq!(raw.json().await["method"], "process/closed");
}

#[tokio::test]
async fn json_requests_in_binary_messages_still_work_with_binary_frames_on() {
    let server = WsServer::start(&[]).await;
    let mut raw = Raw::connect(&server).await;
    raw.handshake(Some(json!({"binaryFrames": true}))).await;
    let list = json!({"id": 9, "method": "process/list", "params": {}});
    raw.send_binary(list.to_string().into_bytes()).await;
    let response = raw.json().await;
    assert_eq!(response["id"], 9);
    assert_eq!(response["result"]["processes"], json!([]));
    // And a JSON `process/write` still works next to binary ones.
    raw.call(10, "process/start", cat_params()).await;
    let write = json!({"processId": "cat", "chunk": b64(b"json\n")});
    assert_eq!(
        raw.call(11, "process/write", write).await["result"],
        json!({"accepted": true})
    );
    let Frame::Binary(frame) = raw.next().await else {
        panic!("output must come as a binary frame");
    };
    assert!(frame.ends_with(b"json\n"), "{frame:?}");
}

#[tokio::test]
async fn a_bad_binary_write_is_refused_with_its_reason_and_the_connection_goes_on() {
    let server = WsServer::start(&[]).await;
    let mut raw = Raw::connect(&server).await;
    raw.handshake(Some(json!({"binaryFrames": true}))).await;
    // An id length running past the end of the frame.
    raw.send_binary(vec![
        binary::PROCESS_WRITE,
        0,
        0,
        40,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        5,
    ])
    .await;
    let error = raw.json().await;
    assert_eq!(error["id"], Value::Null, "{error}");
    assert_eq!(error["error"]["code"], -32600, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("binary frame"), "{message}");
    // An unknown process: the handler's own error, with the frame's id.
    raw.send_binary(write_frame(12, "nobody", b"x")).await;
    let error = raw.json().await;
    assert_eq!(error["id"], 12, "{error}");
    assert_eq!(error["error"]["code"], -32600, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nobody"),
        "{error}"
    );
    // Still serving.
    assert!(raw.call(13, "process/list", json!({})).await["result"]["processes"].is_array());
}

#[tokio::test]
async fn without_asking_output_stays_json_and_binary_frames_are_not_understood() {
    let server = WsServer::start(&[]).await;
    let mut raw = Raw::connect(&server).await;
    let result = raw.handshake(None).await;
    assert!(result.get("capabilities").is_none(), "{result}");
    raw.call(2, "process/start", cat_params()).await;
    raw.send_binary(write_frame(3, "cat", b"x")).await;
    // As before binary frames existed: bytes that are not JSON.
    let error = raw.json().await;
    assert_eq!(error["id"], Value::Null, "{error}");
    assert_eq!(error["error"]["code"], -32700, "{error}");
    let write = json!({"processId": "cat", "chunk": b64(b"text\n")});
    raw.call(4, "process/write", write).await;
    let output = raw.json().await;
    assert_eq!(output["method"], "process/output", "{output}");
    assert_eq!(unb64(&output["params"]["chunk"]), b"text\n");
}

#[tokio::test]
async fn v0_output_comes_as_binary_frames_when_asked() {
    let server = WsServer::start(&[]).await;
    let mut raw = Raw::connect(&server).await;
    raw.handshake(Some(json!({"binaryFrames": true}))).await;
    let session = raw
        .call(2, "command/exec", sh("printf out; printf err >&2"))
        .await["result"]["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    loop {
        match raw.next().await {
            Frame::Binary(frame) => {
                assert_eq!(frame[0], binary::EXEC_OUTPUT);
                let ServerNotification::ExecOutputDelta(delta) =
                    binary::decode_server_frame(&frame).unwrap()
                else {
                    panic!("not v0 output");
                };
                assert_eq!(delta.session_id, session);
                match delta.stream {
                    v0::ExecOutputStream::Stdout => stdout.extend_from_slice(&delta.chunk),
                    v0::ExecOutputStream::Stderr => stderr.extend_from_slice(&delta.chunk),
                }
            }
            Frame::Json(exited) => {
                assert_eq!(exited["method"], "command/exec/exited", "{exited}");
                break;
            }
        }
    }
    assert_eq!(
        (stdout.as_slice(), stderr.as_slice()),
        (&b"out"[..], &b"err"[..])
    );
}

#[tokio::test]
async fn stdio_says_binary_frames_are_off() {
    let mut rpc = Rpc::new(StdioTransport::start(&[]));
    let result = rpc
        .ok(
            "initialize",
            json!({"clientName": "stdio", "capabilities": {"binaryFrames": true}}),
        )
        .await;
    assert_eq!(result["capabilities"], json!({"binaryFrames": false}));
}
