//! The rendered screen of a PTY process, for `process/snapshot`.
//!
//! A terminal emulator (the `vt100` crate) replays the process's terminal
//! output. Two demands pull it in opposite directions:
//!
//! - **Memory.** An emulator costs about 64 bytes per cell (two grids), so
//!   a size alone must never allocate one: a 65535×65535 resize would ask
//!   for hundreds of gigabytes. A PTY process keeps only the sizes its
//!   output was drawn at; an emulator exists while a snapshot renders, or
//!   while the server-wide [`ScreenBudget`] holds room for it.
//! - **Exactness.** Retention keeps the head and the tail of the output and
//!   drops the middle; an emulator built from retention after a drop never
//!   saw what drew the screen. Only an emulator that parsed those bytes
//!   before retention let them go can show the screen exactly.
//!
//! So a kept emulator is a *cache* of retention while retention still holds
//! every byte it parsed, and the *only record* of the screen once it parsed
//! bytes retention dropped (it is then irreplaceable):
//!
//! 1. While retention has room, the output path does nothing for the
//!    screen.
//! 2. Before a chunk makes retention drop bytes, the pump hands the screen
//!    everything retained and that chunk ([`TerminalScreen::before_eviction`]).
//!    Without a kept emulator, one is built from retention there, if the
//!    budget has room for it at the largest size its replay passes through.
//!    This catch-up is the one allocation a snapshot did not ask for, and it
//!    is always within the budget.
//! 3. A snapshot feeds the kept emulator what arrived since, or builds one
//!    from retention, renders it at the current size, and keeps it if the
//!    budget has room.
//! 4. A resize records the size and the seq it applies from; it allocates
//!    nothing. A replaceable kept emulator is dropped (the next snapshot
//!    rebuilds it exactly, each part at the size it was drawn at); an
//!    irreplaceable one stays at its size and switches when it parses
//!    output drawn at the new size.
//! 5. When an emulator must grow (output drawn at a larger size) and the
//!    budget refuses, it is given up. Later snapshots are rebuilt from
//!    retention and, as retention has a gap, say `approximate`.
//!
//! The trade-off: a screen is exact whenever the budget kept an emulator
//! from the first byte retention dropped on, and honestly approximate
//! otherwise. Memory held for screens is at most the budget, plus one
//! screen (at most `--max-terminal-rows`×`--max-terminal-cols`, bounded by
//! callers) per snapshot rendering at that moment. The output path parses
//! each byte at most once, and only for processes whose output overflows
//! retention.

use std::collections::VecDeque;
use std::num::NonZeroU16;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::OutputStream;
use crate::pty::TerminalSize;
use crate::retention::RetainedOutput;

/// Resizes remembered per process; older ones are merged (the replay of
/// the oldest output is then approximate).
const MAX_SIZE_HISTORY: usize = 64;

/// The budget of [`ScreenBudget::process_wide`]: kept emulators of every
/// process that names no budget of its own share it.
pub const DEFAULT_SCREEN_MEMORY_BYTES: usize = 128 * 1024 * 1024;

/// Memory for kept terminal emulators, shared by every PTY process of a
/// server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ScreenBudget(Arc<BudgetInner>);

#[derive(Debug)]
struct BudgetInner {
    limit: usize,
    used: AtomicUsize,
}

impl ScreenBudget {
    /// A budget of `limit` bytes; 0 keeps no emulator between snapshots.
    pub fn new(limit: usize) -> Self {
        ScreenBudget(Arc::new(BudgetInner {
            limit,
            used: AtomicUsize::new(0),
        }))
    }

    /// One budget of [`DEFAULT_SCREEN_MEMORY_BYTES`] for the whole OS
    /// process: the default of [`crate::ProcessConfig`].
    pub fn process_wide() -> Self {
        static BUDGET: OnceLock<ScreenBudget> = OnceLock::new();
        BUDGET
            .get_or_init(|| ScreenBudget::new(DEFAULT_SCREEN_MEMORY_BYTES))
            .clone()
    }

    /// Bytes held by kept emulators now.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::SeqCst)
    }

    pub fn limit(&self) -> usize {
        self.0.limit
    }

    fn take(&self, bytes: usize) -> bool {
        let limit = self.0.limit;
        self.0
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|&total| total <= limit)
            })
            .is_ok()
    }

    fn reserve(&self, bytes: usize) -> Option<Reservation> {
        self.take(bytes).then(|| Reservation {
            budget: self.clone(),
            bytes,
        })
    }
}

/// Bytes of a [`ScreenBudget`] held by one kept emulator; returned on drop.
#[derive(Debug)]
struct Reservation {
    budget: ScreenBudget,
    bytes: usize,
}

impl Reservation {
    /// Grows the reservation to `bytes`; false when the budget refuses.
    fn grow_to(&mut self, bytes: usize) -> bool {
        if bytes <= self.bytes {
            return true;
        }
        let grown = self.budget.take(bytes - self.bytes);
        if grown {
            self.bytes = bytes;
        }
        grown
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.0.used.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// What an emulator of `size` may allocate: two grids (normal and
/// alternate) of 32-byte cells plus a small header per row.
pub fn screen_bytes(size: TerminalSize) -> usize {
    let rows = usize::from(size.rows.max(1));
    let cols = usize::from(size.cols.max(1));
    2 * rows * (cols * std::mem::size_of::<vt100::Cell>() + 32)
}

fn nonzero(value: u16) -> NonZeroU16 {
    NonZeroU16::new(value).unwrap_or(NonZeroU16::MIN)
}

/// The size output `seq` was drawn at, by the size history.
fn size_at(sizes: &VecDeque<(u64, TerminalSize)>, seq: u64) -> Option<TerminalSize> {
    sizes
        .iter()
        .rev()
        .find(|(from, _)| *from < seq)
        .map(|&(_, size)| size)
}

/// One PTY process's screen: its size history and, between snapshots, the
/// emulator if the budget keeps it.
pub(crate) struct TerminalScreen {
    /// `(seq, size)`: output after `seq` (up to the next entry's) was drawn
    /// at `size`. The first entry has seq 0; the last is the current size.
    sizes: VecDeque<(u64, TerminalSize)>,
    /// True once the size history lost entries.
    history_merged: bool,
    budget: Option<ScreenBudget>,
    kept: Option<Emulator>,
}

/// A terminal emulator brought up to some point of the output.
struct Emulator {
    parser: vt100::Parser,
    /// Output up to this seq has been fed.
    fed_through: u64,
    /// True once a gap in retention (or in the size history) was replayed
    /// over: the screen is then the best reconstruction of what is left.
    approximate: bool,
    /// True once it parsed bytes retention has dropped since: rebuilding it
    /// from retention would lose them.
    irreplaceable: bool,
    /// The most it may have allocated: [`screen_bytes`] of the largest size
    /// it was set to (shrinking a grid keeps its rows' capacity).
    peak_bytes: usize,
    /// Held while the emulator is kept between snapshots; covers
    /// `peak_bytes`.
    reservation: Option<Reservation>,
}

impl Emulator {
    fn new(size: TerminalSize, approximate: bool) -> Self {
        Emulator {
            parser: vt100::Parser::new(nonzero(size.rows), nonzero(size.cols), 0),
            fed_through: 0,
            approximate,
            irreplaceable: false,
            peak_bytes: screen_bytes(size),
            reservation: None,
        }
    }

    fn size(&self) -> TerminalSize {
        let (rows, cols) = self.parser.screen().size();
        TerminalSize {
            rows: rows.get(),
            cols: cols.get(),
        }
    }

    /// Switches to `size`. False, and nothing changed, when a kept emulator
    /// would outgrow its reservation and the budget refuses.
    fn set_size(&mut self, size: TerminalSize) -> bool {
        if size == self.size() {
            return true;
        }
        let bytes = screen_bytes(size);
        if let Some(reservation) = &mut self.reservation
            && !reservation.grow_to(bytes)
        {
            return false;
        }
        self.peak_bytes = self.peak_bytes.max(bytes);
        self.parser.set_size(nonzero(size.rows), nonzero(size.cols));
        true
    }

    /// Feeds chunk `seq` at the size it was drawn at; false (nothing fed)
    /// when the budget refused that size.
    fn feed(&mut self, seq: u64, data: &[u8], sizes: &VecDeque<(u64, TerminalSize)>) -> bool {
        if let Some(size) = size_at(sizes, seq)
            && !self.set_size(size)
        {
            return false;
        }
        self.parser.process(data);
        self.fed_through = self.fed_through.max(seq);
        true
    }

    /// Feeds the retained output after `fed_through`; false when the budget
    /// refused a size on the way (the rest is then not fed yet).
    fn catch_up(
        &mut self,
        retained: &RetainedOutput,
        sizes: &VecDeque<(u64, TerminalSize)>,
    ) -> bool {
        if retained.last_seq() <= self.fed_through {
            // The pump's common case once retention is full: nothing new.
            return true;
        }
        let read = retained.read_after(self.fed_through, usize::MAX);
        if read.dropped_bytes > 0 {
            self.approximate = true;
        }
        read.chunks
            .iter()
            .filter(|chunk| chunk.stream == OutputStream::Pty)
            .all(|chunk| self.feed(chunk.seq, &chunk.data, sizes))
    }
}

/// A screen as rendered for one snapshot.
pub(crate) struct Rendered<'a> {
    pub screen: &'a vt100::Screen,
    pub approximate: bool,
    /// The terminal's current size, which the screen is rendered at.
    pub size: TerminalSize,
}

impl TerminalScreen {
    pub(crate) fn new(size: TerminalSize, budget: Option<ScreenBudget>) -> Self {
        TerminalScreen {
            sizes: VecDeque::from([(0, size)]),
            history_merged: false,
            budget,
            kept: None,
        }
    }

    /// The size the terminal has now.
    pub(crate) fn size(&self) -> TerminalSize {
        self.sizes
            .back()
            .map_or_else(TerminalSize::default, |s| s.1)
    }

    /// An emulator at the start of the output, to replay retention into.
    fn fresh(&self) -> Emulator {
        let first = self
            .sizes
            .front()
            .map_or_else(TerminalSize::default, |s| s.1);
        Emulator::new(first, self.history_merged)
    }

    /// Records a resize: output after `seq` is drawn at `size`. Allocates
    /// nothing. A kept emulator that retention could rebuild is freed; an
    /// irreplaceable one switches size when it parses output after `seq`.
    pub(crate) fn resize(&mut self, seq: u64, size: TerminalSize) {
        if self.kept.as_ref().is_some_and(|kept| !kept.irreplaceable) {
            self.kept = None;
        }
        if let Some(last) = self.sizes.back_mut()
            && last.0 >= seq
        {
            // No output at the previous size: it never mattered.
            last.1 = size;
        } else {
            self.sizes.push_back((seq, size));
        }
        if self.sizes.len() > MAX_SIZE_HISTORY {
            // Keep the first size (the head of retention is drawn at it)
            // and the recent ones; the second-oldest span now replays at
            // the first size.
            let span_end = self.sizes[2].0;
            self.sizes.remove(1);
            self.history_merged = true;
            if let Some(kept) = &mut self.kept
                && kept.fed_through < span_end
            {
                kept.approximate = true;
            }
        }
    }

    /// Before retention drops bytes to make room for chunk `seq`: feeds the
    /// kept emulator everything retained and `data`, or builds one within
    /// the budget to do so (see the module comment, step 2). Without room,
    /// the bytes go unseen and later screens are approximate.
    pub(crate) fn before_eviction(&mut self, retained: &RetainedOutput, seq: u64, data: &[u8]) {
        let mut emulator = match self.kept.take() {
            Some(kept) => kept,
            None => {
                // The replay passes through every recorded size.
                let peak = self.sizes.iter().map(|&(_, size)| screen_bytes(size)).max();
                let Some(reservation) = self
                    .budget
                    .as_ref()
                    .zip(peak)
                    .and_then(|(budget, peak)| budget.reserve(peak))
                else {
                    return;
                };
                let mut emulator = self.fresh();
                emulator.reservation = Some(reservation);
                emulator
            }
        };
        if emulator.catch_up(retained, &self.sizes) && emulator.feed(seq, data, &self.sizes) {
            emulator.irreplaceable = true;
            self.kept = Some(emulator);
        }
    }

    /// Brings the screen up to date with `retained` and hands it to `f`,
    /// rendered at the current size.
    pub(crate) fn render<R>(
        &mut self,
        retained: &RetainedOutput,
        f: impl FnOnce(Rendered<'_>) -> R,
    ) -> R {
        let mut emulator = self.kept.take().unwrap_or_else(|| self.fresh());
        if !emulator.catch_up(retained, &self.sizes) {
            // The budget refused a larger size: this snapshot still renders
            // exactly, but the emulator is not kept past it.
            emulator.reservation = None;
            emulator.catch_up(retained, &self.sizes);
        }
        let size = self.size();
        let result = if emulator.set_size(size) {
            f(Rendered {
                screen: emulator.parser.screen(),
                approximate: emulator.approximate,
                size,
            })
        } else if emulator.irreplaceable {
            // No output was drawn at the current size yet, and the budget
            // has no room for it: render a copy at that size, and keep the
            // exact emulator at the size it has.
            let mut copy = emulator.parser.screen().clone();
            copy.set_size(nonzero(size.rows), nonzero(size.cols));
            f(Rendered {
                screen: &copy,
                approximate: emulator.approximate,
                size,
            })
        } else {
            emulator.reservation = None;
            emulator.set_size(size);
            f(Rendered {
                screen: emulator.parser.screen(),
                approximate: emulator.approximate,
                size,
            })
        };
        if emulator.reservation.is_none() {
            emulator.reservation = self
                .budget
                .as_ref()
                .and_then(|budget| budget.reserve(emulator.peak_bytes));
        }
        if emulator.reservation.is_some() {
            self.kept = Some(emulator);
        }
        result
    }

    /// Whether an emulator is kept between snapshots (for tests).
    #[cfg(test)]
    fn is_kept(&self) -> bool {
        self.kept.is_some()
    }
}

/// The visible screen as text lines, without trailing blanks.
pub(crate) fn text_lines(screen: &vt100::Screen) -> Vec<String> {
    let (_, cols) = screen.size();
    screen
        .rows(0, cols.get())
        .map(|row| row.trim_end().to_string())
        .collect()
}

/// Bytes that redraw `screen` on a terminal in its initial state: the
/// alternate screen when it is active, contents with colours and
/// attributes, cursor position and visibility, and input modes
/// (application cursor keys, bracketed paste, mouse reporting). A browser
/// terminal paints these first and then goes on with the live output that
/// follows.
pub(crate) fn formatted(screen: &vt100::Screen) -> Vec<u8> {
    let mut out = Vec::new();
    if screen.alternate_screen() {
        out.extend_from_slice(b"\x1b[?1049h");
    }
    out.extend_from_slice(screen.state_formatted().as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn size(rows: u16, cols: u16) -> TerminalSize {
        TerminalSize { rows, cols }
    }

    fn lines(screen: &mut TerminalScreen, retained: &RetainedOutput) -> Vec<String> {
        screen.render(retained, |rendered| text_lines(rendered.screen))
    }

    fn rendered(screen: &mut TerminalScreen, retained: &RetainedOutput) -> (Vec<String>, bool) {
        screen.render(retained, |rendered| {
            (text_lines(rendered.screen), rendered.approximate)
        })
    }

    /// Pushes `data` as the pump does: the screen first sees what retention
    /// is about to drop.
    fn pump(screen: &mut TerminalScreen, retained: &mut RetainedOutput, seq: u64, data: &[u8]) {
        if retained.stream(OutputStream::Pty).would_drop(data.len()) {
            screen.before_eviction(retained, seq, data);
        }
        retained.push(seq, OutputStream::Pty, Bytes::copy_from_slice(data));
    }

    /// Fills retention's head (64 bytes: 32 head, 32 tail), draws on the
    /// first row, then moves the cursor about until retention has dropped
    /// the drawing. Returns the last seq pushed.
    fn draw_then_flood(screen: &mut TerminalScreen, retained: &mut RetainedOutput) -> u64 {
        pump(
            screen,
            retained,
            1,
            b"\x1b[2J\x1b[1;1Hfiller filler filler filler filler",
        );
        pump(screen, retained, 2, b"\x1b[1;1Hdrawn early\x1b[K");
        for seq in 3..20 {
            pump(screen, retained, seq, b"\x1b[5;1Hcounter ticks\x1b[1;20H");
        }
        let kept = retained.read_after(0, usize::MAX);
        assert!(
            kept.chunks.iter().all(|chunk| chunk.seq != 2),
            "retention dropped the drawing"
        );
        19
    }

    #[test]
    fn a_huge_size_allocates_nothing_until_rendered() {
        let budget = ScreenBudget::new(1 << 20);
        let mut screen = TerminalScreen::new(size(u16::MAX, u16::MAX), Some(budget.clone()));
        screen.resize(0, size(u16::MAX, u16::MAX));
        assert_eq!(budget.used(), 0);
        assert!(!screen.is_kept());
        assert_eq!(screen.size(), size(u16::MAX, u16::MAX));
    }

    #[test]
    fn kept_emulators_stay_within_the_budget() {
        let small = size(24, 80);
        let budget = ScreenBudget::new(screen_bytes(small) + 1);
        let mut retained = RetainedOutput::new(1 << 16);
        retained.push(1, OutputStream::Pty, Bytes::from_static(b"hello"));
        let mut first = TerminalScreen::new(small, Some(budget.clone()));
        let mut second = TerminalScreen::new(small, Some(budget.clone()));
        assert_eq!(lines(&mut first, &retained)[0], "hello");
        assert!(first.is_kept());
        assert_eq!(budget.used(), screen_bytes(small));
        // No room for a second one: rendered, then dropped.
        assert_eq!(lines(&mut second, &retained)[0], "hello");
        assert!(!second.is_kept());
        assert_eq!(budget.used(), screen_bytes(small));
        // A kept emulator only feeds what is new.
        retained.push(2, OutputStream::Pty, Bytes::from_static(b" world"));
        assert_eq!(lines(&mut first, &retained)[0], "hello world");
        // A resize frees it; dropping the screen frees it too.
        first.resize(2, size(10, 40));
        assert_eq!(budget.used(), 0);
        assert_eq!(lines(&mut second, &retained)[0], "hello world");
        assert!(second.is_kept());
        drop(second);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn output_replays_at_the_size_it_was_drawn_at() {
        let mut retained = RetainedOutput::new(1 << 16);
        let mut screen = TerminalScreen::new(size(5, 10), None);
        // Twelve characters wrap at ten columns.
        retained.push(1, OutputStream::Pty, Bytes::from_static(b"abcdefghijkl"));
        screen.resize(1, size(5, 20));
        retained.push(
            2,
            OutputStream::Pty,
            Bytes::from_static(b"\r\nmnopqrstuvwxyz0123"),
        );
        let rendered = lines(&mut screen, &retained);
        assert_eq!(rendered.len(), 5, "rendered at the current size");
        assert_eq!(&rendered[..3], ["abcdefghij", "kl", "mnopqrstuvwxyz0123"]);
        assert!(!screen.is_kept(), "no budget, nothing kept");
    }

    #[test]
    fn the_size_history_is_bounded() {
        let mut screen = TerminalScreen::new(size(24, 80), None);
        for seq in 1..=1000 {
            screen.resize(seq, size(24, 80 + (seq % 7) as u16));
        }
        assert!(screen.sizes.len() <= MAX_SIZE_HISTORY);
        assert_eq!(screen.sizes[0], (0, size(24, 80)));
        // Repeated resizes without output in between take one entry.
        let mut quiet = TerminalScreen::new(size(24, 80), None);
        for cols in 1..=1000 {
            quiet.resize(0, size(24, cols));
        }
        assert_eq!(quiet.sizes.len(), 1);
        assert_eq!(quiet.size(), size(24, 1000));
    }

    #[test]
    fn output_retention_drops_reaches_a_budgeted_emulator_first() {
        let budget = ScreenBudget::new(screen_bytes(size(6, 40)));
        let mut retained = RetainedOutput::new(64);
        let mut screen = TerminalScreen::new(size(6, 40), Some(budget.clone()));
        pump(&mut screen, &mut retained, 1, b"\x1b[2J");
        assert!(!screen.is_kept(), "nothing built while retention has room");
        assert_eq!(budget.used(), 0);
        let mut retained = RetainedOutput::new(64);
        let mut screen = TerminalScreen::new(size(6, 40), Some(budget.clone()));
        draw_then_flood(&mut screen, &mut retained);
        assert!(screen.is_kept(), "built at the first drop, within budget");
        assert_eq!(budget.used(), screen_bytes(size(6, 40)));
        let (rows, approximate) = rendered(&mut screen, &retained);
        assert_eq!(rows[0], "drawn early");
        assert_eq!(rows[4], "counter ticks");
        assert!(!approximate);
    }

    #[test]
    fn without_budget_room_dropped_output_makes_the_screen_approximate() {
        let mut retained = RetainedOutput::new(64);
        let mut screen = TerminalScreen::new(size(6, 40), Some(ScreenBudget::new(0)));
        draw_then_flood(&mut screen, &mut retained);
        assert!(!screen.is_kept());
        let (rows, approximate) = rendered(&mut screen, &retained);
        assert_ne!(rows[0], "drawn early", "rebuilt from what retention kept");
        assert_eq!(rows[4], "counter ticks");
        assert!(approximate, "the drawing is gone, and the screen says so");
    }

    #[test]
    fn an_irreplaceable_emulator_survives_resizes_and_grows_only_within_the_budget() {
        let small = size(6, 40);
        let budget = ScreenBudget::new(screen_bytes(size(12, 80)));
        let mut retained = RetainedOutput::new(64);
        let mut screen = TerminalScreen::new(small, Some(budget.clone()));
        let last = draw_then_flood(&mut screen, &mut retained);
        // A resize beyond the budget allocates nothing and keeps the exact
        // emulator; a snapshot renders a copy at the new size.
        screen.resize(last, size(200, 200));
        assert!(screen.is_kept());
        assert_eq!(budget.used(), screen_bytes(small));
        let (rows, approximate) = rendered(&mut screen, &retained);
        assert_eq!(rows.len(), 200);
        assert_eq!(rows[0], "drawn early");
        assert!(!approximate);
        assert_eq!(budget.used(), screen_bytes(small), "the copy was freed");
        // Output drawn at a size within the budget grows the reservation.
        screen.resize(last, size(12, 80));
        pump(&mut screen, &mut retained, last + 1, b"\x1b[12;1Hbottom");
        assert_eq!(budget.used(), screen_bytes(size(12, 80)));
        let (rows, approximate) = rendered(&mut screen, &retained);
        assert_eq!(rows.len(), 12);
        assert_eq!(rows[0], "drawn early");
        assert_eq!(rows[11], "bottom");
        assert!(!approximate);
        // Output drawn at a size beyond it gives the emulator up: from then
        // on the screen is rebuilt from retention, and says so.
        screen.resize(last + 1, size(200, 200));
        pump(&mut screen, &mut retained, last + 2, &[b'x'; 40]);
        assert!(!screen.is_kept());
        assert_eq!(budget.used(), 0);
        let (rows, approximate) = rendered(&mut screen, &retained);
        assert_eq!(rows.len(), 200);
        assert!(approximate);
    }
}
