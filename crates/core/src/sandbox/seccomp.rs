//! The seccomp filter every sandboxed process runs under: a short classic
//! BPF program, built once per network mode and installed in the child
//! with one system call.
//!
//! It allows everything except:
//! - with `network: none`, sockets of any family but `AF_UNIX` (`socket`
//!   and `socketpair` fail with EPERM): no IPv4, IPv6, raw, packet, netlink,
//!   vsock, …; local `AF_UNIX` sockets keep working;
//! - the known ways around Landlock and seccomp, or into the kernel's most
//!   exposed corners: `io_uring` (its operations bypass seccomp), `ptrace`
//!   and cross-process memory access, new namespaces (`unshare`, `setns`,
//!   namespace flags of `clone`), the kernel keyring (not namespaced:
//!   shared secrets), `bpf`, `perf_event_open`, `userfaultfd`. What needs a
//!   capability (mount, modules, kexec, …) is left to the empty capability
//!   sets;
//! - `clone3`, whose flags live in memory a filter cannot read: it fails
//!   with ENOSYS, and libc falls back to `clone`, whose flags it can;
//! - system calls of another ABI (32-bit `int 0x80` on x86_64, which has a
//!   different numbering): the process is killed. On x86_64 the x32 ABI
//!   (numbers with bit 30 set) fails with ENOSYS.
//!
//! Denied calls fail with EPERM (ENOSYS where callers expect to fall back),
//! so programs report "Operation not permitted" rather than dying.

use std::sync::OnceLock;

use libc::sock_filter;

/// Which sockets a filter allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// `AF_UNIX` only.
    LocalOnly,
    /// Every family.
    Full,
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

/// Whether this build knows the system-call table of its architecture.
pub const ARCH_SUPPORTED: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

// Offsets in `struct seccomp_data`.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
/// Low 32 bits of argument `i` (little-endian).
const fn offset_arg(i: u32) -> u32 {
    16 + 8 * i
}

const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const fn ret_errno(errno: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)
}

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// System calls that always fail, and how.
///
/// Only what the rest of the sandbox does not already stop. Mounting,
/// `chroot`, modules, `kexec`, raw I/O ports, handle-based opens and the
/// like all need capabilities, which a sandboxed process has none of and
/// cannot regain (empty sets, `no_new_privs`, no user namespaces); and
/// every entry makes the filter slower to install (see [`build`]).
fn denied_calls() -> Vec<(libc::c_long, i32)> {
    let eperm = libc::EPERM;
    let enosys = libc::ENOSYS;
    vec![
        // io_uring runs operations (sockets included) without passing the
        // filter; callers probe it and fall back on ENOSYS.
        (libc::SYS_io_uring_setup, enosys),
        (libc::SYS_io_uring_enter, enosys),
        (libc::SYS_io_uring_register, enosys),
        // Its flags are in memory the filter cannot read; libc then falls
        // back to `clone`, whose flags it can.
        (libc::SYS_clone3, enosys),
        // Reaching into other processes (Landlock also confines these to
        // the sandbox's own processes, where the kernel offers it).
        (libc::SYS_ptrace, eperm),
        (libc::SYS_process_vm_readv, eperm),
        (libc::SYS_process_vm_writev, eperm),
        (libc::SYS_pidfd_getfd, eperm),
        // New namespaces would hand out capabilities inside them.
        (libc::SYS_unshare, eperm),
        (libc::SYS_setns, eperm),
        // The kernel keyring is not namespaced: it holds the user's secrets.
        (libc::SYS_keyctl, eperm),
        (libc::SYS_add_key, eperm),
        (libc::SYS_request_key, eperm),
        // Large kernel attack surface, no use to a sandboxed command.
        (libc::SYS_bpf, eperm),
        (libc::SYS_perf_event_open, eperm),
        (libc::SYS_userfaultfd, eperm),
    ]
}

/// Namespace flags `clone` may not carry.
const CLONE_NAMESPACES: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP
    | 0x80/* CLONE_NEWTIME */) as u32;

/// What the filter does with one system call number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Errno(i32),
    /// `clone`: refuse namespace flags (argument 0).
    CheckCloneFlags,
    /// `socket`, `socketpair`: refuse every family but `AF_UNIX` (argument 0).
    CheckSocketFamily,
}

/// Where a jump goes, resolved when the program is assembled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Next,
    Allow,
    Errno(i32),
    Kill,
    CloneCheck,
    SocketCheck,
    /// An instruction index in the program being built.
    At(usize),
}

/// An instruction whose jump targets are still symbolic.
struct Insn {
    code: u16,
    k: u32,
    jt: Target,
    jf: Target,
}

/// Builds the program for `network`.
///
/// The system call number is looked up in a balanced binary tree of
/// comparisons, not a linear chain: when a filter is installed the kernel
/// evaluates it once per system call number to cache the always-allowed
/// ones, so its cost grows with the *path length* per number. Measured
/// here: a 100-instruction linear chain cost 227 µs per install, the same
/// length with short paths 28 µs.
pub fn build(network: Network) -> Vec<sock_filter> {
    let mut verdicts: Vec<(u32, Verdict)> = denied_calls()
        .into_iter()
        .map(|(nr, errno)| (nr as u32, Verdict::Errno(errno)))
        .collect();
    verdicts.push((libc::SYS_clone as u32, Verdict::CheckCloneFlags));
    if network == Network::LocalOnly {
        verdicts.push((libc::SYS_socket as u32, Verdict::CheckSocketFamily));
        verdicts.push((libc::SYS_socketpair as u32, Verdict::CheckSocketFamily));
    }
    verdicts.sort_by_key(|(nr, _)| *nr);
    verdicts.dedup_by_key(|(nr, _)| *nr);

    let mut p: Vec<Insn> = Vec::new();
    let emit = |p: &mut Vec<Insn>, code, k, jt, jf| p.push(Insn { code, k, jt, jf });
    // Another ABI numbers system calls differently: kill.
    emit(&mut p, LD_W_ABS, OFFSET_ARCH, Target::Next, Target::Next);
    emit(&mut p, JEQ_K, AUDIT_ARCH, Target::Next, Target::Kill);
    emit(&mut p, LD_W_ABS, OFFSET_NR, Target::Next, Target::Next);
    #[cfg(target_arch = "x86_64")]
    // x32 system calls share the x86_64 audit arch but set bit 30.
    emit(
        &mut p,
        JGE_K,
        0x4000_0000,
        Target::Errno(libc::ENOSYS),
        Target::Next,
    );
    tree(&mut p, &verdicts);
    assemble(p)
}

/// Emits a decision tree over `verdicts` (sorted by number); numbers not
/// listed are allowed.
fn tree(p: &mut Vec<Insn>, verdicts: &[(u32, Verdict)]) {
    let verdict_target = |verdict: Verdict| match verdict {
        Verdict::Errno(errno) => Target::Errno(errno),
        Verdict::CheckCloneFlags => Target::CloneCheck,
        Verdict::CheckSocketFamily => Target::SocketCheck,
    };
    if verdicts.len() <= 3 {
        for (i, (nr, verdict)) in verdicts.iter().enumerate() {
            let last = i + 1 == verdicts.len();
            p.push(Insn {
                code: JEQ_K,
                k: *nr,
                jt: verdict_target(*verdict),
                jf: if last { Target::Allow } else { Target::Next },
            });
        }
        if verdicts.is_empty() {
            p.push(Insn {
                code: RET_K,
                k: RET_ALLOW,
                jt: Target::Next,
                jf: Target::Next,
            });
        }
        return;
    }
    let (low, high) = verdicts.split_at(verdicts.len() / 2);
    // `nr >= high[0]`: the upper half, placed after the lower one.
    let split = p.len();
    p.push(Insn {
        code: JGE_K,
        k: high[0].0,
        jt: Target::Next, // patched below
        jf: Target::Next,
    });
    tree(p, low);
    let upper = p.len();
    p[split].jt = Target::At(upper);
    tree(p, high);
}

/// Appends the shared tails and turns symbolic targets into offsets.
fn assemble(mut p: Vec<Insn>) -> Vec<sock_filter> {
    // Argument checks, then the shared verdicts every branch jumps to
    // (after all jumps: BPF jumps only go forward).
    let clone_check = p.len();
    p.push(Insn {
        code: LD_W_ABS,
        k: offset_arg(0),
        jt: Target::Next,
        jf: Target::Next,
    });
    p.push(Insn {
        code: JSET_K,
        k: CLONE_NAMESPACES,
        jt: Target::Errno(libc::EPERM),
        jf: Target::Allow,
    });
    let socket_check = p.len();
    p.push(Insn {
        code: LD_W_ABS,
        k: offset_arg(0),
        jt: Target::Next,
        jf: Target::Next,
    });
    p.push(Insn {
        code: JEQ_K,
        k: libc::AF_UNIX as u32,
        jt: Target::Allow,
        jf: Target::Errno(libc::EPERM),
    });
    let allow = p.len();
    p.push(Insn {
        code: RET_K,
        k: RET_ALLOW,
        jt: Target::Next,
        jf: Target::Next,
    });
    let kill = p.len();
    p.push(Insn {
        code: RET_K,
        k: RET_KILL_PROCESS,
        jt: Target::Next,
        jf: Target::Next,
    });
    let mut errnos = Vec::new();
    for errno in [libc::EPERM, libc::ENOSYS] {
        errnos.push((errno, p.len()));
        p.push(Insn {
            code: RET_K,
            k: ret_errno(errno),
            jt: Target::Next,
            jf: Target::Next,
        });
    }
    let errno_at = |errno: i32| {
        errnos
            .iter()
            .find(|(e, _)| *e == errno)
            .map(|(_, at)| *at)
            .expect("every errno used has a tail")
    };
    let resolve = |i: usize, target: Target| -> u8 {
        let to = match target {
            Target::Next => i + 1,
            Target::Allow => allow,
            Target::Kill => kill,
            Target::Errno(errno) => errno_at(errno),
            Target::CloneCheck => clone_check,
            Target::SocketCheck => socket_check,
            Target::At(at) => at,
        };
        let offset = to.checked_sub(i + 1).expect("BPF jumps go forward");
        u8::try_from(offset).expect("BPF jump offsets fit in 8 bits")
    };
    p.iter()
        .enumerate()
        .map(|(i, insn)| {
            if insn.code & 0x07 == libc::BPF_JMP as u16 {
                jump(insn.code, insn.k, resolve(i, insn.jt), resolve(i, insn.jf))
            } else {
                stmt(insn.code, insn.k)
            }
        })
        .collect()
}

/// The program for `network`, built on first use and kept for the life of
/// the server (the child reads it through a pointer).
pub fn program(network: Network) -> &'static [sock_filter] {
    static LOCAL_ONLY: OnceLock<Vec<sock_filter>> = OnceLock::new();
    static FULL: OnceLock<Vec<sock_filter>> = OnceLock::new();
    let cell = match network {
        Network::LocalOnly => &LOCAL_ONLY,
        Network::Full => &FULL,
    };
    cell.get_or_init(|| build(network))
}

/// Whether the kernel can install seccomp filters that kill a process.
pub fn available() -> bool {
    if !ARCH_SUPPORTED {
        return false;
    }
    let action: u32 = RET_KILL_PROCESS;
    // SAFETY: SECCOMP_GET_ACTION_AVAIL reads one u32 from `action`.
    let result = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0u32,
            &raw const action,
        )
    };
    result == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on one system call, as the kernel would.
    fn run(program: &[sock_filter], nr: u32, arg0: u32) -> u32 {
        let data = |offset: u32| match offset {
            OFFSET_NR => nr,
            OFFSET_ARCH => AUDIT_ARCH,
            o if o == offset_arg(0) => arg0,
            o => panic!("unexpected load at {o}"),
        };
        let (mut pc, mut acc) = (0usize, 0u32);
        for _ in 0..program.len() {
            let insn = program[pc];
            match insn.code {
                LD_W_ABS => acc = data(insn.k),
                RET_K => return insn.k,
                JEQ_K | JGE_K | JSET_K => {
                    let taken = match insn.code {
                        JEQ_K => acc == insn.k,
                        JGE_K => acc >= insn.k,
                        _ => acc & insn.k != 0,
                    };
                    pc += usize::from(if taken { insn.jt } else { insn.jf });
                }
                code => panic!("unexpected instruction {code:#x}"),
            }
            pc += 1;
        }
        panic!("the program did not return")
    }

    #[test]
    fn denied_calls_are_denied_and_everything_else_allowed() {
        for network in [Network::LocalOnly, Network::Full] {
            let program = build(network);
            for (nr, errno) in denied_calls() {
                assert_eq!(run(&program, nr as u32, 0), ret_errno(errno), "{nr}");
            }
            for nr in [
                libc::SYS_read,
                libc::SYS_write,
                libc::SYS_openat,
                libc::SYS_execve,
                libc::SYS_exit_group,
            ] {
                assert_eq!(run(&program, nr as u32, 0), RET_ALLOW, "{nr}");
            }
            let clone = libc::SYS_clone as u32;
            assert_eq!(run(&program, clone, libc::SIGCHLD as u32), RET_ALLOW);
            assert_eq!(
                run(&program, clone, libc::CLONE_NEWUSER as u32),
                ret_errno(libc::EPERM)
            );
            let inet = run(&program, libc::SYS_socket as u32, libc::AF_INET as u32);
            let unix = run(&program, libc::SYS_socket as u32, libc::AF_UNIX as u32);
            assert_eq!(unix, RET_ALLOW);
            match network {
                Network::LocalOnly => assert_eq!(inet, ret_errno(libc::EPERM)),
                Network::Full => assert_eq!(inet, RET_ALLOW),
            }
        }
    }

    #[test]
    fn every_number_is_decided_in_a_few_steps() {
        // The kernel evaluates the filter for every number when installing
        // it: paths must stay short (see `build`).
        let program = build(Network::LocalOnly);
        assert!(program.len() < 256);
        for nr in 0..600u32 {
            let mut pc = 0usize;
            let mut steps = 0;
            while program[pc].code != RET_K && program[pc].k != offset_arg(0) {
                let insn = program[pc];
                pc += 1;
                if insn.code & 0x07 == libc::BPF_JMP as u16 {
                    let acc = if pc <= 2 { AUDIT_ARCH } else { nr };
                    let taken = match insn.code {
                        JEQ_K => acc == insn.k,
                        JGE_K => acc >= insn.k,
                        _ => acc & insn.k != 0,
                    };
                    pc += usize::from(if taken { insn.jt } else { insn.jf });
                }
                steps += 1;
            }
            assert!(steps <= 14, "{steps} steps for {nr}");
        }
    }
}
