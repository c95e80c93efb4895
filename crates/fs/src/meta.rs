//! Metadata and canonical paths.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, OFlags, StatxFlags};

use crate::FileSystem;
use crate::error::{ErrorKind, FsError, FsResult, OnPath};
use crate::resolve::Access;

/// What `fs/getMetadata` and directory listings report about a path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The target (a symlink's, when it resolves inside the roots) is a directory.
    pub is_directory: bool,
    /// The target is a regular file.
    pub is_file: bool,
    /// The name itself is a symlink.
    pub is_symlink: bool,
    pub size: u64,
    /// Permission bits and set-id/sticky bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Birth time where the file system records one, else 0.
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
}

const MASK: StatxFlags = StatxFlags::BASIC_STATS.union(StatxFlags::BTIME);

fn millis(ts: &rustix::fs::StatxTimestamp) -> i64 {
    ts.tv_sec.saturating_mul(1000) + i64::from(ts.tv_nsec / 1_000_000)
}

impl Metadata {
    pub(crate) fn from_statx(stat: &rustix::fs::Statx) -> Metadata {
        let kind = FileType::from_raw_mode(u32::from(stat.stx_mode));
        let has_btime = stat.stx_mask & StatxFlags::BTIME.bits() != 0;
        Metadata {
            is_directory: kind == FileType::Directory,
            is_file: kind == FileType::RegularFile,
            is_symlink: kind == FileType::Symlink,
            size: stat.stx_size,
            mode: u32::from(stat.stx_mode) & 0o7777,
            created_at_ms: if has_btime {
                millis(&stat.stx_btime)
            } else {
                0
            },
            modified_at_ms: millis(&stat.stx_mtime),
        }
    }

    /// A symlink's entry: the target's facts when `target` is known, the
    /// link's own otherwise; `is_symlink` either way.
    pub(crate) fn link(own: Metadata, target: Option<Metadata>) -> Metadata {
        let mut metadata = target.unwrap_or(Metadata {
            is_directory: false,
            is_file: false,
            ..own
        });
        metadata.is_symlink = true;
        metadata
    }
}

pub(crate) fn statx_fd(fd: impl AsFd) -> rustix::io::Result<rustix::fs::Statx> {
    rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, MASK)
}

pub(crate) fn statx_at(
    dir: impl AsFd,
    name: &std::ffi::OsStr,
) -> rustix::io::Result<rustix::fs::Statx> {
    rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, MASK)
}

pub(crate) fn metadata(fs: &FileSystem, path: &Path) -> FsResult<Metadata> {
    let located = fs.locate(path, Access::Read)?;
    if located.rel.as_os_str().is_empty() {
        let stat = statx_fd(&located.root.fd).on(path)?;
        return Ok(Metadata::from_statx(&stat));
    }
    let parent = located.parent()?;
    let own = Metadata::from_statx(&statx_at(&parent.fd, &parent.name).on(path)?);
    if !own.is_symlink {
        return Ok(own);
    }
    let target = located
        .open(OFlags::PATH)
        .ok()
        .and_then(|fd| statx_fd(&fd).ok())
        .map(|stat| Metadata::from_statx(&stat));
    Ok(Metadata::link(own, target))
}

pub(crate) fn canonicalize(fs: &FileSystem, path: &Path) -> FsResult<PathBuf> {
    let located = fs.locate(path, Access::Read)?;
    let fd = located.open(OFlags::PATH)?;
    fd_path(&fd, path)
}

/// The path the kernel has for an open fd.
pub(crate) fn fd_path(fd: &impl AsFd, shown: &Path) -> FsResult<PathBuf> {
    use std::os::fd::AsRawFd;
    let link = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    let target = rustix::fs::readlink(link.as_str(), Vec::new()).on(shown)?;
    let target = PathBuf::from(OsString::from_vec(target.into_bytes()));
    if !target.is_absolute() {
        return Err(FsError::at(
            ErrorKind::NotFound,
            shown,
            "the path has no name the kernel can report",
        ));
    }
    Ok(target)
}
