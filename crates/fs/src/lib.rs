//! Files for exec-server's `fs/*` methods: plain Rust types, no protocol.
//!
//! - [`FileSystem`] performs one operation per call (read, write, list,
//!   metadata, canonicalize, create, remove, copy, rename) under an
//!   [`FsPolicy`]. Calls block: the server runs them on its blocking pool.
//! - `resolve` is the security boundary: every path is matched to a policy
//!   root and resolved beneath it by the kernel (`openat2` with
//!   `RESOLVE_BENEATH`), and operations act on the resulting directory fds
//!   with `*at` syscalls, so neither `..` nor a symlink, even one swapped in
//!   during the request, leads outside the roots.
//! - [`ReadHandle`] and [`WriteHandle`] are open files for block reads and
//!   writes of files of any size; a write handle replaces its target
//!   atomically (temp file + rename in the same directory) when finished,
//!   and leaves the old content untouched when dropped unfinished.
//! - [`Watcher`] turns inotify events into ordered [`Change`]s on a bounded
//!   channel (tokio): created, modified, renamed, deleted.
//! - [`FsError`] carries a stable [`ErrorKind`] and the errno's name.
//!
//! Paths are [`Path`]s: any bytes but NUL, so names that are not UTF-8 work
//! as well as any other (the protocol layer decides how they travel).

mod copy;
mod dir;
mod error;
mod meta;
mod policy;
mod read;
mod resolve;
mod watch;
mod write;

use std::path::Path;

pub use dir::{CreateDirOptions, DirEntry, ListOptions, Listing, RemoveOptions};
pub use error::{ErrorKind, FsError, FsResult, errno_name};
pub use meta::Metadata;
pub use policy::{FsLimits, FsPolicy};
pub use read::ReadHandle;
pub use resolve::{MAX_NAME_BYTES, MAX_PATH_BYTES, check_path};
pub use watch::{Change, ChangeKind, WatchOptions, Watcher};
pub use write::{WriteHandle, WriteOptions};

/// The file system as one policy allows it. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct FileSystem {
    policy: std::sync::Arc<FsPolicy>,
}

impl FileSystem {
    /// A file system under `policy`; an invalid policy is an error.
    pub fn new(policy: FsPolicy) -> Result<FileSystem, String> {
        policy.validate()?;
        Ok(FileSystem {
            policy: std::sync::Arc::new(policy),
        })
    }

    pub fn policy(&self) -> &FsPolicy {
        &self.policy
    }

    /// Bytes of a file: all of it, or `length` bytes from `offset` (fewer at
    /// the end of the file). More than `max` bytes is a
    /// [`ErrorKind::TooLarge`] error: read large files in ranges.
    pub fn read_file(
        &self,
        path: &Path,
        offset: u64,
        length: Option<u64>,
        max: u64,
    ) -> FsResult<Vec<u8>> {
        read::read_file(self, path, offset, length, max)
    }

    /// Opens a regular file for [`ReadHandle::read_block`].
    pub fn open_read(&self, path: &Path) -> FsResult<ReadHandle> {
        read::open(self, path)
    }

    /// Writes a whole file (see [`WriteOptions`]).
    pub fn write_file(&self, path: &Path, data: &[u8], options: &WriteOptions) -> FsResult<()> {
        write::write_file(self, path, data, options)
    }

    /// Opens a file for writing in blocks; [`WriteHandle::finish`] commits.
    pub fn open_write(&self, path: &Path, options: &WriteOptions) -> FsResult<WriteHandle> {
        write::open(self, path, options)
    }

    /// Entries of a directory, optionally recursive (see [`ListOptions`]).
    pub fn list(&self, path: &Path, options: &ListOptions) -> FsResult<Listing> {
        dir::list(self, path, options)
    }

    /// Metadata of a path; a final symlink is reported as one and followed
    /// for the rest when its target is inside the roots.
    pub fn metadata(&self, path: &Path) -> FsResult<Metadata> {
        meta::metadata(self, path)
    }

    /// The absolute path with every symlink, `.` and `..` resolved.
    pub fn canonicalize(&self, path: &Path) -> FsResult<std::path::PathBuf> {
        meta::canonicalize(self, path)
    }

    /// Creates a directory (see [`CreateDirOptions`]).
    pub fn create_dir(&self, path: &Path, options: &CreateDirOptions) -> FsResult<()> {
        dir::create_dir(self, path, options)
    }

    /// Removes a file, a symlink (not its target) or a directory (see
    /// [`RemoveOptions`]).
    pub fn remove(&self, path: &Path, options: &RemoveOptions) -> FsResult<()> {
        dir::remove(self, path, options)
    }

    /// Copies a file, or a directory tree when `recursive`, keeping modes;
    /// symlinks inside a tree are copied as symlinks.
    pub fn copy(&self, source: &Path, destination: &Path, recursive: bool) -> FsResult<()> {
        copy::copy(self, source, destination, recursive)
    }

    /// Renames (moves) within one file system, replacing the destination.
    pub fn rename(&self, source: &Path, destination: &Path) -> FsResult<()> {
        copy::rename(self, source, destination)
    }
}
