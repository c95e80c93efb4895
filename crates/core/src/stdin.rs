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
//!
//! The short path: a write that finds the queue empty goes straight to the
//! descriptor from the caller's task, and only what the kernel does not
//! take at once (`EAGAIN`, a partial write) is queued for the writer task.
//! A keystroke then costs no hand-off to another task, which on a
//! multi-threaded runtime is a cross-thread wake-up (measured in
//! docs/BENCHMARKS.md). Senders take turns (a fair lock held from the wait
//! for room to the hand-off), so the queue being empty under that lock
//! means the writer task is idle and nobody else writes: order holds, and
//! one write's bytes are never split by another's.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc};

use crate::input_wait::StdinActivity;

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
    activity: Arc<StdinActivity>,
    /// The descriptor, for writes that find the queue empty. Weak: the
    /// writer task holds the last strong reference, so that a pipe closes
    /// when it ends.
    fd: Weak<AsyncFd<OwnedFd>>,
    /// Senders' turns (FIFO, like the semaphore): held from the wait for
    /// room until the operation is written or queued.
    turn: Mutex<()>,
}

/// The writer is gone (the child closed its end, or stdin was closed).
#[derive(Debug)]
pub(crate) struct Closed;

impl StdinQueue {
    /// Starts the writer task and returns its queue, bounded at `capacity`
    /// bytes (at least one operation's charge).
    ///
    /// `activity` counts the bytes of queued writes until they are written
    /// (or dropped): input-wait detection must not call a process idle
    /// while input is on its way to it.
    pub(crate) fn start(
        fd: Arc<AsyncFd<OwnedFd>>,
        terminal: bool,
        capacity: usize,
        activity: Arc<StdinActivity>,
    ) -> Self {
        let capacity = capacity
            .clamp(OP_OVERHEAD_BYTES, Semaphore::MAX_PERMITS)
            .min(u32::MAX as usize) as u32;
        let room = Arc::new(Semaphore::new(capacity as usize));
        let (ops, rx) = mpsc::unbounded_channel();
        let weak = Arc::downgrade(&fd);
        tokio::spawn(run(fd, terminal, rx, room.clone(), activity.clone()));
        StdinQueue {
            ops,
            room,
            capacity,
            activity,
            fd: weak,
            turn: Mutex::new(()),
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
        let _turn = self.turn.lock().await;
        // Every permit back means every queued operation was written and
        // the writer task is idle; with the turn held, nobody queues now.
        let idle = self.room.available_permits() == self.capacity as usize;
        let permit = self
            .room
            .clone()
            .acquire_many_owned(cost)
            .await
            .map_err(|_| Closed)?;
        let op = match op {
            StdinOp::Write(data) if idle && !data.is_empty() => match self.write_now(&data) {
                Ok(written) if written == data.len() => return Ok(()),
                Ok(written) => StdinOp::Write(data.slice(written..)),
                Err(error) => {
                    // As in the writer task: the child cannot read any
                    // more, so this and later writes are refused.
                    tracing::debug!(%error, "stdin write failed");
                    self.room.close();
                    return Err(Closed);
                }
            },
            op => op,
        };
        let bytes = match &op {
            StdinOp::Write(data) => data.len(),
            StdinOp::Close => 0,
        };
        // Counted only once queued (nothing awaits from here on), so a
        // write dropped while it waited for room leaves no count behind.
        self.activity.queued(bytes);
        self.ops.send((op, permit)).map_err(|_| {
            self.activity.done(bytes);
            Closed
        })
    }

    /// One non-blocking write of what the descriptor takes now: the
    /// number of bytes written, 0 when it is full.
    fn write_now(&self, data: &[u8]) -> io::Result<usize> {
        let Some(fd) = self.fd.upgrade() else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        loop {
            match rustix::io::write(fd.get_ref(), data) {
                Ok(written) => return Ok(written),
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return Ok(0),
                Err(error) => return Err(error.into()),
            }
        }
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
    activity: Arc<StdinActivity>,
) {
    while let Some((op, _permit)) = ops.recv().await {
        let result = match op {
            StdinOp::Write(data) => {
                let result = write_all(&fd, &data).await;
                activity.done(data.len());
                result
            }
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
    drop(fd);
    // Writers waiting for room learn at once that none will come.
    room.close();
    // Writes still queued will never happen: stop counting them.
    ops.close();
    while let Some((op, _permit)) = ops.recv().await {
        if let StdinOp::Write(data) = op {
            activity.done(data.len());
        }
    }
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
