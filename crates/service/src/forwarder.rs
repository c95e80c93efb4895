//! Forwarders: one task per process that turns its core events into
//! notifications for whichever connection the session is attached to.
//!
//! While attached, a forwarder waits for room in the connection's bounded
//! channel, which is the backpressure that keeps server memory flat. While
//! detached (or with `streamOutput: false`) it sends nothing and never
//! waits, so the process never blocks on output: its output goes to
//! retention only, to be read with `process/read`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use exec_server_core::{OutputStream, ProcessEvent};
use exec_server_protocol::process::{
    ClosedNotification, ExitedNotification, OutputNotification, ProcessStream,
};
use exec_server_protocol::v0::{
    ExecExitedNotification, ExecOutputDeltaNotification, ExecOutputStream,
};
use exec_server_protocol::{ServerMessage, ServerNotification};
use tokio::sync::mpsc;

use crate::session::{ProcessEntry, ProcessKind, Session};

/// The process API's name for a core output stream.
pub(crate) fn wire_stream(stream: OutputStream) -> ProcessStream {
    match stream {
        OutputStream::Stdout => ProcessStream::Stdout,
        OutputStream::Stderr => ProcessStream::Stderr,
        OutputStream::Pty => ProcessStream::Pty,
    }
}

/// Where a process's notifications go.
pub(crate) enum Target {
    /// The connection that started it: processes that die with their
    /// connection report to it until the end, exits of the kill included.
    Connection(mpsc::Sender<ServerMessage>),
    /// Whichever connection the session is attached to (detachable
    /// processes); nothing while detached.
    Session,
}

impl Target {
    fn current(
        &self,
        session: &Session,
        seen: &mut Attachment,
    ) -> Option<mpsc::Sender<ServerMessage>> {
        match self {
            Target::Connection(out) => Some(out.clone()),
            Target::Session => seen.current(session),
        }
    }
}

/// The session's connection as a forwarder last saw it. The session is
/// locked only when it was attached or detached since, not for every
/// chunk; the channel is held weakly, so a quiet forwarder never keeps a
/// closed connection's writer alive.
#[derive(Default)]
struct Attachment {
    seen: Option<u64>,
    out: Option<mpsc::WeakSender<ServerMessage>>,
}

impl Attachment {
    fn current(&mut self, session: &Session) -> Option<mpsc::Sender<ServerMessage>> {
        let now = session.attachment();
        if self.seen != Some(now) {
            self.out = session.out().map(|out| out.downgrade());
            self.seen = Some(now);
        }
        self.out.as_ref().and_then(mpsc::WeakSender::upgrade)
    }
}

/// Forwards one process's events until it is closed.
pub(crate) async fn run(
    session: Arc<Session>,
    entry: Arc<ProcessEntry>,
    target: Target,
    mut events: mpsc::Receiver<ProcessEvent>,
) {
    let mut attachment = Attachment::default();
    while let Some(event) = events.recv().await {
        let notification = match (entry.kind, event) {
            (ProcessKind::V0, ProcessEvent::Output { stream, data, .. }) => Some(
                ServerNotification::ExecOutputDelta(ExecOutputDeltaNotification {
                    session_id: entry.id.clone(),
                    stream: match stream {
                        OutputStream::Stderr => ExecOutputStream::Stderr,
                        OutputStream::Stdout | OutputStream::Pty => ExecOutputStream::Stdout,
                    },
                    chunk: data,
                }),
            ),
            (ProcessKind::V0, ProcessEvent::Exited { status, .. }) => {
                // Forget the id before reporting the exit, so a write that
                // follows the notification is refused.
                session.remove(&entry.id);
                Some(ServerNotification::ExecExited(ExecExitedNotification {
                    session_id: entry.id.clone(),
                    exit_code: status.code_or_signal(),
                }))
            }
            (ProcessKind::Api { stream_output }, ProcessEvent::Output { seq, stream, data }) => {
                stream_output.then(|| {
                    ServerNotification::ProcessOutput(OutputNotification {
                        process_id: entry.id.clone(),
                        seq,
                        stream: wire_stream(stream),
                        chunk: data,
                    })
                })
            }
            (ProcessKind::Api { .. }, ProcessEvent::Exited { seq, status }) => {
                session.record_exit(&entry.id);
                Some(ServerNotification::ProcessExited(ExitedNotification {
                    process_id: entry.id.clone(),
                    seq,
                    exit_code: status.code_or_signal(),
                    signal: status.signal_name().map(str::to_string),
                    timed_out: status.timed_out,
                }))
            }
            (kind, ProcessEvent::Closed) => {
                entry.closed.store(true, Ordering::SeqCst);
                session.forget_group_if_empty(entry.handle.pid());
                if kind == ProcessKind::V0 {
                    return;
                }
                if let Some(out) = target.current(&session, &mut attachment) {
                    let closed = ServerNotification::ProcessClosed(ClosedNotification {
                        process_id: entry.id.clone(),
                    });
                    let _ = out.send(ServerMessage::Notification(closed)).await;
                }
                return;
            }
        };
        let Some(notification) = notification else {
            continue;
        };
        // Detached: nothing to send; the output is in retention.
        if let Some(out) = target.current(&session, &mut attachment) {
            // A closed channel means the connection just ended; the session
            // decides what happens to the process.
            let _ = out.send(ServerMessage::Notification(notification)).await;
        }
    }
}
