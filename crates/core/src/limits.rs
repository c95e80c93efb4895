//! The open-files limit: raised for the server, restored for its children.
//!
//! Every connection, pipe, PTY and pidfd costs the server a descriptor, and
//! the soft `RLIMIT_NOFILE` a server inherits is often 1024, far below what
//! the kernel allows it (the hard limit). [`raise_open_files_limit`] lifts
//! the soft limit to the hard one at start. Children must not inherit the
//! raised limit: some programs size tables by it or loop over every
//! possible descriptor (closing them before an exec), which takes seconds at
//! a million. So the spawner puts the original soft limit back in each
//! child, between clone and exec ([`child_soft_limit`]), as systemd
//! recommends for services that raise their own limit.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// The soft limit the server started with, once it was raised; `u64::MAX`
/// while it was not (children then inherit the server's, unchanged).
static ORIGINAL_SOFT: AtomicU64 = AtomicU64::new(u64::MAX);

/// The open-files limit before and after [`raise_open_files_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFilesLimit {
    pub before: u64,
    pub after: u64,
}

/// Raises the soft open-files limit to the hard limit. Children still get
/// the original soft limit.
pub fn raise_open_files_limit() -> io::Result<OpenFilesLimit> {
    let (soft, hard) = open_files_limit()?;
    if soft >= hard {
        return Ok(OpenFilesLimit {
            before: soft,
            after: soft,
        });
    }
    let raised = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct we pass and has no other
    // preconditions.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(io::Error::last_os_error());
    }
    ORIGINAL_SOFT.store(soft, Ordering::SeqCst);
    Ok(OpenFilesLimit {
        before: soft,
        after: hard,
    })
}

/// The current soft and hard open-files limits.
pub fn open_files_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// The soft limit a child should get back, if the server raised its own.
pub(crate) fn child_soft_limit() -> Option<u64> {
    let soft = ORIGINAL_SOFT.load(Ordering::SeqCst);
    (soft != u64::MAX).then_some(soft)
}
