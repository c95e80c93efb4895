//! Keystroke echo: one byte written to `cat` on a raw-mode PTY and read
//! back, over websocket, versus the same round trip on a raw PTY in this
//! process. Latency is bimodal on small VMs (the tty flush may run on the
//! other CPU), so both are measured unpinned and with everything (server,
//! child, client or baseline thread) pinned to CPU 0.

use std::time::Duration;

use anyhow::Context;

use super::{Bench, connect_ws, echo_once, start_params, wait_for_output};
use crate::raw;
use crate::report::{Row, Summary, Target, Unit, percentiles};
use crate::server::ServerOptions;

/// Round trips before measuring, to warm caches and the connection.
const WARMUP: usize = 50;

pub fn pty_echo(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let count = bench.pick(500, 20);
    let mut rows = Vec::new();
    for pinned in [false, true] {
        let server = bench.ws_server(&ServerOptions {
            pin_cpu0: pinned,
            ..ServerOptions::default()
        })?;
        let mut raw_runs = Vec::new();
        let mut our_runs = Vec::new();
        for _ in 0..bench.runs {
            raw_runs.push(on_thread(pinned, move || {
                let mut samples = raw::pty_echo(WARMUP + count)?;
                Ok(samples.split_off(WARMUP))
            })?);
            let url = server.url.clone();
            our_runs.push(on_thread(pinned, move || ws_echo(&url, count))?);
        }
        let mode = if pinned { "pinned" } else { "unpinned" };
        let stats = |runs: &[Vec<Duration>]| {
            let each: Vec<_> = runs.iter().map(|r| percentiles(r)).collect();
            (
                Summary::of(&each.iter().map(|p| p.p50).collect::<Vec<_>>()),
                Summary::of(&each.iter().map(|p| p.p99).collect::<Vec<_>>()),
            )
        };
        let (our_p50, our_p99) = stats(&our_runs);
        let (raw_p50, raw_p99) = stats(&raw_runs);
        rows.push(
            Row::new(
                "pty-echo",
                format!("websocket p50 {mode}"),
                Unit::Micros,
                our_p50,
            )
            .baseline(format!("raw PTY {mode}"), raw_p50)
            .target(Target::RatioAtMost(3.0)),
        );
        rows.push(
            Row::new(
                "pty-echo",
                format!("websocket p99 {mode}"),
                Unit::Micros,
                our_p99,
            )
            .baseline(format!("raw PTY {mode}"), raw_p99),
        );
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
