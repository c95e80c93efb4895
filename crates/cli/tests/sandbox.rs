//! Sandboxed processes through the real binary: the server policy
//! (`--sandbox`, `--writable-root`, `--sandbox-network`, config file),
//! narrowing by requests, v0 `command/exec` under a policy, fail-closed on a
//! kernel without Landlock (simulated), a non-root server (user
//! namespaces), and `exec-server run --sandbox`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Rpc, StdioTransport, stdio_client, unb64};
use serde_json::{Value, json};

const SIMULATE_NO_LANDLOCK: &str = "EXEC_SERVER_TEST_SIMULATE_NO_LANDLOCK";

fn policy_args(ws: &Path) -> Vec<String> {
    vec![
        "--sandbox".into(),
        "workspace-write".into(),
        "--writable-root".into(),
        ws.display().to_string(),
    ]
}

async fn client(args: &[String]) -> Rpc<StdioTransport> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    stdio_client(&args).await
}

/// Starts `sh -c script` with `process/start` and returns (result, output).
async fn start_and_collect(
    rpc: &mut Rpc<StdioTransport>,
    script: &str,
    cwd: &Path,
    tty: bool,
    sandbox: Option<Value>,
) -> (Value, String, i64) {
    let mut params = json!({
        "argv": ["/bin/sh", "-c", script],
        "cwd": cwd.display().to_string(),
        "env": {"PATH": "/usr/local/bin:/usr/bin:/bin"},
        "tty": tty,
    });
    if let Some(sandbox) = sandbox {
        params["sandbox"] = sandbox;
    }
    let result = rpc.ok("process/start", params).await;
    let id = result["processId"].as_str().unwrap().to_string();
    let mut output = Vec::new();
    loop {
        let n = rpc.next_notification().await;
        if n["params"]["processId"] != id.as_str() {
            continue;
        }
        match n["method"].as_str().unwrap() {
            "process/output" => output.extend_from_slice(&unb64(&n["params"]["chunk"])),
            "process/exited" => {
                let code = n["params"]["exitCode"].as_i64().unwrap();
                return (result, String::from_utf8_lossy(&output).into_owned(), code);
            }
            _ => {}
        }
    }
}

fn write_probe(ws: &Path, outside: &Path) -> String {
    format!(
        "echo in > {w}/inside && echo WROTE-INSIDE; echo x > {o}/outside || echo REFUSED-OUTSIDE",
        w = ws.display(),
        o = outside.display()
    )
}

#[tokio::test]
async fn a_server_policy_confines_every_process_and_v0_command_exec() {
    let ws = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let mut rpc = client(&policy_args(ws.path())).await;

    // v0: wire unchanged, confined all the same (pipes and PTY).
    for tty in [false, true] {
        let mut params = common::sh(&write_probe(ws.path(), outside.path()));
        params["tty"] = json!(tty);
        let session = rpc.exec(params).await;
        let out = rpc.collect(&session).await;
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("WROTE-INSIDE"), "{text}");
        assert!(text.contains("REFUSED-OUTSIDE"), "{text}");
        assert!(text.contains("Permission denied"), "{text}");
        assert!(!outside.path().join("outside").exists());
    }

    // process/start without a sandbox param: the server's policy, reported.
    for tty in [false, true] {
        let (result, output, _) = start_and_collect(
            &mut rpc,
            &write_probe(ws.path(), outside.path()),
            ws.path(),
            tty,
            None,
        )
        .await;
        assert!(
            output.contains("WROTE-INSIDE") && output.contains("REFUSED-OUTSIDE"),
            "{output}"
        );
        let applied = &result["sandbox"];
        assert_eq!(applied["filesystem"], "workspace-write", "{result}");
        assert_eq!(applied["network"], "none");
        assert_eq!(
            applied["writableRoots"],
            json!([ws.path().canonicalize().unwrap().display().to_string()])
        );
        assert_eq!(applied["enforcement"]["seccomp"], true);
        assert_eq!(applied["enforcement"]["noNewPrivs"], true);
        assert!(applied["enforcement"]["landlockAbi"].as_u64().unwrap() >= 3);
        assert!(applied["tmpdir"].as_str().is_some());
    }
    assert!(!outside.path().join("outside").exists());
}

#[tokio::test]
async fn initialize_reports_support_and_the_policy() {
    let ws = tempfile::tempdir().unwrap();
    let mut rpc = Rpc::new(StdioTransport::start(
        &policy_args(ws.path())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    ));
    let result = rpc.ok("initialize", json!({"clientName": "t"})).await;
    let sandbox = &result["sandbox"];
    assert_eq!(sandbox["support"]["seccomp"], true, "{result}");
    assert_eq!(sandbox["support"]["filesystem"], true, "{result}");
    assert!(sandbox["support"]["landlockAbi"].as_u64().unwrap() >= 3);
    assert_eq!(sandbox["support"]["readOnlySubpaths"], "mountNamespace");
    assert_eq!(sandbox["policy"]["filesystem"], "workspace-write");
    assert_eq!(sandbox["policy"]["network"], "none");
    assert_eq!(sandbox["policy"]["readOnlySubpaths"], json!([".git"]));

    // Without a policy: support only.
    let mut rpc = Rpc::new(StdioTransport::start(&[]));
    let result = rpc.ok("initialize", json!({"clientName": "t"})).await;
    assert!(result["sandbox"]["support"].is_object(), "{result}");
    assert!(result["sandbox"].get("policy").is_none(), "{result}");
}

#[tokio::test]
async fn a_request_may_narrow_the_policy_but_never_widen_it() {
    let ws = tempfile::tempdir().unwrap();
    let inner = ws.path().join("inner");
    std::fs::create_dir(&inner).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let mut rpc = client(&policy_args(ws.path())).await;
    let start = |sandbox: Value| {
        json!({
            "argv": ["/bin/true"], "cwd": "/", "env": {},
            "sandbox": sandbox,
        })
    };
    for (sandbox, flag) in [
        (json!({"filesystem": "full"}), "--sandbox workspace-write"),
        (json!({"network": "full"}), "--sandbox-network none"),
        (
            json!({"writableRoots": [elsewhere.path().display().to_string()]}),
            "--writable-root",
        ),
        (
            json!({"writableRoots": [format!("{}/inner/../..", ws.path().display())]}),
            "--writable-root",
        ),
        (json!({"readOnlySubpaths": []}), "`.git`"),
    ] {
        let error = rpc.err("process/start", start(sandbox.clone())).await;
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(flag), "{sandbox}: {message}");
        assert_eq!(error["code"], -32600, "{error}");
    }
    // Narrower is fine, and the result says what was applied.
    let (result, output, _) = start_and_collect(
        &mut rpc,
        &format!(
            "echo x > {w}/top || echo REFUSED-TOP; echo y > {w}/inner/y && echo WROTE-INNER",
            w = ws.path().display()
        ),
        ws.path(),
        false,
        Some(json!({"writableRoots": [inner.display().to_string()]})),
    )
    .await;
    assert!(
        output.contains("REFUSED-TOP") && output.contains("WROTE-INNER"),
        "{output}"
    );
    assert_eq!(
        result["sandbox"]["writableRoots"],
        json!([inner.canonicalize().unwrap().display().to_string()])
    );
    let (result, _, _) = start_and_collect(
        &mut rpc,
        "true",
        ws.path(),
        false,
        Some(json!({"filesystem": "read-only"})),
    )
    .await;
    assert_eq!(result["sandbox"]["filesystem"], "read-only");
    // Unknown fields are refused, not ignored.
    let error = rpc
        .err("process/start", start(json!({"filesytem": "full"})))
        .await;
    assert_eq!(error["code"], -32602, "{error}");
}

#[tokio::test]
async fn without_landlock_a_filesystem_sandbox_fails_closed() {
    let ws = tempfile::tempdir().unwrap();
    // A server whose policy needs Landlock refuses to start.
    let output = Command::new(common::server_bin())
        .args(policy_args(ws.path()))
        .env(SIMULATE_NO_LANDLOCK, "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no Landlock"), "{stderr}");

    // Without a policy, a request that needs Landlock is refused and
    // nothing runs.
    let mut rpc = Rpc::new(StdioTransport::start_with_env(
        &[],
        &[(SIMULATE_NO_LANDLOCK, "1")],
    ));
    rpc.handshake().await;
    let marker = ws.path().join("ran");
    let error = rpc
        .err(
            "process/start",
            json!({
                "argv": ["/bin/sh", "-c", format!("touch {}", marker.display())],
                "cwd": "/", "env": {},
                "sandbox": {"filesystem": "workspace-write", "writableRoots": [ws.path().display().to_string()]},
            }),
        )
        .await;
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("cannot enforce the sandbox") && message.contains("no Landlock"),
        "{message}"
    );
    assert!(!marker.exists(), "the command ran unconfined");
    // `full` needs no Landlock: the rest of the confinement still applies.
    let (result, output, _) = start_and_collect(
        &mut rpc,
        "grep -E '^(NoNewPrivs|Seccomp:)' /proc/self/status",
        ws.path(),
        false,
        Some(json!({"filesystem": "full"})),
    )
    .await;
    assert!(
        output.contains("NoNewPrivs:\t1") && output.contains("Seccomp:\t2"),
        "{output}"
    );
    assert!(
        result["sandbox"]["enforcement"]
            .get("landlockAbi")
            .is_none(),
        "{result}"
    );
}

#[tokio::test]
async fn the_config_file_sets_the_policy_and_bad_flags_are_refused() {
    let ws = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "sandbox = \"workspace-write\"\nwritable-root = [\"{}\"]\nsandbox-network = \"full\"\n",
            ws.path().display()
        ),
    )
    .unwrap();
    let mut rpc = Rpc::new(StdioTransport::start(&[
        "--config",
        config.to_str().unwrap(),
    ]));
    let result = rpc.ok("initialize", json!({"clientName": "t"})).await;
    assert_eq!(
        result["sandbox"]["policy"]["filesystem"], "workspace-write",
        "{result}"
    );
    assert_eq!(result["sandbox"]["policy"]["network"], "full", "{result}");

    let ws_arg = ws.path().display().to_string();
    for (args, expected) in [
        (
            vec!["--writable-root", ws_arg.as_str()],
            "--writable-root needs --sandbox",
        ),
        (
            vec!["--sandbox", "workspace-write"],
            "needs at least one --writable-root",
        ),
        (
            vec!["--sandbox-network", "none"],
            "--sandbox-network needs --sandbox",
        ),
        (
            vec![
                "--sandbox",
                "workspace-write",
                "--writable-root",
                "/no/such/dir",
            ],
            "/no/such/dir",
        ),
        (
            vec!["--sandbox", "sideways"],
            "read-only, workspace-write or full",
        ),
    ] {
        let output = Command::new(common::server_bin())
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_non_root_server_keeps_dot_git_read_only_through_a_user_namespace() {
    // The same binary as an unprivileged user (nobody): no CAP_SYS_ADMIN,
    // so read-only subpaths go through a user namespace.
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir(ws.path().join(".git")).unwrap();
    std::fs::write(ws.path().join(".git/config"), "[core]\n").unwrap();
    let nobody = 65534;
    for path in [
        ws.path().to_path_buf(),
        ws.path().join(".git"),
        ws.path().join(".git/config"),
    ] {
        std::os::unix::fs::chown(&path, Some(nobody), Some(nobody)).unwrap();
    }
    let mut command = tokio::process::Command::new("setpriv");
    command
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .arg(common::server_bin())
        .args(policy_args(ws.path()))
        .env("TMPDIR", "/tmp");
    let mut rpc = Rpc::new(StdioTransport::from_command(command));
    let result = rpc.ok("initialize", json!({"clientName": "t"})).await;
    assert_eq!(
        result["sandbox"]["support"]["readOnlySubpaths"], "userNamespace",
        "{result}"
    );
    rpc.send(json!({"method": "initialized"})).await;
    for tty in [false, true] {
        let (result, output, _) = start_and_collect(
            &mut rpc,
            &format!(
                "echo x >> {w}/.git/config || echo REFUSED-GIT; echo y > {w}/y && echo WROTE-INSIDE; echo z > /tmp/exec-server-nobody-$$ || echo REFUSED-TMP; grep -E '^(NoNewPrivs|Seccomp:|CapEff|CapBnd)' /proc/self/status",
                w = ws.path().display()
            ),
            ws.path(),
            tty,
            None,
        )
        .await;
        assert!(output.contains("REFUSED-GIT"), "{output}");
        assert!(output.contains("Read-only file system"), "{output}");
        assert!(output.contains("WROTE-INSIDE"), "{output}");
        assert!(output.contains("REFUSED-TMP"), "{output}");
        assert!(output.contains("CapEff:\t0000000000000000"), "{output}");
        assert!(output.contains("CapBnd:\t0000000000000000"), "{output}");
        assert_eq!(result["sandbox"]["enforcement"]["mountNamespace"], true);
    }
    assert_eq!(
        std::fs::read_to_string(ws.path().join(".git/config")).unwrap(),
        "[core]\n"
    );
}

#[test]
fn exec_server_run_confines_the_command() {
    let ws = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let output = Command::new(common::server_bin())
        .args(["run", "-T", "--cwd"])
        .arg(ws.path())
        .args(policy_args(ws.path()))
        .args(["--", "/bin/sh", "-c"])
        .arg(format!(
            "{}; python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 9))' 2>&1 | tail -1",
            write_probe(ws.path(), outside.path())
        ))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("WROTE-INSIDE") && stdout.contains("REFUSED-OUTSIDE"),
        "{stdout}{stderr}"
    );
    assert!(stdout.contains("Operation not permitted"), "{stdout}");
    assert!(!outside.path().join("outside").exists());
}

#[tokio::test]
async fn the_files_api_obeys_the_server_sandbox_roots() {
    let ws = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(ws.path().join(".git")).unwrap();
    std::fs::write(ws.path().join(".git/config"), "[core]\n").unwrap();
    let mut rpc = client(&policy_args(ws.path())).await;
    let write = |path: &Path| json!({"path": path.display().to_string(), "dataBase64": "aGk="});
    rpc.ok("fs/writeFile", write(&ws.path().join("inside")))
        .await;
    assert_eq!(std::fs::read(ws.path().join("inside")).unwrap(), b"hi");
    let refused = rpc
        .err("fs/writeFile", write(&outside.path().join("x")))
        .await;
    assert_eq!(refused["code"], -32009, "{refused}");
    assert!(!outside.path().join("x").exists());
    let refused = rpc
        .err("fs/writeFile", write(&ws.path().join(".git/config")))
        .await;
    assert_eq!(refused["code"], -32009, "{refused}");
    assert_eq!(
        std::fs::read_to_string(ws.path().join(".git/config")).unwrap(),
        "[core]\n"
    );
    // Reads are not narrowed without `readableRoots`.
    std::fs::write(outside.path().join("r"), "readable").unwrap();
    let read = rpc
        .ok(
            "fs/readFile",
            json!({"path": outside.path().join("r").display().to_string()}),
        )
        .await;
    assert_eq!(unb64(&read["dataBase64"]), b"readable");
}
