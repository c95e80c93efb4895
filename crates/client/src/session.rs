//! [`ExecSession`]: one process started with `command/exec`, its ordered
//! event stream and the helpers built on it.

use bytes::Bytes;
use exec_server_protocol::v0::{ExecOutputStream, TerminateResponse, WriteResponse};
use tokio::sync::mpsc;

use crate::ClientError;
use crate::client::ExecServerClient;
use crate::event::ExecEvent;

/// Everything a finished process printed, and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
    /// The exit status, or 128 + N after death by signal N.
    pub exit_code: i32,
}

/// A process started through [`ExecServerClient::exec`].
///
/// Its events arrive through a bounded channel: while nobody calls
/// [`next_event`](Self::next_event), the server stops reading the process's
/// output and the process blocks, exactly as with a pipe. Nothing is lost.
pub struct ExecSession {
    client: ExecServerClient,
    session_id: String,
    events: mpsc::Receiver<ExecEvent>,
}

impl ExecSession {
    pub(crate) fn new(
        client: ExecServerClient,
        session_id: String,
        events: mpsc::Receiver<ExecEvent>,
    ) -> Self {
        ExecSession {
            client,
            session_id,
            events,
        }
    }

    /// The server's session id (`session-N`).
    pub fn id(&self) -> &str {
        &self.session_id
    }

    /// The next output chunk or the exit. `None` after the exit, or when the
    /// connection closed before the process exited.
    pub async fn next_event(&mut self) -> Option<ExecEvent> {
        self.events.recv().await
    }

    /// Writes to the process's terminal (PTY sessions).
    pub async fn write(&self, chunk: impl Into<Bytes>) -> Result<WriteResponse, ClientError> {
        self.client.write(&self.session_id, chunk).await
    }

    /// Kills the process group. Its exit still arrives as an event.
    pub async fn terminate(&self) -> Result<TerminateResponse, ClientError> {
        self.client.terminate(&self.session_id).await
    }

    /// Reads events until the exit and returns its code, discarding output.
    pub async fn wait(mut self) -> Result<i32, ClientError> {
        while let Some(event) = self.events.recv().await {
            if let ExecEvent::Exited { exit_code } = event {
                return Ok(exit_code);
            }
        }
        Err(ClientError::Closed)
    }

    /// Runs the process to completion, collecting stdout, stderr and the
    /// exit code.
    pub async fn output(mut self) -> Result<ExecOutput, ClientError> {
        let mut output = ExecOutput::default();
        while let Some(event) = self.events.recv().await {
            match event {
                ExecEvent::Output {
                    stream: ExecOutputStream::Stdout,
                    chunk,
                } => output.stdout.extend_from_slice(&chunk),
                ExecEvent::Output {
                    stream: ExecOutputStream::Stderr,
                    chunk,
                } => output.stderr.extend_from_slice(&chunk),
                ExecEvent::Exited { exit_code } => {
                    output.exit_code = exit_code;
                    return Ok(output);
                }
            }
        }
        Err(ClientError::Closed)
    }
}
