//! No secret in any log line at any level, dependencies included (issue
//! 10): the bearer token and the session id (a resume secret) must never
//! reach stderr, even with `RUST_LOG=trace` and with trace asked for the
//! websocket, HTTP and TLS libraries by name. Those libraries dump frames
//! and requests at trace, so the session id in the `initialize` answer and
//! the `Authorization` header of a client's upgrade are exactly what a
//! trace log would show.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TOKEN: &str = "log-test-token-5b1e9c0d7a";
const SERVER_ID: &str = "logtest";

/// Every level for everything, and trace named explicitly for the
/// libraries that dump payloads: a filter that only lowered the default
/// would not be enough.
const TRACE_EVERYTHING: &str = "trace,tungstenite=trace,tokio_tungstenite=trace,hyper=trace,\
                                hyper_util=trace,axum=trace,rustls=trace,exec_server=trace";

fn token_file(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    path.display().to_string()
}

/// A websocket with the token in the `Authorization` header.
async fn connect(url: &str) -> Rpc<WsTransport> {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    Rpc::new(WsTransport { socket })
}

/// Fails if `log` holds the token, the session id, its secret part, or any
/// session id of this server at all.
/// The websocket library dumps frame payloads as hex.
fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Fails if `log` holds the token, the session id, its secret part, or any
/// session id of this server at all, as text or as a hex dump.
fn assert_no_secret(what: &str, log: &str, session_id: Option<&str>) {
    let mut secrets = vec![("the token", TOKEN.to_string())];
    // The owner stamp starts every session id of this server.
    secrets.push(("a session id", format!("{SERVER_ID}~")));
    if let Some(session_id) = session_id {
        let secret = session_id.split_once('~').unwrap().1;
        assert!(secret.len() >= 32, "{session_id}");
        secrets.push(("the session id", session_id.to_string()));
        secrets.push(("the session secret", secret.to_string()));
    }
    for (name, secret) in secrets {
        for form in [secret.clone(), hex(&secret)] {
            assert!(
                !log.contains(&form),
                "{name} leaked into {what} (as {form:?}):\n{log}"
            );
        }
    }
}

#[tokio::test]
async fn trace_logs_of_the_server_hold_neither_the_token_nor_a_session_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(server_bin());
    command
        .args(["--listen", "ws://127.0.0.1:0", "--server-id", SERVER_ID])
        .args(["--auth-token-file", &token_file(&dir)])
        .env("RUST_LOG", TRACE_EVERYTHING);
    let mut server = WsServer::start_command(command).await;

    // A session with a detached process, left and resumed.
    let mut rpc = connect(&server.url).await;
    let result = rpc
        .ok("initialize", json!({"clientName": "log-test"}))
        .await;
    let session_id = result["sessionId"].as_str().unwrap().to_string();
    assert!(session_id.starts_with(&format!("{SERVER_ID}~")));
    rpc.send(json!({"method": "initialized"})).await;
    let start = json!({
        "processId": "kept",
        "argv": ["/bin/sh", "-c", "echo first; read line; echo \"got $line\""],
        "cwd": "/",
        "stdin": "pipe",
        "onDisconnect": "detach",
    });
    rpc.ok("process/start", start).await;
    rpc.transport.socket.close(None).await.unwrap();
    drop(rpc);

    // Resume (the id travels in the request this time), then use it. The
    // server detaches the session once it has seen the close: retry until
    // then (bounded).
    let resume = json!({"clientName": "log-test", "resumeSessionId": session_id});
    let mut attempts = 0;
    let mut rpc = loop {
        let mut rpc = connect(&server.url).await;
        let response = rpc.call("initialize", resume.clone()).await;
        if response.get("result").is_some() {
            assert_eq!(response["result"]["sessionId"], session_id.as_str());
            break rpc;
        }
        attempts += 1;
        assert!(attempts < 100, "resume refused: {response}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    rpc.send(json!({"method": "initialized"})).await;
    rpc.ok(
        "process/write",
        json!({"processId": "kept", "chunk": b64(b"hello\n")}),
    )
    .await;
    let wait = json!({"processId": "kept", "timeoutMs": 10000});
    let waited = rpc.ok("process/wait", wait).await;
    assert_eq!(waited["reason"], "exited", "{waited}");
    let read = rpc
        .ok("process/read", json!({"processId": "kept", "afterSeq": 0}))
        .await;
    let output: Vec<u8> = read["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|chunk| unb64(&chunk["chunk"]))
        .collect();
    assert_eq!(output, b"first\ngot hello\n");
    let started = json!({"argv": ["/bin/echo", "second"], "cwd": "/"});
    rpc.ok("process/start", started).await;
    drop(rpc);

    // A client that logs too: `exec-server mcp --connect` does the
    // handshake (a session id of this server) as it starts.
    let mut mcp = tokio::process::Command::new(server_bin())
        .args(["mcp", "--connect", &server.url, "--token-file"])
        .arg(dir.path().join("token"))
        .env("RUST_LOG", TRACE_EVERYTHING)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut mcp_log = String::new();
    let mut mcp_stderr = mcp.stderr.take().unwrap();
    // The server logs each handshake; wait for the MCP client's (bounded).
    let mut handshakes = 0;
    for _ in 0..200 {
        handshakes = server
            .log
            .lock()
            .unwrap()
            .matches("client initialized")
            .count();
        if handshakes >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(handshakes, 3, "{}", server.log.lock().unwrap());
    // Its end of input ends it (before any MCP handshake, hence not 0).
    drop(mcp.stdin.take());
    tokio::time::timeout(TIMEOUT, mcp.wait())
        .await
        .unwrap()
        .unwrap();
    mcp_stderr.read_to_string(&mut mcp_log).await.unwrap();

    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(server.pid(), libc::SIGTERM) }, 0);
    tokio::time::timeout(TIMEOUT, server.child.wait())
        .await
        .unwrap()
        .unwrap();
    // The stderr reader may still hold the last lines.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = server.log.lock().unwrap().clone();

    // Detailed logging was on: the libraries still log what is not a
    // payload, at debug, and our own crates log too.
    assert!(log.contains("DEBUG tungstenite"), "{log}");
    assert!(log.contains("INFO exec_server_service"), "{log}");
    assert!(mcp_log.contains("DEBUG tungstenite"), "{mcp_log}");
    assert_no_secret("the server's log", &log, Some(&session_id));
    assert_no_secret("the MCP front-end's log", &mcp_log, None);
}
