//! Protocol `exec-server.v0` (SPEC section 2): `command/exec`,
//! `command/exec/write`, `command/exec/terminate`. Their error messages are
//! fixed byte for byte by the SPEC (see [`ApiError`]'s v0 variants).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use exec_server_core::{ProcessConfig, StdinMode, StdioMode, TerminalSize};
use exec_server_protocol::process::OnDisconnect;
use exec_server_protocol::v0::{
    ExecParams, ExecResponse, TerminateParams, TerminateResponse, WriteParams, WriteResponse,
};

use crate::config::STDIN_FULL_WAIT;
use crate::context::Context;
use crate::error::ApiError;
use crate::handlers::process::stdin_full;
use crate::session::{ProcessEntry, ProcessKind, ProcessMeta};

pub(crate) async fn exec(cx: &mut Context, params: ExecParams) -> Result<ExecResponse, ApiError> {
    if params.argv.is_empty() {
        return Err(ApiError::InvalidParams("argv must not be empty".into()));
    }
    cx.check_process_limit()?;
    // A server policy confines v0 processes too; the wire is unchanged.
    let sandbox = crate::sandbox::for_process(cx.config(), None, &params.cwd)?;
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
        retained_bytes: cx.config().retained_output_bytes,
        timeout: None,
        sandbox,
        stdin_queue_bytes: cx.config().stdin_queue_bytes,
        screen_budget: Some(cx.server().screen_budget().clone()),
    };
    let slot = cx.process_slot()?;
    let process = cx.spawn(config).await?;
    slot.release_on_exit(process.handle.clone());
    let session_id = cx.session()?.next_v0_id();
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
    cx.start_forwarding(entry, process.events)?;
    Ok(ExecResponse { session_id })
}

pub(crate) async fn write(
    cx: &mut Context,
    params: WriteParams,
) -> Result<WriteResponse, ApiError> {
    let entry = cx
        .session()?
        .get(&params.session_id)
        .filter(|entry| entry.kind == ProcessKind::V0)
        .ok_or_else(|| ApiError::UnknownSession(params.session_id.clone()))?;
    let write = entry.handle.write_stdin(params.chunk);
    match tokio::time::timeout(STDIN_FULL_WAIT, write).await {
        Ok(result) => result.map_err(|_| ApiError::StdinClosedSession(params.session_id))?,
        Err(_) => return Err(stdin_full("session", &params.session_id, &entry.handle)),
    }
    Ok(WriteResponse { accepted: true })
}

pub(crate) async fn terminate(
    cx: &mut Context,
    params: TerminateParams,
) -> Result<TerminateResponse, ApiError> {
    let entry = cx
        .session()?
        .get(&params.session_id)
        .filter(|entry| entry.kind == ProcessKind::V0);
    let Some(entry) = entry else {
        return Ok(TerminateResponse { running: false });
    };
    entry
        .handle
        .kill_group()
        .map_err(|error| ApiError::os(format!("failed to kill session {}", entry.id), error))?;
    // The id stays reserved until the forwarder reports the exit.
    Ok(TerminateResponse { running: true })
}
