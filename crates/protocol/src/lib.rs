//! The exec-server wire contract: message shapes, method names and the
//! encoding of messages to and from bytes. No I/O and no async runtime live
//! here, so the server, the client and tests all share one definition.
//!
//! - [`jsonrpc`] — the JSON-RPC 2.0 envelope: request ids, error codes and
//!   [`RpcError`], and the typed messages that flow in each direction
//!   ([`ClientMessage`], [`ServerMessage`]).
//! - [`v0`] — protocol `exec-server.v0`: method names, `*Params`,
//!   `*Response` and `*Notification` types with their exact wire names.
//! - [`process`] — the process API (`process/*`), same conventions.
//! - [`schema`] — the JSON Schema of every request, result and
//!   notification, generated from these types (committed as
//!   `schema/exec-server.schema.json`).
//! - [`wire`] — bytes ⇄ messages. Decoding classifies every input (request,
//!   notification, client response, unparseable, not JSON-RPC); encoding of
//!   output notifications appends base64 straight into a pre-built JSON frame,
//!   because the output path is the hot path of the whole server.
//!
//! Data flow: a transport reads bytes, [`wire::decode_client_message`] turns
//! them into a [`ClientMessage`], the server answers with [`ServerMessage`]s,
//! and [`wire::encode_server_message`] turns those back into bytes. The
//! in-process client skips both byte steps and exchanges the typed messages
//! directly.

pub mod jsonrpc;
pub mod process;
pub mod schema;
pub mod v0;
pub mod wire;

pub use jsonrpc::{ClientMessage, RequestId, RpcError, ServerMessage, ServerNotification};

/// The protocol version string returned by `initialize`.
pub const PROTOCOL_VERSION: &str = "exec-server.v0";

/// Default cap on one incoming message, in bytes (SPEC 1.4).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
