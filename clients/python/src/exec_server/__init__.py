"""Python client for exec-server: run processes on a local or remote
exec-server and drive them (protocol ``exec-server.v0``).

asyncio first::

    import exec_server

    async with exec_server.spawn_local() as client:          # or connect("ws://...")
        result = await client.run(["sh", "-c", "echo hi; exit 3"])
        assert (result.stdout, result.exit_code) == (b"hi\\n", 3)

        shell = await client.start(["bash"], tty=True)
        await shell.write("echo ready\\n")
        await shell.wait(match="ready", timeout=5)
        print((await shell.snapshot()).screen)

and blocking, with the same names, in :mod:`exec_server.sync`.

Parts: :mod:`~exec_server.transport` (websocket, stdio child),
:mod:`~exec_server.client` (requests, event routing, resume after a dropped
connection), :mod:`~exec_server.process` (the process handle and its
events), :mod:`~exec_server.wire` (the protocol's types, checked against
the server's JSON Schema), :mod:`~exec_server.errors`.
"""

from .client import Client, Connecting, Reconnect, connect, resume_url, spawn_local
from .errors import (
    ConnectionClosed,
    ConnectionLost,
    ExecServerError,
    ProcessLost,
    ProtocolError,
    RpcError,
    ServerUnavailable,
)
from .process import (
    Chunk,
    Closed,
    Completed,
    Exited,
    Gap,
    Output,
    Process,
    ProcessEvent,
    ProcessInfo,
    ReadResult,
    Snapshot,
    WaitResult,
)

__version__ = "0.1.0"

__all__ = [
    "Chunk",
    "Client",
    "Closed",
    "Completed",
    "ConnectionClosed",
    "ConnectionLost",
    "Connecting",
    "ExecServerError",
    "Exited",
    "Gap",
    "Output",
    "Process",
    "ProcessEvent",
    "ProcessInfo",
    "ProcessLost",
    "ProtocolError",
    "ReadResult",
    "Reconnect",
    "RpcError",
    "ServerUnavailable",
    "Snapshot",
    "WaitResult",
    "__version__",
    "connect",
    "resume_url",
    "spawn_local",
]
