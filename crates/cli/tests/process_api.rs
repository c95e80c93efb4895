//! The process API (`process/*`) against the real binary: end-to-end
//! smoke tests over both transports, and the flags that configure it. The
//! behaviour of each method is tested in memory, against the connection
//! handler, in `crates/service/tests/process_api.rs`.

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
async fn the_limit_flags_reach_the_server() {
    let mut rpc = Rpc::new(StdioTransport::start(&[
        "--retained-output-bytes",
        "1000",
        "--max-exited-records",
        "2",
        "--max-processes-per-connection",
        "7",
        "--detach-ttl-ms",
        "1234",
        "--max-message-bytes",
        "4096",
        "--fs-max-handles",
        "5",
        "--fs-max-entries",
        "100",
    ]));
    let result = rpc.ok("initialize", json!({"clientName": "t"})).await;
    assert_eq!(
        result["limits"],
        json!({
            "maxMessageBytes": 4096,
            "fs": {"maxReadBytes": 8388608, "maxHandles": 5, "maxWatches": 64, "maxEntries": 100},
            "maxProcessesPerConnection": 7,
            "retainedOutputBytes": 1000,
            "maxExitedRecords": 2,
            "detachTtlMs": 1234,
        })
    );
    rpc.send(json!({"method": "initialized"})).await;
    // And they act: retention keeps 1000 bytes of this output.
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
    let read = rpc
        .ok("process/read", json!({"processId": "big", "afterSeq": 0}))
        .await;
    assert_eq!(read["droppedBytes"].as_u64().unwrap(), 100_008 - 1000);
    assert_eq!(read["complete"], true);
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
