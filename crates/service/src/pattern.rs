//! `match` patterns of `process/wait`, compiled within a per-connection
//! memory budget.
//!
//! A regular expression's memory is not its length: `\w{20}` is nine bytes
//! and compiles to megabytes of Unicode automata, and each search keeps
//! lazy-DFA caches that grow with use. With up to 256 waits per connection,
//! a client could pin gigabytes. So a pattern is compiled with bounded
//! engine sizes, searched with one explicit cache of bounded capacity, and
//! charged to its connection's [`PatternBudget`] for as long as its wait
//! runs: the regex's own heap (as the engine reports it), the largest its
//! cache may grow to, and the window of recent output the wait matches
//! against. A wait that does not fit is refused with a clear error before
//! it starts; one that ends returns its charge.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use regex_automata::meta::{Cache, Regex};
use regex_automata::util::syntax;

/// Longest accepted `match` pattern, in bytes.
pub(crate) const MAX_PATTERN_BYTES: usize = 4096;

/// Compiled size allowed for each of a pattern's automata.
const NFA_SIZE_LIMIT: usize = 1024 * 1024;

/// Capacity of each lazy DFA cache (forward and reverse); the engine falls
/// back to slower searches rather than grow beyond it. Windows are at most
/// 128 KiB, so a small cache loses little.
const HYBRID_CACHE_BYTES: usize = 256 * 1024;

/// Recent output a wait keeps to find matches that span chunks, plus the
/// chunk being examined (see `process/wait`).
pub(crate) const MATCH_WINDOW_BYTES: usize = 64 * 1024;
const WINDOW_CHARGE_BYTES: usize = MATCH_WINDOW_BYTES + exec_server_core::MAX_CHUNK_BYTES;

/// Memory all of one connection's running pattern waits may hold.
pub const PATTERN_BUDGET_BYTES: usize = 32 * 1024 * 1024;

/// What one connection's compiled patterns may hold at once. Cheap to
/// clone; charges return when their [`Pattern`] is dropped.
#[derive(Clone, Debug)]
pub(crate) struct PatternBudget(Arc<BudgetInner>);

#[derive(Debug)]
struct BudgetInner {
    limit: usize,
    used: AtomicUsize,
}

/// Why a pattern was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PatternError {
    #[error("match must be at most {MAX_PATTERN_BYTES} bytes")]
    TooLong,
    #[error("match is not a valid regular expression: {0}")]
    Invalid(String),
    #[error(
        "match needs {needed} bytes to run, and this connection's waits already hold {used} of {limit}; wait for fewer patterns at once"
    )]
    OverBudget {
        needed: usize,
        used: usize,
        limit: usize,
    },
}

impl PatternBudget {
    pub(crate) fn new(limit: usize) -> Self {
        PatternBudget(Arc::new(BudgetInner {
            limit,
            used: AtomicUsize::new(0),
        }))
    }

    /// Bytes held by running waits now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.0.used.load(Ordering::SeqCst)
    }

    /// Compiles `pattern` and charges it to this budget.
    pub(crate) fn compile(&self, pattern: &str) -> Result<Pattern, PatternError> {
        if pattern.len() > MAX_PATTERN_BYTES {
            return Err(PatternError::TooLong);
        }
        let regex = Regex::builder()
            // Bytes, as `regex::bytes`: Unicode classes, but a match may
            // cover output that is not UTF-8.
            .syntax(syntax::Config::new().utf8(false))
            .configure(
                Regex::config()
                    .utf8_empty(false)
                    .nfa_size_limit(Some(NFA_SIZE_LIMIT))
                    .onepass_size_limit(Some(NFA_SIZE_LIMIT))
                    .dfa_size_limit(Some(NFA_SIZE_LIMIT))
                    .hybrid_cache_capacity(HYBRID_CACHE_BYTES)
                    // Its visited set would cost 256 KiB more per wait;
                    // the PikeVM does the same work on these windows.
                    .backtrack(false),
            )
            .build(pattern)
            .map_err(|error| PatternError::Invalid(error.to_string()))?;
        // The cache's parts other than the lazy DFAs (the PikeVM's state
        // sets) grow with the automaton, which the regex's own size stands
        // in for.
        let needed = 2 * regex.memory_usage() + 2 * HYBRID_CACHE_BYTES + WINDOW_CHARGE_BYTES;
        let limit = self.0.limit;
        self.0
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(needed).filter(|&total| total <= limit)
            })
            .map_err(|used| PatternError::OverBudget {
                needed,
                used,
                limit,
            })?;
        let cache = regex.create_cache();
        Ok(Pattern {
            regex,
            cache,
            _charge: Charge {
                budget: self.clone(),
                bytes: needed,
            },
        })
    }
}

/// A compiled pattern with its own search cache, charged to its budget
/// until dropped.
#[derive(Debug)]
pub(crate) struct Pattern {
    regex: Regex,
    cache: Cache,
    /// Held for as long as the pattern lives.
    _charge: Charge,
}

impl Pattern {
    pub(crate) fn is_match(&mut self, haystack: &[u8]) -> bool {
        self.regex.is_match_with(&mut self.cache, &haystack.into())
    }

    /// The bytes this pattern holds of its budget.
    #[cfg(test)]
    fn charged(&self) -> usize {
        self._charge.bytes
    }

    /// What the engine reports it holds now (regex and cache).
    #[cfg(test)]
    fn memory_usage(&self) -> usize {
        self.regex.memory_usage() + self.cache.memory_usage()
    }
}

#[derive(Debug)]
struct Charge {
    budget: PatternBudget,
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.0.used.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output a terminal might print: words, numbers, escapes, invalid UTF-8.
    fn haystack() -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..20_000u32 {
            out.extend_from_slice(format!("line {i}: café Ωmega \x1b[32mok\x1b[0m ").as_bytes());
            out.push(0xff);
        }
        out
    }

    #[test]
    fn matching_follows_regex_bytes_semantics() {
        let budget = PatternBudget::new(PATTERN_BUDGET_BYTES);
        let mut ready = budget.compile("ready|listening on").unwrap();
        assert!(ready.is_match(b"server listening on 8080"));
        assert!(!ready.is_match(b"starting"));
        let mut word = budget.compile(r"\w{4}\s\d+").unwrap();
        assert!(word.is_match("café 12".as_bytes()));
        let mut raw = budget.compile(r"(?-u)\xff").unwrap();
        assert!(raw.is_match(&[b'a', 0xff]));
        assert!(matches!(budget.compile("("), Err(PatternError::Invalid(_))));
        assert!(matches!(
            budget.compile(&"a".repeat(MAX_PATTERN_BYTES + 1)),
            Err(PatternError::TooLong)
        ));
    }

    #[test]
    fn the_charge_covers_what_the_engine_holds_after_searching() {
        let budget = PatternBudget::new(PATTERN_BUDGET_BYTES);
        let text = haystack();
        for source in [
            r"\w{20}",
            "ready",
            r"(?i)error|warn(ing)?",
            r"[0-9]+ passed",
            r"\p{Greek}+\d{3}$",
        ] {
            let mut pattern = budget.compile(source).unwrap();
            for window in text.chunks(64 * 1024) {
                pattern.is_match(window);
            }
            let held = pattern.memory_usage();
            eprintln!(
                "{source:>24}: charged {} KiB, holds {} KiB",
                pattern.charged() / 1024,
                held / 1024
            );
            assert!(held + WINDOW_CHARGE_BYTES <= pattern.charged(), "{source}");
        }
        assert_eq!(budget.used(), 0, "charges return on drop");
    }

    #[test]
    fn a_connection_runs_out_of_pattern_budget_with_a_clear_error() {
        let budget = PatternBudget::new(PATTERN_BUDGET_BYTES);
        let mut held = Vec::new();
        let error = loop {
            match budget.compile(r"\w{20}") {
                Ok(pattern) => held.push(pattern),
                Err(error) => break error,
            }
            assert!(held.len() < 256, "the budget never ran out");
        };
        assert!(matches!(error, PatternError::OverBudget { .. }));
        assert!(
            error.to_string().contains("wait for fewer patterns"),
            "{error}"
        );
        assert!(budget.used() <= PATTERN_BUDGET_BYTES);
        eprintln!("{} waits of \\w{{20}} fit", held.len());
        held.pop();
        assert!(
            budget.compile(r"\w{20}").is_ok(),
            "a finished wait frees room"
        );
    }
}
