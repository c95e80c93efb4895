//! `initialize` (SPEC 1.3, 3.2): creates this connection's session or
//! resumes a detached one. The connection lets it through only as the
//! first request; `initialized` is a notification the connection handles.

use exec_server_protocol::v0::{
    InitializeParams, InitializeResponse, ServerCapabilities, ServerLimits,
};

use crate::context::Context;
use crate::error::ApiError;
use crate::session::Session;

pub(crate) async fn initialize(
    cx: &mut Context,
    params: InitializeParams,
) -> Result<InitializeResponse, ApiError> {
    let (session, resumed) = match &params.resume_session_id {
        Some(token) => {
            crate::fleet::check_owner(&cx.config().server_id, token)?;
            let session = Session::resume(cx.server(), token)?;
            // Live output follows once this answer is queued.
            cx.attach_after_response(session.clone());
            (session, true)
        }
        None => (Session::create(cx.server(), cx.out().clone()), false),
    };
    // Debug-quoted and cut: a client's name must not forge log lines or
    // fill the log.
    let client: String = params.client_name.chars().take(128).collect();
    tracing::info!(client = ?client, resumed, "client initialized");
    session.lock().client_name = super::observe::bounded_name(&params.client_name);
    let token = session.token.clone();
    cx.set_session(session);
    // Only once the handshake succeeded. From here on the transport writes
    // output as binary frames, whenever it was queued: a client that asks
    // reads both kinds from the moment it sends `initialize`.
    let capabilities = params
        .capabilities
        .as_ref()
        .map(|asked| ServerCapabilities {
            binary_frames: asked.binary_frames && cx.turn_on_binary_frames(),
        });
    let config = cx.config();
    Ok(InitializeResponse {
        protocol_version: exec_server_protocol::PROTOCOL_VERSION.to_string(),
        server_name: Some("exec-server".into()),
        server_version: Some(env!("CARGO_PKG_VERSION").into()),
        session_id: Some(token),
        resumed,
        server_id: Some(config.server_id.to_string()),
        limits: Some(ServerLimits {
            max_message_bytes: config.max_message_bytes as u64,
            max_processes_per_connection: config.max_processes_per_connection as u64,
            retained_output_bytes: config.retained_output_bytes as u64,
            max_exited_records: config.max_exited_records as u64,
            detach_ttl_ms: config.detach_ttl.as_millis() as u64,
            fs: Some(exec_server_protocol::fs::FsLimits {
                max_read_bytes: config.fs_limits.max_read_bytes,
                max_handles: config.fs_limits.max_handles as u64,
                max_watches: config.fs_limits.max_watches as u64,
                max_entries: config.fs_limits.max_entries as u64,
            }),
        }),
        sandbox: Some(crate::sandbox::info(config)),
        capabilities,
    })
}
