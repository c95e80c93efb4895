//! A fleet on one machine, made of real parts: each host is a network
//! namespace running a real `exec-server`, the balancer is a real HAProxy
//! in a namespace of its own, and the test's client runs in a third kind of
//! namespace, so every packet crosses veth pairs and a bridge.
//!
//! ```text
//!   NAME-cl (client, 10.99.0.100) ─┐
//!   NAME-lb (HAProxy, 10.99.0.2)  ─┤  br0 in NAME-lan
//!   NAME-h1 (exec-server, .11)    ─┤
//!   NAME-h2 (exec-server, .12)    ─┤
//!   NAME-h3 (exec-server, .13)    ─┘
//! ```
//!
//! Every address lives only inside these namespaces. Names are unique per
//! test (process id and a counter), so tests run in parallel. [`Fleet`]'s
//! `Drop` kills every process left in its namespaces and deletes them, on
//! success and on panic alike. Missing `ip` or `haproxy` fails the test.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The token every server of a test fleet requires.
pub const TOKEN: &str = "fleet-test-token-5d1c9e";
/// The port every exec-server listens on, in its own namespace.
pub const SERVER_PORT: u16 = 7000;
/// The balancer's address and port, reachable from the client namespace.
pub const BALANCER: &str = "10.99.0.2:8080";
/// The path prefix the servers and the balancer agree on.
pub const PREFIX: &str = "/exec";
/// HAProxy's idle timeout for an upgraded websocket. Short, so the test
/// can prove in a few seconds that keepalive pings hold a quiet session.
pub const TUNNEL_TIMEOUT: Duration = Duration::from_millis(1500);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Runs `ip ARGS`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("`ip` (Debian package iproute2) is required: {e}"));
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One exec-server host.
pub struct Host {
    pub id: String,
    pub ns: String,
    pub ip: String,
    child: Mutex<Option<Child>>,
    pub log: Arc<Mutex<String>>,
}

impl Host {
    /// `ws://IP:PORT` of this server, reachable from the client namespace
    /// without the balancer.
    pub fn direct_url(&self) -> String {
        format!("ws://{}:{SERVER_PORT}{PREFIX}/", self.ip)
    }

    pub fn pid(&self) -> i32 {
        self.child
            .lock()
            .unwrap()
            .as_ref()
            .expect("server running")
            .id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on a pid we own (our child, not yet reaped).
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill {}", self.id);
    }

    /// Waits up to `limit` for the server to exit; returns its status code.
    pub fn wait_exit(&self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        let mut child = self.child.lock().unwrap();
        let child = child.as_mut().expect("server started");
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().or(Some(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Options for [`Fleet::start`].
#[derive(Clone, Debug)]
pub struct FleetOptions {
    pub servers: usize,
    /// Extra flags for every server.
    pub server_args: Vec<String>,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            servers: 3,
            server_args: Vec::new(),
        }
    }
}

pub struct Fleet {
    pub name: String,
    namespaces: Mutex<Vec<String>>,
    pub dir: tempfile::TempDir,
    pub hosts: Vec<Host>,
    balancer: Mutex<Option<Child>>,
    pub balancer_log: Arc<Mutex<String>>,
}

impl Fleet {
    pub fn start(options: FleetOptions) -> Fleet {
        assert!(
            Command::new("haproxy").arg("-v").output().is_ok(),
            "`haproxy` (Debian package haproxy) is required"
        );
        let name = format!(
            "esf{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut fleet = Fleet {
            name: name.clone(),
            namespaces: Mutex::new(Vec::new()),
            dir: tempfile::tempdir().unwrap(),
            hosts: Vec::new(),
            balancer: Mutex::new(None),
            balancer_log: Arc::default(),
        };
        let lan = fleet.namespace("lan");
        ip(&["-n", &lan, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &lan, "link", "set", "br0", "up"]);
        fleet.attach("lb", "10.99.0.2");
        fleet.attach("cl", "10.99.0.100");
        std::fs::write(fleet.dir.path().join("token"), TOKEN).unwrap();
        for n in 1..=options.servers {
            let ns = fleet.attach(&format!("h{n}"), &format!("10.99.0.{}", 10 + n));
            fleet.hosts.push(Host {
                id: format!("h{n}"),
                ns,
                ip: format!("10.99.0.{}", 10 + n),
                child: Mutex::new(None),
                log: Arc::default(),
            });
        }
        for host in &fleet.hosts {
            fleet.start_server(host, &options.server_args);
        }
        std::fs::write(fleet.config_path(), fleet.haproxy_config()).unwrap();
        fleet.start_balancer();
        fleet
    }

    fn namespace(&self, role: &str) -> String {
        let ns = format!("{}-{role}", self.name);
        ip(&["netns", "add", &ns]);
        self.namespaces.lock().unwrap().push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// A namespace for `role` with `eth0` on the bridge at `address`.
    fn attach(&self, role: &str, address: &str) -> String {
        let ns = self.namespace(role);
        let lan = format!("{}-lan", self.name);
        let port = format!("p-{role}");
        ip(&[
            "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns", &lan,
        ]);
        ip(&["-n", &lan, "link", "set", &port, "master", "br0", "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ns
    }

    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.name)
    }

    fn start_server(&self, host: &Host, extra: &[String]) {
        let token = self.dir.path().join("token");
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &host.ns, crate::common::server_bin()])
            .args(["--listen", &format!("ws://{}:{SERVER_PORT}", host.ip)])
            .args(["--server-id", &host.id, "--path-prefix", PREFIX])
            .args(["--auth-token-file", token.to_str().unwrap()])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start exec-server in its namespace");
        let stderr = child.stderr.take().unwrap();
        let (banner_tx, banner) = mpsc::channel();
        let log = host.log.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = banner_tx.send(line);
            }
            for line in lines.map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let line = banner
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{} printed no banner", host.id));
        assert!(line.contains("listening on ws://"), "{}: {line}", host.id);
        *host.child.lock().unwrap() = Some(child);
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("haproxy.cfg")
    }

    pub fn admin_socket(&self) -> PathBuf {
        self.dir.path().join("admin.sock")
    }

    /// The balancer's configuration: the layout of deploy/haproxy/haproxy.cfg
    /// with this fleet's addresses and short timeouts.
    fn haproxy_config(&self) -> String {
        let servers: String = self
            .hosts
            .iter()
            .map(|h| format!("    server {} {}:{SERVER_PORT}\n", h.id, h.ip))
            .collect();
        let owners: String = self
            .hosts
            .iter()
            .map(|h| {
                format!(
                    "    use-server {0} if {{ var(txn.owner) -m str {0} }}\n",
                    h.id
                )
            })
            .collect();
        let known: Vec<&str> = self.hosts.iter().map(|h| h.id.as_str()).collect();
        format!(
            "global
    maxconn 4096
    stats socket {socket} mode 600 level admin

defaults
    mode http
    timeout connect 500ms
    timeout client 1s
    timeout server 1s
    timeout http-request 2s
    timeout tunnel {tunnel}ms
    timeout client-fin 1s
    retries 1

frontend exec
    bind {balancer}
    acl routed path_reg ^{prefix}/[A-Za-z0-9._-]+/?$
    http-request set-var(txn.owner) path,field(3,/) if routed
    use_backend owners if routed
    default_backend ready

backend ready
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    option redispatch 1
    retry-on conn-failure empty-response 503
    default-server check inter 200ms fall 1 rise 1
{servers}
backend owners
    http-request return status 404 content-type text/plain string \"unknown server id\" unless {{ var(txn.owner) -m str {known} }}
{owners}{servers}",
            socket = self.admin_socket().display(),
            tunnel = TUNNEL_TIMEOUT.as_millis(),
            balancer = BALANCER,
            prefix = PREFIX,
            known = known.join(" "),
        )
    }

    /// Starts HAProxy (again, after [`kill_balancer`](Self::kill_balancer))
    /// and waits until it answers on its admin socket.
    pub fn start_balancer(&self) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns("lb"), "haproxy", "-db", "-f"])
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start haproxy");
        let stderr = child.stderr.take().unwrap();
        let log = self.balancer_log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let _ = std::fs::remove_file(self.admin_socket());
        *self.balancer.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.admin("show info").is_none() {
            if let Some(status) = self
                .balancer
                .lock()
                .unwrap()
                .as_mut()
                .unwrap()
                .try_wait()
                .unwrap()
            {
                panic!(
                    "haproxy exited with {status}: {}",
                    self.balancer_log.lock().unwrap()
                );
            }
            assert!(Instant::now() < deadline, "haproxy did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs HAProxy: every connection through it drops.
    pub fn kill_balancer(&self) {
        if let Some(mut child) = self.balancer.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One command on HAProxy's admin socket; `None` when it is not up.
    pub fn admin(&self, command: &str) -> Option<String> {
        let mut socket = UnixStream::connect(self.admin_socket()).ok()?;
        socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        socket.write_all(format!("{command}\n").as_bytes()).ok()?;
        let mut answer = String::new();
        socket.read_to_string(&mut answer).ok()?;
        Some(answer)
    }

    /// Whether HAProxy considers `server` of `backend` up (operational
    /// state 2 in `show servers state`).
    pub fn balancer_sees_up(&self, backend: &str, server: &str) -> Option<bool> {
        let state = self.admin(&format!("show servers state {backend}"))?;
        state
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|fields| fields.len() > 5 && fields[1] == backend && fields[3] == server)
            .map(|fields| fields[5] == "2")
    }

    /// Waits (bounded) until HAProxy's view of `server` in `backend` is `up`.
    pub fn wait_balancer_sees(&self, backend: &str, server: &str, up: bool, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.balancer_sees_up(backend, server) != Some(up) {
            assert!(
                Instant::now() < deadline,
                "haproxy never saw {backend}/{server} up={up}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn host(&self, id: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.id == id)
            .unwrap_or_else(|| panic!("no host {id}"))
    }

    /// The balancer URL for new sessions.
    pub fn pool_url(&self) -> String {
        format!("ws://{BALANCER}{PREFIX}/")
    }

    /// Runs `body` on a thread inside the client namespace, on a runtime of
    /// its own (its worker threads inherit the namespace). Panics propagate.
    pub fn client<T: Send>(&self, body: impl AsyncFnOnce() -> T + Send) -> T {
        let ns = self.ns("cl");
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    enter_netns(&ns);
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(body())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

/// Moves the calling thread into a named network namespace.
fn enter_netns(name: &str) {
    let file = std::fs::File::open(format!("/run/netns/{name}"))
        .unwrap_or_else(|e| panic!("open netns {name}: {e}"));
    // SAFETY: setns(2) with a namespace fd we just opened; CLONE_NEWNET
    // changes only the calling thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {name}: {}", std::io::Error::last_os_error());
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.kill_balancer();
        for host in &self.hosts {
            if let Some(mut child) = host.child.lock().unwrap().take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for ns in self.namespaces.lock().unwrap().drain(..).rev() {
            // Whatever still runs inside (a server's children) dies first,
            // then the namespace goes.
            if let Ok(output) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        // SAFETY: kill(2) on a pid listed in our namespace.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}
