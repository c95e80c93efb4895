//! Issue 18, each attack as a black-box test against the real binary: no
//! single client takes the server down, no stranger locks others out, and
//! memory per client is bounded.
//!
//! Servers that could hurt the machine if a bound failed run under resource
//! limits (`ulimit -v`, `ulimit -n`, set by a shell that then `exec`s the
//! server), and every timeout is configured short so the tests take seconds.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream as StdTcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "hardening-token-5d1c";

fn token_file(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("token");
    std::fs::write(&path, TOKEN).unwrap();
    path.display().to_string()
}

/// A websocket server started through `sh -c 'ulimit ...; exec server'`,
/// so the limits apply to the server process itself (same pid).
async fn limited_server(limits: &str, args: &[&str]) -> WsServer {
    let mut command = tokio::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(format!("{limits} && exec \"$0\" \"$@\""))
        .arg(server_bin())
        .args(["--listen", "ws://127.0.0.1:0"])
        .args(args);
    WsServer::start_command(command).await
}

fn address(server: &WsServer) -> String {
    server.url.trim_start_matches("ws://").to_string()
}

/// Reads until the server closes the connection (or `limit` passes) and
/// returns how long that took.
async fn time_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        let remaining = limit.checked_sub(started.elapsed())?;
        match tokio::time::timeout(remaining, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// An authenticated websocket client, handshake done.
async fn authorized_client(server: &WsServer) -> Rpc<WsTransport> {
    let url = format!("{}/?token={TOKEN}", server.url);
    let mut rpc = Rpc::new(WsTransport::connect(&url).await);
    rpc.handshake().await;
    rpc
}

fn open_descriptors(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn silent_and_dripping_connections_are_closed_within_the_handshake_timeout() {
    let server = WsServer::start(&["--handshake-timeout-ms", "600"]).await;
    let address = address(&server);
    // Nothing at all; a request line only; one header byte every 100 ms,
    // which never lets a read time out but never finishes the head either.
    let mut silent = TcpStream::connect(&address).await.unwrap();
    let mut line_only = TcpStream::connect(&address).await.unwrap();
    line_only.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let mut dripping = TcpStream::connect(&address).await.unwrap();
    let started = Instant::now();
    let drip = async {
        let header = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for byte in header {
            if dripping.write_all(&[*byte]).await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the dripping connection was still open after {:?}",
            started.elapsed()
        );
    };
    let limit = Duration::from_secs(5);
    let (silent, line_only, dripped) = tokio::join!(
        time_until_closed(&mut silent, limit),
        time_until_closed(&mut line_only, limit),
        drip
    );
    for (what, elapsed) in [("silent", silent), ("request line only", line_only)] {
        let elapsed = elapsed.unwrap_or_else(|| panic!("{what}: still open after {limit:?}"));
        assert!(
            elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(3),
            "{what}: closed after {elapsed:?}"
        );
    }
    // A write may succeed once more after the close; the next one fails.
    assert!(dripped < Duration::from_secs(3), "dripping: {dripped:?}");

    // A kept-alive connection must send its next request head in time too.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let elapsed = time_until_closed(&mut idle, limit).await.expect("closed");
    assert!(
        elapsed < Duration::from_secs(3),
        "kept alive for {elapsed:?}"
    );

    // Meanwhile the server serves as usual.
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    rpc.handshake().await;
    let session = rpc.exec(sh("echo still-here")).await;
    assert_eq!(rpc.collect(&session).await.stdout, b"still-here\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_completes_tls_and_then_says_nothing_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let common::SelfSigned {
        cert,
        cert_path,
        key_path,
    } = common::self_signed(dir.path(), &["127.0.0.1"]);
    let mut command = tokio::process::Command::new(server_bin());
    command
        .args([
            "--listen",
            "wss://127.0.0.1:0",
            "--handshake-timeout-ms",
            "600",
        ])
        .arg("--tls-cert")
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path);
    let server = WsServer::start_command(command).await;
    let address = server.url.trim_start_matches("wss://").to_string();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(&address).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    // TLS is up; now silence.
    let started = Instant::now();
    let mut buffer = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buffer)).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "expected the server to close, got {read:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "closed after {elapsed:?}");

    // A silent TCP connection that never starts TLS is closed too.
    let mut raw = TcpStream::connect(&address).await.unwrap();
    let elapsed = time_until_closed(&mut raw, Duration::from_secs(5)).await;
    assert!(
        elapsed.is_some_and(|e| e < Duration::from_secs(3)),
        "{elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_strangers_do_not_lock_out_a_client_with_the_token() {
    let dir = tempfile::tempdir().unwrap();
    // 256 descriptors for the whole server, a long handshake timeout so the
    // strangers stay for the whole test: only the pending cap saves us.
    let server = limited_server(
        "ulimit -n 256",
        &[
            "--auth-token-file",
            &token_file(&dir),
            "--handshake-timeout-ms",
            "60000",
        ],
    )
    .await;
    let address = address(&server);
    let mut strangers = Vec::new();
    for i in 0..400 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        if i % 2 == 0 {
            stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        }
        strangers.push(stream);
    }
    // Let the server accept them all (it evicts the oldest as it goes).
    tokio::time::sleep(Duration::from_millis(500)).await;
    // At most a quarter of the limit is spent on pending connections.
    let open = open_descriptors(server.pid());
    eprintln!("{open} descriptors open with 400 strangers connected");
    assert!(open < 128, "{open} descriptors open");
    let started = Instant::now();
    let mut rpc = tokio::time::timeout(Duration::from_secs(10), authorized_client(&server))
        .await
        .expect("the client with the token got in");
    for i in 0..5 {
        let session = rpc.exec(sh(&format!("echo run-{i}"))).await;
        assert_eq!(
            rpc.collect(&session).await.stdout,
            format!("run-{i}\n").as_bytes()
        );
    }
    eprintln!("authorized client in and served in {:?}", started.elapsed());
    drop(strangers);
}

#[tokio::test]
async fn a_websocket_that_never_initializes_is_closed() {
    let server = WsServer::start(&["--initialize-timeout-ms", "500"]).await;
    let started = Instant::now();
    let mut idle = WsTransport::connect(&server.url).await;
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), idle.recv_text())
            .await
            .expect("closed in time"),
        None
    );
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "closed after {elapsed:?}");

    // Requests other than initialize do not keep it open either.
    let mut chatty = Rpc::new(WsTransport::connect(&server.url).await);
    let started = Instant::now();
    loop {
        chatty
            .transport
            .send_text(json!({"id": 1, "method": "process/list"}).to_string())
            .await;
        match chatty.recv().await {
            Some(answer) => assert_eq!(answer["error"]["code"], -32600),
            None => break,
        }
        assert!(started.elapsed() < Duration::from_secs(3), "still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A client that initializes in time stays as long as it likes.
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    rpc.handshake().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let session = rpc.exec(sh("echo later")).await;
    assert_eq!(rpc.collect(&session).await.stdout, b"later\n");
}

/// The status line of a raw upgrade request with the given extra lines.
fn raw_upgrade_status(address: &str, target: &str, extra: &[&str]) -> String {
    let mut stream = StdTcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!(
        "GET {target} HTTP/1.1\r\nHost: {address}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let mut buffer = [0u8; 1024];
    while !response.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "closed without a status line");
        response.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_token_is_presented_once_or_the_upgrade_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = WsServer::start(&["--auth-token-file", &token_file(&dir)]).await;
    let address = address(&server);
    let right = format!("Authorization: Bearer {TOKEN}");
    let with_token = format!("/?token={TOKEN}");
    // The browser's way: the token base64url-encoded in a subprotocol.
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(TOKEN);
    let subprotocol = format!("Sec-WebSocket-Protocol: exec-server, exec-server.bearer.{encoded}");
    let wrong_subprotocol = "Sec-WebSocket-Protocol: exec-server, exec-server.bearer.Z3Vlc3M";
    let two_subprotocols =
        format!("Sec-WebSocket-Protocol: exec-server.bearer.Z3Vlc3M, exec-server.bearer.{encoded}");
    let cases: Vec<(&str, &str, Vec<&str>, &str)> = vec![
        ("one header", "/", vec![&right], "101"),
        ("one parameter", &with_token, vec![], "101"),
        ("one subprotocol", "/", vec![&subprotocol], "101"),
        (
            "right subprotocol, right header",
            "/",
            vec![&subprotocol, &right],
            "400",
        ),
        (
            "right subprotocol, wrong header",
            "/",
            vec![&subprotocol, "Authorization: Bearer guess"],
            "400",
        ),
        (
            "wrong subprotocol, right header",
            "/",
            vec![wrong_subprotocol, &right],
            "400",
        ),
        (
            "right subprotocol, right parameter",
            &with_token,
            vec![&subprotocol],
            "400",
        ),
        (
            "wrong subprotocol, right parameter",
            &with_token,
            vec![wrong_subprotocol],
            "400",
        ),
        ("two subprotocols", "/", vec![&two_subprotocols], "400"),
        (
            "subprotocols in two headers",
            "/",
            vec![wrong_subprotocol, &subprotocol],
            "400",
        ),
        (
            "two headers, first wrong",
            "/",
            vec!["Authorization: Bearer guess", &right],
            "400",
        ),
        ("two headers, both right", "/", vec![&right, &right], "400"),
        (
            "wrong header, right parameter",
            &with_token,
            vec!["Authorization: Bearer guess"],
            "400",
        ),
        (
            "right header, right parameter",
            &with_token,
            vec![&right],
            "400",
        ),
        ("two parameters", "/?token=guess&token=x", vec![], "400"),
        ("no credential", "/", vec![], "401"),
    ];
    for (what, target, extra, expected) in cases {
        let status = raw_upgrade_status(&address, target, &extra);
        assert!(
            status.split_whitespace().nth(1) == Some(expected),
            "{what}: {status}"
        );
    }
}

/// Total bytes of `VmRSS` growth allowed for a bound to count as held.
fn assert_grew_less(before_kib: u64, after_kib: u64, limit_bytes: u64, what: &str) {
    let grown = after_kib.saturating_sub(before_kib) * 1024;
    eprintln!("{what}: RSS {before_kib} KiB -> {after_kib} KiB");
    assert!(grown < limit_bytes, "{what}: RSS grew by {grown} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_to_a_deaf_process_is_bounded_and_refused_with_a_clear_error() {
    // 4 GiB of address space: a queue that grew without bound would abort
    // the server rather than the machine.
    let server = limited_server("ulimit -v 4194304", &[]).await;
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    rpc.handshake().await;
    rpc.ok(
        "process/start",
        json!({"processId": "deaf", "argv": ["/bin/sleep", "600"], "cwd": "/", "stdin": "pipe"}),
    )
    .await;
    let before = rss_kib(server.pid());
    let chunk = b64(&vec![b'x'; 256 * 1024]);
    let mut accepted = 0usize;
    let mut refusal: Option<Value> = None;
    // Up to 128 MiB: the queue must refuse long before.
    for _ in 0..512 {
        let response = rpc
            .call(
                "process/write",
                json!({"processId": "deaf", "chunk": chunk}),
            )
            .await;
        if response.get("error").is_some() {
            refusal = Some(response["error"].clone());
            break;
        }
        accepted += 256 * 1024;
    }
    let after = rss_kib(server.pid());
    let refusal = refusal.expect("writes beyond the queue are refused");
    assert_eq!(refusal["code"], -32600, "{refusal}");
    let message = refusal["message"].as_str().unwrap();
    assert!(
        message.contains("stdin of process deaf is full") && message.contains("nothing"),
        "{message}"
    );
    // 1 MiB of queue plus the pipe's 64 KiB, one chunk either way.
    assert!(
        accepted <= 1024 * 1024 + 64 * 1024 + 256 * 1024,
        "{accepted}"
    );
    // The full queue itself (1 MiB) plus the buffers of decoding the
    // requests; unbounded, it would be the whole 128 MiB.
    assert_grew_less(before, after, 4 * 1024 * 1024, "128 MiB to a deaf process");
    // The connection is still fine and the process can be stopped.
    assert_eq!(
        rpc.ok("process/terminate", json!({"processId": "deaf"}))
            .await["running"],
        true
    );
}

/// `process/start` params for `sh -c SCRIPT`.
fn start(script: &str) -> Value {
    json!({"argv": ["/bin/sh", "-c", script], "cwd": "/", "env": {"PATH": "/usr/bin:/bin"}})
}

fn with(mut params: Value, extra: Value) -> Value {
    for (key, value) in extra.as_object().unwrap() {
        params[key] = value.clone();
    }
    params
}

/// Starts a detached `sleep` in a new session and disconnects; returns the
/// session id and the pid.
async fn leave_a_detached_process(server: &WsServer) -> (String, i32) {
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    let init = rpc.ok("initialize", json!({"clientName": "other"})).await;
    rpc.send(json!({"method": "initialized"})).await;
    let started = rpc
        .ok(
            "process/start",
            with(
                start("sleep 600"),
                json!({"processId": "keep", "onDisconnect": "detach"}),
            ),
        )
        .await;
    (
        init["sessionId"].as_str().unwrap().to_string(),
        started["pid"].as_i64().unwrap() as i32,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_terminals_are_refused_and_nobody_else_pays_for_them() {
    // 4 GiB of address space: one 65535x65535 screen (137 GB) would abort
    // the server, killing the other client's detached process with it.
    let server = limited_server("ulimit -v 4194304", &["--detach-ttl-ms", "60000"]).await;
    let (other_session, other_pid) = leave_a_detached_process(&server).await;
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    rpc.handshake().await;
    let before = rss_kib(server.pid());
    let huge = json!({"rows": 65535, "cols": 65535});
    let error = rpc
        .err(
            "process/start",
            with(start("cat"), json!({"tty": true, "size": huge})),
        )
        .await;
    assert_eq!(error["code"], -32602, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("65535x65535 exceeds this server's maximum of 1000x1000"),
        "{error}"
    );
    rpc.ok(
        "process/start",
        with(start("cat"), json!({"processId": "t", "tty": true})),
    )
    .await;
    for (rows, cols) in [(65535, 65535), (2000, 2000), (24, 1001), (0, 80)] {
        let error = rpc
            .err(
                "process/resize",
                json!({"processId": "t", "rows": rows, "cols": cols}),
            )
            .await;
        assert_eq!(error["code"], -32602, "{rows}x{cols}: {error}");
    }
    // The largest allowed size works, and the screen is rendered at it.
    rpc.ok(
        "process/resize",
        json!({"processId": "t", "rows": 1000, "cols": 1000}),
    )
    .await;
    let snapshot = rpc.ok("process/snapshot", json!({"processId": "t"})).await;
    assert_eq!(snapshot["screen"].as_array().unwrap().len(), 1000);
    let after = rss_kib(server.pid());
    assert_grew_less(before, after, 256 * 1024 * 1024, "huge sizes refused");
    // The server and the other client's detached process are alive.
    assert!(!process_gone(other_pid), "the detached process died");
    let mut other = Rpc::new(WsTransport::connect(&server.url).await);
    let init = other
        .ok(
            "initialize",
            json!({"clientName": "other", "resumeSessionId": other_session}),
        )
        .await;
    assert_eq!(init["resumed"], true);
    other.send(json!({"method": "initialized"})).await;
    let list = other.ok("process/list", json!({})).await;
    assert_eq!(list["processes"][0]["running"], true, "{list}");
    other
        .ok("process/terminate", json!({"processId": "keep"}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_large_screens_stay_within_the_screen_budget() {
    // 32 MiB for kept screens; each 1000x1000 screen is budgeted at 64 MiB,
    // so none is kept and each snapshot renders and frees its own. Sizes
    // alone allocate nothing.
    let server = limited_server("ulimit -v 4194304", &["--screen-memory-bytes", "33554432"]).await;
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    rpc.handshake().await;
    let before = rss_kib(server.pid());
    let size = json!({"rows": 1000, "cols": 1000});
    for i in 0..12 {
        rpc.ok(
            "process/start",
            with(
                start("printf 'screen-%s' \"$0\"; exec cat"),
                json!({"processId": format!("s{i}"), "tty": true, "size": size}),
            ),
        )
        .await;
    }
    let started = rss_kib(server.pid());
    assert_grew_less(
        before,
        started,
        32 * 1024 * 1024,
        "12 terminals of 1000x1000",
    );
    for round in 0..2 {
        for i in 0..12 {
            let snapshot = rpc
                .ok("process/snapshot", json!({"processId": format!("s{i}")}))
                .await;
            assert_eq!(
                snapshot["screen"].as_array().unwrap().len(),
                1000,
                "round {round}"
            );
        }
    }
    let after = rss_kib(server.pid());
    // Eagerly kept screens would hold 12 x 32 MB; the bound is the budget
    // plus the screens two runtime threads may render at once, with slack.
    assert_grew_less(
        before,
        after,
        192 * 1024 * 1024,
        "24 snapshots of 1000x1000",
    );
}

#[tokio::test]
async fn process_ids_are_printable_ascii() {
    let mut rpc = stdio_client(&[]).await;
    for bad in [
        "a\u{0}b",
        "\u{1b}[31mred",
        "line\nbreak",
        "tab\t",
        "café",
        "\u{202e}txt.exe",
    ] {
        let error = rpc
            .err(
                "process/start",
                with(start("true"), json!({"processId": bad})),
            )
            .await;
        assert_eq!(
            error,
            json!({"code": -32602, "message": "processId may only contain printable ASCII characters (space to `~`)"}),
            "{bad:?}"
        );
    }
    let error = rpc
        .err(
            "process/start",
            with(start("true"), json!({"processId": "x".repeat(257)})),
        )
        .await;
    assert_eq!(error["code"], -32602);
    for good in ["build 1", "tests/unit#3", &"x".repeat(256)] {
        let started = rpc
            .ok(
                "process/start",
                with(start("true"), json!({"processId": good})),
            )
            .await;
        assert_eq!(started["processId"], good);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pattern_waits_hit_the_connection_budget_with_a_clear_error() {
    let server = limited_server("ulimit -v 4194304", &[]).await;
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    rpc.handshake().await;
    rpc.ok(
        "process/start",
        with(start("sleep 600"), json!({"processId": "quiet"})),
    )
    .await;
    let before = rss_kib(server.pid());
    const WAITS: i64 = 200;
    for id in 0..WAITS {
        rpc.send(
            json!({"id": 10_000 + id, "method": "process/wait", "params":
            {"processId": "quiet", "match": "\\w{20}", "timeoutMs": 60000}}),
        )
        .await;
    }
    // Refusals answer at once; the accepted waits answer when the process ends.
    let during = {
        let listed = rpc.ok("process/list", json!({})).await;
        assert_eq!(listed["processes"][0]["running"], true);
        rss_kib(server.pid())
    };
    rpc.ok("process/terminate", json!({"processId": "quiet"}))
        .await;
    let (mut refused, mut finished) = (0, 0);
    for _ in 0..WAITS {
        let response = rpc.response().await;
        if let Some(error) = response.get("error") {
            assert_eq!(error["code"], -32600, "{error}");
            assert!(
                error["message"]
                    .as_str()
                    .unwrap()
                    .contains("wait for fewer patterns"),
                "{error}"
            );
            refused += 1;
        } else {
            assert_eq!(response["result"]["reason"], "exited", "{response}");
            finished += 1;
        }
    }
    eprintln!("{finished} pattern waits ran, {refused} were refused");
    assert!(
        refused > 0 && finished >= 8,
        "{finished} ran, {refused} refused"
    );
    assert_grew_less(before, during, 64 * 1024 * 1024, "200 waits of \\w{20}");
    // A finished wait returns its share: the next one runs.
    rpc.ok(
        "process/start",
        with(start("echo ready; sleep 600"), json!({"processId": "next"})),
    )
    .await;
    let wait = rpc
        .ok(
            "process/wait",
            json!({"processId": "next", "match": "\\w{5}", "timeoutMs": 10000}),
        )
        .await;
    assert_eq!(wait["reason"], "matched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_processes_count_against_the_server_wide_limit() {
    let server = WsServer::start(&["--max-processes", "20", "--detach-ttl-ms", "60000"]).await;
    let mut sessions = Vec::new();
    let mut refusal = None;
    // Reconnect and spawn, as a client that forgets its sessions would.
    'rounds: for round in 0..3 {
        let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
        let init = rpc.ok("initialize", json!({"clientName": "leaky"})).await;
        rpc.send(json!({"method": "initialized"})).await;
        sessions.push(init["sessionId"].as_str().unwrap().to_string());
        for i in 0..8 {
            let response = rpc
                .call(
                    "process/start",
                    with(
                        start("sleep 600"),
                        json!({"processId": format!("p{i}"), "onDisconnect": "detach"}),
                    ),
                )
                .await;
            if let Some(error) = response.get("error") {
                assert_eq!((round, i), (2, 4), "the 21st process is refused");
                refusal = Some(error.clone());
                // v0 processes count too.
                let error = rpc.err("command/exec", sh("true")).await;
                assert!(
                    error["message"]
                        .as_str()
                        .unwrap()
                        .contains("--max-processes")
                );
                break 'rounds;
            }
        }
    }
    let refusal = refusal.expect("the limit was reached");
    assert_eq!(
        refusal,
        json!({"code": -32600, "message": "too many processes: the server already runs 20 (--max-processes)"})
    );
    // Ending processes frees their slots.
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    rpc.ok(
        "initialize",
        json!({"clientName": "leaky", "resumeSessionId": sessions[0]}),
    )
    .await;
    rpc.send(json!({"method": "initialized"})).await;
    rpc.ok("process/terminate", json!({"processId": "p0"}))
        .await;
    rpc.ok("process/wait", json!({"processId": "p0"})).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = rpc.call("process/start", start("true")).await;
        if response.get("result").is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot never came back: {response}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn what_a_process_record_keeps_is_small() {
    let mut rpc = stdio_client(&[]).await;
    rpc.ok(
        "process/start",
        with(start("cat"), json!({"processId": "c", "stdin": "pipe"})),
    )
    .await;
    // Up to 4,096 write ids are remembered per process: each must be small.
    let error = rpc
        .err(
            "process/write",
            json!({"processId": "c", "chunk": b64(b"x"), "writeId": "w".repeat(100_000)}),
        )
        .await;
    assert_eq!(
        error,
        json!({"code": -32602, "message": "writeId must be 1 to 256 bytes"})
    );
    rpc.ok(
        "process/write",
        json!({"processId": "c", "chunk": b64(b"x"), "writeId": "w".repeat(256)}),
    )
    .await;
    // Labels live as long as the record.
    let many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let error = rpc
        .err(
            "process/start",
            with(start("true"), json!({"labels": many})),
        )
        .await;
    assert_eq!(error["code"], -32602, "{error}");
    let error = rpc
        .err(
            "process/start",
            with(start("true"), json!({"labels": {"k": "v".repeat(20_000)}})),
        )
        .await;
    assert_eq!(error["code"], -32602, "{error}");
    rpc.ok(
        "process/start",
        with(
            start("true"),
            json!({"labels": {"task": "build", "agent": "a1"}}),
        ),
    )
    .await;
}

#[tokio::test]
async fn observers_are_held_to_the_bounds_of_the_process_api() {
    // observe/* acts on any session's process (here the caller's own, which
    // it may address the same way): the bounds must not have a side door.
    let mut rpc = stdio_client(&[]).await;
    rpc.ok(
        "process/start",
        with(
            start("exec cat"),
            json!({"processId": "t", "tty": true, "size": {"rows": 24, "cols": 80}}),
        ),
    )
    .await;
    let listed = rpc.ok("observe/list", json!({})).await;
    let owner = listed["processes"][0]["owner"]
        .as_str()
        .unwrap()
        .to_string();
    for (rows, cols) in [(65535, 65535), (2000, 2000), (24, 1001), (0, 80)] {
        let observed = rpc
            .err(
                "observe/resize",
                json!({"owner": owner, "processId": "t", "rows": rows, "cols": cols}),
            )
            .await;
        let direct = rpc
            .err(
                "process/resize",
                json!({"processId": "t", "rows": rows, "cols": cols}),
            )
            .await;
        assert_eq!(observed["code"], -32602, "{rows}x{cols}: {observed}");
        assert_eq!(observed, direct, "{rows}x{cols}");
    }
    let snapshot = rpc
        .ok(
            "observe/snapshot",
            json!({"owner": owner, "processId": "t"}),
        )
        .await;
    assert_eq!(snapshot["size"], json!({"rows": 24, "cols": 80}));
    assert_eq!(snapshot["screenApproximate"], false);
    let error = rpc
        .err(
            "observe/write",
            json!({"owner": owner, "processId": "t", "chunk": b64(b"x"),
                   "writeId": "w".repeat(100_000)}),
        )
        .await;
    assert_eq!(
        error,
        json!({"code": -32602, "message": "writeId must be 1 to 256 bytes"})
    );
    rpc.ok(
        "observe/write",
        json!({"owner": owner, "processId": "t", "chunk": b64(b"x"), "writeId": "w1"}),
    )
    .await;
}

/// Draws on the third row, then moves the cursor about (saving and restoring
/// it, which changes nothing on screen) for 100 KiB: with 8 KiB of retention
/// the drawing is among the dropped bytes.
const DRAW_THEN_FLOOD: &str = "i=0; while [ $i -lt 512 ]; do echo 'filler filler filler'; i=$((i+1)); done; \
    printf '\\033[2J\\033[3;4Hdrawn early'; e=$(printf '\\033'); i=0; \
    while [ $i -lt 400 ]; do printf \"${e}7${e}8%.0s\" $(seq 1 128); i=$((i+1)); done; exec cat";

async fn snapshot_after_drops(args: &[&str]) -> Value {
    let mut rpc = stdio_client(args).await;
    rpc.ok(
        "process/start",
        with(
            start(DRAW_THEN_FLOOD),
            json!({"processId": "d", "tty": true, "streamOutput": false}),
        ),
    )
    .await;
    // Done when the output has stopped for a second (the script ends in
    // `cat`).
    let waited = rpc
        .ok(
            "process/wait",
            json!({"processId": "d", "quietMs": 1000, "timeoutMs": 60000}),
        )
        .await;
    assert_eq!(waited["reason"], "quiet", "{waited}");
    rpc.ok("process/snapshot", json!({"processId": "d"})).await
}

#[tokio::test]
async fn a_snapshot_after_dropped_output_is_exact_within_the_screen_budget_and_says_so_beyond() {
    let retention = ["--retained-output-bytes", "8192"];
    let kept = snapshot_after_drops(&retention).await;
    assert_eq!(kept["truncated"], true, "retention dropped the drawing");
    assert_eq!(kept["screen"][2], "   drawn early", "{kept}");
    assert_eq!(kept["screenApproximate"], false);
    // No screen memory: nothing could keep the drawing, and the snapshot
    // says its screen is a reconstruction.
    let lost =
        snapshot_after_drops(&[retention[0], retention[1], "--screen-memory-bytes", "0"]).await;
    assert_eq!(lost["truncated"], true);
    assert_ne!(lost["screen"][2], "   drawn early", "{lost}");
    assert_eq!(lost["screenApproximate"], true);
}
