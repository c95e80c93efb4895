//! The bounded copy of a process's output kept for later reads (SPEC 3.1).
//!
//! Each stream keeps its first bytes (the head) and its latest bytes (the
//! tail), each up to half of the per-stream cap; bytes pushed out of the
//! middle are counted, never silently forgotten. Chunks are `Bytes` shared
//! with the live output path, so retaining costs a reference count, not a
//! copy.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::OutputStream;

/// Default retention cap per stream: 1 MiB, half head and half tail.
pub const DEFAULT_RETAINED_BYTES: usize = 1024 * 1024;

/// One retained piece of output with the sequence number it was sent with.
/// A chunk split between head and tail appears in both with the same `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetainedChunk {
    pub seq: u64,
    pub stream: OutputStream,
    pub data: Bytes,
}

/// Head and tail of one output stream.
#[derive(Debug)]
pub struct RetainedStream {
    head: Vec<RetainedChunk>,
    head_bytes: usize,
    head_cap: usize,
    tail: VecDeque<RetainedChunk>,
    tail_bytes: usize,
    tail_cap: usize,
    total_bytes: u64,
    dropped_bytes: u64,
}

impl RetainedStream {
    pub fn new(cap: usize) -> Self {
        let head_cap = cap / 2;
        RetainedStream {
            head: Vec::new(),
            head_bytes: 0,
            head_cap,
            tail: VecDeque::new(),
            tail_bytes: 0,
            tail_cap: cap - head_cap,
            total_bytes: 0,
            dropped_bytes: 0,
        }
    }

    pub fn push(&mut self, seq: u64, stream: OutputStream, mut data: Bytes) {
        self.total_bytes += data.len() as u64;
        let head_room = self.head_cap - self.head_bytes;
        if head_room > 0 && self.tail.is_empty() {
            let take = head_room.min(data.len());
            self.head.push(RetainedChunk {
                seq,
                stream,
                data: data.split_to(take),
            });
            self.head_bytes += take;
        }
        if data.is_empty() {
            return;
        }
        self.tail_bytes += data.len();
        self.tail.push_back(RetainedChunk { seq, stream, data });
        while self.tail_bytes > self.tail_cap {
            let excess = self.tail_bytes - self.tail_cap;
            let front = self.tail.front_mut().expect("tail holds the excess bytes");
            let evict = excess.min(front.data.len());
            let _ = front.data.split_to(evict);
            if front.data.is_empty() {
                self.tail.pop_front();
            }
            self.tail_bytes -= evict;
            self.dropped_bytes += evict as u64;
        }
    }

    /// True once bytes were dropped from the middle.
    pub fn truncated(&self) -> bool {
        self.dropped_bytes > 0
    }

    /// Bytes ever written to this stream.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Bytes dropped from the middle.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }

    /// Retained chunks in order: the head, then the tail.
    pub fn chunks(&self) -> impl Iterator<Item = &RetainedChunk> {
        self.head.iter().chain(self.tail.iter())
    }

    /// The retained bytes, head then tail, concatenated.
    pub fn contents(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head_bytes + self.tail_bytes);
        for chunk in self.chunks() {
            out.extend_from_slice(&chunk.data);
        }
        out
    }
}

/// Retention for one process: stdout and stderr for pipes, one terminal
/// stream for PTYs.
#[derive(Debug)]
pub struct RetainedOutput {
    streams: [RetainedStream; 2],
}

impl RetainedOutput {
    pub fn new(cap_per_stream: usize) -> Self {
        RetainedOutput {
            streams: [
                RetainedStream::new(cap_per_stream),
                RetainedStream::new(cap_per_stream),
            ],
        }
    }

    fn index(stream: OutputStream) -> usize {
        match stream {
            OutputStream::Stdout | OutputStream::Pty => 0,
            OutputStream::Stderr => 1,
        }
    }

    pub fn push(&mut self, seq: u64, stream: OutputStream, data: Bytes) {
        self.streams[Self::index(stream)].push(seq, stream, data);
    }

    pub fn stream(&self, stream: OutputStream) -> &RetainedStream {
        &self.streams[Self::index(stream)]
    }

    pub fn truncated(&self) -> bool {
        self.streams.iter().any(RetainedStream::truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_is_kept_whole() {
        let mut s = RetainedStream::new(16);
        s.push(1, OutputStream::Stdout, Bytes::from_static(b"hello "));
        s.push(2, OutputStream::Stdout, Bytes::from_static(b"world"));
        assert_eq!(s.contents(), b"hello world");
        assert!(!s.truncated());
        assert_eq!(s.total_bytes(), 11);
    }

    #[test]
    fn the_middle_is_dropped_and_counted_head_and_tail_survive() {
        let mut s = RetainedStream::new(8);
        let mut all = Vec::new();
        for (seq, piece) in [&b"abc"[..], b"defgh", b"ijklmnop", b"qrs"]
            .iter()
            .enumerate()
        {
            s.push(
                seq as u64 + 1,
                OutputStream::Stdout,
                Bytes::copy_from_slice(piece),
            );
            all.extend_from_slice(piece);
        }
        // Head is the first 4 bytes, tail the last 4; 11 bytes dropped.
        assert_eq!(s.contents(), b"abcdpqrs");
        assert!(s.truncated());
        assert_eq!(s.dropped_bytes(), all.len() as u64 - 8);
        assert_eq!(s.total_bytes(), all.len() as u64);
        let seqs: Vec<u64> = s.chunks().map(|c| c.seq).collect();
        assert_eq!(
            seqs,
            vec![1, 2, 3, 4],
            "head 'abc'+'d', tail 'p' of seq 3, 'qrs'"
        );
    }

    #[test]
    fn streams_are_retained_separately() {
        let mut r = RetainedOutput::new(64);
        r.push(1, OutputStream::Stdout, Bytes::from_static(b"out"));
        r.push(2, OutputStream::Stderr, Bytes::from_static(b"err"));
        assert_eq!(r.stream(OutputStream::Stdout).contents(), b"out");
        assert_eq!(r.stream(OutputStream::Stderr).contents(), b"err");
        assert!(!r.truncated());
    }
}
