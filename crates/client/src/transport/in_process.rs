//! A server in this process (feature `in-process`): the same connection
//! handler as the binary, fed typed messages with no serialization.

use exec_server_protocol::ClientMessage;
use exec_server_protocol::wire::DecodedClientMessage;
use exec_server_service::{Incoming, Server};

use super::{Sink, Source, Transport};

/// Starts a connection served by `server` in this process.
pub(crate) fn connect(server: &Server) -> Transport {
    let (incoming, outgoing) = exec_server_service::connect_in_process(server);
    Transport {
        sink: Sink::InProcess(incoming),
        source: Source::InProcess(outgoing),
        capabilities: None,
    }
}

/// A client message as the connection handler receives it.
pub(super) fn incoming(message: ClientMessage) -> Incoming {
    Incoming::Message(DecodedClientMessage {
        message,
        jsonrpc: false,
    })
}

/// The message back out of [`incoming`]'s result.
pub(super) fn outgoing(incoming: Incoming) -> ClientMessage {
    match incoming {
        Incoming::Message(decoded) => decoded.message,
        _ => unreachable!("only messages are made by `incoming`"),
    }
}
