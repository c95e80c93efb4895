//! The child side: confining a freshly cloned child before `execve`.
//!
//! Runs between `clone(CLONE_VM | CLONE_VFORK)` and `execve`, sharing the
//! server's memory: raw system calls only, on values prepared by the
//! parent. No allocation, no locks, no panics.

use std::ffi::c_int;
use std::os::fd::RawFd;

use super::landlock;
use super::probe::{CAPABILITY_VERSION_3, CapData, CapHeader};

/// What the child needs, as plain values.
pub(crate) struct Confinement {
    /// Namespaces to enter (-1: none).
    pub user_ns: RawFd,
    pub mount_ns: RawFd,
    /// Landlock ruleset to enforce (-1: none).
    pub ruleset: RawFd,
    pub seccomp: libc::sock_fprog,
    /// Empty the capability bounding set again: entering a user namespace
    /// hands the child a full one (and CAP_SETPCAP to drop it).
    pub drop_bounding_set: bool,
    pub last_capability: c_int,
}

/// The step that failed, reported to the parent with the errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Step {
    UserNamespace = 1,
    MountNamespace,
    NoNewPrivs,
    Landlock,
    Capabilities,
    Seccomp,
}

impl Step {
    pub fn from_code(code: c_int) -> Option<Step> {
        Some(match code {
            1 => Step::UserNamespace,
            2 => Step::MountNamespace,
            3 => Step::NoNewPrivs,
            4 => Step::Landlock,
            5 => Step::Capabilities,
            6 => Step::Seccomp,
            _ => return None,
        })
    }

    pub fn describe(self) -> &'static str {
        match self {
            Step::UserNamespace => "entering the sandbox's user namespace",
            Step::MountNamespace => "entering the sandbox's mount namespace",
            Step::NoNewPrivs => "setting no_new_privs",
            Step::Landlock => "enforcing the Landlock ruleset",
            Step::Capabilities => "dropping capabilities",
            Step::Seccomp => "installing the seccomp filter",
        }
    }
}

/// Enters the prepared namespaces. Call before `chdir`: entering a mount
/// namespace moves the working directory to its root.
///
/// # Safety
/// Only between clone and exec, in a child that owns its filesystem
/// context (no CLONE_FS).
pub(crate) unsafe fn enter_namespaces(c: &Confinement) -> Result<(), Step> {
    // SAFETY: setns on descriptor numbers the parent keeps open.
    unsafe {
        if c.user_ns >= 0 && libc::setns(c.user_ns, libc::CLONE_NEWUSER) != 0 {
            return Err(Step::UserNamespace);
        }
        if c.mount_ns >= 0 && libc::setns(c.mount_ns, libc::CLONE_NEWNS) != 0 {
            return Err(Step::MountNamespace);
        }
    }
    Ok(())
}

/// no_new_privs, Landlock, capabilities, seccomp — in that order: Landlock
/// needs no_new_privs; dropping the bounding set needs CAP_SETPCAP, so it
/// precedes clearing the other sets; the seccomp filter comes last.
///
/// The sandbox spawner thread already set no_new_privs, emptied its
/// bounding set and ambient set and locked the secure bits (see
/// [`prepare_spawner_thread`]); children inherit all of that, so here only
/// the effective, permitted and inheritable sets are cleared — unless the
/// child entered a user namespace, which hands it a full bounding set and
/// default secure bits again.
///
/// # Safety
/// Only between clone and exec.
pub(crate) unsafe fn confine(c: &Confinement) -> Result<(), Step> {
    // SAFETY: each call is one system call on values prepared by the parent.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(Step::NoNewPrivs);
        }
        if c.ruleset >= 0 && landlock::restrict_self(c.ruleset) != 0 {
            return Err(Step::Landlock);
        }
        if c.drop_bounding_set && !drop_bounding_set(c.last_capability) {
            return Err(Step::Capabilities);
        }
        let header = CapHeader {
            version: CAPABILITY_VERSION_3,
            pid: 0,
        };
        let data = [CapData::default(); 2];
        if libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr()) != 0 {
            return Err(Step::Capabilities);
        }
        if libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0u32,
            &raw const c.seccomp,
        ) != 0
        {
            return Err(Step::Seccomp);
        }
    }
    Ok(())
}

/// Prepares the thread that spawns every sandboxed child, once: sets
/// no_new_privs, empties the ambient set and, when the server holds
/// CAP_SETPCAP, the bounding set, and locks the secure bits so that root
/// gains nothing on `execve`. Children inherit these credentials, which
/// saves each spawn about 60 µs (41 credential changes measured here).
/// The thread keeps its effective capabilities: it still builds mount
/// namespaces. Nothing else runs on it.
pub(crate) fn prepare_spawner_thread(
    drop_bounding: bool,
    last_capability: c_int,
) -> Result<(), Step> {
    // SAFETY: plain system calls affecting this thread's credentials only.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(Step::NoNewPrivs);
        }
        if drop_bounding && !drop_bounding_set(last_capability) {
            return Err(Step::Capabilities);
        }
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) != 0
        {
            return Err(Step::Capabilities);
        }
    }
    Ok(())
}

/// Empties the bounding set and locks the secure bits (needs CAP_SETPCAP).
unsafe fn drop_bounding_set(last_capability: c_int) -> bool {
    // SAFETY: plain prctl calls.
    unsafe {
        for cap in 0..=last_capability {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                return false;
            }
        }
        let bits = libc::SECBIT_NOROOT
            | libc::SECBIT_NOROOT_LOCKED
            | libc::SECBIT_NO_SETUID_FIXUP
            | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
            | libc::SECBIT_KEEP_CAPS_LOCKED
            | libc::SECBIT_NO_CAP_AMBIENT_RAISE
            | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
        libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) == 0
    }
}
