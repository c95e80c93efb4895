//! Private temporary directories: one per sandboxed process, its `TMPDIR`,
//! removed with its contents when the process is closed.
//!
//! Directory operations can be slow where the temporary directory lives on
//! a disk: on the CI machines (ext4 with `discard`) a `mkdir` costs about
//! 0.5 ms and an `rmdir` about 4 ms — as much as a whole spawn. So a
//! background thread keeps a few empty directories ready and removes used
//! ones; a spawn only takes one from the pool (or makes one itself when the
//! pool is empty). Names carry the server's pid, so that directories left
//! behind by a server that was killed are swept when the next one starts.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use super::landlock::PathHandle;

const PREFIX: &str = "exec-server-sandbox.";
/// Empty directories kept ready.
const READY: usize = 16;

/// A private temporary directory, removed (in the background) when dropped.
#[derive(Debug)]
pub struct PrivateTmp {
    path: PathBuf,
    /// Opened with the directory, for the Landlock rule.
    handle: Option<PathHandle>,
}

impl PrivateTmp {
    /// A new, empty directory only this server's uid can enter.
    pub(crate) fn take() -> io::Result<PrivateTmp> {
        let pool = pool();
        let ready = pool.ready.lock().expect("tmp pool lock poisoned").pop();
        let tmp = match ready {
            Some(tmp) => tmp,
            None => create(&pool.base)?,
        };
        pool.send(Work::Refill);
        Ok(tmp)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's handle (taken once, for the ruleset).
    pub(crate) fn take_handle(&mut self) -> io::Result<PathHandle> {
        match self.handle.take() {
            Some(handle) => Ok(handle),
            None => PathHandle::open(&self.path),
        }
    }
}

impl Drop for PrivateTmp {
    fn drop(&mut self) {
        pool().send(Work::Remove(std::mem::take(&mut self.path)));
    }
}

enum Work {
    Refill,
    Remove(PathBuf),
}

struct Pool {
    base: PathBuf,
    ready: Mutex<Vec<PrivateTmp>>,
    work: Mutex<Option<mpsc::Sender<Work>>>,
}

impl Pool {
    fn send(&self, work: Work) {
        let sender = self.work.lock().expect("tmp pool lock poisoned").clone();
        let work = match sender {
            Some(sender) => match sender.send(work) {
                Ok(()) => return,
                Err(mpsc::SendError(work)) => work,
            },
            None => work,
        };
        // No worker: do it here.
        match work {
            Work::Remove(path) => remove(&path),
            Work::Refill => {}
        }
    }
}

static POOL: OnceLock<Pool> = OnceLock::new();

/// Removes the directories kept ready, at once: called at the server's
/// shutdown, so that a server that exits cleanly leaves nothing behind in
/// the temporary directory. (Directories of processes still being removed
/// by the worker are swept by the next server, like a killed server's.)
pub fn remove_ready() {
    let Some(pool) = POOL.get() else { return };
    let ready = std::mem::take(&mut *pool.ready.lock().expect("tmp pool lock poisoned"));
    for mut tmp in ready {
        // The drop that follows sees an empty path and does nothing.
        remove(&std::mem::take(&mut tmp.path));
    }
}

fn pool() -> &'static Pool {
    POOL.get_or_init(|| {
        let (sender, receiver) = mpsc::channel();
        let started = std::thread::Builder::new()
            .name("exec-sandbox-tmp".into())
            .spawn(move || worker(receiver))
            .is_ok();
        Pool {
            base: std::env::temp_dir(),
            ready: Mutex::new(Vec::new()),
            work: Mutex::new(started.then_some(sender)),
        }
    })
}

/// Refills come first: a spawn may be waiting for a directory, while a
/// removal (4 ms each on a slow disk) can wait.
fn worker(receiver: mpsc::Receiver<Work>) {
    let pool = pool();
    sweep_dead_servers(&pool.base);
    let mut removals: VecDeque<PathBuf> = VecDeque::new();
    loop {
        let work = if removals.is_empty() {
            match receiver.recv() {
                Ok(work) => Some(work),
                Err(_) => return,
            }
        } else {
            receiver.try_recv().ok()
        };
        match work {
            Some(Work::Remove(path)) => removals.push_back(path),
            Some(Work::Refill) => refill(pool),
            None => {
                if let Some(path) = removals.pop_front() {
                    remove(&path);
                }
            }
        }
    }
}

fn refill(pool: &Pool) {
    while pool.ready.lock().expect("tmp pool lock poisoned").len() < READY {
        match create(&pool.base) {
            Ok(tmp) => pool.ready.lock().expect("tmp pool lock poisoned").push(tmp),
            Err(error) => {
                tracing::debug!(%error, "cannot prepare a private temporary directory");
                return;
            }
        }
    }
}

fn create(base: &Path) -> io::Result<PrivateTmp> {
    for _ in 0..16 {
        let mut random = [0u8; 8];
        rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty())?;
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let path = base.join(format!("{PREFIX}{}.{suffix}", std::process::id()));
        match rustix::fs::mkdir(&path, rustix::fs::Mode::from_raw_mode(0o700)) {
            Ok(()) => {
                let handle = PathHandle::open(&path).ok();
                return Ok(PrivateTmp { path, handle });
            }
            Err(rustix::io::Errno::EXIST) => continue,
            Err(error) => {
                return Err(io::Error::new(
                    io::Error::from(error).kind(),
                    format!(
                        "creating a private temporary directory in {}: {error}",
                        base.display()
                    ),
                ));
            }
        }
    }
    Err(io::Error::other(
        "could not pick a unique temporary directory name",
    ))
}

fn remove(path: &Path) {
    if path.as_os_str().is_empty() {
        return;
    }
    // Does not follow symlinks the process may have left inside.
    if let Err(error) = std::fs::remove_dir_all(path)
        && error.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(%error, path = %path.display(), "cannot remove a sandbox's temporary directory");
    }
}

/// Removes directories left by servers that are no longer running.
fn sweep_dead_servers(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // Another user's server (a root one, for a server run as nobody):
        // the sticky temporary directory refuses unless this is root.
        let owner = entry.metadata().map(|metadata| {
            use std::os::unix::fs::MetadataExt as _;
            metadata.uid()
        });
        let me = rustix::process::geteuid();
        if !me.is_root() && owner.is_ok_and(|uid| uid != me.as_raw()) {
            continue;
        }
        // SAFETY: kill with signal 0 only checks that the process exists.
        let gone = pid > 0
            && unsafe { libc::kill(pid, 0) } != 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            remove(&entry.path());
        }
    }
}
