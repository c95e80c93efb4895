//! Directories: listing (optionally recursive), creating, removing.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::FileSystem;
use crate::error::{ErrorKind, FsError, FsResult, OnPath};
use crate::meta::{Metadata, statx_at, statx_fd};
use crate::resolve::{Access, Located, lstat_at};

/// Deepest tree a recursive listing, removal or copy descends into.
pub const MAX_TREE_DEPTH: usize = 256;

/// How to list a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListOptions {
    /// Descend into subdirectories (never through symlinks).
    pub recursive: bool,
    /// With `recursive`: levels to list, 1 = the directory's own entries
    /// (default and ceiling [`MAX_TREE_DEPTH`]).
    pub max_depth: Option<usize>,
    /// Stop after this many entries and report `truncated`.
    pub max_entries: usize,
}

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Relative to the listed directory: a name, or `sub/dir/name` in a
    /// recursive listing.
    pub path: PathBuf,
    pub metadata: Metadata,
}

/// A listing: breadth first, each directory's entries sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub entries: Vec<DirEntry>,
    /// The entry cap stopped the listing early. Which entries made it in is
    /// then unspecified beyond "shallower first".
    pub truncated: bool,
}

/// Up to `limit` names of a directory (without `.` and `..`), unsorted.
pub(crate) fn read_names(dir: impl AsFd, limit: usize, shown: &Path) -> FsResult<Vec<OsString>> {
    let mut names = Vec::new();
    let mut entries = rustix::fs::Dir::read_from(dir).on(shown)?;
    while names.len() < limit {
        let Some(entry) = entries.read() else { break };
        let entry = entry.on(shown)?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    Ok(names)
}

pub(crate) fn list(fs: &FileSystem, path: &Path, options: &ListOptions) -> FsResult<Listing> {
    let located = fs.locate(path, Access::Read)?;
    let top = located.open(OFlags::RDONLY | OFlags::DIRECTORY)?;
    let depth_limit = if options.recursive {
        options
            .max_depth
            .unwrap_or(MAX_TREE_DEPTH)
            .clamp(1, MAX_TREE_DEPTH)
    } else {
        1
    };
    let mut listing = Listing::default();
    let mut queue: VecDeque<(PathBuf, usize)> = VecDeque::from([(PathBuf::new(), 1)]);
    'dirs: while let Some((rel, depth)) = queue.pop_front() {
        let dir = if rel.as_os_str().is_empty() {
            rustix::io::fcntl_dupfd_cloexec(&top, 0).on(path)?
        } else {
            // Beneath the listed directory and through no symlink: a
            // directory swapped for a link since we saw it is skipped.
            match rustix::fs::openat2(
                &top,
                &rel,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(dir) => dir,
                Err(_) => continue,
            }
        };
        let room = options.max_entries - listing.entries.len();
        let shown = path.join(&rel);
        let mut names = read_names(&dir, room + 1, &shown)?;
        names.sort();
        for name in names {
            if listing.entries.len() >= options.max_entries {
                listing.truncated = true;
                break 'dirs;
            }
            let stat = match statx_at(&dir, &name) {
                Ok(stat) => stat,
                // Removed since it was listed.
                Err(Errno::NOENT) => continue,
                Err(errno) => return Err(FsError::os(errno, &shown.join(&name))),
            };
            let entry_rel = rel.join(&name);
            let mut metadata = Metadata::from_statx(&stat);
            if metadata.is_symlink {
                let target = located
                    .root
                    .openat2(
                        &located.rel.join(&entry_rel),
                        OFlags::PATH,
                        Mode::empty(),
                        ResolveFlags::empty(),
                        path,
                    )
                    .ok()
                    .and_then(|fd| statx_fd(&fd).ok())
                    .map(|stat| Metadata::from_statx(&stat));
                metadata = Metadata::link(metadata, target);
            } else if metadata.is_directory && depth < depth_limit {
                queue.push_back((entry_rel.clone(), depth + 1));
            }
            listing.entries.push(DirEntry {
                path: entry_rel,
                metadata,
            });
        }
    }
    Ok(listing)
}

/// How to create a directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateDirOptions {
    /// Create missing parents too, and accept an existing directory.
    pub recursive: bool,
    /// Permission bits of the directory, set exactly (no umask), also when
    /// it already exists, like `install -d -m`.
    pub mode: Option<u32>,
}

/// How to remove a path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoveOptions {
    /// Remove a directory with everything in it.
    pub recursive: bool,
    /// A missing path is success.
    pub force: bool,
}

pub(crate) fn create_dir(fs: &FileSystem, path: &Path, options: &CreateDirOptions) -> FsResult<()> {
    crate::write::check_mode(options.mode, path)?;
    let located = fs.locate(path, Access::Write)?;
    if options.recursive {
        let rel = located.rel.clone();
        create_all(fs, &located, &rel)?;
    } else {
        let parent = located.parent()?;
        fs.check_writable(&located, &parent)?;
        rustix::fs::mkdirat(&parent.fd, &parent.name, Mode::from_raw_mode(0o777)).on(path)?;
    }
    let Some(mode) = options.mode else {
        return Ok(());
    };
    let parent = located.parent()?;
    fs.check_writable(&located, &parent)?;
    let dir = rustix::fs::openat(
        &parent.fd,
        &parent.name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .on(path)?;
    rustix::fs::fchmod(&dir, Mode::from_raw_mode(mode)).on(path)
}

/// Creates every missing directory of `rel` (below the located root).
pub(crate) fn create_all(fs: &FileSystem, located: &Located, rel: &Path) -> FsResult<()> {
    let components: Vec<Component> = rel.components().collect();
    for end in 1..=components.len() {
        if !matches!(components[end - 1], Component::Normal(_)) {
            continue;
        }
        let sub: PathBuf = components[..end].iter().collect();
        match located.root.openat2(
            &sub,
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
            ResolveFlags::empty(),
            &located.shown,
        ) {
            Ok(_) => continue,
            Err(error) if error.kind() == ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let parent = located.parent_of(&sub)?;
        fs.check_writable(located, &parent)?;
        match rustix::fs::mkdirat(&parent.fd, &parent.name, Mode::from_raw_mode(0o777)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(errno) => return Err(FsError::os(errno, &located.shown)),
        }
    }
    Ok(())
}

pub(crate) fn remove(fs: &FileSystem, path: &Path, options: &RemoveOptions) -> FsResult<()> {
    let RemoveOptions { recursive, force } = *options;
    let located = fs.locate(path, Access::Write)?;
    let parent = match located.parent() {
        Ok(parent) => parent,
        Err(error) if force && error.kind() == ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    fs.check_writable(&located, &parent)?;
    let stat = match lstat_at(&parent.fd, &parent.name) {
        Ok(stat) => stat,
        Err(Errno::NOENT) if force => return Ok(()),
        Err(errno) => return Err(FsError::os(errno, path)),
    };
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        return rustix::fs::unlinkat(&parent.fd, &parent.name, AtFlags::empty()).on(path);
    }
    if recursive {
        return remove_tree(&parent.fd, &parent.name, path, 0);
    }
    match rustix::fs::unlinkat(&parent.fd, &parent.name, AtFlags::REMOVEDIR) {
        Err(Errno::NOTEMPTY) => Err(FsError::at(
            ErrorKind::DirectoryNotEmpty,
            path,
            "directory not empty; pass recursive: true to remove its content too",
        )
        .with_errno(Errno::NOTEMPTY)),
        result => result.on(path),
    }
}

/// Removes `name` in `dir` and everything below it, never following a
/// symlink: each level is opened with `O_NOFOLLOW` from the fd above it.
fn remove_tree(dir: &OwnedFd, name: &OsStr, shown: &Path, depth: usize) -> FsResult<()> {
    if depth >= MAX_TREE_DEPTH {
        return Err(FsError::at(
            ErrorKind::TooLarge,
            shown,
            format!("the tree is deeper than {MAX_TREE_DEPTH} levels"),
        ));
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .on(shown)?;
    loop {
        // In batches, re-read after each: removing while one directory
        // stream is open may skip entries.
        let names = read_names(&sub, 4096, shown)?;
        if names.is_empty() {
            break;
        }
        for child in names {
            let child_shown = shown.join(&child);
            let is_dir = match lstat_at(&sub, &child) {
                Ok(stat) => FileType::from_raw_mode(stat.st_mode) == FileType::Directory,
                Err(Errno::NOENT) => continue,
                Err(errno) => return Err(FsError::os(errno, &child_shown)),
            };
            if is_dir {
                remove_tree(&sub, &child, &child_shown, depth + 1)?;
            } else {
                match rustix::fs::unlinkat(&sub, &child, AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(errno) => return Err(FsError::os(errno, &child_shown)),
                }
            }
        }
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).on(shown)
}
