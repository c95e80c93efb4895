"""Fixtures: the real ``exec-server`` binary, websocket servers on port 0,
and a helper that runs a coroutine with a deadline.

The binary is ``$EXEC_SERVER_BIN`` (``scripts/test`` sets it), else
``target/debug/exec-server`` of this repository. A missing binary fails the
tests; it never skips them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[3]
CLIENT_DIR = REPO / "clients" / "python"
T = TypeVar("T")
# A small, explicit environment for the processes the tests start.
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"}
DEADLINE = 90.0


def server_binary() -> str:
    binary = os.path.abspath(os.environ.get("EXEC_SERVER_BIN") or REPO / "target" / "debug" / "exec-server")
    if not os.access(binary, os.X_OK):
        pytest.fail(
            f"the exec-server binary {binary} is missing: run scripts/test (it builds it with cargo test), "
            "or `cargo build -p exec-server` and set EXEC_SERVER_BIN",
            pytrace=False,
        )
    return binary


@pytest.fixture(scope="session")
def binary() -> str:
    return server_binary()


@pytest.fixture(autouse=True)
def _binary_for_spawn_local(binary: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # spawn_local() without arguments finds the server through this.
    monkeypatch.setenv("EXEC_SERVER_BIN", binary)


def run(coroutine: Coroutine[Any, Any, T], timeout: float = DEADLINE) -> T:
    """Runs ``coroutine`` on a fresh event loop; fails after ``timeout``."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


class WsServer:
    """``exec-server --listen ws://127.0.0.1:0`` as a child process."""

    def __init__(self, binary: str, args: list[str], listen: str, env: dict[str, str] | None) -> None:
        self.process = subprocess.Popen(
            [binary, "--listen", listen, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        assert self.process.stderr is not None
        banner = self.process.stderr.readline().decode()
        urls = [word for word in banner.split() if word.startswith(("ws://", "wss://"))]
        if not urls:
            self.process.kill()
            raise AssertionError(f"no URL in the server's banner {banner!r}")
        self.url = urls[0]
        self.host, port = self.url.split("://", 1)[1].rsplit(":", 1)
        self.port = int(port)
        self.log: list[str] = []
        # Keep draining stderr so the server never blocks on logging.
        self._drain = threading.Thread(target=self._read_log, daemon=True)
        self._drain.start()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.decode(errors="replace"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._drain.join(5)


@pytest.fixture
def ws_server(binary: str) -> Iterator[Callable[..., WsServer]]:
    """Starts websocket servers (``ws_server("--flag", "value")``, with
    ``listen="wss://127.0.0.1:0"`` and ``env={...}`` if needed), all stopped
    at the end of the test."""
    servers: list[WsServer] = []

    def start(*args: str, listen: str = "ws://127.0.0.1:0", env: dict[str, str] | None = None) -> WsServer:
        server = WsServer(binary, list(args), listen, env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def process_gone(pid: int) -> bool:
    """True when ``pid`` is gone or a zombie waiting for its reaper."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")
