//! The process core against real processes and real PTYs.

use std::time::Duration;

use bytes::Bytes;
use exec_server_core::{
    OutputStream, ProcessConfig, ProcessEvent, ProcessHandle, SpawnError, StdinMode, StdioMode,
    TerminalSize, spawn_process,
};
use tokio::sync::mpsc;

fn sh(script: &str) -> ProcessConfig {
    let mut config = ProcessConfig::new(vec!["/bin/sh".into(), "-c".into(), script.into()], "/");
    config.env = vec![("PATH".into(), "/usr/bin:/bin".into())];
    config
}

fn tty(mut config: ProcessConfig) -> ProcessConfig {
    config.stdio = StdioMode::Terminal {
        size: TerminalSize::default(),
    };
    config
}

#[derive(Debug, Default)]
struct Collected {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit: Option<i32>,
    /// Sequence numbers in arrival order.
    seqs: Vec<u64>,
    /// Whether output arrived after the exit event.
    output_after_exit: bool,
}

async fn collect(mut events: mpsc::Receiver<ProcessEvent>) -> Collected {
    let mut out = Collected::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("process did not finish in time");
        match event {
            Some(ProcessEvent::Output { seq, stream, data }) => {
                out.seqs.push(seq);
                out.output_after_exit |= out.exit.is_some();
                match stream {
                    OutputStream::Stderr => out.stderr.extend_from_slice(&data),
                    _ => out.stdout.extend_from_slice(&data),
                }
            }
            Some(ProcessEvent::Exited { seq, status }) => {
                out.seqs.push(seq);
                out.exit = Some(status.code_or_signal());
            }
            Some(ProcessEvent::Closed) | None => return out,
        }
    }
}

async fn run(config: ProcessConfig) -> Collected {
    let process = spawn_process(config).await.expect("spawn");
    collect(process.events).await
}

#[tokio::test]
async fn pipes_keep_stdout_and_stderr_apart_and_report_the_exit_code() {
    let out = run(sh("printf out; printf err >&2; exit 7")).await;
    assert_eq!(out.stdout, b"out");
    assert_eq!(out.stderr, b"err");
    assert_eq!(out.exit, Some(7));
    assert!(!out.output_after_exit);
    let expected: Vec<u64> = (1..=out.seqs.len() as u64).collect();
    assert_eq!(
        out.seqs, expected,
        "seq counts from 1 across output and exit"
    );
}

#[tokio::test]
async fn death_by_signal_reports_128_plus_the_signal() {
    let out = run(sh("kill -TERM $$")).await;
    assert_eq!(out.exit, Some(128 + libc::SIGTERM));
}

#[tokio::test]
async fn env_is_exactly_what_was_given() {
    let mut config = ProcessConfig::new(vec!["/usr/bin/env".into()], "/");
    config.env = vec![
        ("ONLY".into(), "this".into()),
        ("AND".into(), "that=x".into()),
    ];
    let out = run(config).await;
    let mut lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    lines.sort();
    assert_eq!(lines, vec!["AND=that=x", "ONLY=this"]);
}

#[tokio::test]
async fn cwd_and_arg0_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sh("pwd; echo $0");
    config.cwd = dir.path().to_path_buf();
    config.arg0 = Some("custom-name".into());
    let out = run(config).await;
    let canonical = dir.path().canonicalize().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}\ncustom-name\n", canonical.display())
    );
}

#[tokio::test]
async fn program_is_found_in_the_child_path_and_missing_ones_fail_clearly() {
    let out = run({
        let mut c = ProcessConfig::new(vec!["echo".into(), "found".into()], "/");
        c.env = vec![("PATH".into(), "/bin".into())];
        c
    })
    .await;
    assert_eq!(out.stdout, b"found\n");

    let missing = spawn_process(ProcessConfig::new(vec!["no-such-program-xyz".into()], "/")).await;
    let error = missing.err().expect("spawning a missing program fails");
    assert!(matches!(error, SpawnError::Os { .. }));
    assert!(error.to_string().contains("no-such-program-xyz"), "{error}");
    assert!(error.to_string().contains("No such file"), "{error}");

    let bad_cwd = spawn_process(ProcessConfig::new(vec!["/bin/true".into()], "/no/such/dir")).await;
    assert!(bad_cwd.err().unwrap().to_string().contains("No such file"));
}

#[tokio::test]
async fn invalid_configs_are_rejected_before_spawning() {
    let empty = spawn_process(ProcessConfig::new(vec![], "/")).await;
    assert_eq!(empty.err().unwrap().to_string(), "argv must not be empty");
    let relative = spawn_process(ProcessConfig::new(vec!["/bin/true".into()], "tmp")).await;
    assert_eq!(
        relative.err().unwrap().to_string(),
        "cwd must be an absolute path"
    );
}

#[tokio::test]
async fn a_background_job_holding_the_pipe_does_not_delay_the_exit() {
    let process = spawn_process(sh("echo before; (sleep 3; echo late) & exit 0"))
        .await
        .unwrap();
    let handle = process.handle.clone();
    let mut events = process.events;
    let started = std::time::Instant::now();
    let mut stdout = Vec::new();
    loop {
        match events.recv().await.unwrap() {
            ProcessEvent::Output { data, .. } => stdout.extend_from_slice(&data),
            ProcessEvent::Exited { status, .. } => {
                assert_eq!(status.code, Some(0));
                break;
            }
            ProcessEvent::Closed => panic!("closed before exit"),
        }
    }
    assert_eq!(
        stdout, b"before\n",
        "output written before exit precedes the exit"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "exit waited for the job"
    );
    // The background job still holds the pipe; killing the group ends it.
    assert!(handle.kill_group().unwrap());
    loop {
        if let ProcessEvent::Closed = events.recv().await.unwrap() {
            break;
        }
    }
}

#[tokio::test]
async fn output_written_right_before_exit_always_precedes_the_exit() {
    for _ in 0..50 {
        let out = run(sh("head -c 100000 /dev/zero; printf tail >&2")).await;
        assert_eq!(out.stdout.len(), 100_000);
        assert_eq!(out.stderr, b"tail");
        assert!(!out.output_after_exit);
    }
    for _ in 0..20 {
        let out = run(tty(sh("head -c 30000 /dev/zero | tr '\\0' x"))).await;
        assert_eq!(out.stdout.len(), 30_000);
        assert!(!out.output_after_exit);
    }
}

#[tokio::test]
async fn a_pty_child_has_a_controlling_terminal_of_the_default_size() {
    let out = run(tty(sh("stty size; tty; ps -o stat= -p $$"))).await;
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("24 80"));
    assert!(lines.next().unwrap().starts_with("/dev/pts/"), "{text}");
    // `s`: session leader, `+`: in the terminal's foreground group.
    let stat = lines.next().unwrap();
    assert!(stat.contains('s') && stat.contains('+'), "{text}");
    assert_eq!(out.exit, Some(0));
}

async fn read_until(events: &mut mpsc::Receiver<ProcessEvent>, needle: &str) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(needle) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ProcessEvent::Output { data, .. })) => {
                seen.push_str(&String::from_utf8_lossy(&data))
            }
            other => panic!("waiting for {needle:?}, got {other:?}; seen {seen:?}"),
        }
    }
    seen
}

#[tokio::test]
async fn pty_echo_round_trip_resize_and_eof() {
    let mut config = tty(ProcessConfig::new(
        vec![
            "/bin/bash".into(),
            "--noprofile".into(),
            "--norc".into(),
            "-c".into(),
            "while read -r line; do echo \"got:$line\"; done; echo bye".into(),
        ],
        "/",
    ));
    config.env = vec![("PATH".into(), "/usr/bin:/bin".into())];
    let process = spawn_process(config).await.unwrap();
    let mut events = process.events;
    let handle: ProcessHandle = process.handle;
    for word in ["alpha", "beta"] {
        handle
            .write_stdin(Bytes::from(format!("{word}\n")))
            .await
            .unwrap();
        read_until(&mut events, &format!("got:{word}")).await;
    }
    handle
        .resize(TerminalSize {
            rows: 50,
            cols: 132,
        })
        .unwrap();
    handle.close_stdin().await.unwrap();
    read_until(&mut events, "bye").await;
    assert_eq!(handle.wait().await.code, Some(0));
}

#[tokio::test]
async fn pipe_stdin_is_written_in_order_and_closed() {
    let mut config = ProcessConfig::new(vec!["/bin/cat".into()], "/");
    config.stdio = StdioMode::Pipes {
        stdin: StdinMode::Pipe,
    };
    let process = spawn_process(config).await.unwrap();
    let handle = process.handle.clone();
    let collector = tokio::spawn(collect(process.events));
    for i in 0..100 {
        handle
            .write_stdin(Bytes::from(format!("{i},")))
            .await
            .unwrap();
    }
    handle.close_stdin().await.unwrap();
    let out = collector.await.unwrap();
    let expected: String = (0..100).map(|i| format!("{i},")).collect();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    assert_eq!(out.exit, Some(0));
}

#[tokio::test]
async fn pipe_mode_without_stdin_pipe_refuses_writes_and_resizes() {
    let process = spawn_process(sh("cat; echo done")).await.unwrap();
    assert!(!process.handle.has_stdin());
    assert!(
        process
            .handle
            .write_stdin(Bytes::from_static(b"x"))
            .await
            .is_err()
    );
    assert!(process.handle.resize(TerminalSize::default()).is_err());
    let out = collect(process.events).await;
    assert_eq!(
        out.stdout, b"done\n",
        "stdin is /dev/null: cat sees EOF at once"
    );
}

#[tokio::test]
async fn killing_the_group_kills_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let script = format!("(sleep 1; touch {}) & sleep 30", marker.display());
    let process = spawn_process(sh(&script)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(process.handle.kill_group().unwrap());
    let out = collect(process.events).await;
    assert_eq!(out.exit, Some(128 + libc::SIGKILL));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !marker.exists(),
        "the background job survived the group kill"
    );
}

#[tokio::test]
async fn retention_keeps_the_output() {
    let mut config = sh("printf hello; printf oops >&2");
    config.retained_bytes = 1024;
    let process = spawn_process(config).await.unwrap();
    let handle = process.handle.clone();
    collect(process.events).await;
    handle.with_retained(|r| {
        assert_eq!(r.stream(OutputStream::Stdout).contents(), b"hello");
        assert_eq!(r.stream(OutputStream::Stderr).contents(), b"oops");
        assert!(!r.truncated());
    });
}

#[tokio::test]
async fn a_dropped_receiver_switches_to_retention_and_the_process_never_blocks() {
    let mut config = sh("head -c 5000000 /dev/zero; echo end");
    config.retained_bytes = 64 * 1024;
    let process = spawn_process(config).await.unwrap();
    drop(process.events);
    let status = tokio::time::timeout(Duration::from_secs(10), process.handle.wait())
        .await
        .expect("the process blocked on output nobody reads");
    assert_eq!(status.code, Some(0));
    process.handle.with_retained(|r| {
        let stdout = r.stream(OutputStream::Stdout);
        assert!(stdout.truncated());
        assert_eq!(stdout.total_bytes(), 5_000_004);
        assert!(stdout.contents().ends_with(b"end\n"));
    });
}

#[tokio::test]
async fn progress_changes_on_output_and_on_exit() {
    let process = spawn_process(sh("sleep 0.2; echo x; sleep 0.2; exit 5"))
        .await
        .unwrap();
    drop(process.events);
    let mut progress = process.handle.subscribe_progress();
    let first = tokio::time::timeout(Duration::from_secs(5), progress.changed()).await;
    assert!(first.is_ok(), "no progress on output");
    assert_eq!(*progress.borrow_and_update(), 1);
    let second = tokio::time::timeout(Duration::from_secs(5), progress.changed()).await;
    assert!(second.is_ok(), "no progress on exit");
    assert_eq!(*progress.borrow(), 2);
    assert_eq!(process.handle.exit_status().unwrap().code, Some(5));
}

#[tokio::test]
async fn a_timeout_kills_and_is_reported() {
    let mut config = sh("sleep 30");
    config.timeout = Some(Duration::from_millis(200));
    let process = spawn_process(config).await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), process.handle.wait())
        .await
        .unwrap();
    assert!(status.timed_out, "{status:?}");
    assert_eq!(status.signal, Some(libc::SIGKILL));
}

#[tokio::test]
async fn the_screen_keeps_what_retention_dropped() {
    // 16 KiB of lines (past the 4 KiB head), draw, then 100 KiB that change
    // nothing on screen (save and restore the cursor): with 8 KiB retained,
    // the drawing is among the dropped bytes, yet the screen shows it.
    let script = "i=0; while [ $i -lt 512 ]; do echo 'filler filler filler filler'; i=$((i+1)); done; \
                  printf '\\033[2J\\033[3;4Hdrawn early\\033[6;1Hsecond row'; \
                  e=$(printf '\\033'); i=0; \
                  while [ $i -lt 400 ]; do printf \"${e}7${e}8%.0s\" $(seq 1 128); i=$((i+1)); done";
    let mut config = tty(sh(script));
    config.retained_bytes = 8 * 1024;
    let process = spawn_process(config).await.unwrap();
    drop(process.events);
    tokio::time::timeout(Duration::from_secs(20), process.handle.wait())
        .await
        .expect("exit in time");
    let (lines, truncated, last_seq) = process.handle.screen_and_retained(|screen, retained| {
        (
            screen.unwrap().lines,
            retained.truncated(),
            retained.last_seq(),
        )
    });
    assert!(
        truncated,
        "the drawing must have been dropped from retention"
    );
    assert_eq!(lines[2], "   drawn early");
    assert_eq!(lines[5], "second row");
    assert!(last_seq > 1);
}
