//! The rendered screen of a PTY process, for `process/snapshot`.
//!
//! A terminal emulator (the `vt100` crate) replays the process's terminal
//! output. It is fed lazily, from retention, when a screen is asked for or
//! the terminal is resized, so the output hot path never pays for it.

use std::num::NonZeroU16;

use crate::OutputStream;
use crate::pty::TerminalSize;
use crate::retention::RetainedOutput;

pub(crate) struct TerminalScreen {
    parser: vt100::Parser,
    /// Output up to this seq has been fed to the parser.
    fed_through: u64,
    /// True once a gap in retention was replayed over: the screen is then
    /// the best reconstruction of what is left.
    approximate: bool,
}

fn nonzero(value: u16) -> NonZeroU16 {
    NonZeroU16::new(value).unwrap_or(NonZeroU16::MIN)
}

impl TerminalScreen {
    pub(crate) fn new(size: TerminalSize) -> Self {
        TerminalScreen {
            parser: vt100::Parser::new(nonzero(size.rows), nonzero(size.cols), 0),
            fed_through: 0,
            approximate: false,
        }
    }

    /// Feeds the terminal output retained since the last call.
    pub(crate) fn catch_up(&mut self, retained: &RetainedOutput) {
        let read = retained.read_after(self.fed_through, usize::MAX);
        if read.dropped_bytes > 0 {
            self.approximate = true;
        }
        for chunk in read.chunks.iter().filter(|c| c.stream == OutputStream::Pty) {
            self.parser.process(&chunk.data);
            self.fed_through = self.fed_through.max(chunk.seq);
        }
    }

    /// Feeds everything retained, then `data` (chunk `seq`, not yet
    /// retained), before retention drops bytes it has not seen: the screen
    /// stays exact however much output retention loses. Each byte is still
    /// parsed once, only earlier.
    pub(crate) fn feed_before_eviction(
        &mut self,
        retained: &RetainedOutput,
        seq: u64,
        data: &[u8],
    ) {
        self.catch_up(retained);
        self.parser.process(data);
        self.fed_through = self.fed_through.max(seq);
    }

    pub(crate) fn resize(&mut self, size: TerminalSize) {
        self.parser.set_size(nonzero(size.rows), nonzero(size.cols));
    }

    /// The visible screen as text lines, without trailing blanks.
    pub(crate) fn lines(&self) -> Vec<String> {
        let screen = self.parser.screen();
        let (_, cols) = screen.size();
        screen
            .rows(0, cols.get())
            .map(|row| row.trim_end().to_string())
            .collect()
    }

    pub(crate) fn approximate(&self) -> bool {
        self.approximate
    }

    /// The size the screen is rendered at.
    pub(crate) fn size(&self) -> TerminalSize {
        let (rows, cols) = self.parser.screen().size();
        TerminalSize {
            rows: rows.get(),
            cols: cols.get(),
        }
    }

    /// Bytes that redraw this screen on a terminal in its initial state:
    /// the alternate screen when it is active, contents with colours and
    /// attributes, cursor position and visibility, and input modes
    /// (application cursor keys, bracketed paste, mouse reporting). A
    /// browser terminal paints these first and then goes on with the live
    /// output that follows.
    pub(crate) fn formatted(&self) -> Vec<u8> {
        let screen = self.parser.screen();
        let mut out = Vec::new();
        if screen.alternate_screen() {
            out.extend_from_slice(b"\x1b[?1049h");
        }
        out.extend_from_slice(screen.state_formatted().as_bytes());
        out
    }
}
