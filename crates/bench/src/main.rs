//! `exec-server-bench`: exec-server against the machine's own limits, side
//! by side in one run.
//!
//! ```text
//! cargo run --release -p exec-server-bench -- [all|NAME...] [--smoke] [--runs N] [--json PATH]
//! ```
//!
//! - `workloads` holds the workloads of issue 5, one module per family
//!   (throughput, spawn, echo, scale, flood). Each drives the real server
//!   through the Rust client: in this process (`connect_in_process`), or
//!   the `exec-server` binary over stdio or a loopback websocket.
//! - `raw` holds the baselines, measured in the same run by this program
//!   itself: a 64 KiB pipe reader, a 64 KiB PTY master reader, `posix_spawn`
//!   + `waitpid`, a one-byte echo on a raw PTY.
//! - `peers` runs websocketd, the program the issue compares a websocket
//!   bridge with, in the same run (rows say "skipped" when it is absent).
//! - `server` finds, builds and starts the `exec-server` binary.
//! - `report` turns runs into medians with min and max, ratios against the
//!   baseline and verdicts against the issue's targets, printed as a table
//!   and written as JSON.
//!
//! Targets are goals, not assertions: a missed target is reported and the
//! exit status stays 0. Only a workload that fails to run (lost bytes, a
//! server that does not start) makes the exit status non-zero.

mod peers;
mod raw;
mod report;
mod server;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;

use crate::report::Row;
use crate::server::BinaryOptions;
use crate::workloads::{Bench, Transport, WORKLOADS, Workload};

#[derive(Debug, Parser)]
#[command(
    name = "exec-server-bench",
    about = "Benchmarks exec-server against baselines measured in the same run.",
    after_help = "Workloads (default: all):\n  pipe-throughput pty-throughput spawn spawn-large spawn-sandbox pty-echo many-sleeps\n  many-connections flood-latency agent-step slow-client-memory fs-read fs-write\n\nSee docs/BENCHMARKS.md for what each one measures."
)]
struct Args {
    /// Workloads to run: `all` or names (see --list).
    #[arg(value_name = "all|NAME")]
    workloads: Vec<String>,

    /// Tiny sizes and one run: checks that every path works, in seconds.
    #[arg(long)]
    smoke: bool,

    /// Runs per figure; the table shows the median, min and max
    /// [default: 3, or 1 with --smoke].
    #[arg(long, value_name = "N")]
    runs: Option<usize>,

    /// Where to write the JSON results [default: target/bench-results.json,
    /// or target/bench-results-smoke.json with --smoke].
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

    /// The exec-server binary to measure [default: exec-server next to this
    /// program, built first with cargo].
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,

    /// Restrict the throughput and spawn workloads to these client paths
    /// (`in-process`, `stdio`, `websocket`; repeatable) [default: all].
    #[arg(long = "transport", value_name = "NAME")]
    transports: Vec<String>,

    /// Do not run `cargo build -p exec-server` first.
    #[arg(long)]
    no_build: bool,

    /// List the workloads and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        for workload in WORKLOADS {
            println!("{:<20} {}", workload.name, workload.about);
        }
        return ExitCode::SUCCESS;
    }
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("exec-server-bench: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the chosen workloads; `Ok(false)` when one of them failed.
fn run(args: Args) -> anyhow::Result<bool> {
    let chosen = choose(&args.workloads)?;
    let runs = args.runs.unwrap_or(if args.smoke { 1 } else { 3 });
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let binary = server::locate_binary(&BinaryOptions {
        explicit: args.server.clone(),
        build: !args.no_build,
    })?;
    let json_path = match &args.json {
        Some(path) => path.clone(),
        None => default_json_path(args.smoke)?,
    };
    let transports = choose_transports(&args.transports)?;
    let bench = Bench {
        runtime: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?,
        binary,
        smoke: args.smoke,
        runs,
        transports,
    };
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut failures = Vec::new();
    for workload in &chosen {
        eprintln!("== {} ({} run(s))", workload.name, runs);
        let workload_started = Instant::now();
        match (workload.run)(&bench) {
            Ok(new_rows) => {
                eprint!("{}", report::table(&new_rows));
                rows.extend(new_rows);
            }
            Err(error) => {
                eprintln!("  FAILED: {error:#}");
                failures.push(json!({"workload": workload.name, "error": format!("{error:#}")}));
            }
        }
        eprintln!("   ({:.1} s)", workload_started.elapsed().as_secs_f64());
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    println!();
    println!(
        "exec-server-bench{} — {} run(s) per figure, median [min–max]; {:.0} s in all",
        if args.smoke { " --smoke" } else { "" },
        runs,
        started.elapsed().as_secs_f64()
    );
    print!("{}", report::table(&rows));
    let mut document = report::document(&rows, context(&bench, &command));
    document["failures"] = json!(failures);
    if let Some(dir) = json_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&json_path, serde_json::to_string_pretty(&document)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!("JSON: {}", json_path.display());
    if !failures.is_empty() {
        eprintln!("{} workload(s) failed to run", failures.len());
    }
    Ok(failures.is_empty())
}

fn choose(names: &[String]) -> anyhow::Result<Vec<&'static Workload>> {
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return Ok(WORKLOADS.iter().collect());
    }
    names
        .iter()
        .map(|name| {
            WORKLOADS
                .iter()
                .find(|w| w.name == name)
                .with_context(|| format!("unknown workload `{name}`; see --list"))
        })
        .collect()
}

fn choose_transports(names: &[String]) -> anyhow::Result<Vec<Transport>> {
    if names.is_empty() {
        return Ok(Transport::ALL.to_vec());
    }
    names
        .iter()
        .map(|name| {
            Transport::ALL
                .into_iter()
                .find(|t| t.name() == name)
                .with_context(|| {
                    format!("unknown transport `{name}`; expected in-process, stdio, websocket or websocket-json")
                })
        })
        .collect()
}

/// `target/bench-results.json`, found from this executable's location
/// (`target/<profile>/exec-server-bench`).
fn default_json_path(smoke: bool) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe
        .parent()
        .and_then(|profile| profile.parent())
        .context("cannot find the target directory; pass --json PATH")?;
    let name = if smoke {
        "bench-results-smoke.json"
    } else {
        "bench-results.json"
    };
    Ok(target.join(name))
}

/// How and where the numbers were made.
fn context(bench: &Bench, command: &str) -> serde_json::Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string());
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    json!({
        "command": command,
        "smoke": bench.smoke,
        "runsPerFigure": bench.runs,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "server": bench.binary,
        "unixTime": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpuModel": cpu_model,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "commit": commit,
    })
}
