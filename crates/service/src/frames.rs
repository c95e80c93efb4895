//! Binary frames on one connection (`schema/binary-frames.md`, encoded in
//! [`exec_server_protocol::binary`]): the switch `initialize` turns on when
//! the client asks for them, and that the websocket transport reads.
//!
//! Only a transport that can carry them hands a switch to its connection
//! ([`crate::ConnectionOptions::binary_frames`]); stdio and the in-process connection
//! have none, so a client asking there is told they are off.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether output goes out (and `process/write` may come in) as binary
/// frames on a connection. Off until the handshake turns it on; it never
/// turns off again. Cheap to clone: the transport's reader and writer and
/// the connection share one.
#[derive(Clone, Debug, Default)]
pub struct BinaryFrames(Arc<AtomicBool>);

impl BinaryFrames {
    pub fn is_on(&self) -> bool {
        // Relaxed is enough: the writer sees the switch through the same
        // channel that brings it the messages sent after `initialize`.
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn turn_on(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
