#![deny(missing_docs)]
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
//! Processes come back as handles: [`ExecSession`] for v0's
//! [`ExecServerClient::exec`], [`RemoteProcess`] for the process API's
//! [`ExecServerClient::start`]. Each handle receives its own output, exit
//! and close, in order, through a bounded channel: a handle that is not read
//! holds up the connection, which holds up the server, which stops reading
//! the process's output. Nothing is ever dropped to make room.
//! Notifications without a live handle go to
//! [`ExecServerClient::take_events`], if someone took it.
//!
//! Helpers on [`RemoteProcess`]: [`output`](RemoteProcess::output) (run to
//! completion), [`communicate`](RemoteProcess::communicate) (feed stdin,
//! then run to completion), and [`collect`](RemoteProcess::collect), the
//! yield-window collector for LLM tool layers ([`collect()`]: returns when
//! the program waits for input, matches a pattern, exits or the window
//! ends; terminal output as readable text ([`terminal_text`]); one byte
//! budget for all streams, cut at lines, head and tail kept). A websocket client with a [`ReconnectPolicy`] resumes its session
//! when the connection drops, replaying each handle's missed output from its
//! last `seq` and reporting gaps as [`ProcessEvent::Gap`]; requests that were
//! in flight fail with [`ClientError::ConnectionLost`] and are never sent
//! twice. Behind a load balancer the resume goes to the server that owns
//! the session ([`ResumeTarget`]); when that server is gone the client
//! gives up within the policy's bounds with one
//! [`ClientError::ServerUnavailable`] naming it ([`ExecServerClient::closed`]).
//!
//! Files on the server's machine: a typed call per `fs/*` method
//! ([`ExecServerClient::fs_read_file`], ...), whole-file helpers
//! ([`ExecServerClient::read_file`], [`ExecServerClient::write_file`]) and
//! streams for large files ([`FsReader`], [`FsWriter`]).
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
mod collect;
mod dispatch;
mod fs;
mod local;
mod process;
mod route;
mod session;
pub mod terminal_text;
mod transport;

pub use client::{
    ClientError, ClientEvent, ClientOptions, ExecServerClient, ReconnectPolicy, ResumeTarget,
    WebSocketConnectArgs,
};
pub use collect::{
    Budgeted, CollectOptions, Collected, OutputCursor, Progress, Render, Stopped, collect,
};
pub use fs::{FsReader, FsWriter};
pub use local::{LocalExecServer, spawn_local_exec_server};
pub use process::{ExitInfo, ProcessEvent, ProcessOutput, RemoteProcess};
pub use session::{ExecEvent, ExecOutput, ExecSession};

/// The README's Rust example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
