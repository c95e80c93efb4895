//! The link: owns the current transport, performs the handshake, and, for a
//! websocket client with a [`ReconnectPolicy`](crate::ReconnectPolicy),
//! reconnects and resumes the session when the connection drops, on the
//! server that owns it ([`owner`]), within the policy's attempts and time.
//!
//! The dispatcher above sees a stream of [`LinkEvent`]s: server messages,
//! then `Lost` when the connection drops, then either `Resumed` (with the
//! new connection's outgoing half) or `Closed` for good. It never sees a
//! socket, and the link never sees a route.
//!
//! A handshake sends `initialize` (with `resumeSessionId` on a resume),
//! waits for its answer, and sends `initialized`. The server queues the
//! answer before any output of a resumed session; notifications that an
//! older server sends first are kept (a bounded number) and handed up with
//! the answer, not dropped.

mod owner;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use exec_server_protocol::methods::{Initialize, Initialized, Method, Notification};
use exec_server_protocol::v0::{InitializeParams, InitializeResponse};
use exec_server_protocol::wire::DecodedServerMessage;
use exec_server_protocol::{ClientMessage, RequestId, RpcError, ServerMessage};
use tokio::time::Instant;

use crate::transport::{self, Sink, Source, Transport};
use crate::{ClientError, ClientOptions, WebSocketConnectArgs};

/// The id of every `initialize` request: the first request of a fresh
/// connection, so it cannot collide (the dispatcher's ids start at 1).
const HANDSHAKE_ID: i64 = 0;

/// Notifications accepted before the `initialize` answer.
const MAX_EARLY_MESSAGES: usize = 256;

/// What happened on the link.
pub(crate) enum LinkEvent {
    Message(DecodedServerMessage),
    /// The connection dropped. With `resuming`, a reconnect is under way
    /// and `Resumed` or `Closed` follows.
    Lost {
        resuming: bool,
    },
    /// A new connection resumed the session: send through `sink` now.
    Resumed {
        sink: Sink,
        info: Box<InitializeResponse>,
        early: Vec<DecodedServerMessage>,
    },
    /// No connection any more, for good: every call fails with `error`.
    Closed {
        error: ClientError,
    },
}

type Reconnecting = Pin<Box<dyn Future<Output = Result<Connected, ClientError>> + Send>>;

enum State {
    Connected(Source),
    Reconnecting(Reconnecting),
    Closed,
}

/// A connection that completed its handshake.
struct Connected {
    transport: Transport,
    info: InitializeResponse,
    early: Vec<DecodedServerMessage>,
}

pub(crate) struct Link {
    state: State,
    /// Set for websocket clients with a reconnect policy.
    reconnect: Option<WebSocketConnectArgs>,
    client_name: String,
    /// The latest `initialize` result: the session to resume (a secret:
    /// never logged) and the server that owns it.
    info: InitializeResponse,
}

/// The first connection, after its handshake.
pub(crate) struct Opened {
    pub link: Link,
    pub sink: Sink,
    pub info: InitializeResponse,
    pub early: Vec<DecodedServerMessage>,
}

impl Link {
    /// Performs the handshake on a fresh transport.
    pub async fn open(
        transport: Transport,
        options: &ClientOptions,
        reconnect: Option<WebSocketConnectArgs>,
    ) -> Result<Opened, ClientError> {
        let connected = handshake(
            transport,
            &options.client_name,
            None,
            options.initialize_timeout,
        )
        .await
        .map_err(|error| match error {
            HandshakeError::Refused(rpc) => ClientError::Rpc(rpc),
            HandshakeError::Failed(message) => ClientError::Connect(message),
        })?;
        let Connected {
            transport,
            info,
            early,
        } = connected;
        let link = Link {
            state: State::Connected(transport.source),
            reconnect: reconnect.filter(|args| args.reconnect.is_some()),
            client_name: options.client_name.clone(),
            info: info.clone(),
        };
        Ok(Opened {
            link,
            sink: transport.sink,
            info,
            early,
        })
    }

    /// The next event. Cancel-safe: a reconnect in progress lives in the
    /// link, not in the future.
    pub async fn next(&mut self) -> LinkEvent {
        match &mut self.state {
            State::Connected(source) => match source.recv().await {
                Some(message) => LinkEvent::Message(message),
                None => self.lost(),
            },
            State::Reconnecting(reconnecting) => {
                let result = reconnecting.as_mut().await;
                match result {
                    Ok(Connected {
                        transport,
                        info,
                        early,
                    }) => {
                        self.state = State::Connected(transport.source);
                        self.info = info.clone();
                        LinkEvent::Resumed {
                            sink: transport.sink,
                            info: Box::new(info),
                            early,
                        }
                    }
                    Err(error) => {
                        self.state = State::Closed;
                        LinkEvent::Closed { error }
                    }
                }
            }
            State::Closed => std::future::pending().await,
        }
    }

    fn lost(&mut self) -> LinkEvent {
        match (&self.reconnect, &self.info.session_id) {
            (Some(args), Some(_)) => {
                tracing::info!("connection lost; resuming the session");
                self.state = State::Reconnecting(Box::pin(reconnect(
                    args.clone(),
                    self.client_name.clone(),
                    self.info.clone(),
                )));
                LinkEvent::Lost { resuming: true }
            }
            _ => {
                self.state = State::Closed;
                LinkEvent::Lost { resuming: false }
            }
        }
    }
}

/// Reconnects and resumes the session of `info` on the server that owns
/// it, within the policy's attempts and `give_up_after`.
async fn reconnect(
    args: WebSocketConnectArgs,
    client_name: String,
    info: InitializeResponse,
) -> Result<Connected, ClientError> {
    let dropped_at = Instant::now();
    let policy = args.reconnect.clone().unwrap_or_default();
    let session_id = info.session_id.clone().ok_or(ClientError::Closed)?;
    let server_name = owner::server_name(Some(&info), &args.url);
    let mut target = args.clone();
    target.url = owner::resume_url(&args.url, &policy.target, info.server_id.as_deref());
    let deadline = dropped_at + policy.give_up_after;
    let mut last_failure = String::from("no attempt was made");
    for attempt in 1..=policy.attempts {
        if Instant::now() + policy.delay >= deadline {
            break;
        }
        tokio::time::sleep(policy.delay).await;
        let left = || deadline.saturating_duration_since(Instant::now());
        target.connect_timeout = args.connect_timeout.min(left());
        let transport = match transport::websocket::connect(&target).await {
            Ok(transport) => transport,
            Err(error) => {
                tracing::info!(attempt, %error, "reconnect failed");
                // A timeout cut short by the deadline says less than what
                // an earlier attempt ran into (a refusal, a 503).
                let cut_short =
                    matches!(&error, ClientError::Connect(m) if m.starts_with("timed out"));
                if !cut_short || attempt == 1 {
                    last_failure = error.to_string();
                }
                continue;
            }
        };
        let timeout = args.options.initialize_timeout.min(left());
        match handshake(transport, &client_name, Some(&session_id), timeout).await {
            Ok(connected) => {
                tracing::info!(attempt, "session resumed");
                return Ok(connected);
            }
            Err(HandshakeError::Refused(error)) => {
                // Expired, attached elsewhere, or owned by another server:
                // trying again cannot help.
                tracing::warn!(%error, "the server refused to resume the session");
                return Err(owner::refusal_error(error));
            }
            Err(HandshakeError::Failed(error)) => {
                tracing::info!(attempt, %error, "resume handshake failed");
                last_failure = error;
            }
        }
    }
    Err(ClientError::ServerUnavailable {
        server_id: server_name,
        reason: format!(
            "{last_failure} (gave up reconnecting to {} after {:.1} s)",
            owner::without_query(&target.url),
            dropped_at.elapsed().as_secs_f64()
        ),
    })
}

enum HandshakeError {
    /// The server answered `initialize` with an error.
    Refused(RpcError),
    /// The connection or the exchange failed; another attempt may work.
    Failed(String),
}

/// `initialize` (resuming `resume` if given), its answer, `initialized`.
async fn handshake(
    mut transport: Transport,
    client_name: &str,
    resume: Option<&str>,
    timeout: Duration,
) -> Result<Connected, HandshakeError> {
    let params = InitializeParams {
        client_name: client_name.to_string(),
        resume_session_id: resume.map(str::to_string),
        capabilities: transport.capabilities.clone(),
    };
    let params = serde_json::to_value(params).map_err(|e| HandshakeError::Failed(e.to_string()))?;
    let request = ClientMessage::Request {
        id: RequestId::from(HANDSHAKE_ID),
        method: Initialize::NAME.into(),
        params: Some(params),
    };
    let closed = || HandshakeError::Failed("the connection closed during the handshake".into());
    transport.sink.send(request).await.map_err(|_| closed())?;
    let exchange = async {
        let mut early = Vec::new();
        loop {
            let message = transport.source.recv().await.ok_or_else(closed)?;
            match message {
                DecodedServerMessage::Known(ServerMessage::Response {
                    id: Some(id),
                    result,
                }) if id == RequestId::from(HANDSHAKE_ID) => {
                    let value = result.map_err(HandshakeError::Refused)?;
                    let info: <Initialize as Method>::Result = serde_json::from_value(value)
                        .map_err(|e| {
                            HandshakeError::Failed(format!("unexpected initialize answer: {e}"))
                        })?;
                    return Ok((info, early));
                }
                DecodedServerMessage::Known(ServerMessage::Response { result, .. }) => {
                    return Err(HandshakeError::Failed(format!(
                        "unexpected answer during the handshake: {result:?}"
                    )));
                }
                notification if early.len() < MAX_EARLY_MESSAGES => early.push(notification),
                _ => {
                    return Err(HandshakeError::Failed(
                        "too many notifications before the initialize answer".into(),
                    ));
                }
            }
        }
    };
    let (info, early) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| {
            HandshakeError::Failed("timed out waiting for the initialize response".into())
        })??;
    let initialized = ClientMessage::Notification {
        method: Initialized::NAME.into(),
        params: None,
    };
    transport
        .sink
        .send(initialized)
        .await
        .map_err(|_| closed())?;
    Ok(Connected {
        transport,
        info,
        early,
    })
}
