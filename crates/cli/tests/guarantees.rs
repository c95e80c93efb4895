//! The delivery and cleanup guarantees of SPEC 1.5 and 1.6, each tested
//! against the real binary in a way that fails if the guarantee breaks.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use exec_server_client::{
    ClientOptions, ExecEvent, ExecServerClient, WebSocketConnectArgs, spawn_local_exec_server,
};
use exec_server_protocol::v0::{ExecOutputStream, ExecParams};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Writes `len` pseudo-random bytes (xorshift) to `path`; returns their SHA-256.
fn random_file(path: &Path, len: usize, printable: bool) -> Vec<u8> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hasher = Sha256::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    let mut block = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        for byte in block.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = if printable {
                b'A' + (state % 26) as u8
            } else {
                state as u8
            };
        }
        let n = left.min(block.len());
        file.write_all(&block[..n]).unwrap();
        hasher.update(&block[..n]);
        left -= n;
    }
    file.flush().unwrap();
    hasher.finalize().to_vec()
}

fn cat_params(path: &Path, tty: bool) -> ExecParams {
    ExecParams {
        argv: vec!["/bin/cat".into(), path.display().to_string()],
        cwd: "/".into(),
        env: Default::default(),
        tty,
        arg0: None,
    }
}

/// Streams a session to completion, hashing stdout; returns (hash, bytes, exit).
async fn hash_stdout(client: &ExecServerClient, params: ExecParams) -> (Vec<u8>, usize, i32) {
    let mut session = client.exec(params).await.unwrap();
    let mut hasher = Sha256::new();
    let mut total = 0;
    loop {
        match session
            .next_event()
            .await
            .expect("stream ended before the exit")
        {
            ExecEvent::Output { stream, chunk } => {
                assert_eq!(stream, ExecOutputStream::Stdout);
                total += chunk.len();
                hasher.update(&chunk);
            }
            ExecEvent::Exited { exit_code } => {
                return (hasher.finalize().to_vec(), total, exit_code);
            }
        }
    }
}

const BIG: usize = 256 * 1024 * 1024;

async fn lossless_transfer(client: &ExecServerClient, label: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.bin");
    let expected = random_file(&path, BIG, false);
    let started = Instant::now();
    let (hash, total, exit) = hash_stdout(client, cat_params(&path, false)).await;
    let elapsed = started.elapsed();
    assert_eq!(exit, 0);
    assert_eq!(total, BIG);
    assert_eq!(
        hash, expected,
        "the bytes arrived altered, reordered or incomplete"
    );
    eprintln!(
        "{label}: 256 MiB in {:.2}s = {:.0} MB/s ({} build)",
        elapsed.as_secs_f64(),
        BIG as f64 / 1e6 / elapsed.as_secs_f64(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_256_mib_arrives_intact_over_stdio() {
    let local = spawn_local_exec_server(
        tokio::process::Command::new(server_bin()),
        ClientOptions::default(),
    )
    .await
    .unwrap();
    lossless_transfer(&local.client, "stdio").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_256_mib_arrives_intact_over_websocket() {
    let server = WsServer::start(&[]).await;
    let client = ExecServerClient::connect_websocket(WebSocketConnectArgs::new(&server.url))
        .await
        .unwrap();
    lossless_transfer(&client, "websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_mib_through_a_pty_arrive_complete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.txt");
    // Letters only: the terminal's output processing leaves them alone.
    let expected = random_file(&path, 32 * 1024 * 1024, true);
    let local = spawn_local_exec_server(
        tokio::process::Command::new(server_bin()),
        ClientOptions::default(),
    )
    .await
    .unwrap();
    let (hash, total, exit) = hash_stdout(&local.client, cat_params(&path, true)).await;
    assert_eq!((total, exit), (32 * 1024 * 1024, 0));
    assert_eq!(hash, expected);
}

#[tokio::test]
async fn a_client_that_stops_reading_blocks_the_process_not_the_servers_memory() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let mut rpc = stdio_client(&[]).await;
    let server_pid = rpc.transport.pid();
    let total: usize = 300 * 1024 * 1024;
    let script = format!(
        "echo $$ > {}; exec head -c {total} /dev/zero",
        pidfile.display()
    );
    let session = rpc.exec(sh(&script)).await;
    // Read nothing for a while.
    let mut samples = Vec::new();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        samples.push(rss_kib(server_pid));
    }
    let child: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !process_gone(child),
        "the child finished 300 MiB although nobody read it"
    );
    let peak = *samples.iter().max().unwrap();
    eprintln!("server RSS while the client does not read (KiB): {samples:?}");
    assert!(peak < 96 * 1024, "server RSS grew to {peak} KiB");
    assert!(
        samples[5].abs_diff(samples[2]) < 8 * 1024,
        "server RSS is not flat while blocked: {samples:?}"
    );
    // Reading again delivers every byte.
    let out = rpc.collect(&session).await;
    assert_eq!(out.stdout.len(), total);
    assert!(out.stdout.iter().all(|&b| b == 0));
    assert_eq!(out.exit_code, 0);
}

#[tokio::test]
async fn requests_are_answered_promptly_while_a_process_floods_output() {
    let mut rpc = stdio_client(&[]).await;
    let flood = rpc.exec(sh("exec cat /dev/zero")).await;
    // Let the flood reach full speed.
    let mut received = 0usize;
    while received < 50 * 1024 * 1024 {
        let n = rpc.next_notification().await;
        received += unb64(&n["params"]["chunk"]).len();
    }
    let mut latencies = Vec::new();
    for i in 0..20 {
        let id = 10_000 + i;
        let sent = Instant::now();
        rpc.send(json!({"id": id, "method": "command/exec/terminate", "params": {"sessionId": "session-999"}}))
            .await;
        loop {
            let message = rpc.recv().await.unwrap();
            if message["id"] == json!(id) {
                assert_eq!(message["result"], json!({"running": false}));
                break;
            }
        }
        latencies.push(sent.elapsed());
    }
    latencies.sort();
    eprintln!(
        "request latency during a flood: median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert!(
        latencies[latencies.len() - 1] < Duration::from_secs(1),
        "{latencies:?}"
    );
    rpc.ok("command/exec/terminate", json!({"sessionId": flood}))
        .await;
}

/// Starts `sh` with a background job that would create `marker` after two
/// seconds; returns the shell's pid.
async fn start_with_background_job(rpc: &mut Rpc<StdioTransport>, marker: &Path) -> i32 {
    let script = format!("(sleep 2; touch {}) & echo $$; sleep 30", marker.display());
    let session = rpc.exec(sh(&script)).await;
    rpc.read_until(&session, "\n").await.trim().parse().unwrap()
}

async fn assert_all_dead(pid: i32, marker: &Path) {
    assert!(
        wait_gone(pid, Duration::from_secs(5)).await,
        "process {pid} survived"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !marker.exists(),
        "a background job survived and created {}",
        marker.display()
    );
}

#[tokio::test]
async fn end_of_stdin_kills_every_process_of_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let mut rpc = stdio_client(&[]).await;
    let pid = start_with_background_job(&mut rpc, &marker).await;
    rpc.transport.close_input();
    let status = tokio::time::timeout(TIMEOUT, rpc.transport.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    assert_all_dead(pid, &marker).await;
}

#[tokio::test]
async fn a_protocol_error_kills_every_process_of_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let mut rpc = stdio_client(&[]).await;
    let pid = start_with_background_job(&mut rpc, &marker).await;
    rpc.send(json!({"id": 1, "result": {}})).await;
    assert_all_dead(pid, &marker).await;
}

async fn signal_kills_children_and_exits_zero(signal: i32) {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let mut rpc = stdio_client(&[]).await;
    let pid = start_with_background_job(&mut rpc, &marker).await;
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(rpc.transport.pid(), signal) }, 0);
    let status = tokio::time::timeout(TIMEOUT, rpc.transport.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    assert_all_dead(pid, &marker).await;
}

#[tokio::test]
async fn sigterm_kills_all_children_and_exits_zero() {
    signal_kills_children_and_exits_zero(libc::SIGTERM).await;
}

#[tokio::test]
async fn sigint_kills_all_children_and_exits_zero() {
    signal_kills_children_and_exits_zero(libc::SIGINT).await;
}

#[tokio::test]
async fn sigkill_of_the_server_leaves_no_child_alive() {
    let mut rpc = stdio_client(&[]).await;
    let mut pids = Vec::new();
    // Spawn enough processes that some run on tokio worker threads other
    // than the first, and wait so that idle runtime threads could retire:
    // the parent-death signal must not depend on which thread spawned.
    for _ in 0..8 {
        let session = rpc.exec(sh("echo $$; exec sleep 60")).await;
        pids.push(
            rpc.read_until(&session, "\n")
                .await
                .trim()
                .parse::<i32>()
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pty = rpc.exec(sh_tty("echo $$; exec sleep 60")).await;
    pids.push(
        rpc.read_until(&pty, "\n")
            .await
            .trim()
            .parse::<i32>()
            .unwrap(),
    );
    // An orphan: the background job of a shell that is gone. No
    // parent-death signal covers it; the watchdog must.
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let orphan = rpc
        .exec(sh(&format!(
            "(sleep 2; touch {}) & echo $!",
            marker.display()
        )))
        .await;
    let orphan_pid: i32 = rpc.read_until(&orphan, "\n").await.trim().parse().unwrap();
    pids.push(orphan_pid);
    assert!(pids.iter().all(|&pid| !process_gone(pid)));
    rpc.transport.child.start_kill().unwrap();
    rpc.transport.child.wait().await.unwrap();
    for pid in pids {
        assert!(
            wait_gone(pid, Duration::from_secs(5)).await,
            "process {pid} outlived a SIGKILLed server"
        );
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !marker.exists(),
        "an orphaned background job outlived a SIGKILLed server"
    );
}
