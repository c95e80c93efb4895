//! Names the commit in `exec-server --version` when the binary is built
//! from a git checkout of this repository.
//!
//! Sets `EXEC_SERVER_LONG_VERSION` to `0.1.0 (abcdef123456 2026-12-01)`
//! (short hash and commit date), with the `EXEC_SERVER_BUILD_COMMIT`
//! environment variable in the parentheses when a packager sets it, or to
//! the bare package version: outside git (a source tarball, a
//! crates.io download), without a `git` program, or when the enclosing git
//! repository is some other project (a registry cache inside a home
//! directory under version control). Any failure means "no commit", never a
//! failed build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=EXEC_SERVER_BUILD_COMMIT");
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let commit = match std::env::var("EXEC_SERVER_BUILD_COMMIT") {
        Ok(value) => Some(value.trim().to_string()).filter(|v| !v.is_empty()),
        Err(_) => git_commit(),
    };
    let long = match commit {
        Some(commit) => format!("{version} ({commit})"),
        None => version,
    };
    println!("cargo:rustc-env=EXEC_SERVER_LONG_VERSION={long}");
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.trim().to_string())
}

fn git_commit() -> Option<String> {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    // Only our own repository counts: this crate must sit at crates/cli in it.
    let top = PathBuf::from(git(&manifest_dir, &["rev-parse", "--show-toplevel"])?);
    if top.join("crates/cli").canonicalize().ok()? != manifest_dir.canonicalize().ok()? {
        return None;
    }
    // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it
    // points to (a commit), and packed refs. Paths come from git because a
    // worktree keeps HEAD and the branches in different directories. Only
    // existing files are named: cargo reruns the script every time for a
    // missing one.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&top, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(
            &top,
            &["rev-parse", "--path-format=absolute", "--git-path", &name],
        ) && Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    git(
        &top,
        &["log", "-1", "--format=%h %cs", "--abbrev=12", "HEAD"],
    )
    .filter(|line| !line.is_empty())
}
