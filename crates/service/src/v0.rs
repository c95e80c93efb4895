//! Protocol `exec-server.v0` handlers (SPEC section 2) and the forwarder
//! that turns process events into `command/exec/*` notifications.

use std::path::PathBuf;

use exec_server_core::{
    OutputStream, ProcessConfig, ProcessEvent, ProcessGroups, StdinMode, StdioMode, TerminalSize,
    spawn_process,
};
use exec_server_protocol::v0::{
    ExecExitedNotification, ExecOutputDeltaNotification, ExecOutputStream, ExecParams,
    ExecResponse, TerminateParams, TerminateResponse, WriteParams, WriteResponse,
};
use exec_server_protocol::{RpcError, ServerMessage, ServerNotification};
use tokio::sync::mpsc;

use crate::connection::{Connection, ErrorMapping, Sessions};

impl Connection {
    pub(crate) async fn exec(&mut self, params: ExecParams) -> Result<ExecResponse, RpcError> {
        if params.argv.is_empty() {
            return Err(RpcError::invalid_params("argv must not be empty"));
        }
        let limit = self.server.config().max_processes_per_connection;
        if self.sessions.lock().expect("sessions lock poisoned").len() >= limit {
            return Err(RpcError::invalid_request(format!(
                "too many processes: this connection already has {limit} (--max-processes-per-connection)"
            )));
        }
        let config = ProcessConfig {
            argv: params.argv,
            arg0: params.arg0,
            cwd: PathBuf::from(params.cwd),
            env: params.env.into_iter().collect(),
            stdio: if params.tty {
                StdioMode::Terminal {
                    size: TerminalSize::default(),
                }
            } else {
                StdioMode::Pipes {
                    stdin: StdinMode::Null,
                }
            },
            retained_bytes: self.server.config().retained_output_bytes,
        };
        let process = spawn_process(config)
            .await
            .map_err(ErrorMapping::into_rpc)?;
        let pid = process.handle.pid();
        self.groups.insert(pid);
        self.server.groups().insert(pid);

        let session_id = format!("session-{}", self.next_session);
        self.next_session += 1;
        self.sessions
            .lock()
            .expect("sessions lock poisoned")
            .insert(session_id.clone(), process.handle);

        let forwarder = Forwarder {
            session_id: session_id.clone(),
            pid,
            out: self.out.clone(),
            sessions: self.sessions.clone(),
            groups: [self.groups.clone(), self.server.groups().clone()],
        };
        let events = process.events;
        self.pending_starts.push(Box::new(move || {
            tokio::spawn(forwarder.run(events));
        }));
        Ok(ExecResponse { session_id })
    }

    pub(crate) async fn write(&mut self, params: WriteParams) -> Result<WriteResponse, RpcError> {
        let handle = self
            .sessions
            .lock()
            .expect("sessions lock poisoned")
            .get(&params.session_id)
            .cloned()
            .ok_or_else(|| unknown_session(&params.session_id))?;
        handle.write_stdin(params.chunk).await.map_err(|_| {
            RpcError::invalid_request(format!("stdin is closed for session {}", params.session_id))
        })?;
        Ok(WriteResponse { accepted: true })
    }

    pub(crate) fn terminate(
        &mut self,
        params: TerminateParams,
    ) -> Result<TerminateResponse, RpcError> {
        let handle = self
            .sessions
            .lock()
            .expect("sessions lock poisoned")
            .get(&params.session_id)
            .cloned();
        let Some(handle) = handle else {
            return Ok(TerminateResponse { running: false });
        };
        if let Err(error) = handle.kill_group() {
            return Err(RpcError::internal(format!(
                "failed to kill session {}: {error}",
                params.session_id
            )));
        }
        // The id stays reserved until the forwarder reports the exit.
        Ok(TerminateResponse { running: true })
    }
}

fn unknown_session(session_id: &str) -> RpcError {
    RpcError::invalid_request(format!("unknown session id {session_id}"))
}

/// Turns one process's events into v0 notifications, in order.
struct Forwarder {
    session_id: String,
    pid: i32,
    out: mpsc::Sender<ServerMessage>,
    sessions: Sessions,
    /// The connection's and the server's group sets.
    groups: [ProcessGroups; 2],
}

impl Forwarder {
    async fn run(self, mut events: mpsc::Receiver<ProcessEvent>) {
        while let Some(event) = events.recv().await {
            let notification = match event {
                ProcessEvent::Output { stream, data, .. } => {
                    ServerNotification::ExecOutputDelta(ExecOutputDeltaNotification {
                        session_id: self.session_id.clone(),
                        stream: match stream {
                            OutputStream::Stderr => ExecOutputStream::Stderr,
                            OutputStream::Stdout | OutputStream::Pty => ExecOutputStream::Stdout,
                        },
                        chunk: data,
                    })
                }
                ProcessEvent::Exited { status, .. } => {
                    // Forget the id before reporting the exit, so a write
                    // that follows the notification is refused.
                    self.sessions
                        .lock()
                        .expect("sessions lock poisoned")
                        .remove(&self.session_id);
                    ServerNotification::ExecExited(ExecExitedNotification {
                        session_id: self.session_id.clone(),
                        exit_code: status.code_or_signal(),
                    })
                }
                ProcessEvent::Closed => {
                    for groups in &self.groups {
                        groups.forget_if_empty(self.pid);
                    }
                    return;
                }
            };
            if self
                .out
                .send(ServerMessage::Notification(notification))
                .await
                .is_err()
            {
                // The connection is gone; its cleanup kills the process.
                return;
            }
        }
    }
}
