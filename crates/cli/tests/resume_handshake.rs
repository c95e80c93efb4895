//! The server answers `initialize {resumeSessionId}` before it sends any
//! output of the resumed session (issue 10). A file of its own: the floods
//! it needs to make the race likely would starve the other resume tests of
//! CPU if they ran alongside.
//!
//! The race it guards against is a few microseconds wide (attaching the
//! session's output, then queuing the answer); the service's unit tests
//! check the order deterministically (`Session::resume` attaches nothing).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// A client may rely on the response being the first message of the new
/// connection.
#[tokio::test]
async fn the_initialize_response_is_the_first_message_of_a_resumed_connection() {
    let server = WsServer::start(&[]).await;
    let mut rpc = Rpc::new(WsTransport::connect(&server.url).await);
    let init = rpc.ok("initialize", json!({"clientName": "a"})).await;
    rpc.send(json!({"method": "initialized"})).await;
    let session = init["sessionId"].as_str().unwrap().to_string();
    // Floods, so that a forwarder has output ready the moment the
    // session is attached.
    for i in 0..2 {
        rpc.ok(
            "process/start",
            json!({
                "argv": ["/usr/bin/yes", "tick"],
                "cwd": "/", "onDisconnect": "detach", "processId": format!("flood-{i}"),
            }),
        )
        .await;
    }
    let first = rpc.next_notification().await;
    assert_eq!(first["method"], "process/output");
    let mut notification_first = 0;
    for round in 0..1000 {
        drop(rpc);
        // The server notices the drop a moment later; until then the
        // session counts as attached.
        let mut attempts = 0;
        let message = loop {
            rpc = Rpc::new(WsTransport::connect(&server.url).await);
            rpc.send(json!({"id": 1, "method": "initialize",
                            "params": {"clientName": "b", "resumeSessionId": session}}))
                .await;
            let message = rpc.recv().await.expect("an answer");
            let attached = message["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("attached to another connection"));
            attempts += 1;
            if !attached || attempts == 100 {
                break message;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        if message.get("id").is_none() {
            notification_first += 1;
            eprintln!("round {round}: {}", &message.to_string()[..60]);
            continue;
        }
        assert_eq!(message["result"]["resumed"], true, "{message}");
        rpc.send(json!({"method": "initialized"})).await;
    }
    assert_eq!(
        notification_first, 0,
        "resumed connections whose first message was a notification"
    );
}
