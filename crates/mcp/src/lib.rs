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
//! Collection is the client library's yield-window collector
//! ([`exec_server_client::collect()`]). A call returns at the first of: the
//! exit; the program **waits for input** (the server sees its terminal's
//! foreground group, or a pipe process, blocked reading its input:
//! `waiting_for_input: true`), so a shell or REPL step takes as long as the
//! program does; output matching `wait_for` (a regex); [`QUIET`] of silence
//! after output, a fallback for programs whose input wait cannot be seen;
//! the yield window. Progress notifications are sent during long waits when
//! the client gave a progress token.
//!
//! Output is text for the model by default: terminal escapes interpreted,
//! carriage-return progress resolved, a full-screen program shown as its
//! rendered screen; `raw: true` returns the bytes. One budget
//! (`max_output_bytes`) covers all streams; long output keeps its head and
//! tail, cut at lines, and says which cursor `read_output` reads the cut
//! part from. Processes run with `streamOutput: false`, so they never block
//! on output between calls; their output waits in retention. Commands get
//! non-interactive defaults ([`defaults`]): pagers off, stdin closed
//! without a terminal unless `open_stdin` is asked for.
//!
//! With `--sandbox`, every command runs confined (see [`sandbox`]): results
//! say so, and output that looks like a sandbox denial gets a note.
//!
//! The exec-server is embedded in this process, or remote with `--connect`.
//! When the MCP client disconnects, the connection to the exec-server ends
//! and every process started through it is killed.

pub mod defaults;
pub mod sandbox;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use exec_server_client::{
    CollectOptions, Collected, ExecServerClient, OutputCursor, Progress, Render, Stopped,
};
use exec_server_protocol::process::{StartParams, StdinKind, TerminalSize};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ProgressNotificationParam, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler, ServiceExt, schemars, tool, tool_handler,
    tool_router,
};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Default and longest yield windows.
const DEFAULT_YIELD: Duration = Duration::from_secs(10);
const MAX_YIELD: Duration = Duration::from_secs(300);
/// Default and largest output budgets, for all streams together.
const DEFAULT_OUTPUT_BYTES: usize = 16 * 1024;
const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// A session that printed something and then nothing for this long
/// returns even if it was not seen waiting for input (a fallback for
/// programs whose input wait the server cannot see, see docs/DESIGN.md).
pub const QUIET: Duration = Duration::from_millis(500);
/// Terminal size of `tty: true` sessions.
const TERMINAL: TerminalSize = TerminalSize {
    rows: 40,
    cols: 120,
};

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
    /// Whether `write_stdin` has somewhere to write.
    has_stdin: bool,
    /// Where the next collection starts. The lock also serialises calls on
    /// one session, so two concurrent `write_stdin` never split its output.
    cursor: tokio::sync::Mutex<OutputCursor>,
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
    /// Without tty: keep stdin open so write_stdin can write to it. Default false: stdin is
    /// empty (/dev/null) and a program that reads it gets end-of-file instead of hanging.
    pub open_stdin: Option<bool>,
    /// How long to wait before returning (default 10000, at most 300000). The call returns
    /// earlier when the command exits, waits for input, or matches wait_for.
    pub yield_time_ms: Option<u64>,
    /// Return as soon as the output matches this regular expression (e.g. a server's
    /// "listening on" line), the command exits, or the yield window ends; `stopped` says which.
    pub wait_for: Option<String>,
    /// Output budget in bytes for all streams together (default 16384). Longer output keeps
    /// its head and tail, cut at line boundaries; read_output can show the middle.
    pub max_output_bytes: Option<u64>,
    /// Return the raw bytes (escape sequences, carriage returns) instead of clean text.
    pub raw: Option<bool>,
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
    /// After writing, close stdin (end-of-file; on a tty, the EOF character).
    pub close_stdin: Option<bool>,
    /// How long to wait (default 10000, at most 300000); returns earlier on exit, input wait
    /// or a wait_for match.
    pub yield_time_ms: Option<u64>,
    /// Return as soon as new output matches this regular expression.
    pub wait_for: Option<String>,
    /// Output budget in bytes for all streams together (default 16384).
    pub max_output_bytes: Option<u64>,
    /// Return the raw bytes instead of clean text.
    pub raw: Option<bool>,
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
    /// Read output after this cursor (the `next_cursor` or `omitted_cursor` of an earlier
    /// call). Default: where the last call on this session stopped.
    pub cursor: Option<u64>,
    /// Output budget in bytes (default 16384).
    pub max_output_bytes: Option<u64>,
    /// Return the raw bytes instead of clean text.
    pub raw: Option<bool>,
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

fn budget(max_output_bytes: Option<u64>) -> usize {
    max_output_bytes
        .map(|b| b as usize)
        .unwrap_or(DEFAULT_OUTPUT_BYTES)
        .min(MAX_OUTPUT_BYTES)
}

fn render(raw: Option<bool>) -> Render {
    if raw.unwrap_or(false) {
        Render::Raw
    } else {
        Render::Text
    }
}

/// The collection options of `exec_command` and `write_stdin`.
fn options(
    yield_time_ms: Option<u64>,
    max_output_bytes: Option<u64>,
    wait_for: Option<String>,
    raw: Option<bool>,
) -> CollectOptions {
    let window = yield_time_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_YIELD)
        .min(MAX_YIELD);
    CollectOptions {
        quiet: Some(QUIET),
        pattern: wait_for.filter(|p| !p.is_empty()),
        render: render(raw),
        ..CollectOptions::new(window, budget(max_output_bytes))
    }
}

/// Sends MCP progress notifications for a collection, when the client asked
/// for them with a progress token.
fn progress_reporter(context: &RequestContext<RoleServer>) -> impl FnMut(Progress) + use<> {
    let token = context.meta.get_progress_token();
    let peer = context.peer.clone();
    move |progress: Progress| {
        let Some(token) = token.clone() else {
            return;
        };
        let message = format!(
            "waited {:.1} s of {:.1} s; {} bytes of output so far",
            progress.elapsed.as_secs_f64(),
            progress.window.as_secs_f64(),
            progress.output_bytes
        );
        let param = ProgressNotificationParam::new(token, progress.elapsed.as_millis() as f64)
            .with_total(progress.window.as_millis() as f64)
            .with_message(message);
        let peer = peer.clone();
        tokio::spawn(async move {
            if let Err(error) = peer.notify_progress(param).await {
                tracing::debug!(%error, "could not send a progress notification");
            }
        });
    }
}

/// The text a model reads: status first, then each non-empty stream.
fn render_text(collected: &Collected, session_id: &str, wall_time: Duration) -> String {
    let mut text = String::new();
    match &collected.exit {
        Some(exit) => text.push_str(&format!("exit_code: {}\n", exit.exit_code)),
        None if collected.waiting_for_input() => text.push_str(&format!(
            "session_id: {session_id} (waiting for input: send it with write_stdin)\nwaiting_for_input: true\n"
        )),
        None => text.push_str(&format!(
            "session_id: {session_id} (still running; call write_stdin to send input or to wait for more output)\n"
        )),
    }
    text.push_str(&format!("wall_time_ms: {}\n", wall_time.as_millis()));
    if matches!(collected.stopped, Stopped::Matched | Stopped::Deadline) {
        text.push_str(&format!("stopped: {}\n", collected.stopped.as_str()));
    }
    let omitted = collected.omitted_bytes();
    if omitted > 0 {
        let cut = match collected.omitted_cursor() {
            Some(cursor) => format!(
                "the middle of long output was cut; read_output with cursor {cursor} shows it"
            ),
            None => "dropped by the server's retention limit".to_string(),
        };
        text.push_str(&format!("omitted_bytes: {omitted} ({cut})\n"));
    }
    for (label, stream) in [
        ("stdout", &collected.stdout),
        ("stderr", &collected.stderr),
        ("terminal", &collected.pty),
    ] {
        if !stream.is_empty() || stream.omitted() > 0 {
            text.push_str(&format!("--- {label} ---\n"));
            text.push_str(&stream.to_text());
            if !text.ends_with('\n') {
                text.push('\n');
            }
        }
    }
    if let Some(screen) = &collected.screen {
        text.push_str("--- screen ---\n");
        for row in screen {
            text.push_str(row);
            text.push('\n');
        }
    }
    text
}

fn structured(
    collected: &Collected,
    session_id: Option<&str>,
    wall_time: Duration,
) -> serde_json::Value {
    json!({
        // Filled in for a confined command (see `collect_and_render`).
        "sandbox": null,
        "session_id": session_id,
        "exit_code": collected.exit.as_ref().map(|e| e.exit_code),
        "waiting_for_input": collected.waiting_for_input(),
        "stopped": collected.stopped.as_str(),
        "stdout": collected.stdout.to_text(),
        "stderr": collected.stderr.to_text(),
        "terminal": collected.pty.to_text(),
        "screen": collected.screen,
        "omitted_bytes": collected.omitted_bytes(),
        "omitted_cursor": collected.omitted_cursor(),
        "next_cursor": collected.cursor,
        "output_bytes": collected.output_bytes,
        "wall_time_ms": wall_time.as_millis() as u64,
    })
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
        cursor: &mut OutputCursor,
        options: CollectOptions,
        on_progress: impl FnMut(Progress),
    ) -> CallToolResult {
        let started = Instant::now();
        let collected = exec_server_client::collect(
            &self.client,
            &session.process_id,
            cursor,
            &options,
            on_progress,
        )
        .await;
        let collected = match collected {
            Ok(collected) => collected,
            Err(error) => {
                return tool_error(format!(
                    "reading the output of session {session_id} failed: {error}"
                ));
            }
        };
        if collected.exit.is_some() {
            self.sessions
                .lock()
                .expect("sessions lock poisoned")
                .remove(session_id);
            let _ = self.client.release(&session.process_id).await;
        }
        let wall_time = started.elapsed();
        let text = render_text(&collected, session_id, wall_time);
        let id = collected.exit.is_none().then_some(session_id);
        let mut structured = structured(&collected, id, wall_time);
        let text = match &session.confined {
            Some(confined) => {
                let (text, note) = sandbox::annotate(text, confined);
                structured["sandbox"] =
                    json!({"summary": sandbox::summary(&confined.applied), "denial": note});
                text
            }
            None => text,
        };
        text_result(text, structured)
    }
}

#[tool_router]
impl ExecTools {
    #[tool(
        description = "Run a command and return its output. Returns the exit code when it finishes within the yield window; otherwise returns a session_id: the command keeps running and write_stdin sends it input or waits for more output. Returns as soon as the command waits for input (waiting_for_input: true), so interactive steps are fast. Use tty=true for interactive programs (shells, REPLs, prompts); without tty stdin is closed unless open_stdin=true. Output is clean text (raw=true for bytes); beyond max_output_bytes the beginning and the end are kept. wait_for returns when output matches a regex."
    )]
    async fn exec_command(
        &self,
        Parameters(params): Parameters<ExecCommandParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let on_progress = progress_reporter(&context);
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
            let open_stdin = !tty && params.open_stdin.unwrap_or(false);
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
                env: defaults::environment(tty, params.env.unwrap_or_default()),
                inherit_env: true,
                tty,
                size: tty.then_some(TERMINAL),
                stdin: (!tty).then_some(if open_stdin {
                    StdinKind::Pipe
                } else {
                    StdinKind::Closed
                }),
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
                has_stdin: tty || open_stdin,
                cursor: tokio::sync::Mutex::new(OutputCursor::default()),
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
            let options = options(
                params.yield_time_ms,
                params.max_output_bytes,
                params.wait_for,
                params.raw,
            );
            self.collect_and_render(&session_id, &session, &mut cursor, options, on_progress)
                .await
        };
        Ok(cancellable(context.ct.clone(), work).await)
    }

    #[tool(
        description = "Send characters to a running session's stdin (or terminal) and return the output that follows, like exec_command: it returns as soon as the program waits for input again. With empty chars it just waits for more output (wait_for: until output matches a regex). A session that already exited returns its remaining output and exit code."
    )]
    async fn write_stdin(
        &self,
        Parameters(params): Parameters<WriteStdinParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let on_progress = progress_reporter(&context);
        let work = async move {
            let session = match self.known_session(&params.session_id) {
                Ok(session) => session,
                Err(error) => return error,
            };
            let close = params.close_stdin.unwrap_or(false);
            if !session.has_stdin && (!params.chars.is_empty() || close) {
                return tool_error(format!(
                    "session {} has no stdin: without tty, start the command with open_stdin: true to write to it",
                    params.session_id
                ));
            }
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
            if close && let Err(error) = self.client.close_stdin(&session.process_id).await {
                tracing::debug!(%error, "write_stdin could not close stdin");
            }
            let options = options(
                params.yield_time_ms,
                params.max_output_bytes,
                params.wait_for,
                params.raw,
            );
            self.collect_and_render(
                &params.session_id,
                &session,
                &mut cursor,
                options,
                on_progress,
            )
            .await
        };
        Ok(cancellable(context.ct.clone(), work).await)
    }

    #[tool(
        description = "Read a session's output from a cursor without waiting (next_cursor continues; omitted_cursor of an earlier call shows what was cut from it). Nothing is lost between calls unless the server's retention limit dropped it, which is reported."
    )]
    async fn read_output(
        &self,
        Parameters(params): Parameters<ReadOutputParams>,
    ) -> Result<CallToolResult, McpError> {
        let session = match self.known_session(&params.session_id) {
            Ok(session) => session,
            Err(error) => return Ok(error),
        };
        let mut session_cursor = session.cursor.lock().await;
        // An explicit cursor reads on its own, leaving the session's place.
        let mut own_cursor = params.cursor.map(OutputCursor::new);
        let cursor = match own_cursor.as_mut() {
            Some(cursor) => cursor,
            None => &mut *session_cursor,
        };
        let options = CollectOptions {
            until_input_wait: false,
            render: render(params.raw),
            ..CollectOptions::new(Duration::ZERO, budget(params.max_output_bytes))
        };
        let collected = exec_server_client::collect(
            &self.client,
            &session.process_id,
            cursor,
            &options,
            |_| {},
        )
        .await;
        let collected = match collected {
            Ok(collected) => collected,
            Err(error) => {
                return Ok(tool_error(format!(
                    "reading session {} failed: {error}",
                    params.session_id
                )));
            }
        };
        let output = [&collected.stdout, &collected.stderr, &collected.pty]
            .iter()
            .map(|s| s.to_text())
            .collect::<String>();
        let running = collected.exit.is_none();
        let mut text = format!(
            "next_cursor: {}\nrunning: {running}\ndropped_bytes: {}\n",
            collected.cursor,
            collected.omitted_bytes(),
        );
        if let Some(cursor) = collected.omitted_cursor() {
            text.push_str(&format!("omitted_cursor: {cursor}\n"));
        }
        text.push_str("--- output ---\n");
        text.push_str(&output);
        let structured = json!({
            "next_cursor": collected.cursor,
            "running": running,
            "exit_code": collected.exit.as_ref().map(|e| e.exit_code),
            "output": output,
            "screen": collected.screen,
            "dropped_bytes": collected.omitted_bytes(),
            "omitted_cursor": collected.omitted_cursor(),
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
            let options = CollectOptions {
                until_input_wait: false,
                ..CollectOptions::new(grace + Duration::from_secs(2), DEFAULT_OUTPUT_BYTES)
            };
            self.collect_and_render(&params.session_id, &session, &mut cursor, options, |_| {})
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
                 write_stdin types into a session and returns what follows, as soon as the program \
                 waits for input again. Output is clean text within one byte budget. Sessions end \
                 when this connection closes.",
            )
    }
}
