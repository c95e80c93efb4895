//! `exec-server run` as a user would run it: pipes, exit statuses, binary
//! data, a remote server, and a real terminal (tmux).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};

fn run(args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(server_bin())
        .arg("run")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

#[test]
fn exit_statuses_are_the_commands() {
    assert_eq!(run(&["--", "true"], b"").status.code(), Some(0));
    assert_eq!(
        run(&["--", "sh", "-c", "exit 7"], b"").status.code(),
        Some(7)
    );
    assert_eq!(
        run(&["--", "sh", "-c", "kill -TERM $$"], b"").status.code(),
        Some(128 + 15)
    );
}

#[test]
fn failures_of_exec_server_itself_exit_255_with_one_clear_line() {
    for args in [
        &["--", "/definitely/not/here"][..],
        &["-e", "NOEQUALS", "--", "true"],
        &["--connect", "ws://127.0.0.1:1", "--", "true"],
        &["--connect", "http://x", "--", "true"],
        &[],
    ] {
        let output = run(args, b"");
        assert_eq!(output.status.code(), Some(255), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(!stderr.trim().is_empty(), "{args:?}");
    }
    let stderr = String::from_utf8(run(&["--", "/definitely/not/here"], b"").stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("/definitely/not/here") && stderr.contains("No such file"),
        "{stderr}"
    );
}

#[test]
fn stdout_and_stderr_stay_apart_and_stdin_is_forwarded_with_its_eof() {
    let output = run(&["--", "sh", "-c", "echo to-out; echo to-err >&2"], b"");
    assert_eq!(output.stdout, b"to-out\n");
    assert_eq!(output.stderr, b"to-err\n");
    let output = run(&["--", "cat"], b"hi\n");
    assert_eq!(
        (output.stdout.as_slice(), output.status.code()),
        (&b"hi\n"[..], Some(0))
    );
}

#[test]
fn binary_data_passes_through_unchanged() {
    let mut data = vec![0u8; 3 * 1024 * 1024];
    let mut state: u32 = 12345;
    for byte in data.iter_mut() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *byte = (state >> 16) as u8;
    }
    let output = run(&["--", "cat"], &data);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(Sha256::digest(&output.stdout), Sha256::digest(&data));
}

#[test]
fn the_environment_is_minimal_unless_asked() {
    let output = run(&["-e", "EXTRA=1", "--", "/usr/bin/env"], b"");
    let mut env: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    env.sort();
    assert_eq!(
        env,
        vec![
            "EXTRA=1",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ]
    );
    let inherited = run(&["--inherit-env", "--", "/usr/bin/env"], b"");
    let inherited = String::from_utf8(inherited.stdout).unwrap();
    assert!(inherited.lines().count() > 2, "{inherited}");
    let cwd = run(&["--cwd", "/tmp", "--", "pwd"], b"");
    assert_eq!(cwd.stdout, b"/tmp\n");
}

#[tokio::test]
async fn connect_uses_a_remote_server_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "run-test-token\n").unwrap();
    let token = token.display().to_string();
    let server = WsServer::start(&["--auth-token-file", &token]).await;
    let url = server.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        run(
            &[
                "--connect",
                &url,
                "--token-file",
                &token,
                "--",
                "sh",
                "-c",
                "pwd; echo remote; exit 4",
            ],
            b"",
        )
    })
    .await
    .unwrap();
    assert_eq!(output.stdout, b"/\nremote\n", "the remote default cwd is /");
    assert_eq!(output.status.code(), Some(4));
    let url = server.url.clone();
    let refused = tokio::task::spawn_blocking(move || run(&["--connect", &url, "--", "true"], b""))
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(255), "no token: refused");
    assert!(String::from_utf8(refused.stderr).unwrap().contains("401"));
}

/// A tmux server of our own, removed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        Tmux {
            socket: format!("exec-server-test-{}", std::process::id()),
        }
    }

    fn cmd(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "t"])
    }

    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waiting for {needle:?}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.cmd(&args);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.cmd(&["kill-server"]);
    }
}

fn read_file(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn a_real_terminal_gets_a_remote_pty_resizes_ctrl_c_and_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let before = dir.path().join("before");
    let after = dir.path().join("after");
    let status = dir.path().join("status");
    let script = format!(
        "stty -g > {before}; {bin} run -t -e 'PS1=ready> ' -- bash --norc --noprofile; echo $? > {status}; stty -g > {after}; sleep 60",
        before = before.display(),
        after = after.display(),
        status = status.display(),
        bin = server_bin(),
    );
    let tmux = Tmux::new();
    tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "80",
        "-y",
        "24",
        "sh",
        "-c",
        &script,
    ]);
    tmux.wait_for("ready>");
    tmux.keys(&["stty size", "Enter"]);
    tmux.wait_for("24 80");

    tmux.cmd(&["resize-window", "-t", "t", "-x", "100", "-y", "30"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux.keys(&["clear; stty size", "Enter"]);
    tmux.wait_for("30 100");

    // Ctrl-C reaches the remote program as a keystroke and interrupts it.
    tmux.keys(&["sleep 30", "Enter"]);
    std::thread::sleep(Duration::from_millis(500));
    let interrupted = Instant::now();
    tmux.keys(&["C-c"]);
    tmux.keys(&["echo after-interrupt", "Enter"]);
    tmux.wait_for("after-interrupt\n");
    assert!(interrupted.elapsed() < Duration::from_secs(10));

    tmux.keys(&["exit 3", "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while read_file(&after).is_empty() {
        assert!(
            Instant::now() < deadline,
            "run did not return; screen:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(read_file(&status), "3", "the remote shell's exit status");
    assert_eq!(
        read_file(&before),
        read_file(&after),
        "the local terminal settings were restored"
    );
}
