//! The server's lifecycle: where a shutdown stands, as one value that the
//! listener, every connection and the sessions watch, and a tracker that
//! lets the shutdown wait for every connection to finish its cleanup.
//!
//! A server moves through four phases, never backwards:
//!
//! | phase | listener | connections | processes |
//! |---|---|---|---|
//! | [`Phase::Serving`] | accepts | serve | run |
//! | [`Phase::Draining`] | `/readyz` 503; unrouted upgrades 503, routed ones (resumes) accepted | serve | run |
//! | [`Phase::Terminating`] | stopped | serve, so clients see the exits | SIGTERM, the grace, SIGKILL |
//! | [`Phase::Closing`] | stopped | close: flush within a bound, a close frame | every session ends |
//!
//! Who holds what:
//!
//! - [`Server`] holds the one [`Lifecycle`]: the phase (a `watch` sender)
//!   and the connection tracker.
//! - A listener runs inside [`Lifecycle::until_terminating`], which drops
//!   it (no more accepts) when the server starts terminating.
//! - Each connection holds a [`ConnectionGuard`] for as long as it exists,
//!   transport flush included, and a [`Shutdown`] receiver: at
//!   [`Phase::Closing`] it stops reading and ends its session (the
//!   transport then flushes within [`crate::transport::FINAL_FLUSH`] and
//!   closes).
//! - Sessions end at [`Phase::Closing`], detached ones included; their
//!   process groups were already terminated, through the server's one
//!   process-group registry.
//! - The embedder (the binary's `main`) calls [`Server::shut_down`], which
//!   walks the phases in order and waits, bounded, for every guard.
//!
//! Nothing polls the phase: everyone waits on the `watch` channel. The one
//! poll left is the drain's "is any session left", bounded by the grace.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::Server;
use crate::transport::FINAL_FLUSH;

/// Where a server is in its life. Ordered: a later phase compares greater.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Taking new sessions.
    Serving,
    /// A graceful shutdown began: new sessions go elsewhere (`/readyz`
    /// 503), attached clients and resumes keep working until the grace
    /// ends or no session is left.
    Draining,
    /// The listener stopped; every process group is being terminated.
    /// Connections stay open so clients see their processes exit.
    Terminating,
    /// Every connection closes and every session ends.
    Closing,
}

/// The lifecycle of one server; [`Server::lifecycle`] returns it.
#[derive(Debug)]
pub struct Lifecycle {
    phase: watch::Sender<Phase>,
    connections: TaskTracker,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            phase: watch::Sender::new(Phase::Serving),
            connections: TaskTracker::new(),
        }
    }
}

/// Longest a shutdown waits for connections to finish after telling them
/// to close: each needs at most [`FINAL_FLUSH`] (and its close frame)
/// once it stopped reading.
pub const CLOSE_BOUND: Duration = FINAL_FLUSH.saturating_add(Duration::from_secs(1));

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Whether new sessions should go elsewhere (`/readyz` answers 503):
    /// from the start of a drain to the end.
    pub fn is_draining(&self) -> bool {
        self.phase() >= Phase::Draining
    }

    /// Moves to `phase` unless the server is already there or beyond.
    /// Returns whether it moved.
    pub fn advance(&self, phase: Phase) -> bool {
        self.phase.send_if_modified(|current| {
            let moved = phase > *current;
            if moved {
                *current = phase;
            }
            moved
        })
    }

    /// A receiver for one connection or listener.
    pub fn shutdown(&self) -> Shutdown {
        Shutdown(self.phase.subscribe())
    }

    /// Counts a connection until the guard is dropped; a shutdown waits
    /// for every guard.
    pub fn connection(&self) -> ConnectionGuard {
        ConnectionGuard(self.connections.token())
    }

    /// Connections whose guard is still held.
    pub fn open_connections(&self) -> usize {
        self.connections.len()
    }

    /// Runs `serving` (a listener's accept loop) until it ends on its own
    /// or the server starts terminating, when it is dropped: no new
    /// connection is accepted after that. `None` in the latter case.
    pub async fn until_terminating<F: Future>(&self, serving: F) -> Option<F::Output> {
        let mut shutdown = self.shutdown();
        tokio::select! {
            output = serving => Some(output),
            () = shutdown.reached(Phase::Terminating) => None,
        }
    }

    /// Waits until every connection has dropped its guard, for at most
    /// `bound`. Returns how many were still open at the end.
    async fn connections_closed(&self, bound: Duration) -> usize {
        self.connections.close();
        let _ = tokio::time::timeout(bound, self.connections.wait()).await;
        self.connections.len()
    }
}

/// A connection's (or listener's) view of the lifecycle. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<Phase>);

impl Shutdown {
    /// Resolves once the server reached `phase` (at once if it is past it).
    pub async fn reached(&mut self, phase: Phase) {
        if self.0.wait_for(|current| *current >= phase).await.is_err() {
            // The server is gone, and with it anything to wait for; the
            // holder of this receiver ends on its own.
            std::future::pending::<()>().await;
        }
    }

    /// Resolves when connections must close.
    pub async fn closing(&mut self) {
        self.reached(Phase::Closing).await
    }

    /// Whether connections must close now.
    pub fn is_closing(&self) -> bool {
        *self.0.borrow() >= Phase::Closing
    }
}

/// Held by a connection for as long as it exists, its transport's final
/// flush included.
#[derive(Debug)]
pub struct ConnectionGuard(#[allow(dead_code)] TaskTrackerToken);

/// How [`Server::shut_down`] proceeds.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShutdownOptions {
    /// Drain first for the grace (`--shutdown-grace-ms`): for a listener
    /// behind a balancer. Without a grace there is nothing to drain.
    pub drain: bool,
}

/// What a shutdown did, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Process groups that were terminated.
    pub process_groups: usize,
    /// Connections still open when the shutdown stopped waiting for them.
    pub unfinished_connections: usize,
}

/// How often the drain looks whether every session has ended.
const DRAIN_POLL: Duration = Duration::from_millis(50);

impl Server {
    /// The lifecycle: its phase and its connections.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.inner.lifecycle
    }

    /// The whole shutdown, in order: drain (with `options.drain` and a
    /// grace), stop the listener and terminate every process group
    /// (SIGTERM, the grace, SIGKILL; clients still see the exits), then
    /// close every connection and end every session, and wait for the
    /// connections to finish, at most [`CLOSE_BOUND`].
    ///
    /// `hurry` resolving (a second signal) cuts the drain and the grace
    /// short; the rest still happens.
    pub async fn shut_down(
        &self,
        options: ShutdownOptions,
        hurry: impl Future<Output = ()>,
    ) -> ShutdownReport {
        let lifecycle = self.lifecycle();
        let grace = self.config().shutdown_grace;
        let mut hurry = std::pin::pin!(hurry);
        // `hurry` may be polled only until it resolves once.
        let mut hurried = false;
        if options.drain && !grace.is_zero() {
            if lifecycle.advance(Phase::Draining) {
                tracing::info!(
                    grace_ms = grace.as_millis() as u64,
                    "draining: /readyz answers 503"
                );
            }
            tokio::select! {
                () = self.sessions_ended(grace) => {}
                () = &mut hurry => hurried = true,
            }
        }
        lifecycle.advance(Phase::Terminating);
        let groups = self.groups();
        let process_groups = if hurried {
            groups.kill_all().len()
        } else {
            tokio::select! {
                count = groups.terminate_all(grace) => count,
                () = &mut hurry => groups.kill_all().len(),
            }
        };
        lifecycle.advance(Phase::Closing);
        self.sessions().end_all();
        exec_server_core::sandbox::remove_ready_tmp_dirs();
        let unfinished_connections = lifecycle.connections_closed(CLOSE_BOUND).await;
        ShutdownReport {
            process_groups,
            unfinished_connections,
        }
    }

    /// Resolves when no session is left (attached or detached), or after
    /// `grace`.
    async fn sessions_ended(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        // Sessions end on many paths (disconnects, TTLs, the last process
        // of a detached session); a short poll bounded by the grace is
        // simpler than a notification on each of them.
        while self.session_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + DRAIN_POLL)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn phases_only_move_forward_and_wake_their_watchers() {
        let lifecycle = Lifecycle::default();
        let mut shutdown = lifecycle.shutdown();
        assert!(!lifecycle.is_draining());
        assert!(lifecycle.advance(Phase::Draining));
        assert!(!lifecycle.advance(Phase::Draining));
        assert!(lifecycle.is_draining());
        assert!(!shutdown.is_closing());
        let waiter = tokio::spawn(async move {
            shutdown.closing().await;
            shutdown.is_closing()
        });
        assert!(lifecycle.advance(Phase::Closing));
        assert!(!lifecycle.advance(Phase::Terminating), "never backwards");
        assert_eq!(lifecycle.phase(), Phase::Closing);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn a_listener_is_dropped_when_the_server_terminates() {
        let lifecycle = Lifecycle::default();
        let finished = lifecycle.until_terminating(async { 7 }).await;
        assert_eq!(finished, Some(7));
        lifecycle.advance(Phase::Terminating);
        let stopped = lifecycle
            .until_terminating(std::future::pending::<()>())
            .await;
        assert_eq!(stopped, None);
    }

    #[tokio::test]
    async fn the_wait_for_connections_is_bounded_and_counts_the_unfinished() {
        let lifecycle = Lifecycle::default();
        let quick = lifecycle.connection();
        let stuck = lifecycle.connection();
        assert_eq!(lifecycle.open_connections(), 2);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(quick);
        });
        let left = lifecycle
            .connections_closed(Duration::from_millis(300))
            .await;
        assert_eq!(left, 1);
        drop(stuck);
        assert_eq!(
            lifecycle.connections_closed(Duration::from_secs(5)).await,
            0
        );
    }
}
