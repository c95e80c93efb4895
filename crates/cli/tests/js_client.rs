//! The JavaScript client (`clients/js`) under Node against this binary:
//! `node --test` runs its tests (real connections, the observer API, the
//! generated types checked by the TypeScript compiler). Needs Node 20+
//! and `npm ci` in clients/js (the `ws` package, TypeScript); fails, never
//! skips, when they are missing.

mod common;

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_javascript_client_passes_its_node_tests() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients/js");
    let node = Command::new("node").arg("--version").output();
    let version = match node {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
        _ => panic!("Node 20 or later is required to test clients/js"),
    };
    let major: u32 = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or(0);
    assert!(major >= 20, "Node 20 or later is required, found {version}");
    assert!(
        root.join("node_modules/ws").is_dir() && root.join("node_modules/typescript").is_dir(),
        "run `npm ci` in clients/js first (installs ws and typescript)"
    );
    let output = Command::new("node")
        .args(["--test", "test/"])
        .current_dir(&root)
        .env("EXEC_SERVER_BIN", common::server_bin())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the JavaScript client's tests failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("# fail 0"), "{stdout}");
}
