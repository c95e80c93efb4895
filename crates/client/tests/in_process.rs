//! The client library against an in-process server: the same connection
//! handler as the binary, without serialization.

use std::time::Duration;

use exec_server_client::{
    ClientError, ClientEvent, ClientOptions, ExecEvent, ExecServerClient, WebSocketConnectArgs,
};
use exec_server_protocol::ServerNotification;
use exec_server_protocol::v0::{ExecOutputStream, ExecParams};

fn sh(script: &str, tty: bool) -> ExecParams {
    ExecParams {
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        cwd: "/".into(),
        env: [("PATH".to_string(), "/usr/bin:/bin".to_string())].into(),
        tty,
        arg0: None,
    }
}

async fn client() -> ExecServerClient {
    ExecServerClient::connect_in_process(ClientOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn output_collects_stdout_stderr_and_the_exit_code() {
    let client = client().await;
    assert_eq!(
        client.server_info().unwrap().protocol_version,
        "exec-server.v0"
    );
    let output = client
        .exec(sh("echo out; echo err >&2; exit 3", false))
        .await
        .unwrap()
        .output()
        .await
        .unwrap();
    assert_eq!(output.stdout, b"out\n");
    assert_eq!(output.stderr, b"err\n");
    assert_eq!(output.exit_code, 3);
}

#[tokio::test]
async fn a_slow_reader_loses_nothing_and_sees_order() {
    let client = client().await;
    let mut session = client.exec(sh("seq 1 300000", false)).await.unwrap();
    // Read nothing for a while: the server must hold the process back, not
    // drop output.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut stdout = Vec::new();
    let exit_code = loop {
        match session
            .next_event()
            .await
            .expect("exit before end of stream")
        {
            ExecEvent::Output { stream, chunk } => {
                assert_eq!(stream, ExecOutputStream::Stdout);
                stdout.extend_from_slice(&chunk);
            }
            ExecEvent::Exited { exit_code } => break exit_code,
        }
    };
    assert_eq!(exit_code, 0);
    let expected: String = (1..=300000).map(|i| format!("{i}\n")).collect();
    assert!(
        stdout == expected.as_bytes(),
        "output lost or reordered ({} bytes)",
        stdout.len()
    );
    assert_eq!(session.next_event().await, None, "nothing after the exit");
}

#[tokio::test]
async fn pty_sessions_take_writes_and_terminate_reports_the_kill() {
    let client = client().await;
    let mut session = client
        .exec(sh("read -r line; echo \"you said $line\"; sleep 30", true))
        .await
        .unwrap();
    assert_eq!(session.id(), "session-1");
    session.write(&b"hello\n"[..]).await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("you said hello") {
        match session.next_event().await.unwrap() {
            ExecEvent::Output { chunk, .. } => seen.extend_from_slice(&chunk),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(session.terminate().await.unwrap().running);
    assert_eq!(session.wait().await.unwrap(), 128 + 9);
}

#[tokio::test]
async fn errors_come_back_typed() {
    let client = client().await;
    let error = client
        .exec(ExecParams {
            cwd: "/".into(),
            ..Default::default()
        })
        .await
        .err()
        .unwrap();
    match error {
        ClientError::Rpc(rpc) => {
            assert_eq!(rpc.code, -32602);
            assert_eq!(rpc.message, "argv must not be empty");
        }
        other => panic!("unexpected {other:?}"),
    }
    let error = client.write("session-7", &b"x"[..]).await.err().unwrap();
    assert!(
        matches!(error, ClientError::Rpc(ref e) if e.message == "unknown session id session-7"),
        "{error}"
    );
}

#[tokio::test]
async fn notifications_of_dropped_sessions_go_to_the_event_stream() {
    let client = client().await;
    let mut events = client.take_events().expect("first take");
    assert!(client.take_events().is_none(), "only once");
    let session = client
        .exec(sh("sleep 0.2; echo late", false))
        .await
        .unwrap();
    let id = session.id().to_string();
    drop(session);
    let mut saw_exit = false;
    while !saw_exit {
        match tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            ClientEvent::Notification(ServerNotification::ExecExited(exited)) => {
                assert_eq!(exited.session_id, id);
                saw_exit = true;
            }
            ClientEvent::Notification(ServerNotification::ExecOutputDelta(delta)) => {
                assert_eq!(delta.session_id, id);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn websocket_connect_fails_clearly_when_nothing_listens() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut args = WebSocketConnectArgs::new(&url);
    args.connect_timeout = Duration::from_secs(2);
    let error = ExecServerClient::connect_websocket(args)
        .await
        .err()
        .unwrap();
    assert!(matches!(error, ClientError::Connect(_)), "{error}");
    assert!(error.to_string().contains(&url), "{error}");
}
