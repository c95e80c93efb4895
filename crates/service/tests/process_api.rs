//! The process API (`process/*`, SPEC section 3) in memory: typed requests
//! into the connection handler, typed answers and notifications out. Real
//! processes, real PTYs; no transport and no binary (the black-box tier in
//! `crates/cli/tests` covers those).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use exec_server_protocol::methods::*;
use exec_server_protocol::process::{
    ListParams, OnDisconnect, ReadParams, ResizeParams, SignalParams, StdinKind, TerminalSize,
    TerminateParams, WaitParams, WaitReason, WaitResponse, WriteParams,
};
use exec_server_protocol::v0::{ExecParams, InitializeParams};
use exec_server_protocol::{ServerNotification, process as api};
use exec_server_service::{Server, ServerConfig};

fn default() -> ServerConfig {
    ServerConfig::default()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn cat(id: &str) -> api::StartParams {
    api::StartParams {
        process_id: Some(id.into()),
        argv: vec!["/bin/cat".into()],
        cwd: "/".into(),
        ..api::StartParams::default()
    }
}

fn silent(params: api::StartParams) -> api::StartParams {
    api::StartParams {
        stream_output: Some(false),
        ..params
    }
}

fn read(process_id: &str, after_seq: u64) -> ReadParams {
    ReadParams {
        process_id: process_id.into(),
        after_seq,
        ..ReadParams::default()
    }
}

fn pid_of(chunk: &[u8]) -> i32 {
    String::from_utf8_lossy(chunk)
        .trim()
        .parse()
        .expect("a pid")
}

#[tokio::test]
async fn start_streams_output_with_one_seq_and_ends_with_exited_then_closed() {
    let mut conn = Conn::ready(default()).await;
    let result = conn
        .ok::<ProcessStart>(start("echo out; echo err >&2; exit 3"))
        .await;
    assert_eq!(result.process_id, "proc-1");
    assert!(result.pid > 0);
    let r = conn.report("proc-1").await;
    assert_eq!(
        (r.stdout.as_slice(), r.stderr.as_slice()),
        (&b"out\n"[..], &b"err\n"[..])
    );
    let exited = r.exited.unwrap();
    assert_eq!(exited.exit_code, 3);
    assert_eq!(exited.signal, None);
    assert!(!exited.timed_out);
    let expected: Vec<u64> = (1..=r.seqs.len() as u64).collect();
    assert_eq!(r.seqs, expected, "seq strictly increasing from 1");
    assert_eq!(&r.order[r.order.len() - 2..], ["exited", "closed"]);
}

#[tokio::test]
async fn client_chosen_ids_are_unique_and_share_the_namespace_with_v0() {
    let mut conn = Conn::ready(default()).await;
    let result = conn.ok::<ProcessStart>(start_as("build", "sleep 30")).await;
    assert_eq!(result.process_id, "build");
    assert_eq!(
        conn.err::<ProcessStart>(start_as("build", "true")).await,
        rpc_error(-32600, "process id build already exists")
    );
    // A process/* id may look like a v0 one; v0 then skips it.
    conn.ok::<ProcessStart>(start_as("session-1", "sleep 30"))
        .await;
    let v0 = conn
        .ok::<Exec>(ExecParams {
            argv: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            cwd: "/".into(),
            ..ExecParams::default()
        })
        .await;
    assert_eq!(v0.session_id, "session-2");
    let error = conn.err::<ProcessStart>(start_as("", "true")).await;
    assert_eq!(error.code, -32602);
}

#[tokio::test]
async fn errors_name_the_process() {
    let mut conn = Conn::ready(default()).await;
    let unknown = rpc_error(-32600, "unknown process id nope");
    assert_eq!(conn.err::<ProcessCloseStdin>(id("nope")).await, unknown);
    assert_eq!(conn.err::<ProcessSnapshot>(id("nope")).await, unknown);
    assert_eq!(conn.err::<ProcessRelease>(id("nope")).await, unknown);
    assert_eq!(
        conn.err::<ProcessWrite>(write("nope", b"")).await.message,
        "unknown process id nope"
    );
    conn.ok::<ProcessStart>(start_as("p", "sleep 30")).await;
    assert_eq!(
        conn.err::<ProcessWrite>(write("p", b"x")).await,
        rpc_error(-32600, "stdin is closed for process p")
    );
    let resize = ResizeParams {
        process_id: "p".into(),
        rows: 10,
        cols: 10,
    };
    assert_eq!(
        conn.err::<ProcessResize>(resize).await,
        rpc_error(-32600, "process p has no terminal")
    );
    let error = conn
        .err::<ProcessSignal>(SignalParams {
            process_id: "p".into(),
            signal: "SIGSEGV".into(),
        })
        .await;
    assert_eq!(error.code, -32602);
    assert!(error.message.contains("SIGSEGV"), "{error}");
    let error = conn.err::<ProcessRelease>(id("p")).await;
    assert!(error.message.contains("still running"), "{error}");
    let relative = api::StartParams {
        cwd: "rel".into(),
        ..start("true")
    };
    assert_eq!(
        conn.err::<ProcessStart>(relative).await,
        rpc_error(-32602, "cwd must be an absolute path")
    );
    let bad_pattern = WaitParams {
        pattern: Some("(".into()),
        ..wait("p", 1000)
    };
    assert_eq!(conn.err::<ProcessWait>(bad_pattern).await.code, -32602);
}

#[tokio::test]
async fn ids_echoed_in_errors_are_bounded() {
    let mut conn = Conn::ready(default()).await;
    let long = "é".repeat(50_000);
    let error = conn.err::<ProcessSnapshot>(id(&long)).await;
    assert_eq!(error.code, -32600);
    assert!(error.message.len() <= 300, "{} bytes", error.message.len());
    assert!(error.message.starts_with("unknown process id éé"));
    assert!(error.message.ends_with('…'));
    let error = conn
        .err::<ExecWrite>(exec_server_protocol::v0::WriteParams {
            session_id: long.clone(),
            chunk: Default::default(),
        })
        .await;
    assert!(error.message.len() <= 300, "{} bytes", error.message.len());
    assert!(error.message.starts_with("unknown session id éé"));
    let error = conn
        .err::<ProcessSignal>(SignalParams {
            process_id: long,
            signal: "SIGINT".into(),
        })
        .await;
    assert!(error.message.len() <= 300, "{} bytes", error.message.len());
}

#[tokio::test]
async fn close_stdin_ends_cat_in_pipe_and_pty_mode() {
    let mut conn = Conn::ready(default()).await;
    let pipe = api::StartParams {
        stdin: Some(StdinKind::Pipe),
        ..cat("pipe")
    };
    conn.ok::<ProcessStart>(pipe).await;
    conn.ok::<ProcessWrite>(write("pipe", b"through a pipe\n"))
        .await;
    assert_eq!(
        conn.ok::<ProcessCloseStdin>(id("pipe")).await,
        api::EmptyResponse {}
    );
    let r = conn.report("pipe").await;
    assert_eq!(r.stdout, b"through a pipe\n");
    assert_eq!(r.exited.unwrap().exit_code, 0);

    let tty = api::StartParams {
        tty: true,
        ..cat("tty")
    };
    conn.ok::<ProcessStart>(tty).await;
    conn.ok::<ProcessWrite>(write("tty", b"typed\n")).await;
    conn.pty_until("tty", "typed\r\ntyped\r\n").await;
    conn.ok::<ProcessCloseStdin>(id("tty")).await;
    let r = conn.report("tty").await;
    assert_eq!(
        r.exited.unwrap().exit_code,
        0,
        "cat exits on the terminal's EOF"
    );
}

#[tokio::test]
async fn write_ids_make_retries_idempotent() {
    let mut conn = Conn::ready(default()).await;
    let params = api::StartParams {
        stdin: Some(StdinKind::Pipe),
        ..cat("c")
    };
    conn.ok::<ProcessStart>(params).await;
    let with_id = |chunk: &[u8], write_id: &str| WriteParams {
        write_id: Some(write_id.into()),
        ..write("c", chunk)
    };
    for _ in 0..3 {
        let accepted = conn.ok::<ProcessWrite>(with_id(b"once;", "w1")).await;
        assert!(accepted.accepted);
    }
    conn.ok::<ProcessWrite>(with_id(b"twice;", "w2")).await;
    conn.ok::<ProcessCloseStdin>(id("c")).await;
    assert_eq!(conn.report("c").await.stdout, b"once;twice;");
}

#[tokio::test]
async fn resize_is_seen_by_stty_and_size_sets_the_start_size() {
    let mut conn = Conn::ready(default()).await;
    let params = api::StartParams {
        tty: true,
        size: Some(TerminalSize {
            rows: 30,
            cols: 100,
        }),
        ..start_as("t", "stty size; read -r _; stty size")
    };
    conn.ok::<ProcessStart>(params).await;
    conn.pty_until("t", "30 100").await;
    conn.ok::<ProcessResize>(ResizeParams {
        process_id: "t".into(),
        rows: 40,
        cols: 120,
    })
    .await;
    conn.ok::<ProcessWrite>(write("t", b"\n")).await;
    conn.pty_until("t", "40 120").await;
}

#[tokio::test]
async fn signals_reach_the_group_and_a_trap_catches_sigint() {
    let mut conn = Conn::ready(default()).await;
    let script = "trap 'echo caught INT; exit 42' INT; echo ready; while true; do sleep 0.05; done";
    conn.ok::<ProcessStart>(start_as("t", script)).await;
    let ServerNotification::ProcessOutput(first) = conn.notification().await else {
        panic!("the first notification is output");
    };
    assert_eq!(&first.chunk[..], b"ready\n");
    let signal = |name: &str| SignalParams {
        process_id: "t".into(),
        signal: name.into(),
    };
    assert!(conn.ok::<ProcessSignal>(signal("SIGINT")).await.delivered);
    let r = conn.report("t").await;
    assert_eq!(r.stdout, b"caught INT\n");
    assert_eq!(r.exited.unwrap().exit_code, 42);
    assert!(
        !conn.ok::<ProcessSignal>(signal("SIGTERM")).await.delivered,
        "the group is gone"
    );
}

#[tokio::test]
async fn terminate_grace_is_honoured_and_enforced() {
    let mut conn = Conn::ready(default()).await;
    let terminate = |id: &str, grace_ms: Option<u64>| TerminateParams {
        process_id: id.into(),
        grace_ms,
    };
    let polite = "trap 'echo bye; exit 0' TERM; echo up; while true; do sleep 0.05; done";
    conn.ok::<ProcessStart>(start_as("polite", polite)).await;
    assert_eq!(conn.next_output("polite").await, b"up\n");
    let result = conn
        .ok::<ProcessTerminate>(terminate("polite", Some(5000)))
        .await;
    assert!(result.running);
    let r = conn.report("polite").await;
    assert_eq!(r.stdout, b"bye\n");
    assert_eq!(
        r.exited.unwrap().exit_code,
        0,
        "exited on its own after SIGTERM"
    );

    let stubborn = "trap '' TERM; echo up; while true; do sleep 0.05; done";
    conn.ok::<ProcessStart>(start_as("stubborn", stubborn))
        .await;
    assert_eq!(conn.next_output("stubborn").await, b"up\n");
    let started = Instant::now();
    conn.ok::<ProcessTerminate>(terminate("stubborn", Some(300)))
        .await;
    let exited = conn.report("stubborn").await.exited.unwrap();
    assert_eq!(exited.signal.as_deref(), Some("SIGKILL"));
    assert_eq!(exited.exit_code, 137);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "killed before the grace ended"
    );
    let again = conn
        .ok::<ProcessTerminate>(terminate("stubborn", None))
        .await;
    assert!(!again.running);
}

#[tokio::test]
async fn timeout_kills_the_group_and_reports_timed_out() {
    let mut conn = Conn::ready(default()).await;
    let params = api::StartParams {
        timeout_ms: Some(200),
        ..start_as("slow", "sleep 30")
    };
    conn.ok::<ProcessStart>(params).await;
    let exited = conn.report("slow").await.exited.unwrap();
    assert!(exited.timed_out);
    assert_eq!(exited.signal.as_deref(), Some("SIGKILL"));
}

#[tokio::test]
async fn wait_returns_exited_matched_quiet_and_timeout() {
    let mut conn = Conn::ready(default()).await;
    conn.ok::<ProcessStart>(silent(start_as("e", "sleep 0.2; exit 5")))
        .await;
    let w = conn.ok::<ProcessWait>(wait("e", 10_000)).await;
    assert_eq!(
        w,
        WaitResponse {
            reason: WaitReason::Exited,
            exited: true,
            exit_code: Some(5),
            signal: None,
            timed_out: false,
        }
    );

    let matching = |id: &str, pattern: &str, timeout_ms: u64| WaitParams {
        pattern: Some(pattern.into()),
        ..wait(id, timeout_ms)
    };
    let script = "echo starting; sleep 0.3; echo 'server listening on port 8080'; sleep 30";
    conn.ok::<ProcessStart>(silent(start_as("m", script))).await;
    let w = conn
        .ok::<ProcessWait>(matching("m", "listening on port \\d+", 10_000))
        .await;
    assert_eq!(w.reason, WaitReason::Matched);
    assert!(!w.exited);
    // A later wait looks only at output the earlier one did not examine.
    let again = conn
        .ok::<ProcessWait>(matching("m", "listening", 200))
        .await;
    assert_eq!(again.reason, WaitReason::Timeout);

    // Output that arrived before the wait call is still seen by the first
    // wait. A long-poll read proves the output is there before we wait (a
    // read does not move the wait's cursor).
    let early = "echo early-bird; sleep 30";
    conn.ok::<ProcessStart>(silent(start_as("early", early)))
        .await;
    let arrived = conn
        .ok::<ProcessRead>(ReadParams {
            wait_ms: Some(5000),
            ..read("early", 0)
        })
        .await;
    assert_eq!(&arrived.chunks[0].chunk[..], b"early-bird\n");
    let w = conn
        .ok::<ProcessWait>(matching("early", "early-bird", 5000))
        .await;
    assert_eq!(w.reason, WaitReason::Matched);

    let chatty = "echo a; sleep 0.1; echo b; sleep 0.1; echo c; sleep 30";
    conn.ok::<ProcessStart>(silent(start_as("q", chatty))).await;
    let started = Instant::now();
    let w = conn
        .ok::<ProcessWait>(WaitParams {
            quiet_ms: Some(400),
            ..wait("q", 10_000)
        })
        .await;
    assert_eq!(w.reason, WaitReason::Quiet);
    assert!(
        started.elapsed() >= Duration::from_millis(550),
        "quiet only after the last output: {:?}",
        started.elapsed()
    );

    let w = conn.ok::<ProcessWait>(matching("q", "never", 200)).await;
    assert_eq!(w.reason, WaitReason::Timeout);
    assert!(!w.exited);
}

#[tokio::test]
async fn waits_do_not_block_other_requests() {
    let mut conn = Conn::ready(default()).await;
    conn.ok::<ProcessStart>(start_as("long", "sleep 30")).await;
    let waiting = conn.send_call::<ProcessWait>(wait("long", 2000)).await;
    let started = Instant::now();
    let list = conn.ok::<ProcessList>(ListParams::default()).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(list.processes[0].process_id, "long");
    let late = conn.response::<ProcessWait>(waiting).await.unwrap();
    assert_eq!(late.reason, WaitReason::Timeout);
}

#[tokio::test]
async fn read_returns_chunks_after_a_seq_and_long_polls_for_new_output() {
    let mut conn = Conn::ready(default()).await;
    let params = api::StartParams {
        stdin: Some(StdinKind::Pipe),
        ..silent(start_as("r", "echo one; read -r _; echo two"))
    };
    conn.ok::<ProcessStart>(params).await;
    let w = conn
        .ok::<ProcessWait>(WaitParams {
            pattern: Some("one".into()),
            ..wait("r", 5000)
        })
        .await;
    assert_eq!(w.reason, WaitReason::Matched);
    let first = conn.ok::<ProcessRead>(read("r", 0)).await;
    assert_eq!(&first.chunks[0].chunk[..], b"one\n");
    assert_eq!(first.chunks[0].stream, api::ProcessStream::Stdout);
    assert_eq!((first.dropped_bytes, first.exited), (0, false));
    assert!(first.complete, "nothing newer exists");

    // Nothing new: a long poll waits, and wakes when output arrives. The
    // connection handles requests in order, so the read is waiting before
    // the write below is even looked at.
    let polling = conn
        .send_call::<ProcessRead>(ReadParams {
            wait_ms: Some(10_000),
            ..read("r", first.next_seq)
        })
        .await;
    let written = Instant::now();
    conn.ok::<ProcessWrite>(write("r", b"go\n")).await;
    let polled = conn.response::<ProcessRead>(polling).await.unwrap();
    let woke_after = written.elapsed();
    assert_eq!(&polled.chunks[0].chunk[..], b"two\n");
    assert!(
        woke_after < Duration::from_secs(2),
        "long poll woke after {woke_after:?}"
    );

    // After the exit, the read reports it.
    conn.ok::<ProcessWait>(wait("r", 5000)).await;
    let last = conn.ok::<ProcessRead>(read("r", 0)).await;
    assert!(last.exited);
    assert_eq!(last.exit_code, Some(0));
    assert!(last.complete);
    let last_chunk = last.chunks.last().unwrap().seq;
    assert!(last.next_seq > last_chunk, "nextSeq covers the exit");
}

#[tokio::test]
async fn read_says_whether_it_reached_the_newest_output() {
    let mut conn = Conn::ready(default()).await;
    let params = api::StartParams {
        stdin: Some(StdinKind::Pipe),
        ..silent(start_as("r", "echo one; read -r _; echo two"))
    };
    conn.ok::<ProcessStart>(params).await;
    let one = conn
        .ok::<ProcessRead>(ReadParams {
            wait_ms: Some(5000),
            ..read("r", 0)
        })
        .await;
    assert_eq!(&one.chunks[0].chunk[..], b"one\n");
    conn.ok::<ProcessWrite>(write("r", b"go\n")).await;
    conn.ok::<ProcessWait>(wait("r", 5000)).await;

    // Two chunks and the exit exist; a one-byte budget returns the first.
    let cut = conn
        .ok::<ProcessRead>(ReadParams {
            max_bytes: Some(1),
            ..read("r", 0)
        })
        .await;
    assert_eq!(cut.chunks.len(), 1);
    assert_eq!(&cut.chunks[0].chunk[..], b"one\n");
    assert!(!cut.complete, "the second chunk was left out");
    assert_eq!(cut.next_seq, cut.chunks[0].seq);
    let rest = conn
        .ok::<ProcessRead>(ReadParams {
            max_bytes: Some(1),
            ..read("r", cut.next_seq)
        })
        .await;
    assert_eq!(&rest.chunks[0].chunk[..], b"two\n");
    assert!(rest.complete);
    assert!(rest.exited);
    let after = conn.ok::<ProcessRead>(read("r", rest.next_seq)).await;
    assert!(after.chunks.is_empty() && after.complete);
    assert_eq!(after.next_seq, rest.next_seq);
}

#[tokio::test]
async fn retention_truncates_the_middle_and_reports_the_gap() {
    let mut conn = Conn::ready(ServerConfig {
        retained_output_bytes: 1000,
        ..default()
    })
    .await;
    let script = "printf 'HEAD'; head -c 100000 /dev/zero | tr '\\0' m; printf 'TAIL'";
    conn.ok::<ProcessStart>(silent(start_as("big", script)))
        .await;
    conn.ok::<ProcessWait>(wait("big", 10_000)).await;
    let snapshot = conn.ok::<ProcessSnapshot>(id("big")).await;
    assert!(snapshot.truncated);
    assert!(!snapshot.running);
    assert_eq!(snapshot.exit_code, Some(0));
    let stdout = snapshot.stdout.unwrap();
    assert_eq!(stdout.len(), 1000);
    assert!(stdout.starts_with(b"HEAD") && stdout.ends_with(b"TAIL"));
    assert_eq!(snapshot.terminal, None);
    let read = conn.ok::<ProcessRead>(read("big", 0)).await;
    assert_eq!(read.dropped_bytes, 100_008 - 1000);
    let total: usize = read.chunks.iter().map(|c| c.chunk.len()).sum();
    assert_eq!(total, 1000);
}

#[tokio::test]
async fn snapshot_renders_the_screen_of_a_pty_program() {
    let mut conn = Conn::ready(default()).await;
    // Clear, draw at row 3 col 5, overwrite part of a line, then park.
    let script =
        r#"printf '\033[2J\033[Hfirst line\r\n\033[3;5Hat row three\033[1;1HFIRST'; sleep 30"#;
    let params = api::StartParams {
        tty: true,
        size: Some(TerminalSize { rows: 5, cols: 20 }),
        ..start_as("s", script)
    };
    conn.ok::<ProcessStart>(params).await;
    conn.pty_until("s", "FIRST").await;
    let snapshot = conn.ok::<ProcessSnapshot>(id("s")).await;
    assert_eq!(
        snapshot.screen.unwrap(),
        vec!["FIRST line", "", "    at row three", "", ""]
    );
    assert!(snapshot.running);
    assert_eq!(snapshot.stdout, None);
    assert!(snapshot.terminal.unwrap().ends_with(b"FIRST"));
}

#[tokio::test]
async fn list_filters_by_labels_and_release_forgets_exited_records() {
    let mut conn = Conn::ready(default()).await;
    let web = api::StartParams {
        labels: labels(&[("role", "server"), ("team", "a")]),
        ..start_as("web", "sleep 30")
    };
    conn.ok::<ProcessStart>(web).await;
    let job = api::StartParams {
        labels: labels(&[("role", "batch")]),
        ..start_as("job", "exit 0")
    };
    conn.ok::<ProcessStart>(job).await;
    conn.ok::<ProcessWait>(wait("job", 5000)).await;
    let by = |pairs: &[(&str, &str)]| ListParams {
        labels: Some(labels(pairs)),
    };
    let all = conn.ok::<ProcessList>(ListParams::default()).await;
    assert_eq!(all.processes.len(), 2);
    let servers = conn.ok::<ProcessList>(by(&[("role", "server")])).await;
    assert_eq!(servers.processes.len(), 1);
    assert_eq!(servers.processes[0].process_id, "web");
    assert!(servers.processes[0].running);
    assert_eq!(servers.processes[0].argv, ["/bin/sh", "-c", "sleep 30"]);
    let none = conn
        .ok::<ProcessList>(by(&[("role", "server"), ("team", "b")]))
        .await;
    assert!(none.processes.is_empty());

    assert_eq!(
        conn.ok::<ProcessRelease>(id("job")).await,
        api::EmptyResponse {}
    );
    assert_eq!(
        conn.err::<ProcessSnapshot>(id("job")).await.message,
        "unknown process id job"
    );
}

#[tokio::test]
async fn status_describes_one_process_as_list_does() {
    let mut conn = Conn::ready(default()).await;
    let params = api::StartParams {
        labels: labels(&[("role", "batch")]),
        stdin: Some(StdinKind::Pipe),
        ..cat("s")
    };
    let started = conn.ok::<ProcessStart>(params).await;
    let running = conn.ok::<ProcessStatus>(id("s")).await;
    assert_eq!(running.pid, started.pid);
    assert!(running.running);
    assert_eq!(running.exit_code, None);
    assert_eq!(running.labels, labels(&[("role", "batch")]));
    let listed = conn.ok::<ProcessList>(ListParams::default()).await;
    assert_eq!(listed.processes, vec![running]);
    conn.ok::<ProcessCloseStdin>(id("s")).await;
    conn.exited("s").await;
    let done = conn.ok::<ProcessStatus>(id("s")).await;
    assert!(!done.running);
    assert_eq!(done.exit_code, Some(0));
    assert_eq!(
        conn.err::<ProcessStatus>(id("nope")).await,
        rpc_error(-32600, "unknown process id nope")
    );
}

#[tokio::test]
async fn the_exited_records_cap_evicts_the_oldest() {
    let mut conn = Conn::ready(ServerConfig {
        max_exited_records: 2,
        ..default()
    })
    .await;
    for id in ["a", "b", "c"] {
        conn.ok::<ProcessStart>(silent(start_as(id, "true"))).await;
        // The exit is recorded (and the cap applied) before it is reported.
        conn.exited(id).await;
    }
    let ids: Vec<String> = conn
        .ok::<ProcessList>(ListParams::default())
        .await
        .processes
        .into_iter()
        .map(|p| p.process_id)
        .collect();
    assert_eq!(ids, vec!["b", "c"]);
}

#[tokio::test]
async fn inherit_env_overlays_the_servers_environment() {
    let mut conn = Conn::ready(default()).await;
    let params = api::StartParams {
        process_id: Some("e".into()),
        argv: vec!["/usr/bin/env".into()],
        cwd: "/".into(),
        inherit_env: true,
        env: labels(&[("EXTRA", "1")]),
        stream_output: Some(false),
        ..api::StartParams::default()
    };
    conn.ok::<ProcessStart>(params).await;
    conn.ok::<ProcessWait>(wait("e", 5000)).await;
    let snapshot = conn.ok::<ProcessSnapshot>(id("e")).await;
    let env = String::from_utf8(snapshot.stdout.unwrap().to_vec()).unwrap();
    assert!(env.lines().any(|l| l == "EXTRA=1"));
    assert!(
        env.lines().any(|l| l.starts_with("PATH=")),
        "inherited PATH: {env}"
    );
}

#[tokio::test]
async fn the_initialize_result_carries_a_secret_session_id_and_limits() {
    let mut conn = Conn::open(&Server::new(default()));
    let init = |resume: Option<String>| InitializeParams {
        client_name: "t".into(),
        resume_session_id: resume,
        ..Default::default()
    };
    let result = conn.initialize(init(None)).await.unwrap();
    // `SERVER_ID~SECRET`: the owner is public, the secret is 128 random bits.
    let session = result.session_id.unwrap();
    let (owner, secret) = session.split_once('~').expect("owner~secret");
    assert_eq!(Some(owner), result.server_id.as_deref());
    assert!(
        secret.len() >= 32 && secret.chars().all(|c| c.is_ascii_hexdigit()),
        "{session}"
    );
    assert_eq!(result.limits.unwrap().max_exited_records, 256);
    let error = Conn::open(&Server::new(default()))
        .initialize(init(Some(session)))
        .await
        .unwrap_err();
    assert_eq!(error.code, -32600, "another server does not know it");
    assert!(error.message.contains("does not exist"), "{error}");
}

#[tokio::test]
async fn detached_processes_die_when_their_ttl_expires() {
    let server = Server::new(default());
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let mut conn = Conn::open(&server);
    let init = conn
        .initialize(InitializeParams {
            client_name: "a".into(),
            resume_session_id: None,
            ..Default::default()
        })
        .await
        .unwrap();
    conn.initialized().await;
    // The TTL leaves room to see the process outlive its connection on a
    // loaded machine; the marker would come long after the TTL.
    let script = format!("echo $$; sleep 10; touch {}", marker.display());
    let detached = api::StartParams {
        on_disconnect: Some(OnDisconnect::Detach),
        detach_ttl_ms: Some(2000),
        ..start_as("d", &script)
    };
    conn.ok::<ProcessStart>(detached).await;
    // A process that dies with the connection: its death is the sign that
    // the disconnect was handled.
    conn.ok::<ProcessStart>(start_as("k", "echo $$; exec sleep 30"))
        .await;
    let pid = pid_of(&conn.next_output("d").await);
    let kill_pid = pid_of(&conn.next_output("k").await);
    drop(conn.tx);
    assert!(
        wait_gone(kill_pid, Duration::from_secs(5)).await,
        "the kill process survived the disconnect"
    );
    assert!(
        !process_gone(pid),
        "a detached process must outlive its connection"
    );
    assert!(
        wait_gone(pid, Duration::from_secs(5)).await,
        "the TTL did not kill it"
    );
    // The whole group died, so nothing is left to create the marker.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !live_group_members(pid).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(live_group_members(pid), Vec::<i32>::new());
    assert!(!marker.exists());
    // The session ended with its last process.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.session_count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = Conn::open(&server)
        .initialize(InitializeParams {
            client_name: "b".into(),
            resume_session_id: init.session_id,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.message,
        "cannot resume session: it does not exist or has expired"
    );
}

#[tokio::test]
async fn stream_output_false_never_blocks_the_process() {
    let mut conn = Conn::ready(ServerConfig {
        retained_output_bytes: 65536,
        ..default()
    })
    .await;
    let script = "head -c 50000000 /dev/zero; echo done";
    conn.ok::<ProcessStart>(silent(start_as("quiet", script)))
        .await;
    // We read nothing at all, yet it runs to completion.
    let w = conn.ok::<ProcessWait>(wait("quiet", 15_000)).await;
    assert_eq!(w.reason, WaitReason::Exited);
    let n = conn.notification().await;
    assert!(
        matches!(n, ServerNotification::ProcessExited(_)),
        "no output notifications: {n:?}"
    );
}

#[tokio::test]
async fn pipelined_starts_with_the_same_id_exactly_one_succeeds() {
    let mut conn = Conn::ready(default()).await;
    let mut ids = Vec::new();
    for _ in 1..=5 {
        ids.push(
            conn.send_call::<ProcessStart>(start_as("same", "sleep 30"))
                .await,
        );
    }
    let mut ok = 0;
    let mut refused = 0;
    for id in ids {
        match conn.response::<ProcessStart>(id).await {
            Ok(_) => ok += 1,
            Err(error) => {
                assert_eq!(error.message, "process id same already exists");
                refused += 1;
            }
        }
    }
    assert_eq!((ok, refused), (1, 4));
}

#[tokio::test]
async fn waiting_requests_are_bounded_per_connection() {
    let mut conn = Conn::ready(default()).await;
    conn.ok::<ProcessStart>(start_as("p", "sleep 30")).await;
    for _ in 0..256 {
        conn.send_call::<ProcessWait>(wait("p", 20_000)).await;
    }
    let error = conn.err::<ProcessWait>(wait("p", 20_000)).await;
    assert_eq!(error.code, -32600);
    assert!(
        error.message.contains("too many waiting requests"),
        "{error}"
    );
    // Other requests still work.
    let list = conn.ok::<ProcessList>(ListParams::default()).await;
    assert_eq!(list.processes[0].process_id, "p");
}
