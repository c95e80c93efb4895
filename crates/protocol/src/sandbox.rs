//! Sandboxed processes (SPEC section 7, issue 12): the `sandbox` param of
//! `process/start`, what its result reports as applied, and what
//! `initialize` says the server can enforce.
//!
//! Wire names are fixed by the SPEC: `filesystem` (`read-only` |
//! `workspace-write` | `full`), `writableRoots`, `readOnlySubpaths`,
//! `readableRoots`, `network` (`none` | `full`). docs/SANDBOX.md explains
//! the semantics and the threat model.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the filesystem looks like to a sandboxed process. Ordered from the
/// narrowest to the widest.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum FilesystemMode {
    /// Read anything readable, write only the private temporary directory.
    ReadOnly,
    /// Also write under `writableRoots`, except their `readOnlySubpaths`.
    WorkspaceWrite,
    /// No filesystem confinement.
    Full,
}

/// Which sockets a sandboxed process may open. Ordered narrowest first.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// `AF_UNIX` only: no IPv4, IPv6, raw, packet, netlink or other sockets.
    None,
    /// Every socket family.
    Full,
}

/// `process/start` `sandbox`: confine the process and all its descendants.
/// `null` or absent: the server's policy (`--sandbox`), or no confinement
/// when the server has none. With a server policy a request may only
/// narrow it; asking for more is refused with an error naming the flag.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SandboxParams {
    /// Default: the server policy's mode, or `read-only` without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemMode>,
    /// Absolute paths writable under `workspace-write` (each must exist).
    /// Default: the server's writable roots, or the process's `cwd` when
    /// the server has no `workspace-write` policy. The private temporary
    /// directory (the child's `TMPDIR`) is writable in any confined mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writable_roots: Option<Vec<String>>,
    /// Relative paths under every writable root that stay read-only (when
    /// they exist at start). Default `[".git"]`; under a server policy it
    /// must include the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_subpaths: Option<Vec<String>>,
    /// When set, nothing else is readable but these absolute paths, the
    /// writable roots, the temporary directory and what programs need to
    /// start (the system's program and library directories and a few files
    /// of `/etc`). Needs `read-only` or `workspace-write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readable_roots: Option<Vec<String>>,
    /// Default: the server policy's, or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkMode>,
}

/// `process/start` result `sandbox`: the confinement actually applied.
/// Absent for an unconfined process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxApplied {
    pub filesystem: FilesystemMode,
    pub network: NetworkMode,
    /// Canonical writable roots (`workspace-write`).
    pub writable_roots: Vec<String>,
    /// Absolute paths kept read-only inside the writable roots.
    pub read_only_paths: Vec<String>,
    /// Canonical readable roots, when reads are restricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readable_roots: Option<Vec<String>>,
    /// The private temporary directory, the child's `TMPDIR`; removed when
    /// the process is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpdir: Option<String>,
    pub enforcement: SandboxEnforcement,
}

/// The kernel mechanisms that confine a process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxEnforcement {
    /// Landlock ABI the ruleset was built for; absent when Landlock is not
    /// used (filesystem `full` on a kernel without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock_abi: Option<u32>,
    /// TCP bind/connect also refused by Landlock (ABI ≥ 4, network `none`).
    pub landlock_network: bool,
    /// Signals to processes outside the sandbox are refused (ABI ≥ 6).
    pub signal_scope: bool,
    /// Abstract `AF_UNIX` sockets outside the sandbox are refused (ABI ≥ 6,
    /// network `none`).
    pub abstract_unix_scope: bool,
    /// The seccomp filter (sockets, io_uring, ptrace, namespaces, …).
    pub seccomp: bool,
    pub no_new_privs: bool,
    /// Effective, permitted, inheritable and ambient capabilities are empty.
    pub capabilities_dropped: bool,
    /// The capability bounding set is empty too.
    pub bounding_set_cleared: bool,
    /// Read-only subpaths are enforced by a read-only bind mount in a
    /// private mount namespace.
    pub mount_namespace: bool,
}

/// `initialize` result `sandbox`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxInfo {
    pub support: SandboxSupport,
    /// The server's policy (`--sandbox`): the default for every process,
    /// `command/exec` included, and the ceiling for requests. Absent: a
    /// process is confined only when it asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<SandboxParams>,
}

/// What this server can enforce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxSupport {
    /// Landlock ABI version of the kernel; absent without Landlock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock_abi: Option<u32>,
    /// Filesystem confinement (`read-only`, `workspace-write`) is possible:
    /// Landlock ABI 3 or later.
    pub filesystem: bool,
    /// seccomp filters; without them no sandbox can be started.
    pub seccomp: bool,
    /// How read-only subpaths are enforced: `mountNamespace` (the server
    /// has CAP_SYS_ADMIN), `userNamespace`, or `unavailable`.
    pub read_only_subpaths: ReadOnlySubpathSupport,
    /// Signals and abstract sockets are scoped to the sandbox (ABI ≥ 6).
    pub scopes: bool,
    /// Children can have an empty capability bounding set.
    pub bounding_set: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ReadOnlySubpathSupport {
    MountNamespace,
    UserNamespace,
    Unavailable,
}
