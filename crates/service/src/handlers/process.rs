//! The process API (`process/*`, SPEC section 3): one handler per method,
//! then the waiting and reading they share with nothing else.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use exec_server_core::{
    OutputStream, ProcessConfig, ProcessHandle, StdinMode, StdioMode, TerminalSize, signal_number,
};
use exec_server_protocol::process::{
    EmptyResponse, ListParams, ListResponse, OutputChunk, ProcessIdParams, ProcessInfo, ReadParams,
    ReadResponse, ResizeParams, SignalParams, SignalResponse, SnapshotResponse, StartParams,
    StartResponse, StdinKind, TerminateParams, TerminateResponse, WaitParams, WaitReason,
    WaitResponse, WriteParams, WriteResponse,
};
use tokio::time::Instant;

use exec_server_protocol::process::TerminalSize as WireSize;

use crate::config::STDIN_FULL_WAIT;
use crate::context::Context;
use crate::error::ApiError;
use crate::forwarder::wire_stream;
use crate::limits::{check_labels, check_process_id, check_terminal_size, check_write_id};
use crate::pattern::{MATCH_WINDOW_BYTES, Pattern};
use crate::router::Reply;
use crate::session::{ProcessEntry, ProcessKind, ProcessMeta};

/// `process/read` without `maxBytes`.
const DEFAULT_READ_BYTES: u64 = 1024 * 1024;

/// The signals a client may send with `process/signal`.
const ALLOWED_SIGNALS: &[&str] = &[
    "SIGINT", "SIGTERM", "SIGKILL", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2",
];

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A `process/*` process of this session (v0 sessions read as unknown).
fn process(cx: &Context, id: &str) -> Result<Arc<ProcessEntry>, ApiError> {
    cx.session()?
        .get(id)
        .filter(|entry| matches!(entry.kind, ProcessKind::Api { .. }))
        .ok_or_else(|| ApiError::UnknownProcess(id.to_string()))
}

pub(crate) async fn start(
    cx: &mut Context,
    mut params: StartParams,
) -> Result<StartResponse, ApiError> {
    let sandbox = crate::sandbox::for_process(cx.config(), params.sandbox.take(), &params.cwd)?;
    if params.argv.is_empty() {
        return Err(ApiError::InvalidParams("argv must not be empty".into()));
    }
    // Bounds first: what the client sent, before what the server holds.
    if let Some(id) = &params.process_id {
        check_process_id(id)?;
    }
    check_labels(params.labels.iter()).map_err(ApiError::InvalidParams)?;
    if let (true, Some(size)) = (params.tty, &params.size) {
        let size = TerminalSize {
            rows: size.rows,
            cols: size.cols,
        };
        check_terminal_size(size, cx.config().max_terminal_size)?;
    }
    let session = cx.session()?;
    let process_id = match params.process_id {
        Some(id) if session.get(&id).is_some() => return Err(ApiError::ProcessExists(id)),
        Some(id) => id,
        None => session.next_process_id(),
    };
    cx.check_process_limit()?;
    let stdio = match (params.tty, params.size, params.stdin) {
        (true, size, _) => {
            // Checked against the maximum above.
            let size = size.map_or_else(TerminalSize::default, |size| TerminalSize {
                rows: size.rows,
                cols: size.cols,
            });
            StdioMode::Terminal { size }
        }
        (false, Some(_), _) => {
            return Err(ApiError::InvalidParams("size needs tty: true".into()));
        }
        (false, None, stdin) => StdioMode::Pipes {
            stdin: match stdin.unwrap_or_default() {
                StdinKind::Closed => StdinMode::Null,
                StdinKind::Pipe => StdinMode::Pipe,
            },
        },
    };
    let env: Vec<(String, String)> = if params.inherit_env {
        let mut env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
        env.extend(params.env);
        env.into_iter().collect()
    } else {
        params.env.into_iter().collect()
    };
    let config = ProcessConfig {
        argv: params.argv.clone(),
        arg0: params.arg0,
        cwd: PathBuf::from(params.cwd),
        env,
        stdio,
        retained_bytes: cx.config().retained_output_bytes,
        timeout: params.timeout_ms.map(millis),
        sandbox,
        stdin_queue_bytes: cx.config().stdin_queue_bytes,
        screen_budget: Some(cx.server().screen_budget().clone()),
    };
    let max_ttl = cx.config().detach_ttl;
    let detach_ttl = params
        .detach_ttl_ms
        .map(millis)
        .unwrap_or(max_ttl)
        .min(max_ttl);
    let slot = cx.process_slot()?;
    let process = cx.spawn(config).await?;
    slot.release_on_exit(process.handle.clone());
    let pid = process.handle.pid();
    let applied = process.handle.sandbox().map(crate::sandbox::applied);
    let kind = ProcessKind::Api {
        stream_output: params.stream_output.unwrap_or(true),
    };
    let meta = ProcessMeta {
        argv: params.argv,
        tty: params.tty,
        labels: params.labels,
        on_disconnect: params.on_disconnect.unwrap_or_default(),
        detach_ttl,
    };
    let entry = Arc::new(ProcessEntry::new(
        process_id.clone(),
        process.handle,
        kind,
        meta,
    ));
    cx.start_forwarding(entry, process.events)?;
    Ok(StartResponse {
        process_id,
        pid,
        sandbox: applied,
    })
}

pub(crate) async fn write(
    cx: &mut Context,
    params: WriteParams,
) -> Result<WriteResponse, ApiError> {
    let entry = process(cx, &params.process_id)?;
    write_to(&entry, params).await
}

/// `process/write` once the process is found (also `observe/write`): a
/// `writeId` it already accepted is acknowledged without writing twice.
pub(crate) async fn write_to(
    entry: &ProcessEntry,
    params: WriteParams,
) -> Result<WriteResponse, ApiError> {
    if let Some(write_id) = &params.write_id {
        check_write_id(write_id).map_err(ApiError::InvalidParams)?;
    }
    if let Some(write_id) = &params.write_id
        && entry.seen_write(write_id)
    {
        return Ok(WriteResponse { accepted: true });
    }
    write_stdin(entry, params.chunk).await?;
    if let Some(write_id) = params.write_id {
        entry.remember_write(write_id);
    }
    Ok(WriteResponse { accepted: true })
}

pub(crate) async fn close_stdin(
    cx: &mut Context,
    params: ProcessIdParams,
) -> Result<EmptyResponse, ApiError> {
    let entry = process(cx, &params.process_id)?;
    if !entry.running() {
        return Err(ApiError::StdinClosed(entry.id.clone()));
    }
    match tokio::time::timeout(STDIN_FULL_WAIT, entry.handle.close_stdin()).await {
        Ok(result) => result.map_err(|_| ApiError::StdinClosed(entry.id.clone()))?,
        Err(_) => return Err(stdin_full("process", &entry.id, &entry.handle)),
    }
    Ok(EmptyResponse {})
}

pub(crate) async fn resize(
    cx: &mut Context,
    params: ResizeParams,
) -> Result<EmptyResponse, ApiError> {
    let entry = process(cx, &params.process_id)?;
    resize_of(&entry, params, cx.config().max_terminal_size)
}

/// `process/resize` once the process is found (also `observe/resize`),
/// within the server's `max` terminal size.
pub(crate) fn resize_of(
    entry: &ProcessEntry,
    params: ResizeParams,
    max: TerminalSize,
) -> Result<EmptyResponse, ApiError> {
    if !entry.handle.has_terminal() {
        return Err(ApiError::NoTerminal(entry.id.clone()));
    }
    let size = TerminalSize {
        rows: params.rows,
        cols: params.cols,
    };
    check_terminal_size(size, max)?;
    entry
        .handle
        .resize(size)
        .map_err(|error| ApiError::os(format!("resizing process {}", entry.id), error))?;
    Ok(EmptyResponse {})
}

pub(crate) async fn signal(
    cx: &mut Context,
    params: SignalParams,
) -> Result<SignalResponse, ApiError> {
    let entry = process(cx, &params.process_id)?;
    signal_to(&entry, params)
}

/// `process/signal` once the process is found (also `observe/signal`).
pub(crate) fn signal_to(
    entry: &ProcessEntry,
    params: SignalParams,
) -> Result<SignalResponse, ApiError> {
    let signal = ALLOWED_SIGNALS
        .contains(&params.signal.as_str())
        .then(|| signal_number(&params.signal))
        .flatten()
        .ok_or_else(|| ApiError::UnsupportedSignal {
            signal: params.signal.clone(),
            expected: ALLOWED_SIGNALS.join(", "),
        })?;
    let delivered = entry
        .handle
        .signal_group(signal)
        .map_err(|error| ApiError::os(format!("signalling process {}", entry.id), error))?;
    Ok(SignalResponse { delivered })
}

pub(crate) async fn terminate(
    cx: &mut Context,
    params: TerminateParams,
) -> Result<TerminateResponse, ApiError> {
    let entry = process(cx, &params.process_id)?;
    let running = entry
        .handle
        .terminate(params.grace_ms.map(millis))
        .map_err(|error| ApiError::os(format!("terminating process {}", entry.id), error))?;
    Ok(TerminateResponse { running })
}

/// Validates in order, then waits in a task of its own.
pub(crate) async fn wait(cx: &mut Context, params: WaitParams) -> Reply<WaitResponse> {
    let entry = match process(cx, &params.process_id) {
        Ok(entry) => entry,
        Err(error) => return Reply::Now(Err(error)),
    };
    let pattern = params
        .pattern
        .as_deref()
        .map(|pattern| cx.patterns().compile(pattern))
        .transpose();
    let pattern = match pattern {
        Ok(pattern) => pattern,
        Err(error) => return Reply::Now(Err(error.into())),
    };
    let max_wait = cx.config().max_wait;
    let timeout = params
        .timeout_ms
        .map(millis)
        .unwrap_or(max_wait)
        .min(max_wait);
    let quiet = params.quiet_ms.map(millis);
    Reply::later(async move { Ok(wait_for(entry, timeout, quiet, pattern).await) })
}

/// Answers at once when there is something to read (or no wait was asked
/// for); otherwise long-polls in a task of its own.
pub(crate) async fn read(cx: &mut Context, params: ReadParams) -> Reply<ReadResponse> {
    match process(cx, &params.process_id) {
        Ok(entry) => read_from(entry, params, cx.config().max_wait),
        Err(error) => Reply::Now(Err(error)),
    }
}

/// `process/read` once the process is found (also `observe/read`); a long
/// poll waits at most `max_wait`.
pub(crate) fn read_from(
    entry: Arc<ProcessEntry>,
    params: ReadParams,
    max_wait: Duration,
) -> Reply<ReadResponse> {
    let max_bytes = params
        .max_bytes
        .unwrap_or(DEFAULT_READ_BYTES)
        .min(usize::MAX as u64) as usize;
    let wait_at_most = params.wait_ms.map(millis).unwrap_or_default().min(max_wait);
    let latest = *entry.handle.subscribe_progress().borrow();
    if wait_at_most.is_zero() || latest > params.after_seq || entry.is_closed() {
        return Reply::Now(Ok(read_retained(&entry, params.after_seq, max_bytes)));
    }
    Reply::later(async move {
        let mut progress = entry.handle.subscribe_progress();
        let _ = tokio::time::timeout(
            wait_at_most,
            progress.wait_for(|&seq| seq > params.after_seq),
        )
        .await;
        Ok(read_retained(&entry, params.after_seq, max_bytes))
    })
}

pub(crate) async fn snapshot(
    cx: &mut Context,
    params: ProcessIdParams,
) -> Result<SnapshotResponse, ApiError> {
    Ok(snapshot_of(process(cx, &params.process_id)?.as_ref()))
}

/// `process/snapshot` once the process is found (also `observe/snapshot`).
/// Retained output, screen and `seq` are taken under one lock, so they
/// agree: the screen shows exactly the output up to `seq`, and
/// `process/read {afterSeq: seq}` goes on from there.
pub(crate) fn snapshot_of(entry: &ProcessEntry) -> SnapshotResponse {
    let status = entry.handle.exit_status();
    entry.handle.screen_and_retained(|screen, retained| {
        let contents = |stream| Bytes::from(retained.stream(stream).contents());
        let (stdout, stderr, terminal) = if entry.meta.tty {
            (None, None, Some(contents(OutputStream::Pty)))
        } else {
            (
                Some(contents(OutputStream::Stdout)),
                Some(contents(OutputStream::Stderr)),
                None,
            )
        };
        SnapshotResponse {
            stdout,
            stderr,
            terminal,
            truncated: retained.truncated(),
            exit_code: status.map(|s| s.code_or_signal()),
            running: status.is_none(),
            seq: retained.last_seq(),
            size: screen.as_ref().map(|screen| WireSize {
                rows: screen.size.rows,
                cols: screen.size.cols,
            }),
            screen_ansi: screen
                .as_ref()
                .map(|screen| Bytes::from(screen.formatted.clone())),
            screen_approximate: screen.as_ref().map(|screen| screen.approximate),
            screen: screen.map(|screen| screen.lines),
        }
    })
}

pub(crate) async fn list(cx: &mut Context, params: ListParams) -> Result<ListResponse, ApiError> {
    let session = cx.session()?;
    let state = session.lock();
    let mut processes: Vec<ProcessInfo> = state
        .processes
        .values()
        .filter(|entry| has_labels(entry, params.labels.as_ref()))
        .map(|entry| process_info(entry))
        .collect();
    processes.sort_by(|a, b| a.process_id.cmp(&b.process_id));
    Ok(ListResponse { processes })
}

/// One process's status: cheaper than a snapshot, narrower than a list.
pub(crate) async fn status(
    cx: &mut Context,
    params: ProcessIdParams,
) -> Result<ProcessInfo, ApiError> {
    let entry = process(cx, &params.process_id)?;
    Ok(process_info(&entry))
}

/// Whether a process carries every label of a `labels` filter.
pub(crate) fn has_labels(
    entry: &ProcessEntry,
    wanted: Option<&std::collections::BTreeMap<String, String>>,
) -> bool {
    wanted.is_none_or(|wanted| {
        wanted
            .iter()
            .all(|(k, v)| entry.meta.labels.get(k) == Some(v))
    })
}

/// What `process/list` says about one process.
pub(crate) fn process_info(entry: &ProcessEntry) -> ProcessInfo {
    ProcessInfo {
        process_id: entry.id.clone(),
        pid: entry.handle.pid(),
        argv: entry.meta.argv.clone(),
        tty: entry.meta.tty,
        labels: entry.meta.labels.clone(),
        running: entry.running(),
        exit_code: entry.handle.exit_status().map(|s| s.code_or_signal()),
    }
}

pub(crate) async fn release(
    cx: &mut Context,
    params: ProcessIdParams,
) -> Result<EmptyResponse, ApiError> {
    let entry = process(cx, &params.process_id)?;
    if entry.running() {
        return Err(ApiError::StillRunning(entry.id.clone()));
    }
    cx.session()?.release(&entry.id);
    Ok(EmptyResponse {})
}

async fn write_stdin(entry: &ProcessEntry, chunk: Bytes) -> Result<(), ApiError> {
    if !entry.running() {
        return Err(ApiError::StdinClosed(entry.id.clone()));
    }
    match tokio::time::timeout(STDIN_FULL_WAIT, entry.handle.write_stdin(chunk)).await {
        Ok(result) => result.map_err(|_| ApiError::StdinClosed(entry.id.clone())),
        Err(_) => Err(stdin_full("process", &entry.id, &entry.handle)),
    }
}

/// A request that found `handle`'s stdin queue full for [`STDIN_FULL_WAIT`].
pub(crate) fn stdin_full(what: &'static str, id: &str, handle: &ProcessHandle) -> ApiError {
    let (queued, capacity) = handle.stdin_queue();
    ApiError::StdinFull {
        what,
        id: id.to_string(),
        queued,
        capacity,
    }
}

fn wait_response(handle: &ProcessHandle, reason: WaitReason) -> WaitResponse {
    let status = handle.exit_status();
    WaitResponse {
        reason,
        exited: status.is_some(),
        exit_code: status.map(|s| s.code_or_signal()),
        signal: status.and_then(|s| s.signal_name()).map(str::to_string),
        timed_out: status.is_some_and(|s| s.timed_out),
    }
}

/// Waits for the first of: exit, output matching `pattern`, `quiet`
/// without new output, `timeout`.
///
/// `pattern` is matched against output that no earlier wait on this process
/// examined: for the first wait, everything since the start (so a line that
/// arrived before the wait call is not missed); after that, what came after
/// the previous wait returned. A match spanning chunks is found as long as
/// it fits in [`MATCH_WINDOW_BYTES`].
async fn wait_for(
    entry: Arc<ProcessEntry>,
    timeout: Duration,
    quiet: Option<Duration>,
    mut pattern: Option<Pattern>,
) -> WaitResponse {
    let handle = &entry.handle;
    let deadline = Instant::now() + timeout;
    let mut progress = handle.subscribe_progress();
    let mut cursor = entry.wait_cursor.load(Ordering::SeqCst);
    let mut window: Vec<u8> = Vec::new();
    let mut quiet_deadline = quiet.map(|q| Instant::now() + q);
    let mut first_pass = true;
    let reason = loop {
        let latest = *progress.borrow_and_update();
        let read = handle.read_after(cursor, usize::MAX);
        if let Some(pattern) = &mut pattern {
            let mut matched = None;
            for chunk in &read.chunks {
                window.extend_from_slice(&chunk.data);
                if pattern.is_match(&window) {
                    matched = Some(chunk.seq);
                    break;
                }
                if window.len() > MATCH_WINDOW_BYTES {
                    window.drain(..window.len() - MATCH_WINDOW_BYTES);
                }
            }
            if let Some(seq) = matched {
                cursor = seq;
                break WaitReason::Matched;
            }
        }
        if !first_pass && (!read.chunks.is_empty() || read.dropped_bytes > 0) {
            quiet_deadline = quiet.map(|q| Instant::now() + q);
        }
        first_pass = false;
        cursor = cursor
            .max(latest)
            .max(read.chunks.last().map_or(0, |c| c.seq));
        if handle.exit_status().is_some() {
            break WaitReason::Exited;
        }
        tokio::select! {
            changed = progress.changed() => {
                if changed.is_err() {
                    break WaitReason::Exited;
                }
            }
            _ = sleep_until_opt(quiet_deadline) => break WaitReason::Quiet,
            _ = tokio::time::sleep_until(deadline) => break WaitReason::Timeout,
        }
    };
    entry.wait_cursor.fetch_max(cursor, Ordering::SeqCst);
    wait_response(handle, reason)
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn read_retained(entry: &ProcessEntry, after_seq: u64, max_bytes: usize) -> ReadResponse {
    let handle = &entry.handle;
    // Read the progress before retention: everything up to it is either in
    // this answer or counted as dropped.
    let latest = *handle.subscribe_progress().borrow();
    let status = handle.exit_status();
    let closed = entry.is_closed();
    let read = handle.read_after(after_seq, max_bytes);
    let last_chunk = read.chunks.last().map_or(0, |c| c.seq);
    // Complete: every chunk after `after_seq` is in this answer, so it
    // covers everything up to the progress read above (the exit included).
    let next_seq = if read.complete {
        after_seq.max(latest).max(last_chunk)
    } else {
        last_chunk
    };
    ReadResponse {
        chunks: read
            .chunks
            .into_iter()
            .map(|c| OutputChunk {
                seq: c.seq,
                stream: wire_stream(c.stream),
                chunk: c.data,
            })
            .collect(),
        next_seq,
        dropped_bytes: read.dropped_bytes,
        exited: status.is_some(),
        exit_code: status.map(|s| s.code_or_signal()),
        closed,
        complete: read.complete,
    }
}
