//! Spawn latency of a sandboxed process (issue 12): `process/start` of
//! `/bin/true` until its exit event, confined (workspace-write with a
//! `.git` to keep read-only, network off) versus unconfined, interleaved run
//! after run on the same connection. The goal: p50 at most 1.2× unconfined.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use exec_server_client::ExecServerClient;
use exec_server_protocol::sandbox::{FilesystemMode, NetworkMode, SandboxParams};

use super::{Bench, start_params};
use crate::report::{Row, Summary, Target, Unit, percentiles};

pub fn spawn(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let count = bench.pick(1000, 20);
    let workspace = tempfile_dir()?;
    std::fs::create_dir_all(workspace.join(".git")).context("creating the workspace")?;
    let sandbox = SandboxParams {
        filesystem: Some(FilesystemMode::WorkspaceWrite),
        writable_roots: Some(vec![workspace.display().to_string()]),
        network: Some(NetworkMode::None),
        ..SandboxParams::default()
    };
    let connections = bench.runtime.block_on(bench.connections())?;
    let mut plain_runs = vec![Vec::new(); connections.len()];
    let mut confined_runs = vec![Vec::new(); connections.len()];
    for _ in 0..bench.runs {
        for (i, (transport, connection)) in connections.iter().enumerate() {
            let client = &connection.client;
            let plain = bench
                .runtime
                .block_on(spawn_true(client, count, None))
                .with_context(|| format!("unconfined spawns over {}", transport.name()))?;
            let confined = bench
                .runtime
                .block_on(spawn_true(client, count, Some(&sandbox)))
                .with_context(|| format!("sandboxed spawns over {}", transport.name()))?;
            plain_runs[i].push(plain);
            confined_runs[i].push(confined);
        }
    }
    let mut rows = Vec::new();
    for (i, (transport, _)) in connections.iter().enumerate() {
        let stats = |runs: &[Vec<Duration>]| {
            let each: Vec<_> = runs.iter().map(|r| percentiles(r)).collect();
            (
                Summary::of(&each.iter().map(|p| p.p50).collect::<Vec<_>>()),
                Summary::of(&each.iter().map(|p| p.p99).collect::<Vec<_>>()),
            )
        };
        let (plain_p50, plain_p99) = stats(&plain_runs[i]);
        let (confined_p50, confined_p99) = stats(&confined_runs[i]);
        rows.push(
            Row::new(
                "spawn-sandbox",
                format!("{} p50 of {count}", transport.name()),
                Unit::Micros,
                confined_p50,
            )
            .baseline("unsandboxed", plain_p50)
            .target(Target::RatioAtMost(1.2)),
        );
        rows.push(
            Row::new(
                "spawn-sandbox",
                format!("{} p99 of {count}", transport.name()),
                Unit::Micros,
                confined_p99,
            )
            .baseline("unsandboxed", plain_p99),
        );
    }
    bench.runtime.block_on(async move { drop(connections) });
    let _ = std::fs::remove_dir_all(&workspace);
    Ok(rows)
}

/// A fresh directory under the system temporary directory.
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let path = std::env::temp_dir().join(format!(
        "exec-server-bench-workspace-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    Ok(path)
}

async fn spawn_true(
    client: &ExecServerClient,
    count: usize,
    sandbox: Option<&SandboxParams>,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let mut params = start_params(vec!["/bin/true".into()], false);
        params.sandbox = sandbox.cloned();
        let started = Instant::now();
        let mut process = client.start(params).await?;
        if sandbox.is_some() && process.sandbox().is_none() {
            bail!("the server did not confine the process");
        }
        let exit = process.wait().await?;
        samples.push(started.elapsed());
        if exit.exit_code != 0 {
            bail!("/bin/true exited with {}", exit.exit_code);
        }
    }
    Ok(samples)
}
