//! The `exec-server` binary: parses flags into a [`ServerConfig`], starts the
//! chosen transport, and turns SIGINT/SIGTERM (or the end of stdin) into
//! the server's shutdown (`Server::shut_down`, see
//! `exec_server_service::lifecycle`): with `--shutdown-grace-ms`, a
//! websocket server drains for the grace (`/readyz` answers 503, attached
//! clients keep working), then every process group gets SIGTERM and the
//! grace before SIGKILL, then every connection flushes and closes; a
//! second signal skips the waits. It exits 0 once that is done.
//!
//! `run` and `mcp` are front-ends over the client (`run.rs`, `remote.rs`).
//! Every mode logs through `logging` and runs on the one runtime of
//! [`block_on`].
//!
//! Exit statuses: 0 after a clean shutdown (end of stdin in stdio mode, or
//! SIGINT/SIGTERM); 2 for unusable flags (clap's convention, also used for
//! a bad `--listen` URL); 1 when the server cannot start (e.g. the address
//! is in use).

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use exec_server_service::transport::{stdio, websocket};
use exec_server_service::{ListenAddress, Server, ShutdownOptions};
use tokio::signal::unix::{Signal, SignalKind, signal};

mod config;
mod cp;
mod generate;
mod logging;
mod remote;
mod run;
mod sandbox_flags;

#[derive(Debug, Parser)]
#[command(
    name = "exec-server",
    // The package version, plus the commit when built from git (build.rs).
    version = env!("EXEC_SERVER_LONG_VERSION"),
    about = "Runs processes for a client over JSON-RPC (stdio or websocket).",
    after_help = "Examples:\n  exec-server                               # one client on stdin/stdout\n  exec-server run -- make test              # run one command (see `exec-server run --help`)\n  exec-server cp -r ./src :/work/src         # copy files (see `exec-server cp --help`)\n  exec-server --listen ws://127.0.0.1:0     # websocket, any free port\n  exec-server --listen ws://127.0.0.1:8080 --web   # and a browser terminal at http://127.0.0.1:8080/\n  exec-server --config exec-server.toml     # limits from a file (keys = flag names)\n\nLogs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more."
)]
#[command(args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// Where to accept clients: `stdio://`, `ws://IP:PORT` or `wss://IP:PORT` (port 0 picks a free port).
    #[arg(long, default_value = "stdio://", value_name = "URL")]
    listen: String,

    /// How log lines on stderr are written: `text`, or `json` (one object per line) for log collectors.
    #[arg(long, value_enum, default_value_t = logging::LogFormat::Text, value_name = "FORMAT")]
    log_format: logging::LogFormat,

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
    /// Copy files and directories to or from the server's machine, like scp (remote paths start with `:`).
    Cp(cp::CpArgs),
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
        // `cp` fails with 1 and one line, like its other failures.
        Err(error) if error.use_stderr() && std::env::args().nth(1).as_deref() == Some("cp") => {
            let rendered = error.render().to_string();
            let line = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("exec-server cp: {}", line.trim_start_matches("error: "));
            return ExitCode::FAILURE;
        }
        Err(error) => error.exit(),
    };
    match args.command {
        Some(Command::Run(run_args)) => return run::main(run_args),
        Some(Command::Mcp(mcp_args)) => return mcp_main(mcp_args),
        Some(Command::Completions(args)) => return generate::completions(args, Args::command()),
        Some(Command::Man(args)) => return generate::man(args, Args::command()),
        Some(Command::Cp(cp_args)) => return cp::main(cp_args),
        None => {}
    }
    let listen: ListenAddress = match args.listen.parse() {
        Ok(listen) => listen,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    logging::init_with(args.log_format);
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
    match block_on(serve(listen, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("exec-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `future` on a new multi-threaded runtime: the one runtime builder
/// of the binary (server, `run`, `mcp`). The runtime is shut down without
/// waiting for its blocking threads: one may be blocked reading stdin, a
/// read nothing will ever end.
pub(crate) fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(future);
    runtime.shutdown_background();
    result
}

/// `exec-server mcp`: stdout belongs to the MCP protocol; logs go to stderr.
fn mcp_main(args: McpArgs) -> ExitCode {
    logging::init();
    let result = block_on(async {
        let sandbox = args.sandbox.request()?;
        let client = args.server.connect("exec-server mcp").await?;
        exec_server_mcp::serve_stdio_with_sandbox(client, sandbox).await
    });
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
    let mut signals = StopSignals::install()?;
    // A listener may be behind a balancer, so it drains before it stops;
    // stdio has its one client and nothing to drain.
    let drain = listen.socket_address().is_some();
    let config::Settings { websocket, tls, .. } = settings;
    let mut listening = tokio::spawn(listen_on(
        server.clone(),
        listen,
        websocket,
        tls,
        open_files,
    ));
    let (result, signalled) = tokio::select! {
        // Stdio input ended, or the listener failed.
        joined = &mut listening => match joined {
            Ok(result) => (result, false),
            Err(error) => (Err(anyhow::anyhow!("the listener failed: {error}")), false),
        },
        () = signals.next() => (Ok(()), true),
    };
    let options = ShutdownOptions {
        drain: drain && signalled,
    };
    // A second signal hurries the shutdown along (no drain, no grace).
    let report = server.shut_down(options, signals.next()).await;
    tracing::info!(
        process_groups = report.process_groups,
        unfinished_connections = report.unfinished_connections,
        "shut down"
    );
    result
}

/// Serves `listen` until its input ends (stdio) or the server starts
/// terminating (a websocket listener stops accepting then; see
/// `exec_server_service::lifecycle`).
async fn listen_on(
    server: Server,
    listen: ListenAddress,
    options: websocket::WebSocketOptions,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    open_files: std::io::Result<exec_server_core::limits::OpenFilesLimit>,
) -> anyhow::Result<()> {
    let address = match listen {
        ListenAddress::Stdio => {
            log_open_files_limit(&open_files);
            stdio::serve_stdio(server).await;
            return Ok(());
        }
        ListenAddress::WebSocket(address) | ListenAddress::SecureWebSocket(address) => address,
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let scheme = if tls.is_some() { "s" } else { "" };
    eprintln!("exec-server listening on ws{scheme}://{bound}");
    if options.web {
        eprintln!("exec-server browser terminal at http{scheme}://{bound}/");
    }
    log_open_files_limit(&open_files);
    let served = match tls {
        Some((cert, key)) => {
            let tls = websocket::load_tls_config(&cert, &key)?;
            websocket::serve_websocket_tls(server, listener, tls, options).await
        }
        None => websocket::serve_websocket_tcp(server, listener, options).await,
    };
    served.context("websocket server failed")
}

/// SIGINT and SIGTERM: the first starts the shutdown, the next hurries it.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<StopSignals> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Resolves at the next SIGINT or SIGTERM.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
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
