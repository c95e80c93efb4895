//! The bounded copy of a process's output kept for later reads (SPEC 3.1).
//!
//! Each stream keeps its first bytes (the head) and its latest bytes (the
//! tail), each up to half of the per-stream cap; bytes pushed out of the
//! middle are counted, never silently forgotten. Chunks are `Bytes` shared
//! with the live output path, so retaining costs a reference count, not a
//! copy.
//!
//! Every retained chunk knows its stream offset: the position of its first
//! byte among all the bytes ever written to its stream. Head and tail parts
//! of a split chunk, and a chunk whose front was evicted, keep exact
//! offsets, so a reader that counts the bytes it received per stream can
//! tell exactly how many it missed before any chunk (the Rust client's gap
//! accounting). The seq-based `dropped_bytes` of a read is for readers that
//! do not count; its precision is documented on [`RetainedOutput::read_after`].

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
    /// Stream offset of `data[0]`: bytes written to this stream before it.
    pub offset: u64,
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
    /// Bytes evicted from the middle, as `(seq, bytes)` in seq order, for
    /// gap reports. When the index grows past [`EVICTION_INDEX_LIMIT`] the
    /// two oldest entries are merged under the later seq, so an old entry
    /// may carry bytes of earlier seqs.
    evicted: VecDeque<(u64, u64)>,
}

/// Entries kept in a stream's eviction index before old ones are merged.
const EVICTION_INDEX_LIMIT: usize = 1024;

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
            evicted: VecDeque::new(),
        }
    }

    pub fn push(&mut self, seq: u64, stream: OutputStream, mut data: Bytes) {
        let mut offset = self.total_bytes;
        self.total_bytes += data.len() as u64;
        let head_room = self.head_cap - self.head_bytes;
        if head_room > 0 && self.tail.is_empty() {
            let take = head_room.min(data.len());
            self.head.push(RetainedChunk {
                seq,
                stream,
                offset,
                data: data.split_to(take),
            });
            self.head_bytes += take;
            offset += take as u64;
        }
        if data.is_empty() {
            return;
        }
        self.tail_bytes += data.len();
        self.tail.push_back(RetainedChunk {
            seq,
            stream,
            offset,
            data,
        });
        while self.tail_bytes > self.tail_cap {
            let excess = self.tail_bytes - self.tail_cap;
            let front = self.tail.front_mut().expect("tail holds the excess bytes");
            let evict = excess.min(front.data.len());
            let evicted_seq = front.seq;
            let _ = front.data.split_to(evict);
            front.offset += evict as u64;
            if front.data.is_empty() {
                self.tail.pop_front();
            }
            self.tail_bytes -= evict;
            self.dropped_bytes += evict as u64;
            self.record_eviction(evicted_seq, evict as u64);
        }
    }

    fn record_eviction(&mut self, seq: u64, bytes: u64) {
        match self.evicted.back_mut() {
            Some((last_seq, last_bytes)) if *last_seq == seq => *last_bytes += bytes,
            _ => self.evicted.push_back((seq, bytes)),
        }
        if self.evicted.len() > EVICTION_INDEX_LIMIT {
            // Merge the two oldest entries under the later seq.
            let (_, first) = self.evicted.pop_front().expect("over the limit");
            self.evicted.front_mut().expect("over the limit").1 += first;
        }
    }

    /// Whether pushing `len` more bytes would drop some from the middle.
    pub fn would_drop(&self, len: usize) -> bool {
        let head_room = if self.tail.is_empty() {
            self.head_cap - self.head_bytes
        } else {
            0
        };
        self.tail_bytes + len.saturating_sub(head_room) > self.tail_cap
    }

    /// Bytes with a sequence number above `after_seq` that were dropped.
    pub fn dropped_after(&self, after_seq: u64) -> u64 {
        self.dropped_between(after_seq, u64::MAX)
    }

    /// Bytes with a sequence number in `after_seq + 1 ..= up_to` that were
    /// dropped (merged index entries count under their latest seq).
    pub fn dropped_between(&self, after_seq: u64, up_to: u64) -> u64 {
        self.evicted
            .iter()
            .rev()
            .skip_while(|(seq, _)| *seq > up_to)
            .take_while(|(seq, _)| *seq > after_seq)
            .map(|(_, bytes)| bytes)
            .sum()
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

    /// The seq of the newest retained chunk.
    pub fn last_seq(&self) -> Option<u64> {
        self.tail.back().or(self.head.last()).map(|c| c.seq)
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

    /// The seq of the newest retained output chunk (0 before any output):
    /// everything up to it is retained or counted as dropped.
    pub fn last_seq(&self) -> u64 {
        self.streams
            .iter()
            .filter_map(RetainedStream::last_seq)
            .max()
            .unwrap_or(0)
    }

    /// Retained chunks with a sequence number above `after_seq`, in order,
    /// whole chunks up to `max_bytes` (at least one, so a reader always
    /// makes progress), and the bytes dropped from the seqs this answer
    /// covers: above `after_seq` and, when `max_bytes` cut the answer short,
    /// up to its last chunk. Reading on from the last chunk therefore never
    /// counts a dropped byte twice.
    ///
    /// `dropped_bytes` is exact while the seqs involved are among the
    /// stream's last [`EVICTION_INDEX_LIMIT`] evictions. Beyond that, merged
    /// index entries count under their latest seq: an answer may then
    /// include bytes of seqs at or below `after_seq` (more than the reader
    /// missed), and a short answer may leave bytes of its own seqs to the
    /// next one. Chunk offsets are always exact.
    pub fn read_after(&self, after_seq: u64, max_bytes: usize) -> RetainedRead {
        let mut chunks: Vec<&RetainedChunk> = self
            .streams
            .iter()
            .flat_map(|stream| stream.chunks().filter(|c| c.seq > after_seq))
            .collect();
        // Head and tail parts of a split chunk share a seq and stay in order
        // (stable sort).
        chunks.sort_by_key(|c| c.seq);
        let mut read = RetainedRead {
            chunks: Vec::new(),
            dropped_bytes: 0,
            complete: true,
        };
        let mut bytes = 0;
        for (i, chunk) in chunks.iter().enumerate() {
            let more = bytes + chunk.data.len() > max_bytes && !read.chunks.is_empty();
            // Never stop between the parts of a split chunk: the next read
            // starts after this seq.
            let same_seq_as_previous = i > 0 && chunks[i - 1].seq == chunk.seq;
            if more && !same_seq_as_previous {
                read.complete = false;
                break;
            }
            bytes += chunk.data.len();
            read.chunks.push((*chunk).clone());
        }
        let up_to = match read.chunks.last() {
            Some(last) if !read.complete => last.seq,
            _ => u64::MAX,
        };
        read.dropped_bytes = self
            .streams
            .iter()
            .map(|s| s.dropped_between(after_seq, up_to))
            .sum();
        read
    }
}

/// The answer to [`RetainedOutput::read_after`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetainedRead {
    pub chunks: Vec<RetainedChunk>,
    /// Bytes of the seqs this answer covers that retention had dropped.
    pub dropped_bytes: u64,
    /// False when `max_bytes` stopped the read before the newest chunk.
    pub complete: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes 3 + 5 + 8 + 3 bytes (seqs 1–4) into a stream that keeps 8;
    /// returns it and everything pushed.
    fn four_pushes_into_eight_bytes() -> (RetainedStream, Vec<u8>) {
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
        (s, all)
    }

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
        let (s, all) = four_pushes_into_eight_bytes();
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
    fn reads_after_a_seq_merge_streams_in_order_and_report_gaps() {
        let mut r = RetainedOutput::new(8);
        r.push(1, OutputStream::Stdout, Bytes::from_static(b"ab"));
        r.push(2, OutputStream::Stderr, Bytes::from_static(b"E"));
        r.push(3, OutputStream::Stdout, Bytes::from_static(b"cdefghij"));
        r.push(4, OutputStream::Stdout, Bytes::from_static(b"klmn"));
        // stdout: head "abcd" (seq 1, 3), tail "jklmn" capped to 4 = "klmn";
        // dropped "efghij" (seq 3, 6 bytes).
        let all = r.read_after(0, usize::MAX);
        let text: Vec<(u64, &[u8])> = all.chunks.iter().map(|c| (c.seq, &c.data[..])).collect();
        assert_eq!(
            text,
            vec![(1, &b"ab"[..]), (2, b"E"), (3, b"cd"), (4, b"klmn")]
        );
        assert_eq!(all.dropped_bytes, 6);
        assert!(all.complete);
        assert_eq!(
            r.read_after(3, usize::MAX).dropped_bytes,
            0,
            "the gap is at seq 3"
        );
        assert_eq!(r.read_after(2, usize::MAX).dropped_bytes, 6);
        let limited = r.read_after(0, 3);
        assert_eq!(limited.chunks.len(), 2, "whole chunks up to the budget");
        assert!(!limited.complete);
        let first = r.read_after(0, 0);
        assert_eq!(first.chunks.len(), 1, "always at least one chunk");
    }

    #[test]
    fn the_eviction_index_stays_bounded_and_never_undercounts() {
        let mut s = RetainedStream::new(2);
        for seq in 1..=5000u64 {
            s.push(seq, OutputStream::Stdout, Bytes::from_static(b"xy"));
        }
        assert!(s.evicted.len() <= EVICTION_INDEX_LIMIT);
        assert_eq!(s.dropped_after(0), s.dropped_bytes());
        // Exact near the end, where the index was not merged.
        // Each seq above 4990 lost both bytes, except the last, whose "y"
        // is still the retained tail.
        assert_eq!(s.dropped_after(4990), 2 * 9 + 1);
    }

    #[test]
    fn every_chunk_keeps_its_exact_stream_offset() {
        let (s, all) = four_pushes_into_eight_bytes();
        let placed: Vec<(u64, u64, &[u8])> =
            s.chunks().map(|c| (c.seq, c.offset, &c.data[..])).collect();
        // The head split "defgh" after "d"; eviction trimmed "ijklmnop"
        // down to its last byte.
        assert_eq!(
            placed,
            vec![
                (1, 0, &b"abc"[..]),
                (2, 3, b"d"),
                (3, 15, b"p"),
                (4, 16, b"qrs")
            ]
        );
        for chunk in s.chunks() {
            let at = chunk.offset as usize;
            assert_eq!(&all[at..at + chunk.data.len()], &chunk.data[..]);
        }
    }

    #[test]
    fn paged_reads_count_each_dropped_byte_once() {
        let mut r = RetainedOutput::new(8);
        for seq in 1..=20u64 {
            r.push(seq, OutputStream::Stdout, Bytes::from_static(b"xy"));
        }
        // Head: seqs 1 and 2; tail: seqs 19 and 20; 32 bytes dropped.
        let mut after = 0;
        let mut pages = Vec::new();
        loop {
            let read = r.read_after(after, 2);
            let Some(last) = read.chunks.last() else {
                break;
            };
            pages.push((last.seq, read.dropped_bytes));
            after = last.seq;
            if read.complete {
                break;
            }
        }
        assert_eq!(pages, vec![(1, 0), (2, 0), (19, 32), (20, 0)]);
        let total: u64 = pages.iter().map(|(_, dropped)| dropped).sum();
        assert_eq!(total, r.stream(OutputStream::Stdout).dropped_bytes());
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
