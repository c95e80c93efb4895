//! The exec-server service: transports, protocol routing and the
//! per-connection handler, on top of the process core.
//!
//! Data flow for one connection:
//!
//! ```text
//! transport reader ──Incoming──▶ connection ──▶ router ──▶ handlers::AREA::NAME(&mut Context, Params)
//!                                (handshake,     (from the      │ Result<M::Result, ApiError>
//!                                 order)          method table) ▼
//!                                    └──────── response ──ServerMessage──▶ transport writer
//!                                                                                  ▲
//!            process core ──ProcessEvent──▶ forwarder ──notifications──────────────┘
//! ```
//!
//! - [`transport`] turns bytes into [`Incoming`] messages and
//!   [`ServerMessage`](exec_server_protocol::ServerMessage)s back into bytes:
//!   newline-delimited stdio and websocket frames. A transport is a pair of
//!   bounded channels; the handler never sees bytes or sockets. Both run a
//!   connection the same way and give its writer one bound
//!   ([`transport::FINAL_FLUSH`]) after the end.
//! - [`connection`] reads one connection's messages in order: the
//!   handshake gate, one request at a time, answers deferred to their own
//!   task (`process/wait`, long-poll `process/read`), the start of a new
//!   process's forwarder once its response is queued, and cleanup when the
//!   connection ends.
//! - `router` is generated from the method table
//!   ([`exec_server_protocol::methods`]): it decodes a request's params
//!   into `M::Params`, calls `handlers::AREA::NAME` (the path the table
//!   entry names) and encodes `M::Result`. A table entry without a handler
//!   does not compile.
//! - `handlers` — one `async fn` per method over a `Context` (the server,
//!   the session, the hand-off to forwarders): `handshake` (`initialize`),
//!   `v0` (SPEC section 2), `process` (SPEC section 3).
//! - `error` — `ApiError`, every way a request fails, and the one mapping
//!   to JSON-RPC codes and messages (v0's exact messages included).
//! - `limits` and `pattern` bound what one client can make the server
//!   hold: server-wide process slots, id and size checks, and the memory of
//!   one connection's `match` patterns (docs/SECURITY.md, "Bounds").
//! - `session` holds a client's processes; a session outlives its
//!   connection while it has detached processes (SPEC 3.2). `forwarder`
//!   turns process events into notifications.
//! - [`sandbox`] decides the confinement of each new process (the server's
//!   policy, narrowed by the request's `sandbox` param).
//! - `input_wait` races the core's input-wait detection with the other ends
//!   of `process/read` and `process/wait` (`untilInputWait`).
//! - `handlers::fs` implements the filesystem API (SPEC section 7) on
//!   `exec-server-fs`; see docs/FILES.md.
//! - [`Server`] is what all connections share: configuration, sessions,
//!   the one registry of live process groups (each under its session; it
//!   also feeds the core's watchdog) and the [`lifecycle`].
//! - [`lifecycle`] is the shutdown as a value: a phase (`Serving`,
//!   `Draining`, `Terminating`, `Closing`) that the listener, connections
//!   and sessions watch, and a tracker of connections;
//!   [`Server::shut_down`] walks the phases and waits, bounded, for every
//!   connection to finish its cleanup.
//! - [`listen`] parses `--listen` URLs; [`security`] decides who may open
//!   a websocket connection (origin and bearer token).
//! - [`fleet`] is what a fleet of servers behind a load balancer needs:
//!   the server id, routable endpoint paths, owner-stamped session ids and
//!   `/readyz`, which answers 503 from the [`Phase::Draining`] on.
//!
//! **Adding a method**: an entry in
//! [`for_each_method!`](exec_server_protocol::for_each_method) and an
//! `async fn` in `handlers/AREA.rs`; the router, the schema and clients'
//! typed calls follow.
//!
//! The in-process client uses [`connect_in_process`]: the same connection
//! handler over channels, with no serialization at all. The in-memory
//! tests (`tests/`) drive it the same way.

pub mod config;
pub mod connection;
pub mod fleet;
pub mod lifecycle;
pub mod listen;
pub mod security;
pub mod transport;

#[doc(hidden)]
pub mod fuzzing;

mod context;
mod error;
mod forwarder;
pub mod frames;
mod handlers;
mod input_wait;
mod limits;
pub mod metrics;
mod pattern;
mod router;
pub mod sandbox;
mod session;

use std::sync::Arc;

use exec_server_core::{ProcessGroups, ScreenBudget};
use exec_server_protocol::ServerMessage;
use tokio::sync::mpsc;

pub use config::ServerConfig;
pub use connection::{ConnectionOptions, Incoming, serve_connection, serve_connection_with};
pub use lifecycle::{Phase, ShutdownOptions, ShutdownReport};
pub use listen::ListenAddress;

/// State shared by every connection of one server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Server {
    inner: Arc<ServerInner>,
}

#[derive(Debug)]
struct ServerInner {
    config: ServerConfig,
    /// The one registry of process groups that may still have members,
    /// each under its session; it also feeds the watchdog.
    groups: ProcessGroups,
    sessions: session::SessionRegistry,
    /// Where a shutdown stands, and the connections it waits for.
    lifecycle: lifecycle::Lifecycle,
    /// Memory for PTY screens kept between snapshots (`--screen-memory-bytes`).
    screens: ScreenBudget,
    /// Running processes of every session (`--max-processes`).
    processes: limits::ProcessSlots,
    /// What `/metrics` reports.
    metrics: metrics::Metrics,
}

impl Server {
    pub fn new(config: ServerConfig) -> Self {
        Server {
            inner: Arc::new(ServerInner {
                screens: ScreenBudget::new(config.screen_memory_bytes),
                processes: limits::ProcessSlots::new(config.max_processes),
                config,
                groups: ProcessGroups::new(),
                sessions: session::SessionRegistry::default(),
                lifecycle: lifecycle::Lifecycle::default(),
                metrics: metrics::Metrics::new(),
            }),
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Sessions alive on this server, attached or detached.
    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
    }

    pub(crate) fn groups(&self) -> &ProcessGroups {
        &self.inner.groups
    }

    /// Memory held by PTY screens kept between snapshots.
    pub fn screen_budget(&self) -> &ScreenBudget {
        &self.inner.screens
    }

    /// Processes running on this server now, detached ones included.
    pub fn running_processes(&self) -> usize {
        self.inner.processes.live()
    }

    /// The counters and histograms `/metrics` serves.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    pub(crate) fn process_slots(&self) -> &limits::ProcessSlots {
        &self.inner.processes
    }

    pub(crate) fn sessions(&self) -> &session::SessionRegistry {
        &self.inner.sessions
    }

    /// How many process groups may still have live members.
    pub fn live_process_groups(&self) -> usize {
        self.inner.groups.len()
    }
}

/// Channel capacity between a connection and its transport writer, in
/// messages. Together with each process's event channel this bounds what
/// the server buffers for a client that reads slowly.
pub const OUTGOING_CAPACITY: usize = 16;

/// Capacity of the channel from a transport reader to its connection.
pub const INCOMING_CAPACITY: usize = 16;

/// Starts a connection served in this process and returns its two ends:
/// send [`Incoming`] messages, receive typed [`ServerMessage`]s. Dropping the
/// sender ends the connection and kills its processes.
pub fn connect_in_process(
    server: &Server,
) -> (mpsc::Sender<Incoming>, mpsc::Receiver<ServerMessage>) {
    let (incoming_tx, incoming_rx) = mpsc::channel(INCOMING_CAPACITY);
    let (outgoing_tx, outgoing_rx) = mpsc::channel(OUTGOING_CAPACITY);
    let server = server.clone();
    let guard = server.lifecycle().connection();
    tokio::spawn(async move {
        let _guard = guard;
        serve_connection(server, incoming_rx, outgoing_tx).await
    });
    (incoming_tx, outgoing_rx)
}
