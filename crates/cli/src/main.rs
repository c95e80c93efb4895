//! The `exec-server` binary: parses flags into a [`ServerConfig`], starts the
//! chosen transport, and turns SIGINT/SIGTERM into a clean shutdown that
//! kills every child before exiting 0.
//!
//! Exit statuses: 0 after a clean shutdown (end of stdin in stdio mode, or
//! SIGINT/SIGTERM); 2 for unusable flags (clap's convention, also used for
//! a bad `--listen` URL); 1 when the server cannot start (e.g. the address
//! is in use).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use exec_server_service::transport::{stdio, websocket};
use exec_server_service::{ListenAddress, Server};
use tokio::signal::unix::{SignalKind, signal};

mod config;

#[derive(Debug, Parser)]
#[command(
    name = "exec-server",
    version,
    about = "Runs processes for a client over JSON-RPC (stdio or websocket).",
    after_help = "Examples:\n  exec-server                               # one client on stdin/stdout\n  exec-server --listen ws://127.0.0.1:0     # websocket, any free port\n  exec-server --config exec-server.toml     # limits from a file (keys = flag names)\n\nLogs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more."
)]
struct Args {
    /// Where to accept clients: `stdio://` or `ws://IP:PORT` (port 0 picks a free port).
    #[arg(long, default_value = "stdio://", value_name = "URL")]
    listen: String,

    #[command(flatten)]
    server: config::ServerFlags,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let listen: ListenAddress = match args.listen.parse() {
        Ok(listen) => listen,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let config = match args.server.resolve() {
        Ok(config) => config,
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
    let result = runtime.block_on(serve(listen, Server::new(config)));
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

async fn serve(listen: ListenAddress, server: Server) -> anyhow::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let serving = async {
        match listen {
            ListenAddress::Stdio => {
                stdio::serve_stdio(server.clone()).await;
                Ok(())
            }
            ListenAddress::WebSocket(address) => {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address}"))?;
                let bound = listener.local_addr().context("reading the bound address")?;
                eprintln!("exec-server listening on ws://{bound}");
                websocket::serve_websocket(server.clone(), listener)
                    .await
                    .context("websocket server failed")
            }
        }
    };
    let result = tokio::select! {
        result = serving => result,
        _ = interrupt.recv() => Ok(()),
        _ = terminate.recv() => Ok(()),
    };
    let killed = server.shut_down().await;
    tracing::info!(killed, "shutting down");
    result
}
