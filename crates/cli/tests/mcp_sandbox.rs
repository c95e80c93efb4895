//! `exec-server mcp --sandbox workspace-write --writable-root DIR`, driven
//! by the official MCP Python SDK: commands inside the workspace work,
//! writes outside it, to `.git` and network connections are refused, and
//! each result says so in words a model can act on; an interactive shell
//! under the sandbox still returns at its prompt. The scenarios live in
//! `mcp_sandbox_client.py`; this test fails when they fail, or when the
//! test Python (`scripts/test`) or the SDK is missing.

mod common;

use std::process::Command;

#[test]
fn mcp_with_a_sandbox_reports_denials_to_the_model() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_sandbox_client.py");
    let python = common::test_python_with(&["mcp"]);
    let workspace = tempfile::tempdir().unwrap();
    std::fs::create_dir(workspace.path().join(".git")).unwrap();
    std::fs::write(workspace.path().join(".git/config"), "[core]\n").unwrap();
    let outside = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let output = Command::new(&python)
        .arg(script)
        .arg(common::server_bin())
        .arg(workspace.path())
        .arg(outside.path())
        .arg(port.to_string())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the sandboxed MCP scenarios failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OK: "), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(workspace.path().join(".git/config")).unwrap(),
        "[core]\n"
    );
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "a sandboxed command reached the listener"
    );
}
