//! The client's memory stays bounded while a resumed handle replays a large
//! backlog to a slow reader and the process keeps writing (issue 10).
//!
//! This test binary counts every heap byte it allocates (the server is a
//! separate process), so the figure is the client's own: the dispatcher,
//! the transport, the handle's channel and the test's reader. It is a file
//! of its own so that no other test shares the allocator's counters.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::resume::*;

/// The system allocator, counting live bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is passed unchanged to the system allocator, which
// upholds `GlobalAlloc`'s contract; the counters do not touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same layout, same contract as our caller's.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `alloc` with `layout`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_of_a_large_backlog_to_a_slow_reader_keeps_client_memory_bounded() {
    // 256 MiB of retention holds the whole backlog: nothing is dropped, so
    // the replay really moves 60 MB through the client.
    let setup = Setup::start(&["--retained-output-bytes", "268435456"]).await;
    let go = setup.marker("go");
    let written = setup.marker("written");
    let backlog_lines = 6_000_000;
    let live_lines = 6_000_000;
    let total_lines = backlog_lines + live_lines;
    // After the backlog, the process keeps writing while the client
    // replays: 60 MB more.
    let script = format!(
        "{}; while [ ! -e {go} ]; do sleep 0.01; done; {}; touch {written}; {}",
        numbered(1, 100),
        numbered(101, backlog_lines),
        numbered(backlog_lines + 1, total_lines),
        go = go.display(),
        written = written.display(),
    );
    let mut process = setup.spawn(&script).await;
    let mut ledger = Ledger::new(total_lines * LINE);
    while ledger.delivered < 100 * LINE {
        assert!(next(&mut process, &mut ledger).await);
    }
    setup.cut_and_pause();
    std::fs::write(&go, b"").unwrap();
    wait_for_file(&written).await;
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    setup.come_back();
    // A slow reader: the replay must wait for it rather than buffer.
    drain(&mut process, &mut ledger, Pace::BytesPerMs(50_000)).await;
    let peak = PEAK.load(Ordering::Relaxed);
    eprintln!(
        "client heap: {:.1} MiB before the replay, peak {:.1} MiB during it ({} MB replayed)",
        before as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        ledger.delivered / 1_000_000
    );
    ledger.assert_exact();
    // What the client can hold at worst, whatever the backlog: the handle's
    // channel (256 events of at most 64 KiB), the held run (8 MiB), one
    // page in its three forms (JSON, value, bytes: about 4 MiB) and the
    // transport's queue (64 messages): about 36 MiB. The old client
    // buffered every live notification during a replay (81 to 100 MiB for
    // this test at 220 MB).
    assert!(
        (peak - before) as u64 <= 40 * MIB,
        "the client buffered {:.1} MiB during the replay",
        (peak - before) as f64 / MIB as f64
    );
}
