//! The method table: every request method and every notification of the
//! protocol, written down once.
//!
//! Each request method is a type implementing [`Method`] (its wire name,
//! its params type, its result type), each notification a type
//! implementing [`Notification`] — the shape lsp-types gives LSP. Everything
//! else follows from the table by iteration, never from a second list:
//!
//! - the JSON Schema ([`crate::schema`]) visits every entry;
//! - [`ServerNotification`](crate::ServerNotification), its method names and
//!   its decoding ([`crate::wire`]) are generated from the notification
//!   table;
//! - the server's router (`exec-server-service`) is generated from the
//!   method table: it decodes a request's params into `M::Params`, calls the
//!   handler the entry names, and encodes `M::Result`. An entry without a
//!   handler does not compile;
//! - a client calls any method generically: [`request`] builds the typed
//!   request and [`decode_result`] reads `M::Result` back.
//!
//! # Adding a method
//! Add one entry to [`for_each_method!`](crate::for_each_method) and write its handler, an
//! `async fn` at the path the entry names under the server's `handlers`
//! module. Nothing else: the schema test then asks you to regenerate the
//! committed schema (`UPDATE_SCHEMA=1 cargo test -p exec-server-protocol
//! schema`).
//!
//! # The table macros
//! [`for_each_method!`](crate::for_each_method), [`for_each_server_notification!`](crate::for_each_server_notification) and
//! [`for_each_client_notification!`](crate::for_each_client_notification) take the name of a `macro_rules!`
//! macro in scope and call it once with every entry of their table. A
//! method entry reads
//!
//! ```text
//! /// doc comment
//! area::name => TypeName = "wire/name", ParamsType => ResultType;
//! ```
//!
//! where `area::name` is the method's Rust name (the server's handler is
//! `handlers::area::name`) and `TypeName` the type defined in this module.
//! A notification entry reads `TypeName = "wire/name", ParamsType;`, and
//! `TypeName` is also the name of its [`ServerNotification`](crate::ServerNotification) variant.
//! Callbacks match every part and may ignore what they do not need. For
//! code that only needs each type, [`visit_methods`] and friends call a
//! generic visitor instead.

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::jsonrpc::{ClientMessage, RequestId};

/// A request method: its wire name, params and result.
pub trait Method: 'static {
    /// The method name on the wire.
    const NAME: &'static str;
    /// The `params` of a request (absent params decode like `{}`).
    type Params: Serialize + DeserializeOwned + JsonSchema + Send + 'static;
    /// The `result` of a successful response.
    type Result: Serialize + DeserializeOwned + JsonSchema + Send + 'static;
}

/// A notification: its wire name and params.
pub trait Notification: 'static {
    /// The method name on the wire.
    const NAME: &'static str;
    /// The notification's `params`.
    type Params: Serialize + DeserializeOwned + JsonSchema + Send + 'static;
}

/// The request methods of the protocol. See the module documentation for
/// the entry syntax.
#[macro_export]
macro_rules! for_each_method {
    ($callback:ident) => {
        $callback! {
            /// `initialize`: the first request of every connection; starts
            /// or resumes a session (SPEC 1.3, 3.2).
            handshake::initialize => Initialize = "initialize",
                $crate::v0::InitializeParams => $crate::v0::InitializeResponse;
            /// `command/exec`: starts a v0 session (SPEC 2).
            v0::exec => Exec = "command/exec",
                $crate::v0::ExecParams => $crate::v0::ExecResponse;
            /// `command/exec/write`: writes to a v0 session's stdin.
            v0::write => ExecWrite = "command/exec/write",
                $crate::v0::WriteParams => $crate::v0::WriteResponse;
            /// `command/exec/terminate`: kills a v0 session's process group.
            v0::terminate => ExecTerminate = "command/exec/terminate",
                $crate::v0::TerminateParams => $crate::v0::TerminateResponse;
            /// `process/start`: starts a process (SPEC 3).
            process::start => ProcessStart = "process/start",
                $crate::process::StartParams => $crate::process::StartResponse;
            /// `process/write`: queues bytes for a process's stdin.
            process::write => ProcessWrite = "process/write",
                $crate::process::WriteParams => $crate::process::WriteResponse;
            /// `process/closeStdin`: EOF on a pipe, the EOF character on a terminal.
            process::close_stdin => ProcessCloseStdin = "process/closeStdin",
                $crate::process::ProcessIdParams => $crate::process::EmptyResponse;
            /// `process/resize`: resizes a process's terminal.
            process::resize => ProcessResize = "process/resize",
                $crate::process::ResizeParams => $crate::process::EmptyResponse;
            /// `process/signal`: signals a process group.
            process::signal => ProcessSignal = "process/signal",
                $crate::process::SignalParams => $crate::process::SignalResponse;
            /// `process/terminate`: SIGKILL now, or SIGTERM then SIGKILL after a grace.
            process::terminate => ProcessTerminate = "process/terminate",
                $crate::process::TerminateParams => $crate::process::TerminateResponse;
            /// `process/wait`: exit, a match, quiet or timeout, whichever is first.
            process::wait => ProcessWait = "process/wait",
                $crate::process::WaitParams => $crate::process::WaitResponse;
            /// `process/read`: retained output after a seq, optionally long-polling.
            process::read => ProcessRead = "process/read",
                $crate::process::ReadParams => $crate::process::ReadResponse;
            /// `process/snapshot`: retained output, rendered screen and status.
            process::snapshot => ProcessSnapshot = "process/snapshot",
                $crate::process::ProcessIdParams => $crate::process::SnapshotResponse;
            /// `process/list`: the session's processes, optionally by labels.
            process::list => ProcessList = "process/list",
                $crate::process::ListParams => $crate::process::ListResponse;
            /// `process/status`: one process, as `process/list` describes it.
            process::status => ProcessStatus = "process/status",
                $crate::process::ProcessIdParams => $crate::process::ProcessInfo;
            /// `process/release`: forgets an exited process and its output.
            process::release => ProcessRelease = "process/release",
                $crate::process::ProcessIdParams => $crate::process::EmptyResponse;
            /// `observe/list`: the processes of every session on the server,
            /// each with its owner's public handle (docs/OBSERVERS.md).
            observe::list => ObserveList = "observe/list",
                $crate::observe::ObserveListParams => $crate::observe::ObserveListResponse;
            /// `observe/snapshot`: `process/snapshot` of another session's process.
            observe::snapshot => ObserveSnapshot = "observe/snapshot",
                $crate::observe::Observed<$crate::process::ProcessIdParams> => $crate::process::SnapshotResponse;
            /// `observe/read`: `process/read` of another session's process.
            observe::read => ObserveRead = "observe/read",
                $crate::observe::Observed<$crate::process::ReadParams> => $crate::process::ReadResponse;
            /// `observe/write`: `process/write` to another session's process.
            observe::write => ObserveWrite = "observe/write",
                $crate::observe::Observed<$crate::process::WriteParams> => $crate::process::WriteResponse;
            /// `observe/resize`: `process/resize` of another session's process.
            observe::resize => ObserveResize = "observe/resize",
                $crate::observe::Observed<$crate::process::ResizeParams> => $crate::process::EmptyResponse;
            /// `observe/signal`: `process/signal` to another session's process group.
            observe::signal => ObserveSignal = "observe/signal",
                $crate::observe::Observed<$crate::process::SignalParams> => $crate::process::SignalResponse;
            /// `fs/readFile`: the whole file, or a range (SPEC 7).
            fs::read_file => FsReadFile = "fs/readFile",
                $crate::fs::ReadFileParams => $crate::fs::ReadFileResponse;
            /// `fs/writeFile`: a whole file, atomic by default.
            fs::write_file => FsWriteFile = "fs/writeFile",
                $crate::fs::WriteFileParams => $crate::process::EmptyResponse;
            /// `fs/open`: a handle for block reads or writes.
            fs::open => FsOpen = "fs/open",
                $crate::fs::OpenParams => $crate::fs::OpenResponse;
            /// `fs/readBlock`: bytes at an offset of a read handle.
            fs::read_block => FsReadBlock = "fs/readBlock",
                $crate::fs::ReadBlockParams => $crate::fs::ReadBlockResponse;
            /// `fs/writeBlock`: bytes at an offset of a write handle.
            fs::write_block => FsWriteBlock = "fs/writeBlock",
                $crate::fs::WriteBlockParams => $crate::process::EmptyResponse;
            /// `fs/close`: closes a handle; a write handle commits (or discards).
            fs::close => FsClose = "fs/close",
                $crate::fs::CloseParams => $crate::process::EmptyResponse;
            /// `fs/readDirectory`: entries of a directory, optionally recursive.
            fs::read_directory => FsReadDirectory = "fs/readDirectory",
                $crate::fs::ReadDirectoryParams => $crate::fs::ReadDirectoryResponse;
            /// `fs/getMetadata`: metadata of a path.
            fs::get_metadata => FsGetMetadata = "fs/getMetadata",
                $crate::fs::PathParams => $crate::fs::Metadata;
            /// `fs/canonicalize`: the path with symlinks, `.` and `..` resolved.
            fs::canonicalize => FsCanonicalize = "fs/canonicalize",
                $crate::fs::PathParams => $crate::fs::CanonicalizeResponse;
            /// `fs/createDirectory`: creates a directory (and parents).
            fs::create_directory => FsCreateDirectory = "fs/createDirectory",
                $crate::fs::CreateDirectoryParams => $crate::process::EmptyResponse;
            /// `fs/remove`: removes a file, symlink or tree.
            fs::remove => FsRemove = "fs/remove",
                $crate::fs::RemoveParams => $crate::process::EmptyResponse;
            /// `fs/copy`: copies a file or tree, keeping modes.
            fs::copy => FsCopy = "fs/copy",
                $crate::fs::CopyParams => $crate::process::EmptyResponse;
            /// `fs/rename`: renames within one file system.
            fs::rename => FsRename = "fs/rename",
                $crate::fs::RenameParams => $crate::process::EmptyResponse;
            /// `fs/watch`: starts `fs/changed` notifications for a path.
            fs::watch => FsWatch = "fs/watch",
                $crate::fs::WatchParams => $crate::fs::WatchResponse;
            /// `fs/unwatch`: stops a watch.
            fs::unwatch => FsUnwatch = "fs/unwatch",
                $crate::fs::UnwatchParams => $crate::process::EmptyResponse;
        }
    };
}

/// The notifications the server sends. Each `TypeName` is also a variant
/// of [`ServerNotification`](crate::ServerNotification).
#[macro_export]
macro_rules! for_each_server_notification {
    ($callback:ident) => {
        $callback! {
            /// `command/exec/outputDelta`: output of a v0 session.
            ExecOutputDelta = "command/exec/outputDelta", $crate::v0::ExecOutputDeltaNotification;
            /// `command/exec/exited`: a v0 session exited, after all its output.
            ExecExited = "command/exec/exited", $crate::v0::ExecExitedNotification;
            /// `process/output`: output of a process, with its seq.
            ProcessOutput = "process/output", $crate::process::OutputNotification;
            /// `process/exited`: a process exited, after all its output.
            ProcessExited = "process/exited", $crate::process::ExitedNotification;
            /// `process/closed`: the last notification of a process.
            ProcessClosed = "process/closed", $crate::process::ClosedNotification;
            /// `fs/changed`: a change under an `fs/watch` (SPEC 7).
            FsChanged = "fs/changed", $crate::fs::ChangedNotification;
        }
    };
}

/// The notifications a client sends.
#[macro_export]
macro_rules! for_each_client_notification {
    ($callback:ident) => {
        $callback! {
            /// `initialized`: the last step of the handshake (SPEC 1.3).
            Initialized = "initialized", $crate::methods::IgnoredParams;
        }
    };
}

macro_rules! define_methods {
    ($(
        $(#[$doc:meta])*
        $area:ident :: $handler:ident => $ty:ident = $name:literal, $params:ty => $result:ty;
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug)]
            pub enum $ty {}

            impl Method for $ty {
                const NAME: &'static str = $name;
                type Params = $params;
                type Result = $result;
            }
        )*

        /// Calls `visitor` once per request method, in table order.
        pub fn visit_methods(visitor: &mut impl MethodVisitor) {
            $( visitor.visit::<$ty>(); )*
        }
    };
}

macro_rules! define_notifications {
    ($visit:ident: $(
        $(#[$doc:meta])*
        $ty:ident = $name:literal, $params:ty;
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug)]
            pub enum $ty {}

            impl Notification for $ty {
                const NAME: &'static str = $name;
                type Params = $params;
            }
        )*

        /// Calls `visitor` once per notification of this direction, in
        /// table order.
        pub fn $visit(visitor: &mut impl NotificationVisitor) {
            $( visitor.visit::<$ty>(); )*
        }
    };
}

macro_rules! define_server_notifications {
    ($($entries:tt)*) => { define_notifications!(visit_server_notifications: $($entries)*); };
}

macro_rules! define_client_notifications {
    ($($entries:tt)*) => { define_notifications!(visit_client_notifications: $($entries)*); };
}

for_each_method!(define_methods);
for_each_server_notification!(define_server_notifications);
for_each_client_notification!(define_client_notifications);

/// Visits each request method as a type (see [`visit_methods`]).
pub trait MethodVisitor {
    fn visit<M: Method>(&mut self);
}

/// Visits each notification as a type (see [`visit_server_notifications`]
/// and [`visit_client_notifications`]).
pub trait NotificationVisitor {
    fn visit<N: Notification>(&mut self);
}

/// Params that are accepted in any shape and ignored (`initialized`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IgnoredParams;

impl Serialize for IgnoredParams {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        serializer.serialize_map(Some(0))?.end()
    }
}

impl<'de> serde::Deserialize<'de> for IgnoredParams {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| IgnoredParams)
    }
}

impl JsonSchema for IgnoredParams {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IgnoredParams".into()
    }

    /// The schema that accepts anything.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::Schema::default()
    }
}

/// A typed request for `M`, ready for any transport.
pub fn request<M: Method>(
    id: RequestId,
    params: &M::Params,
) -> Result<ClientMessage, serde_json::Error> {
    Ok(ClientMessage::Request {
        id,
        method: M::NAME.to_string(),
        params: Some(serde_json::to_value(params)?),
    })
}

/// Reads the `result` of a response to `M`.
pub fn decode_result<M: Method>(result: Value) -> Result<M::Result, serde_json::Error> {
    serde_json::from_value(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Names(Vec<&'static str>);

    impl MethodVisitor for Names {
        fn visit<M: Method>(&mut self) {
            self.0.push(M::NAME);
        }
    }

    impl NotificationVisitor for Names {
        fn visit<N: Notification>(&mut self) {
            self.0.push(N::NAME);
        }
    }

    #[test]
    fn names_are_unique_and_need_no_json_escaping() {
        let mut names = Names(Vec::new());
        visit_methods(&mut names);
        visit_server_notifications(&mut names);
        visit_client_notifications(&mut names);
        let mut unique = names.0.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.0.len(), "{:?}", names.0);
        // The output encoders write names into JSON frames unescaped.
        for name in names.0 {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'),
                "{name}"
            );
        }
    }

    #[test]
    fn a_typed_request_round_trips() {
        let params = crate::process::ProcessIdParams {
            process_id: "p".into(),
        };
        let message = request::<ProcessSnapshot>(7.into(), &params).unwrap();
        let ClientMessage::Request { method, params, .. } = message else {
            panic!("not a request");
        };
        assert_eq!(method, "process/snapshot");
        assert_eq!(params, Some(serde_json::json!({"processId": "p"})));
        let result = decode_result::<ProcessRelease>(serde_json::json!({})).unwrap();
        assert_eq!(result, crate::process::EmptyResponse {});
    }

    #[test]
    fn ignored_params_accept_anything() {
        for params in [
            serde_json::json!(null),
            serde_json::json!({"x": [1]}),
            serde_json::json!(3),
        ] {
            assert_eq!(
                serde_json::from_value::<IgnoredParams>(params).unwrap(),
                IgnoredParams
            );
        }
    }
}
