//! Transports: bytes on one side, [`Incoming`] and
//! [`ServerMessage`](exec_server_protocol::ServerMessage) on the other.
//!
//! Both transports share the decoding rules (size limit first, then the
//! JSON-RPC classification) and the `jsonrpc` echo rule of SPEC 1.1: the
//! first message that decodes decides whether every reply on the connection
//! carries `"jsonrpc":"2.0"`.

pub mod listener;
pub mod stdio;
pub mod web;
pub mod websocket;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use exec_server_protocol::wire::decode_client_message;

use crate::Incoming;

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
