//! Terminal output turned into the text a person would read: escape
//! sequences interpreted (colors and modes dropped), carriage returns and
//! overwritten progress lines resolved, line edits (backspace, erase,
//! insert, delete) applied.
//!
//! [`TerminalText`] is a line-oriented terminal: it keeps a window of
//! recent lines that the cursor may still reach ([`WINDOW_LINES`]); lines
//! that leave the window, and every line at [`finish`](TerminalText::finish),
//! are handed to a sink with the `seq` of the output that started them. It
//! does not wrap at a width (a long line stays one line) and a line feed
//! also returns the carriage, so text written in raw mode does not
//! staircase. Full-screen drawing is not rendered here: while the program
//! is in the alternate screen, or after it positioned the cursor on an
//! absolute row, [`screen_mode`](TerminalText::screen_mode) says so and the
//! caller shows the server's rendered screen instead.
//!
//! The escape parser is a small state machine after the DEC/ANSI parser
//! model (<https://vt100.net/emu/dec_ansi_parser>). It is written here
//! rather than taken from `vte` because `vte` (with `std`) buffers whole OSC
//! strings: a program printing an endless OSC would grow memory without
//! bound. Here string contents are skipped, and every buffer is bounded.

use std::collections::VecDeque;

use unicode_width::UnicodeWidthChar;

/// Lines the cursor may still move back into (progress displays with many
/// bars redraw a few dozen lines at most).
pub const WINDOW_LINES: usize = 256;
/// A line longer than this is handed on in pieces.
pub const MAX_LINE_CELLS: usize = 64 * 1024;
/// Most parameters kept for one control sequence.
const MAX_PARAMS: usize = 16;
/// Tab stops every 8 columns.
const TAB: usize = 8;

/// One cell of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cell {
    Char(char),
    /// Never written, or erased: a space inside the line, nothing at its end.
    Blank,
    /// Covered by the wide character or tab before it.
    Covered,
}

#[derive(Debug, Default)]
struct Line {
    cells: Vec<Cell>,
    /// The seq of the output that first wrote to this line.
    seq: u64,
    /// A line feed left this line.
    ended: bool,
}

impl Line {
    fn text(&self) -> String {
        let end = self
            .cells
            .iter()
            .rposition(|c| *c != Cell::Blank && *c != Cell::Covered)
            .map_or(0, |i| i + 1);
        let mut text = String::with_capacity(end + 1);
        for cell in &self.cells[..end] {
            match cell {
                Cell::Char(c) => text.push(*c),
                Cell::Blank => text.push(' '),
                // The second half of a wide character, or a kept tab's span.
                Cell::Covered => {}
            }
        }
        if self.ended {
            text.push('\n');
        }
        text
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Ground,
    Escape,
    EscapeIntermediate,
    Csi,
    /// OSC, DCS, SOS, PM, APC: contents skipped until BEL or ST.
    String,
    /// ESC seen inside a string: `\` ends it.
    StringEscape,
}

/// Text output of a terminal stream; see the module docs.
#[derive(Debug, Default)]
pub struct TerminalText {
    state: State,
    params: Vec<u16>,
    param_started: bool,
    private: Option<u8>,
    intermediate: Option<u8>,
    utf8: [u8; 4],
    utf8_len: usize,
    utf8_need: usize,
    lines: VecDeque<Line>,
    /// Lines above this one were cleared away (`ESC [ 2 J`): rows are
    /// addressed from here.
    top: usize,
    row: usize,
    col: usize,
    saved: Option<(usize, usize)>,
    /// The program is drawing in the alternate screen (carried across calls).
    alternate: bool,
    /// Absolute rows were addressed since the last `finish`.
    positioned: bool,
    seq: u64,
}

impl TerminalText {
    /// A terminal at the start of its output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Interprets `bytes`, output with sequence number `seq`; lines that
    /// leave the window go to `sink` as `(seq, text)`.
    pub fn feed(&mut self, seq: u64, bytes: &[u8], sink: &mut impl FnMut(u64, &str)) {
        self.seq = seq;
        for &byte in bytes {
            self.byte(byte);
            if self.lines.len() > WINDOW_LINES {
                self.commit_first(sink);
            }
        }
    }

    /// Hands every line to `sink` (the last one without a line feed if none
    /// came) and starts afresh, keeping the parser's state and the
    /// alternate-screen mode for the next output.
    pub fn finish(&mut self, sink: &mut impl FnMut(u64, &str)) {
        while !self.lines.is_empty() {
            self.commit_first(sink);
        }
        self.row = 0;
        self.top = 0;
        self.col = 0;
        self.saved = None;
        self.positioned = false;
    }

    /// True when the program draws a full screen (the alternate screen, or
    /// rows addressed by number) and its text is best read from a rendered
    /// screen.
    pub fn screen_mode(&self) -> bool {
        self.alternate || self.positioned
    }

    fn commit_first(&mut self, sink: &mut impl FnMut(u64, &str)) {
        let line = self.lines.pop_front().expect("a line to commit");
        let text = line.text();
        if !text.is_empty() {
            sink(line.seq, &text);
        }
        self.row = self.row.saturating_sub(1);
        self.top = self.top.saturating_sub(1);
        if let Some((row, _)) = &mut self.saved {
            *row = row.saturating_sub(1);
        }
    }

    fn byte(&mut self, byte: u8) {
        match self.state {
            State::Ground => self.ground(byte),
            State::Escape => self.escape(byte),
            State::EscapeIntermediate => match byte {
                0x20..=0x2f => {}
                0x30..=0x7e => self.state = State::Ground, // Character sets: nothing to show.
                _ => self.anywhere(byte),
            },
            State::Csi => self.csi(byte),
            State::String => match byte {
                0x07 | 0x18 | 0x1a => self.state = State::Ground,
                0x1b => self.state = State::StringEscape,
                _ => {}
            },
            State::StringEscape => {
                if byte == b'\\' {
                    self.state = State::Ground;
                } else {
                    self.state = State::Escape;
                    self.escape(byte);
                }
            }
        }
    }

    /// Bytes that act the same in every state but strings.
    fn anywhere(&mut self, byte: u8) {
        match byte {
            0x1b => self.enter_escape(),
            0x18 | 0x1a => self.state = State::Ground,
            0x00..=0x1f => self.control(byte),
            _ => {}
        }
    }

    fn enter_escape(&mut self) {
        self.state = State::Escape;
        self.utf8_need = 0;
        self.utf8_len = 0;
    }

    fn ground(&mut self, byte: u8) {
        if self.utf8_need > 0 {
            if byte & 0xc0 == 0x80 {
                self.utf8[self.utf8_len] = byte;
                self.utf8_len += 1;
                if self.utf8_len == self.utf8_need {
                    self.utf8_need = 0;
                    let c = std::str::from_utf8(&self.utf8[..self.utf8_len])
                        .ok()
                        .and_then(|s| s.chars().next())
                        .unwrap_or(char::REPLACEMENT_CHARACTER);
                    self.print(c);
                }
                return;
            }
            // A sequence cut short: show that something was there.
            self.utf8_need = 0;
            self.print(char::REPLACEMENT_CHARACTER);
        }
        match byte {
            0x1b => self.enter_escape(),
            0x00..=0x1f => self.control(byte),
            0x20..=0x7e => self.print(byte as char),
            0x7f => {}
            0xc2..=0xdf => self.start_utf8(byte, 2),
            0xe0..=0xef => self.start_utf8(byte, 3),
            0xf0..=0xf4 => self.start_utf8(byte, 4),
            _ => self.print(char::REPLACEMENT_CHARACTER),
        }
    }

    fn start_utf8(&mut self, byte: u8, need: usize) {
        self.utf8[0] = byte;
        self.utf8_len = 1;
        self.utf8_need = need;
    }

    fn escape(&mut self, byte: u8) {
        self.state = State::Ground;
        match byte {
            b'[' => {
                self.state = State::Csi;
                self.params.clear();
                self.param_started = false;
                self.private = None;
                self.intermediate = None;
            }
            b']' | b'P' | b'X' | b'^' | b'_' => self.state = State::String,
            0x20..=0x2f => self.state = State::EscapeIntermediate,
            b'7' => self.saved = Some((self.row, self.col)),
            b'8' => self.restore_cursor(),
            b'M' => self.up(1),
            b'D' => self.line_feed(false),
            b'E' => self.line_feed(true),
            0x30..=0x7e => {}
            _ => self.anywhere(byte),
        }
    }

    fn csi(&mut self, byte: u8) {
        match byte {
            b'0'..=b'9' => {
                if !self.param_started {
                    self.param_started = true;
                    if self.params.len() < MAX_PARAMS {
                        self.params.push(0);
                    }
                }
                if let Some(last) = self.params.last_mut() {
                    *last = last
                        .saturating_mul(10)
                        .saturating_add(u16::from(byte - b'0'));
                }
            }
            b';' | b':' => {
                if !self.param_started && self.params.len() < MAX_PARAMS {
                    self.params.push(0);
                }
                self.param_started = false;
            }
            b'<'..=b'?' => self.private = Some(byte),
            0x20..=0x2f => self.intermediate = Some(byte),
            0x40..=0x7e => {
                self.state = State::Ground;
                self.dispatch(byte);
            }
            _ => self.anywhere(byte),
        }
    }

    /// Parameter `i`, with 0 or absent meaning `default`.
    fn param(&self, i: usize, default: usize) -> usize {
        match self.params.get(i) {
            Some(&0) | None => default,
            Some(&n) => usize::from(n),
        }
    }

    fn dispatch(&mut self, action: u8) {
        if self.intermediate.is_some() {
            return;
        }
        if let Some(marker) = self.private {
            if marker == b'?' && matches!(action, b'h' | b'l') {
                let alternate = self.params.iter().any(|p| matches!(p, 47 | 1047 | 1049));
                if alternate {
                    self.alternate = action == b'h';
                }
            }
            return;
        }
        let n = self.param(0, 1);
        match action {
            b'A' => self.up(n),
            b'B' | b'e' => self.move_down(n),
            b'C' | b'a' => self.col = self.col.saturating_add(n).min(MAX_LINE_CELLS),
            b'D' => self.col = self.col.saturating_sub(n),
            b'E' => {
                self.move_down(n);
                self.col = 0;
            }
            b'F' => {
                self.up(n);
                self.col = 0;
            }
            b'G' | b'`' => self.col = (n - 1).min(MAX_LINE_CELLS),
            b'H' | b'f' => {
                let row = self.param(0, 1);
                if row > 1 {
                    self.positioned = true;
                }
                self.row = (self.top + row - 1).min(self.lines.len());
                self.col = (self.param(1, 1) - 1).min(MAX_LINE_CELLS);
            }
            b'd' => {
                self.positioned = true;
                self.row = (self.top + n - 1).min(self.lines.len());
            }
            b'K' => self.erase_in_line(self.param(0, 0)),
            b'J' => match self.param(0, 0) {
                0 => {
                    self.erase_in_line(0);
                    self.lines.truncate(self.row + 1);
                }
                // A cleared screen: what was on it stays above as history,
                // drawing continues on fresh lines.
                2 | 3 => {
                    self.top = self.lines.len();
                    self.row = self.top;
                }
                _ => {}
            },
            b'P' => {
                let col = self.col;
                let line = self.line();
                let col = col.min(line.cells.len());
                let end = (col + n).min(line.cells.len());
                line.cells.drain(col..end);
            }
            b'@' => {
                let col = self.col;
                let line = self.line();
                if col <= line.cells.len() {
                    let n = n.min(MAX_LINE_CELLS);
                    line.cells
                        .splice(col..col, std::iter::repeat_n(Cell::Blank, n));
                }
            }
            b'X' => {
                let col = self.col;
                let line = self.line();
                let end = (col + n).min(line.cells.len());
                if col < end {
                    line.cells[col..end].fill(Cell::Blank);
                }
            }
            b's' => self.saved = Some((self.row, self.col)),
            b'u' => self.restore_cursor(),
            _ => {}
        }
    }

    fn up(&mut self, n: usize) {
        self.row = self.row.saturating_sub(n).max(self.top.min(self.row));
    }

    fn restore_cursor(&mut self) {
        if let Some((row, col)) = self.saved {
            self.row = row.min(self.lines.len());
            self.col = col;
        }
    }

    fn move_down(&mut self, n: usize) {
        for _ in 0..n.min(WINDOW_LINES) {
            self.line_feed(false);
        }
    }

    fn erase_in_line(&mut self, mode: usize) {
        let col = self.col;
        let line = self.line();
        match mode {
            0 => line.cells.truncate(col),
            1 => {
                let end = (col + 1).min(line.cells.len());
                line.cells[..end].fill(Cell::Blank);
            }
            _ => line.cells.clear(),
        }
    }

    fn control(&mut self, byte: u8) {
        match byte {
            b'\n' | 0x0b | 0x0c => self.line_feed(true),
            b'\r' => self.col = 0,
            0x08 => {
                self.col = self.col.saturating_sub(1);
                // Back over a wide character's second half.
                let col = self.col;
                if self.line().cells.get(col) == Some(&Cell::Covered) {
                    self.col = self.col.saturating_sub(1);
                }
            }
            b'\t' => self.tab(),
            _ => {}
        }
    }

    /// Moves to the next line (making one if needed); `carriage` also
    /// returns to column 0.
    fn line_feed(&mut self, carriage: bool) {
        self.line().ended = true;
        self.row += 1;
        if carriage {
            self.col = 0;
        }
        self.line();
    }

    fn tab(&mut self) {
        let stop = ((self.col / TAB) + 1) * TAB;
        let col = self.col;
        let line = self.line();
        if col >= line.cells.len() {
            // Appending: keep the tab itself, so tab-separated text survives.
            line.cells.resize(col, Cell::Blank);
            line.cells.push(Cell::Char('\t'));
            line.cells.resize(stop, Cell::Covered);
        }
        self.col = stop.min(MAX_LINE_CELLS);
    }

    /// The line under the cursor, created (with the lines above it) if the
    /// cursor moved past the last one.
    fn line(&mut self) -> &mut Line {
        while self.lines.len() <= self.row {
            self.lines.push_back(Line {
                seq: self.seq,
                ..Line::default()
            });
        }
        let seq = self.seq;
        let line = &mut self.lines[self.row];
        if line.cells.is_empty() && !line.ended {
            line.seq = seq;
        }
        line
    }

    fn print(&mut self, c: char) {
        if self.alternate {
            return; // Drawn on the alternate screen: read from the screen.
        }
        let width = c.width().unwrap_or(0);
        if width == 0 {
            // Combining marks join the character before them.
            let col = self.col;
            let line = self.line();
            if col > 0
                && let Some(Cell::Char(_)) = line.cells.get(col - 1)
            {
                // Not representable in one cell: append after the base.
                line.cells.insert(col, Cell::Char(c));
            }
            return;
        }
        if self.col + width > MAX_LINE_CELLS {
            // An endless line: start a fresh one.
            self.line_feed(true);
            if let Some(line) = self.lines.get_mut(self.row.wrapping_sub(1)) {
                line.ended = false;
            }
        }
        let col = self.col;
        let line = self.line();
        if line.cells.len() < col + width {
            line.cells.resize(col + width, Cell::Blank);
        }
        line.cells[col] = Cell::Char(c);
        if width == 2 {
            line.cells[col + 1] = Cell::Covered;
        }
        self.col += width;
    }
}

/// Renders `bytes` in one go (tests and one-off conversions).
pub fn render(bytes: &[u8]) -> String {
    let mut text = String::new();
    let mut renderer = TerminalText::new();
    let mut sink = |_seq: u64, line: &str| text.push_str(line);
    renderer.feed(1, bytes, &mut sink);
    renderer.finish(&mut sink);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_passes_through() {
        let text = "line one\n\ttabbed\tcolumns\nlast without newline";
        assert_eq!(render(text.as_bytes()), text);
        assert_eq!(render("naïve 日本語 ok\n".as_bytes()), "naïve 日本語 ok\n");
    }

    #[test]
    fn colors_and_modes_are_dropped() {
        let raw = b"\x1b[?2004h\x1b[0m\x1b[01;34mbin\x1b[0m  \x1b[01;32mrun.sh\x1b[0m\r\n";
        assert_eq!(render(raw), "bin  run.sh\n");
    }

    #[test]
    fn carriage_returns_overwrite_progress() {
        assert_eq!(
            render(b"progress 10%\rprogress 50%\rprogress 100%\n"),
            "progress 100%\n"
        );
        assert_eq!(render(b"downloading\r\x1b[Kdone\n"), "done\n");
        // A shorter rewrite without erasing keeps the tail, as on a screen.
        assert_eq!(render(b"12345\rab\n"), "ab345\n");
    }

    #[test]
    fn cursor_up_redraws_earlier_lines() {
        let raw = b"a: 0%\nb: 0%\n\x1b[2A\ra: 100%\n\rb: 100%\n";
        assert_eq!(render(raw), "a: 100%\nb: 100%\n");
    }

    #[test]
    fn a_cleared_screen_keeps_what_was_printed_before() {
        assert_eq!(render(b"a\nb\n\x1b[H\x1b[2Jc\n"), "a\nb\nc\n");
        assert_eq!(render(b"a\n\x1b[2J\x1b[Hc\n"), "a\nc\n");
    }

    #[test]
    fn line_editing_is_applied() {
        assert_eq!(render(b"helo\x08\x08llo\n"), "hello\n");
        assert_eq!(render(b"abcdef\r\x1b[2C\x1b[2P\n"), "abef\n");
        assert_eq!(render(b"abef\r\x1b[2C\x1b[2@cd\n"), "abcdef\n");
        assert_eq!(render(b"abcdef\r\x1b[1C\x1b[3X\n"), "a   ef\n");
    }

    #[test]
    fn strings_are_skipped_and_bounded() {
        assert_eq!(render(b"\x1b]0;title\x07visible\n"), "visible\n");
        assert_eq!(render(b"\x1b]0;title\x1b\\visible\n"), "visible\n");
        let mut endless = b"\x1b]0;".to_vec();
        endless.extend(std::iter::repeat_n(b'x', 1 << 20));
        let mut renderer = TerminalText::new();
        let mut lines = Vec::new();
        renderer.feed(1, &endless, &mut |_, l| lines.push(l.to_string()));
        renderer.feed(2, b"\x07after\n", &mut |_, l| lines.push(l.to_string()));
        renderer.finish(&mut |_, l| lines.push(l.to_string()));
        assert_eq!(lines.concat(), "after\n");
    }

    #[test]
    fn sequences_split_across_feeds_are_kept_whole() {
        let mut renderer = TerminalText::new();
        let mut text = String::new();
        let mut sink = |_: u64, l: &str| text.push_str(l);
        renderer.feed(1, b"red: \x1b[3", &mut sink);
        renderer.feed(2, b"1mred\xe6\x97", &mut sink);
        renderer.feed(3, b"\xa5\x1b[0m\n", &mut sink);
        renderer.finish(&mut sink);
        assert_eq!(text, "red: red日\n");
    }

    #[test]
    fn the_alternate_screen_is_left_to_the_screen() {
        let mut renderer = TerminalText::new();
        let mut text = String::new();
        renderer.feed(1, b"before\n\x1b[?1049h\x1b[Hfull screen", &mut |_, l| {
            text.push_str(l)
        });
        assert!(renderer.screen_mode());
        renderer.finish(&mut |_, l| text.push_str(l));
        assert!(renderer.screen_mode(), "still in the alternate screen");
        renderer.feed(2, b"\x1b[?1049lafter\n", &mut |_, l| text.push_str(l));
        assert!(!renderer.screen_mode());
        renderer.finish(&mut |_, l| text.push_str(l));
        assert_eq!(text, "before\nafter\n");
    }

    #[test]
    fn lines_leaving_the_window_carry_their_seq() {
        let mut renderer = TerminalText::new();
        let mut seen = Vec::new();
        for i in 0..(WINDOW_LINES as u64 + 10) {
            renderer.feed(i + 1, format!("line {i}\n").as_bytes(), &mut |seq, l| {
                seen.push((seq, l.to_string()))
            });
        }
        assert_eq!(seen.len(), 11, "lines beyond the window were handed on");
        assert_eq!(seen[0], (1, "line 0\n".to_string()));
        renderer.finish(&mut |seq, l| seen.push((seq, l.to_string())));
        assert_eq!(seen.len(), WINDOW_LINES + 10);
        assert_eq!(
            seen.last().unwrap().1,
            format!("line {}\n", WINDOW_LINES + 9)
        );
    }

    #[test]
    fn an_endless_line_is_handed_on_in_pieces() {
        let long = vec![b'x'; MAX_LINE_CELLS * 2 + 5];
        let text = render(&long);
        assert_eq!(text.len(), long.len());
    }
}
