//! Bounds on what one client can make the server hold, checked by the
//! handlers (docs/SECURITY.md, "Bounds"):
//!
//! - [`ProcessSlots`]: running processes on the whole server, detached ones
//!   included (`--max-processes`); a slot is taken before the spawn and
//!   returned when the process has been reaped.
//! - [`check_process_id`]: client-chosen process ids are 1 to 256 bytes of
//!   printable ASCII (space through `~`), because ids end up in logs, error
//!   messages and a browser page, where control characters, escapes and
//!   look-alike Unicode do harm and nothing else is needed.
//! - [`check_terminal_size`]: rows and columns between 1 and
//!   `--max-terminal-rows`/`-cols`.
//! - [`check_write_id`] and [`check_labels`]: what a process record keeps
//!   for its whole life (up to 4,096 write ids for idempotent retries, its
//!   labels for `process/list`) is small, not up to a message each.
//!
//! Pattern memory per connection is bounded in [`crate::pattern`], the
//! stdin queue in the process core.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use exec_server_core::{ProcessHandle, TerminalSize};

/// Longest accepted client-chosen process id, in bytes.
pub const MAX_PROCESS_ID_BYTES: usize = 256;

/// Running processes of the whole server, against `--max-processes`.
#[derive(Debug)]
pub(crate) struct ProcessSlots {
    max: usize,
    live: Arc<AtomicUsize>,
}

/// One running process's place in [`ProcessSlots`]; returned on drop.
#[derive(Debug)]
pub(crate) struct ProcessSlot(Arc<AtomicUsize>);

impl ProcessSlots {
    pub(crate) fn new(max: usize) -> Self {
        ProcessSlots {
            max,
            live: Arc::default(),
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Processes holding a slot now.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// A slot for one more process, or `None` at the limit.
    pub(crate) fn acquire(&self) -> Option<ProcessSlot> {
        let max = self.max;
        self.live
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ProcessSlot(self.live.clone()))
    }
}

impl ProcessSlot {
    /// Holds the slot until `process` has exited and been reaped.
    pub(crate) fn release_on_exit(self, process: ProcessHandle) {
        tokio::spawn(async move {
            process.wait().await;
            drop(self);
        });
    }
}

impl Drop for ProcessSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a client-chosen process id was refused (the message says it all).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProcessIdError {
    #[error("processId must be 1 to {MAX_PROCESS_ID_BYTES} bytes")]
    Length,
    #[error("processId may only contain printable ASCII characters (space to `~`)")]
    Characters,
}

/// Checks a client-chosen process id (see the module docs).
pub(crate) fn check_process_id(id: &str) -> Result<(), ProcessIdError> {
    if id.is_empty() || id.len() > MAX_PROCESS_ID_BYTES {
        return Err(ProcessIdError::Length);
    }
    if !id.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(ProcessIdError::Characters);
    }
    Ok(())
}

/// Longest `writeId`, in bytes.
pub const MAX_WRITE_ID_BYTES: usize = 256;

/// Labels one process may carry, and their total size (keys and values).
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_BYTES: usize = 16 * 1024;

/// A `writeId` of 1 to [`MAX_WRITE_ID_BYTES`] bytes.
pub(crate) fn check_write_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_WRITE_ID_BYTES {
        return Err(format!("writeId must be 1 to {MAX_WRITE_ID_BYTES} bytes"));
    }
    Ok(())
}

/// At most [`MAX_LABELS`] labels of [`MAX_LABEL_BYTES`] in all.
pub(crate) fn check_labels<'a>(
    labels: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("labels: at most {MAX_LABELS} per process"));
    }
    let bytes: usize = labels.map(|(key, value)| key.len() + value.len()).sum();
    if bytes > MAX_LABEL_BYTES {
        return Err(format!(
            "labels: at most {MAX_LABEL_BYTES} bytes of keys and values per process"
        ));
    }
    Ok(())
}

/// A terminal size out of bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TerminalSizeError {
    #[error("rows and cols must be at least 1")]
    Zero,
    #[error(
        "a terminal of {rows}x{cols} exceeds this server's maximum of {max_rows}x{max_cols} (--max-terminal-rows, --max-terminal-cols)"
    )]
    TooLarge {
        rows: u16,
        cols: u16,
        max_rows: u16,
        max_cols: u16,
    },
}

/// Checks a requested terminal size against the server's maximum.
pub(crate) fn check_terminal_size(
    size: TerminalSize,
    max: TerminalSize,
) -> Result<(), TerminalSizeError> {
    if size.rows == 0 || size.cols == 0 {
        return Err(TerminalSizeError::Zero);
    }
    if size.rows > max.rows || size.cols > max.cols {
        return Err(TerminalSizeError::TooLarge {
            rows: size.rows,
            cols: size.cols,
            max_rows: max.rows,
            max_cols: max.cols,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_ids_are_printable_ascii_of_bounded_length() {
        for ok in [
            "a",
            "build 1",
            "proc-7",
            "x~!@#$%^&*()_+{}|:\"<>?`",
            &"x".repeat(256),
        ] {
            assert_eq!(check_process_id(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(check_process_id(""), Err(ProcessIdError::Length));
        assert_eq!(
            check_process_id(&"x".repeat(257)),
            Err(ProcessIdError::Length)
        );
        for bad in [
            "a\0b",
            "\x1b[31mred",
            "tab\there",
            "new\nline",
            "del\x7f",
            "café",
            "\u{202e}evil",
        ] {
            assert_eq!(
                check_process_id(bad),
                Err(ProcessIdError::Characters),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn write_ids_and_labels_are_small() {
        assert!(check_write_id("w-1").is_ok());
        assert!(check_write_id("").is_err());
        assert!(check_write_id(&"w".repeat(257)).is_err());
        let labels = |n: usize, value: usize| -> std::collections::BTreeMap<String, String> {
            (0..n)
                .map(|i| (format!("k{i}"), "v".repeat(value)))
                .collect()
        };
        assert!(check_labels(labels(64, 10).iter()).is_ok());
        assert!(check_labels(labels(65, 1).iter()).is_err());
        assert!(check_labels(labels(2, 9000).iter()).is_err());
    }

    #[test]
    fn terminal_sizes_are_bounded() {
        let max = TerminalSize {
            rows: 1000,
            cols: 1000,
        };
        let size = |rows, cols| TerminalSize { rows, cols };
        assert_eq!(check_terminal_size(size(1000, 1000), max), Ok(()));
        assert_eq!(
            check_terminal_size(size(0, 80), max),
            Err(TerminalSizeError::Zero)
        );
        let error = check_terminal_size(size(65535, 65535), max).unwrap_err();
        assert_eq!(
            error.to_string(),
            "a terminal of 65535x65535 exceeds this server's maximum of 1000x1000 (--max-terminal-rows, --max-terminal-cols)"
        );
        assert!(check_terminal_size(size(24, 1001), max).is_err());
    }

    #[test]
    fn process_slots_stop_at_the_maximum_and_come_back() {
        let slots = ProcessSlots::new(2);
        let a = slots.acquire().unwrap();
        let _b = slots.acquire().unwrap();
        assert!(slots.acquire().is_none());
        assert_eq!(slots.live(), 2);
        drop(a);
        assert!(slots.acquire().is_some());
    }
}
