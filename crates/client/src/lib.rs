//! The Rust client for exec-server.
//!
//! Connect in one of four ways, all giving the same [`ExecServerClient`]:
//!
//! - [`ExecServerClient::connect_stdio`]: over any byte stream pair, one
//!   JSON message per line (e.g. a server child's stdin and stdout);
//! - [`ExecServerClient::connect_websocket`]: to a `ws://` listener, with
//!   connect and initialize timeouts and an optional bearer token;
//! - [`ExecServerClient::connect_in_process`]: a server inside this process,
//!   with no serialization at all;
//! - [`spawn_local_exec_server`]: launches the `exec-server` binary as a
//!   child and connects over its stdio; dropping the handle kills it.
//!
//! Each connection has one dispatcher task that matches responses to
//! requests and routes notifications. Output of a process started with
//! [`ExecServerClient::exec`] goes to its [`ExecSession`], through a bounded
//! channel: a session that is not read holds up the dispatcher, which holds
//! up the server, which stops reading the process's output. Nothing is ever
//! dropped to make room. Notifications for sessions without a live handle
//! go to [`ExecServerClient::take_events`], if someone took it.
//!
//! ```no_run
//! use exec_server_client::{ClientOptions, ExecServerClient};
//! use exec_server_protocol::v0::ExecParams;
//!
//! # async fn demo() -> Result<(), exec_server_client::ClientError> {
//! let client = ExecServerClient::connect_in_process(ClientOptions::default()).await?;
//! let session = client
//!     .exec(ExecParams {
//!         argv: vec!["echo".into(), "hello".into()],
//!         cwd: "/".into(),
//!         env: [("PATH".to_string(), "/usr/bin:/bin".to_string())].into(),
//!         ..Default::default()
//!     })
//!     .await?;
//! let output = session.output().await?;
//! assert_eq!(output.stdout, b"hello\n");
//! assert_eq!(output.exit_code, 0);
//! # Ok(())
//! # }
//! ```

mod client;
mod local;
mod session;
mod transport;

pub use client::{ClientError, ClientEvent, ClientOptions, ExecServerClient, WebSocketConnectArgs};
pub use local::{LocalExecServer, spawn_local_exec_server};
pub use session::{ExecEvent, ExecOutput, ExecSession};

/// The README's Rust example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
