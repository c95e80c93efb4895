//! The `fs/*` handlers in memory: typed messages in and out, real files.
//! Error codes, handles and watches bound per connection and gone with it,
//! names that are not UTF-8, notifications in order.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use exec_server_protocol::wire::DecodedClientMessage;
use exec_server_protocol::{ClientMessage, RequestId, ServerMessage, ServerNotification};
use exec_server_service::{Incoming, Server, ServerConfig, connect_in_process};
use serde_json::{Value, json};
use tokio::sync::mpsc;

struct Conn {
    tx: mpsc::Sender<Incoming>,
    rx: mpsc::Receiver<ServerMessage>,
    next_id: i64,
    notifications: Vec<ServerNotification>,
}

/// An error as (code, kind, errno, message).
type Failure = (i64, Option<String>, Option<String>, String);

impl Conn {
    async fn ready(config: ServerConfig) -> Conn {
        let (tx, rx) = connect_in_process(&Server::new(config));
        let mut conn = Conn {
            tx,
            rx,
            next_id: 1,
            notifications: Vec::new(),
        };
        conn.call("initialize", json!({"clientName": "fs"}))
            .await
            .unwrap();
        conn.send(ClientMessage::Notification {
            method: "initialized".into(),
            params: None,
        })
        .await;
        conn
    }

    async fn send(&self, message: ClientMessage) {
        let message = Incoming::Message(DecodedClientMessage {
            message,
            jsonrpc: false,
        });
        self.tx.send(message).await.unwrap();
    }

    async fn recv(&mut self) -> ServerMessage {
        tokio::time::timeout(Duration::from_secs(20), self.rx.recv())
            .await
            .expect("an answer in time")
            .expect("connection open")
    }

    async fn call(&mut self, method: &str, params: Value) -> Result<Value, Failure> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(ClientMessage::Request {
            id: id.into(),
            method: method.into(),
            params: Some(params),
        })
        .await;
        loop {
            match self.recv().await {
                ServerMessage::Response { id: got, result } => {
                    assert_eq!(got, Some(RequestId::from(id)));
                    return result.map_err(|e| {
                        let data = e.data.unwrap_or(Value::Null);
                        let text = |k: &str| data[k].as_str().map(str::to_string);
                        (e.code, text("kind"), text("errno"), e.message)
                    });
                }
                ServerMessage::Notification(n) => self.notifications.push(n),
            }
        }
    }

    async fn ok(&mut self, method: &str, params: Value) -> Value {
        match self.call(method, params.clone()).await {
            Ok(result) => result,
            Err(error) => panic!("{method} {params} failed: {error:?}"),
        }
    }

    async fn err(&mut self, method: &str, params: Value) -> Failure {
        match self.call(method, params.clone()).await {
            Ok(result) => panic!("{method} {params} succeeded: {result}"),
            Err(error) => error,
        }
    }

    /// The next `fs/changed`, skipping `metadata` changes.
    async fn changed(&mut self) -> (String, String, Option<String>) {
        loop {
            let notification = if self.notifications.is_empty() {
                match self.recv().await {
                    ServerMessage::Notification(n) => n,
                    other => panic!("unexpected {other:?}"),
                }
            } else {
                self.notifications.remove(0)
            };
            let ServerNotification::FsChanged(change) = notification else {
                panic!("unexpected {notification:?}");
            };
            let kind = serde_json::to_value(change.kind).unwrap();
            let kind = kind.as_str().unwrap().to_string();
            if kind != "metadata" {
                return (kind, change.path, change.old_path);
            }
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(value: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap())
        .unwrap()
}

fn p(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect()
}

#[tokio::test]
async fn files_round_trip_through_every_method() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut conn = Conn::ready(ServerConfig::default()).await;
    let all: Vec<u8> = (0..=255u8).collect();
    let file = root.join("sub/all.bin");
    conn.ok(
        "fs/writeFile",
        json!({"path": p(&file), "dataBase64": b64(&all), "createParents": true, "mode": 0o640}),
    )
    .await;
    let read = conn.ok("fs/readFile", json!({"path": p(&file)})).await;
    assert_eq!(unb64(&read["dataBase64"]), all);
    let range = conn
        .ok(
            "fs/readFile",
            json!({"path": p(&file), "offset": 250, "length": 10}),
        )
        .await;
    assert_eq!(unb64(&range["dataBase64"]), &all[250..]);
    let meta = conn.ok("fs/getMetadata", json!({"path": p(&file)})).await;
    assert_eq!(meta["size"], 256);
    assert_eq!(meta["mode"], 0o640);
    assert_eq!(
        (meta["isFile"].clone(), meta["isSymlink"].clone()),
        (json!(true), json!(false))
    );
    assert!(meta["modifiedAtMs"].as_i64().unwrap() > 0);
    assert!(meta.get("createdAtMs").is_some());

    let opened = conn
        .ok("fs/open", json!({"handleId": "h1", "path": p(&file)}))
        .await;
    assert_eq!(opened, json!({"handleId": "h1", "size": 256}));
    let block = conn
        .ok(
            "fs/readBlock",
            json!({"handleId": "h1", "offset": 200, "len": 56}),
        )
        .await;
    assert_eq!(unb64(&block["chunk"]), &all[200..]);
    assert_eq!(block["eof"], true);
    conn.ok("fs/close", json!({"handleId": "h1"})).await;

    let big = root.join("pieces.bin");
    let writer = conn
        .ok("fs/open", json!({"path": p(&big), "write": true}))
        .await;
    let handle = writer["handleId"].as_str().unwrap().to_string();
    for (i, piece) in all.chunks(100).enumerate() {
        conn.ok(
            "fs/writeBlock",
            json!({"handleId": handle, "offset": i * 100, "chunk": b64(piece)}),
        )
        .await;
    }
    assert!(!big.exists(), "nothing is visible before close");
    conn.ok("fs/close", json!({"handleId": handle})).await;
    assert_eq!(std::fs::read(&big).unwrap(), all);

    let listing = conn
        .ok(
            "fs/readDirectory",
            json!({"path": p(root), "recursive": true}),
        )
        .await;
    let names: Vec<&str> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["fileName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pieces.bin", "sub", "sub/all.bin"]);
    assert_eq!(listing["truncated"], false);
    assert_eq!(listing["entries"][2]["mode"], 0o640);

    conn.ok(
        "fs/copy",
        json!({"sourcePath": p(&root.join("sub")), "destinationPath": p(&root.join("copy")), "recursive": true}),
    )
    .await;
    assert_eq!(std::fs::read(root.join("copy/all.bin")).unwrap(), all);
    conn.ok(
        "fs/rename",
        json!({"sourcePath": p(&root.join("copy")), "destinationPath": p(&root.join("moved"))}),
    )
    .await;
    conn.ok(
        "fs/createDirectory",
        json!({"path": p(&root.join("a/b")), "recursive": true}),
    )
    .await;
    let canonical = conn
        .ok(
            "fs/canonicalize",
            json!({"path": p(&root.join("a/b/../b"))}),
        )
        .await;
    assert_eq!(
        canonical["path"],
        p(&root.canonicalize().unwrap().join("a/b"))
    );
    conn.ok(
        "fs/remove",
        json!({"path": p(&root.join("moved")), "recursive": true}),
    )
    .await;
    assert!(!root.join("moved").exists());
}

#[tokio::test]
async fn every_error_names_its_cause_with_a_code_and_the_errno() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("file"), b"12345").unwrap();
    std::fs::create_dir_all(root.join("dir/inner")).unwrap();
    std::os::unix::fs::symlink("loop2", root.join("loop1")).unwrap();
    std::os::unix::fs::symlink("loop1", root.join("loop2")).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(root.join("fifo"))
            .status()
            .unwrap()
            .success()
    );
    let config = ServerConfig {
        fs_limits: exec_server_fs::FsLimits {
            max_read_bytes: 4,
            ..Default::default()
        },
        ..ServerConfig::default()
    };
    let mut conn = Conn::ready(config).await;
    let path = |name: &str| p(&root.join(name));
    let cases: Vec<(&str, Value, i64, &str, Option<&str>)> = vec![
        (
            "fs/readFile",
            json!({"path": path("missing")}),
            -32001,
            "notFound",
            Some("ENOENT"),
        ),
        (
            "fs/createDirectory",
            json!({"path": path("dir")}),
            -32002,
            "alreadyExists",
            Some("EEXIST"),
        ),
        (
            "fs/readFile",
            json!({"path": path("dir")}),
            -32004,
            "isADirectory",
            Some("EISDIR"),
        ),
        (
            "fs/readDirectory",
            json!({"path": path("file")}),
            -32005,
            "notADirectory",
            Some("ENOTDIR"),
        ),
        (
            "fs/remove",
            json!({"path": path("dir")}),
            -32006,
            "directoryNotEmpty",
            Some("ENOTEMPTY"),
        ),
        (
            "fs/readFile",
            json!({"path": path("file")}),
            -32007,
            "tooLarge",
            None,
        ),
        (
            "fs/readFile",
            json!({"path": path("fifo")}),
            -32010,
            "notAFile",
            None,
        ),
        (
            "fs/readFile",
            json!({"path": path("loop1")}),
            -32011,
            "symlinkLoop",
            Some("ELOOP"),
        ),
        (
            "fs/getMetadata",
            json!({"path": format!("/{}", "x/".repeat(50_000))}),
            -32012,
            "nameTooLong",
            Some("ENAMETOOLONG"),
        ),
        (
            "fs/getMetadata",
            json!({"path": "/tmp/a\u{0}b"}),
            -32602,
            "invalidPath",
            None,
        ),
        (
            "fs/getMetadata",
            json!({"path": "relative"}),
            -32602,
            "invalidPath",
            None,
        ),
        (
            "fs/copy",
            json!({"sourcePath": path("dir"), "destinationPath": path("d2")}),
            -32004,
            "isADirectory",
            Some("EISDIR"),
        ),
    ];
    for (method, params, code, kind, errno) in cases {
        let (got_code, got_kind, got_errno, message) = conn.err(method, params.clone()).await;
        assert_eq!(
            (got_code, got_kind.as_deref(), got_errno.as_deref()),
            (code, Some(kind), errno),
            "{method} {}: {message}",
            &params.to_string()[..params.to_string().len().min(120)]
        );
        assert!(message.len() < 1024, "{message}");
    }
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    std::fs::write(shm.path().join("f"), b"x").unwrap();
    let (code, kind, errno, _) = conn
        .err(
            "fs/rename",
            json!({"sourcePath": p(&shm.path().join("f")), "destinationPath": path("from-shm")}),
        )
        .await;
    assert_eq!(
        (code, kind.as_deref(), errno.as_deref()),
        (-32014, Some("crossesDevices"), Some("EXDEV"))
    );

    // Malformed params and limits use the standard codes.
    for (method, params, code) in [
        ("fs/readFile", json!({}), -32602),
        (
            "fs/readFile",
            json!({"path": "/a", "pathBase64": "L2E="}),
            -32602,
        ),
        (
            "fs/readFile",
            json!({"path": path("file"), "length": 5}),
            -32602,
        ),
        (
            "fs/readBlock",
            json!({"handleId": "nope", "offset": 0, "len": 1}),
            -32600,
        ),
        ("fs/close", json!({"handleId": "nope"}), -32600),
        ("fs/unwatch", json!({"watchId": "watch-99"}), -32600),
        ("fs/bogus", json!({}), -32600),
        (
            "fs/writeFile",
            json!({"path": path("x"), "dataBase64": "%%%"}),
            -32602,
        ),
    ] {
        let (got, _, _, message) = conn.err(method, params).await;
        assert_eq!(got, code, "{method}: {message}");
    }
    let (_, _, _, message) = conn.err("fs/readFile", json!({})).await;
    assert!(message.contains("missing field `path`"), "{message}");
    // A range within the limit still works on the same file.
    let data = conn
        .ok(
            "fs/readFile",
            json!({"path": path("file"), "offset": 1, "length": 4}),
        )
        .await;
    assert_eq!(unb64(&data["dataBase64"]), b"2345");
}

#[tokio::test]
async fn the_policy_in_the_server_config_is_enforced() {
    // It starts a watcher: see `SERIAL`.
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("ws");
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(base.join("secret"), b"s").unwrap();
    std::os::unix::fs::symlink("../secret", root.join("link")).unwrap();
    let mut policy = exec_server_fs::FsPolicy::workspace_write(vec![root.clone()]);
    policy.readable_roots = Some(vec![root.clone()]);
    let mut conn = Conn::ready(ServerConfig {
        fs_policy: policy,
        ..ServerConfig::default()
    })
    .await;
    for params in [
        json!({"path": p(&base.join("secret"))}),
        json!({"path": p(&root.join("link"))}),
        json!({"path": p(&root.join("../secret"))}),
    ] {
        let (code, kind, _, _) = conn.err("fs/readFile", params).await;
        assert_eq!((code, kind.as_deref()), (-32008, Some("outsideRoots")));
    }
    let (code, kind, _, message) = conn
        .err(
            "fs/writeFile",
            json!({"path": p(&root.join(".git/config")), "dataBase64": ""}),
        )
        .await;
    assert_eq!(
        (code, kind.as_deref()),
        (-32009, Some("readOnly")),
        "{message}"
    );
    conn.ok(
        "fs/writeFile",
        json!({"path": p(&root.join("ok")), "dataBase64": "aGk="}),
    )
    .await;
    let (code, _, _, _) = conn.err("fs/watch", json!({"path": p(&base)})).await;
    assert_eq!(code, -32008);
}

#[tokio::test]
async fn names_that_are_not_utf8_travel_as_base64() {
    let dir = tempfile::tempdir().unwrap();
    let raw = [dir.path().as_os_str().as_bytes(), b"/caf\xe9.txt"].concat();
    let mut conn = Conn::ready(ServerConfig::default()).await;
    conn.ok(
        "fs/writeFile",
        json!({"pathBase64": b64(&raw), "dataBase64": b64(b"latin")}),
    )
    .await;
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(&raw));
    assert_eq!(std::fs::read(&path).unwrap(), b"latin");
    let listing = conn
        .ok("fs/readDirectory", json!({"path": p(dir.path())}))
        .await;
    let entry = &listing["entries"][0];
    assert_eq!(entry["fileName"], "caf\u{fffd}.txt");
    assert_eq!(unb64(&entry["fileNameBase64"]), b"caf\xe9.txt");
    let canonical = conn
        .ok("fs/canonicalize", json!({"pathBase64": b64(&raw)}))
        .await;
    assert_eq!(unb64(&canonical["pathBase64"]), raw);
    // UTF-8 names carry no base64 field.
    std::fs::write(dir.path().join("plain"), b"").unwrap();
    let listing = conn
        .ok("fs/readDirectory", json!({"path": p(dir.path())}))
        .await;
    assert!(listing["entries"][1].get("fileNameBase64").is_none());
}

#[tokio::test]
async fn handles_are_bounded_and_closed_with_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("precious");
    std::fs::write(&file, b"old content").unwrap();
    let config = ServerConfig {
        fs_limits: exec_server_fs::FsLimits {
            max_handles: 3,
            ..Default::default()
        },
        ..ServerConfig::default()
    };
    let mut conn = Conn::ready(config).await;
    conn.ok(
        "fs/open",
        json!({"handleId": "w", "path": p(&file), "write": true}),
    )
    .await;
    conn.ok(
        "fs/writeBlock",
        json!({"handleId": "w", "offset": 0, "chunk": b64(b"new, half")}),
    )
    .await;
    conn.ok("fs/open", json!({"handleId": "r1", "path": p(&file)}))
        .await;
    let (code, _, _, message) = conn
        .err("fs/open", json!({"handleId": "r1", "path": p(&file)}))
        .await;
    assert_eq!(code, -32600, "{message}");
    conn.ok("fs/open", json!({"path": p(&file)})).await;
    let (code, _, _, message) = conn.err("fs/open", json!({"path": p(&file)})).await;
    assert_eq!(code, -32600);
    assert_eq!(
        message,
        "at most 3 files may be open per connection (--fs-max-handles)"
    );
    let (code, _, _, _) = conn
        .err(
            "fs/readBlock",
            json!({"handleId": "w", "offset": 0, "len": 1}),
        )
        .await;
    assert_eq!(code, -32600);
    // Closing one makes room again.
    conn.ok("fs/close", json!({"handleId": "r1"})).await;
    conn.ok("fs/open", json!({"handleId": "r2", "path": p(&file)}))
        .await;
    assert_eq!(tmp_files(dir.path()).len(), 1, "the half-written temp file");

    // The connection ends with the write unfinished: old content, no temp.
    drop(conn);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !tmp_files(dir.path()).is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(tmp_files(dir.path()).is_empty());
    assert_eq!(std::fs::read(&file).unwrap(), b"old content");

    // Discarding explicitly does the same.
    let mut conn = Conn::ready(ServerConfig::default()).await;
    conn.ok(
        "fs/open",
        json!({"handleId": "w", "path": p(&file), "write": true}),
    )
    .await;
    conn.ok(
        "fs/writeBlock",
        json!({"handleId": "w", "offset": 0, "chunk": b64(b"x")}),
    )
    .await;
    conn.ok("fs/close", json!({"handleId": "w", "discard": true}))
        .await;
    assert_eq!(std::fs::read(&file).unwrap(), b"old content");
    assert!(tmp_files(dir.path()).is_empty());
}

/// Tests that count this process's inotify instances run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// This process's inotify instances, by fd number. An earlier test's
/// runtime may still be closing its own: tests follow theirs by number.
fn inotify_instances() -> std::collections::HashSet<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            let target = std::fs::read_link(&path).ok()?;
            (target == Path::new("anon_inode:inotify"))
                .then(|| path.file_name().unwrap().to_string_lossy().into_owned())
        })
        .collect()
}

#[tokio::test]
async fn watch_changes_arrive_in_order_and_watches_end_with_the_connection() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let before = inotify_instances();
    let config = ServerConfig {
        fs_limits: exec_server_fs::FsLimits {
            max_watches: 2,
            ..Default::default()
        },
        ..ServerConfig::default()
    };
    let mut conn = Conn::ready(config).await;
    let watch = conn
        .ok("fs/watch", json!({"path": p(root), "recursive": true}))
        .await;
    assert_eq!(watch["watchId"], "watch-1");
    let ours: Vec<String> = inotify_instances().difference(&before).cloned().collect();
    assert_eq!(ours.len(), 1, "one inotify instance for the connection");
    let a = root.join("a.txt");
    let b = root.join("b.txt");
    // Through the API itself, non-atomic so each step is one change.
    conn.ok(
        "fs/writeFile",
        json!({"path": p(&a), "dataBase64": "", "atomic": false}),
    )
    .await;
    conn.ok(
        "fs/writeFile",
        json!({"path": p(&a), "dataBase64": b64(b"more"), "append": true}),
    )
    .await;
    conn.ok(
        "fs/rename",
        json!({"sourcePath": p(&a), "destinationPath": p(&b)}),
    )
    .await;
    conn.ok("fs/remove", json!({"path": p(&b)})).await;
    let mut seen = Vec::new();
    while seen
        .last()
        .map(|(k, _, _): &(String, String, Option<String>)| k.as_str())
        != Some("deleted")
    {
        let change = conn.changed().await;
        if seen.last() != Some(&change) {
            seen.push(change);
        }
    }
    assert_eq!(
        seen,
        vec![
            ("created".to_string(), p(&a), None),
            ("modified".to_string(), p(&a), None),
            ("renamed".to_string(), p(&b), Some(p(&a))),
            ("deleted".to_string(), p(&b), None),
        ]
    );
    conn.ok("fs/watch", json!({"path": p(root)})).await;
    let (code, _, _, message) = conn.err("fs/watch", json!({"path": p(root)})).await;
    assert_eq!(code, -32600, "{message}");
    conn.ok("fs/unwatch", json!({"watchId": "watch-1"})).await;
    let (code, _, _, _) = conn.err("fs/unwatch", json!({"watchId": "watch-1"})).await;
    assert_eq!(code, -32600);

    drop(conn);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while inotify_instances().contains(&ours[0]) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !inotify_instances().contains(&ours[0]),
        "the watcher outlived its connection"
    );
}
