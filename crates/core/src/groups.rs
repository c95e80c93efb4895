//! Sets of process groups to kill together: a connection's processes when
//! it ends, or every process when the server shuts down (SPEC 1.6).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::process::signal_process_group;

/// A shared set of process group ids. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ProcessGroups {
    groups: Arc<Mutex<HashSet<i32>>>,
}

impl ProcessGroups {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        self.groups.lock().expect("process group set poisoned")
    }

    pub fn insert(&self, pgid: i32) {
        self.lock().insert(pgid);
    }

    pub fn remove(&self, pgid: i32) {
        self.lock().remove(&pgid);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Forgets `pgid` if the group has no members left. A group outlives its
    /// leader while background jobs remain, so it is kept until then.
    pub fn forget_if_empty(&self, pgid: i32) {
        if matches!(signal_process_group(pgid, 0), Ok(false)) {
            self.remove(pgid);
        }
    }

    /// Sends `signal` to every group in the set; returns the groups.
    pub fn signal_all(&self, signal: i32) -> Vec<i32> {
        let groups: Vec<i32> = self.lock().iter().copied().collect();
        for &pgid in &groups {
            let _ = signal_process_group(pgid, signal);
        }
        groups
    }

    /// SIGKILLs every group in the set and empties it. Returns the groups
    /// that were in the set.
    pub fn kill_all(&self) -> Vec<i32> {
        let groups: Vec<i32> = self.lock().drain().collect();
        for &pgid in &groups {
            if let Err(error) = signal_process_group(pgid, libc::SIGKILL) {
                tracing::warn!(pgid, %error, "killing a process group failed");
            }
        }
        groups
    }
}
