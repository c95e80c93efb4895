//! What this kernel and this server can enforce, probed once.

use std::sync::OnceLock;

use super::{landlock, seccomp};

/// The test-only switch that makes the server behave as on a kernel without
/// Landlock, to prove that a sandbox needing it fails closed. It can only
/// take abilities away, never loosen a confinement.
pub const SIMULATE_NO_LANDLOCK_ENV: &str = "EXEC_SERVER_TEST_SIMULATE_NO_LANDLOCK";

/// How read-only subpaths can be enforced (they need a mount namespace).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountNamespaces {
    /// The server has CAP_SYS_ADMIN: a plain mount namespace.
    Privileged,
    /// Through an unprivileged user namespace.
    UserNamespace,
    /// Neither: read-only subpaths cannot be enforced.
    Unavailable,
}

/// The confinement features this server can use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSupport {
    /// Landlock ABI version, `None` without Landlock.
    pub landlock_abi: Option<u32>,
    /// seccomp filters (with the process-kill action) on a known architecture.
    pub seccomp: bool,
    pub mount_namespaces: MountNamespaces,
    /// The server holds CAP_SETPCAP, so children can empty their capability
    /// bounding set; otherwise they have no capabilities to drop and
    /// `no_new_privs` keeps it so.
    pub can_drop_bounding_set: bool,
    /// The highest capability number (`/proc/sys/kernel/cap_last_cap`).
    pub last_capability: u32,
}

impl KernelSupport {
    /// Landlock can confine the filesystem (ABI ≥ 3, see
    /// [`landlock::MIN_FILESYSTEM_ABI`]).
    pub fn landlock_filesystem(&self) -> bool {
        self.landlock_abi
            .is_some_and(|abi| abi >= landlock::MIN_FILESYSTEM_ABI)
    }

    /// Landlock scopes signals and abstract `AF_UNIX` sockets (ABI ≥ 6).
    pub fn landlock_scopes(&self) -> bool {
        self.landlock_abi.is_some_and(|abi| abi >= 6)
    }
}

/// What this server can enforce, probed on first use.
pub fn kernel_support() -> &'static KernelSupport {
    static SUPPORT: OnceLock<KernelSupport> = OnceLock::new();
    SUPPORT.get_or_init(probe)
}

fn probe() -> KernelSupport {
    let simulate_no_landlock = std::env::var_os(SIMULATE_NO_LANDLOCK_ENV).is_some_and(|v| v == "1");
    let landlock_abi = if simulate_no_landlock {
        None
    } else {
        landlock::abi_version()
    };
    let effective = effective_capabilities();
    let has = |cap: u32| effective & (1 << cap) != 0;
    let mount_namespaces = if has(CAP_SYS_ADMIN) {
        MountNamespaces::Privileged
    } else if user_namespaces_allowed() {
        MountNamespaces::UserNamespace
    } else {
        MountNamespaces::Unavailable
    };
    KernelSupport {
        landlock_abi,
        seccomp: seccomp::available(),
        mount_namespaces,
        can_drop_bounding_set: has(CAP_SETPCAP),
        last_capability: std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(63),
    }
}

pub(crate) const CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const CAP_SETPCAP: u32 = 8;
const CAP_SYS_ADMIN: u32 = 21;

#[repr(C)]
pub(crate) struct CapHeader {
    pub version: u32,
    pub pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct CapData {
    pub effective: u32,
    pub permitted: u32,
    pub inheritable: u32,
}

/// The server's effective capability set (64 bits).
fn effective_capabilities() -> u64 {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two CapData structures for version 3.
    let result = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    if result != 0 {
        return 0;
    }
    u64::from(data[0].effective) | (u64::from(data[1].effective) << 32)
}

/// Whether unprivileged user namespaces look allowed. A heuristic from the
/// usual switches; an attempt that fails anyway fails closed with the
/// kernel's error.
fn user_namespaces_allowed() -> bool {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
    };
    read("/proc/sys/user/max_user_namespaces").is_none_or(|n| n > 0)
        && read("/proc/sys/kernel/unprivileged_userns_clone").is_none_or(|n| n != 0)
        && read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").is_none_or(|n| n == 0)
}
