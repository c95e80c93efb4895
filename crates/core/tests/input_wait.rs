//! Input-wait detection against real programs: shells, REPLs and password
//! prompts on a PTY and on pipes are seen waiting; programs that print
//! without reading, or sleep in a read of something else, are not.

use std::time::Duration;

use bytes::Bytes;
use exec_server_core::{
    InputWait, Process, ProcessConfig, ProcessHandle, StdinMode, StdioMode, TerminalSize,
    spawn_process,
};

/// Long enough for a REPL to start on a loaded 2-core machine.
const START: Duration = Duration::from_secs(20);

fn config(argv: &[&str], stdio: StdioMode) -> ProcessConfig {
    let mut config = ProcessConfig::new(argv.iter().map(|a| a.to_string()).collect(), "/tmp");
    config.env = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("TERM".into(), "xterm".into()),
        ("HOME".into(), "/tmp".into()),
        ("PS1".into(), "PROMPT> ".into()),
    ];
    config.stdio = stdio;
    config
}

fn tty() -> StdioMode {
    StdioMode::Terminal {
        size: TerminalSize::default(),
    }
}

fn pipe() -> StdioMode {
    StdioMode::Pipes {
        stdin: StdinMode::Pipe,
    }
}

/// Starts a process with retention-only output (its event receiver
/// dropped), so it never blocks on output nobody reads.
async fn start(argv: &[&str], stdio: StdioMode) -> ProcessHandle {
    let Process { handle, events } = spawn_process(config(argv, stdio)).await.expect("spawn");
    drop(events);
    handle
}

/// Waits until the process is confirmed waiting, or panics after `limit`.
async fn assert_waits(process: &ProcessHandle, limit: Duration, what: &str) {
    if tokio::time::timeout(limit, process.until_waiting_for_input())
        .await
        .is_err()
    {
        panic!(
            "{what}: not seen waiting for input within {limit:?}; last look: {:?}",
            process.input_wait()
        );
    }
    assert_eq!(process.input_wait(), InputWait::Waiting, "{what}");
}

/// Watches for `period`: the process must never be confirmed waiting.
async fn assert_never_waits(process: &ProcessHandle, period: Duration, what: &str) {
    let waited = tokio::time::timeout(period, process.until_waiting_for_input()).await;
    assert!(waited.is_err(), "{what}: reported waiting for input");
}

/// Output retained so far, as text.
fn output(process: &ProcessHandle) -> String {
    let read = process.read_after(0, usize::MAX);
    let bytes: Vec<u8> = read.chunks.iter().flat_map(|c| c.data.to_vec()).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn kill(process: ProcessHandle) {
    process.kill_group().unwrap();
    process.wait().await;
}

#[tokio::test]
async fn an_interactive_bash_at_its_prompt_is_waiting_and_again_after_each_command() {
    let process = start(&["bash", "--norc", "--noprofile", "-i"], tty()).await;
    assert_waits(&process, START, "bash prompt").await;
    for (step, command) in ["cd /tmp\n", "pwd\n", "echo hello\n"]
        .into_iter()
        .enumerate()
    {
        process
            .write_stdin(Bytes::from_static(command.as_bytes()))
            .await
            .unwrap();
        assert_waits(&process, Duration::from_secs(10), command).await;
        // Waiting is reported only once the command ran and the next
        // prompt was printed, never while the input is still in transit.
        let text = output(&process);
        assert_eq!(
            text.matches("PROMPT> ").count(),
            step + 2,
            "{command:?}: {text:?}"
        );
        assert!(text.ends_with("PROMPT> "), "{command:?}: {text:?}");
    }
    assert!(output(&process).contains("hello"), "{}", output(&process));
    kill(process).await;
}

#[tokio::test]
async fn a_foreground_job_of_an_interactive_shell_is_what_counts() {
    let process = start(&["bash", "--norc", "--noprofile", "-i"], tty()).await;
    assert_waits(&process, START, "bash prompt").await;
    // `sleep` becomes the foreground group; bash waits for it, not for input.
    process
        .write_stdin(Bytes::from_static(b"sleep 3; echo done-sleeping\n"))
        .await
        .unwrap();
    assert_never_waits(
        &process,
        Duration::from_millis(1500),
        "sleep in the foreground",
    )
    .await;
    assert_waits(&process, Duration::from_secs(10), "prompt after the sleep").await;
    assert!(output(&process).contains("done-sleeping"));
    // `cat` in the foreground reads the terminal itself.
    process
        .write_stdin(Bytes::from_static(b"cat\n"))
        .await
        .unwrap();
    assert_waits(
        &process,
        Duration::from_secs(10),
        "cat reading the terminal",
    )
    .await;
    kill(process).await;
}

#[tokio::test]
async fn python_repl_on_a_terminal_is_waiting() {
    let process = start(&["python3", "-q", "-i"], tty()).await;
    assert_waits(&process, START, "python3 -i").await;
    assert!(output(&process).contains(">>>"), "{}", output(&process));
    process
        .write_stdin(Bytes::from_static(b"print(6 * 7)\n"))
        .await
        .unwrap();
    assert_waits(&process, Duration::from_secs(10), "python after print").await;
    assert!(output(&process).contains("42"));
    kill(process).await;
}

#[tokio::test]
async fn node_repl_on_a_terminal_is_waiting() {
    // Node waits in epoll_wait on a reopened terminal descriptor.
    let mut config = config(&["node", "-i"], tty());
    // Without this, node appends each line to $HOME/.node_repl_history on
    // a thread-pool thread just after its prompt is back: a look then finds
    // that thread running (busy for up to ~60 ms, measured), so the single
    // look below would race it. The file would also be shared between runs.
    config.env.push(("NODE_REPL_HISTORY".into(), String::new()));
    let Process {
        handle: process,
        events,
    } = spawn_process(config).await.expect("spawn");
    drop(events);
    assert_waits(&process, START, "node REPL").await;
    process
        .write_stdin(Bytes::from_static(b"6 * 7\r"))
        .await
        .unwrap();
    assert_waits(
        &process,
        Duration::from_secs(10),
        "node after an expression",
    )
    .await;
    assert!(output(&process).contains("42"), "{}", output(&process));
    kill(process).await;
}

#[tokio::test]
async fn a_password_prompt_with_echo_off_is_waiting() {
    // What sudo does: echo off, read the terminal.
    let script = "stty -echo; printf 'Password: '; read -r pw; stty echo; echo; echo got-${#pw}";
    let process = start(&["bash", "-c", script], tty()).await;
    assert_waits(&process, START, "stty -echo; read").await;
    process
        .write_stdin(Bytes::from_static(b"secret\n"))
        .await
        .unwrap();
    process.wait().await;
    assert!(output(&process).contains("got-6"), "{}", output(&process));
    assert!(!output(&process).contains("secret"), "echo was off");

    // getpass opens /dev/tty, a different descriptor for the same terminal.
    let script = "import getpass; print('len', len(getpass.getpass('Passphrase: ')))";
    let process = start(&["python3", "-c", script], tty()).await;
    assert_waits(&process, START, "getpass on /dev/tty").await;
    kill(process).await;
}

#[tokio::test]
async fn read_p_in_a_pipe_script_is_waiting_and_continues_after_input() {
    let script = "read -r -p 'name? ' name; echo hi $name; read -r again; echo bye";
    let process = start(&["bash", "-c", script], pipe()).await;
    assert_waits(&process, START, "read on a stdin pipe").await;
    process
        .write_stdin(Bytes::from_static(b"ada\n"))
        .await
        .unwrap();
    assert_waits(&process, Duration::from_secs(10), "the second read").await;
    assert!(output(&process).contains("hi ada"), "{}", output(&process));
    process.close_stdin().await.unwrap();
    process.wait().await;
}

#[tokio::test]
async fn a_progress_loop_that_never_reads_is_not_waiting() {
    let script =
        "i=0; while [ $i -lt 400 ]; do printf '\\rstep %d' $i; i=$((i+1)); sleep 0.005; done";
    for stdio in [tty(), pipe()] {
        let process = start(&["bash", "-c", script], stdio).await;
        assert_never_waits(&process, Duration::from_millis(1500), "progress loop").await;
        kill(process).await;
    }
}

#[tokio::test]
async fn a_sleep_in_a_read_of_something_else_is_not_waiting() {
    // `cat` reads the pipe from `sleep`, not the terminal or our stdin pipe.
    for stdio in [tty(), pipe()] {
        let process = start(&["bash", "-c", "sleep 30 | cat"], stdio).await;
        assert_never_waits(&process, Duration::from_millis(800), "cat reading a pipe").await;
        assert_eq!(process.input_wait(), InputWait::Busy);
        kill(process).await;
    }
}

#[tokio::test]
async fn a_process_without_input_never_waits() {
    let process = start(
        &["sh", "-c", "read -r x; sleep 30"],
        StdioMode::Pipes {
            stdin: StdinMode::Null,
        },
    )
    .await;
    assert!(matches!(process.input_wait(), InputWait::Unknown(_)));
    assert_never_waits(&process, Duration::from_millis(300), "stdin /dev/null").await;
    kill(process).await;
}

#[tokio::test]
async fn a_busy_thread_beside_a_reading_thread_is_not_waiting() {
    // The main thread reads stdin while another computes: the program is
    // not idle, so it is not reported as waiting until the work ends.
    let script = "import threading, time, sys\n\
                  def spin():\n    end = time.time() + 2\n    while time.time() < end: pass\n\
                  threading.Thread(target=spin).start()\n\
                  sys.stdin.readline()\n";
    let process = start(&["python3", "-c", script], pipe()).await;
    assert_never_waits(&process, Duration::from_millis(1000), "a spinning thread").await;
    assert_waits(&process, Duration::from_secs(10), "after the spin").await;
    kill(process).await;
}

#[tokio::test]
async fn a_write_given_up_while_the_stdin_queue_is_full_leaves_no_pending_input() {
    // The first write fills the whole (small) queue and stays in it while
    // the child sleeps; the second waits for room and is dropped. Only
    // queued writes count as input on its way, so once the child has read
    // the first one it is seen waiting at its `read`.
    let script = "sleep 1; head -c 300000 >/dev/null; read -r x";
    let mut config = config(&["bash", "-c", script], pipe());
    config.stdin_queue_bytes = 4096;
    let Process { handle, events } = spawn_process(config).await.expect("spawn");
    drop(events);
    handle
        .write_stdin(Bytes::from(vec![b'.'; 300_000]))
        .await
        .unwrap();
    let given_up =
        tokio::time::timeout(Duration::from_millis(200), handle.write_stdin("x\n".into())).await;
    assert!(given_up.is_err(), "the second write found room");
    assert_waits(&handle, START, "read after the queued bytes").await;
    kill(handle).await;
}
