//! Read-only subpaths (`.git` inside a writable workspace) through a mount
//! namespace prepared once and entered by each child with `setns`.
//!
//! Landlock only grants: a right on a directory covers its whole subtree,
//! so "writable, except `.git`" cannot be a Landlock rule. A read-only bind
//! mount of `.git` onto itself can: writes fail with EROFS whatever path
//! leads there (symlinks, `..`), a hard link or rename across the mount
//! fails with EXDEV, and the mount point itself cannot be renamed or
//! removed (EBUSY).
//!
//! Creating a mount namespace per spawn (`CLONE_NEWNS` plus the mounts)
//! cost 120–150 µs per spawn here, and up to milliseconds at p90 (copying
//! and tearing down the mount table); entering a prepared one with `setns`
//! costs nothing measurable (see docs/SANDBOX.md). So the spawner thread
//! keeps *template* namespaces, one per set of protected paths: a helper
//! clone (sharing our descriptor table) unshares the mount namespace —
//! and, for a server without CAP_SYS_ADMIN, a user namespace mapping only
//! its own uid and gid — makes the bind mounts, opens its namespace files
//! and exits; the descriptors keep the namespaces alive.
//!
//! A template is a snapshot, so it is rebuilt when it could be stale: the
//! protected set changed (a `.git` appeared, or was replaced: its device
//! and inode are part of the key), or the server's mount table changed
//! (`poll` on `/proc/self/mountinfo` reports every mount and unmount), so a
//! sandboxed process never sees an outdated view of the host's mounts.

use std::collections::VecDeque;
use std::ffi::{CStr, CString, c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};

/// A path kept read-only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Protected {
    /// Canonical absolute path.
    pub path: CString,
    /// Device and inode when the policy was prepared: a replaced directory
    /// needs a new bind mount.
    pub dev: u64,
    pub ino: u64,
    /// Flags of the mount it lives on (nosuid, nodev, …), kept by the
    /// read-only remount (a user namespace may not clear them).
    pub mount_flags: libc::c_ulong,
}

impl Protected {
    /// Describes `path` as it is now.
    pub fn of(path: &std::path::Path) -> io::Result<Protected> {
        use std::os::unix::ffi::OsStrExt;
        let path_c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let stat = rustix::fs::stat(path)?;
        // SAFETY: statvfs writes into `vfs`; `path_c` is NUL-terminated.
        let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path_c.as_ptr(), &mut vfs) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Protected {
            path: path_c,
            dev: stat.st_dev,
            ino: stat.st_ino,
            mount_flags: mount_flags(vfs.f_flag),
        })
    }
}

/// `statvfs` flags → the `MS_*` flags a bind remount must keep.
fn mount_flags(st: libc::c_ulong) -> libc::c_ulong {
    let mut flags = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    flags
}

/// A prepared namespace to enter.
pub(crate) struct Template {
    pub mount_ns: OwnedFd,
    /// Set when the namespace belongs to a user namespace of ours (a server
    /// without CAP_SYS_ADMIN): enter it first.
    pub user_ns: Option<OwnedFd>,
    protected: Vec<Protected>,
}

/// Templates owned by the spawner thread, most recently used first.
pub(crate) struct TemplateCache {
    entries: VecDeque<Arc<Template>>,
    /// `/proc/self/mountinfo`: `poll` reports a change of the mount table.
    mountinfo: Option<OwnedFd>,
}

/// Templates kept at once; older ones are dropped (their namespaces go
/// away with the last process inside).
const MAX_TEMPLATES: usize = 16;

impl TemplateCache {
    pub fn new() -> Self {
        TemplateCache {
            entries: VecDeque::new(),
            mountinfo: None,
        }
    }

    /// A template protecting exactly `protected`, built if needed. Runs on
    /// the spawner thread (it clones a helper).
    pub fn get(
        &mut self,
        protected: &[Protected],
        user_ns: bool,
        stack: &mut [u8],
    ) -> Result<Arc<Template>, HelperError> {
        if self.mount_table_changed() {
            self.entries.clear();
        }
        if let Some(index) = self
            .entries
            .iter()
            .position(|t| t.protected == protected && t.user_ns.is_some() == user_ns)
        {
            let template = self.entries.remove(index).expect("index is in range");
            self.entries.push_front(template.clone());
            return Ok(template);
        }
        let template = Arc::new(build(protected, user_ns, stack)?);
        self.entries.push_front(template.clone());
        self.entries.truncate(MAX_TEMPLATES);
        Ok(template)
    }

    fn mount_table_changed(&mut self) -> bool {
        if self.mountinfo.is_none() {
            // The first poll after opening reports no change: templates
            // built from now on see the current table.
            self.mountinfo = rustix::fs::open(
                "/proc/self/mountinfo",
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok();
            return false;
        }
        let Some(fd) = &self.mountinfo else {
            return true;
        };
        let mut pollfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no waiting.
        let ready = unsafe { libc::poll(&mut pollfd, 1, 0) };
        ready != 0 && pollfd.revents & (libc::POLLPRI | libc::POLLERR) != 0
    }
}

/// Why a template could not be built: the step and the kernel's error.
#[derive(Debug)]
pub(crate) struct HelperError {
    pub step: &'static str,
    pub error: io::Error,
}

struct HelperArgs {
    user_ns: bool,
    uid_map: CString,
    gid_map: CString,
    targets: Vec<(CString, libc::c_ulong)>,
    mount_ns: c_int,
    user_ns_fd: c_int,
    step: c_int,
    error: c_int,
}

const HELPER_STEPS: &[&str] = &[
    "",
    "creating the mount namespace",
    "mapping the uid and gid in the user namespace",
    "making the mount tree private",
    "bind-mounting a read-only subpath",
    "remounting a subpath read-only",
    "opening the namespace",
];

fn build(
    protected: &[Protected],
    user_ns: bool,
    stack: &mut [u8],
) -> Result<Template, HelperError> {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut args = HelperArgs {
        user_ns,
        uid_map: CString::new(format!("{uid} {uid} 1")).expect("digits have no NUL"),
        gid_map: CString::new(format!("{gid} {gid} 1")).expect("digits have no NUL"),
        targets: protected
            .iter()
            .map(|p| (p.path.clone(), p.mount_flags))
            .collect(),
        mount_ns: -1,
        user_ns_fd: -1,
        step: 0,
        error: 0,
    };
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
    let mut flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_FILES | libc::CLONE_NEWNS;
    if user_ns {
        flags |= libc::CLONE_NEWUSER;
    }
    // SAFETY: `helper_main` only makes raw system calls on `args`, which
    // outlives the call (CLONE_VFORK suspends this thread until the helper
    // exits). It shares our descriptor table (CLONE_FILES), so the
    // namespace descriptors it opens are ours afterwards.
    let pid = unsafe {
        libc::clone(
            helper_main,
            top as *mut c_void,
            flags | libc::SIGCHLD,
            (&raw mut args).cast::<c_void>(),
        )
    };
    if pid < 0 {
        return Err(HelperError {
            step: HELPER_STEPS[1],
            error: io::Error::last_os_error(),
        });
    }
    let mut status = 0;
    // SAFETY: `pid` is our child, already exited or about to.
    unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    // SAFETY: the helper is gone; volatile reads of what it wrote.
    let (step, error, mount_ns, user_ns_fd) = unsafe {
        (
            std::ptr::read_volatile(&raw const args.step),
            std::ptr::read_volatile(&raw const args.error),
            std::ptr::read_volatile(&raw const args.mount_ns),
            std::ptr::read_volatile(&raw const args.user_ns_fd),
        )
    };
    // SAFETY: descriptors the helper opened in our shared table, now ours.
    let take = |fd: c_int| (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
    let (mount_ns, user_ns_fd) = (take(mount_ns), take(user_ns_fd));
    if step != 0 {
        return Err(HelperError {
            step: HELPER_STEPS.get(step as usize).copied().unwrap_or("?"),
            error: io::Error::from_raw_os_error(error),
        });
    }
    let Some(mount_ns) = mount_ns else {
        return Err(HelperError {
            step: HELPER_STEPS[6],
            error: io::Error::other(format!("the helper exited with status {status}")),
        });
    };
    if user_ns && user_ns_fd.is_none() {
        return Err(HelperError {
            step: HELPER_STEPS[6],
            error: io::Error::other("no user namespace descriptor"),
        });
    }
    Ok(Template {
        mount_ns,
        user_ns: user_ns_fd,
        protected: protected.to_vec(),
    })
}

/// Writes `data` to the file at `path`. Raw system calls only.
unsafe fn write_file(path: &CStr, data: &[u8]) -> bool {
    // SAFETY: plain system calls on a NUL-terminated path and a slice.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let written = libc::write(fd, data.as_ptr().cast(), data.len());
        libc::close(fd);
        written == data.len() as isize
    }
}

/// The helper, in its new namespaces, sharing our memory and descriptor
/// table. Raw system calls only: no allocation, no locks.
extern "C" fn helper_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's HelperArgs, alive for the vfork window.
    let args = unsafe { &mut *arg.cast::<HelperArgs>() };
    let fail = |args: &mut HelperArgs, step: c_int| -> c_int {
        // SAFETY: errno is readable; volatile writes publish to the parent.
        unsafe {
            std::ptr::write_volatile(&raw mut args.error, *libc::__errno_location());
            std::ptr::write_volatile(&raw mut args.step, step);
            libc::_exit(1)
        }
    };
    // SAFETY: each call is one system call on memory prepared by the parent.
    unsafe {
        if args.user_ns {
            // An unprivileged process may map only its own ids, and only
            // after giving up setgroups.
            let ok = write_file(c"/proc/self/setgroups", b"deny")
                && write_file(c"/proc/self/uid_map", args.uid_map.as_bytes())
                && write_file(c"/proc/self/gid_map", args.gid_map.as_bytes());
            if !ok {
                return fail(args, 2);
            }
        }
        // Our mounts must not propagate back to the host.
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ) != 0
        {
            return fail(args, 3);
        }
        for (path, flags) in &args.targets {
            if libc::mount(
                path.as_ptr(),
                path.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ) != 0
            {
                return fail(args, 4);
            }
            if libc::mount(
                std::ptr::null(),
                path.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | flags,
                std::ptr::null(),
            ) != 0
            {
                return fail(args, 5);
            }
        }
        let fd = libc::open(
            c"/proc/self/ns/mnt".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return fail(args, 6);
        }
        std::ptr::write_volatile(&raw mut args.mount_ns, fd);
        if args.user_ns {
            let fd = libc::open(
                c"/proc/self/ns/user".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return fail(args, 6);
            }
            std::ptr::write_volatile(&raw mut args.user_ns_fd, fd);
        }
        libc::_exit(0)
    }
}
