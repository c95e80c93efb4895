//! Protocol `exec-server.v0` (SPEC section 2): the exact shapes of its
//! params, results and notifications. Its methods are entries of the
//! method table ([`crate::methods`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The wire names of v0's methods and notifications, taken from the method
/// table ([`crate::methods`]), for code written before the table. New code
/// uses `methods::Type::NAME`; new methods are not added here.
pub mod method {
    use crate::methods::{self, Method, Notification};

    pub const INITIALIZE: &str = methods::Initialize::NAME;
    pub const INITIALIZED: &str = methods::Initialized::NAME;
    pub const EXEC: &str = methods::Exec::NAME;
    pub const EXEC_WRITE: &str = methods::ExecWrite::NAME;
    pub const EXEC_TERMINATE: &str = methods::ExecTerminate::NAME;
    pub const EXEC_OUTPUT_DELTA: &str = methods::ExecOutputDelta::NAME;
    pub const EXEC_EXITED: &str = methods::ExecExited::NAME;
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    #[serde(default)]
    pub client_name: String,
    /// Resume the session (and its detached processes) with this id, taken
    /// from an earlier `initialize` result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_session_id: Option<String>,
    /// What the client would like turned on for this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<ClientCapabilities>,
}

/// `initialize` params `capabilities`: optional features a client asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientCapabilities {
    /// Output (and the client's `process/write`) as binary websocket
    /// frames (`schema/binary-frames.md`). Websocket only; ignored on stdio.
    #[serde(default)]
    pub binary_frames: bool,
}

/// `initialize` result `capabilities`: what is on for this connection.
/// Present only when the client sent `capabilities`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerCapabilities {
    /// Output notifications come as binary frames, and binary
    /// `process/write` frames are accepted.
    #[serde(default)]
    pub binary_frames: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResponse {
    pub protocol_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// This connection's session: a secret that resumes it later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// True when `resumeSessionId` was accepted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resumed: bool,
    /// This server's public name in a fleet (`--server-id`). A client
    /// resumes its session through a balancer by routing to this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// The server's limits, so clients can size their requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ServerLimits>,
    /// What the server can confine, and its sandbox policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<crate::sandbox::SandboxInfo>,
    /// The optional features on for this connection, answering the
    /// client's `capabilities`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<ServerCapabilities>,
}

/// Limits a client may want to know about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerLimits {
    pub max_message_bytes: u64,
    pub max_processes_per_connection: u64,
    pub retained_output_bytes: u64,
    pub max_exited_records: u64,
    pub detach_ttl_ms: u64,
    /// Limits of the `fs/*` methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs: Option<crate::fs::FsLimits>,
}

/// `command/exec` params. `env` is the child's complete environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecParams {
    pub argv: Vec<String>,
    pub cwd: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub arg0: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecResponse {
    pub session_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ExecWriteParams")]
pub struct WriteParams {
    pub session_id: String,
    #[serde(with = "crate::wire::base64_bytes")]
    #[schemars(with = "String")]
    pub chunk: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ExecWriteResponse")]
pub struct WriteResponse {
    pub accepted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ExecTerminateParams")]
pub struct TerminateParams {
    pub session_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ExecTerminateResponse")]
pub struct TerminateResponse {
    pub running: bool,
}

/// Which output stream a chunk came from. PTY output is reported as `stdout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecOutputStream {
    Stdout,
    Stderr,
}

impl ExecOutputStream {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecOutputStream::Stdout => "stdout",
            ExecOutputStream::Stderr => "stderr",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecOutputDeltaNotification {
    pub session_id: String,
    pub stream: ExecOutputStream,
    #[serde(with = "crate::wire::base64_bytes")]
    #[schemars(with = "String")]
    pub chunk: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecExitedNotification {
    pub session_id: String,
    pub exit_code: i32,
}
