//! Writing: whole files and handles for writes in blocks, atomic by default.
//!
//! An atomic write creates a hidden temp file in the target's directory
//! (`.NAME.RANDOM.tmp`, `O_EXCL`, mode 0600 while written), writes it, gives
//! it the final mode, and renames it over the target: readers see the old
//! content or the new, never a mix, and a write that stops half way (an
//! error, a dropped handle, a closed connection) removes the temp file and
//! leaves the target as it was. Only a server killed outright leaves the
//! temp file behind.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::FileSystem;
use crate::error::{ErrorKind, FsError, FsResult, OnPath};
use crate::resolve::{Access, Located, MAX_NAME_BYTES, Parent, lstat_at};

/// How to write a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    /// Add to the end of the file instead of replacing it (never atomic).
    pub append: bool,
    /// Permission bits of the file. Default: an existing file keeps its
    /// mode; a new one gets `0666` less the server's umask.
    pub mode: Option<u32>,
    /// Create missing parent directories.
    pub create_parents: bool,
    /// Replace through a temp file and a rename (default true).
    pub atomic: bool,
    /// `fsync` the file before it replaces the target (atomic writes).
    pub sync: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            append: false,
            mode: None,
            create_parents: false,
            atomic: true,
            sync: false,
        }
    }
}

/// The server's umask, read once (setting it to read it would race).
static UMASK: LazyLock<u32> = LazyLock::new(|| {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Umask:"))
                .and_then(|value| u32::from_str_radix(value.trim(), 8).ok())
        })
        .unwrap_or(0o022)
});

pub(crate) fn default_file_mode() -> u32 {
    0o666 & !*UMASK
}

pub(crate) fn check_mode(mode: Option<u32>, path: &Path) -> FsResult<()> {
    match mode {
        Some(mode) if mode > 0o7777 => Err(FsError::at(
            ErrorKind::InvalidPath,
            path,
            format!("mode {mode:o} has bits beyond 07777"),
        )),
        _ => Ok(()),
    }
}

/// Resolves where a write to `path` lands and checks the policy.
fn target(fs: &FileSystem, path: &Path, create_parents: bool) -> FsResult<(Located, Parent)> {
    let located = fs.locate(path, Access::Write)?;
    if create_parents
        && let Some(parent_rel) = located.rel.parent()
        && !parent_rel.as_os_str().is_empty()
    {
        crate::dir::create_all(fs, &located, parent_rel)?;
    }
    let parent = located.write_parent()?;
    fs.check_writable(&located, &parent)?;
    Ok((located, parent))
}

/// A temp file next to its target, removed unless committed.
#[derive(Debug)]
pub(crate) struct AtomicFile {
    dir: OwnedFd,
    name: OsString,
    temp: OsString,
    file: File,
    mode: u32,
    owner: Option<(u32, u32)>,
    committed: bool,
    path: PathBuf,
}

fn temp_name(name: &OsStr) -> OsString {
    let mut random = [0u8; 8];
    // A failed random read leaves zeros; O_EXCL still refuses a clash.
    let _ = rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty());
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    // `.` + name + `.` + 16 hex + `.tmp` must fit in NAME_MAX.
    let room = MAX_NAME_BYTES - 1 - 1 - suffix.len() - 4;
    let bytes = name.as_bytes();
    let mut temp = b".".to_vec();
    temp.extend_from_slice(&bytes[..bytes.len().min(room)]);
    temp.extend_from_slice(format!(".{suffix}.tmp").as_bytes());
    OsString::from_vec(temp)
}

impl AtomicFile {
    /// A temp file in `parent` that will replace `parent.name`. `mode`:
    /// the final mode (default: the existing file's, else the default).
    pub(crate) fn create(parent: &Parent, mode: Option<u32>, path: &Path) -> FsResult<AtomicFile> {
        let existing = match lstat_at(&parent.fd, &parent.name) {
            Ok(stat) => Some(stat),
            Err(Errno::NOENT) => None,
            Err(errno) => return Err(FsError::os(errno, path)),
        };
        if let Some(stat) = &existing
            && FileType::from_raw_mode(stat.st_mode) == FileType::Directory
        {
            return Err(FsError::os(Errno::ISDIR, path));
        }
        let mode = mode
            .or(existing.as_ref().map(|s| s.st_mode & 0o7777))
            .unwrap_or_else(default_file_mode);
        let owner = existing
            .as_ref()
            .map(|s| (s.st_uid, s.st_gid))
            .filter(|&(uid, gid)| {
                (uid, gid)
                    != (
                        rustix::process::geteuid().as_raw(),
                        rustix::process::getegid().as_raw(),
                    )
            });
        let dir = rustix::io::fcntl_dupfd_cloexec(&parent.fd, 0).on(path)?;
        for _ in 0..8 {
            let temp = temp_name(&parent.name);
            match rustix::fs::openat(
                &dir,
                &temp,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => {
                    return Ok(AtomicFile {
                        dir,
                        name: parent.name.clone(),
                        temp,
                        file: File::from(fd),
                        mode,
                        owner,
                        committed: false,
                        path: path.to_path_buf(),
                    });
                }
                Err(Errno::EXIST) => continue,
                Err(errno) => return Err(FsError::os(errno, path)),
            }
        }
        Err(FsError::os(Errno::EXIST, path))
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Gives the temp file its mode (and the old owner when we may), then
    /// renames it over the target.
    pub(crate) fn commit(mut self, sync: bool) -> FsResult<()> {
        rustix::fs::fchmod(&self.file, Mode::from_raw_mode(self.mode)).on(&self.path)?;
        if let Some((uid, gid)) = self.owner {
            // Only root (or the owner, for the group) may; others keep the
            // new file as their own, as an editor would.
            let _ = rustix::fs::fchown(
                &self.file,
                Some(rustix::process::Uid::from_raw(uid)),
                Some(rustix::process::Gid::from_raw(gid)),
            );
            // fchown clears set-id bits: put the mode back.
            let _ = rustix::fs::fchmod(&self.file, Mode::from_raw_mode(self.mode));
        }
        if sync {
            self.file.sync_all().on(&self.path)?;
        }
        rustix::fs::renameat(&self.dir, &self.temp, &self.dir, &self.name).on(&self.path)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = rustix::fs::unlinkat(&self.dir, &self.temp, AtFlags::empty());
        }
    }
}

/// Opens the target itself for a non-atomic write. `O_NOFOLLOW`: the final
/// name was already resolved; a symlink swapped in now is refused.
/// `O_NONBLOCK`: a FIFO without a reader fails instead of blocking.
fn open_direct(parent: &Parent, options: &WriteOptions, path: &Path) -> FsResult<File> {
    let mut flags = OFlags::WRONLY
        | OFlags::CREATE
        | OFlags::NOFOLLOW
        | OFlags::NONBLOCK
        | OFlags::NOCTTY
        | OFlags::CLOEXEC;
    flags |= if options.append {
        OFlags::APPEND
    } else {
        OFlags::TRUNC
    };
    let mode = options.mode.unwrap_or(0o666);
    let fd =
        rustix::fs::openat(&parent.fd, &parent.name, flags, Mode::from_raw_mode(mode)).on(path)?;
    let stat = rustix::fs::fstat(&fd).on(path)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(FsError::at(
            ErrorKind::NotAFile,
            path,
            "not a regular file (a FIFO, socket or device)",
        ));
    }
    if let Some(mode) = options.mode {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).on(path)?;
    }
    Ok(File::from(fd))
}

pub(crate) fn write_file(
    fs: &FileSystem,
    path: &Path,
    data: &[u8],
    options: &WriteOptions,
) -> FsResult<()> {
    check_mode(options.mode, path)?;
    let (_, parent) = target(fs, path, options.create_parents)?;
    if options.append || !options.atomic {
        let mut file = open_direct(&parent, options, path)?;
        file.write_all(data).on(path)?;
        if options.sync {
            file.sync_all().on(path)?;
        }
        return Ok(());
    }
    let atomic = AtomicFile::create(&parent, options.mode, path)?;
    let mut file: &File = atomic.file();
    file.write_all(data).on(path)?;
    atomic.commit(options.sync)
}

/// A file open for writes in blocks. Atomic handles write a temp file that
/// replaces the target at [`finish`](Self::finish); dropping one unfinished
/// discards it and the target keeps its old content.
#[derive(Debug)]
pub struct WriteHandle {
    inner: Inner,
    sync: bool,
    path: PathBuf,
}

#[derive(Debug)]
enum Inner {
    Atomic(AtomicFile),
    Direct(File),
}

pub(crate) fn open(fs: &FileSystem, path: &Path, options: &WriteOptions) -> FsResult<WriteHandle> {
    check_mode(options.mode, path)?;
    let (_, parent) = target(fs, path, options.create_parents)?;
    let inner = if options.append || !options.atomic {
        Inner::Direct(open_direct(&parent, options, path)?)
    } else {
        Inner::Atomic(AtomicFile::create(&parent, options.mode, path)?)
    };
    Ok(WriteHandle {
        inner,
        sync: options.sync,
        path: path.to_path_buf(),
    })
}

impl WriteHandle {
    fn file(&self) -> &File {
        match &self.inner {
            Inner::Atomic(atomic) => atomic.file(),
            Inner::Direct(file) => file,
        }
    }

    /// Writes `data` at `offset` (append handles ignore the offset).
    pub fn write_at(&self, offset: u64, data: &[u8]) -> FsResult<()> {
        self.file().write_all_at(data, offset).on(&self.path)
    }

    /// Completes the write: an atomic handle replaces its target now.
    pub fn finish(self) -> FsResult<()> {
        match self.inner {
            Inner::Atomic(atomic) => atomic.commit(self.sync),
            Inner::Direct(file) if self.sync => file.sync_all().on(&self.path),
            Inner::Direct(_) => Ok(()),
        }
    }

    /// Gives up: an atomic handle's temp file is removed, the target is
    /// untouched. (Dropping the handle does the same.)
    pub fn discard(self) {}
}
