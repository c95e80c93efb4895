//! Accepting connections until they become websockets: the part of the
//! server that anyone who can reach the port talks to, token or not.
//!
//! A connection is *pending* from `accept` until its HTTP connection ends
//! or hands its socket to a websocket (the upgrade). Pending connections
//! cost a descriptor and a task each and have proven nothing, so they are
//! held to three rules:
//!
//! - **Time.** The TLS handshake, and each request head (request line and
//!   headers, also the wait for the next request on a kept-alive
//!   connection), must complete within the handshake timeout
//!   (`--handshake-timeout-ms`); hyper's header timeout enforces the second.
//!   A client that sends nothing, or drips a byte at a time, is closed when
//!   it runs out.
//! - **Number.** At most `--max-pending-connections` at once, and never
//!   more than a quarter of the open-files limit, so descriptors remain for
//!   websockets, processes and their pipes. A new connection beyond the cap
//!   closes the *oldest* pending one: a real client finishes its upgrade in
//!   milliseconds, so the oldest is the one most likely to be stalling.
//! - **Descriptors.** If `accept` fails because the process is out of
//!   descriptors, the oldest pending connection is closed to make room and
//!   the loop pauses briefly instead of spinning on a backlog it cannot
//!   take.
//!
//! Together they keep a stranger holding sockets from locking out a client
//! with the token: its connection is the newest, and it upgrades before the
//! timeout. Once upgraded, a connection counts against `--max-connections`
//! instead (see [`super::websocket`]).
//!
//! Every accepted socket gets `TCP_NODELAY`: a response is often followed
//! by a small notification, and with Nagle's algorithm that second segment
//! waits for the client's delayed ACK, 40 ms on Linux, on every round trip.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

/// Limits on connections that have not become websockets yet.
#[derive(Clone, Debug)]
pub struct PendingLimits {
    /// Time for the TLS handshake, and for each request head.
    pub handshake_timeout: Duration,
    /// Pending connections at once (further capped by the open-files limit).
    pub max_pending: usize,
}

impl Default for PendingLimits {
    fn default() -> Self {
        PendingLimits {
            handshake_timeout: Duration::from_secs(5),
            max_pending: 256,
        }
    }
}

/// The pending-connection cap actually used: `configured`, but at most a
/// quarter of the soft open-files limit (and at least one).
pub fn effective_max_pending(configured: usize) -> usize {
    let by_descriptors = exec_server_core::limits::open_files_limit()
        .map(|(soft, _)| usize::try_from(soft / 4).unwrap_or(usize::MAX))
        .unwrap_or(usize::MAX);
    configured.min(by_descriptors).max(1)
}

/// Serves HTTP (and websocket upgrades through `router`) on `listener`,
/// over TLS when `tls` is given. Runs until the process ends.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: PendingLimits,
) -> io::Result<()> {
    let max_pending = effective_max_pending(limits.max_pending);
    if max_pending < limits.max_pending {
        tracing::info!(
            configured = limits.max_pending,
            used = max_pending,
            "pending connections capped at a quarter of the open-files limit"
        );
    }
    let pending = Arc::new(PendingSet::new(max_pending));
    let mut last_warning: Option<Instant> = None;
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                let out_of_descriptors =
                    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                if out_of_descriptors {
                    pending.evict_oldest();
                }
                // One warning a minute at most: a flood must not turn into
                // a flood of log lines.
                if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(%error, "accept failed");
                    last_warning = Some(Instant::now());
                }
                // The failed connection is still in the backlog: without a
                // pause, the loop would spin on it.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let ticket = pending.admit();
        let router = router.clone();
        let timeout = limits.handshake_timeout;
        match &tls {
            None => {
                tokio::spawn(serve_pending(ticket, peer, async move {
                    serve_http(tcp, router, timeout).await;
                }));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(serve_pending(ticket, peer, async move {
                    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_http(stream, router, timeout).await,
                        Ok(Err(error)) => tracing::info!(%error, %peer, "TLS handshake failed"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                }));
            }
        }
    }
}

/// Runs one pending connection until it ends, upgrades, or is evicted.
async fn serve_pending(
    mut ticket: PendingTicket,
    peer: SocketAddr,
    connection: impl Future<Output = ()>,
) {
    tokio::select! {
        () = connection => {}
        _ = &mut ticket.evicted => {
            tracing::info!(%peer, "closed a connection that had not upgraded: too many pending");
        }
    }
}

/// One HTTP/1.1 connection; ends when the client goes, a request head is
/// late, or the socket is handed to a websocket.
async fn serve_http<I>(io: I, router: Router, header_timeout: Duration)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let service = TowerToHyperService::new(router);
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(error) = connection.await {
        tracing::debug!(%error, "HTTP connection ended");
    }
}

/// The pending connections, oldest first, each with a way to close it.
#[derive(Debug)]
struct PendingSet {
    max: usize,
    inner: Mutex<PendingInner>,
}

#[derive(Debug, Default)]
struct PendingInner {
    next_id: u64,
    /// By accept order: the first entry is the oldest.
    entries: BTreeMap<u64, oneshot::Sender<()>>,
}

/// A pending connection's place in the set; leaves it on drop.
struct PendingTicket {
    set: Arc<PendingSet>,
    id: u64,
    /// Fires when the set closes this connection to make room.
    evicted: oneshot::Receiver<()>,
}

impl PendingSet {
    fn new(max: usize) -> Self {
        PendingSet {
            max: max.max(1),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PendingInner> {
        self.inner.lock().expect("pending set poisoned")
    }

    /// Adds a connection, closing the oldest ones beyond the cap.
    fn admit(self: &Arc<Self>) -> PendingTicket {
        let (tx, evicted) = oneshot::channel();
        let mut inner = self.lock();
        while inner.entries.len() >= self.max {
            if let Some((_, oldest)) = inner.entries.pop_first() {
                let _ = oldest.send(());
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.entries.insert(id, tx);
        PendingTicket {
            set: self.clone(),
            id,
            evicted,
        }
    }

    /// Closes the oldest pending connection, if any.
    fn evict_oldest(&self) {
        if let Some((_, oldest)) = self.lock().entries.pop_first() {
            let _ = oldest.send(());
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

impl Drop for PendingTicket {
    fn drop(&mut self) {
        self.set.lock().entries.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_pending_connections_make_room() {
        let set = Arc::new(PendingSet::new(2));
        let mut first = set.admit();
        let mut second = set.admit();
        assert_eq!(set.len(), 2);
        let mut third = set.admit();
        assert_eq!(set.len(), 2);
        assert!(first.evicted.try_recv().is_ok(), "the oldest was closed");
        assert!(second.evicted.try_recv().is_err());
        set.evict_oldest();
        assert!(second.evicted.try_recv().is_ok());
        assert!(third.evicted.try_recv().is_err());
        drop(third);
        assert_eq!(set.len(), 0);
        drop((first, second));
        assert_eq!(set.len(), 0);
    }

    #[test]
    fn the_cap_leaves_most_descriptors_to_real_work() {
        let (soft, _) = exec_server_core::limits::open_files_limit().unwrap();
        let cap = effective_max_pending(usize::MAX);
        assert_eq!(cap as u64, (soft / 4).max(1));
        assert_eq!(effective_max_pending(3), 3.min(cap));
    }
}
