//! The shutdown of the real binary on both transports (see
//! `exec_server_service::lifecycle`): processes are asked to stop and the
//! client sees them exit, then the connection closes cleanly, within one
//! bound for both transports, and the server exits 0.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Says `ready` once its SIGTERM handler is set; on SIGTERM says `bye` and
/// exits 3.
const POLITE: &str = "trap 'echo bye; exit 3' TERM; echo ready; while :; do sleep 0.05; done";

fn send_signal(pid: i32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// Waits for the server to exit 0, within `bound` of `since`.
async fn exits_zero_within(child: &mut tokio::process::Child, since: Instant, bound: Duration) {
    let status = tokio::time::timeout(TIMEOUT, child.wait())
        .await
        .expect("the server exits")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        since.elapsed() < bound,
        "exited after {:?}",
        since.elapsed()
    );
}

/// Output and exit of a v0 session, then what ended the connection.
async fn rest_of_session(rpc: &mut Rpc<StdioTransport>, session: &str) -> (Collected, bool) {
    let collected = rpc.collect(session).await;
    let closed = rpc.recv().await.is_none();
    (collected, closed)
}

#[tokio::test]
async fn sigterm_on_stdio_lets_processes_exit_and_flushes_their_exit_before_exiting() {
    let mut rpc = stdio_client(&["--shutdown-grace-ms", "10000"]).await;
    let session = rpc.exec(sh(POLITE)).await;
    assert_eq!(rpc.read_until(&session, "ready\n").await, "ready\n");
    let signalled = Instant::now();
    send_signal(rpc.transport.pid(), libc::SIGTERM);

    let (collected, closed) = rest_of_session(&mut rpc, &session).await;
    assert_eq!(collected.stdout, b"bye\n", "the process got SIGTERM");
    assert_eq!(collected.exit_code, 3, "and its exit was sent");
    assert!(closed, "then the output ended");
    exits_zero_within(&mut rpc.transport.child, signalled, Duration::from_secs(8)).await;
}

/// The next frames of `socket` until it closes: texts, then the close code.
async fn texts_until_close(socket: &mut WsTransport) -> (Vec<String>, Option<CloseCode>) {
    let mut texts = Vec::new();
    loop {
        let frame = tokio::time::timeout(TIMEOUT, socket.socket.next())
            .await
            .expect("the server closes in time");
        match frame {
            Some(Ok(Message::Text(text))) => texts.push(text.to_string()),
            Some(Ok(Message::Close(frame))) => return (texts, frame.map(|f| f.code)),
            Some(Ok(_)) => {}
            Some(Err(error)) => panic!("the connection broke instead of closing: {error}"),
            None => panic!("the connection ended without a close frame"),
        }
    }
}

#[tokio::test]
async fn sigterm_closes_websockets_with_going_away_after_their_processes_exit() {
    let mut server = WsServer::start(&["--shutdown-grace-ms", "300"]).await;
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    rpc.handshake().await;
    let session = rpc.exec(sh(POLITE)).await;
    assert_eq!(rpc.read_until(&session, "ready\n").await, "ready\n");
    let signalled = Instant::now();
    send_signal(server.pid(), libc::SIGTERM);

    let (texts, code) = texts_until_close(&mut rpc.transport).await;
    let exited = texts
        .iter()
        .map(|text| serde_json::from_str::<serde_json::Value>(text).unwrap())
        .find(|message| message["method"] == "command/exec/exited")
        .unwrap_or_else(|| panic!("no exit before the close: {texts:?}"));
    assert_eq!(exited["params"]["exitCode"], 3, "the process got SIGTERM");
    assert_eq!(code, Some(CloseCode::Away));
    exits_zero_within(&mut server.child, signalled, TIMEOUT).await;
}

/// Kills a process (a daemon that escaped its group) when dropped.
struct Escaped(i32);

impl Drop for Escaped {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

/// A daemon that leaves its process group (out of reach of group kills)
/// but keeps the session's stdout pipe open: its output never ends.
async fn start_escaped_daemon(rpc: &mut Rpc<WsTransport>) -> Escaped {
    let session = rpc
        .exec(sh("setsid sh -c 'while :; do sleep 0.2; done' & echo $!"))
        .await;
    let pid = rpc.read_until(&session, "\n").await.trim().parse().unwrap();
    Escaped(pid)
}

#[tokio::test]
async fn a_daemon_holding_the_output_pipe_does_not_keep_a_connection_slot() {
    let server = WsServer::start(&["--max-connections", "1"]).await;
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    rpc.handshake().await;
    let _daemon = start_escaped_daemon(&mut rpc).await;

    // The server ends the connection (a protocol error: clients send no
    // responses). The daemon's output never ends, so the outgoing channel
    // never closes; the server still closes the connection within the
    // flush bound, with a close frame, and frees the slot.
    rpc.send(serde_json::json!({"id": 1, "result": {}})).await;
    let ended = Instant::now();
    let (_, code) = texts_until_close(&mut rpc.transport).await;
    assert_eq!(code, Some(CloseCode::Normal));
    let mut next = None;
    while ended.elapsed() < Duration::from_secs(10) {
        match tokio_tungstenite::connect_async(&server.url).await {
            Ok((socket, _)) => {
                next = Some(socket);
                break;
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 503, "only the connection limit refuses");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert!(next.is_some(), "the slot was still taken after 10 s");
    // The flush bound (2 s) plus the close, with room for a loaded machine.
    assert!(
        ended.elapsed() < Duration::from_secs(6),
        "{:?}",
        ended.elapsed()
    );
}

#[tokio::test]
async fn a_daemon_holding_the_output_pipe_does_not_hold_up_the_shutdown() {
    let mut server = WsServer::start(&[]).await;
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    rpc.handshake().await;
    let _daemon = start_escaped_daemon(&mut rpc).await;

    let signalled = Instant::now();
    send_signal(server.pid(), libc::SIGTERM);
    let (_, code) = texts_until_close(&mut rpc.transport).await;
    assert_eq!(code, Some(CloseCode::Away), "closed, and cleanly");
    // The flush bound (2 s) plus the close, with room for a loaded machine.
    exits_zero_within(&mut server.child, signalled, Duration::from_secs(6)).await;
}
