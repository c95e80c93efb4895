//! [`FsPolicy`]: which parts of the file system a client may read and
//! write, and [`FsLimits`]: how much one request or connection may ask for.
//!
//! The policy is plain data. The server holds one (from its configuration,
//! later narrowed per connection by a sandbox policy); [`crate::FileSystem`]
//! enforces it on every call by resolving paths beneath the root they
//! belong to (see `resolve`).

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Which parts of the file system the `fs/*` methods may touch.
///
/// - Reads are allowed beneath `readable_roots` (`None`: everywhere) and
///   beneath the writable roots.
/// - Writes (create, modify, remove, rename) are allowed only when `writes`
///   is true, beneath `writable_roots`, and never inside one of the
///   `read_only_subpaths` of a writable root (`.git` by default in sandbox
///   policies, so an agent cannot rewrite history or hooks).
///
/// A root is never left through `..` or a symlink: paths are resolved
/// beneath the root with `openat2(RESOLVE_BENEATH)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsPolicy {
    /// Absolute directories readable with everything below them; `None`
    /// means the whole file system.
    pub readable_roots: Option<Vec<PathBuf>>,
    /// Absolute directories writable with everything below them. `/` makes
    /// the whole file system writable.
    pub writable_roots: Vec<PathBuf>,
    /// Names, relative to each writable root, that stay read-only with
    /// everything below them (e.g. `.git`).
    pub read_only_subpaths: Vec<OsString>,
    /// Master switch for writes: false makes everything read-only.
    pub writes: bool,
}

impl Default for FsPolicy {
    /// No restriction: the server's own permissions are the only limit.
    fn default() -> Self {
        FsPolicy::unrestricted()
    }
}

impl FsPolicy {
    /// Read and write anywhere the server process may.
    pub fn unrestricted() -> FsPolicy {
        FsPolicy {
            readable_roots: None,
            writable_roots: vec![PathBuf::from("/")],
            read_only_subpaths: Vec::new(),
            writes: true,
        }
    }

    /// Read anywhere, write nowhere.
    pub fn read_only() -> FsPolicy {
        FsPolicy {
            readable_roots: None,
            writable_roots: Vec::new(),
            read_only_subpaths: Vec::new(),
            writes: false,
        }
    }

    /// Read anywhere; write only beneath `roots`, `.git` below them excepted
    /// (the shape of a `workspace-write` sandbox).
    pub fn workspace_write(roots: Vec<PathBuf>) -> FsPolicy {
        FsPolicy {
            readable_roots: None,
            writable_roots: roots,
            read_only_subpaths: vec![OsString::from(".git")],
            writes: true,
        }
    }

    /// Checks that every root is absolute and every subpath a plain name.
    pub fn validate(&self) -> Result<(), String> {
        let roots = self.readable_roots.iter().flatten();
        for root in roots.chain(&self.writable_roots) {
            if !root.is_absolute() {
                return Err(format!("root {} is not an absolute path", root.display()));
            }
        }
        for sub in &self.read_only_subpaths {
            let mut components = Path::new(sub).components();
            if !matches!(
                (components.next(), components.next()),
                (Some(Component::Normal(_)), None)
            ) {
                return Err(format!(
                    "read-only subpath {sub:?} must be a single name such as .git"
                ));
            }
        }
        Ok(())
    }
}

/// Bounds on what one request or one connection may ask of the file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsLimits {
    /// Most bytes one `fs/readFile` or `fs/readBlock` returns, and one
    /// `fs/writeBlock` accepts (the whole-message limit still applies to
    /// writes).
    pub max_read_bytes: u64,
    /// Open `fs/open` handles per connection.
    pub max_handles: usize,
    /// `fs/watch` watches per connection.
    pub max_watches: usize,
    /// Directories all watches of one connection may cover together
    /// (recursive watches add one per subdirectory).
    pub max_watch_directories: usize,
    /// Most entries one `fs/readDirectory` returns.
    pub max_entries: usize,
}

impl Default for FsLimits {
    fn default() -> Self {
        FsLimits {
            // 8 MiB of data is about 11 MiB of base64: below the 16 MiB
            // frame limit many websocket clients keep by default.
            max_read_bytes: 8 * 1024 * 1024,
            max_handles: 128,
            max_watches: 64,
            max_watch_directories: 8192,
            max_entries: 50_000,
        }
    }
}
