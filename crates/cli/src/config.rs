//! Server flags and the optional TOML config file, merged into a validated
//! [`ServerConfig`]: a flag beats the file, the file beats the default.
//!
//! The file uses the flag names as keys (`max-processes-per-connection =
//! 64`); unknown keys are an error, so a typo never silently keeps a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use exec_server_service::ServerConfig;
use serde::Deserialize;

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

    /// On SIGINT/SIGTERM, SIGTERM the children and wait this long before SIGKILL [default: 0].
    #[arg(long, value_name = "MS")]
    pub shutdown_grace_ms: Option<u64>,
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
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid --config file {}", path.display()))
}

impl ServerFlags {
    /// Merges flags, file and defaults, and checks the values.
    pub fn resolve(&self) -> anyhow::Result<ServerConfig> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let defaults = ServerConfig::default();
        let config = ServerConfig {
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
        };
        if config.max_message_bytes < 1024 {
            anyhow::bail!("--max-message-bytes must be at least 1024");
        }
        if config.max_processes_per_connection == 0 {
            anyhow::bail!("--max-processes-per-connection must be at least 1");
        }
        Ok(config)
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
}
