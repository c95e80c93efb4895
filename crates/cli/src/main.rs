//! The `exec-server` binary: parses flags into a [`ServerConfig`], starts the
//! chosen transport, and turns SIGINT/SIGTERM into a clean shutdown that
//! kills every child before exiting 0. With `--shutdown-grace-ms`, a
//! websocket server first drains for the grace (`/readyz` answers 503,
//! attached clients keep working; see `exec_server_service::fleet`).
//!
//! Exit statuses: 0 after a clean shutdown (end of stdin in stdio mode, or
//! SIGINT/SIGTERM); 2 for unusable flags (clap's convention, also used for
//! a bad `--listen` URL); 1 when the server cannot start (e.g. the address
//! is in use).

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use exec_server_service::fleet;
use exec_server_service::transport::{stdio, websocket};
use exec_server_service::{ListenAddress, Server};
use tokio::signal::unix::{SignalKind, signal};

mod config;
mod generate;
mod remote;
mod run;
mod sandbox_flags;

#[derive(Debug, Parser)]
#[command(
    name = "exec-server",
    // The package version, plus the commit when built from git (build.rs).
    version = env!("EXEC_SERVER_LONG_VERSION"),
    about = "Runs processes for a client over JSON-RPC (stdio or websocket).",
    after_help = "Examples:\n  exec-server                               # one client on stdin/stdout\n  exec-server run -- make test              # run one command (see `exec-server run --help`)\n  exec-server --listen ws://127.0.0.1:0     # websocket, any free port\n  exec-server --listen ws://127.0.0.1:8080 --web   # and a browser terminal at http://127.0.0.1:8080/\n  exec-server --config exec-server.toml     # limits from a file (keys = flag names)\n\nLogs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more."
)]
#[command(args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// Where to accept clients: `stdio://`, `ws://IP:PORT` or `wss://IP:PORT` (port 0 picks a free port).
    #[arg(long, default_value = "stdio://", value_name = "URL")]
    listen: String,

    #[command(flatten)]
    server: config::ServerFlags,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run one command through exec-server, like `ssh host cmd` or `kubectl exec -it`.
    Run(run::RunArgs),
    /// Serve MCP on stdio: tools that give AI agents interactive shells.
    Mcp(McpArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(generate::CompletionsArgs),
    /// Print the manual page (roff), or write all of them with --out-dir.
    Man(generate::ManArgs),
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Recommended for agents: exec-server mcp --sandbox workspace-write --writable-root DIR\n(writes only under DIR and a private TMPDIR, DIR/.git read-only, no network). See docs/SANDBOX.md."
)]
struct McpArgs {
    #[command(flatten)]
    server: remote::ServerChoice,

    #[command(flatten)]
    sandbox: sandbox_flags::SandboxFlags,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        // `run` reports its own failures with 255, like ssh; the server
        // keeps clap's 2.
        Err(error) if error.use_stderr() && std::env::args().nth(1).as_deref() == Some("run") => {
            let _ = error.print();
            return ExitCode::from(run::FAILURE_STATUS);
        }
        Err(error) => error.exit(),
    };
    match args.command {
        Some(Command::Run(run_args)) => return run::main(run_args),
        Some(Command::Mcp(mcp_args)) => return mcp_main(mcp_args),
        Some(Command::Completions(args)) => return generate::completions(args, Args::command()),
        Some(Command::Man(args)) => return generate::man(args, Args::command()),
        None => {}
    }
    let listen: ListenAddress = match args.listen.parse() {
        Ok(listen) => listen,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    init_logging();
    let settings = match args
        .server
        .settings()
        .and_then(|settings| check_exposure(&listen, settings))
    {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("exec-server: {error:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("exec-server: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serve(listen, settings));
    // Do not wait for the blocking thread that may still be reading stdin.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("exec-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (stdout carries protocol messages); `RUST_LOG` sets
/// the level, `warn` by default.
fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
}

/// `exec-server mcp`: stdout belongs to the MCP protocol; logs go to stderr.
fn mcp_main(args: McpArgs) -> ExitCode {
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("exec-server mcp: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let sandbox = args.sandbox.request()?;
        let client = args.server.connect("exec-server mcp").await?;
        exec_server_mcp::serve_stdio_with_sandbox(client, sandbox).await
    });
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("exec-server mcp: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Refuses combinations that would expose the server by accident.
fn check_exposure(
    listen: &ListenAddress,
    settings: config::Settings,
) -> anyhow::Result<config::Settings> {
    let Some(address) = listen.socket_address() else {
        if settings.websocket.web {
            anyhow::bail!("--web needs --listen ws://IP:PORT or wss://IP:PORT");
        }
        if settings.tls.is_some() {
            anyhow::bail!("--tls-cert and --tls-key need --listen wss://IP:PORT");
        }
        return Ok(settings);
    };
    match (listen, &settings.tls) {
        (ListenAddress::SecureWebSocket(_), None) => {
            anyhow::bail!("--listen wss:// needs --tls-cert and --tls-key")
        }
        (ListenAddress::WebSocket(_), Some(_)) => {
            anyhow::bail!("--tls-cert and --tls-key need --listen wss://IP:PORT (not ws://)")
        }
        _ => {}
    }
    if !address.ip().is_loopback()
        && settings.websocket.policy.token.is_none()
        && !settings.insecure_no_auth
    {
        anyhow::bail!(
            "refusing to listen on {address} without authentication: anyone who can reach it could run commands as this user. \
             Set --auth-token-file or {}, or pass --insecure-no-auth to accept the risk",
            config::TOKEN_ENV
        );
    }
    Ok(settings)
}

async fn serve(listen: ListenAddress, settings: config::Settings) -> anyhow::Result<()> {
    // Raised before anything opens descriptors; logged after the banner,
    // which stays the first line on stderr.
    let open_files = exec_server_core::limits::raise_open_files_limit();
    let server = Server::new(settings.server);
    let websocket = listen.socket_address().is_some();
    let grace = server.config().shutdown_grace;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let serving = async {
        match listen {
            ListenAddress::Stdio => {
                log_open_files_limit(&open_files);
                stdio::serve_stdio(server.clone()).await;
                Ok(())
            }
            ListenAddress::WebSocket(address) | ListenAddress::SecureWebSocket(address) => {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address}"))?;
                let bound = listener.local_addr().context("reading the bound address")?;
                let served = match &settings.tls {
                    Some((cert, key)) => {
                        let tls = websocket::load_tls_config(cert, key)?;
                        eprintln!("exec-server listening on wss://{bound}");
                        if settings.websocket.web {
                            eprintln!("exec-server browser terminal at https://{bound}/");
                        }
                        log_open_files_limit(&open_files);
                        websocket::serve_websocket_tls(
                            server.clone(),
                            listener,
                            tls,
                            settings.websocket.clone(),
                        )
                        .await
                    }
                    None => {
                        eprintln!("exec-server listening on ws://{bound}");
                        if settings.websocket.web {
                            eprintln!("exec-server browser terminal at http://{bound}/");
                        }
                        log_open_files_limit(&open_files);
                        websocket::serve_websocket_tcp(
                            server.clone(),
                            listener,
                            settings.websocket.clone(),
                        )
                        .await
                    }
                };
                served.context("websocket server failed")
            }
        }
    };
    let mut serving = std::pin::pin!(serving);
    let signalled = tokio::select! {
        result = &mut serving => Some(result),
        _ = interrupt.recv() => None,
        _ = terminate.recv() => None,
    };
    let result = match signalled {
        Some(result) => result,
        // A graceful shutdown of a websocket server drains first: new
        // sessions go elsewhere, attached clients keep working for the
        // grace. A second signal cuts it short.
        None if websocket && !grace.is_zero() => tokio::select! {
            result = &mut serving => result,
            () = fleet::drain(&server, grace) => Ok(()),
            _ = interrupt.recv() => Ok(()),
            _ = terminate.recv() => Ok(()),
        },
        None => Ok(()),
    };
    let killed = server.shut_down().await;
    tracing::info!(killed, "shutting down");
    result
}

/// Every connection, pipe and PTY costs a descriptor, so the server takes
/// what the kernel allows (children get the original limit back, see
/// `exec_server_core::limits`).
fn log_open_files_limit(result: &std::io::Result<exec_server_core::limits::OpenFilesLimit>) {
    match result {
        Ok(limit) if limit.after > limit.before => tracing::info!(
            from = limit.before,
            to = limit.after,
            "raised the open-files limit to the hard limit"
        ),
        Ok(limit) => tracing::info!(limit = limit.after, "open-files limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-files limit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exec_server_service::security::AuthToken;

    fn settings(token: bool, insecure: bool) -> config::Settings {
        let mut settings = config::ServerFlags::default().settings().unwrap();
        settings.websocket.policy.token = token.then(|| AuthToken::new("t").unwrap());
        settings.insecure_no_auth = insecure;
        settings
    }

    #[test]
    fn exposure_rules() {
        let public: ListenAddress = "ws://0.0.0.0:8080".parse().unwrap();
        let loopback: ListenAddress = "ws://127.0.0.1:8080".parse().unwrap();
        assert!(check_exposure(&public, settings(false, false)).is_err());
        assert!(
            check_exposure(&public, settings(false, true)).is_ok(),
            "--insecure-no-auth overrides"
        );
        assert!(
            check_exposure(&public, settings(true, false)).is_ok(),
            "a token makes it safe"
        );
        assert!(check_exposure(&loopback, settings(false, false)).is_ok());
        let secure: ListenAddress = "wss://127.0.0.1:8443".parse().unwrap();
        let error = check_exposure(&secure, settings(false, false)).unwrap_err();
        assert!(error.to_string().contains("--tls-cert"));
    }
}
