//! The JSON-RPC 2.0 envelope: ids, errors and the typed messages that flow
//! between a client and the server.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::methods;

/// JSON-RPC error codes, decided here and nowhere else.
pub mod codes {
    /// Not JSON, or not UTF-8.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a JSON-RPC message, unknown method, handshake violations, unknown ids.
    pub const INVALID_REQUEST: i64 = -32600;
    /// Missing, malformed or out-of-range parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The server could not do what was asked (e.g. spawn failed).
    pub const INTERNAL_ERROR: i64 = -32603;
}

/// A request id: an integer or a string, echoed back exactly as received.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    Number(serde_json::Number),
    String(String),
}

impl From<i64> for RequestId {
    fn from(value: i64) -> Self {
        RequestId::Number(value.into())
    }
}

impl From<String> for RequestId {
    fn from(value: String) -> Self {
        RequestId::String(value)
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{n}"),
            RequestId::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// The `error` member of a JSON-RPC error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn parse_error(message: impl Into<String>) -> Self {
        Self::new(codes::PARSE_ERROR, message)
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_REQUEST, message)
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_PARAMS, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL_ERROR, message)
    }
}

/// A message sent by a client, already classified.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientMessage {
    Request {
        id: RequestId,
        method: String,
        params: Option<Value>,
    },
    Notification {
        method: String,
        params: Option<Value>,
    },
    /// A response or error object sent by the client. The server never sends
    /// requests, so this is always a protocol error.
    Response { id: Option<RequestId> },
}

/// A message sent by the server.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerMessage {
    /// A response to a request. `id` is `None` (encoded as `null`) only for
    /// errors about input that had no usable id.
    Response {
        id: Option<RequestId>,
        result: Result<Value, RpcError>,
    },
    Notification(ServerNotification),
}

impl ServerMessage {
    pub fn error_without_id(error: RpcError) -> Self {
        ServerMessage::Response {
            id: None,
            result: Err(error),
        }
    }
}

macro_rules! server_notification_enum {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $name:literal, $params:ty;
    )*) => {
        /// Every notification the server sends, typed: one variant per entry
        /// of the notification table ([`crate::methods`]).
        #[derive(Clone, Debug, PartialEq)]
        pub enum ServerNotification {
            $( $(#[$doc])* $variant($params), )*
        }

        impl ServerNotification {
            /// Every notification method name, in table order.
            pub const METHODS: &'static [&'static str] = &[$($name),*];

            /// The notification's method name.
            pub fn method(&self) -> &'static str {
                match self {
                    $( ServerNotification::$variant(_) => {
                        <methods::$variant as methods::Notification>::NAME
                    } )*
                }
            }

            /// Decodes the params of notification `method`; `None` when this
            /// version of the protocol does not know `method`.
            pub fn decode(method: &str, params: &Value) -> Option<Result<Self, serde_json::Error>> {
                use serde::Deserialize as _;
                match method {
                    $( $name => Some(<$params>::deserialize(params).map(ServerNotification::$variant)), )*
                    _ => None,
                }
            }
        }
    };
}

crate::for_each_server_notification!(server_notification_enum);
