"""A short agent session against `exec-server mcp`, timed call by call.

Usage: python3 scripts/mcp_session.py PATH/TO/exec-server [ROUNDS]
Needs the official MCP Python SDK (`mcp`, see scripts/python-requirements.txt).

Drives a tty `bash` the way an agent does (pwd, cd, echo, a colored ls, a
`\\r` progress bar, `top -b -n1`, an interactive `top`), prints each call's
wall time, the bytes of text it returned and (when the server reports it)
the raw output bytes behind them, then the p50/max of the pwd/cd/echo steps
over ROUNDS rounds (default 10). The numbers in docs/DESIGN.md come from
here; run against an older binary it gives the "before" column.
"""

import statistics
import sys
import time

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

BINARY = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 10


def text_of(result):
    return "".join(getattr(block, "text", "") for block in result.content)


async def call(session, name, args, log=True):
    started = time.monotonic()
    result = await session.call_tool(name, args)
    elapsed = (time.monotonic() - started) * 1000
    text = text_of(result)
    if log:
        shown = args.get("chars", args.get("cmd", args.get("argv", "")))
        data = result.structured_content or {}
        raw = data.get("output_bytes")
        output = "".join(data.get(k) or "" for k in ("stdout", "stderr", "terminal"))
        output += "".join(row + "\n" for row in data.get("screen") or [])
        extra = f"  output {len(output.encode()):5} B of {raw} raw" if raw is not None else ""
        print(f"{name:12} {shown!r:44.44} {elapsed:7.1f} ms {len(text.encode()):6} B{extra}")
    return result, text, elapsed


async def main():
    params = StdioServerParameters(command=BINARY, args=["mcp"], env={"SHELL": "/bin/sh", "PATH": "/usr/bin:/bin"}, cwd="/")
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            result, _, _ = await call(
                session,
                "exec_command",
                {"argv": ["bash", "--norc", "--noprofile", "-i"], "tty": True, "yield_time_ms": 5000},
            )
            sid = result.structured_content["session_id"]
            steps = ["pwd\n", "cd /tmp\n", "echo hello\n"]
            extra = [
                "ls --color=always /usr\n",
                "for i in 1 2 3 4 5; do printf '\\rprogress %d%%' $((i*20)); sleep 0.05; done; echo\n",
                "top -b -n1 | head -12\n",
                "top -d 5\n",
                "q",
            ]
            for chars in steps + extra:
                _, text, _ = await call(session, "write_stdin", {"session_id": sid, "chars": chars, "yield_time_ms": 5000})
                print("    " + text[:300].replace("\n", "\n    "))
            times = []
            for _ in range(ROUNDS):
                for chars in steps:
                    _, _, elapsed = await call(session, "write_stdin", {"session_id": sid, "chars": chars, "yield_time_ms": 5000}, log=False)
                    times.append(elapsed)
            await call(session, "write_stdin", {"session_id": sid, "chars": "exit\n", "yield_time_ms": 5000})
    print(f"pwd/cd/echo steps: n={len(times)} p50={statistics.median(times):.1f} ms max={max(times):.1f} ms")


anyio.run(main)
