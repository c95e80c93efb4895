//! Protocol `exec-server.v0` handlers (SPEC section 2).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use exec_server_core::{ProcessConfig, StdinMode, StdioMode, TerminalSize, spawn_process};
use exec_server_protocol::RpcError;
use exec_server_protocol::process::OnDisconnect;
use exec_server_protocol::v0::{
    ExecParams, ExecResponse, TerminateParams, TerminateResponse, WriteParams, WriteResponse,
};

use crate::connection::{Connection, ErrorMapping};
use crate::session::{ProcessEntry, ProcessKind, ProcessMeta};

impl Connection {
    pub(crate) async fn exec(&mut self, params: ExecParams) -> Result<ExecResponse, RpcError> {
        if params.argv.is_empty() {
            return Err(RpcError::invalid_params("argv must not be empty"));
        }
        self.check_process_limit()?;
        let config = ProcessConfig {
            argv: params.argv.clone(),
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
            timeout: None,
        };
        let process = spawn_process(config)
            .await
            .map_err(ErrorMapping::into_rpc)?;
        let session = self.session()?;
        let session_id = session.next_v0_id();
        let meta = ProcessMeta {
            argv: params.argv,
            tty: params.tty,
            labels: Default::default(),
            on_disconnect: OnDisconnect::Kill,
            detach_ttl: Duration::ZERO,
        };
        let entry = Arc::new(ProcessEntry::new(
            session_id.clone(),
            process.handle,
            ProcessKind::V0,
            meta,
        ));
        self.start_forwarding(entry, process.events);
        Ok(ExecResponse { session_id })
    }

    pub(crate) async fn write(&mut self, params: WriteParams) -> Result<WriteResponse, RpcError> {
        let entry = self
            .session()?
            .get(&params.session_id)
            .filter(|entry| entry.kind == ProcessKind::V0)
            .ok_or_else(|| {
                RpcError::invalid_request(format!("unknown session id {}", params.session_id))
            })?;
        entry.handle.write_stdin(params.chunk).await.map_err(|_| {
            RpcError::invalid_request(format!("stdin is closed for session {}", params.session_id))
        })?;
        Ok(WriteResponse { accepted: true })
    }

    pub(crate) fn terminate(
        &mut self,
        params: TerminateParams,
    ) -> Result<TerminateResponse, RpcError> {
        let entry = self
            .session()?
            .get(&params.session_id)
            .filter(|entry| entry.kind == ProcessKind::V0);
        let Some(entry) = entry else {
            return Ok(TerminateResponse { running: false });
        };
        entry.handle.kill_group().map_err(|error| {
            RpcError::internal(format!(
                "failed to kill session {}: {error}",
                params.session_id
            ))
        })?;
        // The id stays reserved until the forwarder reports the exit.
        Ok(TerminateResponse { running: true })
    }
}
