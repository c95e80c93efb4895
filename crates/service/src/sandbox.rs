//! The server's sandbox policy and how a request may narrow it (issue 12).
//!
//! [`for_process`] is the one function the `process/start` and
//! `command/exec` handlers call: it turns the server's policy
//! ([`ServerConfig::sandbox`], from `--sandbox`, `--writable-root`,
//! `--sandbox-network`) and the request's optional `sandbox` param into the
//! policy the process runs under, or refuses a request that asks for more
//! than the server allows, naming the flag that sets the ceiling.
//!
//! The rule: with a server policy every process is confined, at most as
//! widely as the policy. A request may choose a narrower filesystem mode
//! (`read-only` < `workspace-write` < `full`), writable roots inside the
//! server's, more read-only subpaths (never fewer), readable roots, and
//! network `none` under `full`.

use std::path::{Path, PathBuf};

use exec_server_core::sandbox::{
    AppliedSandbox, DEFAULT_READ_ONLY_SUBPATH, FilesystemAccess, MountNamespaces, NetworkAccess,
    SandboxPolicy, kernel_support,
};
use exec_server_protocol::sandbox::{
    FilesystemMode, NetworkMode, ReadOnlySubpathSupport, SandboxApplied, SandboxEnforcement,
    SandboxInfo, SandboxParams, SandboxSupport,
};

use crate::ServerConfig;
use crate::error::ApiError;

/// The policy a new process runs under: the server's, narrowed by the
/// request's `sandbox` param; `None` when neither asks for confinement.
/// `cwd` is the process's working directory (the default writable root).
pub(crate) fn for_process(
    config: &ServerConfig,
    request: Option<SandboxParams>,
    cwd: &str,
) -> Result<Option<SandboxPolicy>, ApiError> {
    let server = config.sandbox.as_ref();
    let Some(request) = request else {
        return Ok(server.cloned());
    };
    let filesystem = request
        .filesystem
        .map(filesystem_access)
        .or(server.map(|s| s.filesystem))
        .unwrap_or(FilesystemAccess::ReadOnly);
    let network = request
        .network
        .map(network_access)
        .or(server.map(|s| s.network))
        .unwrap_or(NetworkAccess::None);
    let read_only_subpaths = match &request.read_only_subpaths {
        Some(subpaths) => subpaths.iter().map(PathBuf::from).collect(),
        None => server.map_or_else(
            || vec![PathBuf::from(DEFAULT_READ_ONLY_SUBPATH)],
            |s| s.read_only_subpaths.clone(),
        ),
    };
    let server_writes = server.filter(|s| s.filesystem == FilesystemAccess::WorkspaceWrite);
    let writable_roots = match (&request.writable_roots, server_writes) {
        (Some(roots), _) => roots.iter().map(PathBuf::from).collect(),
        (None, Some(server)) => server.writable_roots.clone(),
        (None, None) => vec![PathBuf::from(cwd)],
    };
    let policy = SandboxPolicy {
        filesystem,
        writable_roots,
        read_only_subpaths,
        readable_roots: request
            .readable_roots
            .map(|roots| roots.into_iter().map(PathBuf::from).collect()),
        network,
    };
    if let Some(server) = server {
        check_narrower(server, &policy)?;
    }
    Ok(Some(policy))
}

/// Refuses `policy` when it allows more than `server`.
fn check_narrower(server: &SandboxPolicy, policy: &SandboxPolicy) -> Result<(), ApiError> {
    let refuse = |message: String| Err(ApiError::SandboxWider(message));
    if policy.filesystem > server.filesystem {
        return refuse(format!(
            "sandbox filesystem `{}` is wider than the server allows (--sandbox {})",
            policy.filesystem.as_str(),
            server.filesystem.as_str()
        ));
    }
    if policy.network > server.network {
        return refuse(format!(
            "sandbox network `{}` is wider than the server allows (--sandbox-network {})",
            policy.network.as_str(),
            server.network.as_str()
        ));
    }
    if policy.filesystem != FilesystemAccess::WorkspaceWrite
        || server.filesystem != FilesystemAccess::WorkspaceWrite
    {
        return Ok(());
    }
    for root in &policy.writable_roots {
        let resolved = resolve(root)?;
        if !server
            .writable_roots
            .iter()
            .any(|r| resolved.starts_with(r))
        {
            return refuse(format!(
                "sandbox writable root `{}` is outside the server's writable roots (--writable-root {})",
                root.display(),
                list(&server.writable_roots)
            ));
        }
    }
    for required in &server.read_only_subpaths {
        if !policy.read_only_subpaths.contains(required) {
            return refuse(format!(
                "sandbox readOnlySubpaths must include `{}`: the server keeps it read-only (--sandbox {})",
                required.display(),
                server.filesystem.as_str()
            ));
        }
    }
    Ok(())
}

fn resolve(root: &Path) -> Result<PathBuf, ApiError> {
    if !root.is_absolute() {
        return Err(ApiError::InvalidParams(format!(
            "writableRoots: `{}` is not an absolute path",
            root.display()
        )));
    }
    root.canonicalize().map_err(|error| {
        ApiError::InvalidParams(format!("writableRoots: `{}`: {error}", root.display()))
    })
}

fn list(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "(none)".into();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn filesystem_access(mode: FilesystemMode) -> FilesystemAccess {
    match mode {
        FilesystemMode::ReadOnly => FilesystemAccess::ReadOnly,
        FilesystemMode::WorkspaceWrite => FilesystemAccess::WorkspaceWrite,
        FilesystemMode::Full => FilesystemAccess::Full,
    }
}

pub fn network_access(mode: NetworkMode) -> NetworkAccess {
    match mode {
        NetworkMode::None => NetworkAccess::None,
        NetworkMode::Full => NetworkAccess::Full,
    }
}

fn filesystem_mode(access: FilesystemAccess) -> FilesystemMode {
    match access {
        FilesystemAccess::ReadOnly => FilesystemMode::ReadOnly,
        FilesystemAccess::WorkspaceWrite => FilesystemMode::WorkspaceWrite,
        FilesystemAccess::Full => FilesystemMode::Full,
    }
}

fn network_mode(access: NetworkAccess) -> NetworkMode {
    match access {
        NetworkAccess::None => NetworkMode::None,
        NetworkAccess::Full => NetworkMode::Full,
    }
}

fn strings(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.display().to_string()).collect()
}

/// A policy as it appears on the wire.
pub fn policy_params(policy: &SandboxPolicy) -> SandboxParams {
    SandboxParams {
        filesystem: Some(filesystem_mode(policy.filesystem)),
        writable_roots: Some(strings(&policy.writable_roots)),
        read_only_subpaths: Some(strings(&policy.read_only_subpaths)),
        readable_roots: policy.readable_roots.as_deref().map(strings),
        network: Some(network_mode(policy.network)),
    }
}

/// What `process/start` reports as applied.
pub(crate) fn applied(applied: &AppliedSandbox) -> SandboxApplied {
    SandboxApplied {
        filesystem: filesystem_mode(applied.filesystem),
        network: network_mode(applied.network),
        writable_roots: strings(&applied.writable_roots),
        read_only_paths: strings(&applied.read_only_paths),
        readable_roots: applied.readable_roots.as_deref().map(strings),
        tmpdir: applied.tmpdir.as_ref().map(|t| t.display().to_string()),
        enforcement: SandboxEnforcement {
            landlock_abi: applied.landlock_abi,
            landlock_network: applied.landlock_network,
            signal_scope: applied.signal_scope,
            abstract_unix_scope: applied.abstract_unix_scope,
            seccomp: applied.seccomp,
            no_new_privs: applied.no_new_privs,
            capabilities_dropped: applied.capabilities_dropped,
            bounding_set_cleared: applied.bounding_set_cleared,
            mount_namespace: applied.mount_namespace,
        },
    }
}

/// What `initialize` reports.
pub(crate) fn info(config: &ServerConfig) -> SandboxInfo {
    let support = kernel_support();
    SandboxInfo {
        support: SandboxSupport {
            landlock_abi: support.landlock_abi,
            filesystem: support.landlock_filesystem(),
            seccomp: support.seccomp,
            read_only_subpaths: match support.mount_namespaces {
                MountNamespaces::Privileged => ReadOnlySubpathSupport::MountNamespace,
                MountNamespaces::UserNamespace => ReadOnlySubpathSupport::UserNamespace,
                MountNamespaces::Unavailable => ReadOnlySubpathSupport::Unavailable,
            },
            scopes: support.landlock_scopes(),
            bounding_set: support.can_drop_bounding_set,
        },
        policy: config.sandbox.as_ref().map(policy_params),
    }
}

/// The `fs/*` policy that matches a server's sandbox policy, so the files
/// API can never reach what its sandboxed processes cannot: read-only
/// everywhere, or writes beneath the writable roots minus their read-only
/// subpaths; `readableRoots` narrows reads the same way. Processes may also
/// read the system directories programs need to start (`SYSTEM_READABLE`);
/// the files API does not need them and does not get them.
pub fn fs_policy(policy: &SandboxPolicy) -> exec_server_fs::FsPolicy {
    use exec_server_core::FilesystemAccess;
    let read_only_subpaths = policy
        .read_only_subpaths
        .iter()
        .map(|path| path.clone().into_os_string())
        .collect();
    let readable_roots = policy.readable_roots.clone().map(|mut roots| {
        roots.extend(policy.writable_roots.iter().cloned());
        roots
    });
    match policy.filesystem {
        FilesystemAccess::Full => exec_server_fs::FsPolicy::unrestricted(),
        FilesystemAccess::ReadOnly => exec_server_fs::FsPolicy {
            readable_roots,
            ..exec_server_fs::FsPolicy::read_only()
        },
        FilesystemAccess::WorkspaceWrite => exec_server_fs::FsPolicy {
            readable_roots,
            writable_roots: policy.writable_roots.clone(),
            read_only_subpaths,
            writes: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(
        filesystem: FilesystemAccess,
        roots: &[&Path],
        network: NetworkAccess,
    ) -> ServerConfig {
        let mut policy = SandboxPolicy::new(
            filesystem,
            roots.iter().map(|r| r.canonicalize().unwrap()).collect(),
        );
        policy.network = network;
        ServerConfig {
            sandbox: Some(policy),
            ..ServerConfig::default()
        }
    }

    fn message(result: Result<Option<SandboxPolicy>, ApiError>) -> String {
        let error = result.unwrap_err();
        assert!(matches!(error, ApiError::SandboxWider(_)), "{error:?}");
        error.to_string()
    }

    #[test]
    fn without_any_policy_nothing_is_confined() {
        assert_eq!(
            for_process(&ServerConfig::default(), None, "/").unwrap(),
            None
        );
    }

    #[test]
    fn a_request_alone_gets_safe_defaults() {
        let policy = for_process(
            &ServerConfig::default(),
            Some(SandboxParams::default()),
            "/w",
        )
        .unwrap()
        .unwrap();
        assert_eq!(policy.filesystem, FilesystemAccess::ReadOnly);
        assert_eq!(policy.network, NetworkAccess::None);
        assert_eq!(policy.read_only_subpaths, vec![PathBuf::from(".git")]);
        let ws = SandboxParams {
            filesystem: Some(FilesystemMode::WorkspaceWrite),
            ..SandboxParams::default()
        };
        let policy = for_process(&ServerConfig::default(), Some(ws), "/w")
            .unwrap()
            .unwrap();
        assert_eq!(
            policy.writable_roots,
            vec![PathBuf::from("/w")],
            "cwd by default"
        );
    }

    #[test]
    fn the_server_policy_applies_when_the_request_says_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let config = server(
            FilesystemAccess::WorkspaceWrite,
            &[dir.path()],
            NetworkAccess::None,
        );
        assert_eq!(for_process(&config, None, "/").unwrap(), config.sandbox);
    }

    #[test]
    fn a_request_may_narrow_the_server_policy() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let config = server(
            FilesystemAccess::WorkspaceWrite,
            &[dir.path()],
            NetworkAccess::Full,
        );
        let request = SandboxParams {
            writable_roots: Some(vec![dir.path().join("sub").display().to_string()]),
            read_only_subpaths: Some(vec![".git".into(), "secrets".into()]),
            network: Some(NetworkMode::None),
            ..SandboxParams::default()
        };
        let policy = for_process(&config, Some(request), "/").unwrap().unwrap();
        assert_eq!(policy.network, NetworkAccess::None);
        assert_eq!(policy.writable_roots, vec![dir.path().join("sub")]);
        let read_only = SandboxParams {
            filesystem: Some(FilesystemMode::ReadOnly),
            ..SandboxParams::default()
        };
        let policy = for_process(&config, Some(read_only), "/").unwrap().unwrap();
        assert_eq!(policy.filesystem, FilesystemAccess::ReadOnly);
    }

    #[test]
    fn asking_for_more_than_the_server_allows_names_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let config = server(
            FilesystemAccess::WorkspaceWrite,
            &[dir.path()],
            NetworkAccess::None,
        );
        let ask = |params: SandboxParams| message(for_process(&config, Some(params), "/"));
        let error = ask(SandboxParams {
            filesystem: Some(FilesystemMode::Full),
            ..SandboxParams::default()
        });
        assert!(error.contains("--sandbox workspace-write"), "{error}");
        let error = ask(SandboxParams {
            network: Some(NetworkMode::Full),
            ..SandboxParams::default()
        });
        assert!(error.contains("--sandbox-network none"), "{error}");
        let error = ask(SandboxParams {
            writable_roots: Some(vec![outside.path().display().to_string()]),
            ..SandboxParams::default()
        });
        assert!(error.contains("--writable-root"), "{error}");
        // `..` cannot climb out of a root: paths are resolved first.
        let error = ask(SandboxParams {
            writable_roots: Some(vec![format!("{}/..", dir.path().display())]),
            ..SandboxParams::default()
        });
        assert!(error.contains("--writable-root"), "{error}");
        let error = ask(SandboxParams {
            read_only_subpaths: Some(vec![]),
            ..SandboxParams::default()
        });
        assert!(error.contains("`.git`"), "{error}");
    }
}
