//! `exec-server cp`: copy files and directory trees to and from the
//! server's machine, like `scp` and `kubectl cp`, through the `fs/*` API.
//!
//! A remote path starts with `:` (`:/srv/app/log.txt`); everything else is
//! local. One side is remote (both remote copies on the server with
//! `fs/copy`). Destinations follow `cp`: an existing directory receives the
//! sources by name, anything else is the new name of the single source.
//!
//! A copy first makes a plan (walking the source tree, so the total size
//! is known for the progress bar), then moves each file as a stream of
//! blocks ([`FsReader`]/[`FsWriter`]): remote files are replaced
//! atomically. Modes of files and directories are kept; directories get
//! theirs after their content, so a read-only directory can still be
//! filled. Symlinks are followed for files (like `scp`); symlinks to
//! directories, dangling ones and special files are skipped with a warning.
//!
//! Exit status 0 on success, 1 on any failure, with one line on stderr.

use std::ffi::OsString;
use std::io::{IsTerminal, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use exec_server_client::{ClientError, ExecServerClient, FsReader};
use exec_server_protocol::fs::{self as wire, CopyParams, CreateDirectoryParams, WriteOptions};
use exec_server_protocol::jsonrpc::RpcError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::remote::ServerChoice;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Remote paths start with `:` and are absolute (`:/srv/app`); other paths are
local. Without --connect the \"remote\" side is an embedded server on this
machine.

Exit status: 0 when everything was copied, 1 otherwise (one line on stderr).

Examples:
  exec-server cp --connect ws://10.0.0.5:8080 --token-file ~/.tok build/app :/srv/app
  exec-server cp --connect wss://box:8443 -r :/var/log/myapp ./logs")]
pub struct CpArgs {
    #[command(flatten)]
    server: ServerChoice,

    /// Copy directories and everything in them.
    #[arg(short = 'r', long)]
    recursive: bool,

    /// No progress bar.
    #[arg(short = 'q', long)]
    quiet: bool,

    /// SOURCE... DESTINATION.
    #[arg(required = true, num_args = 2.., value_name = "PATH")]
    paths: Vec<OsString>,
}

/// A path on one side.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Location {
    Local(PathBuf),
    Remote(PathBuf),
}

fn location(arg: &OsString) -> anyhow::Result<Location> {
    let bytes = arg.as_bytes();
    match bytes.strip_prefix(b":") {
        Some(rest) => {
            let path = PathBuf::from(std::ffi::OsStr::from_bytes(rest));
            if !path.is_absolute() {
                bail!(
                    "remote path `{}` must be absolute (e.g. :/srv/app)",
                    arg.to_string_lossy()
                );
            }
            Ok(Location::Remote(path))
        }
        None => Ok(Location::Local(PathBuf::from(arg))),
    }
}

pub fn main(args: CpArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("exec-server cp: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(copy(args));
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let text = format!("{error:#}").replace('\n', " ");
            eprintln!("exec-server cp: {text}");
            ExitCode::FAILURE
        }
    }
}

/// One thing to create at the destination, relative to the copied root.
#[derive(Debug)]
enum Item {
    Dir { rel: PathBuf, mode: u32 },
    File { rel: PathBuf, mode: u32 },
}

/// What one source turns into.
struct Plan {
    items: Vec<Item>,
    bytes: u64,
}

async fn copy(args: CpArgs) -> anyhow::Result<()> {
    let mut locations = args
        .paths
        .iter()
        .map(location)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let destination = locations.pop().expect("clap requires two paths");
    let sources = locations;
    let remote_involved = sources
        .iter()
        .chain([&destination])
        .any(|l| matches!(l, Location::Remote(_)));
    if !remote_involved {
        bail!("no remote path: mark the remote side with `:` (e.g. :/srv/app)");
    }
    let client = args.server.connect("exec-server cp").await?;
    let destination_is_dir = is_dir(&client, &destination).await?;
    if sources.len() > 1 && !destination_is_dir {
        bail!("target {} is not a directory", shown(&destination));
    }
    let mut progress = Progress::new(!args.quiet && std::io::stderr().is_terminal());
    let mut plans = Vec::new();
    for source in &sources {
        let target = if destination_is_dir {
            let name = path_of(source)
                .file_name()
                .with_context(|| format!("cannot copy {}: it has no name", shown(source)))?;
            join(&destination, Path::new(name))
        } else {
            destination.clone()
        };
        let plan = match source {
            Location::Local(path) => plan_local(path, args.recursive, &mut progress)?,
            Location::Remote(path) => {
                plan_remote(&client, path, args.recursive, &mut progress).await?
            }
        };
        progress.total += plan.bytes;
        plans.push((source, target, plan));
    }
    for (source, target, plan) in plans {
        match (source, &target) {
            (Location::Remote(from), Location::Remote(to)) => {
                let (source_path, source_path_base64) = wire::split(from);
                let (destination_path, destination_path_base64) = wire::split(to);
                client
                    .fs_copy(CopyParams {
                        source_path,
                        source_path_base64,
                        destination_path,
                        destination_path_base64,
                        recursive: args.recursive,
                    })
                    .await
                    .map_err(|e| remote_error(e, from))?;
                progress.add(plan.bytes);
            }
            (Location::Local(from), Location::Remote(to)) => {
                upload(&client, from, to, &plan, &mut progress).await?
            }
            (Location::Remote(from), Location::Local(to)) => {
                download(&client, from, to, &plan, &mut progress).await?
            }
            (Location::Local(_), Location::Local(_)) => {
                bail!("both {} and {} are local", shown(source), shown(&target))
            }
        }
    }
    progress.finish();
    Ok(())
}

fn path_of(location: &Location) -> &Path {
    match location {
        Location::Local(path) | Location::Remote(path) => path,
    }
}

fn join(location: &Location, name: &Path) -> Location {
    match location {
        Location::Local(path) => Location::Local(path.join(name)),
        Location::Remote(path) => Location::Remote(path.join(name)),
    }
}

fn shown(location: &Location) -> String {
    match location {
        Location::Local(path) => path.display().to_string(),
        Location::Remote(path) => format!(":{}", path.display()),
    }
}

/// The server's message for a failed remote call (it names the path).
fn remote_error(error: ClientError, path: &Path) -> anyhow::Error {
    match error {
        ClientError::Rpc(RpcError { message, .. }) => anyhow::anyhow!("remote {message}"),
        other => anyhow::Error::new(other).context(format!("remote {}", path.display())),
    }
}

fn is_not_found(error: &ClientError) -> bool {
    matches!(error, ClientError::Rpc(e) if e.code == wire::codes::NOT_FOUND)
}

async fn is_dir(client: &ExecServerClient, location: &Location) -> anyhow::Result<bool> {
    match location {
        Location::Local(path) => Ok(path.is_dir()),
        Location::Remote(path) => match client.fs_get_metadata(path).await {
            Ok(metadata) => Ok(metadata.is_directory),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(error) => Err(remote_error(error, path)),
        },
    }
}

fn warn(progress: &mut Progress, message: String) {
    progress.clear();
    eprintln!("exec-server cp: warning: {message}");
}

fn plan_local(root: &Path, recursive: bool, progress: &mut Progress) -> anyhow::Result<Plan> {
    // The source itself is followed if it is a symlink, like cp.
    let metadata =
        std::fs::metadata(root).with_context(|| format!("cannot read {}", root.display()))?;
    let mode = metadata.permissions().mode() & 0o7777;
    if metadata.is_file() {
        return Ok(Plan {
            bytes: metadata.len(),
            items: vec![Item::File {
                rel: PathBuf::new(),
                mode,
            }],
        });
    }
    if !metadata.is_dir() {
        bail!("{} is not a regular file or directory", root.display());
    }
    if !recursive {
        bail!("{} is a directory (use -r)", root.display());
    }
    let mut plan = Plan {
        items: vec![Item::Dir {
            rel: PathBuf::new(),
            mode,
        }],
        bytes: 0,
    };
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot list {}", dir.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let child = rel.join(entry.file_name());
            let path = root.join(&child);
            let Ok(metadata) = std::fs::metadata(&path) else {
                warn(
                    progress,
                    format!("skipping {}: dangling symlink", path.display()),
                );
                continue;
            };
            let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
            let mode = metadata.permissions().mode() & 0o7777;
            if metadata.is_file() {
                plan.bytes += metadata.len();
                plan.items.push(Item::File { rel: child, mode });
            } else if metadata.is_dir() && !is_link {
                plan.items.push(Item::Dir {
                    rel: child.clone(),
                    mode,
                });
                stack.push(child);
            } else {
                let what = if is_link {
                    "symlink to a directory"
                } else {
                    "not a regular file or directory"
                };
                warn(progress, format!("skipping {}: {what}", path.display()));
            }
        }
    }
    Ok(plan)
}

async fn plan_remote(
    client: &ExecServerClient,
    root: &Path,
    recursive: bool,
    progress: &mut Progress,
) -> anyhow::Result<Plan> {
    let metadata = client
        .fs_get_metadata(root)
        .await
        .map_err(|e| remote_error(e, root))?;
    if metadata.is_file {
        return Ok(Plan {
            bytes: metadata.size,
            items: vec![Item::File {
                rel: PathBuf::new(),
                mode: metadata.mode,
            }],
        });
    }
    if !metadata.is_directory {
        bail!(
            "remote {} is not a regular file or directory",
            root.display()
        );
    }
    if !recursive {
        bail!("remote {} is a directory (use -r)", root.display());
    }
    let mut plan = Plan {
        items: vec![Item::Dir {
            rel: PathBuf::new(),
            mode: metadata.mode,
        }],
        bytes: 0,
    };
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let (path, path_base64) = wire::split(&dir);
        let listing = client
            .fs_read_directory(wire::ReadDirectoryParams {
                path,
                path_base64,
                ..Default::default()
            })
            .await
            .map_err(|e| remote_error(e, &dir))?;
        if listing.truncated {
            bail!(
                "remote {} has more entries than one listing may return (--fs-max-entries on the server)",
                dir.display()
            );
        }
        for entry in listing.entries {
            let name = wire::lossless(&entry.file_name, entry.file_name_base64.as_ref());
            let child = rel.join(name);
            if entry.is_file {
                plan.bytes += entry.size;
                plan.items.push(Item::File {
                    rel: child,
                    mode: entry.mode,
                });
            } else if entry.is_directory && !entry.is_symlink {
                plan.items.push(Item::Dir {
                    rel: child.clone(),
                    mode: entry.mode,
                });
                stack.push(child);
            } else {
                let what = match (entry.is_symlink, entry.is_directory) {
                    (true, true) => "symlink to a directory",
                    (true, false) => "dangling symlink or one leading outside the allowed roots",
                    _ => "not a regular file or directory",
                };
                warn(
                    progress,
                    format!("skipping remote {}: {what}", root.join(&child).display()),
                );
            }
        }
    }
    Ok(plan)
}

/// `rel` below `root`; the empty `rel` is `root` itself.
fn below(root: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

/// Bytes read from a local file per `fs/writeBlock` (the client cuts them
/// smaller if the server's message limit demands).
const UPLOAD_BLOCK: usize = 4 * 1024 * 1024;

async fn upload(
    client: &ExecServerClient,
    from: &Path,
    to: &Path,
    plan: &Plan,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    for item in &plan.items {
        match item {
            Item::Dir { rel, .. } => {
                let dir = below(to, rel);
                let (path, path_base64) = wire::split(&dir);
                client
                    .fs_create_directory(CreateDirectoryParams {
                        path,
                        path_base64,
                        recursive: Some(true),
                        mode: None,
                    })
                    .await
                    .map_err(|e| remote_error(e, &dir))?;
            }
            Item::File { rel, mode, .. } => {
                let local = below(from, rel);
                let remote = below(to, rel);
                let mut file = tokio::fs::File::open(&local)
                    .await
                    .with_context(|| format!("cannot read {}", local.display()))?;
                let options = WriteOptions {
                    mode: Some(*mode),
                    ..Default::default()
                };
                let mut writer = client
                    .create_writer(&remote, options)
                    .await
                    .map_err(|e| remote_error(e, &remote))?;
                loop {
                    // Whole blocks: each becomes one `fs/writeBlock`.
                    let mut block = Vec::with_capacity(UPLOAD_BLOCK);
                    while block.len() < UPLOAD_BLOCK {
                        let n = (&mut file)
                            .take((UPLOAD_BLOCK - block.len()) as u64)
                            .read_to_end(&mut block)
                            .await
                            .with_context(|| format!("cannot read {}", local.display()))?;
                        if n == 0 {
                            break;
                        }
                    }
                    if block.is_empty() {
                        break;
                    }
                    let n = block.len();
                    writer
                        .write_chunk(block)
                        .await
                        .map_err(|e| remote_error(e, &remote))?;
                    progress.add(n as u64);
                }
                writer
                    .finish()
                    .await
                    .map_err(|e| remote_error(e, &remote))?;
            }
        }
    }
    // Directory modes last, deepest first: a read-only directory is only
    // closed once everything is in it.
    for item in plan.items.iter().rev() {
        if let Item::Dir { rel, mode } = item {
            let dir = below(to, rel);
            let (path, path_base64) = wire::split(&dir);
            client
                .fs_create_directory(CreateDirectoryParams {
                    path,
                    path_base64,
                    recursive: Some(true),
                    mode: Some(*mode),
                })
                .await
                .map_err(|e| remote_error(e, &dir))?;
        }
    }
    Ok(())
}

async fn download(
    client: &ExecServerClient,
    from: &Path,
    to: &Path,
    plan: &Plan,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    for item in &plan.items {
        match item {
            Item::Dir { rel, .. } => {
                let dir = below(to, rel);
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            Item::File { rel, mode, .. } => {
                let remote = below(from, rel);
                let local = below(to, rel);
                let mut reader = client
                    .open_reader(&remote)
                    .await
                    .map_err(|e| remote_error(e, &remote))?;
                let mut file = tokio::fs::File::create(&local)
                    .await
                    .with_context(|| format!("cannot create {}", local.display()))?;
                receive(&mut reader, &mut file, &remote, &local, progress).await?;
                file.flush().await?;
                reader.close().await.map_err(|e| remote_error(e, &remote))?;
                std::fs::set_permissions(&local, std::fs::Permissions::from_mode(*mode))
                    .with_context(|| format!("cannot set the mode of {}", local.display()))?;
            }
        }
    }
    for item in plan.items.iter().rev() {
        if let Item::Dir { rel, mode } = item {
            let dir = below(to, rel);
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(*mode))
                .with_context(|| format!("cannot set the mode of {}", dir.display()))?;
        }
    }
    Ok(())
}

async fn receive(
    reader: &mut FsReader,
    file: &mut tokio::fs::File,
    remote: &Path,
    local: &Path,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    while let Some(chunk) = reader
        .next_chunk()
        .await
        .map_err(|e| remote_error(e, remote))?
    {
        file.write_all(&chunk)
            .await
            .with_context(|| format!("cannot write {}", local.display()))?;
        progress.add(chunk.len() as u64);
    }
    Ok(())
}

/// A one-line progress bar on stderr, drawn only on a terminal and only
/// once a copy has run for a moment (small copies stay silent).
struct Progress {
    enabled: bool,
    total: u64,
    done: u64,
    started: Instant,
    drawn: Option<Instant>,
}

/// Copies shorter than this never show a bar.
const QUIET_START: Duration = Duration::from_millis(300);
const REDRAW: Duration = Duration::from_millis(100);

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            total: 0,
            done: 0,
            started: Instant::now(),
            drawn: None,
        }
    }

    fn add(&mut self, bytes: u64) {
        self.done += bytes;
        if !self.enabled || self.started.elapsed() < QUIET_START {
            return;
        }
        if self.drawn.is_some_and(|at| at.elapsed() < REDRAW) {
            return;
        }
        self.draw();
    }

    fn draw(&mut self) {
        let fraction = if self.total == 0 {
            1.0
        } else {
            (self.done as f64 / self.total as f64).min(1.0)
        };
        let width = 30;
        let filled = (fraction * width as f64) as usize;
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let line = format!(
            "\r[{}{}] {:>3}% {} / {}  {}/s ",
            "#".repeat(filled),
            ".".repeat(width - filled),
            (fraction * 100.0) as u32,
            human(self.done),
            human(self.total),
            human((self.done as f64 / seconds) as u64),
        );
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(line.as_bytes());
        let _ = stderr.flush();
        self.drawn = Some(Instant::now());
    }

    /// Wipes the bar (before a warning line).
    fn clear(&mut self) {
        if self.drawn.is_some() {
            eprint!("\r{}\r", " ".repeat(72));
        }
    }

    fn finish(&mut self) {
        if self.drawn.is_some() {
            self.draw();
            eprintln!();
        }
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_start_with_a_colon_and_are_absolute() {
        assert_eq!(
            location(&OsString::from(":/srv/x")).unwrap(),
            Location::Remote(PathBuf::from("/srv/x"))
        );
        assert_eq!(
            location(&OsString::from("./:x")).unwrap(),
            Location::Local(PathBuf::from("./:x"))
        );
        let error = location(&OsString::from(":relative")).unwrap_err();
        assert!(error.to_string().contains("must be absolute"), "{error}");
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
