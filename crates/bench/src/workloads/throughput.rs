//! Output throughput: `head -c N /dev/zero` streamed to the Rust client,
//! every byte received (and, over stdio and websocket, decoded from JSON
//! and base64), versus a plain 64 KiB reader of the same command.
//!
//! Besides MB/s, each path reports the CPU time it spent per GiB: the
//! server's and the client's, summed. Throughput on a shared 2-core machine
//! depends on what else runs; CPU per byte hardly does, and it says where a
//! missing target has to be won back.

use std::time::Duration;

use anyhow::Context;

use super::{Bench, GIB, MIB, Transport, megabytes_per_second, run_counting, start_params};
use crate::peers::{self, WEBSOCKETD_MISSING, Websocketd};
use crate::raw;
use crate::report::{Row, Summary, Target, Unit};

pub fn pipe(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let bytes = bench.pick(GIB, 4 * MIB);
    measure(
        bench,
        bytes,
        false,
        raw::pipe_read,
        |transport| match transport {
            Transport::InProcess => Some(Target::RatioAtLeast(0.7)),
            Transport::WebSocket => Some(Target::RatioAtLeast(0.8)),
            Transport::WebSocketJson => Some(Target::RatioAtLeast(0.6)),
            // The issue sets no goal for stdio; it is shown for comparison.
            Transport::Stdio => None,
        },
    )
}

pub fn pty(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let bytes = bench.pick(256 * MIB, MIB);
    measure(bench, bytes, true, raw::pty_read, |_| {
        Some(Target::RatioAtLeast(0.95))
    })
}

/// Figures of one client path over all runs.
#[derive(Default)]
struct PathFigures {
    rates: Vec<f64>,
    /// Output events per run: the per-message costs scale with these.
    chunks: Vec<f64>,
    server_cpu: Vec<f64>,
    client_cpu: Vec<f64>,
}

/// A throughput row and a CPU row per transport, against the same
/// baseline figures.
fn measure(
    bench: &Bench,
    bytes: u64,
    tty: bool,
    baseline: fn(u64) -> anyhow::Result<Duration>,
    target: fn(Transport) -> Option<Target>,
) -> anyhow::Result<Vec<Row>> {
    let workload = if tty {
        "pty-throughput"
    } else {
        "pipe-throughput"
    };
    let per_gib = |cpu: Duration| cpu.as_secs_f64() * 1e3 * GIB as f64 / bytes as f64;
    let connections = bench.runtime.block_on(bench.connections())?;
    // The peer streams the same pipe output (no PTY: websocketd has none).
    let peer = match (tty, peers::websocketd()) {
        (false, Some(binary)) => Some(Websocketd::start(&binary, &raw::head_argv(bytes), false)?),
        _ => None,
    };
    let mut peer_figures = PathFigures::default();
    let mut raw_rates = Vec::new();
    let mut raw_cpu = Vec::new();
    let mut ours: Vec<PathFigures> = connections.iter().map(|_| Default::default()).collect();
    for _ in 0..bench.runs {
        let cpu_before = raw::cpu_time(None)?;
        raw_rates.push(megabytes_per_second(bytes, baseline(bytes)?));
        raw_cpu.push(per_gib(raw::cpu_time(None)? - cpu_before));
        if let Some(peer) = &peer {
            let client_before = raw::cpu_time(None)?;
            let server_before = raw::cpu_time(Some(peer.pid()))?;
            let elapsed = bench
                .runtime
                .block_on(peers::read_all(&peer.url, bytes))
                .context("pipe output through websocketd")?;
            peer_figures
                .rates
                .push(megabytes_per_second(bytes, elapsed));
            peer_figures
                .client_cpu
                .push(per_gib(raw::cpu_time(None)? - client_before));
            peer_figures
                .server_cpu
                .push(per_gib(raw::cpu_time(Some(peer.pid()))? - server_before));
        }
        for ((transport, connection), figures) in connections.iter().zip(&mut ours) {
            let server = connection.server_pid();
            let client_before = raw::cpu_time(None)?;
            let server_before = server.map(|pid| raw::cpu_time(Some(pid))).transpose()?;
            let params = start_params(raw::head_argv(bytes), tty);
            let (elapsed, chunks) = bench
                .runtime
                .block_on(run_counting(&connection.client, params, bytes))
                .with_context(|| format!("{workload} over {}", transport.name()))?;
            figures.rates.push(megabytes_per_second(bytes, elapsed));
            figures.chunks.push(chunks as f64);
            figures
                .client_cpu
                .push(per_gib(raw::cpu_time(None)? - client_before));
            if let (Some(pid), Some(before)) = (server, server_before) {
                figures
                    .server_cpu
                    .push(per_gib(raw::cpu_time(Some(pid))? - before));
            }
        }
    }
    let (baseline_name, reader_name) = if tty {
        ("raw PTY", "raw PTY reader")
    } else {
        ("raw pipe", "raw pipe reader")
    };
    let raw_rate = Summary::of(&raw_rates);
    let raw_cpu = Summary::of(&raw_cpu);
    let mut rows = Vec::new();
    let mut cpu_rows = Vec::new();
    for ((transport, _), figures) in connections.iter().zip(&ours) {
        let chunks = Summary::of(&figures.chunks).median;
        eprintln!(
            "  {}: {chunks:.0} output events per run, {:.1} KiB each on average",
            transport.name(),
            bytes as f64 / chunks / 1024.0
        );
        let mut row = Row::new(
            workload,
            format!("{}, {}", transport.name(), size_label(bytes)),
            Unit::MegabytesPerSecond,
            Summary::of(&figures.rates),
        )
        .baseline(baseline_name, raw_rate);
        if let Some(target) = target(*transport) {
            row = row.target(target);
        }
        rows.push(row);
        // In process, the bench's CPU time is the server's and the client's.
        let client = Summary::of(&figures.client_cpu);
        let (total, split) = if figures.server_cpu.is_empty() {
            (client, "server+client in one process".to_string())
        } else {
            let server = Summary::of(&figures.server_cpu);
            let sums: Vec<f64> = figures
                .server_cpu
                .iter()
                .zip(&figures.client_cpu)
                .map(|(s, c)| s + c)
                .collect();
            (
                Summary::of(&sums),
                format!("server {:.0} + client {:.0}", server.median, client.median),
            )
        };
        let mut cpu_row = Row::new(
            workload,
            format!("{} CPU per GiB: {split}", transport.name()),
            Unit::CpuMillis,
            total,
        )
        .baseline(reader_name, raw_cpu);
        // Issue 11: pipe output with binary frames costs at most 3x the
        // raw reader's CPU, server and client together.
        if !tty && *transport == Transport::WebSocket {
            cpu_row = cpu_row.target(Target::RatioAtMost(3.0));
        }
        cpu_rows.push(cpu_row);
    }
    if !tty {
        rows.extend(peer_rows(
            bench,
            bytes,
            &connections,
            &ours,
            &peer_figures,
            raw_rate,
            raw_cpu,
        ));
    }
    // A smoke run moves too few bytes for 10 ms CPU ticks to mean anything.
    if !bench.smoke {
        rows.extend(cpu_rows);
    }
    // Servers and clients go away inside the runtime.
    bench.runtime.block_on(async move { drop(connections) });
    Ok(rows)
}

/// websocketd's own figures against the raw reader, and ours over
/// websocket against websocketd's; "skipped" rows when it is absent.
fn peer_rows(
    bench: &Bench,
    bytes: u64,
    connections: &[(Transport, super::Connection)],
    ours: &[PathFigures],
    peer: &PathFigures,
    raw_rate: Summary,
    raw_cpu: Summary,
) -> Vec<Row> {
    let workload = "pipe-throughput";
    let measure = format!("websocketd --binary, {}", size_label(bytes));
    if peer.rates.is_empty() {
        return vec![Row::skipped(
            workload,
            measure,
            Unit::MegabytesPerSecond,
            WEBSOCKETD_MISSING,
        )];
    }
    let peer_rate = Summary::of(&peer.rates);
    let mut rows = vec![
        Row::new(workload, measure, Unit::MegabytesPerSecond, peer_rate)
            .baseline("raw pipe", raw_rate),
    ];
    for ((transport, _), figures) in connections.iter().zip(ours) {
        if matches!(transport, Transport::WebSocket | Transport::WebSocketJson) {
            rows.push(
                Row::new(
                    workload,
                    format!("{} vs websocketd, {}", transport.name(), size_label(bytes)),
                    Unit::MegabytesPerSecond,
                    Summary::of(&figures.rates),
                )
                .baseline("websocketd", peer_rate),
            );
        }
    }
    if !bench.smoke {
        let sums: Vec<f64> = peer
            .server_cpu
            .iter()
            .zip(&peer.client_cpu)
            .map(|(s, c)| s + c)
            .collect();
        rows.push(
            Row::new(
                workload,
                format!(
                    "websocketd CPU per GiB: server {:.0} + client {:.0}",
                    Summary::of(&peer.server_cpu).median,
                    Summary::of(&peer.client_cpu).median
                ),
                Unit::CpuMillis,
                Summary::of(&sums),
            )
            .baseline("raw pipe reader", raw_cpu),
        );
    }
    rows
}

/// `1 GiB`, `256 MiB`.
fn size_label(bytes: u64) -> String {
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}
