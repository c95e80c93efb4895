//! The real `exec-server` binary: finding (and building) it, and running it
//! as a websocket listener on a loopback port.
//!
//! A binary crate cannot depend on another binary, so the bench looks for
//! `exec-server` next to its own executable (`target/release/` under
//! `cargo run --release`) and, unless told otherwise, first runs
//! `cargo build -p exec-server` with the same profile so that the server
//! measured is the one in the working tree.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::raw::{self, Memory};

/// How the server binary is found.
pub struct BinaryOptions {
    /// Use this binary as is.
    pub explicit: Option<PathBuf>,
    /// Build `exec-server` with cargo before looking for it.
    pub build: bool,
}

/// Finds the `exec-server` binary, building it first when asked.
pub fn locate_binary(options: &BinaryOptions) -> anyhow::Result<PathBuf> {
    if let Some(path) = &options.explicit {
        if !path.is_file() {
            bail!("--server {}: no such file", path.display());
        }
        return Ok(path.clone());
    }
    let exe = std::env::current_exe().context("finding the bench's own executable")?;
    let dir = exe
        .parent()
        .context("the bench executable has no directory")?
        .to_path_buf();
    if options.build {
        build(&dir)?;
    }
    let path = dir.join("exec-server");
    if !path.is_file() {
        bail!(
            "{} does not exist: build it with `cargo build --release -p exec-server` \
             (or pass --server PATH)",
            path.display()
        );
    }
    Ok(path)
}

/// Runs `cargo build -p exec-server` for the profile whose output
/// directory is `dir` (`release`, `debug`, or a custom profile's name).
fn build(dir: &Path) -> anyhow::Result<()> {
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(name) => name.to_string(),
        None => bail!("cannot tell the cargo profile of {}", dir.display()),
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    eprintln!("building exec-server (cargo build --profile {profile} -p exec-server)");
    let status = Command::new(&cargo)
        .args([
            "build",
            "--quiet",
            "--profile",
            &profile,
            "-p",
            "exec-server",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .status()
        .with_context(|| {
            format!(
                "running {} to build exec-server; pass --no-build or --server PATH to skip",
                Path::new(&cargo).display()
            )
        })?;
    if !status.success() {
        bail!("building exec-server failed ({status})");
    }
    Ok(())
}

/// Settings of one server child.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Run every thread of the server (and so its children) on CPU 0.
    pub pin_cpu0: bool,
    /// Extra flags, e.g. `--retained-output-bytes N`.
    pub args: Vec<String>,
}

/// An `exec-server --listen ws://127.0.0.1:0` child, killed on drop.
pub struct WsServer {
    child: Child,
    pub url: String,
}

impl WsServer {
    pub fn start(binary: &Path, options: &ServerOptions) -> anyhow::Result<WsServer> {
        let mut command = Command::new(binary);
        command
            .args(["--listen", "ws://127.0.0.1:0"])
            .args(&options.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if options.pin_cpu0 {
            // SAFETY: sched_setaffinity is async-signal-safe; the mask is
            // inherited by every thread the server creates afterwards.
            unsafe {
                command.pre_exec(|| raw::pin_current_thread(0));
            }
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stderr = child.stderr.take().expect("stderr was piped");
        let (url_tx, url_rx) = mpsc::channel();
        // Reads the listening line, then passes the server's logs through.
        std::thread::spawn(move || {
            let mut url_tx = Some(url_tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(tx) = url_tx.take_if(|_| line.contains("listening on")) {
                    let url = line
                        .split_whitespace()
                        .find(|token| token.starts_with("ws://"))
                        .map(str::to_string);
                    let _ = tx.send(url);
                } else {
                    eprintln!("[exec-server] {line}");
                }
            }
        });
        let url = match url_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Some(url)) => url,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not report its websocket URL", binary.display());
            }
        };
        Ok(WsServer { child, url })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn memory(&self) -> anyhow::Result<Memory> {
        raw::memory(self.pid())
    }
}

impl Drop for WsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
