//! Transports: a connection is a pair of bounded channels of messages,
//! client messages out and server messages in. The layers above never see
//! bytes or sockets; each transport's tasks encode, decode and move bytes.
//!
//! - [`lines`]: newline-delimited JSON over any byte stream pair (a server
//!   child's stdin and stdout);
//! - [`websocket`]: `ws://` and `wss://`, one JSON message per frame;
//! - `in_process` (feature `in-process`): the server's connection handler
//!   in this process, typed messages with no serialization at all.
//!
//! Both channels are bounded: a server that floods output waits for the
//! client to read, and a client that sends many requests waits for the
//! transport to write them.

pub(crate) mod lines;
pub(crate) mod websocket;

#[cfg(feature = "in-process")]
pub(crate) mod in_process;

use exec_server_protocol::ClientMessage;
use exec_server_protocol::v0::ClientCapabilities;
use exec_server_protocol::wire::{DecodedServerMessage, decode_server_message};
use tokio::sync::mpsc;

/// Messages queued towards the server before a send waits.
pub(crate) const OUTGOING_CAPACITY: usize = 64;
/// Messages decoded from the server before the reader waits.
pub(crate) const INCOMING_CAPACITY: usize = 64;

/// One connection: where client messages go and server messages come from.
pub(crate) struct Transport {
    pub sink: Sink,
    pub source: Source,
    /// What the handshake asks for on this transport (binary frames on
    /// websockets).
    pub capabilities: Option<ClientCapabilities>,
}

/// The outgoing half. Cheap to clone; only the dispatcher (and the link,
/// during a handshake) sends, so a slot seen free stays free.
#[derive(Clone)]
pub(crate) enum Sink {
    /// Encoded and written by a transport task.
    Encoded(mpsc::Sender<ClientMessage>),
    /// Straight into an in-process connection.
    #[cfg(feature = "in-process")]
    InProcess(mpsc::Sender<exec_server_service::Incoming>),
}

/// The transport is gone.
#[derive(Debug)]
pub(crate) struct Closed;

impl Sink {
    /// Sends one message, waiting for room.
    pub async fn send(&self, message: ClientMessage) -> Result<(), Closed> {
        match self {
            Sink::Encoded(tx) => tx.send(message).await.map_err(|_| Closed),
            #[cfg(feature = "in-process")]
            Sink::InProcess(tx) => tx
                .send(in_process::incoming(message))
                .await
                .map_err(|_| Closed),
        }
    }

    /// Waits until a message can be sent without waiting.
    pub async fn ready(&self) -> Result<(), Closed> {
        match self {
            Sink::Encoded(tx) => tx.reserve().await.map(drop).map_err(|_| Closed),
            #[cfg(feature = "in-process")]
            Sink::InProcess(tx) => tx.reserve().await.map(drop).map_err(|_| Closed),
        }
    }

    /// Sends one message if there is room now; gives it back otherwise.
    pub fn try_send(&self, message: ClientMessage) -> Result<(), TrySendError> {
        use mpsc::error::TrySendError as E;
        match self {
            Sink::Encoded(tx) => tx.try_send(message).map_err(|error| match error {
                E::Full(message) => TrySendError::Full(message),
                E::Closed(_) => TrySendError::Closed,
            }),
            #[cfg(feature = "in-process")]
            Sink::InProcess(tx) => {
                tx.try_send(in_process::incoming(message))
                    .map_err(|error| match error {
                        E::Full(incoming) => TrySendError::Full(in_process::outgoing(incoming)),
                        E::Closed(_) => TrySendError::Closed,
                    })
            }
        }
    }
}

/// Why [`Sink::try_send`] did not send.
pub(crate) enum TrySendError {
    Full(ClientMessage),
    Closed,
}

/// The incoming half.
pub(crate) enum Source {
    Decoded(mpsc::Receiver<DecodedServerMessage>),
    #[cfg(feature = "in-process")]
    InProcess(mpsc::Receiver<exec_server_protocol::ServerMessage>),
}

impl Source {
    /// The next server message; `None` when the connection ended.
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Option<DecodedServerMessage> {
        match self {
            Source::Decoded(rx) => rx.recv().await,
            #[cfg(feature = "in-process")]
            Source::InProcess(rx) => rx.recv().await.map(DecodedServerMessage::Known),
        }
    }
}

/// Decodes one server message and passes it on; false when the reader
/// should stop (the receiver is gone or the server broke the protocol).
/// Decodes one binary output frame (`schema/binary-frames.md`) and passes
/// it on as the notification it stands for; false when the reader should
/// stop.
pub(crate) async fn forward_frame(
    frame: &bytes::Bytes,
    tx: &mpsc::Sender<DecodedServerMessage>,
) -> bool {
    match exec_server_protocol::binary::decode_server_frame(frame) {
        Ok(notification) => {
            let message = exec_server_protocol::ServerMessage::Notification(notification);
            tx.send(DecodedServerMessage::Known(message)).await.is_ok()
        }
        Err(error) => {
            tracing::error!(%error, "undecodable binary frame from the server; closing");
            false
        }
    }
}

pub(crate) async fn forward_decoded(bytes: &[u8], tx: &mpsc::Sender<DecodedServerMessage>) -> bool {
    match decode_server_message(bytes) {
        Ok(message) => tx.send(message).await.is_ok(),
        Err(error) => {
            tracing::error!(%error, "undecodable message from the server; closing");
            false
        }
    }
}
