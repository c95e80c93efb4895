//! The client's process API: typed calls, handles, helpers, and resuming a
//! session after the websocket drops (through a real TCP proxy that the
//! test cuts).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use exec_server_client::{
    ClientError, ClientOptions, ExecServerClient, ProcessEvent, ReconnectPolicy,
    WebSocketConnectArgs,
};
use exec_server_protocol::process::{
    ListParams, OnDisconnect, ProcessStream, StartParams, StdinKind,
};
use exec_server_service::transport::websocket::serve_websocket;
use exec_server_service::{Server, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

fn sh(script: &str) -> StartParams {
    StartParams {
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        cwd: "/".into(),
        env: [("PATH".to_string(), "/usr/bin:/bin".to_string())].into(),
        ..Default::default()
    }
}

async fn client() -> ExecServerClient {
    ExecServerClient::connect_in_process(ClientOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn output_collects_every_stream_and_the_exit() {
    let client = client().await;
    let process = client
        .start(sh("echo out; echo err >&2; exit 4"))
        .await
        .unwrap();
    assert_eq!(process.id(), "proc-1");
    let output = process.output().await.unwrap();
    assert_eq!(
        (output.stdout, output.stderr),
        (b"out\n".to_vec(), b"err\n".to_vec())
    );
    assert_eq!(output.exit.exit_code, 4);
    assert_eq!(output.exit.signal, None);
}

#[tokio::test]
async fn events_come_in_seq_order_with_exited_then_closed_last() {
    let client = client().await;
    let mut process = client
        .start(sh("for i in 1 2 3; do echo $i; done"))
        .await
        .unwrap();
    let mut seqs = Vec::new();
    let mut kinds = Vec::new();
    while let Some(event) = process.next_event().await {
        match event {
            ProcessEvent::Output { seq, .. } => {
                seqs.push(seq);
                kinds.push("output");
            }
            ProcessEvent::Exited { seq, .. } => {
                seqs.push(seq);
                kinds.push("exited");
            }
            ProcessEvent::Closed => kinds.push("closed"),
            ProcessEvent::Gap { .. } => panic!("no gap without a resume"),
            ProcessEvent::Lost { reason } => panic!("lost: {reason}"),
        }
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(&kinds[kinds.len() - 2..], ["exited", "closed"]);
}

#[tokio::test]
async fn communicate_feeds_stdin_and_collects_the_result() {
    let client = client().await;
    let mut params = sh("tr a-z A-Z");
    params.stdin = Some(StdinKind::Pipe);
    let output = client
        .start(params)
        .await
        .unwrap()
        .communicate(&b"shout this\n"[..])
        .await
        .unwrap();
    assert_eq!(output.stdout, b"SHOUT THIS\n");
    assert_eq!(output.exit.exit_code, 0);
}

#[tokio::test]
async fn collect_returns_at_the_deadline_and_keeps_head_and_tail() {
    let client = client().await;
    let mut process = client
        .start(sh(
            "echo first; head -c 100000 /dev/zero | tr '\\0' x; echo; echo last; sleep 30",
        ))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let window = process
        .collect(Duration::from_millis(700), 64)
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(650));
    assert!(window.exit.is_none(), "still running");
    let text = window.stdout.to_text();
    assert!(text.starts_with("first\nxx"), "{text}");
    assert!(text.ends_with("x\nlast\n"), "the tail is kept: {text}");
    assert_eq!(window.stdout.omitted(), 6 + 100_000 + 1 + 5 - 64);
    process.terminate(None).await.unwrap();
    let window = process.collect(Duration::from_secs(10), 64).await.unwrap();
    assert_eq!(window.exit.unwrap().signal.as_deref(), Some("SIGKILL"));
}

#[tokio::test]
async fn typed_calls_cover_the_api() {
    let client = client().await;
    let mut params = sh("stty size; read -r x; echo got:$x; sleep 30");
    params.process_id = Some("term".into());
    params.tty = true;
    params.labels = [("kind".to_string(), "shell".to_string())].into();
    let process = client.start(params).await.unwrap();
    let wait = process
        .wait_for(Some(Duration::from_secs(5)), None, Some("24 80"))
        .await
        .unwrap();
    assert_eq!(
        wait.reason,
        exec_server_protocol::process::WaitReason::Matched
    );
    process.resize(30, 90).await.unwrap();
    process.write_once(&b"hi\n"[..], "w-1").await.unwrap();
    process.write_once(&b"hi\n"[..], "w-1").await.unwrap();
    process
        .wait_for(Some(Duration::from_secs(5)), None, Some("got:hi"))
        .await
        .unwrap();
    let snapshot = process.snapshot().await.unwrap();
    let screen = snapshot.screen.unwrap();
    assert_eq!(screen.len(), 30, "the screen follows the resize");
    assert!(screen.iter().any(|l| l == "got:hi"), "{screen:?}");
    assert_eq!(
        screen.iter().filter(|l| l.as_str() == "hi").count(),
        1,
        "the retried write was not repeated"
    );
    let listed = client
        .list(ListParams {
            labels: Some([("kind".to_string(), "shell".to_string())].into()),
        })
        .await
        .unwrap();
    assert_eq!(listed.processes.len(), 1);
    assert!(process.signal("SIGTERM").await.unwrap().delivered);
    let read = process.read(0, None, None).await.unwrap();
    assert!(read.chunks.iter().all(|c| c.stream == ProcessStream::Pty));
    let error = client.release("term").await;
    // Maybe still running a moment after SIGTERM; either way the error is typed.
    if let Err(ClientError::Rpc(e)) = error {
        assert!(e.message.contains("still running"), "{}", e.message);
    }
}

/// A TCP proxy whose connections the test can cut.
struct Proxy {
    url: String,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let tracked = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    let mut outbound = TcpStream::connect(target).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                tracked.lock().unwrap().push(task);
            }
        });
        Proxy { url, connections }
    }

    /// Drops every proxied connection, as a network failure would.
    fn cut(&self) {
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

async fn websocket_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve_websocket(
        Server::new(ServerConfig::default()),
        listener,
    ));
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_output_comes_as_binary_frames_by_default_and_as_json_when_asked() {
    let address = websocket_server().await;
    // Every byte value (not UTF-8, NULs included), on stdout and stderr.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bytes");
    let bytes: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let script = format!("cat {0}; cat {0} >&2", file.display());
    for binary_frames in [true, false] {
        let mut args = WebSocketConnectArgs::new(format!("ws://{address}"));
        args.binary_frames = binary_frames;
        let client = ExecServerClient::connect_websocket(args).await.unwrap();
        let on = client
            .server_info()
            .and_then(|info| info.capabilities)
            .map(|capabilities| capabilities.binary_frames);
        // Not asking leaves the result as it was before capabilities.
        assert_eq!(on, binary_frames.then_some(true));
        let output = client
            .start(sh(&script))
            .await
            .unwrap()
            .output()
            .await
            .unwrap();
        assert_eq!(
            output.stdout, bytes,
            "stdout, binary frames {binary_frames}"
        );
        assert_eq!(
            output.stderr, bytes,
            "stderr, binary frames {binary_frames}"
        );
        assert_eq!(output.exit.exit_code, 0);
    }
}

/// A client that reconnects, talking to a real server through a proxy the
/// test can cut.
async fn resumable_client() -> (Proxy, ExecServerClient) {
    let proxy = Proxy::start(websocket_server().await).await;
    let mut args = WebSocketConnectArgs::new(&proxy.url);
    args.reconnect = Some(ReconnectPolicy {
        attempts: 20,
        delay: Duration::from_millis(50),
        ..Default::default()
    });
    let client = ExecServerClient::connect_websocket(args).await.unwrap();
    (proxy, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_websocket_is_resumed_without_losing_or_repeating_output() {
    let (proxy, client) = resumable_client().await;
    let session = client.session_id().unwrap();

    let mut params =
        sh("i=0; while [ $i -lt 60 ]; do echo line-$i; i=$((i+1)); sleep 0.02; done; exit 3");
    params.on_disconnect = Some(OnDisconnect::Detach);
    let mut process = client.start(params).await.unwrap();
    let mut stdout = Vec::new();
    let mut cuts = 0;
    let exit = loop {
        let event = tokio::time::timeout(Duration::from_secs(20), process.next_event()).await;
        match event
            .expect("no event for 20 s")
            .expect("the stream must not end before the exit")
        {
            ProcessEvent::Output { chunk, .. } => {
                stdout.extend_from_slice(&chunk);
                // Cut the network twice while output is flowing.
                let lines = stdout.iter().filter(|&&b| b == b'\n').count();
                if (lines >= 10 && cuts == 0) || (lines >= 30 && cuts == 1) {
                    proxy.cut();
                    cuts += 1;
                }
            }
            ProcessEvent::Gap { dropped_bytes, .. } => {
                panic!("nothing should be dropped ({dropped_bytes})")
            }
            ProcessEvent::Lost { reason } => panic!("lost: {reason}"),
            ProcessEvent::Exited { exit_code, .. } => break exit_code,
            ProcessEvent::Closed => panic!("closed before exited"),
        }
    };
    assert_eq!(cuts, 2);
    assert_eq!(exit, 3);
    let expected: String = (0..60).map(|i| format!("line-{i}\n")).collect();
    assert_eq!(String::from_utf8(stdout).unwrap(), expected);
    assert_eq!(process.next_event().await, Some(ProcessEvent::Closed));
    assert_eq!(
        client.session_id().unwrap(),
        session,
        "the same session came back"
    );
    // The resumes asked for binary frames again.
    let capabilities = client.server_info().and_then(|info| info.capabilities);
    assert_eq!(capabilities.map(|c| c.binary_frames), Some(true));
    // The client still works after the resumes.
    let output = client
        .start(sh("echo after"))
        .await
        .unwrap()
        .output()
        .await
        .unwrap();
    assert_eq!(output.stdout, b"after\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_when_the_connection_drops_fail_and_are_not_resent() {
    let (proxy, client) = resumable_client().await;
    let mut params = sh("sleep 30");
    params.on_disconnect = Some(OnDisconnect::Detach);
    let process = client.start(params).await.unwrap();
    let waiting = {
        let client = client.clone();
        let id = process.id().to_string();
        tokio::spawn(async move {
            client
                .wait(exec_server_protocol::process::WaitParams {
                    process_id: id,
                    timeout_ms: Some(20_000),
                    ..Default::default()
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.cut();
    let result = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(result, Err(ClientError::ConnectionLost)),
        "{result:?}"
    );
    // After the resume the process is still there.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let snapshot = client.snapshot(process.id()).await.unwrap();
    assert!(snapshot.running);
    process.terminate(None).await.unwrap();
}
