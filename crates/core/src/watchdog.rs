//! The watchdog: a tiny helper process that kills our process groups if the
//! server dies without cleaning up (SIGKILL, OOM kill, crash).
//!
//! The parent-death signal armed in every child covers direct children
//! only. A background job whose parent shell already exited is an orphan:
//! nothing ties it to the server. Each child leads its own process group,
//! though, so killing the groups reaches such jobs. The watchdog remembers
//! every live group and, when the server is gone, kills them all.
//!
//! It is forked once, on the first spawn, by the spawner thread. After the
//! fork it runs only raw system calls on memory prepared before the fork
//! (it is a copy of a multi-threaded process). It learns about groups
//! through a pipe: 4-byte pgids, positive to add, negative to remove,
//! written only by the process-group registry ([`crate::ProcessGroups`]) as
//! groups enter and leave it, so its table mirrors the registry. It
//! detects the server's death as end-of-file on that pipe, whose only write
//! end the server holds (close-on-exec, so children never inherit it). On a
//! normal exit the server has already killed everything and the watchdog
//! finds nothing left to kill.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;

use rustix::pipe::PipeFlags;

/// Groups the watchdog can track at once. Entries are removed when groups
/// end, so this bounds live process groups, not processes ever started.
const TABLE_CAPACITY: usize = 64 * 1024;

struct Watchdog {
    /// Non-blocking write end of the registration pipe.
    pipe: OwnedFd,
}

static WATCHDOG: OnceLock<Option<Watchdog>> = OnceLock::new();

/// Starts the watchdog if it is not running yet. Called from the spawner
/// thread before its first spawn.
pub(crate) fn ensure_started() {
    WATCHDOG.get_or_init(|| match start() {
        Ok(watchdog) => Some(watchdog),
        Err(error) => {
            tracing::warn!(%error, "cannot start the watchdog; orphaned background jobs may outlive a killed server");
            None
        }
    });
}

/// Asks the watchdog to kill `pgid` if the server dies.
pub(crate) fn track(pgid: i32) {
    send(pgid);
}

/// Tells the watchdog that `pgid` has no members left.
pub(crate) fn forget(pgid: i32) {
    send(-pgid);
}

fn send(message: i32) {
    let Some(Some(watchdog)) = WATCHDOG.get() else {
        return;
    };
    // A 4-byte write to a pipe is atomic. If the pipe is full (the watchdog
    // is far behind) the entry is skipped rather than blocking a spawn.
    if let Err(error) = rustix::io::write(&watchdog.pipe, &message.to_ne_bytes()) {
        tracing::debug!(%error, "watchdog registration skipped");
    }
}

fn start() -> io::Result<Watchdog> {
    let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
    let mut table = vec![0i32; TABLE_CAPACITY];
    let read_fd = read.as_raw_fd();
    // SAFETY: the child only runs `watchdog_main`, which makes raw system
    // calls on `table` (allocated above) and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        watchdog_main(read_fd, &mut table);
    }
    drop(read);
    rustix::io::ioctl_fionbio(&write, true)?;
    Ok(Watchdog { pipe: write })
}

/// The watchdog process. Raw system calls only: no allocation, no locks.
fn watchdog_main(read_fd: i32, table: &mut [i32]) -> ! {
    // SAFETY: each call is a plain system call, valid in a forked child.
    unsafe {
        // Keep only the registration pipe: holding the server's stdio or
        // sockets would delay end-of-file for its clients.
        libc::syscall(libc::SYS_close_range, 0, read_fd - 1, 0);
        libc::syscall(libc::SYS_close_range, read_fd + 1, u32::MAX, 0);
        // Leave the server's process group, so a Ctrl-C or a group kill
        // aimed at the server does not take the watchdog down first.
        libc::setpgid(0, 0);
        for signal in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGPIPE,
        ] {
            libc::signal(signal, libc::SIG_IGN);
        }
        let mut buf = [0i32; 256];
        loop {
            let n = libc::read(
                read_fd,
                buf.as_mut_ptr().cast(),
                std::mem::size_of_val(&buf),
            );
            if n == 0 {
                break;
            }
            if n < 0 {
                if *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                break;
            }
            for &message in &buf[..n as usize / 4] {
                if message > 0 {
                    if let Some(slot) = table.iter_mut().find(|slot| **slot == 0) {
                        *slot = message;
                    }
                } else if let Some(slot) = table.iter_mut().find(|slot| **slot == -message) {
                    *slot = 0;
                }
            }
        }
        for &pgid in table.iter().filter(|&&pgid| pgid > 0) {
            libc::kill(-pgid, libc::SIGKILL);
        }
        libc::_exit(0)
    }
}
