//! The server's side of input-wait detection (`untilInputWait` in
//! `process/read` and `process/wait`): the detection itself is the core's
//! ([`exec_server_core::input_wait`]); here it is raced with the other ends
//! of a wait, and a read answer is marked.

use exec_server_core::ProcessHandle;
use exec_server_protocol::process::ReadResponse;

/// Resolves when the process is confirmed waiting for input; never when
/// `asked` is false (a `select!` branch that stays quiet).
pub(crate) async fn input_wait(handle: &ProcessHandle, asked: bool) {
    if asked {
        handle.until_waiting_for_input().await
    } else {
        std::future::pending().await
    }
}

/// Waits for `other` or, when `asked`, for an input wait: true when the
/// input wait came first.
pub(crate) async fn or_input_wait(
    handle: &ProcessHandle,
    asked: bool,
    other: impl Future<Output = ()>,
) -> bool {
    tokio::select! {
        () = other => false,
        () = input_wait(handle, asked) => true,
    }
}

/// Sets `waitingForInput` on a read answer when it was asked for: true only
/// when the wait ended on an input wait and nothing new came with it.
pub(crate) fn mark(response: &mut ReadResponse, asked: bool, detected: bool) {
    response.waiting_for_input = asked.then_some(
        detected && response.chunks.is_empty() && response.dropped_bytes == 0 && !response.exited,
    );
}
