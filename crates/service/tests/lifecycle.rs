//! The server's shutdown, in memory: `Server::shut_down` walks the phases
//! of `exec_server_service::lifecycle` with real processes and in-process
//! connections (no transport, no binary).

mod common;

use std::time::{Duration, Instant};

use common::*;
use exec_server_protocol::ServerNotification;
use exec_server_protocol::methods::{Exec, ProcessStart, ProcessWait, ProcessWrite};
use exec_server_protocol::process::{OnDisconnect, StartParams, StdinKind, WaitReason};
use exec_server_service::{Phase, Server, ServerConfig, ShutdownOptions};

fn server(grace: Duration) -> Server {
    Server::new(ServerConfig {
        shutdown_grace: grace,
        ..ServerConfig::default()
    })
}

/// A process that says `ready` once its SIGTERM handler is set, and on
/// SIGTERM says `bye` and exits 3.
fn polite(id: &str) -> StartParams {
    start_as(
        id,
        "trap 'echo bye; exit 3' TERM; echo ready; while :; do sleep 0.05; done",
    )
}

/// A process that ignores SIGTERM.
fn stubborn(id: &str) -> StartParams {
    start_as(id, "trap '' TERM; echo ready; while :; do sleep 0.05; done")
}

fn detached(params: StartParams) -> StartParams {
    StartParams {
        on_disconnect: Some(OnDisconnect::Detach),
        ..params
    }
}

fn never() -> std::future::Pending<()> {
    std::future::pending()
}

/// A connection to `server` with process `params` started, once it said
/// `ready`.
async fn running(server: &Server, params: StartParams) -> Conn {
    let id = params.process_id.clone().expect("an id");
    let mut conn = Conn::ready_on(server).await;
    conn.ok::<ProcessStart>(params).await;
    assert_eq!(conn.next_output(&id).await, b"ready\n");
    conn
}

#[tokio::test]
async fn processes_get_sigterm_and_their_exit_reaches_the_client_before_the_connection_closes() {
    let server = server(Duration::from_secs(10));
    let mut conn = running(&server, polite("p")).await;

    let shutdown = tokio::spawn({
        let server = server.clone();
        async move { server.shut_down(ShutdownOptions::default(), never()).await }
    });
    let report = conn.report("p").await;
    assert_eq!(report.stdout, b"bye\n", "the SIGTERM handler ran");
    assert_eq!(report.exited.unwrap().exit_code, 3);
    // Then the connection closes: its channel ends.
    let end = tokio::time::timeout(MESSAGE_TIMEOUT, conn.rx.recv()).await;
    assert!(matches!(end, Ok(None)), "{end:?}");

    let report = shutdown.await.unwrap();
    assert_eq!(report.process_groups, 1);
    assert_eq!(report.unfinished_connections, 0);
    assert_eq!(server.lifecycle().phase(), Phase::Closing);
    assert_eq!(server.session_count(), 0);
    assert_eq!(server.live_process_groups(), 0);
}

#[tokio::test]
async fn a_program_that_ignores_sigterm_is_killed_when_the_grace_ends() {
    let grace = Duration::from_millis(500);
    let server = server(grace);
    let mut conn = running(&server, stubborn("s")).await;

    let started = Instant::now();
    let report = server.shut_down(ShutdownOptions::default(), never()).await;
    assert!(started.elapsed() >= grace, "{:?}", started.elapsed());
    assert_eq!(report.process_groups, 1);
    let exited = conn.exited("s").await;
    assert_eq!(exited.signal.as_deref(), Some("SIGKILL"));
}

#[tokio::test]
async fn a_second_signal_cuts_the_grace_short() {
    let server = server(Duration::from_secs(60));
    let mut conn = running(&server, stubborn("s")).await;

    let started = Instant::now();
    // Like a signal: a future that must not be polled once it resolved.
    let hurry = async { tokio::time::sleep(Duration::from_millis(300)).await };
    server
        .shut_down(ShutdownOptions { drain: true }, hurry)
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        conn.exited("s").await.signal.as_deref(),
        Some("SIGKILL"),
        "killed at once"
    );
}

#[tokio::test]
async fn detached_sessions_end_with_the_server() {
    let server = server(Duration::ZERO);
    let mut conn = Conn::ready_on(&server).await;
    let started = conn
        .ok::<ProcessStart>(detached(start_as("d", "sleep 30")))
        .await;
    drop(conn);
    // The session outlives its connection (detached), until the shutdown.
    for _ in 0..200 {
        if server.lifecycle().open_connections() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.lifecycle().open_connections(), 0);
    assert_eq!(server.session_count(), 1);

    let report = server.shut_down(ShutdownOptions::default(), never()).await;
    assert_eq!(report.process_groups, 1);
    assert_eq!(server.session_count(), 0);
    assert!(wait_gone(started.pid, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn the_drain_keeps_serving_and_ends_early_when_the_last_session_ends() {
    let grace = Duration::from_secs(30);
    let server = server(grace);
    let mut conn = Conn::ready_on(&server).await;
    let cat = StartParams {
        stdin: Some(StdinKind::Pipe),
        ..start_as("c", "cat")
    };
    conn.ok::<ProcessStart>(cat).await;

    let started = Instant::now();
    let shutdown = tokio::spawn({
        let server = server.clone();
        async move {
            server
                .shut_down(ShutdownOptions { drain: true }, never())
                .await
        }
    });
    let lifecycle = server.lifecycle();
    for _ in 0..200 {
        if lifecycle.is_draining() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(lifecycle.phase(), Phase::Draining);
    // An attached client keeps working while the server drains.
    conn.ok::<ProcessWrite>(write("c", b"still here\n")).await;
    assert_eq!(conn.next_output("c").await, b"still here\n");
    let waited = conn.ok::<ProcessWait>(wait("c", 50)).await;
    assert_eq!(waited.reason, WaitReason::Timeout);

    // Its session ends with its connection: nothing is left to drain for.
    drop(conn);
    let report = tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("the drain ended with the last session")
        .unwrap();
    assert!(started.elapsed() < grace);
    assert_eq!(report.unfinished_connections, 0);
}

#[tokio::test]
async fn v0_sessions_see_their_exit_on_shutdown_too() {
    let server = server(Duration::ZERO);
    let mut conn = Conn::ready_on(&server).await;
    let session = conn
        .ok::<Exec>(exec_server_protocol::v0::ExecParams {
            argv: vec!["/bin/sleep".into(), "30".into()],
            cwd: "/".into(),
            env: Default::default(),
            tty: false,
            arg0: None,
        })
        .await
        .session_id;
    let shutdown = tokio::spawn({
        let server = server.clone();
        async move { server.shut_down(ShutdownOptions::default(), never()).await }
    });
    match conn.next_for(&session).await {
        ServerNotification::ExecExited(exited) => assert_eq!(exited.exit_code, 128 + 9),
        other => panic!("{other:?}"),
    }
    shutdown.await.unwrap();
}
