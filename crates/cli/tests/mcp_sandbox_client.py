"""Drives `exec-server mcp --sandbox workspace-write --writable-root WS` with
the official MCP Python SDK (`mcp` on PyPI).

Usage: python3 mcp_sandbox_client.py PATH/TO/exec-server WORKSPACE OUTSIDE PORT
Exits non-zero (with a traceback) on the first failed expectation.
Run by crates/cli/tests/mcp_sandbox.rs, so `cargo test` covers it.
"""

import os
import sys

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

BINARY, WORKSPACE, OUTSIDE, PORT = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]


def text_of(result):
    return "".join(getattr(block, "text", "") for block in result.content)


async def call(session, name, args):
    result = await session.call_tool(name, args)
    text = text_of(result)
    print(f"--> {name} {args}\n<-- " + text.replace("\n", "\n    "))
    return result, text


async def scenarios(session):
    await session.initialize()

    # Inside the workspace: works, and the result says the command ran confined.
    for tty in (False, True):
        result, text = await call(
            session, "exec_command", {"cmd": f"echo inside > {WORKSPACE}/inside-{int(tty)} && echo done", "tty": tty}
        )
        assert "exit_code: 0" in text and "done" in text, text
        assert "sandbox: filesystem workspace-write" in text, text
        assert "network: off" in text, text
        assert result.structured_content["sandbox"]["denial"] is None, result.structured_content
        assert open(f"{WORKSPACE}/inside-{int(tty)}").read() == "inside\n"

    # Outside the workspace: refused, and the result explains it in words a model can act on.
    for tty in (False, True):
        target = f"{OUTSIDE}/outside-{int(tty)}"
        result, text = await call(session, "exec_command", {"cmd": f"echo x > {target}", "tty": tty})
        assert not text.startswith("exit_code: 0"), text
        assert "--- sandbox ---" in text, text
        assert f"`{target}` is outside the places this command may write" in text, text
        assert WORKSPACE in text and "$TMPDIR" in text, text
        assert result.structured_content["sandbox"]["denial"], result.structured_content
        assert not os.path.exists(target)

    # .git stays read-only, and that is explained too.
    result, text = await call(session, "exec_command", {"cmd": "echo x >> .git/config", "workdir": WORKSPACE})
    assert "Read-only file system" in text, text
    assert "stays read-only in this sandbox" in text, text

    # A refused socket (a listener the test opened on 127.0.0.1).
    result, text = await call(
        session,
        "exec_command",
        {"cmd": f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {PORT}))'"},
    )
    assert "Operation not permitted" in text, text
    assert "network access is off" in text, text

    # Scratch space works: $TMPDIR is private and writable.
    result, text = await call(session, "exec_command", {"cmd": 'echo scratch > "$TMPDIR/s" && cat "$TMPDIR/s"'})
    assert "exit_code: 0" in text and "scratch" in text, text

    # An interactive shell under the sandbox: each step still returns when the prompt is back
    # (input-wait detection sees into the confined process), and a denial in a step is explained.
    result, text = await call(
        session,
        "exec_command",
        {"argv": ["bash", "--norc", "--noprofile", "-i"], "tty": True, "workdir": WORKSPACE,
         "yield_time_ms": 20000, "env": {"PS1": "$ "}},
    )
    data = result.structured_content
    assert data["waiting_for_input"] is True and data["stopped"] == "input_wait", text
    assert "sandbox: filesystem workspace-write" in text, text
    shell = data["session_id"]
    target = f"{OUTSIDE}/from-shell"
    result, text = await call(
        session, "write_stdin", {"session_id": shell, "chars": f"touch {target}\n", "yield_time_ms": 20000}
    )
    data = result.structured_content
    assert data["waiting_for_input"] is True and data["stopped"] == "input_wait", text
    assert f"`{target}` is outside the places this command may write" in text, text
    assert data["sandbox"]["denial"], data
    assert not os.path.exists(target)
    result, text = await call(session, "write_stdin", {"session_id": shell, "chars": "exit 0\n", "yield_time_ms": 20000})
    assert result.structured_content["exit_code"] == 0, text


async def main():
    params = StdioServerParameters(
        command=BINARY,
        args=["mcp", "--sandbox", "workspace-write", "--writable-root", WORKSPACE],
        env={"SHELL": "/bin/sh", "PATH": "/usr/local/bin:/usr/bin:/bin"},
        cwd=WORKSPACE,
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await scenarios(session)
    print("OK: sandboxed MCP scenarios passed")


anyio.run(main)
