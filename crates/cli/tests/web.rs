//! `exec-server --web`: the routes and headers over plain HTTP, the
//! exposure rules, and the whole browser terminal in a real browser
//! (`web_browser.py`: Debian's Chromium driven by Playwright for Python,
//! plus the official MCP Python SDK for the agent scenario). The browser
//! test fails, never skips, when Chromium, Playwright or the SDK is
//! missing; screenshots land in `target/web-screenshots/`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request on a fresh connection; the whole response as text.
async fn http_get(server: &common::WsServer, path: &str, headers: &str) -> String {
    let address = server.url.trim_start_matches("ws://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(common::TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let server = common::WsServer::start(&["--web"]).await;
    let page = http_get(&server, "/", "").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let lower = page.to_ascii_lowercase();
    assert!(lower.contains("content-type: text/html"), "{page}");
    assert!(
        lower.contains("content-security-policy: default-src 'none'; script-src 'self';"),
        "{page}"
    );
    assert!(lower.contains("connect-src 'self'"), "{page}");
    assert!(lower.contains("x-frame-options: deny"), "{page}");
    assert!(
        !page.contains("<script>"),
        "no inline script in the page: {page}"
    );
    for asset in [
        "/assets/app.js",
        "/assets/client/index.js",
        "/assets/vendor/xterm/xterm.mjs",
    ] {
        let response = http_get(&server, asset, "").await;
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "{asset}: {response:.200}"
        );
        assert!(
            response
                .to_ascii_lowercase()
                .contains("content-type: text/javascript"),
            "{asset}"
        );
    }
    let licence = http_get(&server, "/assets/vendor/xterm/LICENSE", "").await;
    assert!(licence.contains("The xterm.js authors"), "{licence:.300}");
    let missing = http_get(&server, "/assets/../Cargo.toml", "").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing:.200}");
    // The websocket endpoint is still `/`.
    common::WsTransport::connect(&server.url).await;
}

#[tokio::test]
async fn without_web_the_page_does_not_exist() {
    let server = common::WsServer::start(&[]).await;
    let root = http_get(&server, "/", "").await;
    assert!(!root.starts_with("HTTP/1.1 200"), "{root:.200}");
    let asset = http_get(&server, "/assets/app.js", "").await;
    assert!(asset.starts_with("HTTP/1.1 404"), "{asset:.200}");
}

#[tokio::test]
async fn the_page_is_public_but_auth_says_whether_a_token_is_right() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let server =
        common::WsServer::start(&["--web", "--auth-token-file", token.to_str().unwrap()]).await;
    assert!(http_get(&server, "/", "").await.starts_with("HTTP/1.1 200"));
    let right = http_get(&server, "/auth", "Authorization: Bearer s3cret\r\n").await;
    assert!(right.starts_with("HTTP/1.1 204"), "{right:.200}");
    let wrong = http_get(&server, "/auth", "Authorization: Bearer nope\r\n").await;
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong:.200}");
    let foreign = http_get(
        &server,
        "/auth",
        "Authorization: Bearer s3cret\r\nOrigin: http://evil.example\r\n",
    )
    .await;
    assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign:.200}");
}

#[test]
fn web_on_a_public_address_without_a_token_is_refused() {
    let output = Command::new(common::server_bin())
        .args(["--listen", "ws://0.0.0.0:0", "--web"])
        .env_remove("EXEC_SERVER_AUTH_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("without authentication"), "{stderr}");
}

#[test]
fn web_needs_a_websocket_listener() {
    let output = Command::new(common::server_bin())
        .args(["--web"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--web needs --listen ws://"), "{stderr}");
}

#[test]
fn the_browser_terminal_works_in_chromium() {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists());
    assert!(
        chromium.is_some(),
        "Debian's chromium is required: apt-get install chromium (scripts/apt-packages.txt)"
    );
    let python = common::test_python_with(&["playwright", "mcp"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/web_browser.py");
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/web-screenshots");
    let output = Command::new(&python)
        .arg(script)
        .arg(common::server_bin())
        .arg(&shots)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser scenarios failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(stdout.matches("OK: ").count(), 7, "{stdout}");
}

#[tokio::test]
async fn behind_a_path_prefix_the_page_lives_at_each_endpoint() {
    let server =
        common::WsServer::start(&["--web", "--path-prefix", "/exec", "--server-id", "one"]).await;
    for base in ["/exec/", "/exec/one/"] {
        let page = http_get(&server, base, "").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{base}: {page:.200}");
        assert!(
            page.contains("href=\"assets/app.css\""),
            "links are relative"
        );
        let asset = http_get(&server, &format!("{base}assets/app.js"), "").await;
        assert!(asset.starts_with("HTTP/1.1 200"), "{base}: {asset:.200}");
    }
    let bare = http_get(&server, "/exec", "").await;
    assert!(bare.starts_with("HTTP/1.1 308"), "{bare:.200}");
    assert!(
        bare.to_ascii_lowercase().contains("location: /exec/"),
        "{bare:.300}"
    );
}
