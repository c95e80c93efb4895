//! The output pump: one task per process that reads its streams, retains
//! and forwards the output, reaps the child and reports its exit.
//!
//! Ordering rules (SPEC 1.5):
//! - chunks are sent in the order they were read, one `seq` per event;
//! - when the child exits, everything it wrote before exiting is read and
//!   sent *before* the exit event. For pipes that is exactly the bytes
//!   buffered at the moment of the exit (`FIONREAD`), so a background job
//!   that keeps the pipe open and busy cannot delay the exit. For a PTY the
//!   kernel may still be moving the child's last bytes to the master when
//!   the exit is seen, so the pump reads until end-of-file (EIO), waiting at
//!   most [`PTY_EXIT_DRAIN`] when something else still holds the terminal;
//! - `Closed` comes last, after end-of-file on every stream.
//!
//! Backpressure: every send awaits room in the bounded event channel, so a
//! slow consumer stops the reads and the child blocks on its writes. When
//! the receiver is gone, output still goes to retention and reading never
//! stops.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::process::{ExitStatus, OutputStream, ProcessEvent, Shared};

/// Largest chunk in one output event. Reads are coalesced up to this size
/// (a PTY read returns only a few KiB at a time).
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;

/// A read shorter than asked for and shorter than this ends the
/// coalescing loop: the producer is slow (a keystroke's echo, a prompt),
/// and reading again would almost surely say `EAGAIN`, one more system
/// call on the interactive path. Bulk output returns kilobytes per read
/// (a PTY about 3 KiB) and is still coalesced up to [`MAX_CHUNK_BYTES`].
const SMALL_READ_BYTES: usize = 512;

/// How long, after the exit of a PTY-backed child, the pump keeps waiting
/// for its last output when another process still holds the terminal open.
pub const PTY_EXIT_DRAIN: Duration = Duration::from_millis(100);

/// Upper bound on what the pump reads from a PTY after the child's exit
/// before reporting it: a terminal buffers far less, so anything beyond
/// comes from another process that still holds the terminal.
pub const PTY_EXIT_DRAIN_BYTES: usize = 512 * 1024;

pub(crate) enum PumpStreams {
    Pipes {
        stdout: Arc<AsyncFd<OwnedFd>>,
        stderr: Arc<AsyncFd<OwnedFd>>,
    },
    Terminal(Arc<AsyncFd<OwnedFd>>),
}

/// One readable stream and its state.
struct Reader {
    stream: OutputStream,
    fd: Arc<AsyncFd<OwnedFd>>,
    buf: BytesMut,
    open: bool,
    /// The last [`Reader::read_now`] emptied the descriptor (see
    /// [`SMALL_READ_BYTES`]): the next read waits for a new readiness
    /// event instead of trying first.
    caught_up: bool,
}

enum Read {
    Data(Bytes),
    WouldBlock,
    Eof,
}

impl Reader {
    fn new(stream: OutputStream, fd: Arc<AsyncFd<OwnedFd>>) -> Self {
        Reader {
            stream,
            fd,
            buf: BytesMut::new(),
            open: true,
            caught_up: false,
        }
    }

    /// Reads what is available now, up to `limit` bytes, without waiting.
    fn read_now(&mut self, limit: usize) -> io::Result<Read> {
        let limit = limit.min(MAX_CHUNK_BYTES);
        if self.buf.capacity() - self.buf.len() < limit {
            self.buf.reserve(MAX_CHUNK_BYTES.max(limit));
        }
        let mut eof = false;
        self.caught_up = false;
        while self.buf.len() < limit {
            let want = limit - self.buf.len();
            let spare: &mut [MaybeUninit<u8>] = &mut self.buf.spare_capacity_mut()[..want];
            match rustix::io::read(self.fd.get_ref(), spare) {
                Ok(([], _)) => {
                    eof = true;
                    break;
                }
                Ok((filled, _)) => {
                    let n = filled.len();
                    // SAFETY: `read` initialised the first `n` spare bytes.
                    unsafe { self.buf.set_len(self.buf.len() + n) };
                    if n < want && n < SMALL_READ_BYTES {
                        // A pipe returns all it holds and a terminal all of
                        // its line discipline's buffer: nothing is left,
                        // and whatever comes next raises a new edge.
                        self.caught_up = true;
                        break;
                    }
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => break,
                // A PTY master reports EIO once every slave descriptor is
                // closed: that is its end-of-file.
                Err(rustix::io::Errno::IO) if self.stream == OutputStream::Pty => {
                    eof = true;
                    break;
                }
                Err(error) => return Err(error.into()),
            }
        }
        if !self.buf.is_empty() {
            return Ok(Read::Data(self.buf.split().freeze()));
        }
        Ok(if eof { Read::Eof } else { Read::WouldBlock })
    }

    /// Waits for output; `None` at end-of-file. Cancel-safe: no bytes are
    /// consumed by a future that is dropped before it completes.
    async fn next(&mut self) -> io::Result<Option<Bytes>> {
        let fd = self.fd.clone();
        loop {
            let mut guard = fd.readable().await?;
            match self.read_now(MAX_CHUNK_BYTES)? {
                Read::Data(data) => {
                    if self.caught_up {
                        // Clears only if no event came in since the guard
                        // was taken, so nothing that arrives is missed.
                        guard.clear_ready();
                    }
                    return Ok(Some(data));
                }
                Read::Eof => return Ok(None),
                Read::WouldBlock => guard.clear_ready(),
            }
        }
    }
}

/// The pump's output side: sequence numbers, retention and the channel.
struct Emitter {
    shared: Arc<Shared>,
    events: mpsc::Sender<ProcessEvent>,
    seq: u64,
}

impl Emitter {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    async fn output(&mut self, stream: OutputStream, data: Bytes) {
        let seq = self.next_seq();
        {
            let mut retained = self
                .shared
                .retained
                .lock()
                .expect("retention lock poisoned");
            // The emulated screen is fed lazily from retention; output that
            // retention is about to drop must reach it first, or a snapshot
            // would miss what drew the screen (see `screen`).
            if let Some(screen) = &self.shared.screen
                && retained.stream(stream).would_drop(data.len())
            {
                let mut screen = screen.lock().expect("screen lock poisoned");
                screen.before_eviction(&retained, seq, &data);
            }
            retained.push(seq, stream, data.clone());
        }
        self.shared.progress.send_replace(seq);
        // A closed receiver means retention-only output: keep reading.
        let _ = self
            .events
            .send(ProcessEvent::Output { seq, stream, data })
            .await;
    }

    async fn exited(&mut self, mut status: ExitStatus) {
        let seq = self.next_seq();
        status.timed_out = self
            .shared
            .timed_out
            .load(std::sync::atomic::Ordering::SeqCst);
        self.shared.exit.send_replace(Some(status));
        self.shared.progress.send_replace(seq);
        let _ = self.events.send(ProcessEvent::Exited { seq, status }).await;
    }
}

pub(crate) async fn run(
    streams: PumpStreams,
    pidfd: AsyncFd<OwnedFd>,
    shared: Arc<Shared>,
    events: mpsc::Sender<ProcessEvent>,
) {
    let mut readers = match streams {
        PumpStreams::Pipes { stdout, stderr } => vec![
            Reader::new(OutputStream::Stdout, stdout),
            Reader::new(OutputStream::Stderr, stderr),
        ],
        PumpStreams::Terminal(master) => vec![Reader::new(OutputStream::Pty, master)],
    };
    let mut emitter = Emitter {
        shared,
        events,
        seq: 0,
    };
    let mut exited = false;
    while !exited || readers.iter().any(|r| r.open) {
        let (first, rest) = readers.split_at_mut(1);
        let first = &mut first[0];
        let mut second = rest.first_mut().filter(|r| r.open);
        tokio::select! {
            result = first.next(), if first.open => {
                forward(first, result, &mut emitter).await;
            }
            result = next_of(&mut second), if second.is_some() => {
                let reader = second.expect("branch enabled only with a reader");
                forward(reader, result, &mut emitter).await;
            }
            ready = pidfd.readable(), if !exited => {
                let status = match ready.and_then(|mut guard| {
                    let status = reap(pidfd.get_ref())?;
                    if status.is_none() {
                        guard.clear_ready();
                    }
                    Ok(status)
                }) {
                    Ok(Some(status)) => status,
                    Ok(None) => continue,
                    Err(error) => {
                        // Cannot happen for a pidfd we own; report an
                        // unknown status rather than hang.
                        tracing::error!(%error, "waiting for a child through its pidfd failed");
                        ExitStatus { code: None, signal: None, timed_out: false }
                    }
                };
                drain_after_exit(&mut readers, &mut emitter).await;
                emitter.exited(status).await;
                exited = true;
            }
        }
    }
    let _ = emitter.events.send(ProcessEvent::Closed).await;
}

async fn next_of(reader: &mut Option<&mut Reader>) -> io::Result<Option<Bytes>> {
    reader
        .as_mut()
        .expect("branch enabled only with a reader")
        .next()
        .await
}

async fn forward(reader: &mut Reader, result: io::Result<Option<Bytes>>, emitter: &mut Emitter) {
    match result {
        Ok(Some(data)) => emitter.output(reader.stream, data).await,
        Ok(None) => reader.open = false,
        Err(error) => {
            tracing::warn!(%error, stream = ?reader.stream, "reading process output failed");
            reader.open = false;
        }
    }
}

/// Reaps the child if it has exited.
fn reap(pidfd: &OwnedFd) -> io::Result<Option<ExitStatus>> {
    use rustix::process::{WaitId, WaitIdOptions, waitid};
    let status = waitid(
        WaitId::PidFd(std::os::fd::AsFd::as_fd(pidfd)),
        WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
    )?;
    Ok(status.map(|status| ExitStatus {
        code: status.exit_status(),
        signal: status.terminating_signal(),
        timed_out: false,
    }))
}

/// Sends everything the child wrote before it exited (see module docs).
async fn drain_after_exit(readers: &mut [Reader], emitter: &mut Emitter) {
    for reader in readers.iter_mut().filter(|r| r.open) {
        let result = if reader.stream == OutputStream::Pty {
            drain_terminal(reader, emitter).await
        } else {
            drain_pipe(reader, emitter).await
        };
        if let Err(error) = result {
            tracing::warn!(%error, stream = ?reader.stream, "draining output after exit failed");
            reader.open = false;
        }
    }
}

/// Reads exactly the bytes buffered in the pipe now.
async fn drain_pipe(reader: &mut Reader, emitter: &mut Emitter) -> io::Result<()> {
    let mut pending = rustix::io::ioctl_fionread(reader.fd.get_ref())? as usize;
    while pending > 0 {
        match reader.read_now(pending)? {
            Read::Data(data) => {
                pending -= data.len();
                emitter.output(reader.stream, data).await;
            }
            Read::Eof => {
                reader.open = false;
                break;
            }
            Read::WouldBlock => break,
        }
    }
    Ok(())
}

/// Reads until end-of-file, or until the child's last bytes can no longer
/// be in the kernel: [`PTY_EXIT_DRAIN`] spent waiting without end-of-file,
/// or [`PTY_EXIT_DRAIN_BYTES`] read (more than a terminal buffers). Time spent
/// waiting for the consumer does not count.
async fn drain_terminal(reader: &mut Reader, emitter: &mut Emitter) -> io::Result<()> {
    let fd = reader.fd.clone();
    let mut waited = Duration::ZERO;
    let mut drained = 0;
    while drained < PTY_EXIT_DRAIN_BYTES {
        let remaining = PTY_EXIT_DRAIN.saturating_sub(waited);
        if remaining.is_zero() {
            return Ok(());
        }
        let started = Instant::now();
        let ready = tokio::time::timeout(remaining, fd.readable()).await;
        waited += started.elapsed();
        let Ok(guard) = ready else {
            return Ok(());
        };
        let mut guard = guard?;
        match reader.read_now(MAX_CHUNK_BYTES)? {
            Read::Data(data) => {
                drained += data.len();
                emitter.output(reader.stream, data).await;
            }
            Read::Eof => {
                reader.open = false;
                return Ok(());
            }
            Read::WouldBlock => guard.clear_ready(),
        }
    }
    Ok(())
}
