//! Logging, the same for every mode of the binary: to stderr (stdout
//! carries protocol messages), at the level `RUST_LOG` asks for (`warn` by
//! default), with one rule that no `RUST_LOG` can lift: crates other than
//! exec-server's log at most at `debug`.
//!
//! Why the cap: at `trace` the libraries under us dump what passes through
//! them. The websocket library logs every frame (as text and as hex), so
//! every `initialize` answer and resume request put a session id, which is
//! a resume secret, in the log; on the client side it logs the whole
//! upgrade request, `Authorization: Bearer TOKEN` included. Their `debug`
//! lines name events, not payloads. Our own crates never log a token or a
//! session id at any level (the types that hold them redact their `Debug`),
//! so they keep every level. `tests/log_secrets.rs` runs the server and a
//! client at `RUST_LOG=trace` and fails if either secret appears.

use std::io::IsTerminal;

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// The most detailed level a crate outside exec-server may log at.
const DEPENDENCY_CAP: Level = Level::DEBUG;

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`,
    /// `fields`, `spans`), for log collectors.
    Json,
}

/// Installs the logger with text lines. Call once, before the runtime
/// starts.
pub fn init() {
    init_with(LogFormat::Text);
}

/// Installs the logger in `format`. Call once, before the runtime starts.
pub fn init_with(format: LogFormat) {
    let requested =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(Level::WARN.as_str()));
    let filter = requested.and(filter_fn(within_cap));
    let layer = fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            // Colour codes only for a person at a terminal, not in log files.
            let layer = layer.with_ansi(std::io::stderr().is_terminal());
            tracing_subscriber::registry()
                .with(layer.with_filter(filter))
                .init();
        }
        LogFormat::Json => {
            let layer = layer.json().with_current_span(false).with_ansi(false);
            tracing_subscriber::registry()
                .with(layer.with_filter(filter))
                .init();
        }
    }
}

/// Whether an event may be logged whatever `RUST_LOG` says. Events that
/// come through the `log` crate carry their module path as the target too.
fn within_cap(metadata: &Metadata<'_>) -> bool {
    // In `tracing`, more detailed levels compare greater.
    *metadata.level() <= DEPENDENCY_CAP || is_ours(metadata.target())
}

/// exec-server's own crates: `exec_server` (this binary) and every
/// `exec_server_*` library.
fn is_ours(target: &str) -> bool {
    target == "exec_server"
        || target.starts_with("exec_server::")
        || target.starts_with("exec_server_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_crates_pass_the_cap() {
        for ours in [
            "exec_server",
            "exec_server::run",
            "exec_server_service::connection",
        ] {
            assert!(is_ours(ours), "{ours}");
        }
        for theirs in [
            "tungstenite::protocol",
            "tokio_tungstenite",
            "hyper::proto::h1::io",
            "rustls::server::hs",
            "exec_serverless",
        ] {
            assert!(!is_ours(theirs), "{theirs}");
        }
    }
}
