//! Observers (`observe/*`): watching, and typing into, the processes of
//! other sessions on the same server — a person looking at the shell an
//! AI agent is using right now (docs/OBSERVERS.md).
//!
//! Sessions are addressed by a public handle, `owner`, that `observe/list`
//! reports next to each process. It is drawn at random when the session is
//! created and tells nothing about the session id, which stays the secret
//! that resumes a session. Every `observe/X` request takes the params of
//! `process/X` plus `owner`, and answers with the result of `process/X`;
//! the caller's own session may be addressed the same way.
//!
//! An observer reads by cursor from retention (`observe/read` is
//! `process/read`), never through the owner's notification channel, so it
//! cannot slow the process down: when it falls behind, retention drops
//! output and the reader is told exactly how many bytes it missed.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::process::{ProcessInfo, TerminalSize};

/// Method names, exactly as they appear on the wire.
pub mod method {
    pub const LIST: &str = "observe/list";
    pub const SNAPSHOT: &str = "observe/snapshot";
    pub const READ: &str = "observe/read";
    pub const WRITE: &str = "observe/write";
    pub const RESIZE: &str = "observe/resize";
    pub const SIGNAL: &str = "observe/signal";
}

/// The params of a `process/*` method, addressed to a process of the
/// session `owner` (a handle from `observe/list`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Observed{P}")]
pub struct Observed<P> {
    /// The owning session's public handle, from `observe/list`.
    pub owner: String,
    #[serde(flatten)]
    pub params: P,
}

/// `observe/list` params.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObserveListParams {
    /// Only processes carrying all these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// One process of some session on the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedProcess {
    /// The owning session's public handle (not its secret id).
    pub owner: String,
    /// The process belongs to the caller's own session.
    pub mine: bool,
    /// The `clientName` the owning session gave at `initialize`.
    pub owner_client: String,
    /// The owning session has a connection right now (false while its
    /// detached processes wait to be resumed).
    pub owner_attached: bool,
    #[serde(flatten)]
    pub info: ProcessInfo,
    /// PTY: the terminal's current size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<TerminalSize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObserveListResponse {
    /// Sorted by owner, then process id.
    pub processes: Vec<ObservedProcess>,
    /// More processes matched than one answer carries
    /// ([`MAX_LISTED_PROCESSES`]); narrow with `labels`.
    #[serde(default)]
    pub truncated: bool,
}

/// The most processes one `observe/list` answer carries.
pub const MAX_LISTED_PROCESSES: usize = 10_000;
