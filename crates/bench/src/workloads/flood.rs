//! Floods: a request's latency while another process on the same
//! connection floods output, and the server's memory while a client that
//! stops reading has a process flooding 1 GiB.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use exec_server_client::{ExecServerClient, ProcessEvent};
use exec_server_protocol::process::ListParams;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::{Bench, GIB, MIB, connect_ws, start_params};
use crate::raw::{self, CHILD_PATH};
use crate::report::{Row, Summary, Target, Unit, percentiles};
use crate::server::{ServerOptions, WsServer};

/// Pause between two timed requests.
const REQUEST_INTERVAL: Duration = Duration::from_millis(5);

pub fn request_latency(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let requests = bench.pick(200, 10);
    let server = bench.ws_server(&ServerOptions::default())?;
    let client = bench.runtime.block_on(connect_ws(&server.url))?;
    let mut idle_runs = Vec::new();
    let mut flood_runs = Vec::new();
    let mut flood_rates = Vec::new();
    for _ in 0..bench.runs {
        let (idle, flooded, rate) = bench.runtime.block_on(async {
            let idle = time_requests(&client, requests).await?;
            let (flooded, rate) = under_flood(&client, requests).await?;
            anyhow::Ok((idle, flooded, rate))
        })?;
        idle_runs.push(idle);
        flood_runs.push(flooded);
        flood_rates.push(rate);
    }
    let stats = |runs: &[Vec<Duration>]| {
        let each: Vec<_> = runs.iter().map(|r| percentiles(r)).collect();
        (
            Summary::of(&each.iter().map(|p| p.p50).collect::<Vec<_>>()),
            Summary::of(&each.iter().map(|p| p.p99).collect::<Vec<_>>()),
        )
    };
    let (flood_p50, flood_p99) = stats(&flood_runs);
    let (idle_p50, idle_p99) = stats(&idle_runs);
    bench.runtime.block_on(async move { drop(client) });
    Ok(vec![
        Row::new(
            "flood-latency",
            "process/list p50 under flood",
            Unit::Micros,
            flood_p50,
        )
        .baseline("idle", idle_p50),
        Row::new(
            "flood-latency",
            "process/list p99 under flood",
            Unit::Micros,
            flood_p99,
        )
        .baseline("idle", idle_p99)
        .target(Target::AtMost(10_000.0)),
        Row::new(
            "flood-latency",
            "flood delivered meanwhile",
            Unit::MegabytesPerSecond,
            Summary::of(&flood_rates),
        ),
    ])
}

/// `count` `process/list` requests, one every [`REQUEST_INTERVAL`].
async fn time_requests(client: &ExecServerClient, count: usize) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        tokio::time::sleep(REQUEST_INTERVAL).await;
        let started = Instant::now();
        client.list(ListParams::default()).await?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

/// The same requests while `cat /dev/zero` floods the connection (its
/// output read as fast as the client can). Returns the latencies and the
/// flood's rate meanwhile, in MB/s.
async fn under_flood(
    client: &ExecServerClient,
    count: usize,
) -> anyhow::Result<(Vec<Duration>, f64)> {
    let argv = vec!["cat".to_string(), "/dev/zero".to_string()];
    let mut flood = client.start(start_params(argv, false)).await?;
    let flood_id = flood.id().to_string();
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let drain = tokio::spawn(async move {
        while let Some(event) = flood.next_event().await {
            match event {
                ProcessEvent::Output { chunk, .. } => {
                    counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                ProcessEvent::Closed => break,
                _ => {}
            }
        }
    });
    // Measure in the steady state, not while the flood ramps up.
    while received.load(Ordering::Relaxed) < 16 * MIB {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let started = Instant::now();
    let before = received.load(Ordering::Relaxed);
    let samples = time_requests(client, count).await?;
    let rate =
        (received.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64() / 1e6;
    client.terminate_process(&flood_id, None).await?;
    drain.await.context("the flood reader panicked")?;
    Ok((samples, rate))
}

pub fn slow_client_memory(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let bytes = bench.pick(GIB, 8 * MIB);
    let pause = bench.pick(Duration::from_secs(2), Duration::from_millis(200));
    let mut idle = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..bench.runs {
        // A fresh server each run: its peak RSS (VmHWM) is this run's.
        let server = bench.ws_server(&ServerOptions::default())?;
        idle.push(server.memory()?.rss_kib as f64);
        bench
            .runtime
            .block_on(stalled_flood(&server, bytes, pause))?;
        let memory = server.memory()?;
        peaks.push(memory.peak_kib as f64);
    }
    let pause_label = format!("{:.1} s", pause.as_secs_f64());
    Ok(vec![
        Row::new(
            "slow-client-memory",
            format!(
                "server peak RSS, {} MiB flood, client stalled {pause_label}",
                bytes / MIB
            ),
            Unit::Kibibytes,
            Summary::of(&peaks),
        )
        .target(Target::AtMost(64.0 * 1024.0)),
        Row::new(
            "slow-client-memory",
            "server RSS at start",
            Unit::Kibibytes,
            Summary::of(&idle),
        ),
    ])
}

/// A raw websocket client (no client library, so nothing reads on its
/// behalf): it starts the flood, stops reading for `pause`, then reads
/// everything until the exit.
async fn stalled_flood(server: &WsServer, bytes: u64, pause: Duration) -> anyhow::Result<()> {
    let (mut socket, _) = tokio_tungstenite::connect_async(server.url.as_str())
        .await
        .context("connecting the raw websocket client")?;
    let messages = [
        json!({"id": 1, "method": "initialize", "params": {"clientName": "bench-stalled"}}),
        json!({"method": "initialized"}),
        json!({"id": 2, "method": "process/start", "params": {
            "argv": raw::head_argv(bytes), "cwd": "/", "env": {"PATH": CHILD_PATH},
        }}),
    ];
    for message in messages {
        socket.send(Message::text(message.to_string())).await?;
    }
    // Sample the server's memory while the client does not read.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let pid = server.pid();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(memory) = raw::memory(pid) {
                    peak = peak.max(memory.rss_kib);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    tokio::time::sleep(pause).await;
    let mut exited = false;
    let mut frame_bytes = 0u64;
    while let Some(frame) = socket.next().await {
        let text = match frame? {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        frame_bytes += text.len() as u64;
        // Output frames are large; the exit notification is small.
        if text.len() < 4096 && text.as_str().contains("\"process/exited\"") {
            exited = true;
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sampled_peak = sampler.join().expect("the memory sampler panicked");
    let _ = socket.close(None).await;
    if !exited {
        bail!("the connection ended before the flood's exit");
    }
    // Base64 makes 4 bytes of every 3: a shorter stream lost output.
    if frame_bytes < bytes / 3 * 4 {
        bail!("only {frame_bytes} bytes of frames arrived for {bytes} bytes of output");
    }
    eprintln!(
        "  sampled server RSS peak: {:.1} MiB",
        sampled_peak as f64 / 1024.0
    );
    Ok(())
}
