//! Collecting a process's output for one tool call: until the yield window
//! ends, the process exits, or it has gone quiet after printing something
//! (it is most likely waiting for input), within a byte budget that keeps
//! the head and the tail.
//!
//! Collection reads retained output from a cursor (`process/read` with a
//! long poll), so the process never blocks on output between tool calls and
//! nothing is lost: the next call continues from where this one stopped.

use std::time::Duration;

use exec_server_client::{Budgeted, ClientError, ExecServerClient};
use exec_server_protocol::process::ReadParams;
use tokio::time::Instant;

/// When to return.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Longest time to collect.
    pub yield_time: Duration,
    /// Return this long after the last output, once there was some.
    pub quiet: Duration,
    /// Bytes kept per stream (head and tail halves).
    pub max_bytes: usize,
}

/// What one collection gathered.
#[derive(Debug)]
pub struct Gathered {
    pub stdout: Budgeted,
    pub stderr: Budgeted,
    pub pty: Budgeted,
    /// Bytes the server's retention dropped before we read them.
    pub dropped_bytes: u64,
    /// The exit code, once the process exited and its output was read.
    pub exit_code: Option<i32>,
    /// Where the next collection starts.
    pub cursor: u64,
    /// Why collection stopped.
    pub stopped: Stopped,
}

exec_server_protocol::index_by_stream!(Gathered => Budgeted);

/// Why collection stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    Exited,
    /// Output arrived, then nothing for the quiet window.
    Quiet,
    /// The yield window ended.
    Deadline,
}

impl Gathered {
    /// Bytes cut from the middle of long output, plus bytes dropped.
    pub fn omitted_bytes(&self) -> u64 {
        self.stdout.omitted() + self.stderr.omitted() + self.pty.omitted() + self.dropped_bytes
    }
}

/// Collects output of `process_id` after `cursor`.
pub async fn collect(
    client: &ExecServerClient,
    process_id: &str,
    cursor: u64,
    window: Window,
) -> Result<Gathered, ClientError> {
    let deadline = Instant::now() + window.yield_time;
    let mut gathered = Gathered {
        stdout: Budgeted::new(window.max_bytes),
        stderr: Budgeted::new(window.max_bytes),
        pty: Budgeted::new(window.max_bytes),
        dropped_bytes: 0,
        exit_code: None,
        cursor,
        stopped: Stopped::Deadline,
    };
    let mut saw_output = false;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        // Once something was printed, a quiet spell ends the call early.
        let wait = if saw_output {
            remaining.min(window.quiet)
        } else {
            remaining
        };
        let read = client
            .read(ReadParams {
                process_id: process_id.to_string(),
                after_seq: gathered.cursor,
                max_bytes: Some(4 * 1024 * 1024),
                wait_ms: Some(wait.as_millis() as u64),
            })
            .await?;
        let got_output = !read.chunks.is_empty();
        gathered.dropped_bytes += read.dropped_bytes;
        for chunk in &read.chunks {
            gathered[chunk.stream].push(&chunk.chunk);
        }
        gathered.cursor = gathered.cursor.max(read.next_seq);
        // `nextSeq` past the last chunk means this answer reached the newest
        // output; only then is an exit final for us.
        let caught_up = read.chunks.last().is_none_or(|c| read.next_seq > c.seq);
        if read.exited && caught_up {
            gathered.exit_code = read.exit_code;
            gathered.stopped = Stopped::Exited;
            return Ok(gathered);
        }
        saw_output |= got_output;
        if !caught_up {
            continue; // More may be waiting: read again.
        }
        if Instant::now() >= deadline {
            gathered.stopped = Stopped::Deadline;
            return Ok(gathered);
        }
        if saw_output && !got_output {
            gathered.stopped = Stopped::Quiet;
            return Ok(gathered);
        }
    }
}

/// The text a model reads: status first, then each non-empty stream.
pub fn render(gathered: &Gathered, session_id: &str, wall_time: Duration) -> String {
    let mut text = String::new();
    match gathered.exit_code {
        Some(code) => text.push_str(&format!("exit_code: {code}\n")),
        None => text.push_str(&format!(
            "session_id: {session_id} (still running; call write_stdin to send input or to wait for more output)\n"
        )),
    }
    text.push_str(&format!("wall_time_ms: {}\n", wall_time.as_millis()));
    if gathered.omitted_bytes() > 0 {
        text.push_str(&format!(
            "omitted_bytes: {} (the middle of long output was cut; head and tail are kept)\n",
            gathered.omitted_bytes()
        ));
    }
    for (label, stream) in [
        ("stdout", &gathered.stdout),
        ("stderr", &gathered.stderr),
        ("terminal", &gathered.pty),
    ] {
        if !stream.is_empty() || stream.omitted() > 0 {
            text.push_str(&format!("--- {label} ---\n"));
            text.push_str(&stream.to_text());
            if !text.ends_with('\n') {
                text.push('\n');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use exec_server_client::ClientOptions;
    use exec_server_protocol::process::{StartParams, StdinKind};

    fn sh(script: &str) -> StartParams {
        StartParams {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            cwd: "/".into(),
            env: [("PATH".to_string(), "/usr/bin:/bin".to_string())].into(),
            stream_output: Some(false),
            ..Default::default()
        }
    }

    fn window(yield_ms: u64) -> Window {
        Window {
            yield_time: Duration::from_millis(yield_ms),
            quiet: Duration::from_millis(300),
            max_bytes: 1024,
        }
    }

    async fn client() -> ExecServerClient {
        ExecServerClient::connect_in_process(ClientOptions::default())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_fast_command_returns_its_output_and_exit_code() {
        let client = client().await;
        let process = client
            .start(sh("echo hello; echo oops >&2; exit 3"))
            .await
            .unwrap();
        let gathered = collect(&client, process.id(), 0, window(10_000))
            .await
            .unwrap();
        assert_eq!(gathered.stopped, Stopped::Exited);
        assert_eq!(gathered.exit_code, Some(3));
        assert_eq!(gathered.stdout.contents(), b"hello\n");
        assert_eq!(gathered.stderr.contents(), b"oops\n");
        let text = render(&gathered, "1", Duration::from_millis(5));
        assert!(text.starts_with("exit_code: 3\n"), "{text}");
        assert!(
            text.contains("--- stdout ---\nhello\n--- stderr ---\noops\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_prompt_waiting_for_input_returns_early_on_quiet() {
        let client = client().await;
        let mut params = sh("printf 'name? '; read -r name; echo hi $name");
        params.stdin = Some(StdinKind::Pipe);
        let process = client.start(params).await.unwrap();
        let started = std::time::Instant::now();
        let first = collect(&client, process.id(), 0, window(10_000))
            .await
            .unwrap();
        assert_eq!(first.stopped, Stopped::Quiet);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "did not wait out the window"
        );
        assert_eq!(first.stdout.contents(), b"name? ");
        process.write(&b"bob\n"[..]).await.unwrap();
        let second = collect(&client, process.id(), first.cursor, window(10_000))
            .await
            .unwrap();
        assert_eq!(
            second.stdout.contents(),
            b"hi bob\n",
            "continues from the cursor"
        );
        assert_eq!(second.exit_code, Some(0));
    }

    #[tokio::test]
    async fn a_silent_command_waits_out_the_window() {
        let client = client().await;
        let process = client.start(sh("sleep 30")).await.unwrap();
        let started = std::time::Instant::now();
        let gathered = collect(&client, process.id(), 0, window(400))
            .await
            .unwrap();
        assert_eq!(gathered.stopped, Stopped::Deadline);
        assert!(started.elapsed() >= Duration::from_millis(380));
        assert_eq!(gathered.exit_code, None);
        assert!(render(&gathered, "7", Duration::ZERO).starts_with("session_id: 7 (still running"));
        process.terminate(None).await.unwrap();
    }

    #[tokio::test]
    async fn long_output_keeps_head_and_tail_and_counts_the_cut() {
        let client = client().await;
        let process = client
            .start(sh(
                "echo BEGIN; head -c 200000 /dev/zero | tr '\\0' x; echo; echo END",
            ))
            .await
            .unwrap();
        let gathered = collect(&client, process.id(), 0, window(10_000))
            .await
            .unwrap();
        assert_eq!(gathered.exit_code, Some(0));
        let text = gathered.stdout.to_text();
        assert!(text.starts_with("BEGIN\n"), "{text}");
        assert!(text.ends_with("x\nEND\n"), "the tail survives: {text}");
        assert_eq!(gathered.omitted_bytes(), 6 + 200_000 + 1 + 4 - 1024);
        assert!(render(&gathered, "1", Duration::ZERO).contains("omitted_bytes: 198987"));
    }
}
