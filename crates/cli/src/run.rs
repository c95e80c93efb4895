//! `exec-server run`: run one command through exec-server from a terminal,
//! like `ssh host cmd` or `kubectl exec -it`.
//!
//! The command runs in an embedded in-process server unless `--connect`
//! names a remote one. Its output goes to the local stdout and stderr as it
//! arrives, local stdin is forwarded (its end closes the remote stdin), and
//! `run` exits with the command's status. With a terminal (`--tty`, the
//! default when stdin and stdout are terminals) the remote side gets a PTY
//! of the local terminal's size, the local terminal goes to raw mode (so
//! Ctrl-C travels as a keystroke), window-size changes are forwarded, and
//! the terminal is restored on every way out.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use exec_server_client::{ProcessEvent, RemoteProcess};
use exec_server_protocol::process::{ProcessStream, StartParams, StdinKind, TerminalSize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};

use crate::remote::ServerChoice;

/// The status `run` exits with when exec-server itself fails (cannot
/// connect, bad flags, cannot start the command, lost connection), as ssh
/// uses 255: distinct from any status a command returns through us.
pub const FAILURE_STATUS: u8 = 255;

/// The default remote `PATH`.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status: the command's own (128+N when a signal N killed it), or 255 when
exec-server itself failed (cannot connect, bad flag, cannot start the command,
lost connection).

Environment: by default the command gets only PATH (/usr/local/sbin:/usr/local/bin:
/usr/sbin:/usr/bin:/sbin:/bin) and, with a terminal, TERM (the local TERM, or
xterm-256color). --inherit-env starts from the server's environment instead;
-e K=V adds or overrides a variable.

Working directory: --cwd, else the local current directory with the embedded
server, or / on a remote server.

Examples:
  exec-server run -- ls -l /tmp
  echo hi | exec-server run -- cat
  exec-server run -t -- bash
  exec-server run --sandbox workspace-write --writable-root . -- make test
  exec-server run --connect ws://127.0.0.1:8080 --token-file ~/.exec-token -- make test")]
pub struct RunArgs {
    #[command(flatten)]
    server: ServerChoice,

    #[command(flatten)]
    sandbox: crate::sandbox_flags::SandboxFlags,

    /// Give the command a terminal (default when stdin and stdout are terminals).
    #[arg(short = 't', long, conflicts_with = "no_tty")]
    tty: bool,

    /// Never give the command a terminal: stdout and stderr stay apart.
    #[arg(short = 'T', long)]
    no_tty: bool,

    /// Working directory of the command.
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,

    /// Set an environment variable; repeatable.
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    env: Vec<String>,

    /// Start from the server's environment instead of the minimal default.
    #[arg(long)]
    inherit_env: bool,

    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<String>,
}

/// Runs the command; never returns an error, only an exit status.
pub fn main(args: RunArgs) -> ExitCode {
    match crate::block_on(run(args)) {
        Ok(status) => ExitCode::from(status),
        Err(error) => fail(&format!("{error:#}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("exec-server run: {message}");
    ExitCode::from(FAILURE_STATUS)
}

fn start_params(args: &RunArgs, tty: bool) -> anyhow::Result<StartParams> {
    let mut env = std::collections::BTreeMap::new();
    if !args.inherit_env {
        env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
    }
    if tty {
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into());
        env.insert("TERM".to_string(), term);
    }
    for pair in &args.env {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("-e `{pair}`: expected K=V");
        };
        if key.is_empty() {
            bail!("-e `{pair}`: the name is empty");
        }
        env.insert(key.to_string(), value.to_string());
    }
    let cwd = match (&args.cwd, &args.server.connect) {
        (Some(cwd), _) => cwd.clone(),
        (None, None) => std::env::current_dir()
            .context("cannot read the current directory; pass --cwd")?
            .display()
            .to_string(),
        (None, Some(_)) => "/".to_string(),
    };
    Ok(StartParams {
        argv: args.command.clone(),
        cwd,
        env,
        inherit_env: args.inherit_env,
        tty,
        size: if tty { local_size() } else { None },
        stdin: (!tty).then_some(StdinKind::Pipe),
        sandbox: args.sandbox.request()?,
        ..StartParams::default()
    })
}

/// The local terminal's size, from stdout (or stdin).
fn local_size() -> Option<TerminalSize> {
    let from = |fd: std::os::fd::BorrowedFd<'_>| rustix::termios::tcgetwinsize(fd).ok();
    let size = from(std::io::stdout().as_fd()).or_else(|| from(std::io::stdin().as_fd()))?;
    (size.ws_row > 0 && size.ws_col > 0).then_some(TerminalSize {
        rows: size.ws_row,
        cols: size.ws_col,
    })
}

/// The local terminal in raw mode, restored when dropped.
struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    fn enable() -> anyhow::Result<RawTerminal> {
        let stdin = std::io::stdin();
        let saved =
            rustix::termios::tcgetattr(stdin.as_fd()).context("reading the terminal settings")?;
        let mut raw = saved.clone();
        raw.make_raw();
        // A panic on any thread must not leave the terminal raw: restore it
        // before the default report.
        let cooked = saved.clone();
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin().as_fd(),
                rustix::termios::OptionalActions::Now,
                &cooked,
            );
            default_hook(info);
        }));
        rustix::termios::tcsetattr(stdin.as_fd(), rustix::termios::OptionalActions::Now, &raw)
            .context("switching the terminal to raw mode")?;
        Ok(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin().as_fd(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

async fn run(args: RunArgs) -> anyhow::Result<u8> {
    let local_terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let tty = args.tty || (!args.no_tty && local_terminal);
    let params = start_params(&args, tty)?;
    let client = args.server.connect("exec-server run").await?;
    let process = client
        .start(params)
        .await
        .with_context(|| format!("cannot run `{}`", args.command[0]))?;
    // Raw mode only once the command runs, and restored by this guard on
    // every return below, including errors and panics that unwind.
    let _raw = if tty && std::io::stdin().is_terminal() {
        Some(RawTerminal::enable()?)
    } else {
        None
    };
    drive(process, tty).await
}

/// Forwards stdin, signals and window sizes; copies output; returns the
/// command's exit status.
async fn drive(mut process: RemoteProcess, tty: bool) -> anyhow::Result<u8> {
    let process_id = process.id().to_string();
    let client = process.client().clone();

    // Local stdin → remote stdin; end of input closes the remote stdin.
    let stdin_client = client.clone();
    let stdin_id = process_id.clone();
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = stdin_client.close_stdin(&stdin_id).await;
                    return;
                }
                Ok(n) => {
                    let chunk = bytes::Bytes::copy_from_slice(&buf[..n]);
                    if stdin_client
                        .process_write(&stdin_id, chunk, None)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });

    // Window size changes → remote resize.
    if tty {
        let resize_client = client.clone();
        let resize_id = process_id.clone();
        let mut winch = signal(SignalKind::window_change())?;
        tokio::spawn(async move {
            while winch.recv().await.is_some() {
                if let Some(size) = local_size() {
                    let _ = resize_client.resize(&resize_id, size.rows, size.cols).await;
                }
            }
        });
    }

    // Without a terminal, Ctrl-C reaches us as SIGINT: pass it on. With a
    // terminal in raw mode it arrives as a keystroke on stdin instead.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;

    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    loop {
        let event = tokio::select! {
            event = process.next_event() => event,
            _ = interrupt.recv() => {
                let _ = client.signal(&process_id, "SIGINT").await;
                continue;
            }
            _ = terminate.recv() => {
                let _ = client.terminate_process(&process_id, Some(Duration::from_secs(2))).await;
                continue;
            }
            _ = hangup.recv() => {
                let _ = client.signal(&process_id, "SIGHUP").await;
                continue;
            }
        };
        match event {
            Some(ProcessEvent::Output { stream, chunk, .. }) => {
                let written = match stream {
                    ProcessStream::Stderr => {
                        async {
                            stderr.write_all(&chunk).await?;
                            stderr.flush().await
                        }
                        .await
                    }
                    ProcessStream::Stdout | ProcessStream::Pty => {
                        async {
                            stdout.write_all(&chunk).await?;
                            stdout.flush().await
                        }
                        .await
                    }
                };
                if written.is_err() {
                    // Our stdout is gone (e.g. `| head`): stop the command.
                    let _ = client.terminate_process(&process_id, None).await;
                }
            }
            Some(ProcessEvent::Gap { .. }) => {}
            Some(ProcessEvent::Exited { exit_code, .. }) => {
                return Ok(u8::try_from(exit_code).unwrap_or(FAILURE_STATUS));
            }
            Some(ProcessEvent::Closed) | None => bail!("lost the connection to the server"),
        }
    }
}
