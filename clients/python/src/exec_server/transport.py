"""Transports: move JSON texts to and from a server, nothing else.

A transport is opened ready to use, sends one message per call, and
returns ``None`` from :meth:`Transport.recv` once the connection is gone
(closed by either side or broken). The client above it never sees sockets,
pipes or frames.

- :class:`WebSocketTransport`: ``ws://`` or ``wss://``, one message per text
  frame, an optional bearer token, an optional CA file for ``wss``.
- :class:`StdioTransport`: an ``exec-server`` child process spoken to over
  its stdin and stdout, one message per line. Closing it closes the child's
  stdin, which ends the server, which kills every process it started.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
from collections.abc import Mapping, Sequence
from typing import Protocol

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import WebSocketException

from .errors import ConnectionClosed, ProtocolError

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "StdioTransport",
    "Transport",
    "WebSocketTransport",
    "find_server_binary",
]

# Larger than any answer a server sends with default limits (a 1 MiB
# `process/read` is about 1.4 MB of JSON; a snapshot of 1 MiB streams about
# 3 MB), small enough that a broken peer cannot exhaust memory.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class Transport(Protocol):
    """A connection carrying one JSON message per send/recv."""

    async def send(self, text: str) -> None:
        """Sends one message. Raises :class:`ConnectionClosed` when gone."""
        ...

    async def recv(self) -> str | None:
        """The next message, or ``None`` once the connection is gone."""
        ...

    async def close(self) -> None:
        """Closes the connection; idempotent."""
        ...


class WebSocketTransport:
    """A websocket connection to ``exec-server --listen ws://...``."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        token: str | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        open_timeout: float = 10.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> WebSocketTransport:
        """Connects to ``url``.

        ``token`` is sent as ``Authorization: Bearer TOKEN``. For ``wss://``
        URLs, ``ca_file`` names a PEM file of certificates to trust instead
        of the system's; ``ssl_context`` replaces the whole TLS setup.
        """
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"unsupported URL {url!r}: expected ws://HOST:PORT or wss://HOST:PORT")
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        context = ssl_context
        if context is None and url.startswith("wss://"):
            context = ssl.create_default_context(cafile=os.fspath(ca_file) if ca_file else None)
        try:
            connection = await ws_connect(
                url,
                additional_headers=headers,
                ssl=context,
                open_timeout=open_timeout,
                max_size=max_message_bytes,
                # The server does not negotiate permessage-deflate.
                compression=None,
            )
        except (OSError, asyncio.TimeoutError, WebSocketException) as error:
            # WebSocketException covers a refused upgrade: 401 without the
            # right token, 403 for a refused origin.
            raise ConnectionClosed(f"cannot connect to {url}: {error}") from error
        return cls(connection)

    async def send(self, text: str) -> None:
        try:
            await self._connection.send(text)
        except WsConnectionClosed as error:
            raise ConnectionClosed("the websocket connection is closed") from error

    async def recv(self) -> str | None:
        try:
            message = await self._connection.recv()
        except WsConnectionClosed:
            return None
        if isinstance(message, bytes):
            try:
                return message.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ProtocolError("the server sent a binary frame that is not UTF-8") from error
        return message

    async def close(self) -> None:
        await self._connection.close()


def find_server_binary(binary: str | os.PathLike[str] | None = None) -> str:
    """The ``exec-server`` program to start: ``binary`` if given, else the
    ``EXEC_SERVER_BIN`` environment variable, else ``exec-server`` on
    ``PATH``."""
    if binary is not None:
        return os.fspath(binary)
    from_env = os.environ.get("EXEC_SERVER_BIN")
    if from_env:
        return from_env
    found = shutil.which("exec-server")
    if found is None:
        raise FileNotFoundError(
            "exec-server is not on PATH; install it (cargo install --locked --path crates/cli) "
            "or pass binary= or set EXEC_SERVER_BIN"
        )
    return found


class StdioTransport:
    """An ``exec-server`` child process, spoken to over its stdio."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._write_lock = asyncio.Lock()

    @classmethod
    async def spawn(
        cls,
        binary: str | os.PathLike[str] | None = None,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> StdioTransport:
        """Starts ``binary args...`` (a stdio server); its stderr (logs) is
        inherited."""
        program = find_server_binary(binary)
        process = await asyncio.create_subprocess_exec(
            program,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None,
            limit=max_message_bytes,
        )
        return cls(process)

    @property
    def pid(self) -> int:
        """The server's pid."""
        return self._process.pid

    async def send(self, text: str) -> None:
        stdin = self._process.stdin
        if stdin is None or stdin.is_closing():
            raise ConnectionClosed("the server's stdin is closed")
        async with self._write_lock:
            try:
                stdin.write(text.encode("utf-8") + b"\n")
                await stdin.drain()
            except (BrokenPipeError, ConnectionResetError) as error:
                raise ConnectionClosed("the server exited") from error

    async def recv(self) -> str | None:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            line = await stdout.readline()
        except ValueError as error:
            # asyncio reports a line over the limit as ValueError.
            raise ProtocolError(f"the server sent a message over the size limit: {error}") from error
        if not line:
            return None
        return line.decode("utf-8")

    async def close(self, timeout: float = 10.0) -> None:
        """Closes the server's stdin, so it kills its processes and exits;
        kills it if it has not exited after ``timeout`` seconds."""
        stdin = self._process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), timeout)
        except asyncio.TimeoutError:
            self._process.kill()
            await self._process.wait()
