//! Watching real directories: changes arrive in order, renames pair up,
//! recursive watches follow new directories, limits hold.

use std::path::{Path, PathBuf};
use std::time::Duration;

use exec_server_fs::{Change, ChangeKind, FileSystem, WatchOptions, Watcher};
use tokio::sync::mpsc;

const OPTIONS: WatchOptions = WatchOptions {
    max_watches: 4,
    max_directories: 64,
};

async fn next(changes: &mut mpsc::Receiver<Change>) -> (ChangeKind, PathBuf, Option<PathBuf>) {
    let change = tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .expect("a change in time")
        .expect("the watcher is running");
    (change.kind, change.path, change.old_path)
}

/// Tests here count inotify instances of this process: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Changes until one about `last` of kind `kind`, skipping metadata noise.
async fn until(
    changes: &mut mpsc::Receiver<Change>,
    kind: ChangeKind,
    last: &Path,
) -> Vec<(ChangeKind, PathBuf, Option<PathBuf>)> {
    let mut seen = Vec::new();
    loop {
        let change = next(changes).await;
        let done = change.0 == kind && change.1 == last;
        // Writes may be reported as one `modified` or several.
        if change.0 != ChangeKind::Metadata && seen.last() != Some(&change) {
            seen.push(change);
        }
        if done {
            return seen;
        }
    }
}

#[tokio::test]
async fn create_modify_rename_delete_arrive_in_order() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (tx, mut changes) = mpsc::channel(64);
    let watcher = Watcher::new(FileSystem::default(), OPTIONS, tx).unwrap();
    let id = watcher.watch(&root, false).unwrap();
    let a = root.join("a.txt");
    let b = root.join("b.txt");
    std::fs::write(&a, b"one").unwrap();
    std::fs::write(&a, b"two").unwrap();
    std::fs::rename(&a, &b).unwrap();
    std::fs::remove_file(&b).unwrap();
    let seen = until(&mut changes, ChangeKind::Deleted, &b).await;
    assert_eq!(
        seen,
        vec![
            (ChangeKind::Created, a.clone(), None),
            (ChangeKind::Modified, a.clone(), None),
            (ChangeKind::Renamed, b.clone(), Some(a.clone())),
            (ChangeKind::Deleted, b.clone(), None),
        ]
    );
    assert!(watcher.unwatch(id));
    assert!(!watcher.unwatch(id));
}

#[tokio::test]
async fn recursive_watches_follow_new_directories_and_renames_inside() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir(root.join("old")).unwrap();
    let (tx, mut changes) = mpsc::channel(64);
    let watcher = Watcher::new(FileSystem::default(), OPTIONS, tx).unwrap();
    watcher.watch(&root, true).unwrap();
    std::fs::write(root.join("old/inner"), b"x").unwrap();
    until(&mut changes, ChangeKind::Modified, &root.join("old/inner")).await;
    std::fs::create_dir(root.join("new")).unwrap();
    until(&mut changes, ChangeKind::Created, &root.join("new")).await;
    std::fs::write(root.join("new/file"), b"x").unwrap();
    until(&mut changes, ChangeKind::Modified, &root.join("new/file")).await;
    // A directory renamed inside keeps being watched under its new name.
    std::fs::rename(root.join("old"), root.join("moved")).unwrap();
    let seen = until(&mut changes, ChangeKind::Renamed, &root.join("moved")).await;
    assert_eq!(
        seen.last().unwrap().2.as_deref(),
        Some(root.join("old").as_path())
    );
    std::fs::remove_file(root.join("moved/inner")).unwrap();
    until(&mut changes, ChangeKind::Deleted, &root.join("moved/inner")).await;
    // A tree made in one go is found even where we were too late to watch.
    std::fs::create_dir_all(root.join("deep/er/est")).unwrap();
    std::fs::write(root.join("deep/er/est/leaf"), b"").unwrap();
    let seen = until(
        &mut changes,
        ChangeKind::Created,
        &root.join("deep/er/est/leaf"),
    )
    .await;
    assert!(
        seen.iter().any(|c| c.1 == root.join("deep/er/est")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn limits_are_enforced_and_paths_outside_the_roots_refused() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    for i in 0..10 {
        std::fs::create_dir_all(root.join(format!("d{i}/sub"))).unwrap();
    }
    let (tx, _changes) = mpsc::channel(64);
    let tight = WatchOptions {
        max_watches: 2,
        max_directories: 5,
    };
    let watcher = Watcher::new(FileSystem::default(), tight, tx).unwrap();
    let error = watcher.watch(&root, true).unwrap_err();
    assert_eq!(error.kind(), exec_server_fs::ErrorKind::TooLarge, "{error}");
    assert!(watcher.is_empty(), "a failed watch leaves nothing behind");
    watcher.watch(&root.join("d0"), false).unwrap();
    watcher.watch(&root.join("d1"), true).unwrap();
    let error = watcher.watch(&root.join("d2"), false).unwrap_err();
    assert!(error.message().contains("at most 2 watches"), "{error}");

    let confined = FileSystem::new(exec_server_fs::FsPolicy {
        readable_roots: Some(vec![root.join("d3")]),
        ..exec_server_fs::FsPolicy::read_only()
    })
    .unwrap();
    let (tx, _changes) = mpsc::channel(64);
    let watcher = Watcher::new(confined, OPTIONS, tx).unwrap();
    let error = watcher.watch(&root.join("d3/../d4"), false).unwrap_err();
    assert_eq!(error.kind(), exec_server_fs::ErrorKind::OutsideRoots);
    watcher.watch(&root.join("d3"), true).unwrap();
}

#[tokio::test]
async fn dropping_the_watcher_closes_its_inotify_instance() {
    let _serial = SERIAL.lock().await;
    // The fds of this process that are inotify instances. An earlier test's
    // runtime may still be closing its own: follow ours by number.
    let instances = || -> std::collections::HashSet<String> {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| {
                let path = e.ok()?.path();
                let target = std::fs::read_link(&path).ok()?;
                (target == Path::new("anon_inode:inotify"))
                    .then(|| path.file_name().unwrap().to_string_lossy().into_owned())
            })
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let before = instances();
    let (tx, _changes) = mpsc::channel(64);
    let watcher = Watcher::new(FileSystem::default(), OPTIONS, tx).unwrap();
    watcher.watch(dir.path(), true).unwrap();
    let ours: Vec<String> = instances().difference(&before).cloned().collect();
    assert_eq!(ours.len(), 1, "one new inotify instance");
    drop(watcher);
    // The task owning the instance ends on its next poll.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while instances().contains(&ours[0]) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !instances().contains(&ours[0]),
        "the instance outlived its watcher"
    );
}
