//! Attacks on a websocket listener, and the limits that must hold under
//! them (SPEC section 4).

mod common;

use std::io::{Read as _, Write as _};
use std::time::Duration;

use common::*;
use exec_server_client::{ExecServerClient, WebSocketConnectArgs};
use exec_server_protocol::v0::ExecParams;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::StatusCode;

const TOKEN: &str = "correct-horse-battery-staple-7f3a";

fn token_file(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    path.display().to_string()
}

/// The HTTP status of a websocket upgrade attempt with extra headers.
async fn upgrade_status(url: &str, headers: &[(&str, &str)]) -> StatusCode {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status(),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

/// Runs `echo WORD` through `client` and checks what comes back.
async fn assert_echo(client: &ExecServerClient, word: &str) {
    let params = ExecParams {
        argv: vec!["/bin/echo".into(), word.into()],
        cwd: "/".into(),
        ..Default::default()
    };
    let output = client.exec(params).await.unwrap().output().await.unwrap();
    assert_eq!(output.stdout, format!("{word}\n").as_bytes());
}

/// A plain HTTP GET, returning (status line, body).
fn http_get(url: &str, path: &str) -> (String, String) {
    let address = url.trim_start_matches("ws://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.lines().next().unwrap_or_default().to_string();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[tokio::test]
async fn a_token_is_required_in_the_header_or_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let server = WsServer::start(&["--auth-token-file", &token_file(&dir)]).await;
    assert_eq!(
        upgrade_status(&server.url, &[]).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        upgrade_status(&server.url, &[("authorization", "Bearer wrong-token")]).await,
        StatusCode::UNAUTHORIZED
    );
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        upgrade_status(&server.url, &[("authorization", &bearer)]).await,
        StatusCode::SWITCHING_PROTOCOLS
    );
    let with_query = format!("{}/?token={TOKEN}", server.url);
    assert_eq!(
        upgrade_status(&with_query, &[]).await,
        StatusCode::SWITCHING_PROTOCOLS
    );
    let wrong_query = format!("{}/?token=nope", server.url);
    assert_eq!(
        upgrade_status(&wrong_query, &[]).await,
        StatusCode::UNAUTHORIZED
    );
    // A plain GET without the token is refused before anything else.
    assert!(http_get(&server.url, "/").0.contains("401"));

    // The Rust client with the token works end to end.
    let mut args = WebSocketConnectArgs::new(&server.url);
    args.bearer_token = Some(TOKEN.into());
    let client = ExecServerClient::connect_websocket(args).await.unwrap();
    assert_echo(&client, "authorized").await;
}

#[tokio::test]
async fn the_token_can_come_from_the_environment() {
    let mut command = tokio::process::Command::new(server_bin());
    command
        .args(["--listen", "ws://127.0.0.1:0"])
        .env("EXEC_SERVER_AUTH_TOKEN", TOKEN);
    let server = WsServer::start_command(command).await;
    let url = server.url.clone();
    assert_eq!(upgrade_status(&url, &[]).await, StatusCode::UNAUTHORIZED);
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        upgrade_status(&url, &[("authorization", &bearer)]).await,
        StatusCode::SWITCHING_PROTOCOLS
    );
}

#[tokio::test]
async fn browser_origins_other_than_the_servers_own_are_refused() {
    let server = WsServer::start(&["--allow-origin", "https://ide.example.com"]).await;
    let host = server.url.trim_start_matches("ws://").to_string();
    let cases = [
        ("https://evil.example", StatusCode::FORBIDDEN),
        ("null", StatusCode::FORBIDDEN),
        ("https://ide.example.com", StatusCode::SWITCHING_PROTOCOLS),
        (&*format!("http://{host}"), StatusCode::SWITCHING_PROTOCOLS),
    ];
    for (origin, expected) in cases {
        assert_eq!(
            upgrade_status(&server.url, &[("origin", origin)]).await,
            expected,
            "origin {origin}"
        );
    }
    // DNS rebinding: a name the attacker controls resolves to 127.0.0.1.
    let port = host.rsplit(':').next().unwrap();
    let rebound = format!("evil.example:{port}");
    let status = upgrade_status(
        &server.url,
        &[("host", &rebound), ("origin", &format!("http://{rebound}"))],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Non-browser clients send no Origin and are not affected.
    assert_eq!(
        upgrade_status(&server.url, &[]).await,
        StatusCode::SWITCHING_PROTOCOLS
    );
}

#[tokio::test]
async fn readyz_answers_without_auth_and_reveals_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = WsServer::start(&[
        "--auth-token-file",
        &token_file(&dir),
        "--server-id",
        "probe-7",
    ])
    .await;
    let (status, body) = http_get(&server.url, "/readyz");
    assert!(status.contains("200"), "{status}");
    // The server id is public (it routes resumes); nothing else is said.
    assert_eq!(body, "ok probe-7\n");
    let (status, body) = http_get(&server.url, "/livez");
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, "ok\n");
    assert!(http_get(&server.url, "/not/an/endpoint").0.contains("404"));
    // One segment may be a server id (`/SERVER_ID/` is the routed
    // endpoint): without the token it says nothing either.
    assert!(http_get(&server.url, "/anything-else").0.contains("401"));
}

#[test]
fn a_non_loopback_listener_without_a_token_refuses_to_start() {
    let output = std::process::Command::new(server_bin())
        .args(["--listen", "ws://0.0.0.0:0"])
        .env_remove("EXEC_SERVER_AUTH_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--insecure-no-auth") && stderr.contains("--auth-token-file"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_works_end_to_end_with_a_self_signed_certificate_and_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let common::SelfSigned {
        cert,
        cert_path,
        key_path,
    } = common::self_signed(dir.path(), &["127.0.0.1", "localhost"]);
    let mut command = tokio::process::Command::new(server_bin());
    command
        .args([
            "--listen",
            "wss://127.0.0.1:0",
            "--auth-token-file",
            &token_file(&dir),
        ])
        .arg("--tls-cert")
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path);
    let server = WsServer::start_command(command).await;
    let url = server.url.clone();
    assert!(url.starts_with("wss://"), "{url}");

    // Without trusting the certificate, the connection fails.
    let mut untrusted = WebSocketConnectArgs::new(&url);
    untrusted.bearer_token = Some(TOKEN.into());
    assert!(
        ExecServerClient::connect_websocket(untrusted)
            .await
            .is_err()
    );

    let mut args = WebSocketConnectArgs::new(&url);
    args.bearer_token = Some(TOKEN.into());
    args.ca_pem = Some(cert.pem().into_bytes());
    let client = ExecServerClient::connect_websocket(args).await.unwrap();
    assert_echo(&client, "over tls").await;

    // The right certificate but no token: still 401.
    let mut no_token = WebSocketConnectArgs::new(&url);
    no_token.ca_pem = Some(cert.pem().into_bytes());
    let error = ExecServerClient::connect_websocket(no_token)
        .await
        .err()
        .unwrap();
    assert!(error.to_string().contains("401"), "{error}");
}

#[tokio::test]
async fn the_token_never_appears_in_logs_or_help() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(server_bin());
    command
        .args([
            "--listen",
            "ws://127.0.0.1:0",
            "--auth-token-file",
            &token_file(&dir),
        ])
        .env("RUST_LOG", "trace");
    let mut server = WsServer::start_command(command).await;
    let url = server.url.clone();
    let bearer = format!("Bearer {TOKEN}");
    upgrade_status(&url, &[("authorization", &bearer)]).await;
    upgrade_status(&url, &[("authorization", "Bearer guess")]).await;
    upgrade_status(&format!("{url}/?token={TOKEN}"), &[]).await;
    let mut rpc = Rpc::new(WsTransport::connect(&format!("{url}/?token={TOKEN}")).await);
    rpc.handshake().await;
    let session = rpc.exec(sh("echo hi")).await;
    rpc.collect(&session).await;
    drop(rpc);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = server.log.lock().unwrap().clone();
    assert!(log.len() > 200, "trace logging produced output: {log}");
    assert!(
        !log.contains(TOKEN),
        "the token leaked into the log:\n{log}"
    );

    let help = std::process::Command::new(server_bin())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("--auth-token-file") && !help.contains(TOKEN));
}

#[tokio::test]
async fn the_connection_limit_answers_503() {
    let server = WsServer::start(&["--max-connections", "2"]).await;
    let first = WsTransport::connect(&server.url).await;
    let second = WsTransport::connect(&server.url).await;
    assert_eq!(
        upgrade_status(&server.url, &[]).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    drop(first);
    // The slot frees once the server notices the close.
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        status = upgrade_status(&server.url, &[]).await;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS);
    drop(second);
}

#[tokio::test]
async fn hostile_messages_get_errors_and_the_connection_survives() {
    let mut rpc = stdio_client(&[]).await;
    // Ids of absurd length.
    rpc.send(json!({"id": "x".repeat(100_000), "method": "process/list"}))
        .await;
    let response = rpc.response().await;
    assert_eq!(
        (response["id"].clone(), response["error"]["code"].clone()),
        (json!(null), json!(-32600))
    );
    // Deep nesting.
    rpc.transport
        .send_raw(format!("{}\n", "[".repeat(100_000)).as_bytes())
        .await;
    assert_eq!(rpc.response().await["error"]["code"], -32700);
    // Wrong types everywhere.
    for params in [
        json!(5),
        json!([1]),
        json!({"argv": [1, 2], "cwd": "/"}),
        json!({"argv": ["a"], "cwd": 7}),
    ] {
        assert_eq!(rpc.err("command/exec", params).await["code"], -32602);
    }
    // An enormous method name is echoed only in part.
    let error = rpc.err(&"m".repeat(100_000), json!({})).await;
    assert!(error["message"].as_str().unwrap().len() < 400);
    // Invalid base64.
    assert_eq!(
        rpc.err(
            "command/exec/write",
            json!({"sessionId": "session-1", "chunk": "!!!"})
        )
        .await["code"],
        -32602
    );
    let session = rpc.exec(sh("printf alive")).await;
    assert_eq!(rpc.collect(&session).await.stdout, b"alive");
}

#[tokio::test]
async fn a_request_flood_from_a_client_that_does_not_read_keeps_memory_bounded() {
    let server = WsServer::start(&[]).await;
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    rpc.handshake().await;
    let before = rss_kib(server.pid());
    // 200k requests, not reading a single answer: the server stops reading
    // once its queues are full, and TCP pushes back on us.
    let flood = async {
        for id in 0..200_000 {
            rpc.send(json!({"id": id, "method": "process/list", "params": {}}))
                .await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), flood).await;
    let during = rss_kib(server.pid());
    eprintln!("server RSS before {before} KiB, during the flood {during} KiB");
    assert!(
        during < before + 64 * 1024,
        "server RSS grew from {before} to {during} KiB"
    );
}
