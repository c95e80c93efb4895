//! One process handle's route: what it has received, and how it catches up
//! after a resume so that every byte arrives exactly once or is reported
//! missing by a [`ProcessEvent::Gap`] of exactly the right size.
//!
//! The route keeps two cursors: `cursor`, the highest seq it accounted for
//! (delivered, or known to be gone), and `position`, per stream, the stream
//! offset up to which every byte was delivered or reported missing.
//!
//! - **Live**: notifications are delivered in seq order. For a process that
//!   streams its output every seq is notified, so a seq that skips ahead
//!   means something was not received: the route reads it back (a *hole*).
//!   A seq at or below `cursor` was already delivered and is dropped.
//! - **Replay** (after a resume, or a hole): `process/read` pages from
//!   `cursor` on, one in flight at a time. Each chunk carries its stream
//!   offset; the bytes between `position` and that offset are missing and
//!   reported as a `Gap` right before the chunk, and bytes below `position`
//!   are never delivered twice.
//! - Meanwhile live notifications are *held*: every one received since the
//!   replay started, in order (a *run*). As soon as the pages reach the
//!   run's first seq, the run continues them without a hole and the route
//!   is live again, so output produced during the replay crosses the wire
//!   once. A page that reached the newest output (`complete`) ends the
//!   replay too.
//! - The run is bounded by [`HELD_BYTES_LIMIT`]. Past it the run is
//!   dropped, and a new one starts with the next page request: the pages
//!   then read those bytes back, or report them as a gap. Memory never
//!   depends on the backlog or on the producer.
//! - A process that exited while the client was away gets its exit from a
//!   zero-length `process/wait` (signal and timeout are not in the read
//!   answer), after all the output the pages brought.
//!
//! This module is pure logic: the dispatcher feeds it messages and carries
//! out the [`Next`] step it returns.

use bytes::Bytes;
use exec_server_protocol::process::{
    ExitedNotification, OutputChunk, OutputNotification, ProcessStream, ReadResponse, WaitResponse,
};

use crate::event::ProcessEvent;

/// Live notification bytes a replaying route holds before it drops them
/// and reads them back instead.
pub(crate) const HELD_BYTES_LIMIT: usize = 8 * 1024 * 1024;

/// What the dispatcher does next for a route.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Nothing,
    /// Send `process/read` after this seq.
    Read {
        after_seq: u64,
    },
    /// Send a zero-length `process/wait` for the exit's details.
    ExitDetails,
    /// The route delivered its last event: forget it.
    Finished,
}

/// A notification about one process.
#[derive(Debug)]
pub(crate) enum Live {
    Output(OutputNotification),
    Exited(ExitedNotification),
    Closed,
}

impl Live {
    fn seq(&self) -> Option<u64> {
        match self {
            Live::Output(output) => Some(output.seq),
            Live::Exited(exited) => Some(exited.seq),
            Live::Closed => None,
        }
    }
}

/// The run of live notifications received during a replay.
#[derive(Default)]
struct Held {
    items: std::collections::VecDeque<Live>,
    bytes: usize,
    /// The run overflowed: drop everything until the next page request
    /// starts a new run.
    dropping: bool,
}

impl Held {
    fn push(&mut self, item: Live) {
        if self.dropping {
            return;
        }
        if let Live::Output(output) = &item {
            self.bytes += output.chunk.len();
            if self.bytes > HELD_BYTES_LIMIT {
                self.items.clear();
                self.bytes = 0;
                self.dropping = true;
                return;
            }
        }
        self.items.push_back(item);
    }

    fn pop(&mut self) -> Option<Live> {
        let item = self.items.pop_front()?;
        if let Live::Output(output) = &item {
            self.bytes -= output.chunk.len();
        }
        Some(item)
    }
}

/// What a replay waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Awaiting {
    Read,
    ExitDetails,
}

struct Replay {
    held: Held,
    awaiting: Awaiting,
    /// A page said the process exited (with this code) before the exit was
    /// delivered.
    exit_seen: Option<Option<i32>>,
    /// A complete page said the process is closed.
    closed_seen: bool,
}

enum Mode {
    Live,
    Replay(Replay),
    Done,
}

/// The route of one [`RemoteProcess`](crate::RemoteProcess).
pub(crate) struct ProcessRoute {
    /// Output notifications are sent for every output seq.
    streaming: bool,
    /// Where a gap goes when the server does not say (servers without
    /// chunk offsets).
    main_stream: ProcessStream,
    cursor: u64,
    /// Per stream (stdout or terminal, stderr): bytes delivered or
    /// reported missing.
    position: [u64; 2],
    exited: bool,
    mode: Mode,
}

fn index(stream: ProcessStream) -> usize {
    match stream {
        ProcessStream::Stdout | ProcessStream::Pty => 0,
        ProcessStream::Stderr => 1,
    }
}

impl ProcessRoute {
    pub fn new(streaming: bool, tty: bool) -> Self {
        ProcessRoute {
            streaming,
            main_stream: if tty {
                ProcessStream::Pty
            } else {
                ProcessStream::Stdout
            },
            cursor: 0,
            position: [0; 2],
            exited: false,
            mode: Mode::Live,
        }
    }

    /// A live notification.
    pub fn live(&mut self, item: Live, out: &mut Vec<ProcessEvent>) -> Next {
        let stale = self.stale(&item);
        match &mut self.mode {
            Mode::Live => self.apply(item, out),
            Mode::Replay(replay) => {
                if !stale {
                    replay.held.push(item);
                }
                Next::Nothing
            }
            Mode::Done => Next::Nothing,
        }
    }

    /// Already delivered (or covered by a page).
    fn stale(&self, item: &Live) -> bool {
        match item {
            Live::Output(output) => output.seq <= self.cursor,
            Live::Exited(_) => self.exited,
            Live::Closed => false,
        }
    }

    /// Applies a notification in order. `Some(next)` when it cannot be
    /// applied: a hole to read back (the item is not consumed then).
    fn apply(&mut self, item: Live, out: &mut Vec<ProcessEvent>) -> Next {
        match self.try_apply(item, out) {
            Ok(next) => next,
            Err(item) => {
                let mut held = Held::default();
                held.push(item);
                self.read_back(held)
            }
        }
    }

    /// Applies `item`, or gives it back when a hole comes before it.
    fn try_apply(&mut self, item: Live, out: &mut Vec<ProcessEvent>) -> Result<Next, Live> {
        if self.streaming
            && let Some(seq) = item.seq()
            && seq > self.cursor + 1
            && !self.stale(&item)
        {
            return Err(item);
        }
        match item {
            Live::Output(output) => {
                if output.seq > self.cursor {
                    self.cursor = output.seq;
                    self.position[index(output.stream)] += output.chunk.len() as u64;
                    out.push(ProcessEvent::Output {
                        seq: output.seq,
                        stream: output.stream,
                        chunk: output.chunk,
                    });
                }
            }
            Live::Exited(exited) => {
                self.cursor = self.cursor.max(exited.seq);
                // Delivered once, even when a page already covered its seq
                // without knowing it was the exit.
                if !self.exited {
                    self.exited = true;
                    out.push(ProcessEvent::Exited {
                        seq: exited.seq,
                        exit_code: exited.exit_code,
                        signal: exited.signal,
                        timed_out: exited.timed_out,
                    });
                }
            }
            Live::Closed => {
                self.mode = Mode::Done;
                out.push(ProcessEvent::Closed);
                return Ok(Next::Finished);
            }
        }
        Ok(Next::Nothing)
    }

    /// Asks for the next page from `cursor`, keeping the run (or starting
    /// a new one after an overflow).
    fn read_back(&mut self, mut held: Held) -> Next {
        held.dropping = false;
        let (exit_seen, closed_seen) = match &self.mode {
            Mode::Replay(replay) => (replay.exit_seen, replay.closed_seen),
            _ => (None, false),
        };
        self.mode = Mode::Replay(Replay {
            held,
            awaiting: Awaiting::Read,
            exit_seen,
            closed_seen,
        });
        Next::Read {
            after_seq: self.cursor,
        }
    }

    /// A new connection resumed the session: read what was missed. What
    /// was held on the old connection is dropped: it stays in retention.
    pub fn resume(&mut self) -> Next {
        match self.mode {
            Mode::Done => Next::Nothing,
            _ => {
                self.mode = Mode::Live;
                self.read_back(Held::default())
            }
        }
    }

    /// The answer to the last page request.
    pub fn on_read(&mut self, read: ReadResponse, out: &mut Vec<ProcessEvent>) -> Next {
        let Some(mut replay) = self.take_replay(Awaiting::Read) else {
            return Next::Nothing; // Stale: the route moved on.
        };
        let offsets = read.chunks.iter().any(|c| c.offset.is_some());
        if !offsets && read.dropped_bytes > 0 && self.streaming {
            // A server without offsets: trust its count, before the first
            // chunk it covers.
            let stream = read.chunks.first().map_or(self.main_stream, |c| c.stream);
            out.push(ProcessEvent::Gap {
                stream,
                dropped_bytes: read.dropped_bytes,
            });
        }
        let complete = read.complete;
        for chunk in read.chunks {
            self.cursor = self.cursor.max(chunk.seq);
            if self.streaming {
                self.replayed(chunk, out);
            }
        }
        self.cursor = self.cursor.max(read.next_seq);
        if read.exited && !self.exited {
            replay.exit_seen = Some(read.exit_code);
        }
        replay.closed_seen |= complete && read.closed;
        while replay
            .held
            .items
            .front()
            .is_some_and(|item| self.stale(item))
        {
            replay.held.pop();
        }
        let reaches_run = replay
            .held
            .items
            .front()
            .and_then(Live::seq)
            .is_some_and(|seq| seq <= self.cursor + 1);
        if complete || reaches_run {
            self.finish(replay, out)
        } else {
            self.mode = Mode::Replay(replay);
            let Mode::Replay(replay) = &mut self.mode else {
                unreachable!("just set");
            };
            let held = std::mem::take(&mut replay.held);
            self.read_back(held)
        }
    }

    /// Takes the replay state if it waits for `awaiting`.
    fn take_replay(&mut self, awaiting: Awaiting) -> Option<Replay> {
        match &self.mode {
            Mode::Replay(replay) if replay.awaiting == awaiting => {}
            _ => return None,
        }
        match std::mem::replace(&mut self.mode, Mode::Live) {
            Mode::Replay(replay) => Some(replay),
            _ => unreachable!("checked above"),
        }
    }

    /// One chunk of a page: a gap before it if bytes are missing, and only
    /// the bytes not delivered yet.
    fn replayed(&mut self, chunk: OutputChunk, out: &mut Vec<ProcessEvent>) {
        let slot = &mut self.position[index(chunk.stream)];
        let len = chunk.chunk.len() as u64;
        let data = match chunk.offset {
            Some(offset) => {
                let have = *slot;
                if offset + len <= have {
                    return;
                }
                if offset > have {
                    out.push(ProcessEvent::Gap {
                        stream: chunk.stream,
                        dropped_bytes: offset - have,
                    });
                }
                *slot = offset + len;
                let skip = have.saturating_sub(offset) as usize;
                if skip > 0 {
                    chunk.chunk.slice(skip..)
                } else {
                    chunk.chunk
                }
            }
            None => {
                *slot += len;
                chunk.chunk
            }
        };
        out.push(output_event(chunk.seq, chunk.stream, data));
    }

    /// The pages caught up (with the newest output, or with the run): the
    /// run, then the exit if a page saw one the run did not bring, then
    /// live again; or another page when the run does not continue the
    /// pages or was cut short.
    fn finish(&mut self, mut replay: Replay, out: &mut Vec<ProcessEvent>) -> Next {
        let exit_pending = |replay: &Replay, exited: bool| replay.exit_seen.is_some() && !exited;
        loop {
            // The close comes last: after an exit the run did not bring.
            if matches!(replay.held.items.front(), Some(Live::Closed))
                && exit_pending(&replay, self.exited)
            {
                break;
            }
            let Some(item) = replay.held.pop() else {
                break;
            };
            match self.try_apply(item, out) {
                Ok(Next::Nothing) => {}
                Ok(next) => return next,
                Err(item) => {
                    // The run does not continue the pages: read on,
                    // keeping the run.
                    let mut held = std::mem::take(&mut replay.held);
                    held.items.push_front(item);
                    if let Some(Live::Output(output)) = held.items.front() {
                        held.bytes += output.chunk.len();
                    }
                    self.mode = Mode::Replay(replay);
                    return self.read_back(held);
                }
            }
        }
        if replay.held.dropping {
            // Part of the run was dropped: read it back.
            self.mode = Mode::Replay(replay);
            return self.read_back(Held::default());
        }
        if exit_pending(&replay, self.exited) {
            // After all the output that came before it; the live exit
            // notification, if it still comes, is not repeated.
            replay.awaiting = Awaiting::ExitDetails;
            self.mode = Mode::Replay(replay);
            return Next::ExitDetails;
        }
        if replay.closed_seen {
            self.mode = Mode::Done;
            out.push(ProcessEvent::Closed);
            return Next::Finished;
        }
        self.mode = Mode::Live;
        Next::Nothing
    }

    /// The answer to the zero-length `process/wait` (`None`: it failed, so
    /// the exit code of the read answer is all there is).
    pub fn on_exit_details(
        &mut self,
        wait: Option<WaitResponse>,
        out: &mut Vec<ProcessEvent>,
    ) -> Next {
        let Some(mut replay) = self.take_replay(Awaiting::ExitDetails) else {
            return Next::Nothing;
        };
        let exit_code = replay.exit_seen.take().flatten();
        if !self.exited {
            self.exited = true;
            let (exit_code, signal, timed_out) = match wait {
                Some(wait) => (
                    wait.exit_code.or(exit_code).unwrap_or(-1),
                    wait.signal,
                    wait.timed_out,
                ),
                None => (exit_code.unwrap_or(-1), None, false),
            };
            out.push(ProcessEvent::Exited {
                seq: self.cursor,
                exit_code,
                signal,
                timed_out,
            });
        }
        self.finish(replay, out)
    }

    /// The route cannot go on (the session is gone, or the server forgot
    /// the process): its last event says why.
    pub fn lose(&mut self, reason: String, out: &mut Vec<ProcessEvent>) {
        if !matches!(self.mode, Mode::Done) {
            self.mode = Mode::Done;
            out.push(ProcessEvent::Lost { reason });
        }
    }
}

fn output_event(seq: u64, stream: ProcessStream, chunk: Bytes) -> ProcessEvent {
    ProcessEvent::Output { seq, stream, chunk }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(seq: u64, text: &'static str) -> Live {
        Live::Output(OutputNotification {
            process_id: "p".into(),
            seq,
            stream: ProcessStream::Stdout,
            chunk: Bytes::from_static(text.as_bytes()),
        })
    }

    fn exited(seq: u64) -> Live {
        Live::Exited(ExitedNotification {
            process_id: "p".into(),
            seq,
            exit_code: 0,
            signal: None,
            timed_out: false,
        })
    }

    fn chunk(seq: u64, offset: u64, text: &'static str) -> OutputChunk {
        OutputChunk {
            seq,
            stream: ProcessStream::Stdout,
            chunk: Bytes::from_static(text.as_bytes()),
            offset: Some(offset),
        }
    }

    /// A page; complete unless it ends at its last chunk, which in these
    /// tests stands for a budget cut.
    fn read(chunks: Vec<OutputChunk>, next_seq: u64) -> ReadResponse {
        let chunks_complete = chunks.last().is_none_or(|c| next_seq > c.seq);
        ReadResponse {
            chunks,
            next_seq,
            dropped_bytes: 0,
            exited: false,
            exit_code: None,
            closed: false,
            complete: chunks_complete,
            waiting_for_input: None,
        }
    }

    /// The stream as the handle sees it: text, with `[gap N]` markers.
    fn text(events: &[ProcessEvent]) -> String {
        events
            .iter()
            .map(|event| match event {
                ProcessEvent::Output { chunk, .. } => String::from_utf8_lossy(chunk).into_owned(),
                ProcessEvent::Gap { dropped_bytes, .. } => format!("[gap {dropped_bytes}]"),
                ProcessEvent::Exited { .. } => "[exit]".into(),
                ProcessEvent::Closed => "[closed]".into(),
                ProcessEvent::Lost { .. } => "[lost]".into(),
            })
            .collect()
    }

    #[test]
    fn live_output_is_delivered_in_order_and_repeats_are_dropped() {
        let mut route = ProcessRoute::new(true, false);
        let mut out = Vec::new();
        assert_eq!(route.live(output(1, "a"), &mut out), Next::Nothing);
        assert_eq!(route.live(output(2, "b"), &mut out), Next::Nothing);
        assert_eq!(route.live(output(2, "b"), &mut out), Next::Nothing);
        assert_eq!(text(&out), "ab");
    }

    #[test]
    fn a_seq_that_skips_ahead_is_read_back() {
        let mut route = ProcessRoute::new(true, false);
        let mut out = Vec::new();
        route.live(output(1, "a"), &mut out);
        assert_eq!(
            route.live(output(3, "c"), &mut out),
            Next::Read { after_seq: 1 }
        );
        let next = route.on_read(read(vec![chunk(2, 1, "b"), chunk(3, 2, "c")], 4), &mut out);
        assert_eq!(next, Next::Nothing);
        assert_eq!(text(&out), "abc");
    }

    #[test]
    fn a_replay_reports_exactly_the_missing_bytes_before_the_next_chunk() {
        let mut route = ProcessRoute::new(true, false);
        let mut out = Vec::new();
        route.live(output(1, "abc"), &mut out);
        assert_eq!(route.resume(), Next::Read { after_seq: 1 });
        // Seqs 2..=4 ("defghijk") were evicted but the last byte of seq 4.
        let answer = read(vec![chunk(4, 10, "l"), chunk(5, 11, "mn")], 6);
        assert_eq!(route.on_read(answer, &mut out), Next::Nothing);
        assert_eq!(text(&out), "abc[gap 7]lmn");
    }

    #[test]
    fn bytes_already_delivered_are_never_repeated_even_if_offered_again() {
        let mut route = ProcessRoute::new(true, false);
        let mut out = Vec::new();
        route.live(output(1, "abcd"), &mut out);
        route.resume();
        // A head part the route already has, then a chunk overlapping it.
        let answer = read(vec![chunk(2, 0, "abcd"), chunk(3, 2, "cdef")], 4);
        route.on_read(answer, &mut out);
        assert_eq!(text(&out), "abcdef");
    }

    #[test]
    fn pages_that_reach_the_held_run_end_the_replay_without_reading_it_again() {
        let mut route = ProcessRoute::new(true, false);
        let mut out = Vec::new();
        assert_eq!(route.resume(), Next::Read { after_seq: 0 });
        // Output produced during the replay arrives live and is held.
        route.live(output(3, "c"), &mut out);
        route.live(output(4, "d"), &mut out);
        // Budget-limited pages (each ends at its last chunk).
        let page = read(vec![chunk(1, 0, "a")], 1);
        assert_eq!(route.on_read(page, &mut out), Next::Read { after_seq: 1 });
        let page = read(vec![chunk(2, 1, "b")], 2);
        assert_eq!(route.on_read(page, &mut out), Next::Nothing, "live again");
        route.live(output(5, "e"), &mut out);
        assert_eq!(text(&out), "abcde");
    }

    #[test]
    fn output_held_during_the_last_read_continues_it_without_a_hole() {
        let mut route = ProcessRoute::new(true, false);
        let mut out = Vec::new();
        route.live(output(1, "a"), &mut out);
        route.live(output(2, "b"), &mut out);
        route.resume();
        // Seq 2 comes again (sent just before the cut), seq 3 is newer than
        // the answer: both arrive while the read is in flight.
        route.live(output(2, "b"), &mut out);
        route.live(output(3, "c"), &mut out);
        assert_eq!(route.on_read(read(vec![], 2), &mut out), Next::Nothing);
        route.live(output(4, "d"), &mut out);
        assert_eq!(text(&out), "abcd");
    }

    #[test]
    fn a_complete_page_ending_at_its_last_chunk_ends_the_replay_at_once() {
        let mut route = ProcessRoute::new(true, false);
        let mut out = Vec::new();
        route.resume();
        let mut page = read(vec![chunk(1, 0, "a"), chunk(2, 1, "b")], 2);
        page.complete = true;
        assert_eq!(route.on_read(page, &mut out), Next::Nothing, "live");
        route.live(output(3, "c"), &mut out);
        assert_eq!(text(&out), "abc");
    }

    #[test]
    fn a_hole_in_held_output_means_another_read() {
        let mut route = ProcessRoute::new(true, false);
        let mut out = Vec::new();
        route.resume();
        route.live(output(4, "d"), &mut out);
        // The answer reached seq 2, but 3 was never seen.
        let answer = read(vec![chunk(1, 0, "a")], 2);
        assert_eq!(route.on_read(answer, &mut out), Next::Read { after_seq: 2 });
        assert_eq!(text(&out), "a");
    }

    #[test]
    fn too_much_held_output_is_dropped_and_read_again() {
        let mut route = ProcessRoute::new(true, false);
        let mut out = Vec::new();
        route.resume();
        let big = Bytes::from(vec![b'x'; HELD_BYTES_LIMIT]);
        for seq in 2..=3 {
            route.live(
                Live::Output(OutputNotification {
                    process_id: "p".into(),
                    seq,
                    stream: ProcessStream::Stdout,
                    chunk: big.clone(),
                }),
                &mut out,
            );
        }
        let answer = read(vec![chunk(1, 0, "a")], 2);
        // Complete (next seq after its last chunk), yet the held output
        // overflowed: read again rather than go live with a hole.
        assert_eq!(route.on_read(answer, &mut out), Next::Read { after_seq: 2 });
    }

    #[test]
    fn an_exit_missed_while_away_is_delivered_once_with_its_details() {
        let mut route = ProcessRoute::new(true, false);
        let mut out = Vec::new();
        route.live(output(1, "a"), &mut out);
        route.resume();
        let mut answer = read(vec![chunk(2, 1, "b")], 3);
        answer.exited = true;
        answer.exit_code = Some(137);
        answer.closed = true;
        assert_eq!(route.on_read(answer, &mut out), Next::ExitDetails);
        // The live exit notification may still arrive: it is not repeated.
        route.live(exited(3), &mut out);
        let wait = WaitResponse {
            reason: exec_server_protocol::process::WaitReason::Exited,
            exited: true,
            exit_code: Some(137),
            signal: Some("SIGKILL".into()),
            timed_out: false,
        };
        assert_eq!(route.on_exit_details(Some(wait), &mut out), Next::Finished);
        assert_eq!(text(&out), "ab[exit][closed]");
        assert!(matches!(
            &out[2],
            ProcessEvent::Exited { exit_code: 137, signal: Some(s), .. } if s == "SIGKILL"
        ));
    }

    #[test]
    fn an_exit_whose_seq_a_replay_passed_is_still_delivered_once() {
        let mut route = ProcessRoute::new(true, false);
        let mut out = Vec::new();
        route.resume();
        // The answer saw output after the exit (a background job) before
        // the exit status was set.
        let answer = read(vec![chunk(1, 0, "a"), chunk(3, 1, "z")], 4);
        route.on_read(answer, &mut out);
        route.live(exited(2), &mut out);
        route.live(exited(2), &mut out);
        assert_eq!(text(&out), "az[exit]");
    }

    #[test]
    fn a_close_held_after_an_exit_missed_while_away_comes_after_that_exit() {
        let mut route = ProcessRoute::new(true, false);
        let mut out = Vec::new();
        route.resume();
        // Exited while detached; a background job kept the pipe open and
        // closed it during the replay.
        route.live(Live::Closed, &mut out);
        let mut page = read(vec![chunk(1, 0, "a")], 2);
        page.exited = true;
        page.exit_code = Some(0);
        assert_eq!(route.on_read(page, &mut out), Next::ExitDetails);
        assert_eq!(route.on_exit_details(None, &mut out), Next::Finished);
        assert_eq!(text(&out), "a[exit][closed]");
    }

    #[test]
    fn processes_without_streamed_output_skip_replayed_chunks() {
        let mut route = ProcessRoute::new(false, false);
        let mut out = Vec::new();
        route.resume();
        let mut answer = read(vec![chunk(1, 0, "a")], 2);
        answer.closed = true;
        assert_eq!(route.on_read(answer, &mut out), Next::Finished);
        assert_eq!(text(&out), "[closed]");
    }

    #[test]
    fn a_lost_route_ends_with_one_lost_event() {
        let mut route = ProcessRoute::new(true, false);
        let mut out = Vec::new();
        route.lose("gone".into(), &mut out);
        route.lose("gone".into(), &mut out);
        assert_eq!(text(&out), "[lost]");
        assert_eq!(route.resume(), Next::Nothing);
    }
}
