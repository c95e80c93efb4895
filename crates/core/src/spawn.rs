//! Fork-free spawning with a parent-death signal.
//!
//! Why not `std::process::Command`? Two requirements pull against each other:
//!
//! - children must die with the server even when it is SIGKILLed, which
//!   needs `PR_SET_PDEATHSIG` set in the child, i.e. code between fork and
//!   exec. With std that means `pre_exec`, which forces a real `fork()`
//!   whose cost grows with the server's memory (tens of milliseconds at a few
//!   GiB of retained output);
//! - spawning must stay fast however large the server grows.
//!
//! So we do what `posix_spawn` does internally: `clone(CLONE_VM |
//! CLONE_VFORK)` onto a small private stack, run a short child routine that
//! only makes raw system calls (no allocation, no locks), and `execve`. The
//! parent thread is suspended until the exec succeeds or the child reports
//! its errno through shared memory, so failures are reported synchronously.
//!
//! The parent-death signal fires when the *thread* that created the child
//! exits, not the process. All spawns therefore run on one dedicated thread
//! that lives as long as the process ([`spawner`]), never on a runtime's
//! worker or blocking-pool thread, which may be retired at any time. That
//! thread keeps every signal blocked, so no signal handler can run in the
//! child while it still shares the parent's memory.
//!
//! A sandboxed child (see [`crate::sandbox`]) also enters its prepared
//! namespaces and confines itself in the child routine, with the same
//! plain system calls; the spawner thread owns the cache of template mount
//! namespaces, since building one clones a helper.

use std::ffi::{CString, c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::sync::mpsc as std_mpsc;

use tokio::sync::oneshot;

use crate::sandbox::child::{self, Confinement, Step};
use crate::sandbox::mounts::{Protected, TemplateCache};

/// Everything the child routine needs, prepared in the parent so that the
/// child never allocates.
pub(crate) struct ChildSpec {
    /// Path handed to `execve` (already resolved against `PATH`).
    pub program: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: CString,
    /// Descriptors that become the child's fd 0, 1 and 2. Each must be ≥ 3 so
    /// that the three `dup2` calls cannot clobber each other.
    pub stdio: [OwnedFd; 3],
    /// Start a new session and make fd 0 (a PTY slave) the controlling
    /// terminal; otherwise start a new process group.
    pub controlling_tty: bool,
    /// Confine the child before exec.
    pub sandbox: Option<SandboxSpec>,
}

/// The prepared confinement of one sandboxed spawn.
pub(crate) struct SandboxSpec {
    pub ruleset: Option<OwnedFd>,
    pub seccomp: &'static [libc::sock_filter],
    /// Kept read-only through a template mount namespace (empty: none).
    pub protected: Vec<Protected>,
    pub user_namespace: bool,
    pub drop_bounding_set: bool,
    pub last_capability: u32,
}

/// A freshly spawned child: its pid and a pidfd to wait on.
pub(crate) struct SpawnedChild {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

/// Pointers into a [`ChildSpec`], laid out for the child routine.
struct ChildArgs {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    stdio: [RawFd; 3],
    controlling_tty: bool,
    /// The soft open-files limit to restore (see [`crate::limits`]).
    nofile_soft: Option<libc::rlim_t>,
    parent_pid: libc::pid_t,
    /// Null for an unconfined child.
    confinement: *const Confinement,
    /// The child writes its errno here before `_exit` when a step fails.
    /// The parent reads it after `clone` returns (CLONE_VFORK guarantees the
    /// child has exec'd or exited by then).
    error: c_int,
    /// With `error`: the confinement step that failed, if it was one.
    step: c_int,
}

type Job = (ChildSpec, oneshot::Sender<io::Result<SpawnedChild>>);

/// Spawns a child on the dedicated spawner thread (the sandbox spawner
/// thread for a sandboxed child).
pub(crate) async fn spawn(spec: ChildSpec) -> io::Result<SpawnedChild> {
    let (reply, response) = oneshot::channel();
    let kind = if spec.sandbox.is_some() {
        SpawnerKind::Sandbox
    } else {
        SpawnerKind::Plain
    };
    spawner(kind)
        .send((spec, reply))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    response
        .await
        .map_err(|_| io::Error::other("the spawner thread dropped a request"))?
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SpawnerKind {
    Plain,
    /// Children inherit its prepared credentials (see
    /// [`child::prepare_spawner_thread`]); unconfined children must not.
    Sandbox,
}

/// The long-lived threads that create every child (see the module docs):
/// one for unconfined children, one for sandboxed ones.
fn spawner(kind: SpawnerKind) -> std_mpsc::Sender<Job> {
    static PLAIN: OnceLock<std_mpsc::Sender<Job>> = OnceLock::new();
    static SANDBOX: OnceLock<std_mpsc::Sender<Job>> = OnceLock::new();
    let cell = match kind {
        SpawnerKind::Plain => &PLAIN,
        SpawnerKind::Sandbox => &SANDBOX,
    };
    cell.get_or_init(|| {
        let (tx, rx) = std_mpsc::channel::<Job>();
        let name = match kind {
            SpawnerKind::Plain => "exec-spawner",
            SpawnerKind::Sandbox => "exec-spawner-sbx",
        };
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                block_all_signals();
                crate::watchdog::ensure_started();
                let mut prepared: io::Result<()> = Ok(());
                if kind == SpawnerKind::Sandbox {
                    let support = crate::sandbox::kernel_support();
                    prepared = child::prepare_spawner_thread(
                        support.can_drop_bounding_set,
                        support.last_capability as c_int,
                    )
                    .map_err(|step| {
                        io::Error::other(format!(
                            "sandbox: {} failed: {}",
                            step.describe(),
                            io::Error::last_os_error()
                        ))
                    });
                }
                let mut stack = vec![0u8; CHILD_STACK_BYTES];
                let mut templates = TemplateCache::new();
                for (spec, reply) in rx {
                    let result = match &prepared {
                        Ok(()) => spawn_on_this_thread(&spec, &mut stack, &mut templates),
                        Err(error) => Err(io::Error::new(error.kind(), error.to_string())),
                    };
                    let _ = reply.send(result);
                }
            })
            .expect("failed to start a spawner thread");
        tx
    })
    .clone()
}

const CHILD_STACK_BYTES: usize = 64 * 1024;

fn block_all_signals() {
    // SAFETY: sigfillset initialises the set; pthread_sigmask only changes
    // this thread's mask.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn spawn_on_this_thread(
    spec: &ChildSpec,
    stack: &mut [u8],
    templates: &mut TemplateCache,
) -> io::Result<SpawnedChild> {
    let argv = null_terminated(&spec.argv);
    let envp = null_terminated(&spec.envp);
    // The template (if any) stays alive until the child has entered it.
    let mut template = None;
    let confinement = match &spec.sandbox {
        None => None,
        Some(sandbox) => {
            if !sandbox.protected.is_empty() {
                template = Some(
                    templates
                        .get(&sandbox.protected, sandbox.user_namespace, stack)
                        .map_err(|e| {
                            io::Error::other(format!("sandbox: {} failed: {}", e.step, e.error))
                        })?,
                );
            }
            let raw = |fd: Option<&OwnedFd>| fd.map_or(-1, |fd| fd.as_raw_fd());
            Some(Confinement {
                user_ns: raw(template.as_ref().and_then(|t| t.user_ns.as_ref())),
                mount_ns: raw(template.as_ref().map(|t| &t.mount_ns)),
                ruleset: raw(sandbox.ruleset.as_ref()),
                seccomp: libc::sock_fprog {
                    len: sandbox.seccomp.len() as u16,
                    // The kernel only reads the program.
                    filter: sandbox.seccomp.as_ptr().cast_mut(),
                },
                drop_bounding_set: sandbox.drop_bounding_set,
                last_capability: sandbox.last_capability as c_int,
            })
        }
    };
    let mut args = ChildArgs {
        program: spec.program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: spec.cwd.as_ptr(),
        stdio: [
            spec.stdio[0].as_raw_fd(),
            spec.stdio[1].as_raw_fd(),
            spec.stdio[2].as_raw_fd(),
        ],
        controlling_tty: spec.controlling_tty,
        nofile_soft: crate::limits::child_soft_limit(),
        // SAFETY: getpid has no preconditions.
        parent_pid: unsafe { libc::getpid() },
        confinement: confinement
            .as_ref()
            .map_or(std::ptr::null(), |c| c as *const Confinement),
        error: 0,
        step: 0,
    };
    // The stack grows down: hand clone the 16-byte aligned top.
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
    let mut pidfd: c_int = -1;
    // SAFETY: `child_main` only makes async-signal-safe system calls and
    // touches nothing but `args`, which outlives the call because
    // CLONE_VFORK suspends this thread until the child execs or exits. The
    // stack is ours alone (spawns are serialised on this thread). With
    // CLONE_PIDFD the kernel stores the pidfd through the `parent_tid`
    // argument.
    let pid = unsafe {
        libc::clone(
            child_main,
            top as *mut c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
            (&raw mut args).cast::<c_void>(),
            &raw mut pidfd,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: CLONE_PIDFD succeeded, so `pidfd` is a descriptor we now own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    // SAFETY: the child has finished with `args`; volatile because the write
    // happened in another thread of execution that the compiler cannot see.
    let (error, step) = unsafe {
        (
            std::ptr::read_volatile(&raw const args.error),
            std::ptr::read_volatile(&raw const args.step),
        )
    };
    drop(template);
    if error != 0 {
        // The child exited before exec; reap it so it does not linger.
        let mut status = 0;
        // SAFETY: `pid` is our child and has exited.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let os_error = io::Error::from_raw_os_error(error);
        return Err(match Step::from_code(step) {
            Some(step) => {
                io::Error::other(format!("sandbox: {} failed: {os_error}", step.describe()))
            }
            None => os_error,
        });
    }
    Ok(SpawnedChild { pid, pidfd })
}

/// Runs in the child, on the private stack, sharing the parent's memory.
/// Only raw system calls here: no allocation, no locks, no panics.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` points at the parent's `ChildArgs`, alive for the whole
    // vfork window.
    let args = unsafe { &mut *arg.cast::<ChildArgs>() };
    let fail = |args: &mut ChildArgs| -> c_int {
        // SAFETY: errno is readable; the volatile write publishes it to the
        // parent; _exit never returns.
        unsafe {
            std::ptr::write_volatile(&raw mut args.error, *libc::__errno_location());
            libc::_exit(127)
        }
    };
    let fail_step = |args: &mut ChildArgs, step: Step| -> c_int {
        // SAFETY: as for `fail`.
        unsafe { std::ptr::write_volatile(&raw mut args.step, step as c_int) };
        fail(args)
    };
    // SAFETY: null or the parent's Confinement, alive for the vfork window.
    let confinement = unsafe { args.confinement.as_ref() };
    // SAFETY: each call below is a thin wrapper over one system call, valid
    // between clone and exec.
    unsafe {
        // Signal handlers installed by the server must not run in the new
        // program, and ignored signals (Rust ignores SIGPIPE) must not be
        // inherited: reset every disposition to its default.
        let mut default_action: libc::sigaction = std::mem::zeroed();
        default_action.sa_sigaction = libc::SIG_DFL;
        for signal in 1..=libc::SIGRTMAX() {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::sigaction(signal, &default_action, std::ptr::null_mut());
            }
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
            return fail(args);
        }
        // The parent may have died before the prctl took effect.
        if libc::getppid() != args.parent_pid {
            libc::_exit(127);
        }
        // A sandboxed pipe child starts a session of its own too: left in
        // the server's session it could open the server's terminal
        // (`/dev/tty`) and read or write what the user types there.
        if args.controlling_tty || confinement.is_some() {
            if libc::setsid() < 0 {
                return fail(args);
            }
        } else if libc::setpgid(0, 0) != 0 {
            return fail(args);
        }
        for (target, &source) in args.stdio.iter().enumerate() {
            if libc::dup2(source, target as c_int) < 0 {
                return fail(args);
            }
        }
        if args.controlling_tty && libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            return fail(args);
        }
        if let Some(c) = confinement
            && let Err(step) = child::enter_namespaces(c)
        {
            return fail_step(args, step);
        }
        if libc::chdir(args.cwd) != 0 {
            return fail(args);
        }
        if let Some(soft) = args.nofile_soft {
            // Lowering the soft limit cannot fail for a valid value; if it
            // did, the child would merely keep the server's larger one.
            let mut limit: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur = soft.min(limit.rlim_max);
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
        if let Some(c) = confinement
            && let Err(step) = child::confine(c)
        {
            return fail_step(args, step);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(args.program, args.argv, args.envp);
        fail(args)
    }
}

/// Moves `fd` to a descriptor number ≥ 3 if it is one of 0, 1, 2 (possible
/// when the server itself was started with closed standard streams).
pub(crate) fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    Ok(rustix::io::fcntl_dupfd_cloexec(&fd, 3)?)
}
