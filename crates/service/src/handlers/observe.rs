//! `observe/*` (docs/OBSERVERS.md): any connection may list the processes
//! of every session on the server and watch or type into them, addressing
//! a session by its public handle (`owner`), never by its secret id.
//!
//! Why this grants nothing new: whoever holds the server's token can
//! already run any command as the server's user. What stays protected is
//! the session id, which resumes a session (its processes' notifications
//! and their fate at disconnect); observers cannot learn it.
//!
//! Each `observe/X` finds the process by `(owner, processId)`, then runs
//! exactly the code of `process/X` (the `*_of`/`*_to`/`*_from` functions of
//! [`super::process`]). Reads come from retention by cursor, so an observer
//! never holds the owner's process back: notifications flow to the owner
//! alone.

use std::sync::Arc;

use exec_server_protocol::observe::{
    MAX_LISTED_PROCESSES, ObserveListParams, ObserveListResponse, Observed, ObservedProcess,
};
use exec_server_protocol::process::{
    EmptyResponse, ProcessIdParams, ReadParams, ReadResponse, ResizeParams, SignalParams,
    SignalResponse, SnapshotResponse, TerminalSize, WriteParams, WriteResponse,
};

use super::process::{
    has_labels, process_info, read_from, resize_of, signal_to, snapshot_of, write_to,
};
use crate::context::Context;
use crate::error::ApiError;
use crate::router::Reply;
use crate::session::{ProcessEntry, ProcessKind};

/// Longest `clientName` kept for display to observers, in bytes.
const MAX_CLIENT_NAME_BYTES: usize = 256;

/// A client name cut to [`MAX_CLIENT_NAME_BYTES`] at a character boundary.
pub(crate) fn bounded_name(name: &str) -> String {
    let mut end = name.len().min(MAX_CLIENT_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// The `process/*` process `id` of the session whose handle is `owner`.
fn observed(cx: &Context, owner: &str, id: &str) -> Result<Arc<ProcessEntry>, ApiError> {
    let session = cx
        .server()
        .sessions()
        .all()
        .into_iter()
        .find(|session| session.public_ref == owner)
        .ok_or_else(|| ApiError::UnknownOwner(owner.to_string()))?;
    session
        .get(id)
        .filter(|entry| matches!(entry.kind, ProcessKind::Api { .. }))
        .ok_or_else(|| ApiError::UnknownObservedProcess {
            id: id.to_string(),
            owner: owner.to_string(),
        })
}

pub(crate) async fn list(
    cx: &mut Context,
    params: ObserveListParams,
) -> Result<ObserveListResponse, ApiError> {
    let me = cx.session()?.clone();
    let mut processes = Vec::new();
    let mut truncated = false;
    for session in cx.server().sessions().all() {
        let attached = session.attached();
        let state = session.lock();
        for entry in state.processes.values() {
            if !matches!(entry.kind, ProcessKind::Api { .. })
                || !has_labels(entry, params.labels.as_ref())
            {
                continue;
            }
            if processes.len() == MAX_LISTED_PROCESSES {
                truncated = true;
                break;
            }
            processes.push(ObservedProcess {
                owner: session.public_ref.clone(),
                mine: Arc::ptr_eq(&session, &me),
                owner_client: state.client_name.clone(),
                owner_attached: attached,
                info: process_info(entry),
                size: entry.handle.terminal_size().map(|size| TerminalSize {
                    rows: size.rows,
                    cols: size.cols,
                }),
            });
        }
    }
    processes.sort_by(|a, b| (&a.owner, &a.info.process_id).cmp(&(&b.owner, &b.info.process_id)));
    Ok(ObserveListResponse {
        processes,
        truncated,
    })
}

pub(crate) async fn snapshot(
    cx: &mut Context,
    params: Observed<ProcessIdParams>,
) -> Result<SnapshotResponse, ApiError> {
    let entry = observed(cx, &params.owner, &params.params.process_id)?;
    Ok(snapshot_of(&entry))
}

pub(crate) async fn read(cx: &mut Context, params: Observed<ReadParams>) -> Reply<ReadResponse> {
    match observed(cx, &params.owner, &params.params.process_id) {
        Ok(entry) => read_from(entry, params.params, cx.config().max_wait),
        Err(error) => Reply::Now(Err(error)),
    }
}

pub(crate) async fn write(
    cx: &mut Context,
    params: Observed<WriteParams>,
) -> Result<WriteResponse, ApiError> {
    let entry = observed(cx, &params.owner, &params.params.process_id)?;
    write_to(&entry, params.params).await
}

pub(crate) async fn resize(
    cx: &mut Context,
    params: Observed<ResizeParams>,
) -> Result<EmptyResponse, ApiError> {
    let entry = observed(cx, &params.owner, &params.params.process_id)?;
    resize_of(&entry, params.params, cx.config().max_terminal_size)
}

pub(crate) async fn signal(
    cx: &mut Context,
    params: Observed<SignalParams>,
) -> Result<SignalResponse, ApiError> {
    let entry = observed(cx, &params.owner, &params.params.process_id)?;
    signal_to(&entry, params.params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_are_cut_at_a_character_boundary() {
        assert_eq!(bounded_name("agent"), "agent");
        let long = "é".repeat(200);
        let cut = bounded_name(&long);
        assert!(cut.len() <= MAX_CLIENT_NAME_BYTES);
        assert!(long.starts_with(&cut));
    }
}
