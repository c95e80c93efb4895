//! Bytes ⇄ messages, for both directions.
//!
//! The server uses [`decode_client_message`] and [`encode_server_message`];
//! the client uses [`encode_client_message`] and [`decode_server_message`].
//! Output notifications are encoded by hand: base64 never needs JSON
//! escaping, so the chunk is appended straight into a pre-built frame with
//! the SIMD base64 engine instead of going through `serde_json::Value`.
//! Clients decode them the same way round: the base64 text is borrowed from
//! the input and decoded in place, never copied into a `Value` first.

use std::sync::LazyLock;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::jsonrpc::{ClientMessage, RequestId, RpcError, ServerMessage, ServerNotification};
use crate::methods::{ExecOutputDelta, Notification, ProcessOutput};
use crate::{process, v0};

/// The standard-alphabet, padded base64 engine used for every byte field.
pub static BASE64: LazyLock<base64::engine::Simd> =
    LazyLock::new(|| base64::engine::Simd::standard(base64::engine::general_purpose::PAD));

/// Serde helpers for `Bytes` fields carried as base64 strings.
pub mod base64_bytes {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        BASE64
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

/// Serde helpers for optional `Bytes` fields carried as base64 (or null).
pub mod base64_opt_bytes {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => s.serialize_str(&BASE64.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
        let text = Option::<std::borrow::Cow<str>>::deserialize(d)?;
        text.map(|text| {
            BASE64
                .decode(text.as_bytes())
                .map(Bytes::from)
                .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
        })
        .transpose()
    }
}

/// A decoded client message and whether it carried `"jsonrpc": "2.0"`.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedClientMessage {
    pub message: ClientMessage,
    pub jsonrpc: bool,
}

/// Why a client message could not be decoded. The server answers each
/// with an error response with `id: null` (its codes are chosen with every
/// other error code, in the server's error mapping); the connection stays
/// open.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON or not UTF-8 (`-32700`).
    #[error("parse error: {0}")]
    Parse(String),
    /// Valid JSON that is not a JSON-RPC message (`-32600`).
    #[error("invalid request: {0}")]
    NotJsonRpc(String),
}

/// Deserializes a field that is present (even if `null`) as `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(default, deserialize_with = "present")]
    jsonrpc: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    method: Option<Value>,
    #[serde(default)]
    params: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    result: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    error: Option<Value>,
}

/// Longest accepted string request id, in bytes. Ids are echoed in every
/// response, so an absurd one would be copied around for nothing.
pub const MAX_ID_BYTES: usize = 1024;

fn request_id(value: Value) -> Option<RequestId> {
    match value {
        // Only integers: a float (or an integer beyond 64 bits, which JSON
        // parsers read as a float) could not be echoed back exactly.
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(RequestId::Number(n)),
        Value::String(s) if s.len() <= MAX_ID_BYTES => Some(RequestId::String(s)),
        _ => None,
    }
}

/// Classifies one incoming message (a stdio line or a websocket frame).
pub fn decode_client_message(bytes: &[u8]) -> Result<DecodedClientMessage, DecodeError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Parse(e.to_string()))?;
    if !value.is_object() {
        return Err(DecodeError::NotJsonRpc(
            "a message must be a JSON object".into(),
        ));
    }
    let raw: RawMessage =
        serde_json::from_value(value).map_err(|e| DecodeError::NotJsonRpc(e.to_string()))?;
    let jsonrpc = matches!(&raw.jsonrpc, Some(Value::String(v)) if v == "2.0");
    let message = match (raw.method, raw.id) {
        (Some(Value::String(method)), Some(id)) => {
            let id = request_id(id).ok_or_else(|| {
                DecodeError::NotJsonRpc(format!(
                    "`id` must be a 64-bit integer or a string of at most {MAX_ID_BYTES} bytes"
                ))
            })?;
            ClientMessage::Request {
                id,
                method,
                params: raw.params,
            }
        }
        (Some(Value::String(method)), None) => ClientMessage::Notification {
            method,
            params: raw.params,
        },
        (Some(_), _) => {
            return Err(DecodeError::NotJsonRpc("`method` must be a string".into()));
        }
        (None, id) if raw.result.is_some() || raw.error.is_some() => ClientMessage::Response {
            id: id.and_then(request_id),
        },
        (None, _) => {
            return Err(DecodeError::NotJsonRpc(
                "a message needs a `method`, or a `result` or `error`".into(),
            ));
        }
    };
    Ok(DecodedClientMessage { message, jsonrpc })
}

#[derive(Serialize)]
struct ResultFrame<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    jsonrpc: Option<&'static str>,
    id: &'a Option<RequestId>,
    result: &'a Value,
}

#[derive(Serialize)]
struct ErrorFrame<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    jsonrpc: Option<&'static str>,
    id: &'a Option<RequestId>,
    error: &'a RpcError,
}

#[derive(Serialize)]
struct NotificationFrame<'a, P> {
    #[serde(skip_serializing_if = "Option::is_none")]
    jsonrpc: Option<&'static str>,
    method: &'a str,
    params: &'a P,
}

fn jsonrpc_member(jsonrpc: bool) -> Option<&'static str> {
    jsonrpc.then_some("2.0")
}

/// Appends one server message, without a trailing newline, to `out`.
/// `jsonrpc` adds the `"jsonrpc":"2.0"` member (SPEC 1.1).
pub fn encode_server_message(message: &ServerMessage, jsonrpc: bool, out: &mut Vec<u8>) {
    let jsonrpc_member = jsonrpc_member(jsonrpc);
    match message {
        ServerMessage::Response {
            id,
            result: Ok(result),
        } => write(
            out,
            &ResultFrame {
                jsonrpc: jsonrpc_member,
                id,
                result,
            },
        ),
        ServerMessage::Response {
            id,
            result: Err(error),
        } => write(
            out,
            &ErrorFrame {
                jsonrpc: jsonrpc_member,
                id,
                error,
            },
        ),
        ServerMessage::Notification(ServerNotification::ExecOutputDelta(delta)) => encode_output(
            jsonrpc,
            OutputFrame {
                method: ExecOutputDelta::NAME,
                id_key: "sessionId",
                id: &delta.session_id,
                seq: None,
                stream: delta.stream.as_str(),
                chunk: &delta.chunk,
            },
            out,
        ),
        ServerMessage::Notification(ServerNotification::ProcessOutput(output)) => encode_output(
            jsonrpc,
            OutputFrame {
                method: ProcessOutput::NAME,
                id_key: "processId",
                id: &output.process_id,
                seq: Some(output.seq),
                stream: output.stream.as_str(),
                chunk: &output.chunk,
            },
            out,
        ),
        ServerMessage::Notification(notification) => {
            encode_notification(notification, jsonrpc_member, out);
        }
    }
}

macro_rules! encode_notification {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $name:literal, $params:ty;
    )*) => {
        /// Any notification through serde (the output ones take the hot
        /// path above, but this encodes them correctly too).
        fn encode_notification(
            notification: &ServerNotification,
            jsonrpc: Option<&'static str>,
            out: &mut Vec<u8>,
        ) {
            match notification {
                $( ServerNotification::$variant(params) => write(
                    out,
                    &NotificationFrame {
                        jsonrpc,
                        method: $name,
                        params,
                    },
                ), )*
            }
        }
    };
}

crate::for_each_server_notification!(encode_notification);

/// The parts of an output notification, for [`encode_output`].
struct OutputFrame<'a> {
    /// The method name: plain ASCII that needs no escaping (a test of the
    /// method table checks every name).
    method: &'static str,
    id_key: &'static str,
    id: &'a str,
    seq: Option<u64>,
    stream: &'static str,
    chunk: &'a [u8],
}

/// The hot path: an output notification without an intermediate value.
/// The id is escaped by serde; everything else is known to need no
/// escaping.
fn encode_output(jsonrpc: bool, frame: OutputFrame<'_>, out: &mut Vec<u8>) {
    out.reserve(frame.chunk.len().div_ceil(3) * 4 + frame.id.len() + 128);
    if jsonrpc {
        out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",");
    } else {
        out.push(b'{');
    }
    out.extend_from_slice(b"\"method\":\"");
    out.extend_from_slice(frame.method.as_bytes());
    out.extend_from_slice(b"\",\"params\":{\"");
    out.extend_from_slice(frame.id_key.as_bytes());
    out.extend_from_slice(b"\":");
    serde_json::to_writer(&mut *out, frame.id).expect("writing to a Vec cannot fail");
    if let Some(seq) = frame.seq {
        out.extend_from_slice(b",\"seq\":");
        out.extend_from_slice(seq.to_string().as_bytes());
    }
    out.extend_from_slice(b",\"stream\":\"");
    out.extend_from_slice(frame.stream.as_bytes());
    out.extend_from_slice(b"\",\"chunk\":\"");
    append_base64(frame.chunk, out);
    out.extend_from_slice(b"\"}}");
}

/// Appends the padded base64 encoding of `bytes` to `out`.
pub fn append_base64(bytes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let encoded_len = bytes.len().div_ceil(3) * 4;
    out.resize(start + encoded_len, 0);
    let written = BASE64
        .encode_slice(bytes, &mut out[start..])
        .expect("buffer sized for the encoded length");
    out.truncate(start + written);
}

/// Serializing our frame types into a Vec cannot fail: every map key is a
/// string and no field has a fallible `Serialize` impl.
fn write<T: Serialize>(out: &mut Vec<u8>, frame: &T) {
    serde_json::to_writer(out, frame).expect("serializing a frame into a Vec cannot fail");
}

/// Appends one client message, without a trailing newline, to `out`.
pub fn encode_client_message(message: &ClientMessage, jsonrpc: bool, out: &mut Vec<u8>) {
    #[derive(Serialize)]
    struct RequestFrame<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        jsonrpc: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        method: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        params: &'a Option<Value>,
    }
    let frame = match message {
        ClientMessage::Request { id, method, params } => RequestFrame {
            jsonrpc: jsonrpc_member(jsonrpc),
            id: Some(id),
            method,
            params,
        },
        ClientMessage::Notification { method, params } => RequestFrame {
            jsonrpc: jsonrpc_member(jsonrpc),
            id: None,
            method,
            params,
        },
        ClientMessage::Response { id } => {
            write(out, &serde_json::json!({"id": id, "result": null}));
            return;
        }
    };
    write(out, &frame);
}

/// Why a server message could not be decoded by a client.
#[derive(Debug, thiserror::Error)]
pub enum ServerDecodeError {
    #[error("server sent invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("server sent a message that is not a response or notification")]
    NotJsonRpc,
    #[error("server sent notification `{method}` with invalid params: {error}")]
    BadNotification {
        method: String,
        error: serde_json::Error,
    },
}

/// A message decoded by a client: a typed server message, or a notification
/// this version of the client does not know.
#[derive(Clone, Debug, PartialEq)]
pub enum DecodedServerMessage {
    Known(ServerMessage),
    UnknownNotification { method: String, params: Value },
}

/// Decodes one message received from the server.
pub fn decode_server_message(bytes: &[u8]) -> Result<DecodedServerMessage, ServerDecodeError> {
    if let Some(notification) = decode_output_notification(bytes) {
        return Ok(DecodedServerMessage::Known(ServerMessage::Notification(
            notification,
        )));
    }
    decode_any_server_message(bytes)
}

/// The client's hot path: an output notification decoded straight from the
/// input. Going through `RawMessage` would copy the base64 text into a
/// `Value` string before decoding it; borrowing it instead doubles the
/// decoding speed of large chunks. `None` for anything else, and for any
/// output notification this path does not understand: the general path
/// then decodes it or reports the error.
fn decode_output_notification(bytes: &[u8]) -> Option<ServerNotification> {
    use std::borrow::Cow;

    #[derive(Deserialize)]
    struct Frame<'a> {
        #[serde(borrow)]
        method: Cow<'a, str>,
        #[serde(borrow)]
        params: OutputParams<'a>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct OutputParams<'a> {
        #[serde(borrow, default)]
        process_id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        session_id: Option<Cow<'a, str>>,
        #[serde(default)]
        seq: Option<u64>,
        #[serde(borrow)]
        stream: Cow<'a, str>,
        #[serde(borrow)]
        chunk: Cow<'a, str>,
    }

    // The server writes the method first: a cheap test that keeps other
    // messages off this path.
    let head = &bytes[..bytes.len().min(64)];
    let names = [ProcessOutput::NAME, ExecOutputDelta::NAME];
    if !names.iter().any(|name| {
        head.windows(name.len())
            .any(|window| window == name.as_bytes())
    }) {
        return None;
    }
    let frame: Frame = serde_json::from_slice(bytes).ok()?;
    let params = frame.params;
    let chunk = || BASE64.decode(params.chunk.as_bytes()).ok().map(Bytes::from);
    match frame.method.as_ref() {
        ProcessOutput::NAME => {
            let stream = match params.stream.as_ref() {
                "stdout" => process::ProcessStream::Stdout,
                "stderr" => process::ProcessStream::Stderr,
                "pty" => process::ProcessStream::Pty,
                _ => return None,
            };
            Some(ServerNotification::ProcessOutput(
                process::OutputNotification {
                    chunk: chunk()?,
                    process_id: params.process_id?.into_owned(),
                    seq: params.seq?,
                    stream,
                },
            ))
        }
        ExecOutputDelta::NAME => {
            let stream = match params.stream.as_ref() {
                "stdout" => v0::ExecOutputStream::Stdout,
                "stderr" => v0::ExecOutputStream::Stderr,
                _ => return None,
            };
            Some(ServerNotification::ExecOutputDelta(
                v0::ExecOutputDeltaNotification {
                    chunk: chunk()?,
                    session_id: params.session_id?.into_owned(),
                    stream,
                },
            ))
        }
        _ => None,
    }
}

/// Decodes any server message through a generic JSON value.
fn decode_any_server_message(bytes: &[u8]) -> Result<DecodedServerMessage, ServerDecodeError> {
    let raw: RawMessage = serde_json::from_slice(bytes)?;
    if let Some(Value::String(method)) = raw.method {
        let params = raw.params.unwrap_or(Value::Null);
        let Some(typed) = ServerNotification::decode(&method, &params) else {
            return Ok(DecodedServerMessage::UnknownNotification { method, params });
        };
        return typed
            .map(|n| DecodedServerMessage::Known(ServerMessage::Notification(n)))
            .map_err(|error| ServerDecodeError::BadNotification { method, error });
    }
    let id = raw.id.and_then(request_id);
    let result = match (raw.result, raw.error) {
        (_, Some(error)) => Err(serde_json::from_value::<RpcError>(error)?),
        (Some(result), None) => Ok(result),
        (None, None) => return Err(ServerDecodeError::NotJsonRpc),
    };
    Ok(DecodedServerMessage::Known(ServerMessage::Response {
        id,
        result,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(text: &str) -> Result<DecodedClientMessage, DecodeError> {
        decode_client_message(text.as_bytes())
    }

    fn encode(message: &ServerMessage, jsonrpc: bool) -> Value {
        let mut out = Vec::new();
        encode_server_message(message, jsonrpc, &mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn requests_keep_their_id_exactly() {
        for id in [
            json!(7),
            json!("abc"),
            json!(18446744073709551615u64),
            json!(-3),
        ] {
            let text = json!({"id": id, "method": "initialize"}).to_string();
            let decoded = decode(&text).unwrap();
            let ClientMessage::Request { id: got, .. } = decoded.message else {
                panic!("not a request: {decoded:?}");
            };
            let echoed = encode(
                &ServerMessage::Response {
                    id: Some(got),
                    result: Ok(json!({})),
                },
                false,
            );
            assert_eq!(echoed["id"], id);
        }
    }

    #[test]
    fn jsonrpc_member_is_detected_and_echoed_only_when_asked() {
        let with = decode(r#"{"jsonrpc":"2.0","id":1,"method":"x"}"#).unwrap();
        assert!(with.jsonrpc);
        let without = decode(r#"{"id":1,"method":"x"}"#).unwrap();
        assert!(!without.jsonrpc);
        let response = ServerMessage::Response {
            id: Some(1.into()),
            result: Ok(json!({"ok": true})),
        };
        assert_eq!(encode(&response, true)["jsonrpc"], "2.0");
        assert!(encode(&response, false).get("jsonrpc").is_none());
    }

    #[test]
    fn garbage_is_a_parse_error_and_non_rpc_json_is_an_invalid_request() {
        assert!(matches!(decode("{nope"), Err(DecodeError::Parse(_))));
        assert!(matches!(
            decode_client_message(b"{\"id\":1,\"method\":\"\xff\"}"),
            Err(DecodeError::Parse(_))
        ));
        let not_rpc = |text: &str| matches!(decode(text), Err(DecodeError::NotJsonRpc(_)));
        assert!(not_rpc("[1,2]"));
        assert!(not_rpc("{\"id\":1}"));
        assert!(not_rpc("{\"id\":null,\"method\":\"x\"}"));
        // Regression (fuzzing): ids that could not be echoed exactly.
        for id in ["1.5", "1e3", "14777777777777777777777777777777777"] {
            assert!(
                not_rpc(&format!("{{\"id\":{id},\"method\":\"x\"}}")),
                "{id}"
            );
        }
        assert!(not_rpc("{\"id\":1,\"method\":5}"));
        let deep = "[".repeat(10_000);
        assert!(matches!(decode(&deep), Err(DecodeError::Parse(_))));
    }

    #[test]
    fn notifications_and_client_responses_are_classified() {
        let n = decode(r#"{"method":"initialized"}"#).unwrap().message;
        assert!(matches!(n, ClientMessage::Notification { .. }));
        let r = decode(r#"{"id":4,"result":{}}"#).unwrap().message;
        assert_eq!(r, ClientMessage::Response { id: Some(4.into()) });
    }

    #[test]
    fn output_delta_encoding_matches_serde_and_round_trips() {
        let delta = v0::ExecOutputDeltaNotification {
            session_id: "session-1".into(),
            stream: v0::ExecOutputStream::Stderr,
            chunk: Bytes::from_static(b"\x00\xffhello\n"),
        };
        let message = ServerMessage::Notification(ServerNotification::ExecOutputDelta(delta));
        for jsonrpc in [false, true] {
            let mut out = Vec::new();
            encode_server_message(&message, jsonrpc, &mut out);
            let value: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(value["method"], "command/exec/outputDelta");
            assert_eq!(value["params"]["stream"], "stderr");
            assert_eq!(value["params"]["chunk"], "AP9oZWxsbwo=");
            assert_eq!(value.get("jsonrpc").is_some(), jsonrpc);
            let decoded = decode_server_message(&out).unwrap();
            assert_eq!(decoded, DecodedServerMessage::Known(message.clone()));
        }
    }

    #[test]
    fn process_output_encoding_round_trips_with_its_seq() {
        let output = process::OutputNotification {
            process_id: "build \"1\"".into(),
            seq: 42,
            stream: process::ProcessStream::Pty,
            chunk: Bytes::from_static(b"\x1b[1mhi"),
        };
        let message = ServerMessage::Notification(ServerNotification::ProcessOutput(output));
        let mut out = Vec::new();
        encode_server_message(&message, false, &mut out);
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["params"]["seq"], 42);
        assert_eq!(value["params"]["processId"], "build \"1\"");
        assert_eq!(
            decode_server_message(&out).unwrap(),
            DecodedServerMessage::Known(message)
        );
    }

    #[test]
    fn output_fast_path_agrees_with_the_general_decoder() {
        let process = ServerMessage::Notification(ServerNotification::ProcessOutput(
            process::OutputNotification {
                process_id: "id with \"quotes\" and \u{e9}".into(),
                seq: 7,
                stream: process::ProcessStream::Pty,
                chunk: Bytes::from((0..=255u8).collect::<Vec<_>>()),
            },
        ));
        let delta = ServerMessage::Notification(ServerNotification::ExecOutputDelta(
            v0::ExecOutputDeltaNotification {
                session_id: "session-3".into(),
                stream: v0::ExecOutputStream::Stdout,
                chunk: Bytes::new(),
            },
        ));
        for message in [process, delta] {
            for jsonrpc in [false, true] {
                let mut out = Vec::new();
                encode_server_message(&message, jsonrpc, &mut out);
                let fast = decode_output_notification(&out).expect("the fast path applies");
                assert_eq!(ServerMessage::Notification(fast), message);
                assert_eq!(
                    decode_any_server_message(&out).unwrap(),
                    DecodedServerMessage::Known(message.clone())
                );
            }
        }
    }

    #[test]
    fn output_the_fast_path_cannot_read_still_gets_the_general_answer() {
        // An unknown stream, a missing seq, bad base64: errors, as before.
        let odd = [
            r#"{"method":"process/output","params":{"processId":"p","seq":1,"stream":"tty","chunk":""}}"#,
            r#"{"method":"process/output","params":{"processId":"p","stream":"pty","chunk":""}}"#,
            r#"{"method":"command/exec/outputDelta","params":{"sessionId":"s","stream":"stdout","chunk":"%%"}}"#,
        ];
        for text in odd {
            assert!(
                decode_output_notification(text.as_bytes()).is_none(),
                "{text}"
            );
            let general = decode_any_server_message(text.as_bytes()).map_err(|e| e.to_string());
            let public = decode_server_message(text.as_bytes()).map_err(|e| e.to_string());
            assert!(general.is_err(), "{text}");
            assert_eq!(public, general, "{text}");
        }
        // Escaped base64 is still JSON, and still the same bytes.
        let escaped = br#"{"method":"command/exec/outputDelta","params":{"sessionId":"s","stream":"stdout","chunk":"aGk\u003d"}}"#;
        assert_eq!(
            decode_server_message(escaped).unwrap(),
            decode_any_server_message(escaped).unwrap()
        );
    }

    #[test]
    fn error_responses_carry_null_id_when_there_is_none() {
        let value = encode(
            &ServerMessage::error_without_id(RpcError::parse_error("bad")),
            false,
        );
        assert_eq!(
            value,
            json!({"id": null, "error": {"code": -32700, "message": "bad"}})
        );
    }

    #[test]
    fn invalid_base64_is_a_params_error() {
        let err = serde_json::from_value::<v0::WriteParams>(
            json!({"sessionId": "session-1", "chunk": "%%%"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("invalid base64"), "{err}");
    }
}
