//! An agent's interactive step: type a command into a tty `bash` and
//! collect until the prompt is back, as `exec-server mcp` does, with the
//! server's input-wait detection versus the quiet timer alone (500 ms of
//! silence after output: how the MCP front-end returned before issue 16).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use exec_server_client::{
    ClientOptions, CollectOptions, ExecServerClient, OutputCursor, Stopped, collect,
};
use exec_server_protocol::process::StartParams;

use super::Bench;
use crate::raw::CHILD_PATH;
use crate::report::{Row, Summary, Target, Unit, percentiles};

/// The MCP front-end's quiet fallback.
const QUIET: Duration = Duration::from_millis(500);

pub fn bash_step(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let steps = bench.pick(30, 3);
    let mut ours = Vec::new();
    let mut quiet_only = Vec::new();
    for _ in 0..bench.runs {
        ours.push(bench.runtime.block_on(steps_p50(true, steps))?);
        quiet_only.push(bench.runtime.block_on(steps_p50(false, steps))?);
    }
    Ok(vec![
        Row::new(
            "agent-step",
            "tty bash step p50 (input wait)",
            Unit::Micros,
            Summary::of(&ours),
        )
        .baseline("quiet timer alone", Summary::of(&quiet_only))
        .target(Target::AtMost(50_000.0)),
    ])
}

/// The p50, in microseconds, of `steps` commands typed into a tty bash
/// (`pwd`, `cd /tmp`, `echo N` in turn), each collected until it returns.
async fn steps_p50(input_wait: bool, steps: usize) -> anyhow::Result<f64> {
    let client = ExecServerClient::connect_in_process(ClientOptions::default()).await?;
    let process = client
        .start(StartParams {
            argv: vec![
                "bash".into(),
                "--norc".into(),
                "--noprofile".into(),
                "-i".into(),
            ],
            cwd: "/".into(),
            env: BTreeMap::from([
                ("PATH".to_string(), CHILD_PATH.to_string()),
                ("PS1".to_string(), "$ ".to_string()),
                ("TERM".to_string(), "xterm-256color".to_string()),
            ]),
            tty: true,
            stream_output: Some(false),
            ..StartParams::default()
        })
        .await?;
    let options = CollectOptions {
        quiet: Some(QUIET),
        until_input_wait: input_wait,
        ..CollectOptions::new(Duration::from_secs(10), 16 * 1024)
    };
    let mut cursor = OutputCursor::default();
    collect(&client, process.id(), &mut cursor, &options, |_| {}).await?;
    let mut samples = Vec::with_capacity(steps);
    for step in 0..steps {
        let command = match step % 3 {
            0 => "pwd\n".to_string(),
            1 => "cd /tmp\n".to_string(),
            _ => format!("echo step-{step}\n"),
        };
        let started = Instant::now();
        process.write(command.into_bytes()).await?;
        let collected = collect(&client, process.id(), &mut cursor, &options, |_| {}).await?;
        samples.push(started.elapsed());
        let expected = if input_wait {
            Stopped::InputWait
        } else {
            Stopped::Quiet
        };
        if collected.stopped != expected || !collected.pty.to_text().ends_with("$ ") {
            bail!(
                "step {step} ended {:?}: {:?}",
                collected.stopped,
                collected.pty.to_text()
            );
        }
    }
    process.terminate(None).await?;
    Ok(percentiles(&samples).p50)
}
