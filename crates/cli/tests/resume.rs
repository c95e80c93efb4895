//! Resuming a session after the network drops (issue 10): the real binary
//! behind a TCP proxy that the tests cut, pause and arm, and the Rust
//! client with a `ReconnectPolicy` on the other side.
//!
//! The promise under test: every byte exactly once, or a `Gap` whose count
//! is exactly what is missing; never silence, never a repeat; and every
//! handle ends with its exit or a clear error. The tools (the proxy, the
//! producers of numbered lines and the ledger that accounts for every byte)
//! are in `common::resume`.

mod common;

use std::time::Duration;

use common::resume::*;
use common::*;
use exec_server_client::ProcessEvent;
use exec_server_protocol::process::{OnDisconnect, StartParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_and_a_trickle_with_several_cuts_lose_nothing_silently() {
    let setup = Setup::start(&[]).await;
    let (script, total) = bursty(8, 100_000, 2000, 200);
    let mut process = setup.spawn(&script).await;
    let mut ledger = Ledger::new(total);
    cut_every(&setup, &mut process, &mut ledger, 500_000, 12, Pace::Fast).await;
    ledger.assert_exact();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_output_to_a_slow_consumer_with_cuts_loses_and_repeats_nothing() {
    let setup = Setup::start(&[]).await;
    let (script, total) = bursty(300, 1000, 1, 10_000);
    let mut process = setup.spawn(&script).await;
    let mut ledger = Ledger::new(total);
    cut_every(
        &setup,
        &mut process,
        &mut ledger,
        400_000,
        6,
        Pace::BytesPerMs(20_000),
    )
    .await;
    ledger.assert_exact();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_during_a_replay_repeat_nothing() {
    let setup = Setup::start(&["--retained-output-bytes", "67108864"]).await;
    let (mut process, mut ledger) = setup.written_while_away(1000, 2_000_000, "sleep 3").await;
    // Come back, and cut the replay twice in the middle.
    setup.proxy.cut_next_after(3_000_000);
    setup.come_back();
    let proxy = &setup.proxy;
    let recut = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while proxy.armed_cuts() < 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        proxy.cut_next_after(2_000_000);
        while proxy.armed_cuts() < 2 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let reading = drain(&mut process, &mut ledger, Pace::BytesPerMs(50_000));
    tokio::join!(recut, reading);
    assert_eq!(setup.proxy.armed_cuts(), 2, "both replays were cut");
    ledger.assert_exact();
    assert_eq!(ledger.gap_reported, 0, "retention held everything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_are_exact_when_retention_exceeds_one_read() {
    let setup = Setup::start(&["--retained-output-bytes", "8388608"]).await;
    let (mut process, mut ledger) = setup.written_while_away(100, 4_000_000, "true").await;
    setup.come_back();
    drain(&mut process, &mut ledger, Pace::Fast).await;
    ledger.assert_exact();
    assert!(ledger.gap_reported > 0, "retention dropped the middle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_are_exact_after_many_small_evictions() {
    // A 16 KiB cap keeps about 800 ten-byte chunks in the tail; thousands of
    // single-line writes evict far more than the eviction index holds.
    let setup = Setup::start(&["--retained-output-bytes", "16384"]).await;
    let go = setup.marker("go");
    let total_lines = 9000;
    let script = format!(
        "perl -e '$|=1; for $i (1..3000) {{ printf(\"%09d\\n\", $i); select(undef,undef,undef,0.0002) }} \
                  until (-e \"{go}\") {{ select(undef,undef,undef,0.01) }} \
                  for $i (3001..{total_lines}) {{ printf(\"%09d\\n\", $i); select(undef,undef,undef,0.0002) }}'; \
         touch {go}.done",
        go = go.display(),
    );
    let mut process = setup.spawn(&script).await;
    let mut ledger = Ledger::new(total_lines * LINE);
    while ledger.delivered < 2500 * LINE {
        assert!(next(&mut process, &mut ledger).await);
    }
    setup.cut_and_pause();
    std::fs::write(&go, b"").unwrap();
    wait_for_file(&setup.marker("go.done")).await;
    setup.come_back();
    drain(&mut process, &mut ledger, Pace::Fast).await;
    ledger.assert_exact();
    assert!(ledger.gap_reported > 0, "retention dropped the middle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_during_a_replay_cut_again_still_ends_with_the_exit() {
    let setup = Setup::start(&["--retained-output-bytes", "134217728"]).await;
    let (mut process, mut ledger) = setup.written_while_away(100, 3_000_000, "sleep 0.3").await;
    // The replay of 30 MB to a slow reader outlasts the process; then the
    // connection drops again.
    setup.proxy.cut_next_after(20_000_000);
    setup.come_back();
    drain(&mut process, &mut ledger, Pace::BytesPerMs(10_000)).await;
    assert_eq!(setup.proxy.armed_cuts(), 1, "the replay was cut");
    ledger.assert_exact();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_refused_after_the_ttl_ends_the_handle_with_a_clear_error() {
    let setup = Setup::start(&[]).await;
    let process = setup
        .client
        .start(StartParams {
            argv: vec!["/bin/sh".into(), "-c".into(), "echo hi; sleep 30".into()],
            cwd: "/".into(),
            on_disconnect: Some(OnDisconnect::Detach),
            detach_ttl_ms: Some(200),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut process = process;
    let first = tokio::time::timeout(EVENT_TIMEOUT, process.next_event())
        .await
        .unwrap();
    assert!(
        matches!(first, Some(ProcessEvent::Output { .. })),
        "{first:?}"
    );
    setup.cut_and_pause();
    tokio::time::sleep(Duration::from_millis(800)).await;
    setup.come_back();
    let last = tokio::time::timeout(EVENT_TIMEOUT, process.next_event())
        .await
        .expect("the handle must end, not hang");
    match last {
        Some(ProcessEvent::Lost { reason }) => assert!(
            reason.contains("does not exist or has expired"),
            "the reason names the server's refusal: {reason}"
        ),
        other => panic!("expected a Lost event, got {other:?}"),
    }
    assert_eq!(process.next_event().await, None, "Lost is the last event");
    let error = process.wait().await.unwrap_err();
    assert!(
        matches!(&error, exec_server_client::ClientError::Lost { process_id, .. } if process_id == process.id()),
        "{error}"
    );
}

/// A detached process that exited while its client was away keeps the
/// session for its TTL: its output and exit are what the client comes back
/// for.
#[tokio::test]
async fn an_exited_detached_process_keeps_its_session_for_the_client() {
    let server = WsServer::start(&[]).await;
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    let init = rpc.ok("initialize", json!({"clientName": "a"})).await;
    rpc.send(json!({"method": "initialized"})).await;
    let session = init["sessionId"].as_str().unwrap().to_string();
    rpc.ok(
        "process/start",
        json!({
            "argv": ["/bin/sh", "-c", "echo bye"], "cwd": "/",
            "onDisconnect": "detach", "processId": "short",
        }),
    )
    .await;
    while rpc.next_notification().await["method"] != "process/closed" {}
    drop(rpc);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    let init = rpc
        .ok(
            "initialize",
            json!({"clientName": "b", "resumeSessionId": session}),
        )
        .await;
    assert_eq!(init["resumed"], true);
    rpc.send(json!({"method": "initialized"})).await;
    let read = rpc.ok("process/read", json!({"processId": "short"})).await;
    assert_eq!(unb64(&read["chunks"][0]["chunk"]), b"bye\n");
    assert_eq!(read["chunks"][0]["offset"], 0);
    assert_eq!(
        (read["exited"].clone(), read["closed"].clone()),
        (json!(true), json!(true))
    );
}
