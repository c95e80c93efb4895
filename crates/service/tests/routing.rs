//! The connection handler in memory: typed messages in, typed messages out,
//! no transport. Handshake order, error mapping, and cleanup.

use std::time::Duration;

use exec_server_protocol::wire::{DecodeError, DecodedClientMessage};
use exec_server_protocol::{ClientMessage, RequestId, ServerMessage, ServerNotification};
use exec_server_service::{Incoming, Server, ServerConfig, connect_in_process};
use serde_json::{Value, json};
use tokio::sync::mpsc;

struct Conn {
    tx: mpsc::Sender<Incoming>,
    rx: mpsc::Receiver<ServerMessage>,
}

impl Conn {
    fn new(config: ServerConfig) -> Self {
        let (tx, rx) = connect_in_process(&Server::new(config));
        Conn { tx, rx }
    }

    async fn send(&self, message: ClientMessage) {
        let message = Incoming::Message(DecodedClientMessage {
            message,
            jsonrpc: false,
        });
        self.tx.send(message).await.unwrap();
    }

    async fn request(
        &mut self,
        id: i64,
        method: &str,
        params: Value,
    ) -> Result<Value, (i64, String)> {
        self.send(ClientMessage::Request {
            id: id.into(),
            method: method.into(),
            params: Some(params),
        })
        .await;
        loop {
            match self.recv().await.expect("connection open") {
                ServerMessage::Response { id: got, result } => {
                    assert_eq!(got, Some(RequestId::from(id)));
                    return result.map_err(|e| (e.code, e.message));
                }
                ServerMessage::Notification(_) => continue,
            }
        }
    }

    async fn recv(&mut self) -> Option<ServerMessage> {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("in time")
    }

    async fn ready(config: ServerConfig) -> Self {
        let mut conn = Conn::new(config);
        conn.request(1, "initialize", json!({"clientName": "unit"}))
            .await
            .unwrap();
        conn.send(ClientMessage::Notification {
            method: "initialized".into(),
            params: None,
        })
        .await;
        conn
    }
}

fn exec(script: &str) -> Value {
    json!({"argv": ["/bin/sh", "-c", script], "cwd": "/", "env": {}, "tty": false})
}

#[tokio::test]
async fn handshake_errors_come_before_method_errors() {
    let mut conn = Conn::new(ServerConfig::default());
    let before = "client must call initialize before using exec methods".to_string();
    assert_eq!(
        conn.request(1, "command/exec", exec("true")).await,
        Err((-32600, before.clone()))
    );
    assert_eq!(
        conn.request(2, "bogus", json!(null)).await,
        Err((-32600, before))
    );
    let init = conn.request(3, "initialize", json!(null)).await.unwrap();
    assert_eq!(
        init["protocolVersion"], "exec-server.v0",
        "absent params count as {{}}"
    );
    assert_eq!(
        conn.request(4, "command/exec/terminate", json!({"sessionId": "x"}))
            .await,
        Err((
            -32600,
            "client must send initialized before using exec methods".into()
        ))
    );
}

#[tokio::test]
async fn errors_map_to_the_v0_codes() {
    let mut conn = Conn::ready(ServerConfig::default()).await;
    assert_eq!(
        conn.request(2, "bogus", json!({})).await,
        Err((-32600, "unknown method: bogus".into()))
    );
    let (code, message) = conn
        .request(3, "command/exec", json!({"argv": ["x"]}))
        .await
        .unwrap_err();
    assert_eq!(code, -32602);
    assert!(message.contains("missing field `cwd`"), "{message}");
    let (code, _) = conn
        .request(
            4,
            "command/exec/write",
            json!({"sessionId": "s", "chunk": 5}),
        )
        .await
        .unwrap_err();
    assert_eq!(code, -32602);
    let (code, message) = conn
        .request(
            5,
            "command/exec",
            json!({"argv": ["/nonexistent/prog"], "cwd": "/"}),
        )
        .await
        .unwrap_err();
    assert_eq!(code, -32603);
    assert!(
        message.starts_with("failed to spawn `/nonexistent/prog`"),
        "{message}"
    );
    let (code, message) = conn
        .request(
            6,
            "command/exec",
            json!({"argv": ["/bin/true"], "cwd": "/", "env": {"A=B": "c"}}),
        )
        .await
        .unwrap_err();
    assert_eq!(code, -32602);
    assert!(message.contains("A=B"), "{message}");
}

#[tokio::test]
async fn transport_level_problems_are_answered_with_null_ids() {
    let mut conn = Conn::ready(ServerConfig {
        max_message_bytes: 10,
        ..ServerConfig::default()
    })
    .await;
    conn.tx
        .send(Incoming::Invalid(DecodeError::Parse("bad".into())))
        .await
        .unwrap();
    match conn.recv().await.unwrap() {
        ServerMessage::Response {
            id: None,
            result: Err(e),
        } => assert_eq!(e.code, -32700),
        other => panic!("{other:?}"),
    }
    conn.tx
        .send(Incoming::TooLarge { bytes: 11 })
        .await
        .unwrap();
    match conn.recv().await.unwrap() {
        ServerMessage::Response {
            id: None,
            result: Err(e),
        } => {
            assert_eq!(e.code, -32600);
            assert_eq!(
                e.message,
                "message of 11 bytes exceeds the limit of 10 bytes (--max-message-bytes)"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_exec_response_precedes_the_sessions_first_notification() {
    let mut conn = Conn::ready(ServerConfig::default()).await;
    for id in 10..40 {
        conn.send(ClientMessage::Request {
            id: id.into(),
            method: "command/exec".into(),
            params: Some(exec("printf x")),
        })
        .await;
        let mut seen_response = false;
        loop {
            match conn.recv().await.unwrap() {
                ServerMessage::Response { result, .. } => {
                    assert!(result.is_ok());
                    seen_response = true;
                }
                ServerMessage::Notification(ServerNotification::ExecOutputDelta(_)) => {
                    assert!(seen_response, "output before the exec response");
                }
                ServerMessage::Notification(ServerNotification::ExecExited(_)) => {
                    assert!(seen_response);
                    break;
                }
                ServerMessage::Notification(other) => panic!("not a v0 notification: {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn dropping_the_connection_kills_its_processes() {
    let mut conn = Conn::ready(ServerConfig::default()).await;
    conn.request(2, "command/exec", exec("echo $$; exec sleep 30"))
        .await
        .unwrap();
    let pid = loop {
        if let Some(ServerMessage::Notification(ServerNotification::ExecOutputDelta(delta))) =
            conn.recv().await
        {
            break String::from_utf8(delta.chunk.to_vec())
                .unwrap()
                .trim()
                .parse::<i32>()
                .unwrap();
        }
    };
    let Conn { tx, mut rx } = conn;
    drop(tx);
    // The exit of the killed process is still reported while the receiver lives.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("in time")
        {
            Some(ServerMessage::Notification(ServerNotification::ExecExited(exited))) => {
                assert_eq!(exited.exit_code, 137);
                break;
            }
            Some(_) => continue,
            None => panic!("connection closed without reporting the kill"),
        }
    }
    assert!(
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z"))
    );
}
