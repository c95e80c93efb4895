//! Protocol v0 over websocket against the real binary, and the `--listen`
//! rules.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn ws_client(server: &WsServer) -> Rpc<WsTransport> {
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    rpc.handshake().await;
    rpc
}

#[tokio::test]
async fn port_zero_binds_a_free_port_and_the_banner_names_it() {
    let server = WsServer::start(&[]).await;
    assert!(server.url.starts_with("ws://127.0.0.1:"), "{}", server.url);
    let port: u16 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0);
    let mut rpc = ws_client(&server).await;
    let session = rpc.exec(sh("echo over-ws; echo err >&2; exit 5")).await;
    let out = rpc.collect(&session).await;
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice(), out.exit_code),
        (&b"over-ws\n"[..], &b"err\n"[..], 5)
    );
}

#[tokio::test]
async fn connections_are_isolated_from_each_other() {
    let server = WsServer::start(&[]).await;
    let mut first = ws_client(&server).await;
    let mut second = ws_client(&server).await;
    let a = first.exec(sh("sleep 30")).await;
    let b = second.exec(sh("echo second")).await;
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("session-1", "session-1"),
        "ids count per connection"
    );
    assert_eq!(second.collect(&b).await.stdout, b"second\n");
    // The second connection cannot reach the first one's session-1, which
    // is still running.
    assert_eq!(
        second
            .ok("command/exec/terminate", json!({"sessionId": "session-1"}))
            .await,
        json!({"running": false})
    );
    assert_eq!(
        second
            .err(
                "command/exec/write",
                json!({"sessionId": "session-1", "chunk": b64(b"x")})
            )
            .await["message"],
        "unknown session id session-1"
    );
    assert_eq!(
        first
            .ok("command/exec/terminate", json!({"sessionId": a}))
            .await,
        json!({"running": true}),
        "still running after the other connection's attempts"
    );
    assert_eq!(first.collect(&a).await.exit_code, 137);
}

#[tokio::test]
async fn binary_frames_are_accepted_and_pings_answered() {
    let server = WsServer::start(&[]).await;
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    let init =
        json!({"id": 1, "method": "initialize", "params": {"clientName": "bin"}}).to_string();
    rpc.transport
        .socket
        .send(Message::binary(init.into_bytes()))
        .await
        .unwrap();
    assert_eq!(
        rpc.response().await["result"]["protocolVersion"],
        "exec-server.v0"
    );

    rpc.transport
        .socket
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(TIMEOUT, async {
        loop {
            match rpc.transport.socket.next().await {
                Some(Ok(Message::Pong(payload))) => return payload,
                Some(Ok(_)) => continue,
                other => panic!("no pong: {other:?}"),
            }
        }
    })
    .await
    .expect("pong in time");
    assert_eq!(&pong[..], b"are you there");
}

#[tokio::test]
async fn invalid_frames_get_errors_and_the_connection_goes_on() {
    let server = WsServer::start(&["--max-message-bytes", "2048"]).await;
    let mut rpc = ws_client(&server).await;
    rpc.transport.send_text("not json".into()).await;
    let response = rpc.response().await;
    assert_eq!(
        (response["id"].clone(), response["error"]["code"].clone()),
        (json!(null), json!(-32700))
    );
    rpc.transport
        .send_text(format!(
            "{{\"id\":3,\"method\":\"x\",\"params\":\"{}\"}}",
            "z".repeat(10_000)
        ))
        .await;
    let response = rpc.response().await;
    assert_eq!(
        (response["id"].clone(), response["error"]["code"].clone()),
        (json!(null), json!(-32600))
    );
    let session = rpc.exec(sh("printf fine")).await;
    assert_eq!(rpc.collect(&session).await.stdout, b"fine");
}

#[tokio::test]
async fn closing_the_websocket_kills_the_connections_processes() {
    let server = WsServer::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let mut rpc = ws_client(&server).await;
    let session = rpc
        .exec(sh(&format!(
            "(sleep 2; touch {}) & echo $$; sleep 30",
            marker.display()
        )))
        .await;
    let pid: i32 = rpc.read_until(&session, "\n").await.trim().parse().unwrap();
    rpc.transport.socket.close(None).await.unwrap();
    assert!(
        wait_gone(pid, Duration::from_secs(5)).await,
        "the process outlived its connection"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!marker.exists(), "a background job outlived its connection");
}

#[tokio::test]
async fn listen_url_errors_are_exact_and_fail_the_start() {
    let cases = [
        (
            "http://127.0.0.1:1",
            "unsupported --listen URL `http://127.0.0.1:1`; expected `stdio://` or `ws://IP:PORT`",
        ),
        (
            "ws://localhost:8080",
            "invalid websocket --listen URL `ws://localhost:8080`; expected `ws://IP:PORT`",
        ),
    ];
    for (url, message) in cases {
        let output = tokio::process::Command::new(server_bin())
            .args(["--listen", url])
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{url} must fail");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(message), "stderr for {url}: {stderr}");
        assert!(output.stdout.is_empty());
    }
}
