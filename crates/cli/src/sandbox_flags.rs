//! `--sandbox`, `--writable-root`, `--sandbox-network`: shared by the
//! server (where they set the policy every process runs under, at most) and
//! by `run` and `mcp` (where they ask for that confinement on each command).
//! See docs/SANDBOX.md.

use std::path::PathBuf;

use anyhow::{Context, bail};
use exec_server_core::{FilesystemAccess, NetworkAccess, SandboxPolicy};
use exec_server_protocol::sandbox::{FilesystemMode, NetworkMode, SandboxParams};

#[derive(Debug, Default, Clone, clap::Args)]
pub struct SandboxFlags {
    /// Confine every command (Landlock, seccomp, no capabilities): read-only, workspace-write or full (no filesystem confinement).
    #[arg(long, value_name = "MODE", value_parser = parse_filesystem)]
    pub sandbox: Option<FilesystemMode>,

    /// Directory commands may write under --sandbox workspace-write (its .git stays read-only); repeatable.
    #[arg(long = "writable-root", value_name = "DIR")]
    pub writable_roots: Vec<PathBuf>,

    /// Network under --sandbox: none (only AF_UNIX sockets) or full [default: none].
    #[arg(long, value_name = "MODE", value_parser = parse_network)]
    pub sandbox_network: Option<NetworkMode>,
}

fn parse_filesystem(text: &str) -> Result<FilesystemMode, String> {
    match text {
        "read-only" => Ok(FilesystemMode::ReadOnly),
        "workspace-write" => Ok(FilesystemMode::WorkspaceWrite),
        "full" => Ok(FilesystemMode::Full),
        _ => Err("expected read-only, workspace-write or full".into()),
    }
}

fn parse_network(text: &str) -> Result<NetworkMode, String> {
    match text {
        "none" => Ok(NetworkMode::None),
        "full" => Ok(NetworkMode::Full),
        _ => Err("expected none or full".into()),
    }
}

/// The same settings from the config file (keys `sandbox`, `writable-root`,
/// `sandbox-network`), already parsed.
#[derive(Debug, Default)]
pub struct FileSandbox {
    pub sandbox: Option<String>,
    pub writable_roots: Vec<PathBuf>,
    pub sandbox_network: Option<String>,
}

impl SandboxFlags {
    /// Flags beat the file. Checks the combination.
    fn merged(&self, file: &FileSandbox) -> anyhow::Result<SandboxFlags> {
        let sandbox = match (&self.sandbox, &file.sandbox) {
            (Some(mode), _) => Some(*mode),
            (None, Some(text)) => {
                Some(parse_filesystem(text).map_err(|e| anyhow::anyhow!("--config sandbox: {e}"))?)
            }
            (None, None) => None,
        };
        let sandbox_network = match (&self.sandbox_network, &file.sandbox_network) {
            (Some(mode), _) => Some(*mode),
            (None, Some(text)) => Some(
                parse_network(text)
                    .map_err(|e| anyhow::anyhow!("--config sandbox-network: {e}"))?,
            ),
            (None, None) => None,
        };
        let writable_roots = if self.writable_roots.is_empty() {
            file.writable_roots.clone()
        } else {
            self.writable_roots.clone()
        };
        match sandbox {
            None if !writable_roots.is_empty() => {
                bail!("--writable-root needs --sandbox workspace-write")
            }
            None if sandbox_network.is_some() => bail!("--sandbox-network needs --sandbox MODE"),
            Some(mode) if mode != FilesystemMode::WorkspaceWrite && !writable_roots.is_empty() => {
                bail!("--writable-root applies to --sandbox workspace-write only")
            }
            _ => {}
        }
        Ok(SandboxFlags {
            sandbox,
            writable_roots,
            sandbox_network,
        })
    }

    /// The server's policy. `--sandbox workspace-write` needs at least one
    /// `--writable-root`; roots must exist and are resolved once here.
    pub fn server_policy(&self, file: &FileSandbox) -> anyhow::Result<Option<SandboxPolicy>> {
        let flags = self.merged(file)?;
        let Some(mode) = flags.sandbox else {
            return Ok(None);
        };
        if mode == FilesystemMode::WorkspaceWrite && flags.writable_roots.is_empty() {
            bail!("--sandbox workspace-write needs at least one --writable-root DIR");
        }
        let mut roots = Vec::new();
        for root in &flags.writable_roots {
            let resolved = root
                .canonicalize()
                .with_context(|| format!("--writable-root {}", root.display()))?;
            if !resolved.is_dir() {
                bail!("--writable-root {} is not a directory", root.display());
            }
            roots.push(resolved);
        }
        let mut policy = SandboxPolicy::new(
            match mode {
                FilesystemMode::ReadOnly => FilesystemAccess::ReadOnly,
                FilesystemMode::WorkspaceWrite => FilesystemAccess::WorkspaceWrite,
                FilesystemMode::Full => FilesystemAccess::Full,
            },
            roots,
        );
        policy.network = match flags.sandbox_network.unwrap_or(NetworkMode::None) {
            NetworkMode::None => NetworkAccess::None,
            NetworkMode::Full => NetworkAccess::Full,
        };
        check_enforceable(&policy)?;
        Ok(Some(policy))
    }

    /// For `run` and `mcp`: the `sandbox` param to send with every command
    /// (the server narrows its own policy with it). Writable roots default
    /// to the command's working directory (or the server's roots).
    pub fn request(&self) -> anyhow::Result<Option<SandboxParams>> {
        let flags = self.merged(&FileSandbox::default())?;
        let Some(mode) = flags.sandbox else {
            return Ok(None);
        };
        let mut roots = Vec::new();
        for root in &flags.writable_roots {
            let absolute = std::path::absolute(root)
                .with_context(|| format!("--writable-root {}", root.display()))?;
            roots.push(absolute.display().to_string());
        }
        Ok(Some(SandboxParams {
            filesystem: Some(mode),
            writable_roots: (!roots.is_empty()).then_some(roots),
            network: Some(flags.sandbox_network.unwrap_or(NetworkMode::None)),
            ..SandboxParams::default()
        }))
    }
}

/// Refuses to start a server whose policy this kernel cannot enforce:
/// failing at startup beats failing every command later.
fn check_enforceable(policy: &SandboxPolicy) -> anyhow::Result<()> {
    let support = exec_server_core::sandbox::kernel_support();
    if !support.seccomp {
        bail!("--sandbox: this kernel offers no seccomp filters; a sandbox cannot be enforced");
    }
    if policy.filesystem != FilesystemAccess::Full && !support.landlock_filesystem() {
        bail!(
            "--sandbox {}: this kernel has {}; filesystem confinement needs Landlock ABI 3 or later (Linux 6.2+). Use --sandbox full to confine only the network and privileges",
            match policy.filesystem {
                FilesystemAccess::ReadOnly => "read-only",
                _ => "workspace-write",
            },
            match support.landlock_abi {
                None => "no Landlock".to_string(),
                Some(abi) => format!("Landlock ABI {abi}"),
            }
        );
    }
    Ok(())
}
