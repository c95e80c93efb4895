//! Files over a websocket (`fs/*`): a 1 GiB file copied from the server's
//! disk to a local file and back through the Rust client's block streams
//! (what `exec-server cp` does), against `cat SRC > DST` and `cp SRC DST`
//! of the same file on the same machine, in the same run.
//!
//! Both sides read and write the page cache (the machine has room for
//! every file involved), so the ratio is the cost of the protocol: base64,
//! JSON, the websocket and two processes, against one process moving
//! bytes between two files.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use exec_server_protocol::fs::WriteOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Bench, GIB, MIB, connect_ws, megabytes_per_second};
use crate::report::{Row, Summary, Target, Unit};
use crate::server::ServerOptions;

/// Bytes per `fs/writeBlock` when uploading, as `exec-server cp` sends them.
const UPLOAD_BLOCK: usize = 4 * 1024 * 1024;

pub fn read(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    measure(bench, Direction::Read)
}

pub fn write(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    measure(bench, Direction::Write)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Server's file → local file, vs `cat SRC > DST`.
    Read,
    /// Local file → server's file, vs `cp SRC DST`.
    Write,
}

/// Fills `path` with `bytes` of data that does not compress to nothing.
fn make_file(path: &Path, bytes: u64) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut block: Vec<u8> = (0..MIB as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut file = std::fs::File::create(path)?;
    for i in 0..bytes / MIB {
        block[..8].copy_from_slice(&i.to_le_bytes());
        file.write_all(&block)?;
    }
    Ok(())
}

fn local_baseline(direction: Direction, source: &Path, target: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = match direction {
        Direction::Read => Command::new("sh")
            .arg("-c")
            .arg("cat \"$1\" > \"$2\"")
            .arg("sh")
            .arg(source)
            .arg(target)
            .status(),
        Direction::Write => Command::new("cp").arg(source).arg(target).status(),
    }
    .context("running the local baseline")?;
    let elapsed = started.elapsed();
    if !status.success() {
        bail!("the local baseline failed: {status}");
    }
    Ok(elapsed)
}

async fn download(
    client: &exec_server_client::ExecServerClient,
    source: &Path,
    target: &Path,
) -> anyhow::Result<u64> {
    let mut reader = client.open_reader(source).await?;
    let mut file = tokio::fs::File::create(target).await?;
    let mut total = 0u64;
    while let Some(chunk) = reader.next_chunk().await? {
        total += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    reader.close().await?;
    Ok(total)
}

async fn upload(
    client: &exec_server_client::ExecServerClient,
    source: &Path,
    target: &Path,
) -> anyhow::Result<u64> {
    let mut file = tokio::fs::File::open(source).await?;
    let mut writer = client
        .create_writer(target, WriteOptions::default())
        .await?;
    let mut total = 0u64;
    loop {
        let mut block = Vec::with_capacity(UPLOAD_BLOCK);
        while block.len() < UPLOAD_BLOCK {
            let n = (&mut file)
                .take((UPLOAD_BLOCK - block.len()) as u64)
                .read_to_end(&mut block)
                .await?;
            if n == 0 {
                break;
            }
        }
        if block.is_empty() {
            break;
        }
        total += block.len() as u64;
        writer.write_chunk(block).await?;
    }
    writer.finish().await?;
    Ok(total)
}

fn measure(bench: &Bench, direction: Direction) -> anyhow::Result<Vec<Row>> {
    let bytes = bench.pick(GIB, 16 * MIB);
    let (workload, baseline_name) = match direction {
        Direction::Read => ("fs-read", "cat SRC > DST"),
        Direction::Write => ("fs-write", "cp SRC DST"),
    };
    let dir = std::env::temp_dir().join(format!("exec-server-bench-fs-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| {
        let source = dir.join("source.bin");
        let target = dir.join("target.bin");
        make_file(&source, bytes)?;
        let server = bench.ws_server(&ServerOptions::default())?;
        let client = bench.runtime.block_on(connect_ws(&server.url))?;
        let mut baseline = Vec::new();
        let mut ours = Vec::new();
        for _ in 0..bench.runs {
            let _ = std::fs::remove_file(&target);
            baseline.push(megabytes_per_second(
                bytes,
                local_baseline(direction, &source, &target)?,
            ));
            std::fs::remove_file(&target)?;
            let started = Instant::now();
            let moved = bench.runtime.block_on(async {
                match direction {
                    Direction::Read => download(&client, &source, &target).await,
                    Direction::Write => upload(&client, &source, &target).await,
                }
            })?;
            let elapsed = started.elapsed();
            if moved != bytes || std::fs::metadata(&target)?.len() != bytes {
                bail!("{workload}: moved {moved} bytes, expected {bytes}");
            }
            ours.push(megabytes_per_second(bytes, elapsed));
        }
        bench.runtime.block_on(async move { drop(client) });
        drop(server);
        let size = if bytes >= GIB {
            format!("{} GiB", bytes / GIB)
        } else {
            format!("{} MiB", bytes / MIB)
        };
        let what = match direction {
            Direction::Read => "server file to local file",
            Direction::Write => "local file to server file",
        };
        Ok(vec![
            Row::new(
                workload,
                format!("websocket, {size}, {what}"),
                Unit::MegabytesPerSecond,
                Summary::of(&ours),
            )
            .baseline(baseline_name, Summary::of(&baseline))
            .target(Target::RatioAtLeast(0.5)),
        ])
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
