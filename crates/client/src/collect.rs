//! The yield-window collector for tool layers that hand a process's output
//! to a language model (the MCP front-end uses it; so does
//! [`RemoteProcess::collect`](crate::RemoteProcess::collect)).
//!
//! [`collect`] reads a process's retained output from a cursor
//! (`process/read` long polls), so the process never blocks on output
//! between calls and the next call continues where this one stopped. It
//! returns at the first of ([`Stopped`]):
//! - the exit, once all output before it was read;
//! - the process waits for input (`untilInputWait`: the server sees it
//!   blocked reading its terminal or stdin pipe) — a shell or REPL step
//!   returns as soon as the prompt is back;
//! - output matches a regular expression (the server's `process/wait`
//!   `match`);
//! - a quiet spell after some output (a fallback for programs whose input
//!   wait cannot be seen);
//! - the end of the window.
//!
//! Output is kept within ONE byte budget shared by all streams
//! ([`Collected::finish`]): each stream keeps its head and its tail
//! ([`Budgeted`]); at the end the budget is shared out (a small stream keeps
//! all of it, the others split the rest), cuts fall on line boundaries where
//! lines exist, and the first omitted byte's `seq` is kept so the omitted
//! range can be read again by cursor. By default terminal output is turned
//! into text ([`crate::terminal_text`]); a program drawing a full screen is
//! shown as the server's rendered screen. [`Render::Raw`] keeps the bytes.

use std::collections::VecDeque;
use std::time::Duration;

use exec_server_protocol::process::{ProcessStream, ReadParams, WaitParams, WaitReason};
use tokio::time::Instant;

use crate::process::ExitInfo;
use crate::terminal_text::TerminalText;
use crate::{ClientError, ExecServerClient};

/// Bytes asked for per `process/read`.
const READ_BYTES: u64 = 4 * 1024 * 1024;
/// How often, at most, the progress callback hears about a long wait.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// At most `budget` bytes of one stream: its head and its tail, the count
/// of bytes cut in between, and where the cut began (as a `seq`).
///
/// Bytes are kept exactly as pushed until [`shrink_to`](Self::shrink_to),
/// which fits them into a (possibly smaller) budget and moves the cuts to
/// line boundaries when that loses at most half of each part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budgeted {
    head: Vec<u8>,
    /// `(end offset, seq)` of each piece of the head.
    head_seqs: Vec<(usize, u64)>,
    tail: VecDeque<u8>,
    /// `(length, seq)` of each piece of the tail, oldest first.
    tail_seqs: VecDeque<(usize, u64)>,
    head_budget: usize,
    tail_budget: usize,
    omitted: u64,
    /// The seq of the output holding the first omitted byte.
    omitted_from: Option<u64>,
    /// The tail was cut to start at a line.
    tail_starts_line: bool,
    total: u64,
}

impl Budgeted {
    /// An empty budget of `budget` bytes (half head, half tail).
    pub fn new(budget: usize) -> Self {
        let head_budget = budget / 2;
        Budgeted {
            head: Vec::new(),
            head_seqs: Vec::new(),
            tail: VecDeque::new(),
            tail_seqs: VecDeque::new(),
            head_budget,
            tail_budget: budget - head_budget,
            omitted: 0,
            omitted_from: None,
            tail_starts_line: false,
            total: 0,
        }
    }

    /// Adds bytes whose origin is not tracked (seq 0).
    pub fn push(&mut self, bytes: &[u8]) {
        self.push_chunk(0, bytes);
    }

    /// Adds bytes that came with output `seq`: the head fills first, then
    /// the tail keeps the latest.
    pub fn push_chunk(&mut self, seq: u64, mut bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.total += bytes.len() as u64;
        if self.tail.is_empty() && self.head.len() < self.head_budget {
            let take = (self.head_budget - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            self.head_seqs.push((self.head.len(), seq));
            bytes = &bytes[take..];
        }
        if bytes.is_empty() {
            return;
        }
        self.tail.extend(bytes);
        self.tail_seqs.push_back((bytes.len(), seq));
        self.tail_starts_line = false;
        while self.tail.len() > self.tail_budget {
            let excess = self.tail.len() - self.tail_budget;
            let (len, seq) = self.tail_seqs.front_mut().expect("tail bytes have seqs");
            let evict = excess.min(*len);
            self.omitted_from.get_or_insert(*seq);
            *len -= evict;
            if *len == 0 {
                self.tail_seqs.pop_front();
            }
            self.tail.drain(..evict);
            self.omitted += evict as u64;
        }
    }

    /// Bytes cut from the middle.
    pub fn omitted(&self) -> u64 {
        self.omitted
    }

    /// The `seq` of the output chunk holding the first omitted byte: read
    /// from `afterSeq = seq - 1` to see the omitted range (as far as the
    /// server still retains it).
    pub fn omitted_from_seq(&self) -> Option<u64> {
        self.omitted_from
    }

    /// Bytes pushed in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes kept (head and tail).
    pub fn kept(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// True when nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.tail.is_empty()
    }

    /// Head and tail, with no marker between them.
    pub fn contents(&self) -> Vec<u8> {
        let mut out = self.head.clone();
        out.extend(self.tail.iter());
        out
    }

    /// Head and tail as text, with a line saying how much was cut.
    pub fn to_text(&self) -> String {
        let head = String::from_utf8_lossy(&self.head);
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        let tail = String::from_utf8_lossy(&tail);
        if self.omitted == 0 {
            return format!("{head}{tail}");
        }
        let newline = if head.is_empty() || head.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        format!(
            "{head}{newline}[... {} bytes omitted ...]\n{tail}",
            self.omitted
        )
    }

    /// Fits what is kept into `budget` bytes: the head keeps up to half,
    /// the tail the rest (either takes what the other does not need). A cut
    /// inside a line moves back to the line's start (head) or forward past
    /// its end (tail) unless that would lose more than half of the part;
    /// byte cuts never split a UTF-8 character.
    pub fn shrink_to(&mut self, budget: usize) {
        // Lay the kept bytes out as a first part, then (after a gap of
        // omitted bytes, if any) a last part.
        let mut first = Segmented::from_head(&self.head, &self.head_seqs);
        let mut last = Segmented::from_tail(&self.tail, &self.tail_seqs);
        let gap = self.omitted > 0;
        if !gap {
            first.append(last);
            last = Segmented::default();
            if first.bytes.len() <= budget {
                return;
            }
        }
        let (head, tail) = if gap {
            let t = last
                .bytes
                .len()
                .min(budget - (budget / 2).min(first.bytes.len()));
            let h = first.bytes.len().min(budget - t);
            let before_tail = match last.bytes.len().checked_sub(t + 1) {
                Some(i) => Some(last.bytes[i]),
                None if self.tail_starts_line => Some(b'\n'),
                None => None,
            };
            (first.prefix(h), last.suffix(t, before_tail))
        } else {
            let h = budget / 2;
            let t = budget - h;
            let n = first.bytes.len();
            let before_tail = n.checked_sub(t + 1).map(|i| first.bytes[i]);
            (first.prefix(h), first.suffix(t, before_tail))
        };
        let head = head.cut_at_line_end();
        let tail = tail.cut_at_line_start();
        if head.bytes.len() < first.bytes.len() {
            // The cut now starts inside the first part.
            self.omitted_from = first.seq_at(head.bytes.len());
        }
        let kept = (self.head.len() + self.tail.len()) as u64;
        self.omitted += kept - (head.bytes.len() + tail.bytes.len()) as u64;
        self.tail_starts_line = true;
        self.head_seqs = head.ends();
        self.head = head.bytes;
        self.tail_seqs = tail.lengths().into();
        self.tail = tail.bytes.into();
    }
}

/// Bytes with the seq of each piece, for cutting.
#[derive(Debug, Default)]
struct Segmented {
    bytes: Vec<u8>,
    /// `(start offset, seq)`, in order.
    starts: Vec<(usize, u64)>,
}

impl Segmented {
    fn from_head(head: &[u8], ends: &[(usize, u64)]) -> Self {
        let mut starts = Vec::with_capacity(ends.len());
        let mut start = 0;
        for &(end, seq) in ends {
            if end > start {
                starts.push((start, seq));
            }
            start = end;
        }
        Segmented {
            bytes: head.to_vec(),
            starts,
        }
    }

    fn from_tail(tail: &VecDeque<u8>, lengths: &VecDeque<(usize, u64)>) -> Self {
        let mut starts = Vec::with_capacity(lengths.len());
        let mut start = 0;
        for &(len, seq) in lengths {
            starts.push((start, seq));
            start += len;
        }
        Segmented {
            bytes: tail.iter().copied().collect(),
            starts,
        }
    }

    fn append(&mut self, other: Segmented) {
        let offset = self.bytes.len();
        self.starts
            .extend(other.starts.into_iter().map(|(s, seq)| (s + offset, seq)));
        self.bytes.extend(other.bytes);
    }

    fn seq_at(&self, offset: usize) -> Option<u64> {
        if offset >= self.bytes.len() {
            return None;
        }
        self.starts
            .iter()
            .rev()
            .find(|(start, _)| *start <= offset)
            .map(|(_, seq)| *seq)
    }

    fn prefix(&self, len: usize) -> Part {
        Part {
            bytes: self.bytes[..len].to_vec(),
            starts: self
                .starts
                .iter()
                .copied()
                .filter(|(s, _)| *s < len)
                .collect(),
            boundary: self.bytes.get(len).copied(),
        }
    }

    /// The last `len` bytes; `before` is the byte preceding them, if known.
    fn suffix(&self, len: usize, before: Option<u8>) -> Part {
        let from = self.bytes.len() - len;
        let mut starts: Vec<(usize, u64)> = Vec::new();
        if let Some(seq) = self.seq_at(from) {
            starts.push((0, seq));
        }
        starts.extend(
            self.starts
                .iter()
                .filter(|(s, _)| *s > from)
                .map(|(s, seq)| (s - from, *seq)),
        );
        Part {
            bytes: self.bytes[from..].to_vec(),
            starts,
            boundary: before,
        }
    }
}

/// A head or tail being cut.
struct Part {
    bytes: Vec<u8>,
    starts: Vec<(usize, u64)>,
    /// The byte just outside the part (after a head, before a tail), if known.
    boundary: Option<u8>,
}

impl Part {
    /// A head ending inside a line ends at the line's start instead, if
    /// that keeps at least half of it.
    fn cut_at_line_end(mut self) -> Part {
        let len = self.bytes.len();
        let ends_line = len == 0 || self.bytes[len - 1] == b'\n' || self.boundary == Some(b'\n');
        if ends_line {
            return self;
        }
        let keep = match self.bytes.iter().rposition(|&b| b == b'\n') {
            Some(i) if i + 1 >= len / 2 => i + 1,
            _ => utf8_floor(&self.bytes, len),
        };
        self.bytes.truncate(keep);
        self.starts.retain(|(s, _)| *s < keep);
        self
    }

    /// A tail starting inside a line starts after the line's end instead,
    /// if that keeps at least half of it.
    fn cut_at_line_start(mut self) -> Part {
        let len = self.bytes.len();
        let starts_line = len == 0 || self.boundary == Some(b'\n');
        if starts_line {
            return self;
        }
        let skip = match self.bytes.iter().position(|&b| b == b'\n') {
            Some(i) if i < len / 2 => i + 1,
            _ => utf8_ceil(&self.bytes, 0),
        };
        if skip == 0 {
            return self;
        }
        let seq_at_skip = self.seq_at(skip);
        self.bytes.drain(..skip);
        let mut starts: Vec<(usize, u64)> = self
            .starts
            .iter()
            .filter(|(s, _)| *s > skip)
            .map(|(s, seq)| (s - skip, *seq))
            .collect();
        if let Some(seq) = seq_at_skip {
            starts.insert(0, (0, seq));
        }
        self.starts = starts;
        self
    }

    fn seq_at(&self, offset: usize) -> Option<u64> {
        if offset >= self.bytes.len() {
            return None;
        }
        self.starts
            .iter()
            .rev()
            .find(|(s, _)| *s <= offset)
            .map(|(_, seq)| *seq)
    }

    fn ends(&self) -> Vec<(usize, u64)> {
        let mut ends = Vec::with_capacity(self.starts.len());
        for (i, &(_, seq)) in self.starts.iter().enumerate() {
            let end = self.starts.get(i + 1).map_or(self.bytes.len(), |s| s.0);
            ends.push((end, seq));
        }
        ends
    }

    fn lengths(&self) -> Vec<(usize, u64)> {
        let mut lengths = Vec::with_capacity(self.starts.len());
        for (i, &(start, seq)) in self.starts.iter().enumerate() {
            let end = self.starts.get(i + 1).map_or(self.bytes.len(), |s| s.0);
            lengths.push((end - start, seq));
        }
        lengths
    }
}

/// The largest offset ≤ `at` that does not split a UTF-8 character (bytes
/// that are not UTF-8 are cut anywhere).
fn utf8_floor(bytes: &[u8], at: usize) -> usize {
    let mut start = at;
    while start > 0 && at - start < 3 && bytes[start - 1] & 0xc0 == 0x80 {
        start -= 1;
    }
    let Some(&lead) = start.checked_sub(1).and_then(|i| bytes.get(i)) else {
        return at;
    };
    let need = match lead {
        0xf0.. => 4,
        0xe0.. => 3,
        0xc0.. => 2,
        _ => return at,
    };
    if at - (start - 1) < need {
        start - 1
    } else {
        at
    }
}

/// The smallest offset ≥ `at` that does not split a UTF-8 character.
fn utf8_ceil(bytes: &[u8], at: usize) -> usize {
    let mut i = at;
    while i < bytes.len() && i - at < 4 && bytes[i] & 0xc0 == 0x80 {
        i += 1;
    }
    if i - at >= 4 { at } else { i }
}

/// How output is handed to the reader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Render {
    /// Terminal escapes interpreted, carriage returns resolved, full-screen
    /// programs shown as their rendered screen.
    #[default]
    Text,
    /// The bytes as the program wrote them.
    Raw,
}

/// What to collect and when to stop.
#[derive(Clone, Debug)]
pub struct CollectOptions {
    /// Longest time to collect.
    pub window: Duration,
    /// One budget in bytes for all streams together.
    pub max_bytes: usize,
    /// Return this long after the last output, once there was some. A
    /// fallback for programs whose input wait cannot be detected.
    pub quiet: Option<Duration>,
    /// Return as soon as the process waits for input (server-side
    /// detection; ignored while waiting for `pattern`).
    pub until_input_wait: bool,
    /// Return when new output matches this regular expression (matched by
    /// the server against the raw bytes).
    pub pattern: Option<String>,
    /// Text or raw bytes.
    pub render: Render,
}

impl CollectOptions {
    /// Collect for up to `window` within `max_bytes`, returning early on an
    /// input wait, as text.
    pub fn new(window: Duration, max_bytes: usize) -> Self {
        CollectOptions {
            window,
            max_bytes,
            quiet: None,
            until_input_wait: true,
            pattern: None,
            render: Render::Text,
        }
    }
}

/// Why collection stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The process exited and all its output was read.
    Exited,
    /// The process is blocked reading its input.
    InputWait,
    /// Output matched the pattern.
    Matched,
    /// Output arrived, then nothing for the quiet window.
    Quiet,
    /// The window ended.
    Deadline,
}

impl Stopped {
    /// A short name for reports (`"input_wait"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Stopped::Exited => "exited",
            Stopped::InputWait => "input_wait",
            Stopped::Matched => "matched",
            Stopped::Quiet => "quiet",
            Stopped::Deadline => "deadline",
        }
    }
}

/// Where a process's collection continues, carried from call to call: the
/// output cursor and each stream's terminal state (an escape sequence split
/// between two calls, the alternate screen).
#[derive(Debug, Default)]
pub struct OutputCursor {
    /// Output up to this seq has been collected.
    pub seq: u64,
    texts: StreamTexts,
}

/// Each stream's terminal state.
#[derive(Debug, Default)]
struct StreamTexts {
    stdout: TerminalText,
    stderr: TerminalText,
    pty: TerminalText,
}

exec_server_protocol::index_by_stream!(StreamTexts => TerminalText);

impl OutputCursor {
    /// A cursor after `seq` (0: from the start).
    pub fn new(seq: u64) -> Self {
        OutputCursor {
            seq,
            ..Default::default()
        }
    }
}

/// A long collection's progress, for progress reports.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Time spent so far.
    pub elapsed: Duration,
    /// The whole window.
    pub window: Duration,
    /// Output bytes read so far.
    pub output_bytes: u64,
}

/// What one collection gathered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collected {
    /// stdout of a pipe-mode process.
    pub stdout: Budgeted,
    /// stderr of a pipe-mode process.
    pub stderr: Budgeted,
    /// The terminal stream of a PTY process.
    pub pty: Budgeted,
    /// A full-screen program's current screen, as the server renders it
    /// (text mode, PTY only); its rows are not in `pty`.
    pub screen: Option<Vec<String>>,
    /// Bytes the server's retention dropped before they were read.
    pub dropped_bytes: u64,
    /// Set when the process exited within the window.
    pub exit: Option<ExitInfo>,
    /// Why collection stopped.
    pub stopped: Stopped,
    /// Output bytes read, before rendering and budgets.
    pub output_bytes: u64,
    /// Where the next collection starts.
    pub cursor: u64,
}

impl Collected {
    fn new(max_bytes: usize, cursor: u64) -> Self {
        Collected {
            stdout: Budgeted::new(max_bytes),
            stderr: Budgeted::new(max_bytes),
            pty: Budgeted::new(max_bytes),
            screen: None,
            dropped_bytes: 0,
            exit: None,
            stopped: Stopped::Deadline,
            output_bytes: 0,
            cursor,
        }
    }

    /// True when the process is known to wait for input.
    pub fn waiting_for_input(&self) -> bool {
        self.stopped == Stopped::InputWait
    }

    /// Bytes not shown: cut from the middle, or dropped by retention.
    pub fn omitted_bytes(&self) -> u64 {
        self.stdout.omitted() + self.stderr.omitted() + self.pty.omitted() + self.dropped_bytes
    }

    /// The cursor to read the omitted middle again from (`afterSeq`), if
    /// something was cut.
    pub fn omitted_cursor(&self) -> Option<u64> {
        [&self.stdout, &self.stderr, &self.pty]
            .iter()
            .filter_map(|s| s.omitted_from_seq())
            .min()
            .map(|seq| seq.saturating_sub(1))
    }

    /// Shares `budget` out between the streams and cuts each to its share
    /// (see [`Budgeted::shrink_to`]): streams needing less than an equal
    /// share keep everything, the others split what is left.
    pub fn finish(&mut self, budget: usize) {
        let mut streams = [&mut self.stdout, &mut self.stderr, &mut self.pty];
        streams.sort_by_key(|s| s.kept());
        let mut left = budget;
        let count = streams.len();
        for (i, stream) in streams.into_iter().enumerate() {
            let share = stream.kept().min(left / (count - i));
            stream.shrink_to(share);
            left -= stream.kept();
        }
    }
}

/// Feeds one stream's output to its budget, through the terminal renderer
/// in text mode.
fn take_output(
    collected: &mut Collected,
    texts: &mut StreamTexts,
    render: Render,
    stream: ProcessStream,
    seq: u64,
    bytes: &[u8],
) {
    collected.output_bytes += bytes.len() as u64;
    match render {
        Render::Raw => collected[stream].push_chunk(seq, bytes),
        Render::Text => {
            let budget = &mut collected[stream];
            texts[stream].feed(seq, bytes, &mut |seq, line| {
                budget.push_chunk(seq, line.as_bytes())
            });
        }
    }
}

/// Collects the output of `process_id` after `cursor` as [`CollectOptions`]
/// say; `on_progress` hears about it about every [`PROGRESS_INTERVAL`].
/// Advances `cursor`.
pub async fn collect(
    client: &ExecServerClient,
    process_id: &str,
    cursor: &mut OutputCursor,
    options: &CollectOptions,
    mut on_progress: impl FnMut(Progress),
) -> Result<Collected, ClientError> {
    let started = Instant::now();
    let deadline = started + options.window;
    let mut collected = Collected::new(options.max_bytes, cursor.seq);
    let mut last_output: Option<Instant> = None;
    let mut next_progress = started + PROGRESS_INTERVAL;
    // The pattern is matched by the server, in a wait that runs beside the
    // reads for the whole window.
    let mut pattern_wait = options.pattern.as_ref().map(|pattern| {
        Box::pin(client.wait(WaitParams {
            process_id: process_id.to_string(),
            timeout_ms: Some(options.window.as_millis() as u64),
            pattern: Some(pattern.clone()),
            after_seq: Some(cursor.seq),
            ..Default::default()
        }))
    });
    let mut pattern_result: Option<WaitReason> = None;
    loop {
        let now = Instant::now();
        let mut until = deadline.min(next_progress);
        if let (Some(quiet), Some(last)) = (options.quiet, last_output)
            && options.pattern.is_none()
        {
            until = until.min(last + quiet);
        }
        let wait = if pattern_result.is_some() {
            Duration::ZERO
        } else {
            until.saturating_duration_since(now)
        };
        let read = client.read(ReadParams {
            process_id: process_id.to_string(),
            after_seq: cursor.seq,
            max_bytes: Some(READ_BYTES),
            wait_ms: Some(wait.as_millis() as u64),
            until_input_wait: options.until_input_wait && options.pattern.is_none(),
        });
        let response = match pattern_wait.as_mut() {
            Some(waiting) if pattern_result.is_none() => {
                tokio::select! {
                    response = read => response?,
                    waited = waiting => {
                        // The read in flight is dropped (the server answers
                        // it into the void); the next one does not wait.
                        pattern_result = Some(waited?.reason);
                        continue;
                    }
                }
            }
            _ => read.await?,
        };
        let got_output = !response.chunks.is_empty();
        for chunk in &response.chunks {
            take_output(
                &mut collected,
                &mut cursor.texts,
                options.render,
                chunk.stream,
                chunk.seq,
                &chunk.chunk,
            );
        }
        collected.dropped_bytes += response.dropped_bytes;
        cursor.seq = cursor.seq.max(response.next_seq);
        let now = Instant::now();
        if got_output {
            last_output = Some(now);
        }
        // Only an answer that reached the newest output makes an exit final
        // for us. Servers without `complete` say so by a `nextSeq` past the
        // last chunk.
        let caught_up = response.complete
            || response
                .chunks
                .last()
                .is_none_or(|c| response.next_seq > c.seq);
        if response.exited && caught_up {
            collected.exit = Some(exit_info(client, process_id, response.exit_code).await);
            collected.stopped = Stopped::Exited;
            break;
        }
        if !caught_up {
            continue;
        }
        if now >= next_progress {
            next_progress = now + PROGRESS_INTERVAL;
            on_progress(Progress {
                elapsed: now - started,
                window: options.window,
                output_bytes: collected.output_bytes,
            });
        }
        match pattern_result {
            Some(WaitReason::Matched) => {
                collected.stopped = Stopped::Matched;
                break;
            }
            Some(WaitReason::Exited) => continue, // Read on to the exit.
            Some(_) => {
                collected.stopped = Stopped::Deadline;
                break;
            }
            None => {}
        }
        if response.waiting_for_input == Some(true) {
            collected.stopped = Stopped::InputWait;
            break;
        }
        if now >= deadline {
            collected.stopped = Stopped::Deadline;
            break;
        }
        if let (Some(quiet), Some(last)) = (options.quiet, last_output)
            && options.pattern.is_none()
            && now >= last + quiet
        {
            collected.stopped = Stopped::Quiet;
            break;
        }
    }
    collected.cursor = cursor.seq;
    if options.render == Render::Text {
        for stream in [
            ProcessStream::Stdout,
            ProcessStream::Stderr,
            ProcessStream::Pty,
        ] {
            let budget = &mut collected[stream];
            cursor.texts[stream].finish(&mut |seq, line| budget.push_chunk(seq, line.as_bytes()));
        }
        if cursor.texts[ProcessStream::Pty].screen_mode() && collected.exit.is_none() {
            collected.screen = client
                .snapshot(process_id)
                .await
                .ok()
                .and_then(|snapshot| snapshot.screen)
                .map(trim_screen);
        }
    }
    collected.finish(options.max_bytes);
    Ok(collected)
}

/// The screen without its trailing blank rows.
fn trim_screen(mut rows: Vec<String>) -> Vec<String> {
    while rows.last().is_some_and(|row| row.trim().is_empty()) {
        rows.pop();
    }
    rows
}

/// How the process ended: a zero-length wait reports the signal too.
async fn exit_info(client: &ExecServerClient, process_id: &str, code: Option<i32>) -> ExitInfo {
    let waited = client
        .wait(WaitParams {
            process_id: process_id.to_string(),
            timeout_ms: Some(0),
            ..Default::default()
        })
        .await;
    match waited {
        Ok(wait) if wait.exited => ExitInfo {
            exit_code: wait.exit_code.unwrap_or(-1),
            signal: wait.signal,
            timed_out: wait.timed_out,
        },
        _ => ExitInfo {
            exit_code: code.unwrap_or(-1),
            ..ExitInfo::default()
        },
    }
}

exec_server_protocol::index_by_stream!(Collected => Budgeted);

#[cfg(test)]
mod tests {
    use super::*;

    fn budgeted(budget: usize, pieces: &[&[u8]]) -> Budgeted {
        let mut b = Budgeted::new(budget);
        for (i, piece) in pieces.iter().enumerate() {
            b.push_chunk(i as u64 + 1, piece);
        }
        b
    }

    #[test]
    fn under_budget_everything_is_kept() {
        let mut b = budgeted(10, &[b"hello", b"!"]);
        b.shrink_to(10);
        assert_eq!(b.contents(), b"hello!");
        assert_eq!(b.omitted(), 0);
        assert_eq!(b.to_text(), "hello!");
        assert_eq!(b.omitted_from_seq(), None);
    }

    #[test]
    fn over_budget_the_head_and_the_tail_survive() {
        let b = budgeted(8, &[b"abc", b"defghij", b"klmnop", b"qr"]);
        assert_eq!(b.contents(), b"abcdopqr");
        assert_eq!(b.omitted(), 18 - 8);
        assert_eq!(b.to_text(), "abcd\n[... 10 bytes omitted ...]\nopqr");
        assert_eq!(
            b.omitted_from_seq(),
            Some(2),
            "the first cut byte is `e`, in piece 2"
        );
    }

    #[test]
    fn a_zero_budget_counts_everything_as_omitted() {
        let mut b = Budgeted::new(0);
        b.push(b"xyz");
        b.shrink_to(0);
        assert!(b.is_empty());
        assert_eq!(b.omitted(), 3);
    }

    #[test]
    fn cuts_move_to_line_boundaries() {
        let lines: Vec<String> = (1..=100).map(|i| format!("line {i}\n")).collect();
        let mut b = Budgeted::new(100);
        for (i, line) in lines.iter().enumerate() {
            b.push_chunk(i as u64 + 1, line.as_bytes());
        }
        b.shrink_to(100);
        let text = String::from_utf8(b.contents()).unwrap();
        assert!(b.kept() <= 100);
        let shown = b.kept() as u64;
        assert_eq!(b.omitted(), lines.concat().len() as u64 - shown);
        let (head, tail) = b
            .to_text()
            .split_once("[... ")
            .map(|(h, t)| (h.to_string(), t.to_string()))
            .unwrap();
        assert!(
            head.starts_with("line 1\n") && head.ends_with("\n"),
            "{head:?}"
        );
        assert!(tail.ends_with("line 100\n"), "{tail:?}");
        let tail = tail.split_once("omitted ...]\n").unwrap().1;
        assert!(
            tail.starts_with("line "),
            "the tail starts at a line: {tail:?}"
        );
        assert!(text.lines().all(|l| l.starts_with("line ")), "{text:?}");
        // Reading again from the omitted cursor starts at the first line not shown.
        let first_missing = head.lines().count() + 1;
        assert_eq!(b.omitted_from_seq(), Some(first_missing as u64));
    }

    #[test]
    fn a_long_line_is_cut_by_bytes_not_dropped() {
        let mut b = budgeted(32, &[b"first\n", &[b'x'; 1000], b"\nlast\n"]);
        b.shrink_to(32);
        let text = b.to_text();
        assert!(text.starts_with("first\nxx"), "{text}");
        assert!(text.ends_with("x\nlast\n"), "{text}");
        assert_eq!(b.kept(), 32);
    }

    #[test]
    fn byte_cuts_keep_utf8_whole() {
        let mut b = budgeted(11, &["ééééééééééééé".as_bytes()]);
        b.shrink_to(11);
        assert!(
            std::str::from_utf8(&b.contents()).is_ok(),
            "{:?}",
            b.contents()
        );
        assert!(b.kept() <= 11);
        assert_eq!(b.omitted() as usize + b.kept(), 26);
    }

    #[test]
    fn one_budget_is_shared_by_the_streams() {
        let mut collected = Collected::new(100, 0);
        collected
            .stdout
            .push_chunk(1, "out\n".repeat(100).as_bytes());
        collected.stderr.push_chunk(2, b"small error\n");
        collected.finish(100);
        assert_eq!(
            collected.stderr.contents(),
            b"small error\n",
            "a small stream is kept whole"
        );
        assert!(collected.stdout.kept() + collected.stderr.kept() <= 100);
        assert!(collected.stdout.kept() >= 80, "the rest goes to stdout");
        assert_eq!(
            collected.stdout.omitted() + collected.stdout.kept() as u64,
            400
        );
    }
}
