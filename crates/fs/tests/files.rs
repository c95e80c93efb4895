//! File operations on real files in a temp directory, unrestricted policy:
//! round trips, ranges, atomic replacement, modes, listings, errors.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use exec_server_fs::{
    CreateDirOptions, ErrorKind, FileSystem, ListOptions, RemoveOptions, WriteOptions,
};

fn fs() -> FileSystem {
    FileSystem::default()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn kind<T: std::fmt::Debug>(result: exec_server_fs::FsResult<T>) -> ErrorKind {
    result.unwrap_err().kind()
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().as_bytes().ends_with(b".tmp"))
        .collect()
}

#[test]
fn every_byte_value_and_the_empty_file_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<u8> = (0..=255u8).cycle().take(256 * 3).collect();
    for data in [all.as_slice(), b""] {
        let path = dir.path().join("bytes.bin");
        fs().write_file(&path, data, &WriteOptions::default())
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert_eq!(fs().read_file(&path, 0, None, 1 << 20).unwrap(), data);
    }
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn ranges_at_and_across_the_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("digits");
    std::fs::write(&path, b"0123456789").unwrap();
    let read = |offset, length| fs().read_file(&path, offset, length, 1 << 20).unwrap();
    assert_eq!(read(0, Some(3)), b"012");
    assert_eq!(read(7, Some(3)), b"789");
    assert_eq!(read(8, Some(5)), b"89", "across the end");
    assert_eq!(read(10, Some(4)), b"", "at the end");
    assert_eq!(read(99, Some(4)), b"", "beyond the end");
    assert_eq!(read(4, None), b"456789");
    assert_eq!(read(0, Some(0)), b"");

    let handle = fs().open_read(&path).unwrap();
    assert_eq!(handle.size(), 10);
    assert_eq!(handle.read_block(6, 3).unwrap(), (b"678".to_vec(), false));
    assert_eq!(handle.read_block(7, 3).unwrap(), (b"789".to_vec(), true));
    assert_eq!(handle.read_block(8, 4).unwrap(), (b"89".to_vec(), true));
    assert_eq!(handle.read_block(0, 2).unwrap(), (b"01".to_vec(), false));
    assert_eq!(handle.read_block(10, 2).unwrap(), (Vec::new(), true));
}

#[test]
fn reads_over_the_limit_are_refused_with_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    std::fs::write(&path, vec![7u8; 1000]).unwrap();
    let error = fs().read_file(&path, 0, None, 999).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TooLarge);
    assert!(error.message().contains("offset and length"), "{error}");
    assert_eq!(fs().read_file(&path, 1, None, 999).unwrap().len(), 999);
    assert_eq!(
        kind(fs().read_file(&path, 0, Some(1000), 999)),
        ErrorKind::TooLarge
    );
}

#[test]
fn an_unfinished_write_leaves_the_old_content_and_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, b"old content").unwrap();
    let handle = fs().open_write(&path, &WriteOptions::default()).unwrap();
    handle.write_at(0, b"new, half wr").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"old content", "not yet");
    assert_eq!(
        leftovers(dir.path()).len(),
        1,
        "the temp file exists meanwhile"
    );
    drop(handle);
    assert_eq!(std::fs::read(&path).unwrap(), b"old content");
    assert!(leftovers(dir.path()).is_empty());

    let handle = fs().open_write(&path, &WriteOptions::default()).unwrap();
    handle.write_at(4, b"tent").unwrap();
    handle.write_at(0, b"new ").unwrap();
    handle.finish().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new tent");
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn modes_are_kept_set_and_copied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.sh");
    let options = WriteOptions {
        mode: Some(0o750),
        ..Default::default()
    };
    fs().write_file(&path, b"#!/bin/sh\n", &options).unwrap();
    assert_eq!(mode(&path), 0o750);
    fs().write_file(&path, b"#!/bin/sh\necho\n", &WriteOptions::default())
        .unwrap();
    assert_eq!(mode(&path), 0o750, "replacing keeps the mode");
    let copy = dir.path().join("copy.sh");
    fs().copy(&path, &copy, false).unwrap();
    assert_eq!(mode(&copy), 0o750);
    assert_eq!(std::fs::read(&copy).unwrap(), b"#!/bin/sh\necho\n");
    assert_eq!(fs().metadata(&copy).unwrap().mode, 0o750);
}

#[test]
fn append_and_non_atomic_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let append = WriteOptions {
        append: true,
        ..Default::default()
    };
    fs().write_file(&path, b"one\n", &append).unwrap();
    fs().write_file(&path, b"two\n", &append).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\n");
    let direct = WriteOptions {
        atomic: false,
        ..Default::default()
    };
    fs().write_file(&path, b"3", &direct).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"3");
}

#[test]
fn writing_through_a_symlink_replaces_its_target() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("real"), b"old").unwrap();
    std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
    fs().write_file(&dir.path().join("link"), b"new", &WriteOptions::default())
        .unwrap();
    assert!(
        std::fs::symlink_metadata(dir.path().join("link"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(std::fs::read(dir.path().join("real")).unwrap(), b"new");
}

#[test]
fn a_directory_of_ten_thousand_entries_is_listed_up_to_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..10_000 {
        std::fs::write(dir.path().join(format!("f{i:05}")), b"x").unwrap();
    }
    let all = fs()
        .list(
            dir.path(),
            &ListOptions {
                recursive: false,
                max_depth: None,
                max_entries: 10_000,
            },
        )
        .unwrap();
    assert_eq!(all.entries.len(), 10_000);
    assert!(!all.truncated);
    assert_eq!(all.entries[0].path, Path::new("f00000"));
    assert_eq!(all.entries[9_999].path, Path::new("f09999"));
    assert!(
        all.entries
            .iter()
            .all(|e| e.metadata.is_file && e.metadata.size == 1)
    );
    let capped = fs()
        .list(
            dir.path(),
            &ListOptions {
                recursive: false,
                max_depth: None,
                max_entries: 2_500,
            },
        )
        .unwrap();
    assert_eq!(capped.entries.len(), 2_500);
    assert!(capped.truncated);
}

#[test]
fn recursion_is_breadth_first_and_stops_at_the_depth() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a/b/c")).unwrap();
    std::fs::write(dir.path().join("a/b/c/deep"), b"").unwrap();
    std::fs::write(dir.path().join("top"), b"").unwrap();
    std::os::unix::fs::symlink("a", dir.path().join("link")).unwrap();
    let list = |depth| {
        fs().list(
            dir.path(),
            &ListOptions {
                recursive: true,
                max_depth: depth,
                max_entries: 100,
            },
        )
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.path.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
    };
    assert_eq!(list(Some(1)), ["a", "link", "top"]);
    assert_eq!(list(Some(2)), ["a", "link", "top", "a/b"]);
    assert_eq!(
        list(None),
        ["a", "link", "top", "a/b", "a/b/c", "a/b/c/deep"]
    );
    let entries = fs()
        .list(
            dir.path(),
            &ListOptions {
                recursive: false,
                max_depth: None,
                max_entries: 100,
            },
        )
        .unwrap()
        .entries;
    let link = entries
        .iter()
        .find(|e| e.path == Path::new("link"))
        .unwrap();
    assert!(link.metadata.is_symlink && link.metadata.is_directory);
}

#[test]
fn directories_are_created_removed_copied_and_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs().create_dir(&root.join("x/y/z"), &dir_options(true))
        .unwrap();
    fs().create_dir(&root.join("x/y/z"), &dir_options(true))
        .unwrap();
    assert_eq!(
        kind(fs().create_dir(&root.join("x"), &dir_options(false))),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(fs().create_dir(&root.join("q/r"), &dir_options(false))),
        ErrorKind::NotFound
    );
    std::fs::write(root.join("x/y/z/f"), b"data").unwrap();
    std::fs::set_permissions(root.join("x/y"), std::fs::Permissions::from_mode(0o710)).unwrap();
    std::os::unix::fs::symlink("z/f", root.join("x/y/lf")).unwrap();

    assert_eq!(
        kind(fs().copy(&root.join("x"), &root.join("x2"), false)),
        ErrorKind::IsADirectory
    );
    fs().copy(&root.join("x"), &root.join("x2"), true).unwrap();
    assert_eq!(std::fs::read(root.join("x2/y/z/f")).unwrap(), b"data");
    assert_eq!(mode(&root.join("x2/y")), 0o710);
    assert_eq!(
        std::fs::read_link(root.join("x2/y/lf")).unwrap(),
        Path::new("z/f")
    );
    assert_eq!(
        kind(fs().copy(&root.join("x"), &root.join("x/y/inside"), true)),
        ErrorKind::InvalidPath
    );

    fs().rename(&root.join("x2"), &root.join("x3")).unwrap();
    assert!(root.join("x3/y/z/f").exists() && !root.join("x2").exists());

    assert_eq!(
        kind(fs().remove(
            &root.join("x3"),
            &RemoveOptions {
                recursive: false,
                force: false
            }
        )),
        ErrorKind::DirectoryNotEmpty
    );
    fs().remove(
        &root.join("x3"),
        &RemoveOptions {
            recursive: true,
            force: false,
        },
    )
    .unwrap();
    assert!(!root.join("x3").exists());
    assert_eq!(
        kind(fs().remove(
            &root.join("x3"),
            &RemoveOptions {
                recursive: true,
                force: false
            }
        )),
        ErrorKind::NotFound
    );
    fs().remove(
        &root.join("x3"),
        &RemoveOptions {
            recursive: true,
            force: true,
        },
    )
    .unwrap();
    fs().remove(
        &root.join("nope/deeper"),
        &RemoveOptions {
            recursive: false,
            force: true,
        },
    )
    .unwrap();
    // A symlink is removed, not its target.
    fs().remove(
        &root.join("x/y/lf"),
        &RemoveOptions {
            recursive: false,
            force: false,
        },
    )
    .unwrap();
    assert!(root.join("x/y/z/f").exists());
}

#[test]
fn errors_name_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("file"), b"").unwrap();
    std::fs::create_dir(root.join("dir")).unwrap();
    let error = fs()
        .read_file(&root.join("missing"), 0, None, 10)
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.errno_name()),
        (ErrorKind::NotFound, Some("ENOENT"))
    );
    assert!(error.message().contains("missing"), "{error}");
    let error = fs().read_file(&root.join("dir"), 0, None, 10).unwrap_err();
    assert_eq!(
        (error.kind(), error.errno_name()),
        (ErrorKind::IsADirectory, Some("EISDIR"))
    );
    let error = fs()
        .list(
            &root.join("file"),
            &ListOptions {
                recursive: false,
                max_depth: None,
                max_entries: 10,
            },
        )
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.errno_name()),
        (ErrorKind::NotADirectory, Some("ENOTDIR"))
    );
    assert_eq!(
        kind(fs().read_file(&root.join("file/x"), 0, None, 10)),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        kind(fs().write_file(&root.join("dir"), b"", &WriteOptions::default())),
        ErrorKind::IsADirectory
    );
    let fifo = root.join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(kind(fs().open_read(&fifo)), ErrorKind::NotAFile);
    assert_eq!(
        kind(fs().read_file(&fifo, 0, None, 10)),
        ErrorKind::NotAFile
    );
    assert_eq!(
        kind(fs().metadata(Path::new("relative/path"))),
        ErrorKind::InvalidPath
    );
}

#[test]
fn odd_names_work_and_bad_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir
        .path()
        .join(OsStr::from_bytes(b"caf\xe9 \xff\xfe\n.txt"));
    fs().write_file(&odd, b"latin-1", &WriteOptions::default())
        .unwrap();
    assert_eq!(std::fs::read(&odd).unwrap(), b"latin-1");
    let listed = fs()
        .list(
            dir.path(),
            &ListOptions {
                recursive: false,
                max_depth: None,
                max_entries: 10,
            },
        )
        .unwrap();
    assert_eq!(listed.entries[0].path.as_os_str(), odd.file_name().unwrap());
    assert_eq!(
        fs().canonicalize(&odd).unwrap(),
        odd.canonicalize().unwrap()
    );

    let nul = OsStr::from_bytes(b"/tmp/a\0b");
    assert_eq!(kind(fs().metadata(Path::new(nul))), ErrorKind::InvalidPath);
    let long = format!("/{}", "d/".repeat(50_000));
    let error = fs().metadata(Path::new(&long)).unwrap_err();
    assert_eq!(
        (error.kind(), error.errno_name()),
        (ErrorKind::NameTooLong, Some("ENAMETOOLONG"))
    );
    assert!(error.message().len() < 200, "{}", error.message());
}

#[test]
fn metadata_reports_symlinks_and_their_targets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"12345").unwrap();
    std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
    std::os::unix::fs::symlink("nowhere", dir.path().join("dangling")).unwrap();
    let f = fs().metadata(&dir.path().join("f")).unwrap();
    assert!(f.is_file && !f.is_symlink && f.size == 5 && f.modified_at_ms > 0);
    let l = fs().metadata(&dir.path().join("l")).unwrap();
    assert!(l.is_file && l.is_symlink && l.size == 5);
    let d = fs().metadata(&dir.path().join("dangling")).unwrap();
    assert!(!d.is_file && !d.is_directory && d.is_symlink);
    assert_eq!(
        fs().canonicalize(&dir.path().join("l")).unwrap(),
        dir.path().canonicalize().unwrap().join("f")
    );
}

fn dir_options(recursive: bool) -> CreateDirOptions {
    CreateDirOptions {
        recursive,
        mode: None,
    }
}
