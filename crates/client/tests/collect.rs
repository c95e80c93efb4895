//! The yield-window collector against an in-process server and real
//! processes: when it returns (exit, input wait, pattern, quiet, window),
//! what it returns (clean text or raw bytes, one budget), and that the
//! next collection continues where the last one stopped.

use std::time::{Duration, Instant};

use exec_server_client::{
    ClientOptions, CollectOptions, Collected, ExecServerClient, OutputCursor, Render, Stopped,
    collect,
};
use exec_server_protocol::process::{StartParams, StdinKind, TerminalSize};

fn sh(script: &str) -> StartParams {
    StartParams {
        argv: vec!["/bin/bash".into(), "-c".into(), script.into()],
        cwd: "/tmp".into(),
        env: [
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
            ("TERM".to_string(), "xterm".to_string()),
        ]
        .into(),
        stream_output: Some(false),
        ..Default::default()
    }
}

fn tty(mut params: StartParams) -> StartParams {
    params.tty = true;
    params.size = Some(TerminalSize { rows: 24, cols: 80 });
    params
}

fn with_stdin(mut params: StartParams) -> StartParams {
    params.stdin = Some(StdinKind::Pipe);
    params
}

async fn client() -> ExecServerClient {
    ExecServerClient::connect_in_process(ClientOptions::default())
        .await
        .unwrap()
}

fn options(window_ms: u64) -> CollectOptions {
    CollectOptions::new(Duration::from_millis(window_ms), 4096)
}

async fn run(
    client: &ExecServerClient,
    id: &str,
    cursor: &mut OutputCursor,
    options: &CollectOptions,
) -> Collected {
    collect(client, id, cursor, options, |_| {}).await.unwrap()
}

#[tokio::test]
async fn a_fast_command_returns_its_streams_and_exit_code() {
    let client = client().await;
    let process = client
        .start(sh("echo hello; echo oops >&2; exit 3"))
        .await
        .unwrap();
    let mut cursor = OutputCursor::default();
    let collected = run(&client, process.id(), &mut cursor, &options(10_000)).await;
    assert_eq!(collected.stopped, Stopped::Exited);
    assert_eq!(collected.exit.unwrap().exit_code, 3);
    assert_eq!(collected.stdout.contents(), b"hello\n");
    assert_eq!(collected.stderr.contents(), b"oops\n");
}

#[tokio::test]
async fn a_prompt_returns_at_once_and_the_next_call_continues() {
    let client = client().await;
    let process = client
        .start(with_stdin(sh(
            "printf 'name? '; read -r name; echo hi $name; read -r again",
        )))
        .await
        .unwrap();
    let mut cursor = OutputCursor::default();
    let started = Instant::now();
    let first = run(&client, process.id(), &mut cursor, &options(20_000)).await;
    assert_eq!(first.stopped, Stopped::InputWait, "{first:?}");
    assert!(first.waiting_for_input());
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(first.stdout.contents(), b"name? ");
    process.write(&b"bob\n"[..]).await.unwrap();
    let second = run(&client, process.id(), &mut cursor, &options(20_000)).await;
    assert_eq!(second.stopped, Stopped::InputWait);
    assert_eq!(
        second.stdout.contents(),
        b"hi bob\n",
        "continues from the cursor"
    );
    process.close_stdin().await.unwrap();
    let last = run(&client, process.id(), &mut cursor, &options(20_000)).await;
    assert_eq!(last.stopped, Stopped::Exited);
}

#[tokio::test]
async fn without_input_the_quiet_fallback_or_the_window_ends_the_call() {
    let client = client().await;
    let process = client.start(sh("echo started; sleep 30")).await.unwrap();
    let mut cursor = OutputCursor::default();
    let quiet = CollectOptions {
        quiet: Some(Duration::from_millis(300)),
        ..options(20_000)
    };
    let collected = run(&client, process.id(), &mut cursor, &quiet).await;
    assert_eq!(collected.stopped, Stopped::Quiet);
    assert_eq!(collected.stdout.contents(), b"started\n");
    let started = Instant::now();
    let collected = run(&client, process.id(), &mut cursor, &options(400)).await;
    assert_eq!(collected.stopped, Stopped::Deadline);
    assert!(started.elapsed() >= Duration::from_millis(380));
    assert!(collected.exit.is_none() && !collected.waiting_for_input());
    process.terminate(None).await.unwrap();
}

#[tokio::test]
async fn a_pattern_ends_the_wait_and_says_so() {
    let client = client().await;
    let process = client
        .start(sh(
            "echo booting; sleep 0.3; echo 'listening on 127.0.0.1:8080'; sleep 30",
        ))
        .await
        .unwrap();
    let mut cursor = OutputCursor::default();
    let waiting = CollectOptions {
        pattern: Some(r"listening on \S+".into()),
        quiet: Some(Duration::from_millis(100)),
        ..options(20_000)
    };
    let collected = run(&client, process.id(), &mut cursor, &waiting).await;
    assert_eq!(collected.stopped, Stopped::Matched, "quiet does not apply");
    assert_eq!(
        collected.stdout.contents(),
        b"booting\nlistening on 127.0.0.1:8080\n"
    );
    // Output already collected does not match again.
    let again = CollectOptions {
        pattern: Some("listening".into()),
        ..options(500)
    };
    let collected = run(&client, process.id(), &mut cursor, &again).await;
    assert_eq!(collected.stopped, Stopped::Deadline);
    process.terminate(None).await.unwrap();
    let collected = run(&client, process.id(), &mut cursor, &again).await;
    assert_eq!(collected.stopped, Stopped::Exited);
}

#[tokio::test]
async fn terminal_output_comes_back_as_text_or_raw() {
    let client = client().await;
    let script = "printf '\\033[1;31mred\\033[0m\\r\\n'; for p in 10 50 100; do printf '\\rload %d%%' $p; done; echo";
    let mut cursor = OutputCursor::default();
    let process = client.start(tty(sh(script))).await.unwrap();
    let text = run(&client, process.id(), &mut cursor, &options(10_000)).await;
    assert_eq!(text.pty.to_text(), "red\nload 100%\n");
    assert!(text.output_bytes > text.pty.kept() as u64);
    let process = client.start(tty(sh(script))).await.unwrap();
    let mut cursor = OutputCursor::default();
    let raw = CollectOptions {
        render: Render::Raw,
        ..options(10_000)
    };
    let raw = run(&client, process.id(), &mut cursor, &raw).await;
    assert_eq!(
        raw.pty.contents(),
        b"\x1b[1;31mred\x1b[0m\r\r\n\rload 10%\rload 50%\rload 100%\r\n",
        "the terminal turns each \\n into \\r\\n"
    );
}

#[tokio::test]
async fn a_full_screen_program_is_shown_as_its_screen() {
    let client = client().await;
    let script = "printf 'before\\n\\033[?1049h\\033[2J\\033[3;5Hmenu item'; read -r x";
    let process = client.start(tty(sh(script))).await.unwrap();
    let mut cursor = OutputCursor::default();
    let collected = run(&client, process.id(), &mut cursor, &options(20_000)).await;
    assert_eq!(collected.stopped, Stopped::InputWait);
    let screen = collected.screen.expect("a screen");
    assert_eq!(screen.len(), 3, "trailing blank rows trimmed: {screen:?}");
    assert_eq!(screen[2], "    menu item");
    assert_eq!(collected.pty.to_text(), "before\n");
    process.terminate(None).await.unwrap();
}

#[tokio::test]
async fn one_budget_covers_all_streams_cut_at_lines() {
    let client = client().await;
    let process = client
        .start(sh("seq 1 20000; seq 1 20000 >&2"))
        .await
        .unwrap();
    let mut cursor = OutputCursor::default();
    let collected = run(&client, process.id(), &mut cursor, &options(20_000)).await;
    assert_eq!(collected.stopped, Stopped::Exited);
    assert!(collected.stdout.kept() + collected.stderr.kept() <= 4096);
    for stream in [&collected.stdout, &collected.stderr] {
        let text = String::from_utf8(stream.contents()).unwrap();
        assert!(text.starts_with("1\n2\n") && text.ends_with("\n20000\n"));
        assert!(
            text.lines().all(|l| l.parse::<u32>().is_ok()),
            "whole lines only"
        );
        assert_eq!(stream.omitted() + stream.kept() as u64, 108_894);
    }
}

#[tokio::test]
async fn long_waits_report_progress() {
    let client = client().await;
    let process = client.start(sh("sleep 2.5; echo done")).await.unwrap();
    let mut cursor = OutputCursor::default();
    let mut reports = Vec::new();
    let collected = collect(&client, process.id(), &mut cursor, &options(20_000), |p| {
        reports.push(p)
    })
    .await
    .unwrap();
    assert_eq!(collected.stopped, Stopped::Exited);
    assert!(reports.len() >= 2, "{reports:?}");
    assert!(reports.windows(2).all(|w| w[0].elapsed < w[1].elapsed));
}

#[tokio::test]
async fn remote_process_collect_consumes_its_events_and_continues() {
    let client = client().await;
    let mut params = sh("for i in $(seq 1 200); do echo line $i; done; read -r x; echo after $x");
    params.stream_output = None; // Streaming: the handle also gets events.
    params.stdin = Some(StdinKind::Pipe);
    let mut process = client.start(params).await.unwrap();
    let first = process
        .collect(Duration::from_secs(20), 1 << 20)
        .await
        .unwrap();
    assert_eq!(first.stopped, Stopped::InputWait, "{first:?}");
    assert!(first.stdout.to_text().ends_with("line 200\n"));
    process.write(&b"x\n"[..]).await.unwrap();
    let second = process
        .collect(Duration::from_secs(20), 1 << 20)
        .await
        .unwrap();
    assert_eq!(second.stdout.contents(), b"after x\n");
    assert_eq!(second.exit.unwrap().exit_code, 0);
    assert_eq!(process.exit().unwrap().exit_code, 0);
}

#[tokio::test]
async fn the_protocol_reports_input_waits_in_wait_and_read() {
    use exec_server_protocol::process::{ReadParams, WaitParams, WaitReason};
    let client = client().await;
    let process = client
        .start(with_stdin(sh("echo ready; read -r x; sleep 30")))
        .await
        .unwrap();
    let waited = client
        .wait(WaitParams {
            process_id: process.id().into(),
            timeout_ms: Some(20_000),
            until_input_wait: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(waited.reason, WaitReason::InputWait);
    let read = |after_seq, wait_ms| ReadParams {
        process_id: process.id().into(),
        after_seq,
        wait_ms: Some(wait_ms),
        until_input_wait: true,
        ..Default::default()
    };
    // New output comes back at once, not marked as waiting.
    let first = client.read(read(0, 20_000)).await.unwrap();
    assert_eq!(first.chunks.len(), 1);
    assert_eq!(first.waiting_for_input, Some(false));
    // Nothing new: the long poll ends on the input wait.
    let second = client.read(read(first.next_seq, 20_000)).await.unwrap();
    assert!(second.chunks.is_empty());
    assert_eq!(second.waiting_for_input, Some(true));
    // Once the input arrives the process sleeps: the wait times out.
    process.write(&b"go\n"[..]).await.unwrap();
    let third = client.read(read(second.next_seq, 500)).await.unwrap();
    assert_eq!(third.waiting_for_input, Some(false));
    let waited = client
        .wait(WaitParams {
            process_id: process.id().into(),
            timeout_ms: Some(500),
            until_input_wait: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(waited.reason, WaitReason::Timeout);
    // Without asking, the field stays off the wire.
    let plain = client
        .read(ReadParams {
            process_id: process.id().into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(plain.waiting_for_input, None);
    process.terminate(None).await.unwrap();
}
