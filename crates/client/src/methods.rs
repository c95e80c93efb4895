//! Stand-in for the protocol crate's method table (`exec_server_protocol::
//! methods`, being added on another branch): each method a type with its
//! wire name, params and result, with the same names, so switching is a
//! change of import.

use exec_server_protocol::process::{self, method as process_method};
use exec_server_protocol::v0::{self, method as v0_method};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A request method: its wire name, params and result.
pub(crate) trait Method: 'static {
    const NAME: &'static str;
    type Params: Serialize + Send + 'static;
    type Result: DeserializeOwned + Send + 'static;
}

macro_rules! methods {
    ($($ty:ident = $name:expr, $params:ty => $result:ty;)*) => {
        $(
            pub(crate) enum $ty {}

            impl Method for $ty {
                const NAME: &'static str = $name;
                type Params = $params;
                type Result = $result;
            }
        )*
    };
}

methods! {
    Initialize = v0_method::INITIALIZE, v0::InitializeParams => v0::InitializeResponse;
    Exec = v0_method::EXEC, v0::ExecParams => v0::ExecResponse;
    ExecWrite = v0_method::EXEC_WRITE, v0::WriteParams => v0::WriteResponse;
    ExecTerminate = v0_method::EXEC_TERMINATE, v0::TerminateParams => v0::TerminateResponse;
    ProcessStart = process_method::START, process::StartParams => process::StartResponse;
    ProcessWrite = process_method::WRITE, process::WriteParams => process::WriteResponse;
    ProcessCloseStdin = process_method::CLOSE_STDIN, process::ProcessIdParams => process::EmptyResponse;
    ProcessResize = process_method::RESIZE, process::ResizeParams => process::EmptyResponse;
    ProcessSignal = process_method::SIGNAL, process::SignalParams => process::SignalResponse;
    ProcessTerminate = process_method::TERMINATE, process::TerminateParams => process::TerminateResponse;
    ProcessWait = process_method::WAIT, process::WaitParams => process::WaitResponse;
    ProcessRead = process_method::READ, process::ReadParams => process::ReadResponse;
    ProcessSnapshot = process_method::SNAPSHOT, process::ProcessIdParams => process::SnapshotResponse;
    ProcessList = process_method::LIST, process::ListParams => process::ListResponse;
    ProcessRelease = process_method::RELEASE, process::ProcessIdParams => process::EmptyResponse;
}
