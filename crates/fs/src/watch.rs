//! Watching for changes with inotify (through rustix, which the server
//! already uses: no new dependency).
//!
//! One [`Watcher`] per connection owns one inotify instance and a task that
//! turns its events into [`Change`]s, in the kernel's order, on a bounded
//! channel. Backpressure is the design: when the receiver is slow the task
//! waits, the kernel queue fills, and the kernel reports an overflow, which
//! becomes one [`ChangeKind::Overflow`] per watch; memory stays bounded and
//! a loss is never silent.
//!
//! - Every directory is added through `/proc/self/fd/N` of a directory fd
//!   resolved beneath the policy roots, so a symlink swapped in cannot make
//!   us watch something outside them.
//! - A recursive watch adds every subdirectory (each counts against the
//!   directory limit) and follows the tree as it changes: directories
//!   created or moved in are added and scanned (their entries are reported
//!   as created, so an entry made before its directory was watched is not
//!   missed; an entry may then be reported twice), directories moved out
//!   are dropped, directories renamed inside keep their watches.
//! - A rename inside the watched tree is one `renamed` change with the old
//!   path; from outside in it is `created`, from inside out `deleted`.
//! - Consecutive `modified` changes of one path within one batch are
//!   reported once.
//! - Dropping the watcher stops its task and closes the inotify instance,
//!   which removes every kernel watch.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustix::fs::inotify::{self, ReadFlags, WatchFlags};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::FileSystem;
use crate::dir::{MAX_TREE_DEPTH, read_names};
use crate::error::{ErrorKind, FsError, FsResult, OnPath};
use crate::resolve::{Access, lstat_at};

/// What happened to a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Created,
    Modified,
    /// Permissions, owner, timestamps or link count changed.
    Metadata,
    Deleted,
    /// Renamed within the watched tree; `old_path` says from where.
    Renamed,
    /// The kernel dropped events (the client read too slowly, or a tree
    /// grew past the directory limit): rescan what matters.
    Overflow,
}

impl ChangeKind {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Modified => "modified",
            ChangeKind::Metadata => "metadata",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Renamed => "renamed",
            ChangeKind::Overflow => "overflow",
        }
    }
}

/// One change seen by one watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub watch_id: u64,
    /// The path that changed, below the watched path as the client gave it.
    pub path: PathBuf,
    pub kind: ChangeKind,
    pub old_path: Option<PathBuf>,
}

/// Bounds of one watcher.
#[derive(Clone, Copy, Debug)]
pub struct WatchOptions {
    /// Watches at once.
    pub max_watches: usize,
    /// Directories all watches cover together.
    pub max_directories: usize,
}

const DIR_MASK: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::MODIFY)
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::EXCL_UNLINK);
const FILE_MASK: WatchFlags = WatchFlags::MODIFY
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF);

/// How long a `moved from` waits for its `moved to` before it is reported
/// as a deletion. The kernel queues the pair back to back; this only
/// covers a read that returned between them.
const RENAME_PAIRING_WAIT: Duration = Duration::from_millis(10);

/// A watch: what the client asked for.
struct Watch {
    root: PathBuf,
    recursive: bool,
    wds: HashSet<i32>,
}

/// A watched directory (or file) as one watch sees it.
#[derive(Clone)]
struct Subscription {
    watch_id: u64,
    path: PathBuf,
}

struct State {
    watches: HashMap<u64, Watch>,
    wds: HashMap<i32, Vec<Subscription>>,
    /// (watch, wd) pairs: what the directory limit counts.
    directories: usize,
    next_id: u64,
}

struct Shared {
    inotify: AsyncFd<OwnedFd>,
    state: Mutex<State>,
    fs: FileSystem,
    options: WatchOptions,
}

/// A connection's watches. Dropping it removes them all.
pub struct Watcher {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("watches", &self.shared.lock().watches.len())
            .finish()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("watch state poisoned")
    }
}

impl Watcher {
    /// Starts a watcher whose changes go to `changes`. Needs a tokio runtime.
    pub fn new(
        fs: FileSystem,
        options: WatchOptions,
        changes: mpsc::Sender<Change>,
    ) -> FsResult<Watcher> {
        let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)
            .map_err(|errno| {
                FsError::new(
                    ErrorKind::from_limit(errno),
                    format!(
                        "cannot create an inotify instance: {} (fs.inotify.max_user_instances)",
                        std::io::Error::from_raw_os_error(errno.raw_os_error())
                    ),
                )
                .with_errno(errno)
            })?;
        // SAFETY: the AsyncFd takes ownership of the OwnedFd, so the
        // descriptor stays open and unchanged while it is registered.
        let inotify = unsafe { AsyncFd::register(fd) }.map_err(|error| {
            FsError::new(
                ErrorKind::Io,
                format!("cannot register inotify: {}", error.into_parts().1),
            )
        })?;
        let shared = Arc::new(Shared {
            inotify,
            state: Mutex::new(State {
                watches: HashMap::new(),
                wds: HashMap::new(),
                directories: 0,
                next_id: 1,
            }),
            fs,
            options,
        });
        let task = tokio::spawn(run(shared.clone(), changes));
        Ok(Watcher { shared, task })
    }

    /// Starts watching `path` (a directory, or a single file); returns the
    /// watch id. Blocks while a recursive watch scans its tree.
    pub fn watch(&self, path: &Path, recursive: bool) -> FsResult<u64> {
        let shared = &self.shared;
        let located = shared.fs.locate(path, Access::Read)?;
        let fd = located.open(OFlags::PATH)?;
        let stat = rustix::fs::fstat(&fd).on(path)?;
        let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
        let mut state = shared.lock();
        if state.watches.len() >= shared.options.max_watches {
            return Err(FsError::new(
                ErrorKind::TooLarge,
                format!(
                    "at most {} watches may be open per connection",
                    shared.options.max_watches
                ),
            ));
        }
        let id = state.next_id;
        state.next_id += 1;
        state.watches.insert(
            id,
            Watch {
                root: path.to_path_buf(),
                recursive: recursive && is_dir,
                wds: HashSet::new(),
            },
        );
        let mask = if is_dir { DIR_MASK } else { FILE_MASK };
        let added = add(shared, &mut state, id, path, &fd, mask).and_then(|()| {
            if recursive && is_dir {
                let dir = rustix::fs::openat(
                    &fd,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .on(path)?;
                scan(shared, &mut state, id, path, &dir, 0, &mut |_| {})
            } else {
                Ok(())
            }
        });
        if let Err(error) = added {
            remove_watch(shared, &mut state, id);
            return Err(error);
        }
        Ok(id)
    }

    /// Stops a watch. False when the id is unknown.
    pub fn unwatch(&self, watch_id: u64) -> bool {
        let mut state = self.shared.lock();
        remove_watch(&self.shared, &mut state, watch_id)
    }

    /// Watches open now.
    pub fn len(&self) -> usize {
        self.shared.lock().watches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ErrorKind {
    fn from_limit(errno: Errno) -> ErrorKind {
        match errno {
            Errno::MFILE | Errno::NFILE | Errno::NOSPC | Errno::NOMEM => ErrorKind::TooLarge,
            _ => ErrorKind::Io,
        }
    }
}

/// Adds one kernel watch for `fd` (resolved beneath the roots) to watch `id`.
fn add(
    shared: &Shared,
    state: &mut State,
    id: u64,
    path: &Path,
    fd: &impl AsFd,
    mask: WatchFlags,
) -> FsResult<()> {
    if state.directories >= shared.options.max_directories {
        return Err(FsError::at(
            ErrorKind::TooLarge,
            path,
            format!(
                "watching needs more than {} directories for this connection (fs-max-watch-directories)",
                shared.options.max_directories
            ),
        ));
    }
    let proc_path = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    let wd = inotify::add_watch(shared.inotify.get_ref(), proc_path.as_str(), mask).map_err(
        |errno| match errno {
            Errno::NOSPC => FsError::at(
                ErrorKind::TooLarge,
                path,
                "the kernel's inotify watch limit is reached (fs.inotify.max_user_watches)",
            )
            .with_errno(errno),
            errno => FsError::os(errno, path),
        },
    )?;
    let Some(watch) = state.watches.get_mut(&id) else {
        return Ok(());
    };
    if watch.wds.insert(wd) {
        state.directories += 1;
        state.wds.entry(wd).or_default().push(Subscription {
            watch_id: id,
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Adds every directory below `dir` (at `path`) to watch `id`, calling
/// `found` for each entry seen.
fn scan(
    shared: &Shared,
    state: &mut State,
    id: u64,
    path: &Path,
    dir: &OwnedFd,
    depth: usize,
    found: &mut dyn FnMut(PathBuf),
) -> FsResult<()> {
    if depth >= MAX_TREE_DEPTH {
        return Ok(());
    }
    for name in read_names(dir, usize::MAX, path)? {
        let child_path = path.join(&name);
        let Ok(stat) = lstat_at(dir, &name) else {
            continue;
        };
        found(child_path.clone());
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            continue;
        }
        // O_NOFOLLOW from the parent fd: a directory swapped for a symlink
        // since the lstat is skipped, never followed.
        let Ok(sub) = rustix::fs::openat(
            dir,
            &name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        add(shared, state, id, &child_path, &sub, DIR_MASK)?;
        scan(shared, state, id, &child_path, &sub, depth + 1, found)?;
    }
    Ok(())
}

/// Drops one wd from watch `id`; the kernel watch goes when no watch uses it.
fn drop_wd(shared: &Shared, state: &mut State, id: u64, wd: i32) {
    if let Some(watch) = state.watches.get_mut(&id)
        && watch.wds.remove(&wd)
    {
        state.directories -= 1;
    }
    if let Some(subs) = state.wds.get_mut(&wd) {
        subs.retain(|s| s.watch_id != id);
        if subs.is_empty() {
            state.wds.remove(&wd);
            let _ = inotify::remove_watch(shared.inotify.get_ref(), wd);
        }
    }
}

fn remove_watch(shared: &Shared, state: &mut State, id: u64) -> bool {
    let Some(watch) = state.watches.get(&id) else {
        return false;
    };
    for wd in watch.wds.clone() {
        drop_wd(shared, state, id, wd);
    }
    state.watches.remove(&id);
    true
}

/// A `moved from` waiting for its `moved to`.
struct PendingMove {
    cookie: u32,
    /// Per watch: the old path and whether it was a directory.
    from: Vec<(u64, PathBuf, bool)>,
}

/// Turns events into changes, in order.
struct Translator<'a> {
    shared: &'a Shared,
    changes: Vec<Change>,
    pending: Option<PendingMove>,
}

impl Translator<'_> {
    fn push(&mut self, watch_id: u64, path: PathBuf, kind: ChangeKind, old: Option<PathBuf>) {
        if kind == ChangeKind::Modified
            && self.changes.last().is_some_and(|last| {
                last.kind == ChangeKind::Modified && last.watch_id == watch_id && last.path == path
            })
        {
            return;
        }
        self.changes.push(Change {
            watch_id,
            path,
            kind,
            old_path: old,
        });
    }

    /// Reports a `moved from` that found no partner as a deletion.
    fn flush_pending(&mut self, state: &mut State) {
        if let Some(pending) = self.pending.take() {
            for (watch_id, path, is_dir) in pending.from {
                if is_dir {
                    forget_subtree(self.shared, state, watch_id, &path);
                }
                self.push(watch_id, path, ChangeKind::Deleted, None);
            }
        }
    }

    fn event(&mut self, state: &mut State, wd: i32, flags: ReadFlags, cookie: u32, name: &[u8]) {
        if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
            self.flush_pending(state);
            let roots: Vec<(u64, PathBuf)> = state
                .watches
                .iter()
                .map(|(id, w)| (*id, w.root.clone()))
                .collect();
            for (id, root) in roots {
                self.push(id, root, ChangeKind::Overflow, None);
            }
            return;
        }
        if flags.contains(ReadFlags::IGNORED) {
            // The kernel dropped this watch (directory gone, or removed).
            if let Some(subs) = state.wds.remove(&wd) {
                for sub in subs {
                    if let Some(watch) = state.watches.get_mut(&sub.watch_id)
                        && watch.wds.remove(&wd)
                    {
                        state.directories -= 1;
                    }
                }
            }
            return;
        }
        let Some(subs) = state.wds.get(&wd).cloned() else {
            return;
        };
        let is_dir = flags.contains(ReadFlags::ISDIR);
        if flags.contains(ReadFlags::MOVED_TO) {
            let from = match self.pending.take() {
                Some(pending) if pending.cookie == cookie => pending.from,
                other => {
                    self.pending = other;
                    self.flush_pending(state);
                    Vec::new()
                }
            };
            self.moved_to(state, &subs, name, is_dir, from);
            return;
        }
        self.flush_pending(state);
        for sub in subs {
            let Some(watch) = state.watches.get(&sub.watch_id) else {
                continue;
            };
            let recursive = watch.recursive;
            let is_root = sub.path == watch.root;
            let path = if name.is_empty() {
                sub.path.clone()
            } else {
                sub.path.join(OsStr::from_bytes(name))
            };
            if flags.contains(ReadFlags::CREATE) {
                self.push(sub.watch_id, path.clone(), ChangeKind::Created, None);
                if is_dir && recursive {
                    self.add_tree(state, sub.watch_id, &path);
                }
            } else if flags.contains(ReadFlags::MODIFY) {
                self.push(sub.watch_id, path, ChangeKind::Modified, None);
            } else if flags.contains(ReadFlags::ATTRIB) {
                self.push(sub.watch_id, path, ChangeKind::Metadata, None);
            } else if flags.contains(ReadFlags::DELETE) {
                self.push(sub.watch_id, path, ChangeKind::Deleted, None);
            } else if flags.contains(ReadFlags::MOVED_FROM) {
                let pending = self.pending.get_or_insert(PendingMove {
                    cookie,
                    from: Vec::new(),
                });
                pending.from.push((sub.watch_id, path, is_dir));
            } else if flags.intersects(ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF) && is_root {
                // The watched path itself went away (or moved: we cannot
                // know where to): report it and stop watching there.
                self.push(sub.watch_id, path, ChangeKind::Deleted, None);
                let wds: Vec<i32> = state
                    .watches
                    .get(&sub.watch_id)
                    .map(|w| w.wds.iter().copied().collect())
                    .unwrap_or_default();
                for wd in wds {
                    drop_wd(self.shared, state, sub.watch_id, wd);
                }
            }
        }
    }

    fn moved_to(
        &mut self,
        state: &mut State,
        subs: &[Subscription],
        name: &[u8],
        is_dir: bool,
        mut from: Vec<(u64, PathBuf, bool)>,
    ) {
        for sub in subs {
            let Some(watch) = state.watches.get(&sub.watch_id) else {
                continue;
            };
            let recursive = watch.recursive;
            let path = sub.path.join(OsStr::from_bytes(name));
            match from.iter().position(|(id, _, _)| *id == sub.watch_id) {
                Some(index) => {
                    let (_, old, _) = from.remove(index);
                    if is_dir && recursive {
                        rebase_subtree(state, sub.watch_id, &old, &path);
                    }
                    self.push(sub.watch_id, path, ChangeKind::Renamed, Some(old));
                }
                None => {
                    self.push(sub.watch_id, path.clone(), ChangeKind::Created, None);
                    if is_dir && recursive {
                        self.add_tree(state, sub.watch_id, &path);
                    }
                }
            }
        }
        // Moved out of what a watch covers: gone, for that watch.
        for (watch_id, old, was_dir) in from {
            if was_dir {
                forget_subtree(self.shared, state, watch_id, &old);
            }
            self.push(watch_id, old, ChangeKind::Deleted, None);
        }
    }

    /// Watches a directory that appeared in a recursive watch, and reports
    /// what is already inside it.
    fn add_tree(&mut self, state: &mut State, watch_id: u64, path: &Path) {
        let shared = self.shared;
        let opened = shared.fs.locate(path, Access::Read).and_then(|located| {
            located.open(OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW)
        });
        // Gone again, or replaced by a symlink: nothing to watch.
        let Ok(dir) = opened else { return };
        let mut found = Vec::new();
        let added = add(shared, state, watch_id, path, &dir, DIR_MASK).and_then(|()| {
            scan(shared, state, watch_id, path, &dir, 0, &mut |p| {
                found.push(p)
            })
        });
        for child in found {
            self.push(watch_id, child, ChangeKind::Created, None);
        }
        if added.is_err() {
            // Over the directory limit: part of the tree is unwatched.
            self.push(watch_id, path.to_path_buf(), ChangeKind::Overflow, None);
        }
    }
}

/// Stops watching the directories of watch `id` at or below `path`.
fn forget_subtree(shared: &Shared, state: &mut State, id: u64, path: &Path) {
    let wds: Vec<i32> = state
        .wds
        .iter()
        .filter(|(_, subs)| {
            subs.iter()
                .any(|s| s.watch_id == id && s.path.starts_with(path))
        })
        .map(|(wd, _)| *wd)
        .collect();
    for wd in wds {
        drop_wd(shared, state, id, wd);
    }
}

/// A directory renamed inside watch `id`: its watches stay, their paths move.
fn rebase_subtree(state: &mut State, id: u64, old: &Path, new: &Path) {
    for subs in state.wds.values_mut() {
        for sub in subs.iter_mut().filter(|s| s.watch_id == id) {
            if let Ok(rest) = sub.path.strip_prefix(old) {
                sub.path = new.join(rest);
            }
        }
    }
}

/// Reads events until the receiver goes away.
async fn run(shared: Arc<Shared>, changes: mpsc::Sender<Change>) {
    let mut buffer = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
    let mut pending: Option<PendingMove> = None;
    loop {
        let readable = if pending.is_some() {
            tokio::time::timeout(RENAME_PAIRING_WAIT, shared.inotify.readable())
                .await
                .ok()
        } else {
            Some(shared.inotify.readable().await)
        };
        let batch = {
            let mut state = shared.lock();
            let mut translator = Translator {
                shared: &shared,
                changes: Vec::new(),
                pending: pending.take(),
            };
            match readable {
                None => translator.flush_pending(&mut state),
                Some(Err(error)) => {
                    tracing::warn!(%error, "inotify is not readable; watches stop");
                    return;
                }
                Some(Ok(mut guard)) => {
                    let mut reader = inotify::Reader::new(shared.inotify.get_ref(), &mut buffer);
                    loop {
                        match reader.next() {
                            Ok(event) => {
                                let name = event.file_name().map(|n| n.to_bytes()).unwrap_or(b"");
                                let (wd, flags, cookie) =
                                    (event.wd(), event.events(), event.cookie());
                                let name = name.to_vec();
                                translator.event(&mut state, wd, flags, cookie, &name);
                            }
                            Err(Errno::AGAIN) => {
                                guard.clear_ready();
                                break;
                            }
                            Err(Errno::INTR) => {}
                            Err(error) => {
                                tracing::warn!(%error, "reading inotify failed; watches stop");
                                return;
                            }
                        }
                    }
                }
            }
            pending = translator.pending.take();
            translator.changes
        };
        for change in batch {
            if changes.send(change).await.is_err() {
                return;
            }
        }
    }
}
