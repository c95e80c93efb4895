//! The filesystem API handlers (`fs/*`, SPEC section 7) on top of
//! `exec-server-fs`.
//!
//! Every call runs on tokio's blocking pool (file systems block, and a slow
//! disk must not stall the runtime) but is awaited in place, so `fs/*`
//! requests on one connection take effect in the order they were sent: a
//! `fs/writeFile` followed by a `fs/readFile` reads what was written. A
//! long call (a large recursive copy) holds up the requests behind it on
//! the same connection, not other connections.
//!
//! A connection owns its open handles and its watcher ([`FsState`]); both
//! go when it ends: read handles close, unfinished atomic writes remove
//! their temp file (the target keeps its old content), and the inotify
//! instance closes with every watch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use exec_server_fs::{ErrorKind, FileSystem, FsError, ListOptions, ReadHandle, WriteHandle};
use exec_server_protocol::fs::{
    self, CanonicalizeResponse, ChangedNotification, CloseParams, CopyParams,
    CreateDirectoryParams, DirectoryEntry, FsErrorKind, Metadata, OpenParams, OpenResponse,
    PathParams, ReadBlockParams, ReadBlockResponse, ReadDirectoryParams, ReadDirectoryResponse,
    ReadFileParams, ReadFileResponse, RemoveParams, RenameParams, UnwatchParams, WatchParams,
    WatchResponse, WriteBlockParams, WriteFileParams,
};
use exec_server_protocol::process::EmptyResponse;
use exec_server_protocol::{ServerMessage, ServerNotification};
use tokio::sync::mpsc;

use crate::context::Context;
use crate::error::ApiError;

/// Longest client-chosen handle id, in bytes.
pub const MAX_HANDLE_ID_BYTES: usize = 256;
/// Changes buffered between the watcher and the connection's writer.
const CHANGE_CHANNEL_CAPACITY: usize = 256;

/// One connection's open files and watches.
#[derive(Default)]
pub(crate) struct FsState {
    file_system: Option<FileSystem>,
    handles: HashMap<String, Handle>,
    next_handle: u64,
    watcher: Option<Arc<exec_server_fs::Watcher>>,
    forwarder: Option<tokio::task::AbortHandle>,
}

impl Drop for FsState {
    fn drop(&mut self) {
        if let Some(forwarder) = self.forwarder.take() {
            forwarder.abort();
        }
    }
}

enum Handle {
    Read(Arc<ReadHandle>),
    /// `None` once finished or discarded.
    Write(Arc<Mutex<Option<WriteHandle>>>),
}

/// The wire name of a file system error's cause (`ApiError::Fs` maps it
/// to its code and `data`).
pub(crate) fn wire_kind(kind: ErrorKind) -> FsErrorKind {
    match kind {
        ErrorKind::NotFound => FsErrorKind::NotFound,
        ErrorKind::AlreadyExists => FsErrorKind::AlreadyExists,
        ErrorKind::PermissionDenied => FsErrorKind::PermissionDenied,
        ErrorKind::IsADirectory => FsErrorKind::IsADirectory,
        ErrorKind::NotADirectory => FsErrorKind::NotADirectory,
        ErrorKind::DirectoryNotEmpty => FsErrorKind::DirectoryNotEmpty,
        ErrorKind::TooLarge => FsErrorKind::TooLarge,
        ErrorKind::OutsideRoots => FsErrorKind::OutsideRoots,
        ErrorKind::ReadOnly => FsErrorKind::ReadOnly,
        ErrorKind::NotAFile => FsErrorKind::NotAFile,
        ErrorKind::SymlinkLoop => FsErrorKind::SymlinkLoop,
        ErrorKind::NameTooLong => FsErrorKind::NameTooLong,
        ErrorKind::InvalidPath => FsErrorKind::InvalidPath,
        ErrorKind::CrossesDevices => FsErrorKind::CrossesDevices,
        ErrorKind::NoSpace => FsErrorKind::NoSpace,
        ErrorKind::Busy => FsErrorKind::Busy,
        ErrorKind::Io => FsErrorKind::Io,
    }
}

/// Runs a file system call on the blocking pool.
async fn blocking<T, F>(call: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, FsError> + Send + 'static,
{
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|error| ApiError::Internal(format!("file system task failed: {error}")))?
        .map_err(ApiError::Fs)
}

fn bad_path(error: String) -> ApiError {
    ApiError::BadParams(error)
}

fn write_options(options: &fs::WriteOptions) -> exec_server_fs::WriteOptions {
    exec_server_fs::WriteOptions {
        append: options.append.unwrap_or(false),
        mode: options.mode,
        create_parents: options.create_parents.unwrap_or(false),
        atomic: options.atomic.unwrap_or(true),
        sync: options.sync.unwrap_or(false),
    }
}

fn metadata(m: exec_server_fs::Metadata) -> Metadata {
    Metadata {
        is_directory: m.is_directory,
        is_file: m.is_file,
        is_symlink: m.is_symlink,
        size: m.size,
        created_at_ms: m.created_at_ms,
        modified_at_ms: m.modified_at_ms,
        mode: m.mode,
    }
}

fn unknown_handle(id: &str) -> ApiError {
    ApiError::FsRequest(format!("unknown handle id {}", echo(id)))
}

/// A client-chosen id in a message, bounded.
fn echo(id: &str) -> String {
    crate::error::echo_bounded(id)
}

/// The file system under the server's policy, built on first use.
fn file_system(cx: &mut Context) -> Result<FileSystem, ApiError> {
    if let Some(fs) = &cx.fs.file_system {
        return Ok(fs.clone());
    }
    let fs = FileSystem::new(cx.config().fs_policy.clone())
        .map_err(|error| ApiError::Internal(format!("invalid file system policy: {error}")))?;
    cx.fs.file_system = Some(fs.clone());
    Ok(fs)
}

fn max_read_bytes(cx: &Context) -> u64 {
    cx.config().fs_limits.max_read_bytes
}

pub(crate) async fn read_file(
    cx: &mut Context,
    params: ReadFileParams,
) -> Result<ReadFileResponse, ApiError> {
    let path = params.path().map_err(bad_path)?;
    let max = max_read_bytes(cx);
    if let Some(length) = params.length
        && length > max
    {
        return Err(ApiError::InvalidParams(format!(
            "length {length} is more than the limit of {max} bytes per call (--fs-max-read-bytes)"
        )));
    }
    let fs = file_system(cx)?;
    let offset = params.offset.unwrap_or(0);
    let data = blocking(move || fs.read_file(&path, offset, params.length, max)).await?;
    Ok(ReadFileResponse {
        data_base64: Bytes::from(data),
    })
}

pub(crate) async fn write_file(
    cx: &mut Context,
    params: WriteFileParams,
) -> Result<EmptyResponse, ApiError> {
    let path = params.path().map_err(bad_path)?;
    let fs = file_system(cx)?;
    let options = write_options(&params.options);
    let data = params.data_base64;
    blocking(move || fs.write_file(&path, &data, &options)).await?;
    Ok(EmptyResponse {})
}

pub(crate) async fn open(cx: &mut Context, params: OpenParams) -> Result<OpenResponse, ApiError> {
    let path = params.path().map_err(bad_path)?;
    let limit = cx.config().fs_limits.max_handles;
    if cx.fs.handles.len() >= limit {
        return Err(ApiError::FsRequest(format!(
            "at most {limit} files may be open per connection (--fs-max-handles)"
        )));
    }
    let handle_id = match params.handle_id {
        Some(id) if id.is_empty() || id.len() > MAX_HANDLE_ID_BYTES => {
            return Err(ApiError::InvalidParams(format!(
                "handleId must be 1 to {MAX_HANDLE_ID_BYTES} bytes"
            )));
        }
        Some(id) if cx.fs.handles.contains_key(&id) => {
            return Err(ApiError::FsRequest(format!(
                "handle id {id} is already open"
            )));
        }
        Some(id) => id,
        None => loop {
            cx.fs.next_handle += 1;
            let id = format!("file-{}", cx.fs.next_handle);
            if !cx.fs.handles.contains_key(&id) {
                break id;
            }
        },
    };
    let fs = file_system(cx)?;
    let (handle, size) = if params.write.unwrap_or(false) {
        let options = write_options(&params.options);
        let handle = blocking(move || fs.open_write(&path, &options)).await?;
        (Handle::Write(Arc::new(Mutex::new(Some(handle)))), None)
    } else {
        if params.options != fs::WriteOptions::default() {
            return Err(ApiError::InvalidParams(
                "write options (append, mode, createParents, atomic, sync) need write: true".into(),
            ));
        }
        let handle = blocking(move || fs.open_read(&path)).await?;
        let size = handle.size();
        (Handle::Read(Arc::new(handle)), Some(size))
    };
    cx.fs.handles.insert(handle_id.clone(), handle);
    Ok(OpenResponse { handle_id, size })
}

pub(crate) async fn read_block(
    cx: &mut Context,
    params: ReadBlockParams,
) -> Result<ReadBlockResponse, ApiError> {
    let max = max_read_bytes(cx);
    let handle = match cx.fs.handles.get(&params.handle_id) {
        Some(Handle::Read(handle)) => handle.clone(),
        Some(Handle::Write(_)) => {
            return Err(ApiError::FsRequest(format!(
                "handle {} is open for writing",
                params.handle_id
            )));
        }
        None => return Err(unknown_handle(&params.handle_id)),
    };
    if params.len > max {
        return Err(ApiError::InvalidParams(format!(
            "len {} is more than the limit of {max} bytes per call (--fs-max-read-bytes)",
            params.len
        )));
    }
    let (data, eof) = blocking(move || handle.read_block(params.offset, params.len)).await?;
    Ok(ReadBlockResponse {
        chunk: Bytes::from(data),
        eof,
    })
}

fn write_handle(cx: &Context, id: &str) -> Result<Arc<Mutex<Option<WriteHandle>>>, ApiError> {
    match cx.fs.handles.get(id) {
        Some(Handle::Write(handle)) => Ok(handle.clone()),
        Some(Handle::Read(_)) => Err(ApiError::FsRequest(format!(
            "handle {id} is open for reading; open it with write: true"
        ))),
        None => Err(unknown_handle(id)),
    }
}

pub(crate) async fn write_block(
    cx: &mut Context,
    params: WriteBlockParams,
) -> Result<EmptyResponse, ApiError> {
    let handle = write_handle(cx, &params.handle_id)?;
    let id = params.handle_id;
    blocking(move || {
        let guard = handle.lock().expect("write handle poisoned");
        match guard.as_ref() {
            Some(handle) => handle.write_at(params.offset, &params.chunk),
            None => Err(FsError::new(
                ErrorKind::Io,
                format!("handle {id} is already closed"),
            )),
        }
    })
    .await?;
    Ok(EmptyResponse {})
}

pub(crate) async fn close(
    cx: &mut Context,
    params: CloseParams,
) -> Result<EmptyResponse, ApiError> {
    let handle = cx
        .fs
        .handles
        .remove(&params.handle_id)
        .ok_or_else(|| unknown_handle(&params.handle_id))?;
    if let Handle::Write(handle) = handle {
        let discard = params.discard.unwrap_or(false);
        blocking(move || {
            let taken = handle.lock().expect("write handle poisoned").take();
            match taken {
                Some(handle) if discard => {
                    handle.discard();
                    Ok(())
                }
                Some(handle) => handle.finish(),
                None => Ok(()),
            }
        })
        .await?;
    }
    Ok(EmptyResponse {})
}

pub(crate) async fn read_directory(
    cx: &mut Context,
    params: ReadDirectoryParams,
) -> Result<ReadDirectoryResponse, ApiError> {
    let path = params.path().map_err(bad_path)?;
    let limit = cx.config().fs_limits.max_entries;
    let options = ListOptions {
        recursive: params.recursive.unwrap_or(false),
        max_depth: params.max_depth.map(|d| d as usize),
        max_entries: params
            .max_entries
            .map_or(limit, |n| n.min(limit as u64) as usize),
    };
    let fs = file_system(cx)?;
    let listing = blocking(move || fs.list(&path, &options)).await?;
    let entries = listing
        .entries
        .into_iter()
        .map(|entry| {
            let (file_name, file_name_base64) = fs::path_to_wire(&entry.path);
            let m = entry.metadata;
            DirectoryEntry {
                file_name,
                file_name_base64,
                is_directory: m.is_directory,
                is_file: m.is_file,
                is_symlink: m.is_symlink,
                size: m.size,
                mode: m.mode,
                modified_at_ms: m.modified_at_ms,
            }
        })
        .collect();
    Ok(ReadDirectoryResponse {
        entries,
        truncated: listing.truncated,
    })
}

pub(crate) async fn get_metadata(
    cx: &mut Context,
    params: PathParams,
) -> Result<Metadata, ApiError> {
    let path = params.path().map_err(bad_path)?;
    let fs = file_system(cx)?;
    Ok(metadata(blocking(move || fs.metadata(&path)).await?))
}

pub(crate) async fn canonicalize(
    cx: &mut Context,
    params: PathParams,
) -> Result<CanonicalizeResponse, ApiError> {
    let path = params.path().map_err(bad_path)?;
    let fs = file_system(cx)?;
    let canonical = blocking(move || fs.canonicalize(&path)).await?;
    let (path, path_base64) = fs::path_to_wire(&canonical);
    Ok(CanonicalizeResponse { path, path_base64 })
}

pub(crate) async fn create_directory(
    cx: &mut Context,
    params: CreateDirectoryParams,
) -> Result<EmptyResponse, ApiError> {
    let path = params.path().map_err(bad_path)?;
    let fs = file_system(cx)?;
    let options = exec_server_fs::CreateDirOptions {
        recursive: params.recursive.unwrap_or(false),
        mode: params.mode,
    };
    blocking(move || fs.create_dir(&path, &options)).await?;
    Ok(EmptyResponse {})
}

pub(crate) async fn remove(
    cx: &mut Context,
    params: RemoveParams,
) -> Result<EmptyResponse, ApiError> {
    let path = params.path().map_err(bad_path)?;
    let fs = file_system(cx)?;
    let options = exec_server_fs::RemoveOptions {
        recursive: params.recursive.unwrap_or(false),
        force: params.force.unwrap_or(false),
    };
    blocking(move || fs.remove(&path, &options)).await?;
    Ok(EmptyResponse {})
}

pub(crate) async fn copy(cx: &mut Context, params: CopyParams) -> Result<EmptyResponse, ApiError> {
    let source = params.source().map_err(bad_path)?;
    let destination = params.destination().map_err(bad_path)?;
    let fs = file_system(cx)?;
    let recursive = params.recursive;
    blocking(move || fs.copy(&source, &destination, recursive)).await?;
    Ok(EmptyResponse {})
}

pub(crate) async fn rename(
    cx: &mut Context,
    params: RenameParams,
) -> Result<EmptyResponse, ApiError> {
    let source = params.source().map_err(bad_path)?;
    let destination = params.destination().map_err(bad_path)?;
    let fs = file_system(cx)?;
    blocking(move || fs.rename(&source, &destination)).await?;
    Ok(EmptyResponse {})
}

/// The connection's watcher, started on first use together with the
/// task that turns its changes into `fs/changed` notifications.
fn watcher(cx: &mut Context) -> Result<Arc<exec_server_fs::Watcher>, ApiError> {
    if let Some(watcher) = &cx.fs.watcher {
        return Ok(watcher.clone());
    }
    let limits = cx.config().fs_limits;
    let (changes_tx, mut changes) = mpsc::channel(CHANGE_CHANNEL_CAPACITY);
    let watcher = exec_server_fs::Watcher::new(
        file_system(cx)?,
        exec_server_fs::WatchOptions {
            max_watches: limits.max_watches,
            max_directories: limits.max_watch_directories,
        },
        changes_tx,
    )
    .map_err(ApiError::Fs)?;
    let out = cx.out().clone();
    let forwarder = tokio::spawn(async move {
        while let Some(change) = changes.recv().await {
            let notification = ServerNotification::FsChanged(changed(change));
            if out
                .send(ServerMessage::Notification(notification))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let watcher = Arc::new(watcher);
    cx.fs.watcher = Some(watcher.clone());
    cx.fs.forwarder = Some(forwarder.abort_handle());
    Ok(watcher)
}

pub(crate) async fn watch(
    cx: &mut Context,
    params: WatchParams,
) -> Result<WatchResponse, ApiError> {
    let path = params.path().map_err(bad_path)?;
    let limit = cx.config().fs_limits.max_watches;
    let watcher = watcher(cx)?;
    if watcher.len() >= limit {
        return Err(ApiError::FsRequest(format!(
            "at most {limit} watches may be open per connection (--fs-max-watches)"
        )));
    }
    let recursive = params.recursive.unwrap_or(false);
    let id = blocking(move || watcher.watch(&path, recursive)).await?;
    Ok(WatchResponse {
        watch_id: watch_id(id),
    })
}

pub(crate) async fn unwatch(
    cx: &mut Context,
    params: UnwatchParams,
) -> Result<EmptyResponse, ApiError> {
    let unknown = || ApiError::FsRequest(format!("unknown watch id {}", echo(&params.watch_id)));
    let id: u64 = params
        .watch_id
        .strip_prefix("watch-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(unknown)?;
    match &cx.fs.watcher {
        Some(watcher) if watcher.unwatch(id) => Ok(EmptyResponse {}),
        _ => Err(unknown()),
    }
}

fn watch_id(id: u64) -> String {
    format!("watch-{id}")
}

fn changed(change: exec_server_fs::Change) -> ChangedNotification {
    use exec_server_fs::ChangeKind as K;
    let (path, path_base64) = fs::path_to_wire(&change.path);
    let (old_path, old_path_base64) = match change.old_path.as_deref().map(fs::path_to_wire) {
        Some((text, bytes)) => (Some(text), bytes),
        None => (None, None),
    };
    ChangedNotification {
        watch_id: watch_id(change.watch_id),
        path,
        path_base64,
        kind: match change.kind {
            K::Created => fs::ChangeKind::Created,
            K::Modified => fs::ChangeKind::Modified,
            K::Metadata => fs::ChangeKind::Metadata,
            K::Deleted => fs::ChangeKind::Deleted,
            K::Renamed => fs::ChangeKind::Renamed,
            K::Overflow => fs::ChangeKind::Overflow,
        },
        old_path,
        old_path_base64,
    }
}
