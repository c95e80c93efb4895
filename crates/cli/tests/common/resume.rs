//! The resume test kit: a real server behind a [`Proxy`], a client that
//! reconnects through it, producers of numbered lines and the [`Ledger`]
//! that accounts for every byte a process handle receives.
//!
//! Every producer prints fixed-width numbered lines (`%09d\n`), so the
//! ledger can tell from a chunk where it belongs in the stream and sort
//! every byte into: delivered once, reported missing by a `Gap` of exactly
//! the right size, silently lost, or repeated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use exec_server_client::{
    ExecServerClient, ProcessEvent, ReconnectPolicy, RemoteProcess, WebSocketConnectArgs,
};
use exec_server_protocol::process::{OnDisconnect, ProcessStream, StartParams};

use super::WsServer;
use super::proxy::Proxy;

/// Bytes per printed line: nine digits and a newline.
pub const LINE: u64 = 10;
/// Longest wait for one event before the test calls the stream stuck.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `chunk` is what the producers print at stream offset `offset`.
/// (Formats digits by hand: this runs over hundreds of MB in a debug build.)
pub fn matches_at(offset: u64, chunk: &[u8]) -> bool {
    let mut line = [0u8; LINE as usize];
    let mut number = offset / LINE + 1;
    let mut skip = (offset % LINE) as usize;
    let mut rest = chunk;
    while !rest.is_empty() {
        let mut n = number;
        for digit in line[..9].iter_mut().rev() {
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
        }
        line[9] = b'\n';
        let take = (LINE as usize - skip).min(rest.len());
        if rest[..take] != line[skip..skip + take] {
            return false;
        }
        rest = &rest[take..];
        skip = 0;
        number += 1;
    }
    true
}

/// Where a chunk starts in the stream, read from the first whole line in it.
pub fn locate(chunk: &[u8]) -> Option<u64> {
    let parse = |line: &[u8]| -> Option<u64> {
        if line.len() != LINE as usize || line[9] != b'\n' {
            return None;
        }
        std::str::from_utf8(&line[..9]).ok()?.parse().ok()
    };
    let first_newline = chunk.iter().position(|&b| b == b'\n')?;
    if first_newline == 9
        && let Some(n) = parse(&chunk[..10])
    {
        return Some((n - 1) * LINE);
    }
    let start = first_newline + 1;
    let n = parse(chunk.get(start..start + LINE as usize)?)?;
    ((n - 1) * LINE).checked_sub(start as u64)
}

/// How the stream of one handle ended.
#[derive(Debug, PartialEq)]
pub enum End {
    Running,
    Exited(i32),
    /// `next_event()` returned `None` without an exit.
    Nothing,
    /// The handle lost track of the process, with this reason.
    Lost(String),
    /// No event for [`EVENT_TIMEOUT`].
    Stuck,
}

/// Accounts for every byte of a numbered-lines stream.
#[derive(Debug)]
pub struct Ledger {
    /// Bytes the producer prints in all.
    pub total: u64,
    /// Stream offset up to which every byte was delivered or reported.
    pub position: u64,
    /// Reported by `Gap` events since the last chunk.
    pub pending_gap: u64,
    /// Chunks after a gap whose place is not known yet.
    pub unplaced: Vec<Vec<u8>>,
    pub delivered: u64,
    /// Bytes missing with no `Gap` at all.
    pub silent_loss: u64,
    /// Bytes delivered a second time.
    pub repeated: u64,
    /// Sum of every `Gap`.
    pub gap_reported: u64,
    /// Bytes that were in fact missing where a `Gap` was reported.
    pub gap_missing: u64,
    /// Chunks whose bytes differ from what the producer printed there.
    pub corrupt: u64,
    pub gaps: u64,
    pub end: End,
}

impl Ledger {
    pub fn new(total: u64) -> Self {
        Ledger {
            total,
            position: 0,
            pending_gap: 0,
            unplaced: Vec::new(),
            delivered: 0,
            silent_loss: 0,
            repeated: 0,
            gap_reported: 0,
            gap_missing: 0,
            corrupt: 0,
            gaps: 0,
            end: End::Running,
        }
    }

    /// A chunk too short to show where it belongs waits for the next one
    /// that does: chunks are contiguous unless a `Gap` came between.
    fn output(&mut self, chunk: &[u8]) {
        match locate(chunk) {
            None if self.unplaced.is_empty() && self.pending_gap == 0 => {
                // Right after what came before.
                self.place(self.position, chunk);
            }
            None => self.unplaced.push(chunk.to_vec()),
            Some(start) => {
                self.place_unplaced(start);
                self.place(start, chunk);
            }
        }
    }

    /// Places the waiting chunks so that they end at `end`.
    fn place_unplaced(&mut self, end: u64) {
        let waiting: u64 = self.unplaced.iter().map(|c| c.len() as u64).sum();
        let mut at = end.saturating_sub(waiting);
        for chunk in std::mem::take(&mut self.unplaced) {
            self.place(at, &chunk);
            at += chunk.len() as u64;
        }
    }

    fn place(&mut self, start: u64, chunk: &[u8]) {
        if std::env::var_os("LEDGER_TRACE").is_some() {
            eprintln!(
                "chunk at {start} +{} (position {}, gap {})",
                chunk.len(),
                self.position,
                self.pending_gap
            );
        }
        self.account(start);
        if start < self.position {
            self.repeated += (self.position - start).min(chunk.len() as u64);
        }
        if !matches_at(start, chunk) {
            self.corrupt += 1;
        }
        self.delivered += chunk.len() as u64;
        self.position = self.position.max(start + chunk.len() as u64);
    }

    /// Settles the gap before stream offset `start`.
    fn account(&mut self, start: u64) {
        let missing = start.saturating_sub(self.position);
        if self.pending_gap > 0 {
            self.gap_reported += self.pending_gap;
            self.gap_missing += missing;
        } else {
            self.silent_loss += missing;
        }
        self.pending_gap = 0;
    }

    fn gap(&mut self, bytes: u64) {
        if !self.unplaced.is_empty() {
            // Two gaps around unlocatable chunks: take the first as exact.
            let waiting: u64 = self.unplaced.iter().map(|c| c.len() as u64).sum();
            self.place_unplaced(self.position + self.pending_gap + waiting);
        }
        self.gaps += 1;
        self.pending_gap += bytes;
    }

    fn exited(&mut self, code: i32) {
        self.place_unplaced(self.total);
        // Whatever is still missing at the exit must have been reported.
        self.account(self.total);
        self.position = self.position.max(self.total);
        self.end = End::Exited(code);
    }

    /// Applies one event; false when the stream ended.
    pub fn observe(&mut self, event: Option<ProcessEvent>) -> bool {
        match event {
            Some(ProcessEvent::Output { stream, chunk, .. }) => {
                assert_eq!(stream, ProcessStream::Stdout);
                self.output(&chunk);
            }
            Some(ProcessEvent::Gap {
                stream,
                dropped_bytes,
            }) => {
                assert_eq!(stream, ProcessStream::Stdout);
                self.gap(dropped_bytes);
            }
            Some(ProcessEvent::Lost { reason }) => {
                self.end = End::Lost(reason);
                return false;
            }
            Some(ProcessEvent::Exited { exit_code, .. }) => self.exited(exit_code),
            Some(ProcessEvent::Closed) => return false,
            None => {
                if self.end == End::Running {
                    self.end = End::Nothing;
                }
                return false;
            }
        }
        true
    }

    /// The promise: exact accounting and an exit at the end.
    pub fn assert_exact(&self) {
        eprintln!("{self:?}");
        assert_eq!(
            self.end,
            End::Exited(0),
            "the stream must end with the exit"
        );
        assert_eq!(self.silent_loss, 0, "bytes lost without a Gap");
        assert_eq!(self.repeated, 0, "bytes delivered twice");
        assert_eq!(self.corrupt, 0, "chunks that differ from the output");
        assert_eq!(
            self.gap_reported, self.gap_missing,
            "Gap counts must be exactly what is missing"
        );
        assert_eq!(
            self.delivered + self.gap_reported,
            self.total,
            "every byte delivered or reported"
        );
    }
}

/// A real server behind a proxy, and a client that reconnects through it.
pub struct Setup {
    pub _server: WsServer,
    pub proxy: Proxy,
    pub client: ExecServerClient,
    pub dir: tempfile::TempDir,
}

impl Setup {
    pub async fn start(server_args: &[&str]) -> Setup {
        let server = WsServer::start(server_args).await;
        let target = server.url.trim_start_matches("ws://").parse().unwrap();
        let proxy = Proxy::start(target).await;
        let mut args = WebSocketConnectArgs::new(&proxy.url);
        // Patient: tests keep the client away for seconds on purpose.
        args.reconnect = Some(ReconnectPolicy {
            attempts: 3000,
            delay: Duration::from_millis(20),
            give_up_after: Duration::from_secs(120),
            ..Default::default()
        });
        let client = ExecServerClient::connect_websocket(args).await.unwrap();
        Setup {
            _server: server,
            proxy,
            client,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A marker file path in the test's directory.
    pub fn marker(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `sh -c script`, detached so it survives the cuts.
    pub async fn spawn(&self, script: &str) -> RemoteProcess {
        self.client
            .start(StartParams {
                argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
                cwd: "/".into(),
                env: [("PATH".to_string(), "/usr/bin:/bin".to_string())].into(),
                on_disconnect: Some(OnDisconnect::Detach),
                detach_ttl_ms: Some(60_000),
                ..Default::default()
            })
            .await
            .unwrap()
    }

    /// A process that prints numbered lines `1..=first`, which the client
    /// reads; then the connection is cut and, while the client is away,
    /// the process prints the rest up to `total` and runs `then` (e.g. a
    /// `sleep` that keeps it alive). Returns once all is written, with the
    /// client still away: the caller arms cuts and calls [`come_back`].
    pub async fn written_while_away(
        &self,
        first: u64,
        total: u64,
        then: &str,
    ) -> (RemoteProcess, Ledger) {
        let go = self.marker("go");
        let written = self.marker("written");
        let script = format!(
            "{}; while [ ! -e {go} ]; do sleep 0.01; done; {}; touch {written}; {then}",
            numbered(1, first),
            numbered(first + 1, total),
            go = go.display(),
            written = written.display()
        );
        let mut process = self.spawn(&script).await;
        let mut ledger = Ledger::new(total * LINE);
        while ledger.delivered < first * LINE {
            assert!(next(&mut process, &mut ledger).await);
        }
        self.cut_and_pause();
        std::fs::write(&go, b"").unwrap();
        wait_for_file(&written).await;
        (process, ledger)
    }

    /// Cuts the connection and keeps the client away until [`come_back`].
    pub fn cut_and_pause(&self) {
        self.proxy.pause();
        self.proxy.cut();
    }

    pub fn come_back(&self) {
        self.proxy.unpause();
    }
}

pub async fn wait_for_file(path: &Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next event, `None` at the end, or the ledger marks the stream stuck.
pub async fn next(process: &mut RemoteProcess, ledger: &mut Ledger) -> bool {
    match tokio::time::timeout(EVENT_TIMEOUT, process.next_event()).await {
        Ok(event) => ledger.observe(event),
        Err(_) => {
            ledger.end = End::Stuck;
            false
        }
    }
}

/// How fast a test reads a handle.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// As fast as events come.
    Fast,
    /// About this many bytes per millisecond (a 1 ms nap after each such
    /// amount), so that backpressure reaches the server.
    BytesPerMs(u64),
}

/// Naps to keep a reader at its [`Pace`].
struct Pacer {
    pace: Pace,
    since_nap: u64,
}

impl Pacer {
    fn new(pace: Pace) -> Self {
        Pacer { pace, since_nap: 0 }
    }

    async fn after(&mut self, ledger: &Ledger, before: u64) {
        let Pace::BytesPerMs(rate) = self.pace else {
            return;
        };
        self.since_nap += ledger.delivered - before;
        if self.since_nap >= rate {
            self.since_nap = 0;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Reads the rest of the stream at `pace`.
pub async fn drain(process: &mut RemoteProcess, ledger: &mut Ledger, pace: Pace) {
    let mut pacer = Pacer::new(pace);
    loop {
        let before = ledger.delivered;
        if !next(process, ledger).await {
            return;
        }
        pacer.after(ledger, before).await;
    }
}

/// A shell command printing lines `first..=last` at full speed (awk is
/// several times faster than `seq -f` here).
pub fn numbered(first: u64, last: u64) -> String {
    format!("awk 'BEGIN {{ for (i = {first}; i <= {last}; i++) printf(\"%09d\\n\", i) }}'")
}

/// A producer printing lines `1..=bursts*(burst+trickle)`: each round a
/// burst of `burst` lines written at once, then `trickle` lines one write
/// each, `pause_us` microseconds apart.
pub fn bursty(bursts: u64, burst: u64, trickle: u64, pause_us: u64) -> (String, u64) {
    let script = format!(
        "perl -e '$|=1; my $n=1; for my $b (1..{bursts}) {{ \
             print join(\"\", map {{ sprintf(\"%09d\\n\", $_) }} $n..$n+{burst}-1); $n+={burst}; \
             for my $t (1..{trickle}) {{ printf(\"%09d\\n\", $n++); select(undef,undef,undef,{pause}) }} }}'",
        pause = pause_us as f64 / 1e6
    );
    (script, bursts * (burst + trickle) * LINE)
}

/// Reads live output at `pace`, cutting the connection each time another
/// `every` bytes were delivered, `cuts` times; then reads to the end.
pub async fn cut_every(
    setup: &Setup,
    process: &mut RemoteProcess,
    ledger: &mut Ledger,
    every: u64,
    cuts: u64,
    pace: Pace,
) {
    let mut pacer = Pacer::new(pace);
    let mut done = 0;
    loop {
        let before = ledger.delivered;
        if !next(process, ledger).await {
            break;
        }
        if done < cuts && ledger.delivered >= (done + 1) * every {
            setup.proxy.cut();
            done += 1;
        }
        pacer.after(ledger, before).await;
    }
    eprintln!("cuts: {done}, connections: {}", setup.proxy.accepted());
}
