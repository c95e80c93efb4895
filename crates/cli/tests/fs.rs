//! The `fs/*` API and `exec-server cp` against the real binary: trees
//! copied both ways over a websocket with a token and compared with
//! `diff -r`, a gibibyte checked by SHA-256, errors from the OS as the
//! server's user sees them, and handles and watches gone with their
//! connection.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use exec_server_client::{ClientOptions, ExecServerClient, WebSocketConnectArgs};
use exec_server_protocol::fs::WriteOptions;
use serde_json::json;
use sha2::{Digest, Sha256};

const TOKEN: &str = "fs-test-token";

fn token_file(dir: &Path) -> String {
    let path = dir.join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    path.display().to_string()
}

async fn cp(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(server_bin())
            .arg("cp")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn s(path: &Path) -> String {
    path.display().to_string()
}

fn remote(path: &Path) -> String {
    format!(":{}", path.display())
}

/// Every path below `root` with its mode, sorted.
fn modes(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            let rel = entry.path().strip_prefix(root).unwrap().to_path_buf();
            out.push((rel, metadata.permissions().mode() & 0o7777));
            if metadata.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

fn diff_r(a: &Path, b: &Path) {
    let output = Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "diff -r {} {}:\n{}{}",
        a.display(),
        b.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A tree with binary files, an empty file, several modes, a name that is
/// not UTF-8 and a file of several blocks.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("bin/deep/er")).unwrap();
    std::fs::write(root.join("all-bytes"), (0..=255u8).collect::<Vec<_>>()).unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(root.join("bin/run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(root.join("bin/run.sh"), PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(root.join("bin/deep/secret"), b"s").unwrap();
    std::fs::set_permissions(
        root.join("bin/deep/secret"),
        PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(root.join("bin/deep"), PermissionsExt::from_mode(0o750)).unwrap();
    std::fs::write(root.join(OsStr::from_bytes(b"caf\xe9")), b"latin-1 name").unwrap();
    let big: Vec<u8> = (0..9 * 1024 * 1024 + 3)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("bin/deep/er/big.bin"), big).unwrap();
}

#[tokio::test]
async fn cp_copies_trees_both_ways_over_websocket_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let token = token_file(base);
    let server = WsServer::start(&["--auth-token-file", &token]).await;
    let src = base.join("src");
    make_tree(&src);
    std::fs::create_dir(base.join("remote")).unwrap();
    let with = |extra: &[String]| {
        let mut args = vec![
            "--connect".to_string(),
            server.url.clone(),
            "--token-file".to_string(),
            token.clone(),
        ];
        args.extend_from_slice(extra);
        args
    };
    let up = base.join("remote/up");
    let output = cp(with(&["-r".into(), s(&src), remote(&up)])).await;
    assert!(output.status.success(), "{output:?}");
    assert!(
        output.stderr.is_empty(),
        "no progress bar without a terminal: {output:?}"
    );
    diff_r(&src, &up);
    assert_eq!(modes(&src), modes(&up));

    let back = base.join("back");
    let output = cp(with(&["-r".into(), remote(&up), s(&back)])).await;
    assert!(output.status.success(), "{output:?}");
    diff_r(&src, &back);
    assert_eq!(modes(&src), modes(&back));

    // Into an existing directory, by name; several sources at once.
    let into = base.join("remote/into");
    std::fs::create_dir(&into).unwrap();
    let output = cp(with(&[
        s(&src.join("empty")),
        s(&src.join("bin/run.sh")),
        remote(&into),
    ]))
    .await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        std::fs::read(into.join("run.sh")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    assert_eq!(
        modes(&into),
        [
            (PathBuf::from("empty"), 0o644),
            (PathBuf::from("run.sh"), 0o755)
        ]
    );
    // Remote to remote is a copy on the server.
    let output = cp(with(&[
        "-r".into(),
        remote(&up),
        remote(&base.join("remote/twin")),
    ]))
    .await;
    assert!(output.status.success(), "{output:?}");
    diff_r(&src, &base.join("remote/twin"));

    // Without the token the server refuses: exit 1, one line.
    let output = cp(vec![
        "--connect".into(),
        server.url.clone(),
        s(&src.join("empty")),
        remote(&base.join("remote/x")),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
}

#[tokio::test]
async fn cp_failures_exit_1_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir(base.join("d")).unwrap();
    let server = WsServer::start(&[]).await;
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--connect".into(),
                server.url.clone(),
                ":/definitely/missing".into(),
                s(&base.join("x")),
            ],
            "/definitely/missing: no such file or directory",
        ),
        (
            vec![
                "--connect".into(),
                server.url.clone(),
                s(&base.join("d")),
                remote(&base.join("e")),
            ],
            "is a directory (use -r)",
        ),
        (
            vec![
                "--connect".into(),
                "ws://127.0.0.1:1".into(),
                s(&base.join("d")),
                ":/tmp".into(),
            ],
            "127.0.0.1:1",
        ),
        (
            vec![s(&base.join("d")), s(&base.join("e"))],
            "no remote path",
        ),
        (
            vec![":relative".into(), s(&base.join("e"))],
            "must be absolute",
        ),
        (vec!["--bogus".into(), "a".into(), "b".into()], "--bogus"),
        (vec!["only-one".into()], "required"),
    ];
    for (args, needle) in cases {
        let output = cp(args.clone()).await;
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("exec-server cp: "), "{stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// 64 MiB up and down through the Rust client over a real websocket,
/// checked by SHA-256 on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mebibytes_round_trip_over_websocket_checked_by_sha256() {
    const BLOCK: usize = 4 * 1024 * 1024;
    const BLOCKS: usize = 16;
    // 64 MiB here; the gibibyte is the `fs-read`/`fs-write` bench rows
    // (release build): in a debug build it takes minutes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gib.bin");
    let server = WsServer::start(&[]).await;
    let client = ExecServerClient::connect_websocket(WebSocketConnectArgs::new(&server.url))
        .await
        .unwrap();
    let started = Instant::now();
    let mut pattern: Vec<u8> = (0..BLOCK as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let mut sent = Sha256::new();
    let mut writer = client
        .create_writer(&path, WriteOptions::default())
        .await
        .unwrap();
    for block in 0..BLOCKS {
        pattern[..8].copy_from_slice(&(block as u64).to_le_bytes());
        sent.update(&pattern);
        writer.write_chunk(pattern.clone()).await.unwrap();
    }
    writer.finish().await.unwrap();
    let uploaded = started.elapsed();
    let sent = sent.finalize();
    let on_disk = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(path).unwrap();
            let mut hash = Sha256::new();
            std::io::copy(&mut file, &mut hash).unwrap();
            hash.finalize()
        })
        .await
        .unwrap()
    };
    assert_eq!(on_disk, sent, "the file on disk");
    let started = Instant::now();
    let mut reader = client.open_reader(&path).await.unwrap();
    assert_eq!(reader.size(), Some((BLOCK * BLOCKS) as u64));
    let mut received = Sha256::new();
    let mut total = 0;
    while let Some(chunk) = reader.next_chunk().await.unwrap() {
        total += chunk.len();
        received.update(&chunk);
    }
    assert_eq!(total, BLOCK * BLOCKS);
    assert_eq!(received.finalize(), sent, "the bytes read back");
    eprintln!("64 MiB up in {uploaded:?}, down in {:?}", started.elapsed());
}

#[tokio::test]
async fn os_errors_reach_the_client_with_their_code_and_errno() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::set_permissions(root, PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(root.join("private"), b"p").unwrap();
    std::fs::set_permissions(root.join("private"), PermissionsExt::from_mode(0o600)).unwrap();
    // Root may read anything: run the server as nobody to meet EACCES.
    let mut command = tokio::process::Command::new(if rustix::process::geteuid().is_root() {
        "setpriv"
    } else {
        "env"
    });
    if rustix::process::geteuid().is_root() {
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        std::fs::set_permissions(root.join("private"), PermissionsExt::from_mode(0o600)).unwrap();
    } else {
        std::fs::set_permissions(root.join("private"), PermissionsExt::from_mode(0o000)).unwrap();
    }
    command.args([server_bin(), "--listen", "ws://127.0.0.1:0"]);
    let server = WsServer::start_command(command).await;
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    rpc.handshake().await;
    let error = rpc
        .err("fs/readFile", json!({"path": s(&root.join("private"))}))
        .await;
    assert_eq!(error["code"], -32003, "{error}");
    assert_eq!(
        error["data"],
        json!({"kind": "permissionDenied", "errno": "EACCES"})
    );
    assert!(
        error["message"].as_str().unwrap().contains("private"),
        "{error}"
    );
    let error = rpc
        .err(
            "fs/writeFile",
            json!({"path": s(&root.join("new")), "dataBase64": ""}),
        )
        .await;
    assert_eq!(error["data"]["kind"], "permissionDenied", "{error}");
    let error = rpc
        .err("fs/getMetadata", json!({"path": s(&root.join("nope"))}))
        .await;
    assert_eq!(
        (error["code"].clone(), error["data"]["errno"].clone()),
        (json!(-32001), json!("ENOENT"))
    );
    let long = format!("/{}", "a/".repeat(50_000));
    let error = rpc.err("fs/readFile", json!({"path": long})).await;
    assert_eq!(error["data"]["kind"], "nameTooLong", "{error}");
    let error = rpc.err("fs/readFile", json!({"path": "/a\u{0}b"})).await;
    assert_eq!(
        (error["code"].clone(), error["data"]["kind"].clone()),
        (json!(-32602), json!("invalidPath"))
    );
    // The server is still fine.
    rpc.ok("fs/getMetadata", json!({"path": "/"})).await;
}

fn inotify_instances(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|target| target == Path::new("anon_inode:inotify"))
                .count()
        })
        .unwrap_or(0)
}

fn temp_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .as_bytes()
                .ends_with(b".tmp")
        })
        .count()
}

#[tokio::test]
async fn a_closed_connection_takes_its_handles_and_watches_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("precious");
    std::fs::write(&target, b"old content").unwrap();
    let server = WsServer::start(&[]).await;
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    rpc.handshake().await;
    rpc.ok(
        "fs/watch",
        json!({"path": s(dir.path()), "recursive": true}),
    )
    .await;
    assert_eq!(inotify_instances(server.pid()), 1);
    rpc.ok(
        "fs/open",
        json!({"handleId": "w", "path": s(&target), "write": true}),
    )
    .await;
    rpc.ok(
        "fs/writeBlock",
        json!({"handleId": "w", "offset": 0, "chunk": b64(b"new, half")}),
    )
    .await;
    assert_eq!(temp_files(dir.path()), 1);
    // The watch reports the temp file's creation.
    let changed = rpc.next_notification().await;
    assert_eq!(changed["method"], "fs/changed");
    assert_eq!(changed["params"]["kind"], "created");
    drop(rpc);
    let deadline = Instant::now() + Duration::from_secs(10);
    while (temp_files(dir.path()) > 0 || inotify_instances(server.pid()) > 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        temp_files(dir.path()),
        0,
        "the unfinished write was discarded"
    );
    assert_eq!(
        inotify_instances(server.pid()),
        0,
        "the watch outlived its connection"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"old content");

    // A server killed mid-write leaves the old content too.
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    rpc.handshake().await;
    rpc.ok(
        "fs/open",
        json!({"handleId": "w", "path": s(&target), "write": true}),
    )
    .await;
    rpc.ok(
        "fs/writeBlock",
        json!({"handleId": "w", "offset": 0, "chunk": b64(b"new")}),
    )
    .await;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(server.pid()).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    assert!(wait_gone(server.pid(), Duration::from_secs(10)).await);
    assert_eq!(std::fs::read(&target).unwrap(), b"old content");
}

#[tokio::test]
async fn the_client_helpers_work_over_stdio_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(server_bin())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = ExecServerClient::connect_stdio(
        child.stdin.take().unwrap(),
        child.stdout.take().unwrap(),
        ClientOptions::default(),
    )
    .await
    .unwrap();
    let path = dir.path().join("f");
    let content: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    client.write_file(&path, content.clone()).await.unwrap();
    assert_eq!(client.read_file(&path).await.unwrap(), content);
}
