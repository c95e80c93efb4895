//! Sandboxed processes against the real kernel (Landlock, seccomp,
//! capabilities, mount namespaces). Every case runs on pipes and on a PTY.
//! A kernel that cannot confine makes these tests fail, never skip.

use std::path::{Path, PathBuf};
use std::time::Duration;

use exec_server_core::sandbox::kernel_support;
use exec_server_core::{
    AppliedSandbox, FilesystemAccess, NetworkAccess, ProcessConfig, ProcessEvent, SandboxPolicy,
    SpawnError, StdinMode, StdioMode, TerminalSize, spawn_process,
};

const MODES: [StdioMode; 2] = [
    StdioMode::Pipes {
        stdin: StdinMode::Null,
    },
    StdioMode::Terminal {
        size: TerminalSize {
            rows: 24,
            cols: 200,
        },
    },
];

struct Ran {
    output: String,
    exit: i32,
    applied: AppliedSandbox,
}

fn unique(name: &str) -> String {
    format!(
        "exec-server-sandbox-test-{name}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

async fn run(policy: SandboxPolicy, cwd: &Path, stdio: StdioMode, script: &str) -> Ran {
    let mut config = ProcessConfig::new(vec!["/bin/sh".into(), "-c".into(), script.into()], cwd);
    config.env = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        (
            "HOME".into(),
            std::env::var("HOME").unwrap_or("/root".into()),
        ),
    ];
    config.stdio = stdio;
    config.sandbox = Some(policy);
    let mut process = spawn_process(config).await.expect("sandboxed spawn");
    let applied = process.handle.sandbox().expect("confined").clone();
    let mut output = Vec::new();
    let mut exit = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, process.events.recv())
            .await
            .expect("the sandboxed command did not finish in 30 s")
        {
            Some(ProcessEvent::Output { data, .. }) => output.extend_from_slice(&data),
            Some(ProcessEvent::Exited { status, .. }) => exit = Some(status.code_or_signal()),
            Some(ProcessEvent::Closed) | None => break,
        }
    }
    Ran {
        output: String::from_utf8_lossy(&output).replace('\r', ""),
        exit: exit.expect("exit reported"),
        applied,
    }
}

fn workspace_write(root: &Path) -> SandboxPolicy {
    SandboxPolicy::new(FilesystemAccess::WorkspaceWrite, vec![root.to_path_buf()])
}

/// `label` printed as WROTE or REFUSED, depending on `command`.
fn attempt(label: &str, command: &str) -> String {
    format!(
        "if {command} 2>/dev/null; then echo \"WROTE {label}\"; else echo \"REFUSED {label}\"; fi\n"
    )
}

fn assert_refused(ran: &Ran, label: &str) {
    assert!(
        ran.output.contains(&format!("REFUSED {label}\n")),
        "{label} was not refused:\n{}",
        ran.output
    );
}

fn assert_wrote(ran: &Ran, label: &str) {
    assert!(
        ran.output.contains(&format!("WROTE {label}\n")),
        "{label} failed:\n{}",
        ran.output
    );
}

#[tokio::test]
async fn writes_inside_a_writable_root_succeed_and_fail_everywhere_else() {
    let support = kernel_support();
    assert!(
        support.landlock_filesystem(),
        "Landlock ABI ≥ 3 is required: {support:?}"
    );
    let ws = tempfile::tempdir().unwrap();
    let sibling = tempfile::tempdir().unwrap();
    let home = PathBuf::from(std::env::var("HOME").unwrap_or("/root".into()));
    let server_cwd = std::env::current_dir().unwrap();
    for mode in MODES {
        let targets = [
            ("etc", PathBuf::from("/etc").join(unique("etc"))),
            ("home", home.join(unique("home"))),
            ("server-cwd", server_cwd.join(unique("cwd"))),
            ("sibling", sibling.path().join("x")),
        ];
        let mut script = attempt(
            "inside",
            &format!("echo in > {}/inside", ws.path().display()),
        );
        script += &attempt("tmpdir", "echo t > \"$TMPDIR/t\"");
        for (label, path) in &targets {
            script += &attempt(label, &format!("echo x > {}", path.display()));
        }
        let ran = run(workspace_write(ws.path()), ws.path(), mode, &script).await;
        for (_, path) in &targets {
            let existed = path.exists();
            let _ = std::fs::remove_file(path);
            assert!(!existed, "{} was written:\n{}", path.display(), ran.output);
        }
        assert_wrote(&ran, "inside");
        assert_wrote(&ran, "tmpdir");
        for (label, _) in &targets {
            assert_refused(&ran, label);
        }
        assert_eq!(
            std::fs::read_to_string(ws.path().join("inside")).unwrap(),
            "in\n"
        );
        assert_eq!(ran.applied.landlock_abi, support.landlock_abi);
    }
}

#[tokio::test]
async fn dot_git_stays_read_only_and_links_renames_and_dot_dot_cannot_escape() {
    for mode in MODES {
        let ws = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let w = ws.path().display().to_string();
        let o = outside.path().display().to_string();
        std::fs::create_dir_all(ws.path().join(".git/hooks")).unwrap();
        std::fs::write(ws.path().join(".git/config"), "[core]\n").unwrap();
        std::fs::write(outside.path().join("secret"), "secret\n").unwrap();
        std::fs::write(ws.path().join("file"), "file\n").unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.path().join("out")).unwrap();
        let out_name = outside.path().file_name().unwrap().to_str().unwrap();
        let script = [
            attempt("git-config", &format!("echo x >> {w}/.git/config")),
            attempt("git-hook", &format!("touch {w}/.git/hooks/pre-commit")),
            attempt("git-remove", &format!("rm -f {w}/.git/config")),
            attempt("git-rename", &format!("mv {w}/.git {w}/moved-git")),
            attempt("git-hardlink", &format!("ln {w}/.git/config {w}/git-link")),
            attempt(
                "git-symlink-write",
                &format!("ln -s {w}/.git/config {w}/git-sym && echo x >> {w}/git-sym"),
            ),
            attempt("symlink-out", &format!("echo x > {w}/out/via-symlink")),
            attempt("dot-dot", &format!("echo x > {w}/../{out_name}/via-dotdot")),
            attempt(
                "own-symlink-out",
                &format!("ln -s {o}/secret {w}/link && echo x >> {w}/link"),
            ),
            attempt("hardlink-in", &format!("ln {o}/secret {w}/hard")),
            attempt("rename-out", &format!("mv {w}/file {o}/file")),
            attempt("rename-in", &format!("mv {o}/secret {w}/stolen")),
            attempt("write-inside", &format!("echo ok > {w}/ok")),
        ]
        .concat();
        let ran = run(workspace_write(ws.path()), ws.path(), mode, &script).await;
        for label in [
            "git-config",
            "git-hook",
            "git-remove",
            "git-rename",
            "git-hardlink",
            "git-symlink-write",
            "symlink-out",
            "dot-dot",
            "own-symlink-out",
            "hardlink-in",
            "rename-out",
            "rename-in",
        ] {
            assert_refused(&ran, label);
        }
        assert_wrote(&ran, "write-inside");
        assert_eq!(
            std::fs::read_to_string(ws.path().join(".git/config")).unwrap(),
            "[core]\n"
        );
        assert!(!ws.path().join(".git/hooks/pre-commit").exists());
        assert_eq!(
            std::fs::read_to_string(outside.path().join("secret")).unwrap(),
            "secret\n"
        );
        assert!(!outside.path().join("via-symlink").exists());
        assert!(!outside.path().join("via-dotdot").exists());
        assert!(!outside.path().join("file").exists());
        assert!(ws.path().join("file").exists());
        assert!(ran.applied.mount_namespace);
        assert_eq!(
            ran.applied.read_only_paths,
            vec![ws.path().canonicalize().unwrap().join(".git")]
        );
    }
}

/// A Python snippet that tries to connect to `port` and reports.
fn python_network_probe(port: u16) -> String {
    format!(
        r#"python3 - <<'EOF'
import socket
def attempt(label, family, address):
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(address)
        print(label, "CONNECTED")
    except OSError as e:
        print(label, "FAILED", e.errno)
attempt("ipv4", socket.AF_INET, ("127.0.0.1", {port}))
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    print("udp CREATED")
except OSError as e:
    print("udp FAILED", e.errno)
try:
    socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    print("ipv6 CREATED")
except OSError as e:
    print("ipv6 FAILED", e.errno)
a, b = socket.socketpair(socket.AF_UNIX)
a.send(b"ping")
print("socketpair", b.recv(4).decode())
EOF
"#
    )
}

#[tokio::test]
async fn the_network_is_off_but_local_sockets_work_and_full_restores_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let ws = tempfile::tempdir().unwrap();
    for mode in MODES {
        let ran = run(
            workspace_write(ws.path()),
            ws.path(),
            mode,
            &python_network_probe(port),
        )
        .await;
        let eperm = libc::EPERM;
        assert!(
            ran.output.contains(&format!("ipv4 FAILED {eperm}")),
            "{}",
            ran.output
        );
        assert!(
            ran.output.contains(&format!("udp FAILED {eperm}")),
            "{}",
            ran.output
        );
        assert!(
            ran.output.contains(&format!("ipv6 FAILED {eperm}")),
            "{}",
            ran.output
        );
        assert!(ran.output.contains("socketpair ping"), "{}", ran.output);
        assert!(listener.accept().is_err(), "a connection got through");

        // Negative control: the same probe with the network on connects.
        let mut policy = workspace_write(ws.path());
        policy.network = NetworkAccess::Full;
        let ran = run(policy, ws.path(), mode, &python_network_probe(port)).await;
        assert!(ran.output.contains("ipv4 CONNECTED"), "{}", ran.output);
        assert!(ran.output.contains("socketpair ping"), "{}", ran.output);
        assert!(listener.accept().is_ok(), "the listener saw no connection");
    }
}

#[tokio::test]
async fn grandchildren_and_background_jobs_are_confined_with_no_privileges() {
    for mode in MODES {
        let ws = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let w = ws.path().display().to_string();
        let o = outside.path().display().to_string();
        // sh → python3 → writes, and python3 reports its own status.
        let script = format!(
            r#"python3 - <<'EOF'
for label, path in (("grandchild-inside", "{w}/gc"), ("grandchild-outside", "{o}/gc")):
    try:
        open(path, "w").write("x")
        print("WROTE", label)
    except OSError:
        print("REFUSED", label)
for line in open("/proc/self/status"):
    if line.startswith(("NoNewPrivs", "Seccomp:", "Cap")):
        print("GC", line.strip())
EOF
# The job must survive the terminal's hangup when the shell exits (PTY):
# ignore SIGHUP before forking it, as nohup would.
trap '' HUP
( sleep 0.3
  if echo x > {o}/bg 2>/dev/null; then echo WROTE > {w}/bg.tmp; else echo REFUSED > {w}/bg.tmp; fi
  grep -E '^(NoNewPrivs|Seccomp:|Cap)' /proc/self/status >> {w}/bg.tmp
  mv {w}/bg.tmp {w}/bg.result ) >{w}/bg.log 2>&1 &
echo started-background
"#
        );
        let ran = run(workspace_write(ws.path()), ws.path(), mode, &script).await;
        assert_wrote(&ran, "grandchild-inside");
        assert_refused(&ran, "grandchild-outside");
        assert_no_privileges(&ran.output, "GC ");
        assert!(ran.output.contains("started-background"), "{}", ran.output);
        // The background job outlives the shell: wait for its report.
        let result = ws.path().join("bg.result");
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !result.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the background job never reported ({mode:?}): {:?}",
                std::fs::read_to_string(ws.path().join("bg.log"))
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let report = std::fs::read_to_string(&result).unwrap();
        assert!(report.starts_with("REFUSED\n"), "{report}");
        assert_no_privileges(&report, "");
        assert!(!outside.path().join("bg").exists());
        assert!(!outside.path().join("gc").exists());
    }
}

fn assert_no_privileges(text: &str, prefix: &str) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix).and_then(|l| l.strip_prefix(name)))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
            .trim()
            .to_string()
    };
    assert_eq!(field("NoNewPrivs:"), "1", "{text}");
    assert_eq!(field("Seccomp:"), "2", "{text}");
    for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(cap), "0000000000000000", "{cap} in:\n{text}");
    }
}

#[tokio::test]
async fn the_confined_process_itself_has_no_privileges() {
    for mode in MODES {
        let ws = tempfile::tempdir().unwrap();
        let ran = run(
            workspace_write(ws.path()),
            ws.path(),
            mode,
            "grep -E '^(NoNewPrivs|Seccomp:|Cap)' /proc/self/status",
        )
        .await;
        assert_no_privileges(&ran.output, "");
        assert_eq!(ran.exit, 0);
        let e = &ran.applied;
        assert!(e.seccomp && e.no_new_privs && e.capabilities_dropped && e.bounding_set_cleared);
    }
}

#[tokio::test]
async fn known_escape_routes_are_closed() {
    // System call numbers come from this build, so the probe is right for
    // the architecture it runs on.
    let server_pid = std::process::id().to_string();
    let calls: [(&str, libc::c_long, &str, i32); 11] = [
        (
            "io_uring_setup",
            libc::SYS_io_uring_setup,
            "0, 0",
            libc::ENOSYS,
        ),
        ("clone3", libc::SYS_clone3, "0, 0", libc::ENOSYS),
        (
            "ptrace_attach",
            libc::SYS_ptrace,
            "16, os.getppid(), 0, 0",
            libc::EPERM,
        ),
        ("unshare_user", libc::SYS_unshare, "0x10000000", libc::EPERM),
        ("setns", libc::SYS_setns, "0, 0", libc::EPERM),
        ("bpf", libc::SYS_bpf, "0, 0, 0", libc::EPERM),
        (
            "perf_event_open",
            libc::SYS_perf_event_open,
            "0, 0, -1, -1, 0",
            libc::EPERM,
        ),
        ("userfaultfd", libc::SYS_userfaultfd, "0", libc::EPERM),
        ("keyctl", libc::SYS_keyctl, "0, 0", libc::EPERM),
        (
            "process_vm_readv",
            libc::SYS_process_vm_readv,
            "os.getppid(), 0, 0, 0, 0, 0",
            libc::EPERM,
        ),
        // The server (or anything outside the sandbox) cannot be signalled.
        ("kill_outside", libc::SYS_kill, "SERVER, 0", libc::EPERM),
    ];
    let mut probe = String::from(
        "python3 - <<'EOF'\nimport ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\n\
         def call(name, nr, *args):\n    ctypes.set_errno(0)\n    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])\n    print(name, r, ctypes.get_errno())\n",
    );
    for (name, nr, args, _) in &calls {
        let args = args.replace("SERVER", &server_pid);
        probe += &format!("call({name:?}, {nr}, {args})\n");
    }
    // Mounting needs a capability the sandbox no longer has.
    probe += "r = libc.mount(b'none', os.environ['TMPDIR'].encode(), b'tmpfs', ctypes.c_ulong(0), None)\n\
              print('mount', r, ctypes.get_errno())\n";
    #[cfg(target_arch = "x86_64")]
    {
        // An x32 system call number (bit 30) for getpid.
        probe += &format!("call('x32', {})\n", 0x4000_0000 | libc::SYS_getpid);
    }
    probe += "EOF\n";
    let ws = tempfile::tempdir().unwrap();
    for mode in MODES {
        let ran = run(workspace_write(ws.path()), ws.path(), mode, &probe).await;
        for (name, _, _, errno) in &calls {
            assert!(
                ran.output.contains(&format!("{name} -1 {errno}\n")),
                "{name} was not refused with errno {errno}:\n{}",
                ran.output
            );
        }
        assert!(
            ran.output.contains(&format!("mount -1 {}\n", libc::EPERM)),
            "{}",
            ran.output
        );
        #[cfg(target_arch = "x86_64")]
        assert!(
            ran.output.contains(&format!("x32 -1 {}\n", libc::ENOSYS)),
            "{}",
            ran.output
        );
    }
}

#[tokio::test]
async fn the_private_tmpdir_is_writable_and_removed_once_closed() {
    for mode in MODES {
        let ws = tempfile::tempdir().unwrap();
        let ran = run(
            SandboxPolicy::new(FilesystemAccess::ReadOnly, vec![]),
            ws.path(),
            mode,
            &[
                attempt("tmp", "echo t > \"$TMPDIR/t\""),
                "echo \"TMPDIR=$TMPDIR\"\n".to_string(),
                attempt("workspace", &format!("echo x > {}/x", ws.path().display())),
            ]
            .concat(),
        )
        .await;
        assert_wrote(&ran, "tmp");
        assert_refused(&ran, "workspace");
        let tmpdir = ran.applied.tmpdir.clone().unwrap();
        assert!(
            ran.output
                .contains(&format!("TMPDIR={}\n", tmpdir.display())),
            "{}",
            ran.output
        );
        assert!(tmpdir.starts_with(std::env::temp_dir()));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while tmpdir.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "{} was not removed",
                tmpdir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test]
async fn readable_roots_hide_everything_else() {
    let readable = tempfile::tempdir().unwrap();
    let hidden = tempfile::tempdir().unwrap();
    std::fs::write(readable.path().join("open"), "open\n").unwrap();
    std::fs::write(hidden.path().join("secret"), "secret\n").unwrap();
    for mode in MODES {
        let ws = tempfile::tempdir().unwrap();
        let mut policy = workspace_write(ws.path());
        policy.readable_roots = Some(vec![readable.path().to_path_buf()]);
        let script = [
            attempt(
                "read-readable",
                &format!("cat {}/open", readable.path().display()),
            ),
            attempt(
                "read-hidden",
                &format!("cat {}/secret", hidden.path().display()),
            ),
            attempt("read-shadow", "cat /etc/shadow"),
            attempt("list-hidden", &format!("ls {}", hidden.path().display())),
            attempt("python-runs", "python3 -c 'print(1)'"),
        ]
        .concat();
        let ran = run(policy, ws.path(), mode, &script).await;
        assert_wrote(&ran, "read-readable");
        assert_wrote(&ran, "python-runs");
        assert_refused(&ran, "read-hidden");
        assert_refused(&ran, "read-shadow");
        assert_refused(&ran, "list-hidden");
        assert!(!ran.output.contains("secret\n"), "{}", ran.output);
    }
}

#[tokio::test]
async fn filesystem_full_still_drops_privileges_and_the_network() {
    let anywhere = tempfile::tempdir().unwrap();
    for mode in MODES {
        let mut policy = SandboxPolicy::new(FilesystemAccess::Full, vec![]);
        policy.network = NetworkAccess::None;
        let script = [
            attempt(
                "anywhere",
                &format!("echo x > {}/x", anywhere.path().display()),
            ),
            "grep -E '^(NoNewPrivs|Seccomp:|Cap)' /proc/self/status\n".into(),
            "python3 -c 'import socket; socket.socket()' 2>&1 | tail -1\n".into(),
        ]
        .concat();
        let ran = run(policy, anywhere.path(), mode, &script).await;
        assert_wrote(&ran, "anywhere");
        assert_no_privileges(&ran.output, "");
        assert!(
            ran.output.contains("Operation not permitted"),
            "{}",
            ran.output
        );
        assert_eq!(ran.applied.tmpdir, None);
    }
}

#[tokio::test]
async fn a_pty_process_reaches_its_own_terminal_but_no_other() {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let other = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&other).unwrap();
    unlockpt(&other).unwrap();
    let other_path = ptsname(&other, Vec::new()).unwrap();
    let other_path = other_path.to_str().unwrap().to_string();
    let ws = tempfile::tempdir().unwrap();
    let script = [
        attempt("own-tty", "echo hello > /dev/tty"),
        attempt(
            "other-pts",
            &format!(
                "python3 -c 'import os; os.open(\"{other_path}\", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)'"
            ),
        ),
        attempt("other-pts-write", &format!("echo x > {other_path}")),
    ]
    .concat();
    let ran = run(workspace_write(ws.path()), ws.path(), MODES[1], &script).await;
    assert_wrote(&ran, "own-tty");
    assert_refused(&ran, "other-pts");
    assert_refused(&ran, "other-pts-write");
    // A pipe process has no terminal at all: it runs in a session of its own.
    let ran = run(
        workspace_write(ws.path()),
        ws.path(),
        MODES[0],
        &attempt("tty", "echo x > /dev/tty"),
    )
    .await;
    assert_refused(&ran, "tty");
}

#[tokio::test]
async fn bad_policies_are_refused_before_anything_runs() {
    let ws = tempfile::tempdir().unwrap();
    let relative = SandboxPolicy::new(FilesystemAccess::WorkspaceWrite, vec!["relative".into()]);
    let missing = SandboxPolicy::new(
        FilesystemAccess::WorkspaceWrite,
        vec![ws.path().join("missing")],
    );
    let mut climbing = workspace_write(ws.path());
    climbing.read_only_subpaths = vec!["../x".into()];
    let mut full_readable = SandboxPolicy::new(FilesystemAccess::Full, vec![]);
    full_readable.readable_roots = Some(vec![ws.path().to_path_buf()]);
    for (policy, expected) in [
        (relative, "not an absolute path"),
        (missing, "missing"),
        (climbing, "without `..`"),
        (full_readable, "readableRoots needs"),
    ] {
        let mut config = ProcessConfig::new(vec!["/bin/true".into()], ws.path());
        config.sandbox = Some(policy);
        match spawn_process(config).await {
            Err(SpawnError::Invalid(message)) => assert!(message.contains(expected), "{message}"),
            Err(other) => panic!("expected an invalid-params error, got {other}"),
            Ok(_) => panic!("a bad policy was accepted"),
        }
    }
}
