//! Landlock through its raw system-call interface: the kernel ABI, the
//! access rights each ABI version knows, and building a ruleset in the
//! parent. The child only calls `landlock_restrict_self` on the ruleset
//! descriptor built here.
//!
//! Why not the `landlock` crate? Its `restrict_self` confines the calling
//! thread; we need the ruleset *descriptor*, built in the server and handed
//! to a vfork child that applies it with one system call. The ABI is three
//! system calls and three small structures, so we own them here.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

// Access rights on files and directories (`LANDLOCK_ACCESS_FS_*`).
pub const EXECUTE: u64 = 1 << 0;
pub const WRITE_FILE: u64 = 1 << 1;
pub const READ_FILE: u64 = 1 << 2;
pub const READ_DIR: u64 = 1 << 3;
pub const REMOVE_DIR: u64 = 1 << 4;
pub const REMOVE_FILE: u64 = 1 << 5;
pub const MAKE_CHAR: u64 = 1 << 6;
pub const MAKE_DIR: u64 = 1 << 7;
pub const MAKE_REG: u64 = 1 << 8;
pub const MAKE_SOCK: u64 = 1 << 9;
pub const MAKE_FIFO: u64 = 1 << 10;
pub const MAKE_BLOCK: u64 = 1 << 11;
pub const MAKE_SYM: u64 = 1 << 12;
/// ABI 2: link or rename a file into another directory.
pub const REFER: u64 = 1 << 13;
/// ABI 3: truncate a file.
pub const TRUNCATE: u64 = 1 << 14;
/// ABI 5: `ioctl` on a character or block device.
pub const IOCTL_DEV: u64 = 1 << 15;

// Network rights (`LANDLOCK_ACCESS_NET_*`, ABI 4).
pub const NET_BIND_TCP: u64 = 1 << 0;
pub const NET_CONNECT_TCP: u64 = 1 << 1;

// Scopes (`LANDLOCK_SCOPE_*`, ABI 6).
pub const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
pub const SCOPE_SIGNAL: u64 = 1 << 1;

/// Rights that make sense on a non-directory; a rule on a file must not
/// name others (the kernel answers EINVAL).
pub const FILE_RIGHTS: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;

/// Reading and running what is beneath a directory.
pub const READ: u64 = EXECUTE | READ_FILE | READ_DIR;

/// The oldest ABI that can keep a tree read-only: ABI 3 added `TRUNCATE`;
/// before it, `truncate(2)` on any readable file was allowed.
pub const MIN_FILESYSTEM_ABI: u32 = 3;

const CREATE_RULESET_VERSION: u32 = 1 << 0;
const RULE_PATH_BENEATH: libc::c_int = 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// Every filesystem right the given ABI version knows.
pub fn fs_rights(abi: u32) -> u64 {
    let mut rights = EXECUTE
        | WRITE_FILE
        | READ_FILE
        | READ_DIR
        | REMOVE_DIR
        | REMOVE_FILE
        | MAKE_CHAR
        | MAKE_DIR
        | MAKE_REG
        | MAKE_SOCK
        | MAKE_FIFO
        | MAKE_BLOCK
        | MAKE_SYM;
    if abi >= 2 {
        rights |= REFER;
    }
    if abi >= 3 {
        rights |= TRUNCATE;
    }
    if abi >= 5 {
        rights |= IOCTL_DEV;
    }
    rights
}

/// The Landlock ABI version the kernel offers, or `None` when Landlock is
/// missing or disabled (ENOSYS, EOPNOTSUPP).
pub fn abi_version() -> Option<u32> {
    // SAFETY: with a null attribute, zero size and the VERSION flag the
    // kernel only returns the ABI version; no memory is touched.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    (version > 0).then_some(version as u32)
}

/// What a ruleset handles: everything handled and not granted by a rule
/// is denied once the ruleset is enforced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handled {
    pub fs: u64,
    pub net: u64,
    pub scoped: u64,
}

impl Handled {
    pub fn is_empty(&self) -> bool {
        self.fs == 0 && self.net == 0 && self.scoped == 0
    }
}

/// An `O_PATH` descriptor naming a rule's file or directory. Opening costs
/// about 3 µs here (open, fstat, close), so paths that never change are
/// opened once and kept.
#[derive(Debug)]
pub struct PathHandle {
    fd: OwnedFd,
    is_dir: bool,
}

impl PathHandle {
    pub fn open(path: &Path) -> io::Result<PathHandle> {
        let fd = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?;
        let is_dir = rustix::fs::fstat(&fd)
            .map(|stat| rustix::fs::FileType::from_raw_mode(stat.st_mode).is_dir())?;
        Ok(PathHandle { fd, is_dir })
    }
}

/// A ruleset being built; [`Ruleset::into_fd`] hands it to the child.
pub struct Ruleset {
    fd: OwnedFd,
    handled_fs: u64,
}

impl Ruleset {
    /// Creates a ruleset handling `handled`, on a kernel offering `abi`.
    pub fn new(handled: Handled, abi: u32) -> io::Result<Ruleset> {
        let attr = RulesetAttr {
            handled_access_fs: handled.fs,
            handled_access_net: handled.net,
            scoped: handled.scoped,
        };
        // Older kernels reject a larger structure with non-zero fields they
        // do not know, so pass only the fields this ABI has.
        let size = match abi {
            0..=3 => 8,
            4 | 5 => 16,
            _ => std::mem::size_of::<RulesetAttr>(),
        };
        // SAFETY: `attr` is a valid ruleset attribute of at least `size`
        // bytes; the call returns a new descriptor or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &raw const attr,
                size,
                0u32,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor to us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok(Ruleset {
            fd,
            handled_fs: handled.fs,
        })
    }

    /// Allows `access` beneath `path` (on `path` itself for a file).
    /// Rights the ruleset does not handle are dropped, and so are
    /// directory-only rights on a file.
    pub fn allow(&mut self, path: &Path, access: u64) -> io::Result<()> {
        self.allow_handle(&PathHandle::open(path)?, access)
    }

    /// Like [`Ruleset::allow`], on an already opened path.
    pub fn allow_handle(&mut self, handle: &PathHandle, access: u64) -> io::Result<()> {
        self.allow_fd(handle.fd.as_raw_fd(), access, handle.is_dir)
    }

    /// Allows `access` on the (non-directory) file open as `fd`.
    pub fn allow_file(&mut self, fd: std::os::fd::BorrowedFd<'_>, access: u64) -> io::Result<()> {
        self.allow_fd(fd.as_raw_fd(), access, false)
    }

    fn allow_fd(&mut self, fd: RawFd, access: u64, is_dir: bool) -> io::Result<()> {
        let mut access = access & self.handled_fs;
        if !is_dir {
            access &= FILE_RIGHTS;
        }
        if access == 0 {
            return Ok(());
        }
        let attr = PathBeneathAttr {
            allowed_access: access,
            parent_fd: fd,
        };
        // SAFETY: `attr` is a valid path-beneath attribute and `fd` an open
        // O_PATH descriptor; the kernel copies both during the call.
        let result = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                self.fd.as_raw_fd(),
                RULE_PATH_BENEATH,
                &raw const attr,
                0u32,
            )
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

/// `landlock_restrict_self`: enforces the ruleset on the calling thread and
/// everything it starts from then on. Async-signal-safe (one system call).
pub fn restrict_self(ruleset: RawFd) -> libc::c_long {
    // SAFETY: a plain system call on a descriptor number.
    unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) }
}
