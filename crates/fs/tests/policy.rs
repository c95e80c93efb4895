//! The policy boundary: `..`, symlinks pointing out, read-only subpaths,
//! and a symlink swapped in while requests run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use exec_server_fs::{
    CreateDirOptions, ErrorKind, FileSystem, FsPolicy, ListOptions, RemoveOptions, WriteOptions,
};

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

/// `T/root` (the workspace) and `T/outside` (a secret next to it).
fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("root");
    let outside = base.join("outside");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("src/a.txt"), b"public").unwrap();
    std::fs::write(root.join(".git/config"), b"[core]").unwrap();
    std::fs::write(outside.join("a.txt"), b"SECRET").unwrap();
    std::os::unix::fs::symlink("../outside", root.join("out")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
    std::os::unix::fs::symlink("src", root.join("in")).unwrap();
    std::os::unix::fs::symlink(".git", root.join("gitlink")).unwrap();
    std::os::unix::fs::symlink("../outside/a.txt", root.join("escape")).unwrap();
    Tree {
        _dir: dir,
        root,
        outside,
    }
}

/// Reads and writes only inside `root`, `.git` read-only.
fn confined(tree: &Tree) -> FileSystem {
    let mut policy = FsPolicy::workspace_write(vec![tree.root.clone()]);
    policy.readable_roots = Some(vec![tree.root.clone()]);
    FileSystem::new(policy).unwrap()
}

fn kind<T: std::fmt::Debug>(result: exec_server_fs::FsResult<T>) -> ErrorKind {
    result.unwrap_err().kind()
}

fn write(fs: &FileSystem, path: &Path) -> exec_server_fs::FsResult<()> {
    fs.write_file(path, b"pwned", &WriteOptions::default())
}

#[test]
fn paths_inside_the_root_work_including_symlinks_that_stay_inside() {
    let tree = tree();
    let fs = confined(&tree);
    let read = |p: &str| fs.read_file(&tree.root.join(p), 0, None, 100).unwrap();
    assert_eq!(read("src/a.txt"), b"public");
    assert_eq!(read("in/a.txt"), b"public");
    assert_eq!(read("src/../src/a.txt"), b"public");
    assert_eq!(
        fs.canonicalize(&tree.root.join("in")).unwrap(),
        tree.root.join("src")
    );
    write(&fs, &tree.root.join("in/new.txt")).unwrap();
    assert_eq!(
        std::fs::read(tree.root.join("src/new.txt")).unwrap(),
        b"pwned"
    );
}

#[test]
fn dot_dot_and_symlinks_pointing_out_are_refused() {
    let tree = tree();
    let fs = confined(&tree);
    for path in [
        tree.root.join("../outside/a.txt"),
        tree.root.join("src/../../outside/a.txt"),
        tree.outside.join("a.txt"),
        tree.root.join("out/a.txt"),
        tree.root.join("abs/a.txt"),
        tree.root.join("escape"),
    ] {
        let error = fs.read_file(&path, 0, None, 100).unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::OutsideRoots,
            "{}: {error}",
            path.display()
        );
        assert_eq!(kind(fs.metadata(&path.join("x"))), ErrorKind::OutsideRoots);
        assert_eq!(
            kind(write(&fs, &path)),
            ErrorKind::OutsideRoots,
            "{}",
            path.display()
        );
        assert_eq!(kind(fs.canonicalize(&path)), ErrorKind::OutsideRoots);
    }
    let list = ListOptions {
        recursive: true,
        max_depth: None,
        max_entries: 100,
    };
    assert_eq!(
        kind(fs.list(&tree.root.join("out"), &list)),
        ErrorKind::OutsideRoots
    );
    assert_eq!(
        kind(fs.copy(
            &tree.root.join("out/a.txt"),
            &tree.root.join("stolen"),
            false
        )),
        ErrorKind::OutsideRoots
    );
    assert_eq!(
        kind(fs.copy(
            &tree.root.join("src/a.txt"),
            &tree.root.join("out/planted"),
            false
        )),
        ErrorKind::OutsideRoots
    );
    assert_eq!(
        kind(fs.rename(&tree.root.join("src/a.txt"), &tree.root.join("out/moved"))),
        ErrorKind::OutsideRoots
    );
    assert_eq!(
        kind(fs.create_dir(&tree.root.join("out/made"), &dir_options(true))),
        ErrorKind::OutsideRoots
    );
    assert_eq!(
        kind(fs.remove(
            &tree.root.join("out/a.txt"),
            &RemoveOptions {
                recursive: false,
                force: false
            }
        )),
        ErrorKind::OutsideRoots
    );
    // A recursive listing reports links that point out, without their target.
    let listed = fs.list(&tree.root, &list).unwrap();
    let out = listed
        .entries
        .iter()
        .find(|e| e.path == Path::new("out"))
        .unwrap();
    assert!(out.metadata.is_symlink && !out.metadata.is_directory);
    assert!(
        listed
            .entries
            .iter()
            .all(|e| e.path == Path::new("out") || !e.path.starts_with("out"))
    );
    // Nothing outside changed.
    assert_eq!(
        std::fs::read(tree.outside.join("a.txt")).unwrap(),
        b"SECRET"
    );
    assert_eq!(std::fs::read_dir(&tree.outside).unwrap().count(), 1);
    // The root itself cannot be removed or replaced.
    assert_eq!(
        kind(fs.remove(
            &tree.root,
            &RemoveOptions {
                recursive: true,
                force: false
            }
        )),
        ErrorKind::PermissionDenied
    );
    assert!(tree.root.exists());
}

#[test]
fn read_only_subpaths_cannot_be_written_by_any_name() {
    let tree = tree();
    let fs = confined(&tree);
    let root = &tree.root;
    for path in [
        root.join(".git/config"),
        root.join(".git/hooks/pre-commit"),
        root.join("gitlink/config"),
        root.join("src/../.git/config"),
        root.join("in/../.git/HEAD"),
    ] {
        let error = write(&fs, &path).unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::ReadOnly,
            "{}: {error}",
            path.display()
        );
    }
    assert_eq!(
        kind(fs.remove(
            &root.join(".git"),
            &RemoveOptions {
                recursive: true,
                force: false
            }
        )),
        ErrorKind::ReadOnly
    );
    assert_eq!(
        kind(fs.remove(
            &root.join("gitlink/config"),
            &RemoveOptions {
                recursive: false,
                force: false
            }
        )),
        ErrorKind::ReadOnly
    );
    assert_eq!(
        kind(fs.rename(&root.join(".git"), &root.join("g"))),
        ErrorKind::ReadOnly
    );
    assert_eq!(
        kind(fs.rename(&root.join("src/a.txt"), &root.join(".git/a"))),
        ErrorKind::ReadOnly
    );
    assert_eq!(
        kind(fs.create_dir(&root.join(".git/x/y"), &dir_options(true))),
        ErrorKind::ReadOnly
    );
    assert_eq!(
        kind(fs.copy(&root.join("src/a.txt"), &root.join("gitlink/a"), false)),
        ErrorKind::ReadOnly
    );
    // Reading .git is fine, and removing the link (not its target) too.
    assert_eq!(
        fs.read_file(&root.join(".git/config"), 0, None, 100)
            .unwrap(),
        b"[core]"
    );
    fs.remove(
        &root.join("gitlink"),
        &RemoveOptions {
            recursive: false,
            force: false,
        },
    )
    .unwrap();
    assert_eq!(std::fs::read(root.join(".git/config")).unwrap(), b"[core]");
}

#[test]
fn writes_outside_the_writable_roots_are_read_only_errors() {
    let tree = tree();
    let base = tree.root.parent().unwrap().to_path_buf();
    let mut policy = FsPolicy::workspace_write(vec![tree.root.clone()]);
    policy.readable_roots = Some(vec![base.clone()]);
    let fs = FileSystem::new(policy).unwrap();
    assert_eq!(
        fs.read_file(&tree.outside.join("a.txt"), 0, None, 100)
            .unwrap(),
        b"SECRET"
    );
    let error = write(&fs, &tree.outside.join("a.txt")).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ReadOnly);
    assert!(error.message().contains("writable root"), "{error}");
    let read_only = FileSystem::new(FsPolicy::read_only()).unwrap();
    assert_eq!(
        kind(write(&read_only, &tree.root.join("src/a.txt"))),
        ErrorKind::ReadOnly
    );
    assert_eq!(
        kind(read_only.remove(
            &tree.root.join("src/a.txt"),
            &RemoveOptions {
                recursive: false,
                force: false
            }
        )),
        ErrorKind::ReadOnly
    );
    assert_eq!(
        std::fs::read(tree.outside.join("a.txt")).unwrap(),
        b"SECRET"
    );
    assert!(
        FileSystem::new(FsPolicy {
            writable_roots: vec![PathBuf::from("relative")],
            ..FsPolicy::unrestricted()
        })
        .is_err()
    );
}

/// A thread flips `ROOT/flip` between a link to `src` (inside) and a link
/// to `../outside` while requests go through it. Every answer must be the
/// inside file or a refusal; the secret is never read and nothing is ever
/// written outside.
#[test]
fn a_symlink_swapped_in_during_requests_never_leads_outside() {
    let tree = tree();
    let fs = confined(&tree);
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let root = tree.root.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) && flips < 10_000_000 {
                for target in ["src", "../outside"] {
                    let temp = root.join(format!("flip.{flips}"));
                    std::os::unix::fs::symlink(target, &temp).unwrap();
                    std::fs::rename(&temp, root.join("flip")).unwrap();
                    flips += 1;
                }
            }
            flips
        })
    };
    let started = Instant::now();
    let (mut inside, mut refused, mut iterations) = (0u32, 0u32, 0u32);
    while started.elapsed() < Duration::from_secs(10)
        && (iterations < 2_000 || inside < 50 || refused < 50)
        && iterations < 200_000
    {
        iterations += 1;
        match fs.read_file(&tree.root.join("flip/a.txt"), 0, None, 100) {
            Ok(data) => {
                assert_eq!(data, b"public", "read through a swapped symlink");
                inside += 1;
            }
            Err(error) => {
                assert!(
                    matches!(error.kind(), ErrorKind::OutsideRoots | ErrorKind::NotFound),
                    "{error}"
                );
                refused += 1;
            }
        }
        let _ = fs.write_file(
            &tree.root.join("flip/planted.txt"),
            b"x",
            &WriteOptions::default(),
        );
        let _ = fs.create_dir(&tree.root.join("flip/made"), &dir_options(false));
        assert!(
            !tree.outside.join("planted.txt").exists(),
            "written outside"
        );
        assert!(!tree.outside.join("made").exists(), "created outside");
    }
    stop.store(true, Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    assert_eq!(
        std::fs::read(tree.outside.join("a.txt")).unwrap(),
        b"SECRET"
    );
    assert!(
        inside > 0 && refused > 0,
        "the race was not exercised: {inside} inside, {refused} refused, {flips} flips"
    );
}

fn dir_options(recursive: bool) -> CreateDirOptions {
    CreateDirOptions {
        recursive,
        mode: None,
    }
}
