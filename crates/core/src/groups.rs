//! The process-group registry, and grace-then-kill.
//!
//! Every child leads its own process group, so a group kill reaches its
//! grandchildren and background jobs too (SPEC 1.6). A server keeps one
//! [`ProcessGroups`] registry of every group that may still have members,
//! each entered under its [`GroupOwner`] (a session):
//!
//! - a session ends: [`ProcessGroups::kill_owned_by`] kills its groups;
//! - the server shuts down: [`ProcessGroups::terminate_all`] (SIGTERM, the
//!   grace, SIGKILL) reaches every group of every session;
//! - a process is closed and its group has no member left:
//!   [`ProcessGroups::forget_if_empty`]. A group outlives its leader while
//!   background jobs remain, so it stays until then.
//!
//! The registry is also the only thing that feeds the watchdog (the helper
//! process that kills our groups if the server dies without cleanup): each
//! group entered is tracked there, each group killed or found empty is
//! forgotten there, in the registry's own order. So the watchdog holds the
//! same set, and never a stale id that an unrelated process group could
//! reuse later.
//!
//! [`GracefulKill`] is the one implementation of "SIGTERM now, SIGKILL
//! after a grace", for one process (`process/terminate`) and for every
//! group at shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::process::signal_process_group;
use crate::watchdog;

/// Who a process group belongs to: killed together when the owner ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupOwner(u64);

/// The registry of live process groups. Cheap to clone: clones share it.
#[derive(Clone, Debug, Default)]
pub struct ProcessGroups {
    inner: Arc<Mutex<Registry>>,
}

#[derive(Debug, Default)]
struct Registry {
    /// Process group id → owner.
    groups: HashMap<i32, GroupOwner>,
    next_owner: u64,
}

impl ProcessGroups {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.inner.lock().expect("process group registry poisoned")
    }

    /// A new owner, distinct from every other of this registry.
    pub fn new_owner(&self) -> GroupOwner {
        let mut registry = self.lock();
        registry.next_owner += 1;
        GroupOwner(registry.next_owner)
    }

    /// Enters a new process group under `owner` (and in the watchdog).
    pub fn insert(&self, owner: GroupOwner, pgid: i32) {
        let mut registry = self.lock();
        if registry.groups.insert(pgid, owner).is_none() {
            watchdog::track(pgid);
        }
    }

    /// Forgets `pgid` if the group has no members left.
    pub fn forget_if_empty(&self, pgid: i32) {
        // Checked under the lock: the id cannot be reused by a new group
        // and entered again between the check and the removal.
        let mut registry = self.lock();
        if matches!(signal_process_group(pgid, 0), Ok(false))
            && registry.groups.remove(&pgid).is_some()
        {
            watchdog::forget(pgid);
        }
    }

    /// SIGKILLs every group of `owner` and forgets them. Returns them.
    pub fn kill_owned_by(&self, owner: GroupOwner) -> Vec<i32> {
        let mut registry = self.lock();
        let owned: Vec<i32> = registry
            .groups
            .iter()
            .filter(|(_, o)| **o == owner)
            .map(|(pgid, _)| *pgid)
            .collect();
        for pgid in &owned {
            registry.groups.remove(pgid);
        }
        kill_and_forget(&owned);
        owned
    }

    /// SIGKILLs every group and empties the registry. Returns the groups.
    pub fn kill_all(&self) -> Vec<i32> {
        let mut registry = self.lock();
        let all: Vec<i32> = registry.groups.drain().map(|(pgid, _)| pgid).collect();
        kill_and_forget(&all);
        all
    }

    /// Shutdown: every group gets SIGTERM, then up to `grace` to end;
    /// whatever is left, and any group entered meanwhile, is SIGKILLed.
    /// A zero grace is an immediate SIGKILL. Returns how many groups there
    /// were.
    pub async fn terminate_all(&self, grace: Duration) -> usize {
        let mut groups = self.pgids();
        if !grace.is_zero() {
            let kill = match GracefulKill::start(groups.clone(), grace) {
                Ok(kill) => kill,
                Err(error) => {
                    // The other groups were still sent SIGTERM, and every
                    // group gets the SIGKILL below.
                    tracing::warn!(%error, "SIGTERM to a process group failed");
                    GracefulKill::started(groups.clone(), grace)
                }
            };
            kill.finish(all_empty(&groups)).await;
        }
        groups.extend(self.kill_all());
        groups.sort_unstable();
        groups.dedup();
        groups.len()
    }

    /// The groups in the registry now.
    pub fn pgids(&self) -> Vec<i32> {
        self.lock().groups.keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().groups.is_empty()
    }

    /// How many groups `owner` has in the registry.
    pub fn owned_by(&self, owner: GroupOwner) -> usize {
        self.lock().groups.values().filter(|o| **o == owner).count()
    }
}

/// SIGKILL to each group, then the watchdog forgets it: a SIGKILLed group
/// cannot gain members (a fork racing the signal fails), so there is
/// nothing left for the watchdog to do.
fn kill_and_forget(groups: &[i32]) {
    for &pgid in groups {
        if let Err(error) = signal_process_group(pgid, libc::SIGKILL) {
            tracing::warn!(pgid, %error, "killing a process group failed");
        }
        watchdog::forget(pgid);
    }
}

/// How often [`all_empty`] looks whether the groups have ended. Groups end
/// on their own schedule and nothing notifies us of an empty group, so a
/// short poll within the grace is the simple way.
const EMPTY_POLL: Duration = Duration::from_millis(10);

/// Resolves when none of `groups` has members left.
async fn all_empty(groups: &[i32]) {
    while groups
        .iter()
        .any(|&pgid| matches!(signal_process_group(pgid, 0), Ok(true)))
    {
        tokio::time::sleep(EMPTY_POLL).await;
    }
}

/// "SIGTERM now, SIGKILL after a grace" for some process groups: the polite
/// way to stop programs that clean up on SIGTERM, bounded for those that
/// do not.
#[must_use = "the SIGKILL is sent by `finish`"]
#[derive(Debug)]
pub struct GracefulKill {
    groups: Vec<i32>,
    grace: Duration,
}

impl GracefulKill {
    /// Sends SIGTERM to every group now. A group that no longer exists is
    /// not an error; the first other failure is returned, after every
    /// group was tried.
    pub fn start(groups: Vec<i32>, grace: Duration) -> io::Result<GracefulKill> {
        let mut failure = None;
        for &pgid in &groups {
            if let Err(error) = signal_process_group(pgid, libc::SIGTERM) {
                failure.get_or_insert(error);
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(GracefulKill::started(groups, grace)),
        }
    }

    /// The second half only, for groups that were already sent SIGTERM.
    fn started(groups: Vec<i32>, grace: Duration) -> GracefulKill {
        GracefulKill { groups, grace }
    }

    /// Waits for `ended` for at most the grace; if it did not come, sends
    /// SIGKILL to every group. Returns whether the SIGKILL was needed.
    pub async fn finish(self, ended: impl Future<Output = ()>) -> bool {
        if tokio::time::timeout(self.grace, ended).await.is_ok() {
            return false;
        }
        for &pgid in &self.groups {
            let _ = signal_process_group(pgid, libc::SIGKILL);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProcessConfig, spawn_process};

    async fn sleeper(script: &str) -> crate::Process {
        let argv = ["/bin/sh", "-c", script].map(String::from).to_vec();
        spawn_process(ProcessConfig::new(argv, "/"))
            .await
            .expect("spawn")
    }

    fn alive(pgid: i32) -> bool {
        matches!(signal_process_group(pgid, 0), Ok(true))
    }

    #[tokio::test]
    async fn an_owner_kills_its_own_groups_and_no_others() {
        let groups = ProcessGroups::new();
        let (a, b) = (groups.new_owner(), groups.new_owner());
        assert_ne!(a, b);
        let first = sleeper("/bin/sleep 30").await;
        let second = sleeper("/bin/sleep 30").await;
        groups.insert(a, first.handle.pid());
        groups.insert(b, second.handle.pid());
        assert_eq!(groups.owned_by(a), 1);

        assert_eq!(groups.kill_owned_by(a), vec![first.handle.pid()]);
        first.handle.wait().await;
        assert!(second.handle.exit_status().is_none(), "b's group survives");
        assert_eq!(groups.pgids(), vec![second.handle.pid()]);
        assert_eq!(groups.kill_all(), vec![second.handle.pid()]);
        second.handle.wait().await;
        assert!(groups.is_empty());
    }

    #[tokio::test]
    async fn a_group_is_forgotten_only_once_its_background_jobs_are_gone() {
        let groups = ProcessGroups::new();
        let owner = groups.new_owner();
        // The leader exits at once; its background job keeps the group.
        let process = sleeper("/bin/sleep 30 & exit 0").await;
        let pgid = process.handle.pid();
        groups.insert(owner, pgid);
        process.handle.wait().await;
        groups.forget_if_empty(pgid);
        assert_eq!(groups.len(), 1, "the background job still runs");
        assert!(alive(pgid));
        groups.kill_owned_by(owner);
        assert!(groups.is_empty());
        for _ in 0..500 {
            if !alive(pgid) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!alive(pgid), "the background job was killed with its group");
    }

    #[tokio::test]
    async fn terminate_all_lets_polite_programs_go_and_kills_the_stubborn() {
        let groups = ProcessGroups::new();
        let owner = groups.new_owner();
        let polite = sleeper("/bin/sleep 30").await;
        let stubborn = sleeper("trap '' TERM; echo ready; /bin/sleep 30").await;
        // Wait until the trap is set: its `echo` comes after.
        let mut events = stubborn.events;
        assert!(matches!(
            events.recv().await,
            Some(crate::ProcessEvent::Output { .. })
        ));
        groups.insert(owner, polite.handle.pid());
        groups.insert(owner, stubborn.handle.pid());

        let started = tokio::time::Instant::now();
        let grace = Duration::from_millis(400);
        assert_eq!(groups.terminate_all(grace).await, 2);
        let elapsed = started.elapsed();
        assert!(elapsed >= grace, "waited only {elapsed:?}");
        assert_eq!(polite.handle.wait().await.signal_name(), Some("SIGTERM"));
        assert_eq!(stubborn.handle.wait().await.signal_name(), Some("SIGKILL"));
        assert!(groups.is_empty());
    }

    #[tokio::test]
    async fn terminate_all_returns_as_soon_as_every_group_ended() {
        let groups = ProcessGroups::new();
        let owner = groups.new_owner();
        let polite = sleeper("/bin/sleep 30").await;
        groups.insert(owner, polite.handle.pid());
        let started = tokio::time::Instant::now();
        groups.terminate_all(Duration::from_secs(20)).await;
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(polite.handle.wait().await.signal_name(), Some("SIGTERM"));
    }
}
