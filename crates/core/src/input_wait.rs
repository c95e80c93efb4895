//! Is the process waiting for its input? Asked of the kernel, not guessed
//! from silence.
//!
//! An agent driving a shell or a REPL wants its turn back the moment the
//! program sits at a prompt. A quiet timer costs its whole length on every
//! step; a prompt regex knows only the prompts someone wrote down. The kernel
//! knows: the program is blocked in a read of its terminal (or its stdin
//! pipe). This module looks, through `/proc`, and says so.
//!
//! # How one look works ([`observe`])
//! 1. The group that may read the input: for a PTY, the terminal's
//!    foreground process group (`tcgetpgrp` on the master — on Linux it
//!    answers for the slave side); for pipes, the child's own process group.
//! 2. Its members: the child's process tree is walked through
//!    `/proc/PID/task/TID/children` (plus the group leader, should it have
//!    been reparented out of the tree), keeping the processes whose `pgrp`
//!    is that group. Zombies are left out.
//! 3. Every thread of every member, from `/proc/PID/task/TID/stat` and
//!    `.../syscall`: a thread that is running (`R`), in uninterruptible sleep
//!    (`D`) or stopped (`T`) makes the answer "busy". A sleeping thread is an
//!    *input reader* when its system call is one of
//!    - `read`/`readv`/`pread64`/`preadv`/`preadv2` of a descriptor that is
//!      our input;
//!    - `select`/`pselect6` with our input in its read set, or
//!      `poll`/`ppoll` with it among the `POLLIN` descriptors (the sets are
//!      read from `/proc/PID/mem`): bash's readline and Python's `input()`
//!      wait this way;
//!    - `epoll_wait`/`epoll_pwait`/`epoll_pwait2` on an epoll instance whose
//!      interest list (`/proc/PID/fdinfo/EPFD`) holds our input for reading:
//!      Node's REPL (libuv) waits this way.
//!
//!    "Our input" is checked by identity, not by number: a descriptor whose
//!    `stat` is the PTY slave's device (or `/dev/tty`, which for a member of
//!    the foreground group can only be this terminal), or the stdin pipe's
//!    inode. So a duplicate (`read -u 3`), a reopened terminal (libuv,
//!    `getpass`) count; a sleep in `read` of a socket, a file or another
//!    pipe does not.
//! 4. The answer is "waiting" when at least one thread reads our input,
//!    nothing in the group runs, no output is left unread in the PTY master
//!    or the output pipes, and no write of ours to the input is queued.
//!
//! # Settling ([`until_waiting`])
//! One look can be fooled by a race: the program just printed and the
//! pump has not read it yet, or a byte we wrote is still in the kernel's
//! terminal buffers on its way to the reader. So a "waiting" look is
//! confirmed by a second one [`SETTLE`] later that must be identical,
//! including every thread's scheduler statistics (`/proc/.../schedstat`,
//! which change whenever a thread runs), with no new output in between and at
//! least [`WRITE_SETTLE`] after our last write to the input finished. Looks
//! start at once, then back off from [`FIRST_LOOK`] to [`MAX_LOOK_INTERVAL`]
//! (longer for big process trees: a build's many processes are not looked
//! at 20 times a second), and start over whenever output arrives (a prompt is usually the last
//! thing printed before a read).
//!
//! # Limits (documented in docs/DESIGN.md too)
//! - Linux only (`/proc`, `tcgetpgrp` on a master); elsewhere every look is
//!   unknown and callers fall back to their timers.
//! - Reading `syscall`, `mem` and `fd` of a process needs ptrace access:
//!   a server running as an ordinary user cannot look into setuid programs
//!   (a real `sudo` prompt) or programs that made themselves undumpable
//!   (`ssh`, `gpg`): the answer is unknown unless another thread of the group
//!   is a known reader.
//! - Processes of the group that left the child's tree (reparented to init)
//!   are not seen, except the group leader.
//! - io_uring reads, 32-bit programs (other system call numbers), nested
//!   epoll instances and signalfd-style waits are not recognised: unknown or
//!   busy, never a false "waiting".
//! - A program that polls its input with a short timeout and prints between
//!   polls is "waiting" whenever it is caught between two prints: it *is*
//!   reading its input.
//! - Each look costs a few `/proc` reads per thread of the group (tens of
//!   microseconds for a shell); trees and thread counts are bounded
//!   ([`MAX_PROCESSES`], [`MAX_TASKS`]): beyond them the answer is unknown.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use crate::process::Shared;

/// Wait after new output (or a busy look) before looking again.
pub const FIRST_LOOK: Duration = Duration::from_millis(1);
/// Longest pause between looks while the process is busy, for a tree of
/// up to [`PROCESSES_PER_INTERVAL`] processes; bigger trees wait longer,
/// up to [`MAX_LOOK_INTERVAL_BIG_TREE`].
pub const MAX_LOOK_INTERVAL: Duration = Duration::from_millis(50);
pub const PROCESSES_PER_INTERVAL: usize = 16;
pub const MAX_LOOK_INTERVAL_BIG_TREE: Duration = Duration::from_millis(500);
/// Between the two identical looks that confirm a wait.
pub const SETTLE: Duration = Duration::from_millis(10);
/// Least time between our last write to the input and a confirmed wait:
/// the bytes cross the terminal's buffers on a kernel worker.
pub const WRITE_SETTLE: Duration = Duration::from_millis(15);
/// Processes walked per look.
pub const MAX_PROCESSES: usize = 512;
/// Threads inspected per look.
pub const MAX_TASKS: usize = 4096;
/// `poll` descriptors read per call inspected.
const MAX_POLL_FDS: usize = 1024;
/// `select` sets are at most `FD_SETSIZE` bits.
const MAX_SELECT_FDS: usize = 1024;
/// Longest `/proc` file read (epoll interest lists can be long).
const MAX_PROC_FILE: u64 = 256 * 1024;
/// `/dev/tty`: major 5, minor 0.
const DEV_TTY: (u32, u32) = (5, 0);

/// What the process's input is, to recognise reads of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InputIdentity {
    /// The PTY slave, by device number.
    Terminal { rdev: u64 },
    /// The stdin pipe, by inode.
    Pipe { dev: u64, ino: u64 },
}

impl InputIdentity {
    pub(crate) fn of_terminal(slave: &OwnedFd) -> io::Result<Self> {
        let stat = rustix::fs::fstat(slave)?;
        Ok(InputIdentity::Terminal { rdev: stat.st_rdev })
    }

    pub(crate) fn of_pipe(read_end: &OwnedFd) -> io::Result<Self> {
        let stat = rustix::fs::fstat(read_end)?;
        Ok(InputIdentity::Pipe {
            dev: stat.st_dev,
            ino: stat.st_ino,
        })
    }

    fn matches(&self, meta: &fs::Metadata) -> bool {
        match *self {
            InputIdentity::Terminal { rdev } => {
                let kind = meta.file_type();
                kind.is_char_device()
                    && (meta.rdev() == rdev
                        || (
                            rustix::fs::major(meta.rdev()),
                            rustix::fs::minor(meta.rdev()),
                        ) == DEV_TTY)
            }
            InputIdentity::Pipe { dev, ino } => {
                meta.file_type().is_fifo() && meta.dev() == dev && meta.ino() == ino
            }
        }
    }
}

/// Our writes to the process's input that have not reached the kernel yet,
/// and when the last one did.
#[derive(Debug, Default)]
pub(crate) struct StdinActivity {
    pending: AtomicUsize,
    last_write: Mutex<Option<Instant>>,
}

impl StdinActivity {
    /// `bytes` were queued for the writer.
    pub(crate) fn queued(&self, bytes: usize) {
        self.pending.fetch_add(bytes, Ordering::SeqCst);
    }

    /// `bytes` were written, or will never be.
    pub(crate) fn done(&self, bytes: usize) {
        *self
            .last_write
            .lock()
            .expect("stdin activity lock poisoned") = Some(Instant::now());
        self.pending.fetch_sub(bytes, Ordering::SeqCst);
    }

    fn pending(&self) -> bool {
        self.pending.load(Ordering::SeqCst) > 0
    }

    fn last_write(&self) -> Option<Instant> {
        *self
            .last_write
            .lock()
            .expect("stdin activity lock poisoned")
    }
}

/// What input-wait detection needs to know about one process.
pub(crate) struct InputWatch {
    pub identity: Option<InputIdentity>,
    /// Output descriptors (PTY master, or stdout and stderr pipes): bytes
    /// left in them are output not yet drained.
    pub outputs: Vec<Weak<AsyncFd<OwnedFd>>>,
}

/// The answer of one look at a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputWait {
    /// Blocked reading its input, nothing else in its group running, its
    /// output drained.
    Waiting,
    /// Running, sleeping on something else, or output still unread.
    Busy,
    /// Cannot tell (see the module's limits); the reason says why.
    Unknown(String),
}

/// One thread's state, compared between two looks.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TaskState {
    tid: i32,
    syscall: String,
    schedule: String,
}

enum Look {
    Waiting(Vec<TaskState>),
    Busy,
    Unknown(String),
}

/// One look (see the module docs). Synchronous: a few small `/proc` reads.
pub(crate) fn observe(shared: &Shared) -> InputWait {
    match look(shared).0 {
        Look::Waiting(_) => InputWait::Waiting,
        Look::Busy => InputWait::Busy,
        Look::Unknown(reason) => InputWait::Unknown(reason),
    }
}

/// Resolves once the process is waiting for input, confirmed as the module
/// docs describe. Never resolves for a process that cannot wait for input
/// (stdin `/dev/null`, exited) or that cannot be inspected: race it with
/// the caller's own deadline.
pub(crate) async fn until_waiting(shared: &Shared) {
    if shared.input_watch.identity.is_none() {
        return std::future::pending().await;
    }
    let mut progress = shared.progress.subscribe();
    let mut exit = shared.exit.subscribe();
    let mut interval = Duration::ZERO;
    loop {
        if exit.borrow_and_update().is_some() {
            return std::future::pending().await;
        }
        progress.borrow_and_update();
        if !interval.is_zero() && !pause(&mut progress, interval).await {
            interval = FIRST_LOOK;
            continue;
        }
        let (first, walked) = look(shared);
        let most = (MAX_LOOK_INTERVAL * (1 + walked / PROCESSES_PER_INTERVAL) as u32)
            .min(MAX_LOOK_INTERVAL_BIG_TREE);
        interval = (interval * 2).clamp(FIRST_LOOK, most);
        let Look::Waiting(first) = first else {
            continue;
        };
        let mut settle = SETTLE;
        if let Some(written) = shared.stdin_activity.last_write() {
            settle = settle.max((written + WRITE_SETTLE).saturating_duration_since(Instant::now()));
        }
        if !pause(&mut progress, settle).await {
            interval = FIRST_LOOK;
            continue;
        }
        if let (Look::Waiting(second), _) = look(shared)
            && second == first
        {
            return;
        }
    }
}

/// Sleeps `duration`; false if output arrived meanwhile.
async fn pause(progress: &mut tokio::sync::watch::Receiver<u64>, duration: Duration) -> bool {
    tokio::select! {
        changed = progress.changed() => {
            if changed.is_err() {
                std::future::pending::<()>().await;
            }
            false
        }
        _ = tokio::time::sleep(duration) => true,
    }
}

/// One look, and how many processes it walked.
fn look(shared: &Shared) -> (Look, usize) {
    let Some(identity) = shared.input_watch.identity else {
        return (
            Look::Unknown("the process has no input (stdin is /dev/null)".into()),
            0,
        );
    };
    if shared.exit.borrow().is_some() {
        return (Look::Busy, 0);
    }
    if shared.stdin_activity.pending() || output_pending(&shared.input_watch.outputs) {
        return (Look::Busy, 0);
    }
    let group = match identity {
        InputIdentity::Terminal { .. } => {
            let Some(master) = &shared.terminal else {
                return (Look::Unknown("no terminal".into()), 0);
            };
            match rustix::termios::tcgetpgrp(master.get_ref().as_fd()) {
                Ok(pgrp) => pgrp.as_raw_nonzero().get(),
                Err(error) => {
                    let reason = format!("tcgetpgrp on the terminal failed: {error}");
                    return (Look::Unknown(reason), 0);
                }
            }
        }
        InputIdentity::Pipe { .. } => shared.pid,
    };
    match inspect_group(shared.pid, group, identity) {
        Ok(looked) => looked,
        Err(error) => (Look::Unknown(error), MAX_PROCESSES),
    }
}

fn output_pending(outputs: &[Weak<AsyncFd<OwnedFd>>]) -> bool {
    outputs.iter().filter_map(Weak::upgrade).any(|fd| {
        // Unreadable (closed, end of file): nothing pending there.
        rustix::io::ioctl_fionread(fd.get_ref()).is_ok_and(|n| n > 0)
    })
}

/// Walks the tree under `root` (and from the group leader) and inspects
/// every thread of the members of `group`.
fn inspect_group(root: i32, group: i32, identity: InputIdentity) -> Result<(Look, usize), String> {
    let mut stack = vec![root];
    if group != root {
        stack.push(group);
    }
    let mut seen = HashSet::new();
    let mut members = Vec::new();
    while let Some(pid) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        if seen.len() > MAX_PROCESSES {
            return Err(format!("more than {MAX_PROCESSES} processes to inspect"));
        }
        let Some(stat) = ProcStat::read(&format!("/proc/{pid}/stat")) else {
            continue; // Gone meanwhile.
        };
        if stat.pgrp == group && !matches!(stat.state, 'Z' | 'X') {
            members.push(pid);
        }
        for tid in tasks(pid) {
            let path = format!("/proc/{pid}/task/{tid}/children");
            if let Ok(children) = read_bounded(&path) {
                stack.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<i32>().ok()),
                );
            }
        }
    }
    let walked = seen.len();
    if members.is_empty() {
        return Ok((Look::Busy, walked));
    }
    let mut states = Vec::new();
    let mut reader = false;
    let mut uninspectable = None;
    for pid in members {
        let mut inspector = Inspector {
            pid,
            identity,
            checked: Vec::new(),
        };
        for tid in tasks(pid) {
            if states.len() >= MAX_TASKS {
                return Err(format!("more than {MAX_TASKS} threads to inspect"));
            }
            let task = format!("/proc/{pid}/task/{tid}");
            let Some(stat) = ProcStat::read(&format!("{task}/stat")) else {
                continue;
            };
            match stat.state {
                'Z' | 'X' => continue,
                'R' | 'D' | 'T' | 't' | 'W' => return Ok((Look::Busy, walked)),
                _ => {}
            }
            let syscall = match read_bounded(&format!("{task}/syscall")) {
                Ok(line) => line.trim().to_string(),
                Err(error) => {
                    uninspectable = Some(format!("cannot inspect process {pid}: {error}"));
                    continue;
                }
            };
            if syscall == "running" {
                return Ok((Look::Busy, walked));
            }
            match inspector.reads_input(&syscall) {
                Ok(true) => reader = true,
                Ok(false) => {}
                Err(error) => uninspectable = Some(error),
            }
            let schedule = read_bounded(&format!("{task}/schedstat")).unwrap_or_default();
            states.push(TaskState {
                tid,
                syscall,
                schedule,
            });
        }
    }
    let look = match (reader, uninspectable) {
        (true, _) => Look::Waiting(states),
        (false, Some(reason)) => Look::Unknown(reason),
        (false, None) => Look::Busy,
    };
    Ok((look, walked))
}

/// The fields of `/proc/PID/stat` used here.
struct ProcStat {
    state: char,
    pgrp: i32,
}

impl ProcStat {
    fn read(path: &str) -> Option<Self> {
        let text = read_bounded(path).ok()?;
        // The command name is in parentheses and may contain anything.
        let rest = &text[text.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let _ppid = fields.next()?;
        let pgrp = fields.next()?.parse().ok()?;
        Some(ProcStat { state, pgrp })
    }
}

fn tasks(pid: i32) -> Vec<i32> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn read_bounded(path: &str) -> io::Result<String> {
    let mut text = String::new();
    fs::File::open(path)?
        .take(MAX_PROC_FILE)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// Looks at what one process's threads are blocked on.
struct Inspector {
    pid: i32,
    identity: InputIdentity,
    /// Descriptors already checked, with the answer.
    checked: Vec<(i32, bool)>,
}

/// A system call a thread is blocked in, as `/proc/.../syscall` shows it:
/// the number and six arguments.
struct Blocked {
    number: i64,
    args: [u64; 6],
}

impl Blocked {
    fn parse(line: &str) -> Option<Self> {
        let mut fields = line.split_whitespace();
        let number = fields.next()?.parse().ok()?;
        let mut args = [0; 6];
        for arg in &mut args {
            *arg = u64::from_str_radix(fields.next()?.trim_start_matches("0x"), 16).ok()?;
        }
        Some(Blocked { number, args })
    }
}

/// System calls that read one descriptor given as the first argument.
const READS: &[i64] = &[
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_pread64,
    libc::SYS_preadv,
    libc::SYS_preadv2,
];
#[cfg(target_arch = "x86_64")]
const SELECTS: &[i64] = &[libc::SYS_select, libc::SYS_pselect6];
#[cfg(not(target_arch = "x86_64"))]
const SELECTS: &[i64] = &[libc::SYS_pselect6];
#[cfg(target_arch = "x86_64")]
const POLLS: &[i64] = &[libc::SYS_poll, libc::SYS_ppoll];
#[cfg(not(target_arch = "x86_64"))]
const POLLS: &[i64] = &[libc::SYS_ppoll];
#[cfg(target_arch = "x86_64")]
const EPOLL_WAITS: &[i64] = &[
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
];
#[cfg(not(target_arch = "x86_64"))]
const EPOLL_WAITS: &[i64] = &[libc::SYS_epoll_pwait, libc::SYS_epoll_pwait2];

impl Inspector {
    /// Whether the thread blocked in `syscall` waits to read our input.
    fn reads_input(&mut self, syscall: &str) -> Result<bool, String> {
        let Some(blocked) = Blocked::parse(syscall) else {
            // "-1 SP PC": blocked outside a system call.
            return Ok(false);
        };
        let [a0, a1, ..] = blocked.args;
        if READS.contains(&blocked.number) {
            return Ok(self.is_input(a0 as i32));
        }
        if SELECTS.contains(&blocked.number) {
            return self.select_reads_input(a0 as usize, a1);
        }
        if POLLS.contains(&blocked.number) {
            return self.poll_reads_input(a0, a1 as usize);
        }
        if EPOLL_WAITS.contains(&blocked.number) {
            return self.epoll_reads_input(a0 as i32);
        }
        Ok(false)
    }

    fn is_input(&mut self, fd: i32) -> bool {
        if let Some((_, answer)) = self.checked.iter().find(|(checked, _)| *checked == fd) {
            return *answer;
        }
        let answer = fs::metadata(format!("/proc/{}/fd/{fd}", self.pid))
            .is_ok_and(|meta| self.identity.matches(&meta));
        self.checked.push((fd, answer));
        answer
    }

    fn memory(&self, address: u64, len: usize) -> Result<Vec<u8>, String> {
        let mut buf = vec![0; len];
        fs::File::open(format!("/proc/{}/mem", self.pid))
            .and_then(|mem| mem.read_exact_at(&mut buf, address))
            .map_err(|error| format!("cannot read the memory of process {}: {error}", self.pid))?;
        Ok(buf)
    }

    /// `select(nfds, readfds, ...)`: is one of our descriptors in `readfds`?
    fn select_reads_input(&mut self, nfds: usize, readfds: u64) -> Result<bool, String> {
        if readfds == 0 || nfds == 0 {
            return Ok(false);
        }
        let nfds = nfds.min(MAX_SELECT_FDS);
        let set = self.memory(readfds, nfds.div_ceil(8))?;
        for fd in 0..nfds {
            if set[fd / 8] & (1 << (fd % 8)) != 0 && self.is_input(fd as i32) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `poll(fds, nfds, ...)`: `struct pollfd { int fd; short events; short
    /// revents; }`, 8 bytes each.
    fn poll_reads_input(&mut self, fds: u64, nfds: usize) -> Result<bool, String> {
        if fds == 0 || nfds == 0 {
            return Ok(false);
        }
        if nfds > MAX_POLL_FDS {
            return Err(format!("poll on more than {MAX_POLL_FDS} descriptors"));
        }
        let raw = self.memory(fds, nfds * 8)?;
        for entry in raw.chunks_exact(8) {
            let fd = i32::from_ne_bytes(entry[0..4].try_into().expect("4 bytes"));
            let events = i16::from_ne_bytes(entry[4..6].try_into().expect("2 bytes"));
            if fd >= 0 && events & libc::POLLIN != 0 && self.is_input(fd) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `epoll_wait(epfd, ...)`: the interest list is in `fdinfo`, one
    /// `tfd: N events: HEX ...` line per descriptor.
    fn epoll_reads_input(&mut self, epfd: i32) -> Result<bool, String> {
        let info = read_bounded(&format!("/proc/{}/fdinfo/{epfd}", self.pid))
            .map_err(|error| format!("cannot read epoll {epfd} of {}: {error}", self.pid))?;
        for line in info.lines() {
            let mut fields = line.split_whitespace();
            if fields.next() != Some("tfd:") {
                continue;
            }
            let Some(fd) = fields.next().and_then(|f| f.parse::<i32>().ok()) else {
                continue;
            };
            let events = match (fields.next(), fields.next()) {
                (Some("events:"), Some(hex)) => u32::from_str_radix(hex, 16).unwrap_or(0),
                _ => 0,
            };
            if events & libc::EPOLLIN as u32 != 0 && self.is_input(fd) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_system_call_line_parses() {
        let blocked = Blocked::parse(
            "270 0xfb 0x7ffed19d37c0 0x0 0x0 0x7ffed19d36d0 0x7ffed19d36e0 0x7ffe 0x7f",
        )
        .unwrap();
        assert_eq!(blocked.number, 270);
        assert_eq!(blocked.args[0], 0xfb);
        assert_eq!(blocked.args[1], 0x7ffed19d37c0);
        assert!(Blocked::parse("running").is_none());
        assert!(
            Blocked::parse("-1 0x7ffe 0x7f").is_none(),
            "outside a system call"
        );
    }

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        fs::write(&path, "42 (a) b (c)) S 1 42 42 34816 -1 4194560").unwrap();
        let stat = ProcStat::read(path.to_str().unwrap()).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.pgrp, 42);
    }
}
