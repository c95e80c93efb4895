//! Sandboxed processes: confine what a command may write and reach, for
//! PTY and pipe processes alike, inherited by every descendant.
//!
//! A [`SandboxPolicy`] says what the process may do. [`prepare`] turns it,
//! in the server, into everything the child needs — so the child, between
//! `clone` and `execve`, makes only plain system calls:
//!
//! ```text
//! SandboxPolicy ──prepare──▶ Prepared { Landlock ruleset fd, seccomp program,
//!   (server, async)            read-only subpaths, private TMPDIR, report }
//!                                   │ spawner thread: template mount namespace
//!                                   ▼ (mounts), built once and cached
//!                            child: setns → chdir → no_new_privs → Landlock
//!                                   → drop capabilities → seccomp → execve
//! ```
//!
//! - `probe` — what this kernel and server can enforce ([`kernel_support`]).
//! - `landlock` — the Landlock ABI and ruleset building (filesystem rights,
//!   TCP rules, signal and abstract-socket scopes).
//! - `seccomp` — the BPF filter: no non-`AF_UNIX` sockets under
//!   `network: none`, and no known bypasses (io_uring, ptrace, bpf, …).
//! - `mounts` — read-only subpaths through a prepared mount namespace.
//! - `child` — the async-signal-safe child side.
//! - `tmp` — private temporary directories, made ahead of need.
//!
//! Whatever the kernel cannot enforce fails closed: [`prepare`] returns
//! [`SandboxError::Unsupported`] naming what is missing; nothing ever runs
//! with less confinement than its policy asked for. docs/SANDBOX.md has the
//! threat model and the measurements behind these choices.

pub(crate) mod child;
mod landlock;
pub(crate) mod mounts;
mod probe;
mod seccomp;
mod tmp;

use std::collections::BTreeSet;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

pub use probe::{KernelSupport, MountNamespaces, SIMULATE_NO_LANDLOCK_ENV, kernel_support};
pub use tmp::{PrivateTmp, remove_ready as remove_ready_tmp_dirs};

/// What the filesystem looks like to a sandboxed process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FilesystemAccess {
    /// Read (and run) anything readable; write only the private TMPDIR.
    ReadOnly,
    /// Like `ReadOnly`, plus the writable roots (minus their read-only
    /// subpaths).
    WorkspaceWrite,
    /// No filesystem confinement.
    Full,
}

impl FilesystemAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            FilesystemAccess::ReadOnly => "read-only",
            FilesystemAccess::WorkspaceWrite => "workspace-write",
            FilesystemAccess::Full => "full",
        }
    }
}

/// Which sockets a sandboxed process may open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NetworkAccess {
    /// `AF_UNIX` only.
    None,
    Full,
}

impl NetworkAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkAccess::None => "none",
            NetworkAccess::Full => "full",
        }
    }
}

/// The subpath kept read-only under every writable root by default.
pub const DEFAULT_READ_ONLY_SUBPATH: &str = ".git";

/// What a sandboxed process may do. Paths must be absolute (roots) or
/// relative without `..` (subpaths); [`prepare`] checks them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxPolicy {
    pub filesystem: FilesystemAccess,
    /// Writable under [`FilesystemAccess::WorkspaceWrite`].
    pub writable_roots: Vec<PathBuf>,
    /// Relative paths under each writable root that stay read-only.
    pub read_only_subpaths: Vec<PathBuf>,
    /// When set, nothing else is readable but these, the writable roots,
    /// the private TMPDIR and what programs need to start
    /// ([`SYSTEM_READABLE`]).
    pub readable_roots: Option<Vec<PathBuf>>,
    pub network: NetworkAccess,
}

impl SandboxPolicy {
    /// A policy with the default read-only subpaths and no network.
    pub fn new(filesystem: FilesystemAccess, writable_roots: Vec<PathBuf>) -> Self {
        SandboxPolicy {
            filesystem,
            writable_roots,
            read_only_subpaths: vec![PathBuf::from(DEFAULT_READ_ONLY_SUBPATH)],
            readable_roots: None,
            network: NetworkAccess::None,
        }
    }
}

/// Readable under `readableRoots` so that programs can start: program and
/// library directories, the loader's configuration, and the few files in
/// `/etc` that nearly every program reads (users, name service, time zone,
/// terminal and locale settings, TLS roots). Missing entries are skipped.
pub const SYSTEM_READABLE: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt",
    "/proc",
    "/sys/devices/system/cpu",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/terminfo",
    "/etc/inputrc",
    "/etc/bash.bashrc",
    "/etc/profile",
    "/etc/profile.d",
    "/etc/environment",
    "/etc/locale.alias",
    "/etc/default/locale",
    "/etc/mime.types",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/magic",
];

/// Device files every program may use (read, write, terminal ioctls).
/// Not `/dev/pts`: other sessions' terminals live there, and a sandboxed
/// process could read what someone types into them. A PTY process gets its
/// own terminal (`/dev/tty` and its `/dev/pts/N`) only.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
];

/// Bounds on a policy, so a client cannot make the server open thousands of
/// paths per spawn.
pub const MAX_ROOTS: usize = 64;
pub const MAX_SUBPATHS: usize = 64;

/// Why a sandbox could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The policy is malformed (maps to invalid params).
    #[error("{0}")]
    Invalid(String),
    /// The kernel or the server cannot enforce what was asked: fail closed.
    #[error("cannot enforce the sandbox: {0}")]
    Unsupported(String),
    /// Setting it up failed.
    #[error("setting up the sandbox failed: {0}")]
    Os(String),
}

/// Which confinement a process actually runs under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedSandbox {
    pub filesystem: FilesystemAccess,
    pub network: NetworkAccess,
    /// Canonical writable roots (without the private TMPDIR).
    pub writable_roots: Vec<PathBuf>,
    /// Absolute paths kept read-only (existing ones only).
    pub read_only_paths: Vec<PathBuf>,
    /// Canonical readable roots, when reads are restricted.
    pub readable_roots: Option<Vec<PathBuf>>,
    /// The private temporary directory (the child's `TMPDIR`).
    pub tmpdir: Option<PathBuf>,
    /// The Landlock ABI the ruleset was built for, when Landlock is used.
    pub landlock_abi: Option<u32>,
    /// TCP bind/connect denied by Landlock too (ABI ≥ 4, `network: none`).
    pub landlock_network: bool,
    /// Signals to processes outside the sandbox are refused (ABI ≥ 6).
    pub signal_scope: bool,
    /// Abstract `AF_UNIX` sockets outside the sandbox are refused
    /// (ABI ≥ 6, `network: none`).
    pub abstract_unix_scope: bool,
    /// The seccomp filter is installed (always, for a sandboxed process).
    pub seccomp: bool,
    /// `no_new_privs` is set (always).
    pub no_new_privs: bool,
    /// Effective, permitted, inheritable and ambient sets are empty.
    pub capabilities_dropped: bool,
    /// The bounding set is empty too (a root server, or a user namespace).
    pub bounding_set_cleared: bool,
    /// Read-only subpaths are enforced through a mount namespace.
    pub mount_namespace: bool,
}

/// Everything the spawner and the child need for one sandboxed spawn.
pub(crate) struct Prepared {
    pub ruleset: Option<std::os::fd::OwnedFd>,
    pub seccomp: &'static [libc::sock_filter],
    /// Paths to keep read-only (a template mount namespace), sorted.
    pub protected: Vec<mounts::Protected>,
    /// Enter the template through a user namespace (no CAP_SYS_ADMIN).
    pub user_namespace: bool,
    /// The child must empty its bounding set itself (after a user namespace).
    pub drop_bounding_set: bool,
    pub last_capability: u32,
    pub tmpdir: Option<PrivateTmp>,
    pub applied: AppliedSandbox,
}

/// Checks `policy` against what this server can enforce and prepares it.
/// `terminal` is the PTY slave of a terminal process: it stays usable.
/// Blocking filesystem calls (a few `open`/`stat` per root): call it where
/// a short block is acceptable, as for the rest of spawn preparation.
pub(crate) fn prepare(
    policy: &SandboxPolicy,
    terminal: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<Prepared, SandboxError> {
    let support = kernel_support();
    if !support.seccomp {
        return Err(SandboxError::Unsupported(
            "this kernel (or architecture) offers no seccomp filters, needed to confine the network and block sandbox escapes".into(),
        ));
    }
    let confine_fs = policy.filesystem != FilesystemAccess::Full;
    if confine_fs && !support.landlock_filesystem() {
        let found = match support.landlock_abi {
            None => "no Landlock".to_string(),
            Some(abi) => format!("Landlock ABI {abi}"),
        };
        return Err(SandboxError::Unsupported(format!(
            "filesystem `{}` needs Landlock ABI {} or later (Linux 6.2+), and this kernel has {found}; use filesystem `full` to run without filesystem confinement",
            policy.filesystem.as_str(),
            landlock::MIN_FILESYSTEM_ABI,
        )));
    }
    if policy.readable_roots.is_some() && !confine_fs {
        return Err(SandboxError::Invalid(
            "readableRoots needs filesystem `read-only` or `workspace-write`".into(),
        ));
    }
    let writable_roots = match policy.filesystem {
        FilesystemAccess::WorkspaceWrite => {
            canonical_roots("writableRoots", &policy.writable_roots)?
        }
        _ => Vec::new(),
    };
    let readable_roots = policy
        .readable_roots
        .as_ref()
        .map(|roots| canonical_roots("readableRoots", roots))
        .transpose()?;
    let subpaths = checked_subpaths(&policy.read_only_subpaths)?;

    let mut tmpdir = if confine_fs {
        Some(PrivateTmp::take().map_err(|e| SandboxError::Os(e.to_string()))?)
    } else {
        None
    };

    // Read-only subpaths that exist now, resolved; those resolving outside
    // every writable root are read-only anyway.
    let mut protected_paths = BTreeSet::new();
    for root in &writable_roots {
        for subpath in &subpaths {
            let candidate = root.join(subpath);
            if std::fs::symlink_metadata(&candidate).is_err() {
                continue;
            }
            let Ok(resolved) = candidate.canonicalize() else {
                continue;
            };
            if writable_roots.iter().any(|r| resolved.starts_with(r)) {
                protected_paths.insert(resolved);
            }
        }
    }
    let mut protected = Vec::with_capacity(protected_paths.len());
    for path in &protected_paths {
        protected.push(
            mounts::Protected::of(path)
                .map_err(|e| SandboxError::Os(format!("inspecting {}: {e}", path.display())))?,
        );
    }
    let user_namespace = match (protected.is_empty(), support.mount_namespaces) {
        (true, _) | (false, MountNamespaces::Privileged) => false,
        (false, MountNamespaces::UserNamespace) => true,
        (false, MountNamespaces::Unavailable) => {
            return Err(SandboxError::Unsupported(format!(
                "keeping {} read-only needs a mount namespace: run the server as root or allow unprivileged user namespaces, or drop it from readOnlySubpaths",
                protected_paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };

    let abi = support.landlock_abi.unwrap_or(0);
    let network_none = policy.network == NetworkAccess::None;
    let handled = landlock::Handled {
        fs: if confine_fs {
            landlock::fs_rights(abi)
        } else {
            0
        },
        net: if network_none && abi >= 4 {
            landlock::NET_BIND_TCP | landlock::NET_CONNECT_TCP
        } else {
            0
        },
        scoped: match (support.landlock_scopes(), network_none) {
            (false, _) => 0,
            (true, true) => landlock::SCOPE_SIGNAL | landlock::SCOPE_ABSTRACT_UNIX_SOCKET,
            (true, false) => landlock::SCOPE_SIGNAL,
        },
    };
    let ruleset = if support.landlock_abi.is_some() && !handled.is_empty() {
        Some(
            build_ruleset(
                handled,
                abi,
                RuleSources {
                    writable_roots: &writable_roots,
                    readable_roots: readable_roots.as_deref(),
                    tmpdir: tmpdir.as_mut(),
                    terminal,
                },
            )
            .map_err(|e| SandboxError::Os(format!("building the Landlock ruleset: {e}")))?,
        )
    } else {
        None
    };

    let applied = AppliedSandbox {
        filesystem: policy.filesystem,
        network: policy.network,
        writable_roots,
        read_only_paths: protected_paths.into_iter().collect(),
        readable_roots,
        tmpdir: tmpdir.as_ref().map(|t| t.path().to_path_buf()),
        landlock_abi: ruleset.as_ref().map(|_| abi),
        landlock_network: ruleset.is_some() && handled.net != 0,
        signal_scope: ruleset.is_some() && handled.scoped & landlock::SCOPE_SIGNAL != 0,
        abstract_unix_scope: ruleset.is_some()
            && handled.scoped & landlock::SCOPE_ABSTRACT_UNIX_SOCKET != 0,
        seccomp: true,
        no_new_privs: true,
        capabilities_dropped: true,
        bounding_set_cleared: support.can_drop_bounding_set || user_namespace,
        mount_namespace: !protected.is_empty(),
    };
    Ok(Prepared {
        ruleset,
        seccomp: seccomp::program(if network_none {
            seccomp::Network::LocalOnly
        } else {
            seccomp::Network::Full
        }),
        protected,
        user_namespace,
        drop_bounding_set: user_namespace,
        last_capability: support.last_capability,
        tmpdir,
        applied,
    })
}

fn canonical_roots(field: &str, roots: &[PathBuf]) -> Result<Vec<PathBuf>, SandboxError> {
    if roots.len() > MAX_ROOTS {
        return Err(SandboxError::Invalid(format!(
            "{field} may list at most {MAX_ROOTS} paths"
        )));
    }
    let mut canonical: Vec<PathBuf> = Vec::with_capacity(roots.len());
    for root in roots {
        if !root.is_absolute() {
            return Err(SandboxError::Invalid(format!(
                "{field}: `{}` is not an absolute path",
                root.display()
            )));
        }
        let resolved = root
            .canonicalize()
            .map_err(|e| SandboxError::Invalid(format!("{field}: `{}`: {e}", root.display())))?;
        if !canonical.contains(&resolved) {
            canonical.push(resolved);
        }
    }
    Ok(canonical)
}

fn checked_subpaths(subpaths: &[PathBuf]) -> Result<Vec<PathBuf>, SandboxError> {
    if subpaths.len() > MAX_SUBPATHS {
        return Err(SandboxError::Invalid(format!(
            "readOnlySubpaths may list at most {MAX_SUBPATHS} names"
        )));
    }
    for subpath in subpaths {
        let normal = subpath
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !normal || subpath.as_os_str().is_empty() {
            return Err(SandboxError::Invalid(format!(
                "readOnlySubpaths: `{}` must be a relative path inside a writable root, without `..`",
                subpath.display()
            )));
        }
    }
    Ok(subpaths.to_vec())
}

/// Paths that never change, opened once (about 3 µs saved per path and
/// spawn): `/`, its entries, `/dev` and the device files.
///
/// "Read everything" is every entry of `/` except `/dev`, plus listing
/// `/` and `/dev`: device files stay closed but for [`DEVICES`] — reading
/// another session's terminal (keystrokes) or a raw disk (every file,
/// whatever its permissions say to root) is not "reading files". A
/// top-level directory created after the server started is not readable
/// until it restarts.
struct FixedPaths {
    root: landlock::PathHandle,
    top_level: Vec<landlock::PathHandle>,
    dev: Option<landlock::PathHandle>,
    devices: Vec<landlock::PathHandle>,
}

fn fixed_paths() -> &'static FixedPaths {
    static FIXED: OnceLock<FixedPaths> = OnceLock::new();
    FIXED.get_or_init(|| {
        let open = |path: &Path| landlock::PathHandle::open(path).ok();
        let top_level = std::fs::read_dir("/")
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|entry| entry.file_name() != "dev")
                    .filter_map(|entry| open(&entry.path()))
                    .collect()
            })
            .unwrap_or_default();
        FixedPaths {
            root: open(Path::new("/")).expect("/ can always be opened"),
            top_level,
            dev: open(Path::new("/dev")),
            devices: DEVICES
                .iter()
                .filter_map(|path| open(Path::new(path)))
                .collect(),
        }
    })
}

/// What the rules of one ruleset are made of.
struct RuleSources<'a> {
    writable_roots: &'a [PathBuf],
    readable_roots: Option<&'a [PathBuf]>,
    tmpdir: Option<&'a mut PrivateTmp>,
    terminal: Option<std::os::fd::BorrowedFd<'a>>,
}

fn build_ruleset(
    handled: landlock::Handled,
    abi: u32,
    sources: RuleSources<'_>,
) -> io::Result<std::os::fd::OwnedFd> {
    let RuleSources {
        writable_roots,
        readable_roots,
        tmpdir,
        terminal,
    } = sources;
    let mut ruleset = landlock::Ruleset::new(handled, abi)?;
    if handled.fs != 0 {
        let everything = landlock::fs_rights(abi);
        let skip_missing = |result: io::Result<()>| match result {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            other => other,
        };
        let fixed = fixed_paths();
        match readable_roots {
            None => {
                ruleset.allow_handle(&fixed.root, landlock::READ_DIR)?;
                if let Some(dev) = &fixed.dev {
                    ruleset.allow_handle(dev, landlock::READ_DIR)?;
                }
                for handle in &fixed.top_level {
                    ruleset.allow_handle(handle, landlock::READ)?;
                }
            }
            Some(roots) => {
                for path in SYSTEM_READABLE {
                    skip_missing(ruleset.allow(Path::new(path), landlock::READ))?;
                }
                for root in roots {
                    ruleset.allow(root, landlock::READ)?;
                }
            }
        }
        let device = landlock::READ_FILE
            | landlock::WRITE_FILE
            | landlock::TRUNCATE
            | landlock::IOCTL_DEV
            | landlock::READ_DIR;
        for handle in &fixed.devices {
            ruleset.allow_handle(handle, device)?;
        }
        if let Some(terminal) = terminal {
            ruleset.allow_file(terminal, device)?;
        }
        if let Some(tmpdir) = tmpdir {
            ruleset.allow_handle(&tmpdir.take_handle()?, everything)?;
        }
        for root in writable_roots {
            ruleset.allow(root, everything)?;
        }
    }
    Ok(ruleset.into_fd())
}
