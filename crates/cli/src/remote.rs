//! Choosing the exec-server a front-end talks to: an embedded in-process
//! server by default, or a remote one with `--connect`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use exec_server_client::{ClientOptions, ExecServerClient, WebSocketConnectArgs};

use crate::config::{TOKEN_ENV, token_env};

/// `--connect`, `--token-file`, `--ca-cert`: shared by `run` and `mcp`.
#[derive(Debug, Default, clap::Args)]
pub struct ServerChoice {
    /// Remote server, ws://IP:PORT or wss://HOST:PORT; default: an embedded in-process server.
    #[arg(long, value_name = "URL")]
    pub connect: Option<String>,

    #[arg(
        long,
        value_name = "FILE",
        help = concat!("File with the server's bearer token (default: ", token_env!(), ", if set).")
    )]
    pub token_file: Option<PathBuf>,

    /// Extra CA certificate (PEM) to trust for wss://.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
}

impl ServerChoice {
    /// Connects (or starts the embedded server) and performs the handshake.
    pub async fn connect(&self, client_name: &str) -> anyhow::Result<ExecServerClient> {
        let options = ClientOptions {
            client_name: client_name.into(),
            ..ClientOptions::default()
        };
        let Some(url) = &self.connect else {
            return Ok(ExecServerClient::connect_in_process(options).await?);
        };
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            bail!("--connect `{url}`: expected ws://HOST:PORT or wss://HOST:PORT");
        }
        let token = match &self.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --token-file {}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            None => std::env::var(TOKEN_ENV).ok(),
        };
        let mut connect = WebSocketConnectArgs::new(url);
        connect.bearer_token = token.filter(|t| !t.is_empty());
        connect.options = options;
        if let Some(path) = &self.ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
            connect.ca_pem = Some(pem);
        }
        Ok(ExecServerClient::connect_websocket(connect).await?)
    }
}
