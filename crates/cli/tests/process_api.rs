//! The process API (`process/*`) against the real binary.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn start(script: &str) -> Value {
    json!({"argv": ["/bin/sh", "-c", script], "cwd": "/", "env": {"PATH": "/usr/bin:/bin"}})
}

fn with(mut params: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        params[k] = v.clone();
    }
    params
}

/// Everything one process reported, in order.
#[derive(Debug, Default)]
struct Report {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    pty: Vec<u8>,
    seqs: Vec<u64>,
    exited: Option<Value>,
    closed: bool,
    /// Order of notification kinds ("output", "exited", "closed").
    order: Vec<&'static str>,
}

async fn report<T: RawTransport>(rpc: &mut Rpc<T>, id: &str) -> Report {
    let mut r = Report::default();
    while !r.closed {
        let n = rpc.next_notification().await;
        let p = &n["params"];
        if p["processId"] != id {
            continue;
        }
        match n["method"].as_str().unwrap() {
            "process/output" => {
                r.seqs.push(p["seq"].as_u64().unwrap());
                let chunk = unb64(&p["chunk"]);
                match p["stream"].as_str().unwrap() {
                    "stdout" => r.stdout.extend(chunk),
                    "stderr" => r.stderr.extend(chunk),
                    "pty" => r.pty.extend(chunk),
                    other => panic!("stream {other}"),
                }
                r.order.push("output");
            }
            "process/exited" => {
                r.seqs.push(p["seq"].as_u64().unwrap());
                r.exited = Some(p.clone());
                r.order.push("exited");
            }
            "process/closed" => {
                r.closed = true;
                r.order.push("closed");
            }
            other => panic!("unexpected {other}"),
        }
    }
    r
}

async fn pty_until<T: RawTransport>(rpc: &mut Rpc<T>, id: &str, needle: &str) -> String {
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = rpc.next_notification().await;
        if n["params"]["processId"] == id && n["method"] == "process/output" {
            seen.extend(unb64(&n["params"]["chunk"]));
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn start_streams_output_with_one_seq_and_ends_with_exited_then_closed() {
    let mut rpc = stdio_client(&[]).await;
    let result = rpc
        .ok("process/start", start("echo out; echo err >&2; exit 3"))
        .await;
    assert_eq!(result["processId"], "proc-1");
    assert!(result["pid"].as_i64().unwrap() > 0);
    let r = report(&mut rpc, "proc-1").await;
    assert_eq!(
        (r.stdout.as_slice(), r.stderr.as_slice()),
        (&b"out\n"[..], &b"err\n"[..])
    );
    let exited = r.exited.unwrap();
    assert_eq!(exited["exitCode"], 3);
    assert_eq!(exited["signal"], Value::Null);
    assert_eq!(exited["timedOut"], false);
    let expected: Vec<u64> = (1..=r.seqs.len() as u64).collect();
    assert_eq!(r.seqs, expected, "seq strictly increasing from 1");
    assert_eq!(&r.order[r.order.len() - 2..], ["exited", "closed"]);
}

#[tokio::test]
async fn client_chosen_ids_are_unique_and_share_the_namespace_with_v0() {
    let mut rpc = stdio_client(&[]).await;
    let result = rpc
        .ok(
            "process/start",
            with(start("sleep 30"), json!({"processId": "build"})),
        )
        .await;
    assert_eq!(result["processId"], "build");
    let error = rpc
        .err(
            "process/start",
            with(start("true"), json!({"processId": "build"})),
        )
        .await;
    assert_eq!(
        error,
        json!({"code": -32600, "message": "process id build already exists"})
    );
    // A process/* id may look like a v0 one; v0 then skips it.
    rpc.ok(
        "process/start",
        with(start("sleep 30"), json!({"processId": "session-1"})),
    )
    .await;
    let v0 = rpc.exec(sh("true")).await;
    assert_eq!(v0, "session-2");
    let error = rpc
        .err(
            "process/start",
            with(start("true"), json!({"processId": ""})),
        )
        .await;
    assert_eq!(error["code"], -32602);
}

#[tokio::test]
async fn errors_name_the_process() {
    let mut rpc = stdio_client(&[]).await;
    for method in ["process/closeStdin", "process/snapshot", "process/release"] {
        assert_eq!(
            rpc.err(method, json!({"processId": "nope"})).await,
            json!({"code": -32600, "message": "unknown process id nope"}),
            "{method}"
        );
    }
    assert_eq!(
        rpc.err("process/write", json!({"processId": "nope", "chunk": ""}))
            .await["message"],
        "unknown process id nope"
    );
    rpc.ok(
        "process/start",
        with(start("sleep 30"), json!({"processId": "p"})),
    )
    .await;
    assert_eq!(
        rpc.err(
            "process/write",
            json!({"processId": "p", "chunk": b64(b"x")})
        )
        .await,
        json!({"code": -32600, "message": "stdin is closed for process p"})
    );
    assert_eq!(
        rpc.err(
            "process/resize",
            json!({"processId": "p", "rows": 10, "cols": 10})
        )
        .await,
        json!({"code": -32600, "message": "process p has no terminal"})
    );
    let error = rpc
        .err(
            "process/signal",
            json!({"processId": "p", "signal": "SIGSEGV"}),
        )
        .await;
    assert_eq!(error["code"], -32602);
    assert!(error["message"].as_str().unwrap().contains("SIGSEGV"));
    let error = rpc.err("process/release", json!({"processId": "p"})).await;
    assert!(
        error["message"].as_str().unwrap().contains("still running"),
        "{error}"
    );
    let mut relative = start("true");
    relative["cwd"] = json!("rel");
    assert_eq!(
        rpc.err("process/start", relative).await,
        json!({"code": -32602, "message": "cwd must be an absolute path"})
    );
    let error = rpc
        .err("process/wait", json!({"processId": "p", "match": "("}))
        .await;
    assert_eq!(error["code"], -32602);
}

#[tokio::test]
async fn close_stdin_ends_cat_in_pipe_and_pty_mode() {
    let mut rpc = stdio_client(&[]).await;
    rpc.ok(
        "process/start",
        json!({"processId": "pipe", "argv": ["/bin/cat"], "cwd": "/", "stdin": "pipe"}),
    )
    .await;
    rpc.ok(
        "process/write",
        json!({"processId": "pipe", "chunk": b64(b"through a pipe\n")}),
    )
    .await;
    assert_eq!(
        rpc.ok("process/closeStdin", json!({"processId": "pipe"}))
            .await,
        json!({})
    );
    let r = report(&mut rpc, "pipe").await;
    assert_eq!(r.stdout, b"through a pipe\n");
    assert_eq!(r.exited.unwrap()["exitCode"], 0);

    rpc.ok(
        "process/start",
        json!({"processId": "tty", "argv": ["/bin/cat"], "cwd": "/", "tty": true}),
    )
    .await;
    rpc.ok(
        "process/write",
        json!({"processId": "tty", "chunk": b64(b"typed\n")}),
    )
    .await;
    pty_until(&mut rpc, "tty", "typed\r\ntyped\r\n").await;
    rpc.ok("process/closeStdin", json!({"processId": "tty"}))
        .await;
    let r = report(&mut rpc, "tty").await;
    assert_eq!(
        r.exited.unwrap()["exitCode"],
        0,
        "cat exits on the terminal's EOF"
    );
}

#[tokio::test]
async fn write_ids_make_retries_idempotent() {
    let mut rpc = stdio_client(&[]).await;
    rpc.ok(
        "process/start",
        json!({"processId": "c", "argv": ["/bin/cat"], "cwd": "/", "stdin": "pipe"}),
    )
    .await;
    for _ in 0..3 {
        let accepted = rpc
            .ok(
                "process/write",
                json!({"processId": "c", "chunk": b64(b"once;"), "writeId": "w1"}),
            )
            .await;
        assert_eq!(accepted, json!({"accepted": true}));
    }
    rpc.ok(
        "process/write",
        json!({"processId": "c", "chunk": b64(b"twice;"), "writeId": "w2"}),
    )
    .await;
    rpc.ok("process/closeStdin", json!({"processId": "c"}))
        .await;
    assert_eq!(report(&mut rpc, "c").await.stdout, b"once;twice;");
}

#[tokio::test]
async fn resize_is_seen_by_stty_and_size_sets_the_start_size() {
    let mut rpc = stdio_client(&[]).await;
    let script = "stty size; read -r _; stty size";
    rpc.ok(
        "process/start",
        with(
            start(script),
            json!({"processId": "t", "tty": true, "size": {"rows": 30, "cols": 100}}),
        ),
    )
    .await;
    pty_until(&mut rpc, "t", "30 100").await;
    rpc.ok(
        "process/resize",
        json!({"processId": "t", "rows": 40, "cols": 120}),
    )
    .await;
    rpc.ok(
        "process/write",
        json!({"processId": "t", "chunk": b64(b"\n")}),
    )
    .await;
    pty_until(&mut rpc, "t", "40 120").await;
}

#[tokio::test]
async fn signals_reach_the_group_and_a_trap_catches_sigint() {
    let mut rpc = stdio_client(&[]).await;
    let script = "trap 'echo caught INT; exit 42' INT; echo ready; while true; do sleep 0.05; done";
    rpc.ok(
        "process/start",
        with(start(script), json!({"processId": "t"})),
    )
    .await;
    let n = rpc.next_notification().await;
    assert_eq!(unb64(&n["params"]["chunk"]), b"ready\n");
    assert_eq!(
        rpc.ok(
            "process/signal",
            json!({"processId": "t", "signal": "SIGINT"})
        )
        .await,
        json!({"delivered": true})
    );
    let r = report(&mut rpc, "t").await;
    assert_eq!(r.stdout, b"caught INT\n");
    assert_eq!(r.exited.unwrap()["exitCode"], 42);
    assert_eq!(
        rpc.ok(
            "process/signal",
            json!({"processId": "t", "signal": "SIGTERM"})
        )
        .await,
        json!({"delivered": false}),
        "the group is gone"
    );
}

#[tokio::test]
async fn terminate_grace_is_honoured_and_enforced() {
    let mut rpc = stdio_client(&[]).await;
    let polite = "trap 'echo bye; exit 0' TERM; echo up; while true; do sleep 0.05; done";
    rpc.ok(
        "process/start",
        with(start(polite), json!({"processId": "polite"})),
    )
    .await;
    rpc.next_notification().await;
    assert_eq!(
        rpc.ok(
            "process/terminate",
            json!({"processId": "polite", "graceMs": 5000})
        )
        .await,
        json!({"running": true})
    );
    let r = report(&mut rpc, "polite").await;
    assert_eq!(r.stdout, b"bye\n");
    assert_eq!(
        r.exited.unwrap()["exitCode"],
        0,
        "exited on its own after SIGTERM"
    );

    let stubborn = "trap '' TERM; echo up; while true; do sleep 0.05; done";
    rpc.ok(
        "process/start",
        with(start(stubborn), json!({"processId": "stubborn"})),
    )
    .await;
    rpc.next_notification().await;
    let started = Instant::now();
    rpc.ok(
        "process/terminate",
        json!({"processId": "stubborn", "graceMs": 300}),
    )
    .await;
    let exited = report(&mut rpc, "stubborn").await.exited.unwrap();
    assert_eq!(exited["signal"], "SIGKILL");
    assert_eq!(exited["exitCode"], 137);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "killed before the grace ended"
    );
    assert_eq!(
        rpc.ok("process/terminate", json!({"processId": "stubborn"}))
            .await,
        json!({"running": false})
    );
}

#[tokio::test]
async fn timeout_kills_the_group_and_reports_timed_out() {
    let mut rpc = stdio_client(&[]).await;
    rpc.ok(
        "process/start",
        with(
            start("sleep 30"),
            json!({"processId": "slow", "timeoutMs": 200}),
        ),
    )
    .await;
    let exited = report(&mut rpc, "slow").await.exited.unwrap();
    assert_eq!(exited["timedOut"], true);
    assert_eq!(exited["signal"], "SIGKILL");
}

#[tokio::test]
async fn wait_returns_exited_matched_quiet_and_timeout() {
    let mut rpc = stdio_client(&[]).await;
    rpc.ok(
        "process/start",
        with(
            start("sleep 0.2; exit 5"),
            json!({"processId": "e", "streamOutput": false}),
        ),
    )
    .await;
    let w = rpc
        .ok(
            "process/wait",
            json!({"processId": "e", "timeoutMs": 10000}),
        )
        .await;
    assert_eq!(
        w,
        json!({"reason": "exited", "exited": true, "exitCode": 5, "signal": null, "timedOut": false})
    );

    let script = "echo starting; sleep 0.3; echo 'server listening on port 8080'; sleep 30";
    rpc.ok(
        "process/start",
        with(
            start(script),
            json!({"processId": "m", "streamOutput": false}),
        ),
    )
    .await;
    let w = rpc
        .ok(
            "process/wait",
            json!({"processId": "m", "match": "listening on port \\d+", "timeoutMs": 10000}),
        )
        .await;
    assert_eq!(w["reason"], "matched");
    assert_eq!(w["exited"], false);
    // A later wait looks only at output the earlier one did not examine.
    let again = rpc
        .ok(
            "process/wait",
            json!({"processId": "m", "match": "listening", "timeoutMs": 200}),
        )
        .await;
    assert_eq!(again["reason"], "timeout");
    // Output that arrived before the wait call is still seen by the first wait.
    rpc.ok(
        "process/start",
        with(
            start("echo early-bird; sleep 30"),
            json!({"processId": "early", "streamOutput": false}),
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let w = rpc
        .ok(
            "process/wait",
            json!({"processId": "early", "match": "early-bird", "timeoutMs": 5000}),
        )
        .await;
    assert_eq!(w["reason"], "matched");

    let chatty = "echo a; sleep 0.1; echo b; sleep 0.1; echo c; sleep 30";
    rpc.ok(
        "process/start",
        with(
            start(chatty),
            json!({"processId": "q", "streamOutput": false}),
        ),
    )
    .await;
    let started = Instant::now();
    let w = rpc
        .ok(
            "process/wait",
            json!({"processId": "q", "quietMs": 400, "timeoutMs": 10000}),
        )
        .await;
    assert_eq!(w["reason"], "quiet");
    assert!(
        started.elapsed() >= Duration::from_millis(550),
        "quiet only after the last output: {:?}",
        started.elapsed()
    );

    let w = rpc
        .ok(
            "process/wait",
            json!({"processId": "q", "match": "never", "timeoutMs": 200}),
        )
        .await;
    assert_eq!(w["reason"], "timeout");
    assert_eq!(w["exited"], false);
}

#[tokio::test]
async fn waits_do_not_block_other_requests() {
    let mut rpc = stdio_client(&[]).await;
    rpc.ok(
        "process/start",
        with(start("sleep 30"), json!({"processId": "long"})),
    )
    .await;
    rpc.send(json!({"id": 900, "method": "process/wait", "params": {"processId": "long", "timeoutMs": 2000}})).await;
    let started = Instant::now();
    let list = rpc.ok("process/list", json!({})).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(list["processes"][0]["processId"], "long");
    let late = rpc.response().await;
    assert_eq!(late["id"], 900);
    assert_eq!(late["result"]["reason"], "timeout");
}

#[tokio::test]
async fn read_returns_chunks_after_a_seq_and_long_polls_for_new_output() {
    let mut rpc = stdio_client(&[]).await;
    let script = "echo one; read -r _; echo two";
    rpc.ok(
        "process/start",
        with(
            start(script),
            json!({"processId": "r", "streamOutput": false, "stdin": "pipe"}),
        ),
    )
    .await;
    let w = rpc
        .ok(
            "process/wait",
            json!({"processId": "r", "match": "one", "timeoutMs": 5000}),
        )
        .await;
    assert_eq!(w["reason"], "matched");
    let first = rpc.ok("process/read", json!({"processId": "r"})).await;
    assert_eq!(unb64(&first["chunks"][0]["chunk"]), b"one\n");
    assert_eq!(first["chunks"][0]["stream"], "stdout");
    let next = first["nextSeq"].as_u64().unwrap();
    assert_eq!(
        (first["droppedBytes"].clone(), first["exited"].clone()),
        (json!(0), json!(false))
    );

    // Nothing new: a long poll waits, and wakes when output arrives.
    rpc.send(json!({"id": 77, "method": "process/read", "params": {"processId": "r", "afterSeq": next, "waitMs": 10000}})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let written = Instant::now();
    rpc.ok(
        "process/write",
        json!({"processId": "r", "chunk": b64(b"go\n")}),
    )
    .await;
    let polled = rpc.response().await;
    assert_eq!(polled["id"], 77);
    let woke_after = written.elapsed();
    let chunks = polled["result"]["chunks"].as_array().unwrap();
    assert_eq!(unb64(&chunks[0]["chunk"]), b"two\n");
    assert!(
        woke_after < Duration::from_secs(2),
        "long poll woke after {woke_after:?}"
    );
    eprintln!("read long-poll woke {woke_after:?} after the write");

    // After the exit, the read reports it.
    rpc.ok("process/wait", json!({"processId": "r", "timeoutMs": 5000}))
        .await;
    let last = rpc
        .ok("process/read", json!({"processId": "r", "afterSeq": 0}))
        .await;
    assert_eq!(last["exited"], true);
    assert_eq!(last["exitCode"], 0);
    let seqs: Vec<u64> = last["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_u64().unwrap())
        .collect();
    assert!(
        last["nextSeq"].as_u64().unwrap() > *seqs.last().unwrap(),
        "nextSeq covers the exit"
    );
}

#[tokio::test]
async fn retention_truncates_the_middle_and_reports_the_gap() {
    let mut rpc = Rpc::new(StdioTransport::start(&["--retained-output-bytes", "1000"]));
    rpc.handshake().await;
    let script = "printf 'HEAD'; head -c 100000 /dev/zero | tr '\\0' m; printf 'TAIL'";
    rpc.ok(
        "process/start",
        with(
            start(script),
            json!({"processId": "big", "streamOutput": false}),
        ),
    )
    .await;
    rpc.ok(
        "process/wait",
        json!({"processId": "big", "timeoutMs": 10000}),
    )
    .await;
    let snapshot = rpc
        .ok("process/snapshot", json!({"processId": "big"}))
        .await;
    assert_eq!(snapshot["truncated"], true);
    assert_eq!(snapshot["running"], false);
    assert_eq!(snapshot["exitCode"], 0);
    let stdout = unb64(&snapshot["stdout"]);
    assert_eq!(stdout.len(), 1000);
    assert!(stdout.starts_with(b"HEAD") && stdout.ends_with(b"TAIL"));
    assert_eq!(snapshot["terminal"], Value::Null);
    let read = rpc
        .ok("process/read", json!({"processId": "big", "afterSeq": 0}))
        .await;
    assert_eq!(read["droppedBytes"].as_u64().unwrap(), 100_008 - 1000);
    let total: usize = read["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| unb64(&c["chunk"]).len())
        .sum();
    assert_eq!(total, 1000);
}

#[tokio::test]
async fn snapshot_renders_the_screen_of_a_pty_program() {
    let mut rpc = stdio_client(&[]).await;
    // Clear, draw at row 3 col 5, overwrite part of a line, then park.
    let script =
        r#"printf '\033[2J\033[Hfirst line\r\n\033[3;5Hat row three\033[1;1HFIRST'; sleep 30"#;
    rpc.ok(
        "process/start",
        with(
            start(script),
            json!({"processId": "s", "tty": true, "size": {"rows": 5, "cols": 20}}),
        ),
    )
    .await;
    pty_until(&mut rpc, "s", "FIRST").await;
    let snapshot = rpc.ok("process/snapshot", json!({"processId": "s"})).await;
    let screen: Vec<String> = serde_json::from_value(snapshot["screen"].clone()).unwrap();
    assert_eq!(screen, vec!["FIRST line", "", "    at row three", "", ""]);
    assert_eq!(snapshot["running"], true);
    assert!(snapshot.get("stdout").is_some_and(Value::is_null));
    assert!(unb64(&snapshot["terminal"]).ends_with(b"FIRST"));
}

#[tokio::test]
async fn list_filters_by_labels_and_release_forgets_exited_records() {
    let mut rpc = stdio_client(&[]).await;
    rpc.ok(
        "process/start",
        with(
            start("sleep 30"),
            json!({"processId": "web", "labels": {"role": "server", "team": "a"}}),
        ),
    )
    .await;
    rpc.ok(
        "process/start",
        with(
            start("exit 0"),
            json!({"processId": "job", "labels": {"role": "batch"}}),
        ),
    )
    .await;
    rpc.ok(
        "process/wait",
        json!({"processId": "job", "timeoutMs": 5000}),
    )
    .await;
    let all = rpc.ok("process/list", json!({})).await;
    assert_eq!(all["processes"].as_array().unwrap().len(), 2);
    let servers = rpc
        .ok("process/list", json!({"labels": {"role": "server"}}))
        .await;
    let servers = servers["processes"].as_array().unwrap();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["processId"], "web");
    assert_eq!(servers[0]["running"], true);
    assert_eq!(servers[0]["argv"], json!(["/bin/sh", "-c", "sleep 30"]));
    let none = rpc
        .ok(
            "process/list",
            json!({"labels": {"role": "server", "team": "b"}}),
        )
        .await;
    assert!(none["processes"].as_array().unwrap().is_empty());

    assert_eq!(
        rpc.ok("process/release", json!({"processId": "job"})).await,
        json!({})
    );
    assert_eq!(
        rpc.err("process/snapshot", json!({"processId": "job"}))
            .await["message"],
        "unknown process id job"
    );
}

#[tokio::test]
async fn the_exited_records_cap_evicts_the_oldest() {
    let mut rpc = Rpc::new(StdioTransport::start(&["--max-exited-records", "2"]));
    rpc.handshake().await;
    for id in ["a", "b", "c"] {
        rpc.ok(
            "process/start",
            with(
                start("true"),
                json!({"processId": id, "streamOutput": false}),
            ),
        )
        .await;
        rpc.ok("process/wait", json!({"processId": id, "timeoutMs": 5000}))
            .await;
    }
    // Let the exit records settle (they are recorded by the forwarder).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ids: Vec<String> = rpc.ok("process/list", json!({})).await["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["processId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["b", "c"]);
}

#[tokio::test]
async fn inherit_env_overlays_the_servers_environment() {
    let mut rpc = stdio_client(&[]).await;
    let params = json!({"processId": "e", "argv": ["/usr/bin/env"], "cwd": "/", "inheritEnv": true, "env": {"EXTRA": "1"}, "streamOutput": false});
    rpc.ok("process/start", params).await;
    rpc.ok("process/wait", json!({"processId": "e", "timeoutMs": 5000}))
        .await;
    let env = String::from_utf8(unb64(
        &rpc.ok("process/snapshot", json!({"processId": "e"})).await["stdout"],
    ))
    .unwrap();
    assert!(env.lines().any(|l| l == "EXTRA=1"));
    assert!(
        env.lines().any(|l| l.starts_with("PATH=")),
        "inherited PATH: {env}"
    );
}

#[tokio::test]
async fn the_initialize_result_carries_a_secret_session_id_and_limits() {
    let mut rpc = Rpc::new(StdioTransport::start(&[]));
    let result = rpc.ok("initialize", json!({"clientName": "t"})).await;
    // `SERVER_ID~SECRET`: the owner is public, the secret is 128 random bits.
    let session = result["sessionId"].as_str().unwrap();
    let (owner, secret) = session.split_once('~').expect("owner~secret");
    assert_eq!(owner, result["serverId"].as_str().unwrap());
    assert!(
        secret.len() >= 32 && secret.chars().all(|c| c.is_ascii_hexdigit()),
        "{session}"
    );
    assert_eq!(result["limits"]["maxExitedRecords"], 256);
    let error = Rpc::new(StdioTransport::start(&[]))
        .err(
            "initialize",
            json!({"clientName": "t", "resumeSessionId": session}),
        )
        .await;
    assert_eq!(error["code"], -32600, "another server does not know it");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
}

#[tokio::test]
async fn detached_processes_survive_a_dropped_websocket_and_resume_without_loss() {
    let server = WsServer::start(&[]).await;
    let mut first = Rpc::new(WsTransport::connect(&server.url).await);
    let init = first.ok("initialize", json!({"clientName": "a"})).await;
    first.send(json!({"method": "initialized"})).await;
    let session = init["sessionId"].as_str().unwrap().to_string();
    let script = "i=0; while [ $i -lt 40 ]; do echo line-$i; i=$((i+1)); sleep 0.02; done";
    let detach = json!({"processId": "d", "onDisconnect": "detach", "detachTtlMs": 10000});
    first.ok("process/start", with(start(script), detach)).await;
    first
        .ok(
            "process/start",
            with(start("echo $$; sleep 30"), json!({"processId": "k"})),
        )
        .await;
    // Read a little, remember the last seq, then drop the connection.
    let mut last_seq = 0;
    let mut received = Vec::new();
    let mut kill_pid = 0;
    while received.len() < 5 || kill_pid == 0 {
        let n = first.next_notification().await;
        if n["params"]["processId"] == "d" {
            last_seq = n["params"]["seq"].as_u64().unwrap();
            received.extend(unb64(&n["params"]["chunk"]));
        } else if n["params"]["processId"] == "k" && n["method"] == "process/output" {
            kill_pid = String::from_utf8(unb64(&n["params"]["chunk"]))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
        }
    }
    drop(first);
    assert!(
        wait_gone(kill_pid, Duration::from_secs(5)).await,
        "the kill process survived the disconnect"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut second = Rpc::new(WsTransport::connect(&server.url).await);
    let started = Instant::now();
    let init = second
        .ok(
            "initialize",
            json!({"clientName": "b", "resumeSessionId": session}),
        )
        .await;
    eprintln!("resume took {:?}", started.elapsed());
    assert_eq!(init["resumed"], true);
    assert_eq!(init["sessionId"], session.as_str());
    second.send(json!({"method": "initialized"})).await;
    let missed = second
        .ok(
            "process/read",
            json!({"processId": "d", "afterSeq": last_seq}),
        )
        .await;
    assert_eq!(missed["droppedBytes"], 0);
    let mut next = missed["nextSeq"].as_u64().unwrap();
    for chunk in missed["chunks"].as_array().unwrap() {
        received.extend(unb64(&chunk["chunk"]));
    }
    // Then live notifications, from after what we read.
    loop {
        let n = second.next_notification().await;
        if n["params"]["processId"] != "d" {
            continue;
        }
        let seq = n["params"]["seq"].as_u64().unwrap_or(0);
        match n["method"].as_str().unwrap() {
            "process/output" if seq > next => {
                received.extend(unb64(&n["params"]["chunk"]));
                next = seq;
            }
            "process/closed" => break,
            _ => {}
        }
    }
    let expected: String = (0..40).map(|i| format!("line-{i}\n")).collect();
    assert_eq!(
        String::from_utf8(received).unwrap(),
        expected,
        "bytes lost or duplicated across the resume"
    );

    // The session is attached now: a third connection cannot take it.
    let mut third = Rpc::new(WsTransport::connect(&server.url).await);
    let error = third
        .err(
            "initialize",
            json!({"clientName": "c", "resumeSessionId": session}),
        )
        .await;
    assert_eq!(
        error,
        json!({"code": -32600, "message": "cannot resume session: it is attached to another connection"})
    );
}

#[tokio::test]
async fn detached_processes_die_when_their_ttl_expires() {
    let server = WsServer::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    let init = rpc.ok("initialize", json!({"clientName": "a"})).await;
    rpc.send(json!({"method": "initialized"})).await;
    let script = format!("echo $$; sleep 2; touch {}", marker.display());
    rpc.ok(
        "process/start",
        with(
            start(&script),
            json!({"processId": "d", "onDisconnect": "detach", "detachTtlMs": 300}),
        ),
    )
    .await;
    let n = rpc.next_notification().await;
    let pid: i32 = String::from_utf8(unb64(&n["params"]["chunk"]))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    drop(rpc);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !process_gone(pid),
        "a detached process must outlive its connection"
    );
    assert!(
        wait_gone(pid, Duration::from_secs(3)).await,
        "the TTL did not kill it"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(!marker.exists());
    let mut late = Rpc::new(WsTransport::connect(&server.url).await);
    let error = late
        .err(
            "initialize",
            json!({"clientName": "b", "resumeSessionId": init["sessionId"]}),
        )
        .await;
    assert_eq!(
        error["message"],
        "cannot resume session: it does not exist or has expired"
    );
}

#[tokio::test]
async fn stream_output_false_never_blocks_the_process() {
    let mut rpc = stdio_client(&["--retained-output-bytes", "65536"]).await;
    rpc.ok(
        "process/start",
        with(
            start("head -c 50000000 /dev/zero; echo done"),
            json!({"processId": "quiet", "streamOutput": false}),
        ),
    )
    .await;
    // We read nothing at all, yet it runs to completion.
    let w = rpc
        .ok(
            "process/wait",
            json!({"processId": "quiet", "timeoutMs": 15000}),
        )
        .await;
    assert_eq!(w["reason"], "exited");
    let n = rpc.next_notification().await;
    assert_eq!(
        n["method"], "process/exited",
        "no output notifications: {n}"
    );
}

#[tokio::test]
async fn pipelined_starts_with_the_same_id_exactly_one_succeeds() {
    let mut rpc = stdio_client(&[]).await;
    for id in 1..=5 {
        let params = with(start("sleep 30"), json!({"processId": "same"}));
        rpc.send(json!({"id": id, "method": "process/start", "params": params}))
            .await;
    }
    let mut ok = 0;
    let mut refused = 0;
    for _ in 1..=5 {
        let response = rpc.response().await;
        if response.get("result").is_some() {
            ok += 1;
        } else {
            assert_eq!(
                response["error"]["message"],
                "process id same already exists"
            );
            refused += 1;
        }
    }
    assert_eq!((ok, refused), (1, 4));
}

#[tokio::test]
async fn waiting_requests_are_bounded_per_connection() {
    let mut rpc = stdio_client(&[]).await;
    rpc.ok(
        "process/start",
        with(start("sleep 30"), json!({"processId": "p"})),
    )
    .await;
    for id in 0..256 {
        rpc.send(json!({"id": 1000 + id, "method": "process/wait", "params": {"processId": "p", "timeoutMs": 20000}})).await;
    }
    let error = rpc
        .err(
            "process/wait",
            json!({"processId": "p", "timeoutMs": 20000}),
        )
        .await;
    assert_eq!(error["code"], -32600);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("too many waiting requests"),
        "{error}"
    );
    // Other requests still work.
    assert_eq!(
        rpc.ok("process/list", json!({})).await["processes"][0]["processId"],
        "p"
    );
}
