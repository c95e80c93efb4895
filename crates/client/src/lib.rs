#![deny(missing_docs)]
//! The Rust client for exec-server.
//!
//! Connect in one of four ways, all giving the same [`ExecServerClient`]:
//!
//! - [`ExecServerClient::connect_stdio`]: over any byte stream pair, one
//!   JSON message per line (e.g. a server child's stdin and stdout);
//! - [`ExecServerClient::connect_websocket`]: to a `ws://` or `wss://`
//!   listener, with connect and initialize timeouts, an optional bearer
//!   token and an optional [`ReconnectPolicy`];
//! - `ExecServerClient::connect_in_process` (feature `in-process`): a
//!   server inside this process, with no serialization at all;
//! - [`spawn_local_exec_server`]: launches the `exec-server` binary as a
//!   child and connects over its stdio; dropping the handle kills it.
//!
//! By default the crate depends on the protocol crate only (plus tokio,
//! the websocket client and TLS): the server, with axum, vt100 and regex,
//! comes in only with the `in-process` feature.
//!
//! # Layers
//!
//! Each layer knows only the one below it:
//!
//! ```text
//!  RemoteProcess / ExecSession       process.rs, session.rs: handles, helpers
//!        │  events (bounded channel per handle)
//!  ExecServerClient                  client.rs, fs.rs: connect, one typed call per method
//!        │  Command (bounded channel)
//!  Dispatcher                        dispatch/: the routing table, replay per route
//!        │  LinkEvent / Sink
//!  Link                              link/: handshake, reconnect, resume
//!        │  Transport: two bounded channels of messages
//!  lines · websocket · in_process    transport/: bytes ⇄ messages
//! ```
//!
//! - [`error`](ClientError) and [`options`](ClientOptions) are shared by
//!   all layers; [`ProcessEvent`], [`ExecEvent`] and [`ClientEvent`] are
//!   what handles receive.
//! - A transport is a pair of bounded channels: client messages out,
//!   server messages in. Its tasks encode and decode; no layer above sees
//!   bytes.
//! - The link owns the current transport. It performs the `initialize`
//!   handshake, and when a websocket connection with a reconnect policy
//!   drops, it reconnects and resumes the session.
//! - The dispatcher is one task and the only owner of the routing table:
//!   requests in flight, one route per v0 session and per process handle.
//!   Callers reach it through a command channel. After a resume it makes
//!   each process route catch up with `process/read` (see below).
//! - The API is derived from the protocol's method table
//!   (`exec_server_protocol::methods`): [`ExecServerClient::call`] sends
//!   any method `M` with `M::Params` and returns `M::Result`, and each
//!   typed call (`start`, `read`, `status`, ...) is one line over it. The
//!   handles wrap the API with helpers.
//!
//! # Delivery
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
//! budget for all streams, cut at lines, head and tail kept).
//!
//! # Resume
//!
//! A websocket client with a [`ReconnectPolicy`] resumes its session when
//! the connection drops. Requests that were in flight fail with
//! [`ClientError::ConnectionLost`] and are never sent twice; v0 sessions
//! end (the server kills them). Each process handle then reads back what it
//! missed, page by page, with the handle's own backpressure: every byte
//! arrives exactly once, or is counted in a [`ProcessEvent::Gap`] of
//! exactly the bytes retention dropped, right before the next bytes of its
//! stream. Chunks of `process/read` carry their stream offset, so the
//! client computes each gap from what it received rather than trusting a
//! count. Live output that arrives during the last page is held (bounded)
//! and merged only if its seqs continue the replay without a hole. When the
//! session cannot be resumed, each handle ends with [`ProcessEvent::Lost`]
//! saying why, and every call fails with that reason, e.g.
//! [`ClientError::ServerUnavailable`] naming the server when the server
//! that owns the session stayed out of reach ([`ExecServerClient::closed`]).
//! Behind a load balancer the resume goes to the owner
//! ([`ResumeTarget`]).
//!
//! Files on the server's machine: a typed call per `fs/*` method
//! ([`ExecServerClient::fs_read_file`], ...), whole-file helpers
//! ([`ExecServerClient::read_file`], [`ExecServerClient::write_file`]) and
//! streams for large files ([`FsReader`], [`FsWriter`]).
//!
//! ```no_run
//! use exec_server_client::{ExecServerClient, WebSocketConnectArgs};
//! use exec_server_protocol::process::StartParams;
//!
//! # async fn demo() -> Result<(), exec_server_client::ClientError> {
//! let client =
//!     ExecServerClient::connect_websocket(WebSocketConnectArgs::new("ws://127.0.0.1:8080"))
//!         .await?;
//! let output = client
//!     .start(StartParams {
//!         argv: vec!["echo".into(), "hello".into()],
//!         cwd: "/".into(),
//!         inherit_env: true,
//!         ..Default::default()
//!     })
//!     .await?
//!     .output()
//!     .await?;
//! assert_eq!(output.stdout, b"hello\n");
//! assert_eq!(output.exit.exit_code, 0);
//! # Ok(())
//! # }
//! ```

mod client;
mod collect;
mod dispatch;
mod error;
mod event;
mod fs;
mod link;
mod local;
mod options;
mod process;
mod session;
pub mod terminal_text;
mod transport;

pub use client::ExecServerClient;
pub use collect::{
    Budgeted, CollectOptions, Collected, OutputCursor, Progress, Render, Stopped, collect,
};
pub use error::ClientError;
pub use event::{ClientEvent, ExecEvent, ProcessEvent};
pub use fs::{FsReader, FsWriter};
pub use local::{LocalExecServer, spawn_local_exec_server};
pub use options::{ClientOptions, ReconnectPolicy, ResumeTarget, WebSocketConnectArgs};
pub use process::{ExitInfo, ProcessOutput, RemoteProcess};
pub use session::{ExecOutput, ExecSession};

/// The README's Rust example, compiled and run as a doc test.
#[cfg(all(doctest, feature = "in-process"))]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
