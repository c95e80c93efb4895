//! The writer task that feeds a process's stdin, in order, without ever
//! blocking a runtime thread: writes wait for the descriptor to become
//! writable, so a child that stops reading only delays its own queue.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::input_wait::StdinActivity;

/// One queued stdin operation.
pub(crate) enum StdinOp {
    Write(Bytes),
    /// Pipe: close the write end. PTY: send the terminal's EOF character.
    Close,
}

/// Starts the writer task and returns its queue.
///
/// `activity` counts the bytes of queued writes until they are written (or
/// dropped): input-wait detection must not call a process idle while input
/// is on its way to it.
pub(crate) fn start(
    fd: Arc<AsyncFd<OwnedFd>>,
    terminal: bool,
    capacity: usize,
    activity: Arc<StdinActivity>,
) -> mpsc::Sender<StdinOp> {
    let (tx, rx) = mpsc::channel(capacity);
    tokio::spawn(run(fd, terminal, rx, activity));
    tx
}

async fn run(
    fd: Arc<AsyncFd<OwnedFd>>,
    terminal: bool,
    mut ops: mpsc::Receiver<StdinOp>,
    activity: Arc<StdinActivity>,
) {
    while let Some(op) = ops.recv().await {
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
    // Writes still queued will never happen: stop counting them.
    ops.close();
    while let Some(op) = ops.recv().await {
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
