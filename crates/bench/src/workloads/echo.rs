//! Keystroke echo: one byte written to `cat` on a raw-mode PTY and read
//! back, over websocket, versus the same round trip on a raw PTY in this
//! process and through websocketd. Latency is bimodal on small VMs (the
//! tty flush may run on the other CPU), so everything is measured unpinned
//! and with everything (server, child, client or baseline thread) pinned
//! to CPU 0.

use std::time::Duration;

use anyhow::Context;

use super::{Bench, connect_ws, echo_once, start_params, wait_for_output};
use crate::peers::{self, WEBSOCKETD_MISSING, Websocketd};
use crate::raw;
use crate::report::{Row, Summary, Target, Unit, percentiles};
use crate::server::ServerOptions;

/// Round trips before measuring, to warm caches and the connection.
const WARMUP: usize = 50;

/// The p50 and p99 of each run, summarised over the runs.
fn stats(runs: &[Vec<Duration>]) -> (Summary, Summary) {
    let each: Vec<_> = runs.iter().map(|r| percentiles(r)).collect();
    (
        Summary::of(&each.iter().map(|p| p.p50).collect::<Vec<_>>()),
        Summary::of(&each.iter().map(|p| p.p99).collect::<Vec<_>>()),
    )
}

pub fn pty_echo(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let count = bench.pick(500, 20);
    let websocketd = peers::websocketd();
    let mut rows = Vec::new();
    for pinned in [false, true] {
        let mode = if pinned { "pinned" } else { "unpinned" };
        let server = bench.ws_server(&ServerOptions {
            pin_cpu0: pinned,
            ..ServerOptions::default()
        })?;
        let peers = match &websocketd {
            Some(binary) => Some((
                Websocketd::start(binary, &peers::echo_on_pty_argv(), pinned)?,
                Websocketd::start(binary, &peers::echo_on_pipes_argv(), pinned)?,
            )),
            None => None,
        };
        let mut raw_runs = Vec::new();
        let mut our_runs = Vec::new();
        let mut pty_peer_runs = Vec::new();
        let mut pipe_peer_runs = Vec::new();
        for _ in 0..bench.runs {
            raw_runs.push(on_thread(pinned, move || {
                let mut samples = raw::pty_echo(WARMUP + count)?;
                Ok(samples.split_off(WARMUP))
            })?);
            let url = server.url.clone();
            our_runs.push(on_thread(pinned, move || ws_echo(&url, count))?);
            if let Some((pty_peer, pipe_peer)) = &peers {
                let url = pty_peer.url.clone();
                pty_peer_runs.push(
                    on_thread(pinned, move || peers::echo(&url, WARMUP, count))
                        .context("websocketd echo on a PTY")?,
                );
                let url = pipe_peer.url.clone();
                pipe_peer_runs.push(
                    on_thread(pinned, move || peers::echo(&url, WARMUP, count))
                        .context("websocketd echo on pipes")?,
                );
            }
        }
        let (our_p50, our_p99) = stats(&our_runs);
        let (raw_p50, raw_p99) = stats(&raw_runs);
        let raw_name = format!("raw PTY {mode}");
        rows.push(
            Row::new(
                "pty-echo",
                format!("websocket p50 {mode}"),
                Unit::Micros,
                our_p50,
            )
            .baseline(&raw_name, raw_p50)
            .target(Target::RatioAtMost(2.0)),
        );
        rows.push(
            Row::new(
                "pty-echo",
                format!("websocket p99 {mode}"),
                Unit::Micros,
                our_p99,
            )
            .baseline(&raw_name, raw_p99)
            .target(Target::RatioAtMost(3.0)),
        );
        let peer_measures = [
            (
                format!("websocket p50 {mode} vs websocketd, same cat on a PTY via script"),
                Some(Target::RatioAtMost(1.0)),
                &pty_peer_runs,
                "websocketd+script+cat",
            ),
            (
                format!("websocket p50 {mode} vs websocketd, cat on pipes"),
                None,
                &pipe_peer_runs,
                "websocketd+cat",
            ),
        ];
        for (measure, target, peer_runs, peer_name) in peer_measures {
            let mut row = if peer_runs.is_empty() {
                Row::skipped("pty-echo", measure, Unit::Micros, WEBSOCKETD_MISSING)
            } else {
                Row::new("pty-echo", measure, Unit::Micros, our_p50)
                    .baseline(peer_name, stats(peer_runs).0)
            };
            if let Some(target) = target {
                row = row.target(target);
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Runs `work` on a fresh thread, pinned to CPU 0 when asked, so that the
/// pinning never leaks into the bench's own runtime threads.
fn on_thread<T: Send + 'static>(
    pinned: bool,
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    std::thread::spawn(move || {
        if pinned {
            raw::pin_current_thread(0).context("pinning to CPU 0")?;
        }
        work()
    })
    .join()
    .expect("a benchmark thread panicked")
}

/// The client side on a single-threaded runtime (on the calling thread):
/// connect, start the echo child, warm up, then `count` round trips.
fn ws_echo(url: &str, count: usize) -> anyhow::Result<Vec<Duration>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = connect_ws(url).await?;
        let mut process = client.start(start_params(raw::echo_argv(), true)).await?;
        wait_for_output(&mut process, b'R').await?;
        let mut samples = Vec::with_capacity(WARMUP + count);
        for _ in 0..WARMUP + count {
            samples.push(echo_once(&client, &mut process).await?);
        }
        process.terminate(None).await?;
        Ok(samples.split_off(WARMUP))
    })
}
