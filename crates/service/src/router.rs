//! The router, generated from the method table
//! ([`exec_server_protocol::methods`]): one arm per method that decodes the
//! params into `M::Params`, calls the handler the entry names
//! (`handlers::area::name`) and encodes its `M::Result`.
//!
//! Nothing here is written per method. A table entry whose handler is
//! missing, or whose handler takes or returns other types than the entry
//! says, fails to compile.

use std::future::Future;
use std::pin::Pin;

use exec_server_protocol::Method;
use exec_server_protocol::methods;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::context::Context;
use crate::error::ApiError;
use crate::handlers;

/// A handler's answer: now, or from a task of its own (`process/wait`, a
/// long-poll `process/read`), which the connection runs next to the
/// following requests.
pub(crate) enum Reply<T> {
    Now(Result<T, ApiError>),
    Later(Deferred<T>),
}

/// An answer still being computed.
pub(crate) type Deferred<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send>>;

impl<T> Reply<T> {
    /// An answer computed by `future` in a task of its own.
    pub fn later(future: impl Future<Output = Result<T, ApiError>> + Send + 'static) -> Self {
        Reply::Later(Box::pin(future))
    }
}

/// What a handler may return: a result, or a [`Reply`] that may defer.
pub(crate) trait IntoReply<T> {
    fn into_reply(self) -> Reply<T>;
}

impl<T> IntoReply<T> for Result<T, ApiError> {
    fn into_reply(self) -> Reply<T> {
        Reply::Now(self)
    }
}

impl<T> IntoReply<T> for Reply<T> {
    fn into_reply(self) -> Reply<T> {
        self
    }
}

macro_rules! router {
    ($(
        $(#[$doc:meta])*
        $area:ident :: $handler:ident => $ty:ident = $name:literal, $params:ty => $result:ty;
    )*) => {
        /// Decodes, handles and encodes one request.
        pub(crate) async fn route(cx: &mut Context, method: &str, params: Option<Value>) -> Reply<Value> {
            match method {
                $( $name => {
                    let params = match decode_params::<<methods::$ty as Method>::Params>(params) {
                        Ok(params) => params,
                        Err(error) => return Reply::Now(Err(error)),
                    };
                    encode::<methods::$ty>(handlers::$area::$handler(cx, params).await)
                } )*
                _ => Reply::Now(Err(ApiError::UnknownMethod(method.to_string()))),
            }
        }
    };
}

exec_server_protocol::for_each_method!(router);

/// `process/write` from a binary frame: its params arrive typed, so there
/// is nothing to decode (and no base64).
pub(crate) async fn binary_write(
    cx: &mut Context,
    params: exec_server_protocol::process::WriteParams,
) -> Result<Value, ApiError> {
    let result = handlers::process::write(cx, params).await?;
    to_value(result)
}

/// Decodes params into a typed struct. Absent params decode like `{}`, so
/// optional fields take their defaults and missing ones are named.
fn decode_params<T: DeserializeOwned>(params: Option<Value>) -> Result<T, ApiError> {
    let params = match params {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(params) => params,
    };
    serde_json::from_value(params).map_err(|error| ApiError::BadParams(error.to_string()))
}

/// A handler's typed answer as the JSON `result` of the response.
fn encode<M: Method>(reply: impl IntoReply<M::Result>) -> Reply<Value> {
    match reply.into_reply() {
        Reply::Now(result) => Reply::Now(result.and_then(to_value)),
        Reply::Later(future) => Reply::later(async move { future.await.and_then(to_value) }),
    }
}

fn to_value<T: serde::Serialize>(result: T) -> Result<Value, ApiError> {
    serde_json::to_value(result)
        .map_err(|error| ApiError::Internal(format!("encoding a result: {error}")))
}
