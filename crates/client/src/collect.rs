//! Output budgets for tool layers that hand output to a language model:
//! keep the head and the tail, count what was cut, never drop the tail (a
//! failed build's error is at the end).

use std::collections::VecDeque;

use crate::process::ExitInfo;

/// At most `budget` bytes of one stream: its first half-budget bytes, its
/// last half-budget bytes, and the count of bytes cut in between.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budgeted {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_budget: usize,
    tail_budget: usize,
    omitted: u64,
}

impl Budgeted {
    /// An empty budget of `budget` bytes (half head, half tail).
    pub fn new(budget: usize) -> Self {
        let head_budget = budget / 2;
        Budgeted {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_budget,
            tail_budget: budget - head_budget,
            omitted: 0,
        }
    }

    /// Adds bytes: the head fills first, then the tail keeps the latest.
    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.tail.is_empty() && self.head.len() < self.head_budget {
            let take = (self.head_budget - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        self.tail.extend(bytes);
        if self.tail.len() > self.tail_budget {
            let excess = self.tail.len() - self.tail_budget;
            self.tail.drain(..excess);
            self.omitted += excess as u64;
        }
    }

    /// Bytes cut from the middle.
    pub fn omitted(&self) -> u64 {
        self.omitted
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
            format!("{head}{tail}")
        } else {
            format!("{head}\n[... {} bytes omitted ...]\n{tail}", self.omitted)
        }
    }
}

/// What [`RemoteProcess::collect`](crate::RemoteProcess::collect) gathered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collected {
    /// stdout of a pipe-mode process.
    pub stdout: Budgeted,
    /// stderr of a pipe-mode process.
    pub stderr: Budgeted,
    /// The terminal stream of a PTY process.
    pub pty: Budgeted,
    /// Bytes the server's retention dropped (reported after a resume).
    pub dropped_bytes: u64,
    /// Set when the process exited within the window.
    pub exit: Option<ExitInfo>,
}

exec_server_protocol::index_by_stream!(Collected => Budgeted);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_budget_everything_is_kept() {
        let mut b = Budgeted::new(10);
        b.push(b"hello");
        b.push(b"!");
        assert_eq!(b.contents(), b"hello!");
        assert_eq!(b.omitted(), 0);
        assert_eq!(b.to_text(), "hello!");
    }

    #[test]
    fn over_budget_the_head_and_the_tail_survive() {
        let mut b = Budgeted::new(8);
        for piece in [&b"abc"[..], b"defghij", b"klmnop", b"qr"] {
            b.push(piece);
        }
        assert_eq!(b.contents(), b"abcdopqr");
        assert_eq!(b.omitted(), 18 - 8);
        assert_eq!(b.to_text(), "abcd\n[... 10 bytes omitted ...]\nopqr");
    }

    #[test]
    fn a_zero_budget_counts_everything_as_omitted() {
        let mut b = Budgeted::new(0);
        b.push(b"xyz");
        assert!(b.is_empty());
        assert_eq!(b.omitted(), 3);
    }
}
