//! The client's `fs/*` helpers against an in-process server: whole files,
//! streams in both directions, atomic writers, watch events.

use std::path::Path;
use std::time::Duration;

use exec_server_client::{ClientEvent, ClientOptions, ExecServerClient};
use exec_server_protocol::ServerNotification;
use exec_server_protocol::fs::{WatchParams, WriteOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn client() -> ExecServerClient {
    ExecServerClient::connect_in_process(ClientOptions::default())
        .await
        .unwrap()
}

/// Bytes that are not a repeating pattern at block sizes.
fn data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn whole_files_larger_than_a_block_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let client = client().await;
    for len in [0, 1, 4 * 1024 * 1024, 9 * 1024 * 1024 + 7] {
        let path = dir.path().join(format!("f{len}"));
        let content = data(len);
        client.write_file(&path, content.clone()).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), content, "{len}");
        assert_eq!(client.read_file(&path).await.unwrap(), content, "{len}");
    }
    let error = client
        .read_file(&dir.path().join("missing"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no such file"), "{error}");
}

#[tokio::test]
async fn streams_are_async_read_and_async_write() {
    let dir = tempfile::tempdir().unwrap();
    let client = client().await;
    let content = data(13 * 1024 * 1024 + 5);
    let path = dir.path().join("stream.bin");
    let mut writer = client
        .create_writer(&path, WriteOptions::default())
        .await
        .unwrap();
    // Odd-sized writes, as a copy loop would make them.
    for piece in content.chunks(100_003) {
        writer.write_all(piece).await.unwrap();
    }
    assert!(
        !path.exists(),
        "an atomic writer shows nothing before shutdown"
    );
    writer.shutdown().await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), content);

    let mut reader = client.open_reader(&path).await.unwrap();
    assert_eq!(reader.size(), Some(content.len() as u64));
    let mut back = Vec::new();
    reader.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, content);
}

#[tokio::test]
async fn a_writer_dropped_unfinished_leaves_the_old_content() {
    let dir = tempfile::tempdir().unwrap();
    let client = client().await;
    let path = dir.path().join("keep");
    std::fs::write(&path, b"old").unwrap();
    let mut writer = client
        .create_writer(&path, WriteOptions::default())
        .await
        .unwrap();
    writer.write_chunk(data(5 * 1024 * 1024)).await.unwrap();
    drop(writer);
    // The discard runs in the background; a later request on the same
    // connection is answered after it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        if names.len() == 1 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert_eq!(client.read_file(&path).await.unwrap(), b"old");
}

#[tokio::test]
async fn watch_changes_come_through_the_event_channel() {
    let dir = tempfile::tempdir().unwrap();
    let client = client().await;
    let mut events = client.take_events().unwrap();
    let watch = client
        .fs_watch(WatchParams {
            path: Some(dir.path().to_str().unwrap().into()),
            ..Default::default()
        })
        .await
        .unwrap();
    std::fs::write(dir.path().join("new"), b"x").unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    let ClientEvent::Notification(ServerNotification::FsChanged(change)) = event else {
        panic!("{event:?}");
    };
    assert_eq!(change.watch_id, watch.watch_id);
    assert_eq!(Path::new(&change.path), dir.path().join("new"));
    client.fs_unwatch(&watch.watch_id).await.unwrap();
}
