//! Memory and descriptor bounds of the process core, against real
//! processes: the stdin queue in bytes, and the open-files limit children
//! get back.

use std::time::Duration;

use bytes::Bytes;
use exec_server_core::{ProcessConfig, ProcessEvent, StdinMode, StdioMode, limits, spawn_process};
use tokio::sync::mpsc;

fn sh(script: &str) -> ProcessConfig {
    let mut config = ProcessConfig::new(vec!["/bin/sh".into(), "-c".into(), script.into()], "/");
    config.env = vec![("PATH".into(), "/usr/bin:/bin".into())];
    config
}

async fn stdout_of(mut events: mpsc::Receiver<ProcessEvent>) -> Vec<u8> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("the process finished in time")
        {
            Some(ProcessEvent::Output { data, .. }) => out.extend_from_slice(&data),
            Some(ProcessEvent::Exited { .. }) => {}
            Some(ProcessEvent::Closed) | None => return out,
        }
    }
}

/// A child that does not read stdin until `gate` exists, then copies it.
fn deaf_until(gate: &std::path::Path, queue_bytes: usize) -> ProcessConfig {
    let mut config = sh(&format!(
        "while [ ! -e '{}' ]; do sleep 0.02; done; exec cat",
        gate.display()
    ));
    config.stdio = StdioMode::Pipes {
        stdin: StdinMode::Pipe,
    };
    config.stdin_queue_bytes = queue_bytes;
    config
}

#[tokio::test]
async fn the_stdin_queue_is_bounded_in_bytes_and_a_refused_write_is_not_queued() {
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    const QUEUE: usize = 256 * 1024;
    const CHUNK: usize = 16 * 1024;
    let process = spawn_process(deaf_until(&gate, QUEUE)).await.unwrap();
    let handle = process.handle.clone();
    let reader = tokio::spawn(stdout_of(process.events));
    // Write numbered chunks until one has to wait; the kernel's pipe buffer
    // takes the first 64 KiB, the queue the next QUEUE bytes.
    let mut sent = Vec::new();
    let mut refused = None;
    for i in 0..1000u32 {
        let chunk = Bytes::from(vec![b'a' + (i % 26) as u8; CHUNK]);
        let write = handle.write_stdin(chunk.clone());
        match tokio::time::timeout(Duration::from_millis(300), write).await {
            Ok(result) => {
                result.unwrap();
                sent.extend_from_slice(&chunk);
            }
            Err(_) => {
                refused = Some(i);
                break;
            }
        }
    }
    let refused = refused.expect("a deaf child's queue fills up");
    let (queued, capacity) = handle.stdin_queue();
    assert_eq!(capacity, QUEUE);
    assert!(queued <= QUEUE, "{queued} bytes queued");
    // A stdin pipe keeps the kernel's default buffer of 64 KiB.
    assert!(
        sent.len() <= QUEUE + 64 * 1024 + CHUNK,
        "accepted {} bytes: the queue plus at most the pipe buffer",
        sent.len()
    );
    assert!(sent.len() >= QUEUE - CHUNK, "accepted {} bytes", sent.len());
    // The write given up on was not queued: the child, once it reads, sees
    // exactly the accepted writes, in order.
    let tail = Bytes::from_static(b"-end");
    std::fs::write(&gate, b"").unwrap();
    handle.write_stdin(tail.clone()).await.unwrap();
    handle.close_stdin().await.unwrap();
    sent.extend_from_slice(&tail);
    let out = reader.await.unwrap();
    assert_eq!(out.len(), sent.len(), "write {refused} was given up on");
    assert!(out == sent, "the child read exactly the accepted writes");
}

#[tokio::test]
async fn a_write_larger_than_the_queue_goes_alone() {
    let mut config = ProcessConfig::new(vec!["/bin/cat".into()], "/");
    config.stdio = StdioMode::Pipes {
        stdin: StdinMode::Pipe,
    };
    config.stdin_queue_bytes = 64 * 1024;
    let process = spawn_process(config).await.unwrap();
    let handle = process.handle.clone();
    let reader = tokio::spawn(stdout_of(process.events));
    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    handle.write_stdin(Bytes::from(big.clone())).await.unwrap();
    handle.write_stdin(Bytes::from_static(b"!")).await.unwrap();
    handle.close_stdin().await.unwrap();
    let out = reader.await.unwrap();
    assert_eq!(out.len(), big.len() + 1);
    assert!(out[..big.len()] == big[..] && out[big.len()] == b'!');
}

#[tokio::test]
async fn children_get_the_open_files_limit_the_server_started_with() {
    let (_, hard) = limits::open_files_limit().unwrap();
    assert!(hard > 512, "the hard limit here is {hard}");
    // Start like a server under a small soft limit, then raise it.
    let original = 256;
    let lowered = libc::rlimit {
        rlim_cur: original,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
    let raised = limits::raise_open_files_limit().unwrap();
    assert_eq!((raised.before, raised.after), (original, hard));
    assert_eq!(limits::open_files_limit().unwrap(), (hard, hard));
    let process = spawn_process(sh("ulimit -n; ulimit -Hn")).await.unwrap();
    let out = String::from_utf8(stdout_of(process.events).await).unwrap();
    assert_eq!(out, format!("{original}\n{hard}\n"));
}
