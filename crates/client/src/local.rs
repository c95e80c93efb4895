//! [`spawn_local_exec_server`]: an exec-server child connected over stdio.

use std::process::Stdio;

use tokio::process::{Child, Command};

use crate::client::ExecServerClient;
use crate::{ClientError, ClientOptions};

/// A server child and the client connected to it. Dropping it kills the
/// child (and with it, every process the child started).
pub struct LocalExecServer {
    /// The client connected to the child's stdio.
    pub client: ExecServerClient,
    child: Child,
}

impl LocalExecServer {
    /// The child's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

impl Drop for LocalExecServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Launches `command` (an `exec-server` binary with its arguments), speaking
/// the protocol on its stdin and stdout. Its stdin and stdout are replaced by
/// pipes; its stderr is left as configured (inherited by default).
pub async fn spawn_local_exec_server(
    mut command: Command,
    options: ClientOptions,
) -> Result<LocalExecServer, ClientError> {
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ClientError::Connect(format!("cannot start {program}: {e}")))?;
    let stdin = child.stdin.take().expect("stdin was piped");
    let stdout = child.stdout.take().expect("stdout was piped");
    let client = ExecServerClient::connect_stdio(stdin, stdout, options).await?;
    Ok(LocalExecServer { client, child })
}
