//! Copy (files and trees, modes kept) and rename.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::FileSystem;
use crate::dir::{MAX_TREE_DEPTH, read_names};
use crate::error::{ErrorKind, FsError, FsResult, OnPath};
use crate::resolve::{Access, Parent, lstat_at};
use crate::write::AtomicFile;

pub(crate) fn copy(
    fs: &FileSystem,
    source: &Path,
    destination: &Path,
    recursive: bool,
) -> FsResult<()> {
    let from = fs.locate(source, Access::Read)?;
    let to = fs.locate(destination, Access::Write)?;
    let fd = from.open(OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)?;
    let stat = rustix::fs::fstat(&fd).on(source)?;
    let parent = to.write_parent()?;
    fs.check_writable(&to, &parent)?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => copy_file(&File::from(fd), stat.st_mode, &parent, destination),
        FileType::Directory if !recursive => Err(FsError::at(
            ErrorKind::IsADirectory,
            source,
            "is a directory; pass recursive: true to copy the tree",
        )
        .with_errno(Errno::ISDIR)),
        FileType::Directory => {
            refuse_copy_into_itself(&fd, &parent, source, destination)?;
            copy_dir(&fd, stat.st_mode, &parent.fd, &parent.name, destination, 0)
        }
        _ => Err(not_copyable(source)),
    }
}

fn not_copyable(path: &Path) -> FsError {
    FsError::at(
        ErrorKind::NotAFile,
        path,
        "only regular files, directories and symlinks can be copied",
    )
}

/// Refuses a destination inside the source tree (it would never end).
fn refuse_copy_into_itself(
    source: &OwnedFd,
    parent: &Parent,
    source_path: &Path,
    destination: &Path,
) -> FsResult<()> {
    let source_stat = rustix::fs::fstat(source).on(source_path)?;
    let source_id = (source_stat.st_dev, source_stat.st_ino);
    let mut dir = rustix::io::fcntl_dupfd_cloexec(&parent.fd, 0).on(destination)?;
    for _ in 0..4096 {
        let stat = rustix::fs::fstat(&dir).on(destination)?;
        let id = (stat.st_dev, stat.st_ino);
        if id == source_id {
            return Err(FsError::at(
                ErrorKind::InvalidPath,
                destination,
                "cannot copy a directory into itself",
            ));
        }
        let up = rustix::fs::openat(
            &dir,
            "..",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .on(destination)?;
        let up_stat = rustix::fs::fstat(&up).on(destination)?;
        if (up_stat.st_dev, up_stat.st_ino) == id {
            return Ok(());
        }
        dir = up;
    }
    Ok(())
}

/// Copies bytes with `copy_file_range` (reflinks or in-kernel copies where
/// the file system can), falling back to read and write.
fn copy_bytes(source: &File, destination: &File, shown: &Path) -> FsResult<()> {
    loop {
        match rustix::fs::copy_file_range(source, None, destination, None, 1 << 30) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(Errno::INTR) => {}
            Err(Errno::XDEV | Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP) => break,
            Err(errno) => return Err(FsError::os(errno, shown)),
        }
    }
    let mut reader = source;
    let mut writer = destination;
    std::io::copy(&mut reader, &mut writer).on(shown)?;
    Ok(())
}

fn copy_file(source: &File, mode: u32, parent: &Parent, destination: &Path) -> FsResult<()> {
    let atomic = AtomicFile::create(parent, Some(mode & 0o7777), destination)?;
    copy_bytes(source, atomic.file(), destination)?;
    atomic.commit(false)
}

/// Copies the directory `source` to `name` in `parent_fd`, merging into an
/// existing directory there. Entries are opened with `O_NOFOLLOW` from the
/// fd above them; symlinks are recreated, not followed.
fn copy_dir(
    source: &OwnedFd,
    mode: u32,
    parent_fd: &OwnedFd,
    name: &OsStr,
    shown: &Path,
    depth: usize,
) -> FsResult<()> {
    if depth >= MAX_TREE_DEPTH {
        return Err(FsError::at(
            ErrorKind::TooLarge,
            shown,
            format!("the tree is deeper than {MAX_TREE_DEPTH} levels"),
        ));
    }
    // Owner-only while filling, so a read-only source directory can still
    // be filled; the source's mode is set at the end.
    match rustix::fs::mkdirat(parent_fd, name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(errno) => return Err(FsError::os(errno, shown)),
    }
    let target = rustix::fs::openat(
        parent_fd,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .on(shown)?;
    let mut names = read_names(source, usize::MAX, shown)?;
    names.sort();
    for child in names {
        let child_shown = shown.join(&child);
        let stat = match lstat_at(source, &child) {
            Ok(stat) => stat,
            Err(Errno::NOENT) => continue,
            Err(errno) => return Err(FsError::os(errno, &child_shown)),
        };
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                let sub = rustix::fs::openat(
                    source,
                    &child,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .on(&child_shown)?;
                copy_dir(&sub, stat.st_mode, &target, &child, &child_shown, depth + 1)?;
            }
            FileType::RegularFile => {
                let file = rustix::fs::openat(
                    source,
                    &child,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .on(&child_shown)?;
                let parent = Parent {
                    fd: rustix::io::fcntl_dupfd_cloexec(&target, 0).on(&child_shown)?,
                    name: child.clone(),
                    rel: Default::default(),
                };
                copy_file(&File::from(file), stat.st_mode, &parent, &child_shown)?;
            }
            FileType::Symlink => {
                let link = rustix::fs::readlinkat(source, &child, Vec::new()).on(&child_shown)?;
                match rustix::fs::symlinkat(link.as_c_str(), &target, &child) {
                    Err(Errno::EXIST) => {
                        remove_existing(&target, &child, &child_shown)?;
                        rustix::fs::symlinkat(link.as_c_str(), &target, &child).on(&child_shown)?;
                    }
                    result => result.on(&child_shown)?,
                }
            }
            _ => return Err(not_copyable(&child_shown)),
        }
    }
    rustix::fs::fchmod(&target, Mode::from_raw_mode(mode & 0o7777)).on(shown)
}

/// Makes room for a symlink where a file or empty directory is.
fn remove_existing(dir: impl AsFd, name: &OsStr, shown: &Path) -> FsResult<()> {
    match rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty()) {
        Err(Errno::ISDIR) => {
            rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::REMOVEDIR).on(shown)
        }
        result => result.on(shown),
    }
}

pub(crate) fn rename(fs: &FileSystem, source: &Path, destination: &Path) -> FsResult<()> {
    let from = fs.locate(source, Access::Write)?;
    let to = fs.locate(destination, Access::Write)?;
    let from_parent = from.parent()?;
    let to_parent = to.parent()?;
    fs.check_writable(&from, &from_parent)?;
    fs.check_writable(&to, &to_parent)?;
    match rustix::fs::renameat(
        &from_parent.fd,
        &from_parent.name,
        &to_parent.fd,
        &to_parent.name,
    ) {
        Err(Errno::INVAL) => Err(FsError::at(
            ErrorKind::InvalidPath,
            destination,
            format!("cannot move {} into itself", crate::error::shown(source)),
        )
        .with_errno(Errno::INVAL)),
        Err(errno) => Err(FsError::os(errno, source)),
        Ok(()) => Ok(()),
    }
}
