//! Path resolution that cannot leave a root.
//!
//! Every request path is checked (absolute, no NUL byte, at most
//! `PATH_MAX`), matched to the longest policy root that contains it, and
//! then resolved by the kernel *beneath that root's directory fd* with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: a `..` or a symlink
//! that would climb out of the root fails with `EXDEV` instead of being
//! followed, whatever the path looks like and whatever happens to the tree
//! while we resolve it. Operations then act on the resulting fds with the
//! `*at` syscalls, so a symlink swapped in after the check changes nothing:
//! the final name is never followed except through another resolution
//! beneath the root.
//!
//! The root `/` (the unrestricted policy) is resolved without
//! `RESOLVE_BENEATH`: nothing is outside it, and absolute symlinks must keep
//! working there. Beneath any other root, `RESOLVE_BENEATH` refuses absolute
//! symlinks altogether, even ones that point back inside the root; that is
//! the kernel's rule and we keep it (documented in docs/FILES.md).

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{ErrorKind, FsError, FsResult, OnPath, shown};

/// Longest accepted path in bytes (`PATH_MAX` less its NUL).
pub const MAX_PATH_BYTES: usize = 4095;
/// Longest name of one path component (`NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;
/// Symlinks followed by hand (final components of write targets).
const MAX_SYMLINK_HOPS: usize = 40;
/// `openat2` reports `EAGAIN` when a rename or mount raced with a
/// `RESOLVE_BENEATH` lookup; it is safe to try again.
const MAX_RESOLVE_RETRIES: usize = 32;
/// Directory levels walked when checking read-only subpaths.
const MAX_ANCESTORS: usize = 4096;

/// What a request wants to do with a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// A policy root, opened for this request.
pub(crate) struct Root {
    pub path: PathBuf,
    pub fd: OwnedFd,
    /// Resolve with `RESOLVE_BENEATH` (every root but `/`).
    beneath: bool,
}

/// A request path matched to its root: the root and the path below it.
pub(crate) struct Located {
    pub root: Root,
    pub rel: PathBuf,
    /// The path as the client gave it, for messages.
    pub shown: PathBuf,
}

/// The directory holding a name, resolved beneath a root.
pub(crate) struct Parent {
    pub fd: OwnedFd,
    pub name: OsString,
    /// The path of the directory below the root.
    pub rel: PathBuf,
}

/// Checks the shape of a request path.
pub fn check_path(path: &Path) -> FsResult<()> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.contains(&0) {
        return Err(FsError::at(
            ErrorKind::InvalidPath,
            path,
            "path contains a NUL byte",
        ));
    }
    if bytes.len() > MAX_PATH_BYTES {
        return Err(FsError::new(
            ErrorKind::NameTooLong,
            format!(
                "path of {} bytes is longer than the limit of {MAX_PATH_BYTES} bytes (PATH_MAX)",
                bytes.len()
            ),
        )
        .with_errno(Errno::NAMETOOLONG));
    }
    if !path.is_absolute() {
        return Err(FsError::at(
            ErrorKind::InvalidPath,
            path,
            "path must be absolute",
        ));
    }
    if let Some(name) = path
        .components()
        .find(|c| c.as_os_str().len() > MAX_NAME_BYTES)
    {
        return Err(FsError::at(
            ErrorKind::NameTooLong,
            path,
            format!(
                "a name of {} bytes is longer than the limit of {MAX_NAME_BYTES} bytes (NAME_MAX)",
                name.as_os_str().len()
            ),
        )
        .with_errno(Errno::NAMETOOLONG));
    }
    Ok(())
}

/// `path` with `.` dropped and `..` applied to the names before it, as
/// text only (symlinks are not consulted).
pub(crate) fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn rel_or_dot(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

impl Root {
    fn open(path: &Path, beneath: bool) -> FsResult<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| {
            FsError::at(
                ErrorKind::from_root_errno(errno),
                path,
                format!(
                    "policy root cannot be opened: {}",
                    std::io::Error::from_raw_os_error(errno.raw_os_error())
                ),
            )
            .with_errno(errno)
        })?;
        Ok(Root {
            path: path.to_path_buf(),
            fd,
            beneath,
        })
    }

    fn resolve_flags(&self) -> ResolveFlags {
        if self.beneath {
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
        } else {
            ResolveFlags::NO_MAGICLINKS
        }
    }

    /// `openat2` beneath this root, retrying the races the kernel reports.
    pub fn openat2(
        &self,
        rel: &Path,
        flags: OFlags,
        mode: Mode,
        extra: ResolveFlags,
        shown: &Path,
    ) -> FsResult<OwnedFd> {
        let rel = rel_or_dot(rel);
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(
                &self.fd,
                rel,
                flags | OFlags::CLOEXEC,
                mode,
                self.resolve_flags() | extra,
            ) {
                Err(Errno::AGAIN) if tries < MAX_RESOLVE_RETRIES => tries += 1,
                Err(Errno::XDEV) if self.beneath => {
                    return Err(FsError::at(
                        ErrorKind::OutsideRoots,
                        shown,
                        format!(
                            "the path or a symlink on it leads outside the root {}",
                            shown_root(&self.path)
                        ),
                    )
                    .with_errno(Errno::XDEV));
                }
                Err(Errno::LOOP) if extra.contains(ResolveFlags::NO_SYMLINKS) => {
                    return Err(FsError::at(
                        ErrorKind::SymlinkLoop,
                        shown,
                        "a symlink appeared where none may be followed",
                    )
                    .with_errno(Errno::LOOP));
                }
                result => return result.on(shown),
            }
        }
    }

    /// The (device, inode) of this root directory.
    pub fn id(&self) -> FsResult<(u64, u64)> {
        let stat = rustix::fs::fstat(&self.fd).on(&self.path)?;
        Ok((stat.st_dev, stat.st_ino))
    }
}

fn shown_root(path: &Path) -> String {
    shown(path)
}

impl ErrorKind {
    fn from_root_errno(errno: Errno) -> ErrorKind {
        match errno {
            Errno::NOENT => ErrorKind::NotFound,
            Errno::ACCESS | Errno::PERM => ErrorKind::PermissionDenied,
            Errno::NOTDIR => ErrorKind::NotADirectory,
            _ => ErrorKind::Io,
        }
    }
}

impl Located {
    /// Opens the path beneath its root, following symlinks that stay inside.
    pub fn open(&self, flags: OFlags) -> FsResult<OwnedFd> {
        self.root.openat2(
            &self.rel,
            flags,
            Mode::empty(),
            ResolveFlags::empty(),
            &self.shown,
        )
    }

    /// The directory holding the final name of `rel`, and that name.
    pub fn parent_of(&self, rel: &Path) -> FsResult<Parent> {
        let mut components: Vec<Component> = rel.components().collect();
        let name = match components.pop() {
            Some(Component::Normal(name)) => name.to_os_string(),
            Some(Component::ParentDir) => {
                return Err(FsError::at(
                    ErrorKind::InvalidPath,
                    &self.shown,
                    "path must not end in `..`",
                ));
            }
            _ => {
                return Err(FsError::at(
                    ErrorKind::PermissionDenied,
                    &self.shown,
                    "a policy root cannot be created, replaced, removed or renamed",
                ));
            }
        };
        let parent_rel: PathBuf = components.iter().collect();
        let fd = self.root.openat2(
            &parent_rel,
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
            ResolveFlags::empty(),
            &self.shown,
        )?;
        Ok(Parent {
            fd,
            name,
            rel: parent_rel,
        })
    }

    /// The parent of the request path itself.
    pub fn parent(&self) -> FsResult<Parent> {
        self.parent_of(&self.rel)
    }

    /// Where a write to this path lands: like [`Self::parent`], but a
    /// symlink as the final name is followed (by hand, each hop resolved
    /// beneath the root again), so writing to a link writes its target.
    pub fn write_parent(&self) -> FsResult<Parent> {
        let mut rel = self.rel.clone();
        for _ in 0..MAX_SYMLINK_HOPS {
            let parent = self.parent_of(&rel)?;
            let target = match rustix::fs::readlinkat(&parent.fd, &parent.name, Vec::new()) {
                Ok(target) => PathBuf::from(OsString::from_vec(target.into_bytes())),
                // Not a symlink, or nothing there yet: write here.
                Err(Errno::INVAL) | Err(Errno::NOENT) => return Ok(parent),
                Err(errno) => return Err(FsError::os(errno, &self.shown)),
            };
            rel = if target.is_absolute() {
                match target.strip_prefix(&self.root.path) {
                    Ok(inside) => inside.to_path_buf(),
                    Err(_) => {
                        return Err(FsError::at(
                            ErrorKind::OutsideRoots,
                            &self.shown,
                            format!(
                                "the symlink points outside the root {}",
                                shown(&self.root.path)
                            ),
                        ));
                    }
                }
            } else {
                parent.rel.join(target)
            };
        }
        Err(FsError::os(Errno::LOOP, &self.shown))
    }
}

/// Statistics of a name in a directory, without following a final symlink.
pub(crate) fn lstat_at(dir: impl AsFd, name: &OsStr) -> rustix::io::Result<rustix::fs::Stat> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
}

impl crate::FileSystem {
    /// Matches `path` to the root that governs `access` to it and opens
    /// that root.
    pub(crate) fn locate(&self, path: &Path, access: Access) -> FsResult<Located> {
        check_path(path)?;
        let policy = &self.policy;
        let writable = policy.writes.then_some(&policy.writable_roots);
        let best = |roots: &mut dyn Iterator<Item = &PathBuf>| {
            roots
                .filter(|root| path.starts_with(root))
                .max_by_key(|root| root.components().count())
                .cloned()
        };
        let root = match access {
            Access::Write => {
                let Some(writable) = writable else {
                    return Err(FsError::at(
                        ErrorKind::ReadOnly,
                        path,
                        "the file system policy is read-only",
                    ));
                };
                match best(&mut writable.iter()) {
                    Some(root) => root,
                    None if self.readable(path) => {
                        return Err(FsError::at(
                            ErrorKind::ReadOnly,
                            path,
                            "not inside a writable root of the file system policy",
                        ));
                    }
                    None => return Err(outside(path)),
                }
            }
            Access::Read => match &policy.readable_roots {
                None => PathBuf::from("/"),
                Some(readable) => {
                    let mut all = readable.iter().chain(writable.into_iter().flatten());
                    best(&mut all).ok_or_else(|| outside(path))?
                }
            },
        };
        let beneath = root != Path::new("/");
        let rel = path
            .strip_prefix(&root)
            .expect("the root is a prefix of the path")
            .to_path_buf();
        if access == Access::Write {
            // By name first, so a missing parent inside `.git` is refused
            // as read-only rather than reported as missing.
            self.check_subpath_name(&root, path, &rel)?;
        }
        Ok(Located {
            root: Root::open(&root, beneath)?,
            rel,
            shown: path.to_path_buf(),
        })
    }

    fn readable(&self, path: &Path) -> bool {
        match &self.policy.readable_roots {
            None => true,
            Some(roots) => roots.iter().any(|root| path.starts_with(root)),
        }
    }

    /// Refuses a path below the root whose first name, after `.` and `..`
    /// are applied as text, is a read-only subpath.
    fn check_subpath_name(&self, root: &Path, shown: &Path, rel: &Path) -> FsResult<()> {
        let subpaths = &self.policy.read_only_subpaths;
        if let Some(Component::Normal(first)) = lexical(rel).components().next()
            && subpaths.iter().any(|s| s == first)
        {
            return Err(self.read_only_subpath(root, shown));
        }
        Ok(())
    }

    fn read_only_subpath(&self, root: &Path, shown: &Path) -> FsError {
        let names: Vec<_> = self
            .policy
            .read_only_subpaths
            .iter()
            .map(|s| s.to_string_lossy())
            .collect();
        FsError::at(
            ErrorKind::ReadOnly,
            shown,
            format!(
                "inside a read-only subpath ({}) of the writable root {}",
                names.join(", "),
                crate::error::shown(root)
            ),
        )
    }

    /// Refuses writes inside a read-only subpath (e.g. `.git`) of the root.
    ///
    /// Checked twice: by name, so `ROOT/.git/x` is refused even before
    /// `.git` exists; and by identity, walking up from the target's
    /// directory fd to the root and comparing each directory with the
    /// protected ones, so a symlink or `..` that reaches `.git` by another
    /// name is refused too.
    pub(crate) fn check_writable(&self, located: &Located, parent: &Parent) -> FsResult<()> {
        let subpaths = &self.policy.read_only_subpaths;
        if subpaths.is_empty() {
            return Ok(());
        }
        let denied = || self.read_only_subpath(&located.root.path, &located.shown);
        self.check_subpath_name(
            &located.root.path,
            &located.shown,
            &parent.rel.join(&parent.name),
        )?;
        let protected: Vec<(u64, u64)> = subpaths
            .iter()
            .filter_map(|sub| lstat_at(&located.root.fd, sub).ok())
            .map(|stat| (stat.st_dev, stat.st_ino))
            .collect();
        if protected.is_empty() {
            return Ok(());
        }
        if let Ok(stat) = lstat_at(&parent.fd, &parent.name)
            && protected.contains(&(stat.st_dev, stat.st_ino))
        {
            return Err(denied());
        }
        let root = located.root.id()?;
        let mut dir = rustix::fs::openat(
            &parent.fd,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .on(&located.shown)?;
        for _ in 0..MAX_ANCESTORS {
            let stat = rustix::fs::fstat(&dir).on(&located.shown)?;
            let id = (stat.st_dev, stat.st_ino);
            if protected.contains(&id) {
                return Err(denied());
            }
            if id == root {
                return Ok(());
            }
            let up = rustix::fs::openat(
                &dir,
                "..",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .on(&located.shown)?;
            let up_stat = rustix::fs::fstat(&up).on(&located.shown)?;
            if (up_stat.st_dev, up_stat.st_ino) == id {
                // `/`: the directory was moved out of the root meanwhile.
                return Ok(());
            }
            dir = up;
        }
        Ok(())
    }
}

fn outside(path: &Path) -> FsError {
    FsError::at(
        ErrorKind::OutsideRoots,
        path,
        "not inside any root of the file system policy",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_shapes() {
        assert!(check_path(Path::new("/a/b")).is_ok());
        let kind = |p: &Path| check_path(p).unwrap_err().kind();
        assert_eq!(kind(Path::new("a/b")), ErrorKind::InvalidPath);
        assert_eq!(
            kind(Path::new(OsStr::from_bytes(b"/a\0b"))),
            ErrorKind::InvalidPath
        );
        let long = format!("/{}", "a/".repeat(60_000));
        assert_eq!(kind(Path::new(&long)), ErrorKind::NameTooLong);
        let long_name = format!("/{}", "n".repeat(300));
        assert_eq!(kind(Path::new(&long_name)), ErrorKind::NameTooLong);
    }

    #[test]
    fn lexical_normalisation() {
        assert_eq!(lexical(Path::new("a/./b/../c")), PathBuf::from("a/c"));
        assert_eq!(lexical(Path::new("x/../../.git")), PathBuf::from(".git"));
    }
}
