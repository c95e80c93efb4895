//! The writer task that feeds a process's stdin, in order, without ever
//! blocking a runtime thread: writes wait for the descriptor to become
//! writable, so a child that stops reading only delays its own queue.
//!
//! The queue is bounded in bytes, not in writes: each queued operation
//! holds permits of a semaphore sized to the budget (its length plus a
//! small per-operation charge, so a flood of empty writes is bounded too)
//! until the writer has handed it to the kernel. A write that does not fit
//! waits for room; a write larger than the whole budget waits for an empty
//! queue and then goes alone, so the queue never holds more than the budget
//! or one write. Waiting is cancel-safe: a write dropped while it waits was
//! not queued at all, so a caller that gives up can say so and lose
//! nothing silently.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::unix::AsyncFd;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Default budget of a process's stdin queue: 1 MiB.
pub const DEFAULT_STDIN_QUEUE_BYTES: usize = 1024 * 1024;

/// What each queued operation costs beyond its bytes: the queue entry and
/// its bookkeeping.
const OP_OVERHEAD_BYTES: usize = 64;

/// One queued stdin operation.
pub(crate) enum StdinOp {
    Write(Bytes),
    /// Pipe: close the write end. PTY: send the terminal's EOF character.
    Close,
}

/// The sending side of a process's stdin queue.
pub(crate) struct StdinQueue {
    ops: mpsc::UnboundedSender<(StdinOp, OwnedSemaphorePermit)>,
    room: Arc<Semaphore>,
    capacity: u32,
}

/// The writer is gone (the child closed its end, or stdin was closed).
#[derive(Debug)]
pub(crate) struct Closed;

impl StdinQueue {
    /// Starts the writer task and returns its queue, bounded at `capacity`
    /// bytes (at least one operation's charge).
    pub(crate) fn start(fd: Arc<AsyncFd<OwnedFd>>, terminal: bool, capacity: usize) -> Self {
        let capacity = capacity
            .clamp(OP_OVERHEAD_BYTES, Semaphore::MAX_PERMITS)
            .min(u32::MAX as usize) as u32;
        let room = Arc::new(Semaphore::new(capacity as usize));
        let (ops, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(fd, terminal, rx, room.clone()));
        StdinQueue {
            ops,
            room,
            capacity,
        }
    }

    /// Queues `op` once there is room for it. Cancel-safe.
    pub(crate) async fn send(&self, op: StdinOp) -> Result<(), Closed> {
        let bytes = match &op {
            StdinOp::Write(data) => data.len(),
            StdinOp::Close => 0,
        };
        let cost = bytes
            .saturating_add(OP_OVERHEAD_BYTES)
            .min(self.capacity as usize) as u32;
        let permit = self
            .room
            .clone()
            .acquire_many_owned(cost)
            .await
            .map_err(|_| Closed)?;
        self.ops.send((op, permit)).map_err(|_| Closed)
    }

    /// Bytes (with per-operation charges) queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        (self.capacity as usize).saturating_sub(self.room.available_permits())
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity as usize
    }
}

async fn run(
    fd: Arc<AsyncFd<OwnedFd>>,
    terminal: bool,
    mut ops: mpsc::UnboundedReceiver<(StdinOp, OwnedSemaphorePermit)>,
    room: Arc<Semaphore>,
) {
    while let Some((op, _permit)) = ops.recv().await {
        let result = match op {
            StdinOp::Write(data) => write_all(&fd, &data).await,
            StdinOp::Close if terminal => match eof_char(&fd) {
                Ok(eof) => write_all(&fd, &[eof]).await,
                Err(error) => Err(error),
            },
            // Dropping our descriptor (the last one) closes the pipe.
            StdinOp::Close => break,
        };
        if let Err(error) = result {
            // EIO (terminal gone) or EPIPE (reader gone): the child cannot
            // read any more, so later writes are refused as "stdin closed".
            tracing::debug!(%error, "stdin writer stopped");
            break;
        }
    }
    // Writers waiting for room learn at once that none will come.
    room.close();
}

fn eof_char(fd: &AsyncFd<OwnedFd>) -> io::Result<u8> {
    let termios = rustix::termios::tcgetattr(fd.get_ref())?;
    Ok(termios.special_codes[rustix::termios::SpecialCodeIndex::VEOF])
}

async fn write_all(fd: &AsyncFd<OwnedFd>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        match guard.try_io(|inner| Ok(rustix::io::write(inner.get_ref(), data)?)) {
            Ok(Ok(written)) => data = &data[written..],
            Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(error)) => return Err(error),
            Err(_would_block) => {}
        }
    }
    Ok(())
}
