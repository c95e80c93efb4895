//! The baselines: what this machine does without exec-server in the way.
//!
//! Each one runs the same child program as the exec-server workload it is
//! compared with, from this process, with plain blocking system calls: a
//! 64 KiB reader on a pipe, a 64 KiB reader on a PTY master (rustix
//! `openpt`), `posix_spawn` + `waitpid` (libc), and a one-byte echo through
//! `cat` on a raw-mode PTY. Also here: the small OS helpers the workloads
//! share (CPU pinning, RSS).

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;

/// `PATH` given to every child, by us and by the server alike.
pub const CHILD_PATH: &str = "/usr/bin:/bin";

/// Read size of the baseline readers.
const READ_BYTES: usize = 64 * 1024;

/// `head -c BYTES /dev/zero`, the flood used by the throughput workloads.
pub fn head_argv(bytes: u64) -> Vec<String> {
    vec![
        "head".into(),
        "-c".into(),
        bytes.to_string(),
        "/dev/zero".into(),
    ]
}

/// Puts the child in raw mode without echo, says `R`, then echoes every
/// byte back: a keystroke round trip goes through a real process.
pub const ECHO_SCRIPT: &str = "stty raw -echo && printf R && exec cat";

pub fn echo_argv() -> Vec<String> {
    vec!["sh".into(), "-c".into(), ECHO_SCRIPT.into()]
}

fn command(argv: &[String]) -> Command {
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .env_clear()
        .env("PATH", CHILD_PATH)
        .current_dir("/");
    command
}

/// Baseline of pipe-mode output: the command's stdout read with 64 KiB
/// reads until end-of-file, then reaped. Returns the elapsed time from the
/// spawn to the reap.
pub fn pipe_read(bytes: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut child = command(&head_argv(bytes))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("spawning head for the raw pipe baseline")?;
    let mut stdout = child.stdout.take().expect("stdout was piped");
    let mut buf = vec![0u8; READ_BYTES];
    let mut total = 0u64;
    loop {
        match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("reading the raw pipe"),
        }
    }
    child.wait()?;
    let elapsed = started.elapsed();
    if total != bytes {
        bail!("raw pipe baseline read {total} bytes, expected {bytes}");
    }
    Ok(elapsed)
}

/// A PTY pair: the master stays here, the slave goes to the child.
struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

fn open_pty() -> io::Result<Pty> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::termios::tcsetwinsize(
        &slave,
        rustix::termios::Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok(Pty { master, slave })
}

/// Spawns `argv` on the PTY's slave as its controlling terminal (a new
/// session, as the server does), then closes our copy of the slave so the
/// master sees end-of-file (EIO) once the child is gone.
fn spawn_on_pty(argv: &[String], pty: Pty) -> anyhow::Result<(Child, OwnedFd)> {
    let Pty { master, slave } = pty;
    let mut command = command(argv);
    command
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave));
    // SAFETY: only async-signal-safe system calls run between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .with_context(|| format!("spawning {argv:?} on a PTY"))?;
    drop(command); // Closes the parent's slave descriptors.
    Ok((child, master))
}

/// Reads once from a blocking PTY master; `Ok(0)` at end-of-file (EIO).
fn read_master(master: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::read(master, &mut *buf) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::IO) => return Ok(0),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Baseline of PTY output: the command on a fresh PTY, its master read
/// with 64 KiB reads until end-of-file. Returns spawn-to-reap time.
pub fn pty_read(bytes: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let (mut child, master) = spawn_on_pty(&head_argv(bytes), open_pty()?)?;
    let mut buf = vec![0u8; READ_BYTES];
    let mut total = 0u64;
    loop {
        match read_master(&master, &mut buf)? {
            0 => break,
            n => total += n as u64,
        }
    }
    child.wait()?;
    let elapsed = started.elapsed();
    if total != bytes {
        bail!("raw PTY baseline read {total} bytes, expected {bytes}");
    }
    Ok(elapsed)
}

/// Baseline of spawn latency: `posix_spawn` of `/bin/true` and `waitpid`,
/// `count` times in a row. Returns one latency per spawn.
pub fn posix_spawn_true(count: usize) -> anyhow::Result<Vec<Duration>> {
    let path = CString::new("/bin/true").expect("no NUL");
    let argv = [path.as_ptr() as *mut libc::c_char, std::ptr::null_mut()];
    let path_env = CString::new(format!("PATH={CHILD_PATH}")).expect("no NUL");
    let envp = [path_env.as_ptr() as *mut libc::c_char, std::ptr::null_mut()];
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let mut pid: libc::pid_t = 0;
        // SAFETY: `path`, `argv` and `envp` are NUL-terminated and outlive
        // the call; null file actions and attributes mean the defaults.
        let rc = unsafe {
            libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                argv.as_ptr(),
                envp.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc)).context("posix_spawn /bin/true");
        }
        let mut status = 0;
        // SAFETY: waits for the child we just created.
        if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
            return Err(io::Error::last_os_error()).context("waitpid");
        }
        samples.push(started.elapsed());
    }
    Ok(samples)
}

/// Baseline of keystroke echo: `count` one-byte round trips through `cat`
/// on a raw-mode PTY, from the calling thread (pin it first to measure the
/// pinned case; the child inherits the calling thread's CPU mask).
pub fn pty_echo(count: usize) -> anyhow::Result<Vec<Duration>> {
    let (mut child, master) = spawn_on_pty(&echo_argv(), open_pty()?)?;
    let mut buf = [0u8; 256];
    // Wait for the child's `R`: raw mode is on and cat is about to read.
    let mut seen = Vec::new();
    while !seen.contains(&b'R') {
        let n = read_master(&master, &mut buf)?;
        if n == 0 {
            bail!("the echo child ended before it was ready: {seen:?}");
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        rustix::io::write(&master, b"x")?;
        let n = read_master(&master, &mut buf)?;
        samples.push(started.elapsed());
        if n != 1 || buf[0] != b'x' {
            bail!("unexpected echo {:?}", &buf[..n]);
        }
    }
    let _ = child.kill();
    drop(master);
    child.wait()?;
    Ok(samples)
}

/// Restricts the calling thread (and what it spawns afterwards) to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes
    // within it; sched_setaffinity(0) applies to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Memory figures of a process, from `/proc/PID/status`, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Resident set size now (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size (`VmHWM`).
    pub peak_kib: u64,
}

pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    };
    Ok(Memory {
        rss_kib: field("VmRSS:"),
        peak_kib: field("VmHWM:"),
    })
}

/// CPU time (user + system) used so far by a process, all its threads
/// included and its children excluded: `None` for this process.
pub fn cpu_time(pid: Option<u32>) -> anyhow::Result<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name (which may contain spaces and parens):
    // state is the first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("no CPU time in {path}"))
    };
    // /proc reports clock ticks of USER_HZ, which is 100 on Linux.
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}
