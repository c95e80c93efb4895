//! A TCP proxy between a client and a real server that a test can cut,
//! pause and arm, to reproduce network failures at chosen moments.
//!
//! - [`Proxy::cut`] drops every open connection at once (both directions
//!   see end-of-file), as a network failure would;
//! - [`Proxy::pause`] makes new connections fail (they are accepted and
//!   closed at once) until [`Proxy::unpause`], so a reconnecting client
//!   stays away as long as the test wants;
//! - [`Proxy::cut_next_after`] arms a cut of the next accepted connection
//!   once it has carried a given number of bytes from the server to the
//!   client: the way to cut a connection in the middle of a replay.
//!
//! Bytes are copied by hand rather than with `copy_bidirectional` so that
//! they can be counted and a cut lands between two reads.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Shared {
    paused: AtomicBool,
    /// Bytes after which the next connection is cut; 0 when not armed.
    cut_next_after: AtomicU64,
    accepted: AtomicUsize,
    /// Connections cut by an armed byte count.
    armed_cuts: AtomicUsize,
    changed: Notify,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

/// A proxy on `127.0.0.1:0` in front of `target`.
pub struct Proxy {
    /// `ws://127.0.0.1:PORT`.
    pub url: String,
    shared: Arc<Shared>,
    listener: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.listener.abort();
        self.cut();
    }
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        let listener = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if accepting.paused.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let cut_after = accepting.cut_next_after.swap(0, Ordering::SeqCst);
                accepting.accepted.fetch_add(1, Ordering::SeqCst);
                let task = tokio::spawn(forward(client, target, cut_after, accepting.clone()));
                accepting.connections.lock().unwrap().push(task);
                accepting.changed.notify_waiters();
            }
        });
        Proxy {
            url,
            shared,
            listener,
        }
    }

    /// Drops every open connection.
    pub fn cut(&self) {
        for task in self.shared.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// New connections are closed at once until [`unpause`](Self::unpause).
    pub fn pause(&self) {
        self.shared.paused.store(true, Ordering::SeqCst);
    }

    pub fn unpause(&self) {
        self.shared.paused.store(false, Ordering::SeqCst);
    }

    /// Cuts the next accepted connection once it has carried `bytes` bytes
    /// from the server to the client.
    pub fn cut_next_after(&self, bytes: u64) {
        self.shared.cut_next_after.store(bytes, Ordering::SeqCst);
    }

    /// Connections accepted so far (refused ones while paused not counted).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections cut by [`cut_next_after`](Self::cut_next_after).
    pub fn armed_cuts(&self) -> usize {
        self.shared.armed_cuts.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` connections were accepted.
    pub async fn wait_accepted(&self, count: usize, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.shared.changed.notified();
            if self.accepted() >= count {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!(
                    "only {} of {count} connections in {limit:?}",
                    self.accepted()
                );
            }
        }
    }
}

async fn forward(client: TcpStream, target: SocketAddr, cut_after: u64, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let downstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut carried = 0u64;
        loop {
            let want = if cut_after > 0 {
                buf.len().min((cut_after - carried) as usize)
            } else {
                buf.len()
            };
            match server_read.read(&mut buf[..want]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    carried += n as u64;
                    if cut_after > 0 && carried >= cut_after {
                        shared.armed_cuts.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            }
        }
    };
    // Either direction ending ends both: the sockets drop together.
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
}
