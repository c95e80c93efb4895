//! `exec-server mcp` driven by a real MCP client this project did not
//! write: the official Python SDK (`pip install mcp`, done by `.ci/run`).
//! The scenarios live in `mcp_client.py`; this test runs it and fails when
//! it fails, or when Python or the SDK is missing.

mod common;

use std::process::Command;

#[test]
fn the_official_python_mcp_client_drives_every_tool() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_client.py");
    let sdk = Command::new("python3").args(["-c", "import mcp"]).output();
    match sdk {
        Ok(output) if output.status.success() => {}
        _ => panic!("python3 with the `mcp` package is required: pip install mcp (.ci/run does)"),
    }
    let output = Command::new("python3")
        .arg(script)
        .arg(common::server_bin())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the MCP client scenarios failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OK: "), "{stdout}");
}
