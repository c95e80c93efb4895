"""Drives `exec-server mcp` with the official MCP Python SDK (`mcp` on PyPI).

Usage: python3 mcp_client.py PATH/TO/exec-server
Exits non-zero (with a traceback) on the first failed expectation.
Run by crates/cli/tests/mcp.rs with the Python of target/test-venv (made by
scripts/test), so the test command covers it.
"""

import os
import sys
import time

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

BINARY = sys.argv[1]
TRANSCRIPT = []


def text_of(result):
    return "".join(getattr(block, "text", "") for block in result.content)


async def call(session, name, args):
    started = time.monotonic()
    result = await session.call_tool(name, args)
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


async def scenarios(session):
    await session.initialize()

    # Tool listing with schemas.
    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == {"exec_command", "write_stdin", "read_output", "list_sessions", "kill_session"}, tools
    schema = getattr(tools["exec_command"], "input_schema", None) or getattr(tools["exec_command"], "inputSchema")
    assert {"cmd", "argv", "tty", "yield_time_ms", "max_output_bytes", "workdir", "env"} <= set(schema["properties"]), schema
    assert tools["write_stdin"].description and "session" in tools["write_stdin"].description

    # A short command: output and exit code.
    result, text, _ = await call(session, "exec_command", {"cmd": "echo hello; echo oops >&2; exit 3"})
    assert not result.is_error, text
    assert text.startswith("exit_code: 3\n"), text
    assert "--- stdout ---\nhello\n" in text and "--- stderr ---\noops\n" in text, text
    assert result.structured_content["exit_code"] == 3, result.structured_content

    # An interactive program on a terminal, across several calls.
    result, text, _ = await call(
        session, "exec_command", {"argv": ["python3", "-q", "-i"], "tty": True, "yield_time_ms": 5000}
    )
    session_id = result.structured_content["session_id"]
    assert session_id and ">>>" in text, text
    _, text, _ = await call(session, "write_stdin", {"session_id": session_id, "chars": "x = 6 * 7\n", "yield_time_ms": 5000})
    _, text, _ = await call(session, "write_stdin", {"session_id": session_id, "chars": "print(x)\n", "yield_time_ms": 5000})
    assert "42" in text, text
    result, text, _ = await call(session, "write_stdin", {"session_id": session_id, "chars": "exit()\n", "yield_time_ms": 5000})
    assert result.structured_content["exit_code"] == 0, text

    # Quiet after output returns early instead of sleeping out the window.
    result, text, elapsed = await call(
        session, "exec_command", {"cmd": "printf 'name? '; read -r name; echo hi $name", "yield_time_ms": 20000}
    )
    assert elapsed < 5, f"waited {elapsed}s for a prompt"
    prompt_session = result.structured_content["session_id"]
    assert "name? " in text, text
    _, text, _ = await call(session, "write_stdin", {"session_id": prompt_session, "chars": "ada\n"})
    assert "hi ada" in text and "exit_code: 0" in text, text

    # Head-and-tail truncation with the omitted count.
    result, text, _ = await call(session, "exec_command", {"cmd": "seq 1 100000", "max_output_bytes": 1000})
    assert text.startswith("exit_code: 0\n"), text[:200]
    assert "omitted_bytes: " in text, text[:300]
    omitted = result.structured_content["omitted_bytes"]
    assert omitted == 588895 - 1000, omitted
    assert "\n1\n2\n3\n" in text and text.rstrip().endswith("99999\n100000"), text[-200:]

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

    # A process still running when the client disconnects must die.
    result, text, _ = await call(session, "exec_command", {"cmd": "echo $$; exec sleep 100", "yield_time_ms": 1000})
    return int(result.structured_content["stdout"].split()[0])


async def main():
    params = StdioServerParameters(command=BINARY, args=["mcp"], env={"SHELL": "/bin/sh"}, cwd="/tmp")
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            survivor = await scenarios(session)
    deadline = time.monotonic() + 10
    while not process_gone(survivor):
        assert time.monotonic() < deadline, f"process {survivor} outlived the MCP client"
        await anyio.sleep(0.05)
    for name, args, text, elapsed in TRANSCRIPT:
        print(f"--> {name} {args}  ({elapsed * 1000:.0f} ms)")
        print("<-- " + text[:400].replace("\n", "\n    "))
    print(f"OK: {len(TRANSCRIPT)} tool calls")


anyio.run(main)
