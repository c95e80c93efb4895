//! `exec-server mcp`: an MCP server (over stdio) that gives AI agents real,
//! interactive shells backed by exec-server's process core.
//!
//! Tools:
//! - `exec_command` starts a command (a shell command line, or an argv),
//!   optionally on a terminal, and collects its output for a yield window;
//!   it returns the output with the exit code, or a `session_id` when the
//!   command is still running;
//! - `write_stdin` types into a running session (or just polls it) and
//!   collects again; a session that exited in the meantime still returns
//!   its final output and exit code;
//! - `read_output` reads a session's retained output from a cursor;
//! - `list_sessions`, `kill_session` (SIGTERM, then SIGKILL after a grace).
//!
//! Output collection (see [`collector`]) returns at the first of: the yield
//! window ends; the process exits; the process printed something and then
//! stayed quiet for [`QUIET`] (it is most likely waiting for input). Long
//! output keeps its head and tail within `max_output_bytes` per stream and
//! says how many bytes were cut: the tail, where a failing build's error is,
//! is never dropped. Processes run with `streamOutput: false`, so they never
//! block on output between calls; their output waits in retention.
//!
//! With `--sandbox`, every command runs confined (see [`sandbox`]): results
//! say so, and output that looks like a sandbox denial gets a note.
//!
//! The exec-server is embedded in this process, or remote with `--connect`.
//! When the MCP client disconnects, the connection to the exec-server ends
//! and every process started through it is killed.

pub mod collector;
pub mod sandbox;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use exec_server_client::ExecServerClient;
use exec_server_protocol::process::{ReadParams, StartParams, TerminalSize};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{
    ErrorData as McpError, ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router,
};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::collector::{Window, collect, render};

/// Default and longest yield windows.
const DEFAULT_YIELD: Duration = Duration::from_secs(10);
const MAX_YIELD: Duration = Duration::from_secs(300);
/// Default and largest output budgets, per stream.
const DEFAULT_OUTPUT_BYTES: usize = 16 * 1024;
const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// A session that printed something and then nothing for this long is
/// taken to be waiting for input: the call returns early.
pub const QUIET: Duration = Duration::from_millis(500);

/// Serves MCP on stdin/stdout until the client disconnects.
pub async fn serve_stdio(client: ExecServerClient) -> anyhow::Result<()> {
    serve_stdio_with_sandbox(client, None).await
}

/// Like [`serve_stdio`], running every command under `sandbox`.
pub async fn serve_stdio_with_sandbox(
    client: ExecServerClient,
    sandbox: Option<exec_server_protocol::sandbox::SandboxParams>,
) -> anyhow::Result<()> {
    let mut tools = ExecTools::new(client);
    tools.sandbox = sandbox;
    let service = tools.serve(rmcp::transport::stdio()).await?;
    service.waiting().await?;
    Ok(())
}

/// One session: a process started by `exec_command`.
struct Session {
    process_id: String,
    command: String,
    pid: i32,
    /// The next output to return; the lock also serialises calls on one
    /// session, so two concurrent `write_stdin` never split its output.
    cursor: tokio::sync::Mutex<u64>,
    /// Set when the command runs confined.
    confined: Option<sandbox::Confined>,
}

/// The MCP tool set.
#[derive(Clone)]
pub struct ExecTools {
    client: ExecServerClient,
    sessions: Arc<Mutex<HashMap<String, Arc<Session>>>>,
    next_session: Arc<AtomicU64>,
    /// Sent with every command (`exec-server mcp --sandbox …`).
    sandbox: Option<exec_server_protocol::sandbox::SandboxParams>,
    #[allow(dead_code, reason = "read by the tool_handler macro")]
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ExecCommandParams {
    /// A shell command line, run with the user's shell (`$SHELL -c`). Give either `cmd` or `argv`.
    pub cmd: Option<String>,
    /// The program and its arguments, run without a shell. Give either `cmd` or `argv`.
    pub argv: Option<Vec<String>>,
    /// Working directory (absolute). Default: the server's current directory.
    pub workdir: Option<String>,
    /// Run on a terminal (PTY), for interactive programs, REPLs and anything that colors or
    /// prompts only on a terminal. stdout and stderr are then merged. Default false.
    pub tty: Option<bool>,
    /// How long to wait for output or the exit before returning (default 10000, at most 300000).
    /// The call returns earlier when the command exits or goes quiet after printing something.
    pub yield_time_ms: Option<u64>,
    /// Output budget per stream in bytes (default 16384). Longer output keeps its head and tail.
    pub max_output_bytes: Option<u64>,
    /// Extra environment variables, on top of the server's environment.
    pub env: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct WriteStdinParams {
    /// The session_id returned by exec_command.
    pub session_id: String,
    /// Characters to type (use "\n" for Enter, "\u0003" for Ctrl-C on a tty). Empty: just wait
    /// for more output.
    #[serde(default)]
    pub chars: String,
    /// How long to wait for output or the exit (default 10000, at most 300000).
    pub yield_time_ms: Option<u64>,
    /// Output budget per stream in bytes (default 16384).
    pub max_output_bytes: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct KillSessionParams {
    /// The session to stop.
    pub session_id: String,
    /// Time between SIGTERM and SIGKILL in milliseconds (default 2000; 0 kills at once).
    pub grace_ms: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ReadOutputParams {
    /// The session to read.
    pub session_id: String,
    /// Read output after this cursor (the `next_cursor` of an earlier call). Default: where the
    /// last call on this session stopped.
    pub cursor: Option<u64>,
    /// Output budget per stream in bytes (default 16384).
    pub max_output_bytes: Option<u64>,
}

fn text_result(text: String, structured: serde_json::Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    result
}

/// Runs a tool's work unless the client cancels the call first: dropping
/// the work releases the session it was waiting on.
async fn cancellable(
    ct: CancellationToken,
    work: impl std::future::Future<Output = CallToolResult>,
) -> CallToolResult {
    tokio::select! {
        result = work => result,
        _ = ct.cancelled() => tool_error("cancelled by the client"),
    }
}

fn tool_error(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

fn window(yield_time_ms: Option<u64>, max_output_bytes: Option<u64>) -> Window {
    Window {
        yield_time: yield_time_ms
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_YIELD)
            .min(MAX_YIELD),
        quiet: QUIET,
        max_bytes: max_output_bytes
            .map(|b| b as usize)
            .unwrap_or(DEFAULT_OUTPUT_BYTES)
            .min(MAX_OUTPUT_BYTES),
    }
}

impl ExecTools {
    pub fn new(client: ExecServerClient) -> Self {
        ExecTools {
            client,
            sessions: Arc::default(),
            next_session: Arc::new(AtomicU64::new(1)),
            sandbox: None,
            tool_router: Self::tool_router(),
        }
    }

    /// The session `id`, or the tool error a model reads when it is unknown.
    fn known_session(&self, id: &str) -> Result<Arc<Session>, CallToolResult> {
        self.sessions
            .lock()
            .expect("sessions lock poisoned")
            .get(id)
            .cloned()
            .ok_or_else(|| tool_error(format!("unknown session_id {id}")))
    }

    /// Collects for a session and renders the answer; forgets the session
    /// once its exit was reported.
    async fn collect_and_render(
        &self,
        session_id: &str,
        session: &Session,
        cursor: &mut u64,
        window: Window,
    ) -> CallToolResult {
        let started = Instant::now();
        let gathered = match collect(&self.client, &session.process_id, *cursor, window).await {
            Ok(gathered) => gathered,
            Err(error) => {
                return tool_error(format!(
                    "reading the output of session {session_id} failed: {error}"
                ));
            }
        };
        *cursor = gathered.cursor;
        if gathered.exit_code.is_some() {
            self.sessions
                .lock()
                .expect("sessions lock poisoned")
                .remove(session_id);
            let _ = self.client.release(&session.process_id).await;
        }
        let text = render(&gathered, session_id, started.elapsed());
        let (text, sandbox) = match &session.confined {
            Some(confined) => {
                let (text, note) = sandbox::annotate(text, confined);
                (
                    text,
                    json!({"summary": sandbox::summary(&confined.applied), "denial": note}),
                )
            }
            None => (text, serde_json::Value::Null),
        };
        let structured = json!({
            "sandbox": sandbox,
            "session_id": gathered.exit_code.is_none().then_some(session_id),
            "exit_code": gathered.exit_code,
            "stdout": gathered.stdout.to_text(),
            "stderr": gathered.stderr.to_text(),
            "terminal": gathered.pty.to_text(),
            "omitted_bytes": gathered.omitted_bytes(),
            "wall_time_ms": started.elapsed().as_millis() as u64,
        });
        text_result(text, structured)
    }
}

#[tool_router]
impl ExecTools {
    #[tool(
        description = "Run a command and return its output. Returns the exit code when it finishes within the yield window; otherwise returns a session_id: the command keeps running and write_stdin sends it input or waits for more output. Use tty=true for interactive programs (shells, REPLs, prompts). Output beyond max_output_bytes keeps the beginning and the end and reports how much was omitted."
    )]
    async fn exec_command(
        &self,
        Parameters(params): Parameters<ExecCommandParams>,
        ct: CancellationToken,
    ) -> Result<CallToolResult, McpError> {
        let work = async move {
            let argv = match (params.cmd, params.argv) {
                (Some(cmd), None) => {
                    let shell = std::env::var("SHELL")
                        .ok()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "/bin/sh".into());
                    vec![shell, "-c".into(), cmd]
                }
                (None, Some(argv)) if !argv.is_empty() => argv,
                (None, Some(_)) => return tool_error("argv must not be empty"),
                (Some(_), Some(_)) => return tool_error("give either cmd or argv, not both"),
                (None, None) => return tool_error("give cmd (a shell command line) or argv"),
            };
            let cwd = match params.workdir {
                Some(dir) => dir,
                None => std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|_| "/".into()),
            };
            let tty = params.tty.unwrap_or(false);
            let session_id = self
                .next_session
                .fetch_add(1, Ordering::Relaxed)
                .to_string();
            let command = argv.join(" ");
            let mut labels = BTreeMap::new();
            labels.insert("mcp-session".to_string(), session_id.clone());
            let start = StartParams {
                process_id: Some(format!("mcp-{session_id}")),
                argv,
                cwd,
                env: params.env.unwrap_or_default(),
                inherit_env: true,
                tty,
                size: tty.then_some(TerminalSize {
                    rows: 40,
                    cols: 120,
                }),
                stdin: (!tty).then_some(exec_server_protocol::process::StdinKind::Pipe),
                stream_output: Some(false),
                labels,
                sandbox: self.sandbox.clone(),
                ..StartParams::default()
            };
            let workdir = start.cwd.clone();
            let process = match self.client.start(start).await {
                Ok(process) => process,
                Err(error) => return tool_error(format!("could not start `{command}`: {error}")),
            };
            let session = Arc::new(Session {
                process_id: process.id().to_string(),
                command,
                pid: process.pid(),
                cursor: tokio::sync::Mutex::new(0),
                confined: process.sandbox().map(|applied| sandbox::Confined {
                    applied: applied.clone(),
                    workdir: workdir.into(),
                }),
            });
            drop(process);
            self.sessions
                .lock()
                .expect("sessions lock poisoned")
                .insert(session_id.clone(), session.clone());
            let mut cursor = session.cursor.lock().await;
            let window = window(params.yield_time_ms, params.max_output_bytes);
            self.collect_and_render(&session_id, &session, &mut cursor, window)
                .await
        };
        Ok(cancellable(ct, work).await)
    }

    #[tool(
        description = "Send characters to a running session's stdin (or terminal) and return the output that follows, like exec_command. With empty chars it just waits for more output. A session that already exited returns its remaining output and exit code."
    )]
    async fn write_stdin(
        &self,
        Parameters(params): Parameters<WriteStdinParams>,
        ct: CancellationToken,
    ) -> Result<CallToolResult, McpError> {
        let work = async move {
            let session = match self.known_session(&params.session_id) {
                Ok(session) => session,
                Err(error) => return error,
            };
            let mut cursor = session.cursor.lock().await;
            if !params.chars.is_empty() {
                let written = self
                    .client
                    .process_write(&session.process_id, params.chars.into_bytes(), None)
                    .await;
                if let Err(error) = written {
                    // A session that exited meanwhile still reports its end below.
                    tracing::debug!(%error, "write_stdin could not write");
                }
            }
            let window = window(params.yield_time_ms, params.max_output_bytes);
            self.collect_and_render(&params.session_id, &session, &mut cursor, window)
                .await
        };
        Ok(cancellable(ct, work).await)
    }

    #[tool(
        description = "Read a session's output from a cursor without waiting (next_cursor continues). Nothing is lost between calls unless the server's retention limit dropped it, which is reported."
    )]
    async fn read_output(
        &self,
        Parameters(params): Parameters<ReadOutputParams>,
    ) -> Result<CallToolResult, McpError> {
        let session = match self.known_session(&params.session_id) {
            Ok(session) => session,
            Err(error) => return Ok(error),
        };
        let mut cursor = session.cursor.lock().await;
        let after = params.cursor.unwrap_or(*cursor);
        let budget = window(Some(0), params.max_output_bytes).max_bytes;
        let read = match self
            .client
            .read(ReadParams {
                process_id: session.process_id.clone(),
                after_seq: after,
                max_bytes: Some(4 * 1024 * 1024),
                wait_ms: None,
            })
            .await
        {
            Ok(read) => read,
            Err(error) => {
                return Ok(tool_error(format!(
                    "reading session {} failed: {error}",
                    params.session_id
                )));
            }
        };
        let mut output = exec_server_client::Budgeted::new(budget);
        for chunk in &read.chunks {
            output.push(&chunk.chunk);
        }
        if params.cursor.is_none() {
            *cursor = read.next_seq.max(*cursor);
        }
        let text = format!(
            "next_cursor: {}\nrunning: {}\ndropped_bytes: {}\n--- output ---\n{}",
            read.next_seq,
            !read.exited,
            read.dropped_bytes + output.omitted(),
            output.to_text()
        );
        let structured = json!({
            "next_cursor": read.next_seq,
            "running": !read.exited,
            "exit_code": read.exit_code,
            "output": output.to_text(),
            "dropped_bytes": read.dropped_bytes + output.omitted(),
        });
        Ok(text_result(text, structured))
    }

    #[tool(
        description = "List the sessions started by exec_command that are still running or not yet fully read."
    )]
    async fn list_sessions(&self) -> Result<CallToolResult, McpError> {
        let sessions: Vec<(String, Arc<Session>)> = {
            let map = self.sessions.lock().expect("sessions lock poisoned");
            let mut list: Vec<_> = map.iter().map(|(id, s)| (id.clone(), s.clone())).collect();
            list.sort_by_key(|(id, _)| id.parse::<u64>().unwrap_or(u64::MAX));
            list
        };
        let mut text = String::new();
        let mut structured = Vec::new();
        for (id, session) in sessions {
            let snapshot = self.client.snapshot(&session.process_id).await.ok();
            let running = snapshot.as_ref().is_some_and(|s| s.running);
            let exit = snapshot.as_ref().and_then(|s| s.exit_code);
            let state = match exit {
                Some(code) if !running => format!("exited {code}"),
                _ => "running".to_string(),
            };
            text.push_str(&format!(
                "session_id: {id}  pid: {}  {state}  {}\n",
                session.pid, session.command
            ));
            structured.push(json!({"session_id": id, "pid": session.pid, "running": running, "exit_code": exit, "command": session.command}));
        }
        if text.is_empty() {
            text.push_str("no sessions\n");
        }
        Ok(text_result(text, json!({ "sessions": structured })))
    }

    #[tool(
        description = "Stop a session: SIGTERM to its whole process group, then SIGKILL after grace_ms. Returns its final output and exit code."
    )]
    async fn kill_session(
        &self,
        Parameters(params): Parameters<KillSessionParams>,
        ct: CancellationToken,
    ) -> Result<CallToolResult, McpError> {
        let work = async move {
            let session = match self.known_session(&params.session_id) {
                Ok(session) => session,
                Err(error) => return error,
            };
            let grace = Duration::from_millis(params.grace_ms.unwrap_or(2000));
            if let Err(error) = self
                .client
                .terminate_process(&session.process_id, Some(grace))
                .await
            {
                return tool_error(format!(
                    "could not stop session {}: {error}",
                    params.session_id
                ));
            }
            let mut cursor = session.cursor.lock().await;
            let window = Window {
                yield_time: grace + Duration::from_secs(2),
                quiet: grace + Duration::from_secs(2),
                max_bytes: DEFAULT_OUTPUT_BYTES,
            };
            self.collect_and_render(&params.session_id, &session, &mut cursor, window)
                .await
        };
        Ok(cancellable(ct, work).await)
    }
}

#[tool_handler]
impl ServerHandler for ExecTools {
    fn get_info(&self) -> ServerConfig {
        let mut info = Implementation::from_build_env();
        info.name = "exec-server".into();
        info.version = env!("CARGO_PKG_VERSION").into();
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(info)
            .with_instructions(
                "Run shell commands and drive interactive programs. exec_command runs a command and \
                 returns its output and exit code, or a session_id if it is still running; \
                 write_stdin types into a session and returns what follows. Sessions end when \
                 this connection closes.",
            )
    }
}
