//! [`FsError`]: what went wrong, as a stable [`ErrorKind`], the errno that
//! caused it (when one did), and a message that names the path at fault.

use std::path::Path;

use rustix::io::Errno;

/// The cause of a failed filesystem operation. Stable: clients match on
/// [`ErrorKind::name`], and the service maps each kind to one JSON-RPC code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The path (or one of its parents) does not exist (`ENOENT`).
    NotFound,
    /// Something already exists where the operation would create (`EEXIST`).
    AlreadyExists,
    /// The operating system refused (`EACCES`, `EPERM`).
    PermissionDenied,
    /// A directory where a file was expected (`EISDIR`).
    IsADirectory,
    /// A file where a directory was expected (`ENOTDIR`).
    NotADirectory,
    /// Removing a directory that still has entries (`ENOTEMPTY`).
    DirectoryNotEmpty,
    /// More bytes than one call may carry, or than the file system allows.
    TooLarge,
    /// The path, or a symlink on the way, leads outside every root the
    /// policy allows for this operation.
    OutsideRoots,
    /// The path is readable but the policy does not allow writing there
    /// (read-only mode, outside the writable roots, or a read-only subpath
    /// such as `.git`), or the file system is read-only (`EROFS`).
    ReadOnly,
    /// A FIFO, socket or device where a regular file was expected.
    NotAFile,
    /// Too many symlinks, or a symlink where none may be followed (`ELOOP`).
    SymlinkLoop,
    /// The path or one of its names is too long (`ENAMETOOLONG`).
    NameTooLong,
    /// The path is not usable: relative, contains a NUL byte, ends in `..`.
    InvalidPath,
    /// A rename across file systems (`EXDEV`).
    CrossesDevices,
    /// No space or quota left (`ENOSPC`, `EDQUOT`).
    NoSpace,
    /// The file is busy (`EBUSY`, `ETXTBSY`).
    Busy,
    /// Any other operating system error.
    Io,
}

impl ErrorKind {
    /// The stable camelCase name carried on the wire.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "notFound",
            ErrorKind::AlreadyExists => "alreadyExists",
            ErrorKind::PermissionDenied => "permissionDenied",
            ErrorKind::IsADirectory => "isADirectory",
            ErrorKind::NotADirectory => "notADirectory",
            ErrorKind::DirectoryNotEmpty => "directoryNotEmpty",
            ErrorKind::TooLarge => "tooLarge",
            ErrorKind::OutsideRoots => "outsideRoots",
            ErrorKind::ReadOnly => "readOnly",
            ErrorKind::NotAFile => "notAFile",
            ErrorKind::SymlinkLoop => "symlinkLoop",
            ErrorKind::NameTooLong => "nameTooLong",
            ErrorKind::InvalidPath => "invalidPath",
            ErrorKind::CrossesDevices => "crossesDevices",
            ErrorKind::NoSpace => "noSpace",
            ErrorKind::Busy => "busy",
            ErrorKind::Io => "io",
        }
    }

    fn from_errno(errno: Errno) -> ErrorKind {
        match errno {
            Errno::NOENT => ErrorKind::NotFound,
            Errno::EXIST => ErrorKind::AlreadyExists,
            Errno::ACCESS | Errno::PERM => ErrorKind::PermissionDenied,
            Errno::ISDIR => ErrorKind::IsADirectory,
            Errno::NOTDIR => ErrorKind::NotADirectory,
            Errno::NOTEMPTY => ErrorKind::DirectoryNotEmpty,
            Errno::FBIG => ErrorKind::TooLarge,
            Errno::LOOP => ErrorKind::SymlinkLoop,
            Errno::NAMETOOLONG => ErrorKind::NameTooLong,
            Errno::XDEV => ErrorKind::CrossesDevices,
            Errno::NOSPC | Errno::DQUOT => ErrorKind::NoSpace,
            Errno::BUSY | Errno::TXTBSY => ErrorKind::Busy,
            Errno::ROFS => ErrorKind::ReadOnly,
            _ => ErrorKind::Io,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "no such file or directory",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::IsADirectory => "is a directory",
            ErrorKind::NotADirectory => "not a directory",
            ErrorKind::DirectoryNotEmpty => "directory not empty",
            ErrorKind::TooLarge => "too large",
            ErrorKind::OutsideRoots => "outside the allowed roots",
            ErrorKind::ReadOnly => "read-only",
            ErrorKind::NotAFile => "not a regular file",
            ErrorKind::SymlinkLoop => "too many levels of symbolic links",
            ErrorKind::NameTooLong => "name too long",
            ErrorKind::InvalidPath => "invalid path",
            ErrorKind::CrossesDevices => "cannot rename across file systems",
            ErrorKind::NoSpace => "no space left on device",
            ErrorKind::Busy => "file busy",
            ErrorKind::Io => "input/output error",
        }
    }
}

/// A failed filesystem operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FsError {
    kind: ErrorKind,
    errno: Option<Errno>,
    message: String,
}

/// Longest path echoed in an error message, in bytes: a client that sends
/// a 100 KB path gets a readable message, not its path back.
const MAX_PATH_IN_MESSAGE: usize = 512;

/// How a path appears in messages: lossy UTF-8, cut when very long.
pub(crate) fn shown(path: &Path) -> String {
    let text = path.to_string_lossy();
    if text.len() <= MAX_PATH_IN_MESSAGE {
        return text.into_owned();
    }
    let mut end = MAX_PATH_IN_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl FsError {
    /// An error with a kind and a complete message, and no errno.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> FsError {
        FsError {
            kind,
            errno: None,
            message: message.into(),
        }
    }

    /// An operating system error about `path`: `PATH: REASON`.
    pub fn os(errno: Errno, path: &Path) -> FsError {
        let kind = ErrorKind::from_errno(errno);
        let reason = match kind {
            ErrorKind::Io => std::io::Error::from_raw_os_error(errno.raw_os_error())
                .to_string()
                .to_lowercase(),
            kind => kind.reason().to_string(),
        };
        FsError {
            kind,
            errno: Some(errno),
            message: format!("{}: {reason}", shown(path)),
        }
    }

    /// A kind about `path` without an errno: `PATH: DETAIL`.
    pub fn at(kind: ErrorKind, path: &Path, detail: impl std::fmt::Display) -> FsError {
        FsError::new(kind, format!("{}: {detail}", shown(path)))
    }

    pub(crate) fn with_errno(mut self, errno: Errno) -> FsError {
        self.errno = Some(errno);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn errno(&self) -> Option<Errno> {
        self.errno
    }

    /// The symbolic errno name (`"ENOENT"`), when an errno caused this.
    pub fn errno_name(&self) -> Option<&'static str> {
        self.errno.map(errno_name)
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The symbolic name of an errno, as in `<errno.h>`.
pub fn errno_name(errno: Errno) -> &'static str {
    const NAMES: &[(Errno, &str)] = &[
        (Errno::PERM, "EPERM"),
        (Errno::NOENT, "ENOENT"),
        (Errno::INTR, "EINTR"),
        (Errno::IO, "EIO"),
        (Errno::NXIO, "ENXIO"),
        (Errno::BADF, "EBADF"),
        (Errno::AGAIN, "EAGAIN"),
        (Errno::NOMEM, "ENOMEM"),
        (Errno::ACCESS, "EACCES"),
        (Errno::FAULT, "EFAULT"),
        (Errno::BUSY, "EBUSY"),
        (Errno::EXIST, "EEXIST"),
        (Errno::XDEV, "EXDEV"),
        (Errno::NODEV, "ENODEV"),
        (Errno::NOTDIR, "ENOTDIR"),
        (Errno::ISDIR, "EISDIR"),
        (Errno::INVAL, "EINVAL"),
        (Errno::NFILE, "ENFILE"),
        (Errno::MFILE, "EMFILE"),
        (Errno::TXTBSY, "ETXTBSY"),
        (Errno::FBIG, "EFBIG"),
        (Errno::NOSPC, "ENOSPC"),
        (Errno::SPIPE, "ESPIPE"),
        (Errno::ROFS, "EROFS"),
        (Errno::MLINK, "EMLINK"),
        (Errno::NAMETOOLONG, "ENAMETOOLONG"),
        (Errno::NOTEMPTY, "ENOTEMPTY"),
        (Errno::LOOP, "ELOOP"),
        (Errno::NOSYS, "ENOSYS"),
        (Errno::OPNOTSUPP, "EOPNOTSUPP"),
        (Errno::DQUOT, "EDQUOT"),
        (Errno::STALE, "ESTALE"),
        (Errno::OVERFLOW, "EOVERFLOW"),
        (Errno::NOTSUP, "ENOTSUP"),
    ];
    NAMES
        .iter()
        .find(|(e, _)| *e == errno)
        .map(|(_, name)| *name)
        .unwrap_or("EUNKNOWN")
}

/// Shorthand for results of this crate.
pub type FsResult<T> = Result<T, FsError>;

/// Attaches the path to a raw syscall error.
pub(crate) trait OnPath<T> {
    fn on(self, path: &Path) -> FsResult<T>;
}

impl<T> OnPath<T> for rustix::io::Result<T> {
    fn on(self, path: &Path) -> FsResult<T> {
        self.map_err(|errno| FsError::os(errno, path))
    }
}

impl<T> OnPath<T> for std::io::Result<T> {
    fn on(self, path: &Path) -> FsResult<T> {
        self.map_err(|error| match error.raw_os_error() {
            Some(raw) => FsError::os(Errno::from_raw_os_error(raw), path),
            None => FsError::at(ErrorKind::Io, path, error),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_and_kinds() {
        let error = FsError::os(Errno::NOENT, Path::new("/x/y"));
        assert_eq!(error.kind(), ErrorKind::NotFound);
        assert_eq!(error.errno_name(), Some("ENOENT"));
        assert_eq!(error.message(), "/x/y: no such file or directory");
        let error = FsError::os(Errno::IO, Path::new("/d"));
        assert_eq!(error.kind(), ErrorKind::Io);
        assert!(
            error.message().starts_with("/d: input/output error"),
            "{error}"
        );
    }

    #[test]
    fn long_paths_are_cut_in_messages() {
        let long = format!("/{}", "é".repeat(60_000));
        let error = FsError::os(Errno::NAMETOOLONG, Path::new(&long));
        assert!(error.message().len() < 700, "{}", error.message().len());
        assert!(error.message().ends_with("…: name too long"));
    }
}
