//! Transports: bytes on one side, [`Incoming`] and
//! [`ServerMessage`] on the other.
//!
//! Both transports share the decoding rules (size limit first, then the
//! JSON-RPC classification), the `jsonrpc` echo rule of SPEC 1.1 (the
//! first message that decodes decides whether every reply on the
//! connection carries `"jsonrpc":"2.0"`) and the way a connection runs and
//! ends (`run_connection`): a reader task, a writer task, the
//! connection handler between them, a guard that the server's shutdown
//! waits for, and one bound on the final flush ([`FINAL_FLUSH`]).

pub mod listener;
pub mod stdio;
pub mod web;
pub mod websocket;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use exec_server_protocol::ServerMessage;
use exec_server_protocol::wire::decode_client_message;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::lifecycle::Shutdown;
use crate::metrics::Transport;
use crate::{
    ConnectionOptions, INCOMING_CAPACITY, Incoming, OUTGOING_CAPACITY, Server,
    serve_connection_with,
};

/// How long a connection's writer may keep sending once the connection
/// ended (the exits of the processes killed at its end), the same for
/// every transport. Then it stops taking messages and closes (a close
/// frame on websocket), or is dropped if even that is stuck. A client
/// that does not read, or a daemon that left its process group and still
/// holds an output pipe (which keeps its forwarder, and so the outgoing
/// channel, alive forever), cannot hold a connection, or its slot, open.
pub const FINAL_FLUSH: Duration = Duration::from_secs(2);

/// Time for the close itself (a close frame) after [`FINAL_FLUSH`].
const CLOSE_ALLOWANCE: Duration = Duration::from_millis(500);

/// What a writer knows about the end of its connection.
pub(crate) struct WriterEnd {
    /// Fires (or is dropped) when the connection ended.
    ended: Option<oneshot::Receiver<()>>,
    deadline: Option<Instant>,
    shutdown: Shutdown,
}

impl WriterEnd {
    /// Resolves [`FINAL_FLUSH`] after the connection ended; never while it
    /// lasts. Cancel-safe: [`WriterEnd::next`] races it against the channel.
    async fn flush_deadline(&mut self) {
        if let Some(ended) = self.ended.as_mut() {
            // A dropped sender means the connection ended too.
            let _ = ended.await;
            self.ended = None;
            self.deadline = Some(Instant::now() + FINAL_FLUSH);
        }
        if let Some(deadline) = self.deadline {
            tokio::time::sleep_until(deadline).await;
        }
    }

    /// The next message to write: `None` once the channel closed or the
    /// flush deadline passed, whichever comes first.
    pub(crate) async fn next(
        &mut self,
        outgoing: &mut mpsc::Receiver<ServerMessage>,
    ) -> Option<ServerMessage> {
        tokio::select! {
            // The deadline first: a flood must not keep it from being seen.
            biased;
            () = self.flush_deadline() => None,
            message = outgoing.recv() => message,
        }
    }

    /// Whether the connection is closing because the server shuts down
    /// (websocket close code 1001 "going away" rather than 1000).
    pub(crate) fn server_closing(&self) -> bool {
        self.shutdown.is_closing()
    }
}

/// Runs one connection over a transport: `read` turns bytes into
/// [`Incoming`] messages until its input ends, `write` sends what
/// [`WriterEnd::next`] gives it (the connection's messages, until its
/// channel closes or the flush deadline passes). Returns once the connection ended (end of input, protocol error, server
/// shutdown), its session was detached or ended, and the writer finished,
/// at most [`FINAL_FLUSH`] plus the close after the end.
pub(crate) async fn run_connection<R, W>(
    server: Server,
    transport: Transport,
    options: ConnectionOptions,
    read: impl FnOnce(mpsc::Sender<Incoming>) -> R,
    write: impl FnOnce(mpsc::Receiver<ServerMessage>, WriterEnd) -> W,
) where
    R: Future<Output = ()> + Send + 'static,
    W: Future<Output = ()> + Send + 'static,
{
    let _guard = server.lifecycle().connection();
    let _open = server.metrics().connection(transport);
    let (incoming_tx, incoming_rx) = mpsc::channel(INCOMING_CAPACITY);
    let (outgoing_tx, outgoing_rx) = mpsc::channel(OUTGOING_CAPACITY);
    let (ended_tx, ended_rx) = oneshot::channel();
    let end = WriterEnd {
        ended: Some(ended_rx),
        deadline: None,
        shutdown: server.lifecycle().shutdown(),
    };
    let read_task = tokio::spawn(read(incoming_tx));
    let mut write_task = tokio::spawn(write(outgoing_rx, end));
    serve_connection_with(server, incoming_rx, outgoing_tx, options).await;
    read_task.abort();
    let _ = ended_tx.send(());
    if tokio::time::timeout(FINAL_FLUSH + CLOSE_ALLOWANCE, &mut write_task)
        .await
        .is_err()
    {
        tracing::info!("the connection's writer is stuck; dropping it");
        write_task.abort();
    }
}

/// Largest batch the writers gather before flushing, in bytes. Batching
/// many small notifications into one write is what keeps a chatty PTY from
/// costing a system call per message.
pub(crate) const WRITE_BATCH_BYTES: usize = 1024 * 1024;

/// The `jsonrpc` echo decision for one connection, shared by its reader
/// (which makes it) and its writer (which applies it).
#[derive(Clone, Debug, Default)]
pub(crate) struct JsonRpcEcho(Arc<AtomicU8>);

const UNDECIDED: u8 = 0;
const OMIT: u8 = 1;
const ECHO: u8 = 2;

impl JsonRpcEcho {
    fn observe(&self, jsonrpc: bool) {
        let decision = if jsonrpc { ECHO } else { OMIT };
        let _ = self
            .0
            .compare_exchange(UNDECIDED, decision, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub(crate) fn enabled(&self) -> bool {
        self.0.load(Ordering::Relaxed) == ECHO
    }
}

/// Decodes one complete message received by a transport.
pub(crate) fn decode_incoming(bytes: &[u8], echo: &JsonRpcEcho) -> Incoming {
    match decode_client_message(bytes) {
        Ok(decoded) => {
            echo.observe(decoded.jsonrpc);
            Incoming::Message(decoded)
        }
        Err(error) => Incoming::Invalid(error),
    }
}
