//! Server flags and the optional TOML config file, merged into a validated
//! [`ServerConfig`]: a flag beats the file, the file beats the default.
//!
//! The file uses the flag names as keys (`max-processes-per-connection =
//! 64`); unknown keys are an error, so a typo never silently keeps a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use exec_server_core::TerminalSize;
use exec_server_service::ServerConfig;
use exec_server_service::fleet::{PathPrefix, ServerId};
use exec_server_service::security::{AccessPolicy, AuthToken};
use exec_server_service::transport::listener::PendingLimits;
use exec_server_service::transport::websocket::WebSocketOptions;
use serde::Deserialize;

/// The name of the environment variable that may carry the token, as a
/// literal for `concat!` in help texts; use [`TOKEN_ENV`] elsewhere.
macro_rules! token_env {
    () => {
        "EXEC_SERVER_AUTH_TOKEN"
    };
}
pub(crate) use token_env;

/// The environment variable that may carry the token, for the server
/// (`--auth-token-file`) and for clients (`--token-file`) alike.
pub const TOKEN_ENV: &str = token_env!();

/// Limits and defaults (SPEC 3.3). Every flag can also be set in `--config`.
#[derive(Debug, Default, Args)]
pub struct ServerFlags {
    /// TOML file with any of the settings below, keyed by flag name.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Largest accepted message in bytes; larger ones are refused with -32600 [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    pub max_message_bytes: Option<usize>,

    /// Output retained per process stream for read/snapshot, head and tail halves [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub retained_output_bytes: Option<usize>,

    /// Running processes one connection may have at once [default: 1024].
    #[arg(long, value_name = "N")]
    pub max_processes_per_connection: Option<usize>,

    /// Exited process records a session keeps before evicting the oldest [default: 256].
    #[arg(long, value_name = "N")]
    pub max_exited_records: Option<usize>,

    /// Default and longest time detached processes wait to be resumed [default: 30000].
    #[arg(long, value_name = "MS")]
    pub detach_ttl_ms: Option<u64>,

    /// On SIGINT/SIGTERM: drain (readyz 503, attached clients keep working) up to this long, then SIGTERM the children and wait up to this long before SIGKILL [default: 0].
    #[arg(long, value_name = "MS")]
    pub shutdown_grace_ms: Option<u64>,

    #[arg(
        long,
        value_name = "PATH",
        help = concat!("File holding the bearer token websocket clients must present (or set ", token_env!(), ").")
    )]
    pub auth_token_file: Option<PathBuf>,

    /// Allow browser pages from this origin (e.g. https://ide.example.com); repeatable.
    #[arg(long, value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,

    /// PEM certificate chain for --listen wss://.
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --listen wss://.
    #[arg(long, value_name = "PEM")]
    pub tls_key: Option<PathBuf>,

    /// Open websocket connections allowed at once [default: 1024].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// This server's public name in a fleet, returned by initialize and /readyz and used by balancers to route resumes [default: the host name].
    #[arg(long, value_name = "ID")]
    pub server_id: Option<String>,

    /// Serve the websocket endpoint at PREFIX/ and PREFIX/SERVER_ID/ (e.g. /exec) [default: /].
    #[arg(long, value_name = "PREFIX")]
    pub path_prefix: Option<String>,

    /// Also serve a browser terminal at / on the websocket listener (http:// or https:// on the same port).
    #[arg(long)]
    pub web: bool,
    /// Largest terminal height a client may ask for (process/start size, process/resize) [default: 1000].
    #[arg(long, value_name = "ROWS")]
    pub max_terminal_rows: Option<u16>,

    /// Largest terminal width a client may ask for [default: 1000].
    #[arg(long, value_name = "COLS")]
    pub max_terminal_cols: Option<u16>,

    /// Memory for terminal screens kept between snapshots and through dropped output, all processes together; beyond it screens are rebuilt per snapshot (approximate once output was dropped) [default: 134217728].
    #[arg(long, value_name = "BYTES")]
    pub screen_memory_bytes: Option<usize>,

    /// Stdin bytes a process has not read yet, at most; a write beyond waits up to 5 s for room, then is refused [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub stdin_queue_bytes: Option<usize>,

    /// Running processes on the whole server, detached ones included [default: 4096].
    #[arg(long, value_name = "N")]
    pub max_processes: Option<usize>,

    /// Close a websocket whose client has not initialized this long after the upgrade [default: 10000].
    #[arg(long, value_name = "MS")]
    pub initialize_timeout_ms: Option<u64>,

    /// Time for a TLS handshake and for each HTTP request head before the upgrade [default: 5000].
    #[arg(long, value_name = "MS")]
    pub handshake_timeout_ms: Option<u64>,

    /// Connections that have not upgraded to a websocket yet, at most (the oldest is closed beyond; also capped at a quarter of the open-files limit) [default: 256].
    #[arg(long, value_name = "N")]
    pub max_pending_connections: Option<usize>,

    /// Listen on a non-loopback address without a token. Anyone who can reach the port can run commands as this user.
    #[arg(long)]
    pub insecure_no_auth: bool,

    #[command(flatten)]
    pub sandbox: crate::sandbox_flags::SandboxFlags,
    /// Most bytes one fs/readFile or fs/readBlock returns [default: 8388608].
    #[arg(long, value_name = "BYTES")]
    pub fs_max_read_bytes: Option<u64>,

    /// Files one connection may hold open with fs/open [default: 128].
    #[arg(long, value_name = "N")]
    pub fs_max_handles: Option<usize>,

    /// Watches one connection may hold with fs/watch [default: 64].
    #[arg(long, value_name = "N")]
    pub fs_max_watches: Option<usize>,

    /// Directories the watches of one connection may cover together [default: 8192].
    #[arg(long, value_name = "N")]
    pub fs_max_watch_directories: Option<usize>,

    /// Most entries one fs/readDirectory returns [default: 50000].
    #[arg(long, value_name = "N")]
    pub fs_max_entries: Option<usize>,
}

/// Everything the binary needs to serve, validated.
#[derive(Debug)]
pub struct Settings {
    pub server: ServerConfig,
    pub websocket: WebSocketOptions,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub insecure_no_auth: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    max_message_bytes: Option<usize>,
    retained_output_bytes: Option<usize>,
    max_processes_per_connection: Option<usize>,
    max_exited_records: Option<usize>,
    detach_ttl_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    auth_token_file: Option<PathBuf>,
    #[serde(default)]
    allow_origin: Vec<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_connections: Option<usize>,
    #[serde(default)]
    insecure_no_auth: bool,
    server_id: Option<String>,
    path_prefix: Option<String>,
    #[serde(default)]
    web: bool,
    sandbox: Option<String>,
    #[serde(default)]
    writable_root: Vec<PathBuf>,
    sandbox_network: Option<String>,
    fs_max_read_bytes: Option<u64>,
    fs_max_handles: Option<usize>,
    fs_max_watches: Option<usize>,
    fs_max_watch_directories: Option<usize>,
    fs_max_entries: Option<usize>,
    max_terminal_rows: Option<u16>,
    max_terminal_cols: Option<u16>,
    screen_memory_bytes: Option<usize>,
    stdin_queue_bytes: Option<usize>,
    max_processes: Option<usize>,
    initialize_timeout_ms: Option<u64>,
    handshake_timeout_ms: Option<u64>,
    max_pending_connections: Option<usize>,
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid --config file {}", path.display()))
}

impl ServerFlags {
    /// Merges flags, file, environment and defaults, and checks the values.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let file = self.load_file()?;
        let token = match self
            .auth_token_file
            .as_ref()
            .or(file.auth_token_file.as_ref())
        {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --auth-token-file {}", path.display()))?;
                // The message names the file, never its content.
                Some(
                    AuthToken::new(&text).with_context(|| {
                        format!("--auth-token-file {} is empty", path.display())
                    })?,
                )
            }
            None => match std::env::var(TOKEN_ENV) {
                Ok(value) => Some(
                    AuthToken::new(&value)
                        .with_context(|| format!("{TOKEN_ENV} is set but empty"))?,
                ),
                Err(_) => None,
            },
        };
        let mut allowed_origins = file.allow_origin.clone();
        allowed_origins.extend(self.allow_origin.iter().cloned());
        let tls = match (
            self.tls_cert.clone().or(file.tls_cert.clone()),
            self.tls_key.clone().or(file.tls_key.clone()),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        };
        let max_connections = self
            .max_connections
            .or(file.max_connections)
            .unwrap_or(1024);
        if max_connections == 0 {
            anyhow::bail!("--max-connections must be at least 1");
        }
        let path_prefix = match self.path_prefix.as_ref().or(file.path_prefix.as_ref()) {
            Some(prefix) => PathPrefix::new(prefix)?,
            None => PathPrefix::default(),
        };
        let pending_defaults = PendingLimits::default();
        let pending = PendingLimits {
            handshake_timeout: self
                .handshake_timeout_ms
                .or(file.handshake_timeout_ms)
                .map(Duration::from_millis)
                .unwrap_or(pending_defaults.handshake_timeout),
            max_pending: self
                .max_pending_connections
                .or(file.max_pending_connections)
                .unwrap_or(pending_defaults.max_pending),
        };
        if pending.handshake_timeout.is_zero() {
            anyhow::bail!("--handshake-timeout-ms must be at least 1");
        }
        if pending.max_pending == 0 {
            anyhow::bail!("--max-pending-connections must be at least 1");
        }
        Ok(Settings {
            server: self.resolve_with(&file)?,
            websocket: WebSocketOptions {
                policy: AccessPolicy {
                    token,
                    allowed_origins,
                },
                max_connections,
                path_prefix,
                web: self.web || file.web,
                pending,
            },
            tls,
            insecure_no_auth: self.insecure_no_auth || file.insecure_no_auth,
        })
    }

    /// The `--config` file's settings, or none without one: read once,
    /// here, for every setting.
    fn load_file(&self) -> anyhow::Result<FileConfig> {
        match &self.config {
            Some(path) => read_file(path),
            None => Ok(FileConfig::default()),
        }
    }

    /// The protocol limits from flags, file and defaults.
    #[cfg(test)]
    fn resolve(&self) -> anyhow::Result<ServerConfig> {
        self.settings().map(|settings| settings.server)
    }

    fn resolve_with(&self, file: &FileConfig) -> anyhow::Result<ServerConfig> {
        let defaults = ServerConfig::default();
        let mut config = ServerConfig {
            max_message_bytes: self
                .max_message_bytes
                .or(file.max_message_bytes)
                .unwrap_or(defaults.max_message_bytes),
            retained_output_bytes: self
                .retained_output_bytes
                .or(file.retained_output_bytes)
                .unwrap_or(defaults.retained_output_bytes),
            max_processes_per_connection: self
                .max_processes_per_connection
                .or(file.max_processes_per_connection)
                .unwrap_or(defaults.max_processes_per_connection),
            max_exited_records: self
                .max_exited_records
                .or(file.max_exited_records)
                .unwrap_or(defaults.max_exited_records),
            detach_ttl: self
                .detach_ttl_ms
                .or(file.detach_ttl_ms)
                .map(Duration::from_millis)
                .unwrap_or(defaults.detach_ttl),
            shutdown_grace: self
                .shutdown_grace_ms
                .or(file.shutdown_grace_ms)
                .map(Duration::from_millis)
                .unwrap_or(defaults.shutdown_grace),
            max_wait: defaults.max_wait,
            server_id: match self.server_id.as_ref().or(file.server_id.as_ref()) {
                Some(id) => ServerId::new(id)?,
                None => defaults.server_id,
            },
            sandbox: self
                .sandbox
                .server_policy(&crate::sandbox_flags::FileSandbox {
                    sandbox: file.sandbox.clone(),
                    writable_roots: file.writable_root.clone(),
                    sandbox_network: file.sandbox_network.clone(),
                })?,
            fs_policy: defaults.fs_policy,
            fs_limits: self.fs_limits(file, defaults.fs_limits)?,
            max_terminal_size: TerminalSize {
                rows: self
                    .max_terminal_rows
                    .or(file.max_terminal_rows)
                    .unwrap_or(defaults.max_terminal_size.rows),
                cols: self
                    .max_terminal_cols
                    .or(file.max_terminal_cols)
                    .unwrap_or(defaults.max_terminal_size.cols),
            },
            screen_memory_bytes: self
                .screen_memory_bytes
                .or(file.screen_memory_bytes)
                .unwrap_or(defaults.screen_memory_bytes),
            stdin_queue_bytes: self
                .stdin_queue_bytes
                .or(file.stdin_queue_bytes)
                .unwrap_or(defaults.stdin_queue_bytes),
            max_processes: self
                .max_processes
                .or(file.max_processes)
                .unwrap_or(defaults.max_processes),
            initialize_timeout: self
                .initialize_timeout_ms
                .or(file.initialize_timeout_ms)
                .map(Duration::from_millis)
                .unwrap_or(defaults.initialize_timeout),
        };
        // The files API obeys the same roots as the sandboxed processes.
        if let Some(policy) = &config.sandbox {
            config.fs_policy = exec_server_service::sandbox::fs_policy(policy);
        }
        if config.max_message_bytes < 1024 {
            anyhow::bail!("--max-message-bytes must be at least 1024");
        }
        if config.max_processes_per_connection == 0 {
            anyhow::bail!("--max-processes-per-connection must be at least 1");
        }
        if config.max_terminal_size.rows == 0 || config.max_terminal_size.cols == 0 {
            anyhow::bail!("--max-terminal-rows and --max-terminal-cols must be at least 1");
        }
        if !(1024..=u32::MAX as usize).contains(&config.stdin_queue_bytes) {
            anyhow::bail!("--stdin-queue-bytes must be between 1024 and 4294967295");
        }
        if config.max_processes == 0 {
            anyhow::bail!("--max-processes must be at least 1");
        }
        if config.initialize_timeout.is_zero() {
            anyhow::bail!("--initialize-timeout-ms must be at least 1");
        }
        Ok(config)
    }
}

impl ServerFlags {
    /// The `fs/*` limits: flag, then file, then default; each at least 1.
    fn fs_limits(
        &self,
        file: &FileConfig,
        defaults: exec_server_fs::FsLimits,
    ) -> anyhow::Result<exec_server_fs::FsLimits> {
        let limits = exec_server_fs::FsLimits {
            max_read_bytes: self
                .fs_max_read_bytes
                .or(file.fs_max_read_bytes)
                .unwrap_or(defaults.max_read_bytes),
            max_handles: self
                .fs_max_handles
                .or(file.fs_max_handles)
                .unwrap_or(defaults.max_handles),
            max_watches: self
                .fs_max_watches
                .or(file.fs_max_watches)
                .unwrap_or(defaults.max_watches),
            max_watch_directories: self
                .fs_max_watch_directories
                .or(file.fs_max_watch_directories)
                .unwrap_or(defaults.max_watch_directories),
            max_entries: self
                .fs_max_entries
                .or(file.fs_max_entries)
                .unwrap_or(defaults.max_entries),
        };
        for (value, flag) in [
            (limits.max_read_bytes as usize, "--fs-max-read-bytes"),
            (limits.max_handles, "--fs-max-handles"),
            (limits.max_watches, "--fs-max-watches"),
            (limits.max_watch_directories, "--fs-max-watch-directories"),
            (limits.max_entries, "--fs-max-entries"),
        ] {
            if value == 0 {
                anyhow::bail!("{flag} must be at least 1");
            }
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "max-exited-records = 7\ndetach-ttl-ms = 500\nmax-message-bytes = 4096\n",
        )
        .unwrap();
        let flags = ServerFlags {
            config: Some(path),
            max_message_bytes: Some(2048),
            ..Default::default()
        };
        let config = flags.resolve().unwrap();
        assert_eq!(config.max_exited_records, 7);
        assert_eq!(config.detach_ttl, Duration::from_millis(500));
        assert_eq!(config.max_message_bytes, 2048);
        assert_eq!(config.max_processes_per_connection, 1024);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "max-proceses = 3\n").unwrap();
        let error = ServerFlags {
            config: Some(path),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{error:#}").contains("max-proceses"), "{error:#}");
        let error = ServerFlags {
            max_message_bytes: Some(10),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(error.to_string().contains("--max-message-bytes"));
    }

    #[test]
    fn fs_limits_come_from_flags_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "fs-max-handles = 3\nfs-max-entries = 10\n").unwrap();
        let flags = ServerFlags {
            config: Some(path),
            fs_max_entries: Some(20),
            ..Default::default()
        };
        let limits = flags.resolve().unwrap().fs_limits;
        assert_eq!((limits.max_handles, limits.max_entries), (3, 20));
        assert_eq!(limits.max_read_bytes, 8 * 1024 * 1024);
        let error = ServerFlags {
            fs_max_watches: Some(0),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(error.to_string().contains("--fs-max-watches"), "{error}");
    }
}
