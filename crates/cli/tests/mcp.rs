//! `exec-server mcp` driven by a real MCP client this project did not
//! write: the official Python SDK (`mcp` in scripts/python-requirements.txt,
//! installed by `scripts/test`). The scenarios live in `mcp_client.py`; this
//! test runs it and fails when it fails, or when the SDK is missing.

mod common;

use std::process::Command;

#[test]
fn the_official_python_mcp_client_drives_every_tool() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_client.py");
    let python = common::test_python_with(&["mcp"]);
    let output = Command::new(&python)
        .arg(script)
        .arg(common::server_bin())
        .output()
        .expect("run the MCP client scenarios");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the MCP client scenarios failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OK: "), "{stdout}");
}
