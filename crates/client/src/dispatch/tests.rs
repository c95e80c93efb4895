//! The dispatcher in memory: a client over a transport whose other end is
//! the test, playing the server message by message.

use std::time::Duration;

use bytes::Bytes;
use exec_server_protocol::process::{OutputNotification, ProcessStream, StartParams};
use exec_server_protocol::wire::DecodedServerMessage;
use exec_server_protocol::{ClientMessage, RequestId, ServerMessage, ServerNotification};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::transport::{Sink, Source, Transport};
use crate::{ClientError, ClientOptions, ExecServerClient, ProcessEvent, RemoteProcess};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The server's end of the transport.
struct Peer {
    from_client: mpsc::Receiver<ClientMessage>,
    to_client: mpsc::Sender<DecodedServerMessage>,
}

impl Peer {
    async fn recv(&mut self) -> ClientMessage {
        tokio::time::timeout(TIMEOUT, self.from_client.recv())
            .await
            .expect("a message in time")
            .expect("the client is connected")
    }

    /// The next request: its id, method and params.
    async fn request(&mut self) -> (RequestId, String, Value) {
        match self.recv().await {
            ClientMessage::Request { id, method, params } => {
                (id, method, params.unwrap_or(Value::Null))
            }
            other => panic!("expected a request, got {other:?}"),
        }
    }

    async fn send(&self, message: ServerMessage) {
        self.to_client
            .send(DecodedServerMessage::Known(message))
            .await
            .expect("the client reads");
    }

    async fn answer(&self, id: RequestId, result: Value) {
        self.send(ServerMessage::Response {
            id: Some(id),
            result: Ok(result),
        })
        .await;
    }

    async fn output(&self, process_id: &str, seq: u64, text: &'static str) {
        let output = OutputNotification {
            process_id: process_id.into(),
            seq,
            stream: ProcessStream::Stdout,
            chunk: Bytes::from_static(text.as_bytes()),
        };
        self.send(ServerMessage::Notification(
            ServerNotification::ProcessOutput(output),
        ))
        .await;
    }
}

/// A client whose handshake the test answered.
async fn connect() -> (ExecServerClient, Peer) {
    let (sink, from_client) = mpsc::channel(64);
    let (to_client, source) = mpsc::channel(64);
    let transport = Transport {
        sink: Sink::Encoded(sink),
        source: Source::Decoded(source),
        capabilities: None,
    };
    let mut peer = Peer {
        from_client,
        to_client,
    };
    let connecting = tokio::spawn(async move {
        ExecServerClient::open(transport, &ClientOptions::default(), None).await
    });
    let (id, method, _) = peer.request().await;
    assert_eq!(method, "initialize");
    peer.answer(
        id,
        json!({"protocolVersion": "exec-server.v0", "sessionId": "s"}),
    )
    .await;
    assert!(matches!(
        peer.recv().await,
        ClientMessage::Notification { method, .. } if method == "initialized"
    ));
    let client = connecting.await.unwrap().unwrap();
    (client, peer)
}

/// Starts process `p`, answering as the server, with output sent right
/// behind the answer.
async fn start(client: &ExecServerClient, peer: &mut Peer, outputs: u64) -> RemoteProcess {
    let starting = {
        let client = client.clone();
        tokio::spawn(async move { client.start(StartParams::default()).await })
    };
    let (id, method, _) = peer.request().await;
    assert_eq!(method, "process/start");
    peer.answer(id, json!({"processId": "p", "pid": 42})).await;
    for seq in 1..=outputs {
        peer.output("p", seq, "x").await;
    }
    starting.await.unwrap().unwrap()
}

#[tokio::test]
async fn output_sent_right_behind_a_start_answer_reaches_the_new_handle() {
    let (client, mut peer) = connect().await;
    let mut events = client.take_events().unwrap();
    let mut process = start(&client, &mut peer, 1).await;
    let event = tokio::time::timeout(TIMEOUT, process.next_event())
        .await
        .unwrap();
    assert!(
        matches!(event, Some(ProcessEvent::Output { seq: 1, .. })),
        "{event:?}"
    );
    assert!(events.try_recv().is_err(), "nothing went unclaimed");
}

#[tokio::test]
async fn a_handle_that_is_not_read_holds_the_connection_but_requests_still_go_out() {
    let (client, mut peer) = connect().await;
    // Far more output than the handle's channel holds, and nobody reads.
    let mut process = start(&client, &mut peer, 1).await;
    let flood = tokio::spawn(async move {
        for seq in 2..=600 {
            peer.output("p", seq, "x").await;
        }
        peer
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!flood.is_finished(), "the client stopped reading");
    // A call made meanwhile is still sent to the server.
    let listing = {
        let client = client.clone();
        tokio::spawn(async move { client.list(Default::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!listing.is_finished());
    let mut seen = 0;
    while seen < 600 {
        match process.next_event().await {
            Some(ProcessEvent::Output { seq, .. }) => {
                seen += 1;
                assert_eq!(seq, seen, "in order, none dropped");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut peer = flood.await.unwrap();
    let (id, method, _) = peer.request().await;
    assert_eq!(method, "process/list");
    peer.answer(id, json!({"processes": []})).await;
    let listed = listing.await.unwrap().unwrap();
    assert!(listed.processes.is_empty());
}

#[tokio::test]
async fn a_connection_that_ends_ends_each_handle_with_lost_and_fails_calls() {
    let (client, mut peer) = connect().await;
    let mut process = start(&client, &mut peer, 2).await;
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { client.snapshot("p").await })
    };
    let (_, method, _) = peer.request().await;
    assert_eq!(method, "process/snapshot");
    drop(peer);
    // Output that arrived before the end is still delivered, then the
    // reason.
    for seq in 1..=2 {
        let event = process.next_event().await;
        assert!(
            matches!(event, Some(ProcessEvent::Output { seq: s, .. }) if s == seq),
            "{event:?}"
        );
    }
    assert!(matches!(
        process.next_event().await,
        Some(ProcessEvent::Lost { .. })
    ));
    assert_eq!(process.next_event().await, None);
    assert!(matches!(in_flight.await.unwrap(), Err(ClientError::Closed)));
    assert!(matches!(client.closed().await, ClientError::Closed));
    assert!(matches!(
        client.list(Default::default()).await,
        Err(ClientError::Closed)
    ));
}
