"""Drives `exec-server mcp` with the official MCP Python SDK (`mcp` on PyPI).

Usage: python3 mcp_client.py PATH/TO/exec-server
Exits non-zero (with a traceback) on the first failed expectation.
Run by crates/cli/tests/mcp.rs with the Python of target/test-venv (made by
scripts/test), so the test command covers it.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

BINARY = sys.argv[1]
TRANSCRIPT = []
SAVINGS = []
# Cuts fall on line ends here, so the marker has a line of its own.
MARKER = re.compile(r"\[\.\.\. \d+ bytes omitted \.\.\.\]\n")


def text_of(result):
    return "".join(getattr(block, "text", "") for block in result.content)


async def call(session, name, args, **kwargs):
    started = time.monotonic()
    result = await session.call_tool(name, args, **kwargs)
    elapsed = time.monotonic() - started
    text = text_of(result)
    TRANSCRIPT.append((name, args, text, elapsed))
    return result, text, elapsed


def process_gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state in ("Z", "X")
    except FileNotFoundError:
        return True


def shown(stream_text):
    """Output bytes shown, without the omitted-bytes marker."""
    return len(MARKER.sub("", stream_text).encode())


async def expect_waiting(session, name, args, what):
    result, text, elapsed = await call(session, name, args)
    data = result.structured_content
    assert not result.is_error, text
    assert data["waiting_for_input"] is True, f"{what}: not reported waiting: {text}"
    assert data["stopped"] == "input_wait", f"{what}: {data['stopped']}"
    assert data["exit_code"] is None and data["session_id"], text
    return data, text, elapsed


async def interactive_programs(session):
    # A tty bash session: each step returns when the prompt is back, as text.
    data, text, _ = await expect_waiting(
        session,
        "exec_command",
        {"argv": ["bash", "--norc", "--noprofile", "-i"], "tty": True, "yield_time_ms": 20000, "env": {"PS1": "$ "}},
        "bash prompt",
    )
    shell = data["session_id"]
    for chars, expected in [("cd /tmp\n", "$ "), ("pwd\n", "/tmp\n"), ("echo hello\n", "hello\n")]:
        data, text, _ = await expect_waiting(
            session, "write_stdin", {"session_id": shell, "chars": chars, "yield_time_ms": 20000}, chars
        )
        terminal = data["terminal"]
        assert expected in terminal and terminal.endswith("$ "), f"{chars!r}: {terminal!r}"
        assert "\x1b" not in terminal and "\r" not in terminal, f"escapes left in {terminal!r}"
    result, text, _ = await call(session, "write_stdin", {"session_id": shell, "chars": "exit\n", "yield_time_ms": 20000})
    assert result.structured_content["exit_code"] == 0, text

    # python3 -i on a terminal, across several calls.
    data, text, _ = await expect_waiting(
        session, "exec_command", {"argv": ["python3", "-q", "-i"], "tty": True, "yield_time_ms": 20000}, "python3 -i"
    )
    python = data["session_id"]
    assert ">>>" in text, text
    await expect_waiting(session, "write_stdin", {"session_id": python, "chars": "x = 6 * 7\n", "yield_time_ms": 20000}, "python assignment")
    data, text, _ = await expect_waiting(session, "write_stdin", {"session_id": python, "chars": "print(x)\n", "yield_time_ms": 20000}, "python print")
    assert "42" in data["terminal"], text
    result, text, _ = await call(session, "write_stdin", {"session_id": python, "chars": "exit()\n", "yield_time_ms": 20000})
    assert result.structured_content["exit_code"] == 0, text

    # The node REPL (waits in epoll on its terminal).
    assert shutil.which("node"), "node is required (scripts/apt-packages.txt: nodejs)"
    data, text, _ = await expect_waiting(session, "exec_command", {"argv": ["node", "-i"], "tty": True, "yield_time_ms": 20000}, "node REPL")
    node = data["session_id"]
    data, text, _ = await expect_waiting(session, "write_stdin", {"session_id": node, "chars": "6 * 7\r", "yield_time_ms": 20000}, "node expression")
    assert "42" in data["terminal"], text
    await call(session, "kill_session", {"session_id": node, "grace_ms": 0})

    # `read -p` in a script on pipes: waiting with no output at all.
    data, text, _ = await expect_waiting(
        session,
        "exec_command",
        {"argv": ["bash", "-c", "read -r -p 'name? ' name; echo hi $name"], "open_stdin": True, "yield_time_ms": 20000},
        "read -p on a pipe",
    )
    assert data["stdout"] == "", "no prompt without a terminal"
    result, text, _ = await call(session, "write_stdin", {"session_id": data["session_id"], "chars": "ada\n"})
    assert "hi ada" in text and result.structured_content["exit_code"] == 0, text

    # A sudo-style password prompt: echo off, read the terminal.
    script = "stty -echo; printf 'Password: '; read -r pw; stty echo; echo; echo got ${#pw} chars"
    data, text, _ = await expect_waiting(session, "exec_command", {"argv": ["bash", "-c", script], "tty": True, "yield_time_ms": 20000}, "password prompt")
    assert data["terminal"] == "Password: ", data["terminal"]
    result, text, _ = await call(session, "write_stdin", {"session_id": data["session_id"], "chars": "hunter2\n"})
    assert "got 7 chars" in text and "hunter2" not in text, text

    # A progress loop on a terminal that never reads: not waiting; it runs
    # to its end and its carriage-return progress comes back resolved.
    script = "for i in $(seq 1 25); do printf '\\rstep %d/25' $i; sleep 0.04; done; echo; echo finished"
    result, text, _ = await call(session, "exec_command", {"cmd": script, "tty": True, "yield_time_ms": 20000})
    data = result.structured_content
    assert data["exit_code"] == 0 and data["waiting_for_input"] is False, text
    assert data["terminal"] == "step 25/25\nfinished\n", repr(data["terminal"])


async def clean_text(session):
    work = tempfile.mkdtemp(prefix="mcp-clean-")
    try:
        for name in ["alpha.txt", "beta", "gamma.tar.gz"]:
            open(os.path.join(work, name), "w").close()
        os.mkdir(os.path.join(work, "subdir"))
        run = os.path.join(work, "run.sh")
        open(run, "w").close()
        os.chmod(run, 0o755)
        cases = [
            ("ls --color=always", ["ls", "--color=always", work]),
            ("printf progress bar", ["bash", "-c", "for p in 10 40 70 100; do printf '\\rdownloading %3d%% [%-10s]' $p $(printf '#%.0s' $(seq 1 $((p/10)))); done; echo; echo ok"]),
            ("top -b -n1", ["top", "-b", "-n1", "-w", "120"]),
        ]
        for label, argv in cases:
            expected = subprocess.run(argv, capture_output=True, env={**os.environ, "TERM": "xterm-256color"}).stdout
            result, text, _ = await call(session, "exec_command", {"argv": argv, "raw": True, "max_output_bytes": 1048576})
            raw = result.structured_content["stdout"]
            if label != "top -b -n1":  # top's numbers change between runs
                assert raw.encode() == expected, f"{label}: raw differs:\n{raw!r}\n{expected!r}"
            result, text, _ = await call(session, "exec_command", {"argv": argv, "max_output_bytes": 1048576})
            clean = result.structured_content["stdout"]
            assert "\x1b" not in clean and "\r" not in clean, f"{label}: {clean!r}"
            SAVINGS.append((label, len(raw.encode()), len(clean.encode())))
            if label == "ls --color=always":
                assert "\x1b[" in raw, raw
                for name in ["alpha.txt", "beta", "gamma.tar.gz", "run.sh", "subdir"]:
                    assert name in clean, clean
            if label == "printf progress bar":
                assert clean == "downloading 100% [##########]\nok\n", repr(clean)
            if label == "top -b -n1":
                assert "load average" in clean and "PID" in clean, clean
        # The same on a terminal: the bash prompt session's bytes.
        result, text, _ = await call(session, "exec_command", {"argv": ["ls", "--color=always", work], "tty": True, "raw": True})
        raw = result.structured_content["terminal"]
        result, text, _ = await call(session, "exec_command", {"argv": ["ls", "--color=always", work], "tty": True})
        clean = result.structured_content["terminal"]
        assert "\x1b[" in raw and "\r\n" in raw and "\x1b" not in clean and "\r" not in clean, (raw, clean)
        SAVINGS.append(("ls --color=always on a tty", len(raw.encode()), len(clean.encode())))
    finally:
        shutil.rmtree(work)

    # A full-screen program is shown as its current screen.
    result, text, _ = await call(
        session, "exec_command", {"argv": ["bash", "-c", "printf '\\033[?1049h\\033[2J\\033[5;10HFULL SCREEN'; read -r x"], "tty": True, "yield_time_ms": 20000}
    )
    data = result.structured_content
    assert data["waiting_for_input"] is True, text
    assert data["screen"] and data["screen"][4] == " " * 9 + "FULL SCREEN", data["screen"]
    assert "FULL SCREEN" not in data["terminal"], "alternate-screen drawing is not repeated as text"
    await call(session, "kill_session", {"session_id": data["session_id"], "grace_ms": 0})


async def budgets(session):
    # One budget, cut at lines, the omitted middle readable by cursor.
    result, text, _ = await call(session, "exec_command", {"cmd": "seq 1 100000", "max_output_bytes": 1000})
    data = result.structured_content
    assert text.startswith("exit_code: 0\n"), text[:200]
    stdout = data["stdout"]
    assert shown(stdout) <= 1000, shown(stdout)
    head, tail = MARKER.split(stdout)
    head_lines = head.splitlines()
    tail_lines = tail.splitlines()
    assert head_lines == [str(i) for i in range(1, len(head_lines) + 1)], head
    first_tail = int(tail_lines[0])
    assert tail_lines == [str(i) for i in range(first_tail, 100001)], tail
    assert data["omitted_bytes"] == 588895 - shown(stdout), (data["omitted_bytes"], shown(stdout))

    # Both streams share the one budget.
    result, text, _ = await call(session, "exec_command", {"cmd": "seq 1 20000; seq 1 20000 >&2", "max_output_bytes": 2000})
    data = result.structured_content
    assert shown(data["stdout"]) + shown(data["stderr"]) <= 2000, (shown(data["stdout"]), shown(data["stderr"]))
    assert data["stdout"].startswith("1\n2\n") and data["stderr"].rstrip().endswith("20000"), text

    # The cut part stays readable: a session kept open, read again from the
    # omitted cursor.
    result, text, _ = await call(session, "exec_command", {"cmd": "seq 1 5000; exec sleep 30", "max_output_bytes": 400, "yield_time_ms": 1500})
    data = result.structured_content
    missing = int(MARKER.split(data["stdout"])[0].splitlines()[-1]) + 1
    assert data["omitted_cursor"] is not None, text
    result, text, _ = await call(session, "read_output", {"session_id": data["session_id"], "cursor": data["omitted_cursor"], "max_output_bytes": 100000})
    assert f"\n{missing}\n" in "\n" + result.structured_content["output"], text[:300]
    await call(session, "kill_session", {"session_id": data["session_id"], "grace_ms": 0})


async def waits_and_progress(session):
    # A dev server started in the background, waited for by pattern.
    result, text, _ = await call(session, "exec_command", {"cmd": "sleep 1; exec python3 -u -m http.server 0 --bind 127.0.0.1", "yield_time_ms": 100})
    server = result.structured_content["session_id"]
    assert server, text
    result, text, elapsed = await call(
        session, "write_stdin", {"session_id": server, "chars": "", "wait_for": r"Serving HTTP on \S+ port \d+", "yield_time_ms": 20000}
    )
    data = result.structured_content
    assert data["stopped"] == "matched" and data["session_id"] == server, text
    port = int(re.search(r"port (\d+)", data["stdout"]).group(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        assert response.status == 200
    # Output that was already seen does not match again: the window ends.
    result, text, elapsed = await call(session, "write_stdin", {"session_id": server, "chars": "", "wait_for": "Serving HTTP", "yield_time_ms": 700})
    assert result.structured_content["stopped"] == "deadline" and elapsed >= 0.6, text
    await call(session, "kill_session", {"session_id": server, "grace_ms": 0})

    # A pattern that never comes: the exit ends the wait and says so.
    result, text, _ = await call(session, "exec_command", {"cmd": "echo starting; sleep 0.3; exit 3", "wait_for": "never printed", "yield_time_ms": 20000})
    assert result.structured_content["stopped"] == "exited" and result.structured_content["exit_code"] == 3, text

    # Progress notifications during a long wait.
    updates = []

    async def on_progress(progress, total, message):
        updates.append((progress, total, message))

    result, text, _ = await call(session, "exec_command", {"cmd": "sleep 3; echo done", "yield_time_ms": 20000}, progress_callback=on_progress)
    assert result.structured_content["exit_code"] == 0, text
    assert len(updates) >= 2, updates
    assert all(total == 20000 for _, total, _ in updates), updates
    assert updates[-1][0] > updates[0][0], updates


async def non_interactive_defaults(session):
    # stdin is closed by default: a reader gets end-of-file, never hangs.
    result, text, elapsed = await call(session, "exec_command", {"cmd": "cat; read -r x; echo done", "yield_time_ms": 20000})
    assert result.structured_content["exit_code"] == 0 and "done" in text, text
    assert elapsed < 10, elapsed
    result, text, _ = await call(session, "exec_command", {"cmd": "sleep 30", "yield_time_ms": 100})
    sleeper = result.structured_content["session_id"]
    result, text, _ = await call(session, "write_stdin", {"session_id": sleeper, "chars": "x\n"})
    assert result.is_error and "open_stdin" in text, text
    await call(session, "kill_session", {"session_id": sleeper, "grace_ms": 0})
    # Pagers are off unless the call says otherwise.
    result, text, _ = await call(session, "exec_command", {"cmd": "echo $PAGER $GIT_PAGER $GIT_TERMINAL_PROMPT"})
    assert result.structured_content["stdout"] == "cat cat 0\n", text
    result, text, _ = await call(session, "exec_command", {"cmd": "echo $PAGER", "env": {"PAGER": "less"}})
    assert result.structured_content["stdout"] == "less\n", text
    # git log on a terminal prints instead of paging.
    repo = tempfile.mkdtemp(prefix="mcp-git-")
    try:
        git = "git init -q . && git -c user.email=a@b -c user.name=t commit -q --allow-empty -m first-commit && git log"
        result, text, _ = await call(session, "exec_command", {"cmd": git, "workdir": repo, "tty": True, "yield_time_ms": 20000})
        assert result.structured_content["exit_code"] == 0 and "first-commit" in text, text
    finally:
        shutil.rmtree(repo)


async def sessions_and_lifecycle(session):
    # A process that finishes between calls: its output is still there.
    result, text, _ = await call(session, "exec_command", {"cmd": "sleep 0.5; echo late-output; exit 4", "yield_time_ms": 100})
    late = result.structured_content["session_id"]
    assert late, text
    await anyio.sleep(1.0)
    result, text, _ = await call(session, "write_stdin", {"session_id": late, "chars": ""})
    assert "late-output" in text and result.structured_content["exit_code"] == 4, text
    result, text, _ = await call(session, "write_stdin", {"session_id": late, "chars": ""})
    assert result.is_error and "unknown session_id" in text, "the session is forgotten once fully read"

    # read_output from a cursor.
    result, text, _ = await call(session, "exec_command", {"cmd": "echo one; sleep 0.3; echo two; sleep 30", "yield_time_ms": 100})
    reader = result.structured_content["session_id"]
    await anyio.sleep(0.8)
    result, text, _ = await call(session, "read_output", {"session_id": reader, "cursor": 0})
    assert "one\ntwo\n" in text, text
    cursor = result.structured_content["next_cursor"]
    result, text, _ = await call(session, "read_output", {"session_id": reader, "cursor": cursor})
    assert result.structured_content["output"] == "", text

    # Catch up, so the session is silent from here on.
    _, text, _ = await call(session, "write_stdin", {"session_id": reader, "chars": "", "yield_time_ms": 300})
    assert "two" in text, text

    # Long waits do not block other calls.
    async def long_wait():
        _, _, elapsed = await call(session, "write_stdin", {"session_id": reader, "chars": "", "yield_time_ms": 3000})
        assert elapsed >= 2.5, f"the wait should have lasted its window, took {elapsed}s"

    async with anyio.create_task_group() as group:
        group.start_soon(long_wait)
        await anyio.sleep(0.3)
        _, text, elapsed = await call(session, "list_sessions", {})
        assert elapsed < 1.5, f"list_sessions waited {elapsed}s behind a long wait"
        assert f"session_id: {reader}" in text, text

    # Cancellation is honoured: a cancelled wait releases its session.
    with anyio.move_on_after(0.5):
        await call(session, "write_stdin", {"session_id": reader, "chars": "", "yield_time_ms": 20000})
    await anyio.sleep(0.2)
    _, text, elapsed = await call(session, "write_stdin", {"session_id": reader, "chars": "", "yield_time_ms": 300})
    assert elapsed < 5, f"the cancelled call still held the session ({elapsed}s)"

    # kill_session with graceful escalation.
    result, text, _ = await call(session, "kill_session", {"session_id": reader, "grace_ms": 500})
    assert result.structured_content["exit_code"] == 128 + 15, text
    _, text, _ = await call(session, "list_sessions", {})
    assert f"session_id: {reader} " not in text, text


async def scenarios(session):
    await session.initialize()

    # Tool listing with schemas.
    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == {"exec_command", "write_stdin", "read_output", "list_sessions", "kill_session"}, tools
    schema = getattr(tools["exec_command"], "input_schema", None) or getattr(tools["exec_command"], "inputSchema")
    expected = {"cmd", "argv", "tty", "open_stdin", "yield_time_ms", "wait_for", "max_output_bytes", "raw", "workdir", "env"}
    assert expected <= set(schema["properties"]), schema
    assert tools["write_stdin"].description and "session" in tools["write_stdin"].description

    # A short command: output and exit code.
    result, text, _ = await call(session, "exec_command", {"cmd": "echo hello; echo oops >&2; exit 3"})
    assert not result.is_error, text
    assert text.startswith("exit_code: 3\n"), text
    assert "--- stdout ---\nhello\n" in text and "--- stderr ---\noops\n" in text, text
    assert result.structured_content["exit_code"] == 3, result.structured_content

    await interactive_programs(session)
    await clean_text(session)
    await budgets(session)
    await waits_and_progress(session)
    await non_interactive_defaults(session)
    await sessions_and_lifecycle(session)

    # A process still running when the client disconnects must die.
    result, text, _ = await call(session, "exec_command", {"cmd": "echo $$; exec sleep 100", "yield_time_ms": 1000})
    return int(result.structured_content["stdout"].split()[0])


async def main():
    params = StdioServerParameters(
        command=BINARY, args=["mcp"], env={"SHELL": "/bin/sh", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}, cwd="/tmp"
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            survivor = await scenarios(session)
    deadline = time.monotonic() + 10
    while not process_gone(survivor):
        assert time.monotonic() < deadline, f"process {survivor} outlived the MCP client"
        await anyio.sleep(0.05)
    for name, args, text, elapsed in TRANSCRIPT:
        print(f"--> {name} {args}  ({elapsed * 1000:.0f} ms, {len(text.encode())} B)")
        print("<-- " + text[:400].replace("\n", "\n    "))
    for label, raw, clean in SAVINGS:
        print(f"bytes: {label}: raw {raw}, clean {clean} ({100 - 100 * clean // max(raw, 1)}% saved)")
    print(f"OK: {len(TRANSCRIPT)} tool calls")


anyio.run(main)
