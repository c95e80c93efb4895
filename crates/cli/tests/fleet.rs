//! Many hosts behind a real load balancer (issue 15): exec-servers in
//! network namespaces, HAProxy in front of them, the client in a namespace
//! of its own (see `fleet_harness` for the topology). Runs as root; `ip`
//! and `haproxy` must be installed (scripts/apt-packages.txt).

mod common;
mod fleet_harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Rpc, WsTransport};
use exec_server_client::{
    ClientError, ExecServerClient, ReconnectPolicy, RemoteProcess, WebSocketConnectArgs,
};
use exec_server_protocol::process::{ListParams, OnDisconnect, StartParams};
use fleet_harness::{BALANCER, Fleet, FleetOptions, PREFIX, TOKEN, TUNNEL_TIMEOUT};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How long a client may take to report a lost server (issue 15).
const TYPED_ERROR_BOUND: Duration = Duration::from_secs(5);

/// A Rust client through `url` that reconnects (bounded) and pings.
async fn client(url: &str) -> ExecServerClient {
    let mut args = WebSocketConnectArgs::new(url);
    args.bearer_token = Some(TOKEN.into());
    args.keepalive = Some(TUNNEL_TIMEOUT / 3);
    args.reconnect = Some(ReconnectPolicy {
        attempts: 100,
        delay: Duration::from_millis(100),
        give_up_after: Duration::from_secs(3),
        ..Default::default()
    });
    ExecServerClient::connect_websocket(args)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

fn server_of(client: &ExecServerClient) -> String {
    client.server_info().unwrap().server_id.unwrap()
}

fn start_params(argv: &[&str], on_disconnect: OnDisconnect) -> StartParams {
    StartParams {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        cwd: "/".into(),
        env: [("PATH".to_string(), "/usr/bin:/bin".to_string())].into(),
        on_disconnect: Some(on_disconnect),
        ..Default::default()
    }
}

async fn sleeper(client: &ExecServerClient, on_disconnect: OnDisconnect) -> RemoteProcess {
    client
        .start(start_params(&["sleep", "60"], on_disconnect))
        .await
        .unwrap()
}

/// `echo WORD` through `client`, checked.
async fn assert_echo(client: &ExecServerClient, word: &str) {
    let process = client
        .start(start_params(&["echo", word], OnDisconnect::Kill))
        .await
        .unwrap_or_else(|e| panic!("start echo on {}: {e}", server_of(client)));
    let output = process.output().await.unwrap();
    assert_eq!(output.stdout, format!("{word}\n").as_bytes());
}

/// The upgrade request for `url` with the fleet's token.
fn request(url: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    request
}

/// A raw JSON-RPC connection to `url`.
async fn raw(url: &str) -> Rpc<WsTransport> {
    let (socket, _) = tokio_tungstenite::connect_async(request(url))
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    Rpc::new(WsTransport { socket })
}

/// The HTTP status of an upgrade attempt at `url`.
async fn upgrade_status(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(request(url)).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("upgrade at {url}: {other}"),
    }
}

/// Closes a raw connection and waits for the server's close, so the
/// server has detached the session when this returns.
async fn close(mut rpc: Rpc<WsTransport>) {
    let _ = rpc.transport.socket.close(None).await;
    for _ in 0..1000 {
        if rpc.recv().await.is_none() {
            return;
        }
    }
    panic!("the server never closed");
}

/// `initialize` + `initialized`; returns the initialize result.
async fn handshake(rpc: &mut Rpc<WsTransport>, params: Value) -> Value {
    let result = rpc.ok("initialize", params).await;
    rpc.send(json!({"method": "initialized"})).await;
    result
}

/// The status line and body of `GET path` on `host:port`.
async fn http_get(address: &str, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.lines().next().unwrap_or_default().to_string();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

/// Runs blocking fleet operations (signals, waits) off the async workers.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[test]
fn new_sessions_spread_over_the_servers_and_every_resume_reaches_its_owner() {
    let fleet = Fleet::start(FleetOptions::default());
    fleet.client(async || {
        // 100 sessions open at once through the balancer, each with a
        // detached process.
        let mut sessions = Vec::new();
        for i in 0..100 {
            let mut rpc = raw(&fleet.pool_url()).await;
            let init = handshake(&mut rpc, json!({"clientName": format!("c{i}")})).await;
            let started = rpc
                .ok(
                    "process/start",
                    json!({"argv": ["/bin/sleep", "60"], "cwd": "/", "onDisconnect": "detach"}),
                )
                .await;
            let server = init["serverId"].as_str().unwrap().to_string();
            let session = init["sessionId"].as_str().unwrap().to_string();
            assert!(
                session.starts_with(&format!("{server}~")),
                "the session id names its owner: {session}"
            );
            sessions.push((rpc, server, session, started["pid"].clone()));
        }
        let mut per_server = BTreeMap::<String, usize>::new();
        for (_, server, _, _) in &sessions {
            *per_server.entry(server.clone()).or_default() += 1;
        }
        assert_eq!(per_server.len(), 3, "{per_server:?}");
        assert!(
            per_server.values().all(|&n| n >= 25),
            "least-connections spreads open sessions: {per_server:?}"
        );

        // Every connection goes away; every session is resumed through
        // the balancer by its server id alone, and finds its process.
        let mut owners = Vec::new();
        for (rpc, server, session, pid) in sessions {
            close(rpc).await;
            owners.push((server, session, pid));
        }
        for (server, session, pid) in owners {
            let url = format!("ws://{BALANCER}{PREFIX}/{server}/");
            let mut rpc = raw(&url).await;
            let init = handshake(
                &mut rpc,
                json!({"clientName": "resumer", "resumeSessionId": session}),
            )
            .await;
            assert_eq!(init["resumed"], true, "{init}");
            assert_eq!(init["serverId"], server.as_str());
            let list = rpc.ok("process/list", json!({})).await;
            assert_eq!(list["processes"][0]["pid"], pid, "{list}");
            let id = list["processes"][0]["processId"].clone();
            rpc.ok("process/terminate", json!({"processId": id})).await;
        }
    });
}

#[test]
fn quiet_websockets_survive_the_balancer_with_keepalive_pings() {
    let fleet = Fleet::start(FleetOptions {
        servers: 1,
        ..Default::default()
    });
    fleet.client(async || {
        let pinging = client(&fleet.pool_url()).await;
        let mut silent = raw(&fleet.pool_url()).await;
        handshake(&mut silent, json!({"clientName": "silent"})).await;

        // Quiet for twice the balancer's tunnel timeout (its client
        // timeout is shorter still).
        tokio::time::sleep(TUNNEL_TIMEOUT * 2).await;

        // The control: without pings the balancer cut the connection.
        assert!(
            silent.recv().await.is_none(),
            "the balancer should have closed the silent connection"
        );
        // With pings the same connection is still up: no reconnect was
        // needed (a resumed session would say `resumed`).
        assert_echo(&pinging, "still-here").await;
        assert!(!pinging.server_info().unwrap().resumed);
    });
}

#[test]
fn a_balancer_restart_mid_stream_loses_and_repeats_nothing() {
    let fleet = Fleet::start(FleetOptions::default());
    fleet.client(async || {
        let client = client(&fleet.pool_url()).await;
        let owner = server_of(&client);
        let script = "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); sleep 0.005; done";
        let mut process = client
            .start(start_params(
                &["/bin/sh", "-c", script],
                OnDisconnect::Detach,
            ))
            .await
            .unwrap();
        let pid = process.pid();
        let mut stdout = Vec::new();
        let mut restarted = false;
        let exit = loop {
            let event = tokio::time::timeout(Duration::from_secs(20), process.next_event())
                .await
                .expect("output in time")
                .expect("the stream goes on across the restart");
            match event {
                exec_server_client::ProcessEvent::Output { chunk, .. } => {
                    stdout.extend_from_slice(&chunk);
                    if !restarted && stdout.len() > 500 {
                        restarted = true;
                        blocking(|| {
                            fleet.kill_balancer();
                            std::thread::sleep(Duration::from_millis(300));
                            fleet.start_balancer();
                        });
                    }
                }
                exec_server_client::ProcessEvent::Exited { exit_code, .. } => break exit_code,
                exec_server_client::ProcessEvent::Gap { dropped_bytes, .. } => {
                    panic!("retention dropped {dropped_bytes} bytes")
                }
                exec_server_client::ProcessEvent::Closed => panic!("closed before the exit"),
                exec_server_client::ProcessEvent::Lost { reason } => panic!("lost: {reason}"),
            }
        };
        assert!(restarted);
        assert_eq!(exit, 0);
        let expected: String = (0..400).map(|i| format!("line-{i}\n")).collect();
        assert!(
            String::from_utf8_lossy(&stdout) == expected,
            "every byte exactly once, in order"
        );
        let info = client.server_info().unwrap();
        assert!(info.resumed, "the session was resumed, not replaced");
        assert_eq!(info.server_id.as_deref(), Some(owner.as_str()));
        let list = client.list(ListParams::default()).await.unwrap();
        assert_eq!(list.processes.len(), 1);
        assert_eq!(list.processes[0].pid, pid, "the same child");
    });
}

#[test]
fn losing_a_host_gives_its_clients_one_typed_error_and_spares_the_rest() {
    let fleet = Fleet::start(FleetOptions::default());
    fleet.client(async || {
        let mut clients = Vec::new();
        for _ in 0..9 {
            let client = client(&fleet.pool_url()).await;
            let process = sleeper(&client, OnDisconnect::Detach).await;
            clients.push((server_of(&client), client, process.pid()));
        }
        let victim = "h2";
        let victims = clients.iter().filter(|(s, ..)| s == victim).count();
        assert!(victims > 0, "no session landed on {victim}");

        fleet.host(victim).signal(libc::SIGKILL);
        let killed_at = Instant::now();

        for (server, client, pid) in &clients {
            if server == victim {
                let error = tokio::time::timeout(
                    TYPED_ERROR_BOUND.saturating_sub(killed_at.elapsed()),
                    client.closed(),
                )
                .await
                .expect("the typed error within 5 s of the host's death");
                eprintln!(
                    "typed error {:?} after the kill: {error}",
                    killed_at.elapsed()
                );
                match &error {
                    ClientError::ServerUnavailable { server_id, .. } => {
                        assert_eq!(server_id, victim, "{error}")
                    }
                    other => panic!("expected ServerUnavailable, got {other:?}"),
                }
                // Every later call fails with the same error.
                match client.list(ListParams::default()).await {
                    Err(ClientError::ServerUnavailable { server_id, .. }) => {
                        assert_eq!(server_id, victim)
                    }
                    other => panic!("expected ServerUnavailable, got {other:?}"),
                }
            } else {
                // Untouched: never disconnected, same process, still working.
                assert!(!client.server_info().unwrap().resumed);
                let list = client.list(ListParams::default()).await.unwrap();
                assert_eq!(list.processes[0].pid, *pid);
                assert!(list.processes[0].running);
                assert_echo(client, server).await;
            }
        }
        assert!(killed_at.elapsed() < TYPED_ERROR_BOUND);

        // New sessions avoid the dead host.
        for _ in 0..6 {
            let client = client(&fleet.pool_url()).await;
            assert_ne!(server_of(&client), victim);
            assert_echo(&client, "new").await;
        }
    });
}

#[test]
fn a_draining_server_takes_no_new_sessions_but_serves_its_own_until_the_grace() {
    let grace = Duration::from_secs(3);
    let fleet = Fleet::start(FleetOptions {
        server_args: vec!["--shutdown-grace-ms".into(), grace.as_millis().to_string()],
        ..Default::default()
    });
    fleet.client(async || {
        let mut clients = Vec::new();
        for _ in 0..9 {
            let client = client(&fleet.pool_url()).await;
            let process = sleeper(&client, OnDisconnect::Kill).await;
            clients.push((server_of(&client), client, process));
        }
        let victim = fleet.host("h3");
        assert!(clients.iter().any(|(s, ..)| s == "h3"), "no session on h3");

        victim.signal(libc::SIGTERM);
        let signalled_at = Instant::now();
        let direct = format!("{}:{}", victim.ip, fleet_harness::SERVER_PORT);
        // As soon as the server has handled the signal (bounded wait).
        let mut readyz = http_get(&direct, "/readyz").await;
        for _ in 0..100 {
            if !readyz.0.contains("200") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            readyz = http_get(&direct, "/readyz").await;
        }
        let (status, body) = readyz;
        assert!(status.contains("503"), "{status}");
        assert_eq!(body, "draining h3\n");
        assert_eq!(http_get(&direct, "/livez").await.1, "ok\n");
        // Upgrades on the unrouted path are refused; routed ones are not.
        assert_eq!(upgrade_status(&victim.direct_url()).await, 503);
        assert_eq!(
            upgrade_status(&format!("{}h3/", victim.direct_url())).await,
            101
        );
        blocking(|| fleet.wait_balancer_sees("ready", "h3", false, Duration::from_secs(2)));

        for _ in 0..6 {
            let client = client(&fleet.pool_url()).await;
            assert_ne!(server_of(&client), "h3", "a new session on a draining server");
        }
        // Its own clients keep working until the grace ends.
        let mut rounds = 0;
        while signalled_at.elapsed() + Duration::from_millis(700) < grace {
            for (server, client, _) in clients.iter().filter(|(s, ..)| s == "h3") {
                assert_echo(client, server).await;
            }
            rounds += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(rounds >= 3, "{rounds}");
        let status = blocking(|| victim.wait_exit(grace + Duration::from_secs(5)));
        assert_eq!(status, Some(0), "a clean exit after the grace");
        assert!(
            signalled_at.elapsed() >= grace - Duration::from_millis(100),
            "exited {:?} after SIGTERM, before the grace",
            signalled_at.elapsed()
        );
        for (server, client, process) in &clients {
            if server == "h3" {
                let error = tokio::time::timeout(TYPED_ERROR_BOUND, client.closed())
                    .await
                    .expect("the typed error after the drain");
                assert!(
                    matches!(&error, ClientError::ServerUnavailable { server_id, .. } if server_id == "h3"),
                    "{error:?}"
                );
                assert!(common::wait_gone(process.pid(), Duration::from_secs(5)).await);
            } else {
                assert_echo(client, server).await;
            }
        }
    });
}

#[test]
fn a_resume_sent_to_the_wrong_server_is_refused_with_the_owners_id() {
    let fleet = Fleet::start(FleetOptions::default());
    fleet.client(async || {
        let mut rpc = raw(&fleet.pool_url()).await;
        let init = handshake(&mut rpc, json!({"clientName": "victim"})).await;
        let owner = init["serverId"].as_str().unwrap().to_string();
        let session = init["sessionId"].as_str().unwrap().to_string();
        rpc.ok(
            "process/start",
            json!({"argv": ["/bin/sleep", "60"], "cwd": "/", "onDisconnect": "detach"}),
        )
        .await;
        close(rpc).await;
        let other = fleet.hosts.iter().find(|h| h.id != owner).unwrap();

        // Through the balancer, routed to the wrong server on purpose.
        let mut wrong = raw(&format!("ws://{BALANCER}{PREFIX}/{}/", other.id)).await;
        let error = wrong
            .err(
                "initialize",
                json!({"clientName": "lost", "resumeSessionId": session}),
            )
            .await;
        assert_eq!(error["code"], -32600);
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{owner}`")), "{message}");
        assert!(!message.contains(&session), "the secret is not echoed");
        assert_eq!(error["data"]["ownerServerId"], owner.as_str());
        assert_eq!(error["data"]["serverId"], other.id.as_str());

        // A path naming another server, straight at a server: 421.
        let misdirected = format!(
            "ws://{}:{}{PREFIX}/{owner}/",
            other.ip,
            fleet_harness::SERVER_PORT
        );
        assert_eq!(upgrade_status(&misdirected).await, 421);
        // An id the balancer does not know: 404 from the balancer.
        assert_eq!(
            upgrade_status(&format!("ws://{BALANCER}{PREFIX}/nobody/")).await,
            404
        );

        // The refused attempt did not touch the session: its owner resumes it.
        let mut right = raw(&format!("ws://{BALANCER}{PREFIX}/{owner}/")).await;
        let init = handshake(
            &mut right,
            json!({"clientName": "found", "resumeSessionId": session}),
        )
        .await;
        assert_eq!(init["resumed"], true);
        assert_eq!(init["serverId"], owner.as_str());
    });
}
