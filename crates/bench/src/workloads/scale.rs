//! Scale: many idle processes on one connection, and many connections each
//! typing into its own PTY.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::future::try_join_all;
use tokio::time::MissedTickBehavior;

use super::{Bench, connect_ws, echo_once, start_params, wait_for_output};
use crate::raw;
use crate::report::{Row, Summary, Target, Unit, percentiles};
use crate::server::ServerOptions;

pub fn many_sleeps(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let count = bench.pick(1000, 20);
    let mut start_times = Vec::new();
    let mut per_process = Vec::new();
    for _ in 0..bench.runs {
        // A fresh server each run, so its memory starts from the same place.
        let server = bench.ws_server(&ServerOptions::default())?;
        let (elapsed, before, after) = bench.runtime.block_on(async {
            let client = connect_ws(&server.url).await?;
            // One request and its process first: the spawner thread, the
            // watchdog and the connection's buffers exist from here on.
            client
                .start(start_params(vec!["/bin/true".into()], false))
                .await?
                .wait()
                .await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let before = server.memory()?;
            let argv = vec!["sleep".to_string(), "600".to_string()];
            let started = Instant::now();
            let processes =
                try_join_all((0..count).map(|_| client.start(start_params(argv.clone(), false))))
                    .await
                    .context("starting the sleep processes")?;
            let elapsed = started.elapsed();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let after = server.memory()?;
            drop(processes);
            drop(client); // The server kills them all.
            anyhow::Ok((elapsed, before, after))
        })?;
        start_times.push(elapsed.as_secs_f64() * 1e6);
        per_process.push(after.rss_kib.saturating_sub(before.rss_kib) as f64 / count as f64);
    }
    Ok(vec![
        Row::new(
            "many-sleeps",
            format!("time to start {count}"),
            Unit::Micros,
            Summary::of(&start_times),
        ),
        Row::new(
            "many-sleeps",
            "server RSS per idle process",
            Unit::Kibibytes,
            Summary::of(&per_process),
        )
        .target(Target::AtMost(64.0)),
    ])
}

/// Time between two keystrokes of one connection: five times a fast
/// typist, so 200 connections make 10,000 keystrokes per second.
const TYPING_INTERVAL: Duration = Duration::from_millis(20);

pub fn many_connections(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let connections = bench.pick(200, 4);
    let keystrokes = bench.pick(50, 5);
    // The lone connection types faster so that its p99 rests on enough
    // samples; it is alone, so pacing barely matters.
    let single_keystrokes = bench.pick(400, 10);
    let single_interval = Duration::from_millis(5);
    let server = bench.ws_server(&ServerOptions::default())?;
    let mut single_runs = Vec::new();
    let mut many_runs = Vec::new();
    for _ in 0..bench.runs {
        let (single, many) = bench.runtime.block_on(async {
            let mut sessions = Vec::with_capacity(connections);
            for _ in 0..connections {
                let client = connect_ws(&server.url).await?;
                let process = client.start(start_params(raw::echo_argv(), true)).await?;
                sessions.push((client, process));
            }
            for (_, process) in &mut sessions {
                wait_for_output(process, b'R').await?;
            }
            let (client, process) = &mut sessions[0];
            for _ in 0..20 {
                echo_once(client, process).await?; // warm-up
            }
            let single =
                type_keys(client, process, single_keystrokes, single_interval, None).await?;
            let epoch = Instant::now() + Duration::from_millis(50);
            let tasks: Vec<_> = sessions
                .into_iter()
                .enumerate()
                .map(|(i, (client, mut process))| {
                    // Staggered so the keystrokes do not arrive in lockstep.
                    let offset = TYPING_INTERVAL * i as u32 / connections as u32;
                    let start = epoch + offset;
                    tokio::spawn(async move {
                        let samples = type_keys(
                            &client,
                            &mut process,
                            keystrokes,
                            TYPING_INTERVAL,
                            Some(start),
                        )
                        .await;
                        let _ = process.terminate(None).await;
                        samples
                    })
                })
                .collect();
            let mut many = Vec::with_capacity(connections * keystrokes);
            for task in tasks {
                many.extend(task.await.context("a typing task panicked")??);
            }
            anyhow::Ok((single, many))
        })?;
        single_runs.push(single);
        many_runs.push(many);
    }
    let stats = |runs: &[Vec<Duration>]| {
        let each: Vec<_> = runs.iter().map(|r| percentiles(r)).collect();
        (
            Summary::of(&each.iter().map(|p| p.p50).collect::<Vec<_>>()),
            Summary::of(&each.iter().map(|p| p.p99).collect::<Vec<_>>()),
        )
    };
    let (many_p50, many_p99) = stats(&many_runs);
    let (single_p50, single_p99) = stats(&single_runs);
    Ok(vec![
        Row::new(
            "many-connections",
            format!("p50, {connections} connections"),
            Unit::Micros,
            many_p50,
        )
        .baseline("1 connection", single_p50),
        Row::new(
            "many-connections",
            format!("p99, {connections} connections"),
            Unit::Micros,
            many_p99,
        )
        .baseline("1 connection", single_p99)
        .target(Target::RatioAtMost(5.0)),
    ])
}

/// `count` keystroke round trips, one per `interval` tick from `start`.
async fn type_keys(
    client: &exec_server_client::ExecServerClient,
    process: &mut exec_server_client::RemoteProcess,
    count: usize,
    interval: Duration,
    start: Option<Instant>,
) -> anyhow::Result<Vec<Duration>> {
    let start = start.unwrap_or_else(Instant::now);
    let mut ticks = tokio::time::interval_at(start.into(), interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        ticks.tick().await;
        samples.push(echo_once(client, process).await?);
    }
    Ok(samples)
}
