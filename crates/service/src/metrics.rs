//! Metrics for operators: counters and histograms kept by the server and
//! served as Prometheus text at `GET /metrics` on the websocket listener
//! (docs/DEPLOY.md, "Metrics and logs", lists every metric).
//!
//! Counting is a relaxed atomic add on the paths it measures (a spawn, a
//! request, a transport write); gauges that the server already knows
//! (running processes, detached processes, sessions) are read when a scrape
//! asks, so they cannot drift from the truth. Label values come from fixed
//! sets only (method names of the method table, a transport's name), so a
//! client cannot grow the number of series.

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use exec_server_protocol::methods::{Method, MethodVisitor, visit_methods};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::Server;

/// The label of a request: its method when the method table names it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

/// The label of a transport-level counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

/// Which transport a connection came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Stdio,
    WebSocket,
}

impl Transport {
    fn label(self) -> TransportLabel {
        let transport = match self {
            Transport::Stdio => "stdio",
            Transport::WebSocket => "websocket",
        };
        TransportLabel { transport }
    }
}

/// The label value of requests whose method is not in the method table.
const UNKNOWN_METHOD: &str = "unknown";

/// Everything the server counts. One per [`Server`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections_total: Family<TransportLabel, Counter>,
    connections_open: Family<TransportLabel, Gauge>,
    spawns_total: Counter,
    spawn_failures_total: Counter,
    spawn_seconds: Histogram,
    sent_bytes: Family<TransportLabel, Counter>,
    received_bytes: Family<TransportLabel, Counter>,
    processes_running: Gauge<i64, AtomicI64>,
    processes_detached: Gauge<i64, AtomicI64>,
    sessions: Gauge<i64, AtomicI64>,
    /// Each method's series (and `unknown`'s), created up front: a
    /// request costs one map lookup, never a family's lock, and only
    /// method-table names can become labels.
    methods: HashMap<&'static str, MethodSeries>,
    unknown: MethodSeries,
}

/// The series of one method label.
#[derive(Debug)]
struct MethodSeries {
    requests: Counter,
    errors: Counter,
    duration: Histogram,
}

impl MethodSeries {
    fn new(
        method: &'static str,
        requests: &Family<MethodLabel, Counter>,
        errors: &Family<MethodLabel, Counter>,
        durations: &Family<MethodLabel, Histogram>,
    ) -> Self {
        let label = MethodLabel { method };
        MethodSeries {
            requests: requests.get_or_create(&label).clone(),
            errors: errors.get_or_create(&label).clone(),
            duration: durations.get_or_create(&label).clone(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("exec_server");
        let connections_total = Family::<TransportLabel, Counter>::default();
        registry.register(
            "connections",
            "Connections accepted (after the websocket upgrade), by transport",
            connections_total.clone(),
        );
        let connections_open = Family::<TransportLabel, Gauge>::default();
        registry.register(
            "open_connections",
            "Connections open now, by transport",
            connections_open.clone(),
        );
        let spawns_total = Counter::default();
        registry.register(
            "spawns",
            "Processes started (process/start and v0 command/exec)",
            spawns_total.clone(),
        );
        let spawn_failures_total = Counter::default();
        registry.register(
            "spawn_failures",
            "Process starts that failed (no such program, bad directory, sandbox refused...)",
            spawn_failures_total.clone(),
        );
        // 100 µs to ~3.3 s: a plain fork+exec is around a millisecond, a
        // sandboxed one a few.
        let spawn_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register_with_unit(
            "spawn_duration",
            "Time from a start request's spawn to a running child",
            Unit::Seconds,
            spawn_seconds.clone(),
        );
        let requests_total = Family::<MethodLabel, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by method",
            requests_total.clone(),
        );
        let request_errors_total = Family::<MethodLabel, Counter>::default();
        registry.register(
            "request_errors",
            "Requests answered with an error, by method",
            request_errors_total.clone(),
        );
        let request_seconds = Family::<MethodLabel, Histogram>::new_with_constructor(|| {
            // 50 µs to ~27 min: long polls and waits are requests too.
            Histogram::new(exponential_buckets(0.00005, 4.0, 16))
        });
        registry.register_with_unit(
            "request_duration",
            "Time from a request's arrival to its answer, by method (waits and long polls included)",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let sent_bytes = Family::<TransportLabel, Counter>::default();
        registry.register_with_unit(
            "sent",
            "Bytes written to clients, by transport",
            Unit::Bytes,
            sent_bytes.clone(),
        );
        let received_bytes = Family::<TransportLabel, Counter>::default();
        registry.register_with_unit(
            "received",
            "Bytes of messages received from clients, by transport",
            Unit::Bytes,
            received_bytes.clone(),
        );
        let processes_running = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "running_processes",
            "Processes running now, detached ones included",
            processes_running.clone(),
        );
        let processes_detached = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "detached_processes",
            "Processes running now in sessions without a connection",
            processes_detached.clone(),
        );
        let sessions = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "sessions",
            "Sessions alive now, attached or detached",
            sessions.clone(),
        );
        let series = |method| {
            MethodSeries::new(
                method,
                &requests_total,
                &request_errors_total,
                &request_seconds,
            )
        };
        let methods = method_names()
            .into_iter()
            .map(|method| (method, series(method)))
            .collect();
        let unknown = series(UNKNOWN_METHOD);
        Metrics {
            registry,
            connections_total,
            connections_open,
            spawns_total,
            spawn_failures_total,
            spawn_seconds,
            sent_bytes,
            received_bytes,
            processes_running,
            processes_detached,
            sessions,
            methods,
            unknown,
        }
    }

    /// Counts a connection as open until the returned guard drops.
    pub fn connection(&self, transport: Transport) -> OpenConnection {
        let label = transport.label();
        self.connections_total.get_or_create(&label).inc();
        let open = self.connections_open.get_or_create(&label).clone();
        open.inc();
        OpenConnection(open)
    }

    /// Records a spawn attempt that took `elapsed`.
    pub fn spawned(&self, elapsed: Duration, succeeded: bool) {
        self.spawns_total.inc();
        if !succeeded {
            self.spawn_failures_total.inc();
        }
        self.spawn_seconds.observe(elapsed.as_secs_f64());
    }

    /// Records the answer to a request for `method` after `elapsed`.
    pub fn answered(&self, method: &str, elapsed: Duration, succeeded: bool) {
        let series = self.series(method);
        series.requests.inc();
        if !succeeded {
            series.errors.inc();
        }
        series.duration.observe(elapsed.as_secs_f64());
    }

    /// The byte counters of one transport, for its reader and writer.
    pub fn traffic(&self, transport: Transport) -> Traffic {
        let label = transport.label();
        Traffic {
            sent: self.sent_bytes.get_or_create(&label).clone(),
            received: self.received_bytes.get_or_create(&label).clone(),
        }
    }

    fn series(&self, method: &str) -> &MethodSeries {
        self.methods.get(method).unwrap_or(&self.unknown)
    }
}

/// Bytes a transport moves, counted where it reads and writes them.
#[derive(Clone, Debug)]
pub struct Traffic {
    sent: Counter,
    received: Counter,
}

impl Traffic {
    pub(crate) fn sent(&self, bytes: usize) {
        self.sent.inc_by(bytes as u64);
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.received.inc_by(bytes as u64);
    }
}

/// Keeps a connection counted as open.
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The Prometheus text exposition of `server`'s metrics, with the gauges
/// read from the server's state now.
pub fn render(server: &Server) -> String {
    let metrics = server.metrics();
    let sessions = server.sessions().all();
    let detached: usize = sessions
        .iter()
        .filter(|session| !session.attached())
        .map(|session| session.running_count())
        .sum();
    metrics.sessions.set(gauge_value(sessions.len()));
    metrics.processes_detached.set(gauge_value(detached));
    metrics
        .processes_running
        .set(gauge_value(server.running_processes()));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &metrics.registry);
    text
}

fn gauge_value(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Every method name of the method table.
fn method_names() -> Vec<&'static str> {
    struct Names(Vec<&'static str>);
    impl MethodVisitor for Names {
        fn visit<M: Method>(&mut self) {
            self.0.push(M::NAME);
        }
    }
    let mut names = Names(Vec::new());
    visit_methods(&mut names);
    names.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_outside_the_table_is_one_label() {
        let metrics = Metrics::new();
        metrics.answered("process/start", Duration::from_millis(1), true);
        metrics.answered("initialize", Duration::from_millis(1), false);
        metrics.answered("no/such-method", Duration::from_millis(1), false);
        metrics.answered(&"x".repeat(10_000), Duration::from_millis(1), false);
        let mut text = String::new();
        encode(&mut text, &metrics.registry).unwrap();
        let line = |name: &str| {
            text.lines()
                .find(|line| line.starts_with(name))
                .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
                .to_string()
        };
        assert!(line(r#"exec_server_requests_total{method="process/start"}"#).ends_with(" 1"));
        assert!(line(r#"exec_server_request_errors_total{method="initialize"}"#).ends_with(" 1"));
        assert!(line(r#"exec_server_requests_total{method="unknown"}"#).ends_with(" 2"));
        assert!(!text.contains("no/such-method") && !text.contains("xxxx"));
    }
}
