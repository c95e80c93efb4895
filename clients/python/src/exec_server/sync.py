"""A blocking wrapper over the asyncio client, for scripts and threads.

Each :class:`SyncClient` runs its own event loop on a background thread;
every method submits the matching coroutine there and waits for it. The
objects mirror :class:`~exec_server.Client` and
:class:`~exec_server.Process` method for method::

    from exec_server.sync import spawn_local

    with spawn_local() as client:
        result = client.run(["echo", "hi"])
        assert result.stdout == b"hi\\n"
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from . import wire
from .client import HANDLE_CAPACITY, Client, Connecting, Reconnect
from .client import connect as async_connect
from .client import spawn_local as async_spawn_local
from .process import Completed, Process, ProcessEvent, ProcessInfo, ReadResult, Snapshot, WaitResult
from .transport import DEFAULT_MAX_MESSAGE_BYTES

__all__ = ["SyncClient", "SyncProcess", "connect", "spawn_local"]

T = TypeVar("T")


class _LoopThread:
    """An event loop running on a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="exec-server loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a SyncClient method was called from its own event loop; use the asyncio client there")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class SyncProcess:
    """Blocking twin of :class:`~exec_server.Process`."""

    def __init__(self, loop: _LoopThread, process: Process) -> None:
        self._loop = loop
        self._process = process
        self.process_id = process.process_id
        self.pid = process.pid

    def __repr__(self) -> str:
        return f"<SyncProcess {self.process_id!r} pid={self.pid}>"

    def next_event(self, timeout: float | None = None) -> ProcessEvent | None:
        return self._loop.run(self._process.next_event(timeout))

    def events(self) -> Iterator[ProcessEvent]:
        """Every event in order, ending with ``Closed``."""
        while True:
            event = self.next_event()
            if event is None:
                return
            yield event

    def output(self, timeout: float | None = None) -> Completed:
        return self._loop.run(self._process.output(timeout))

    def write(self, data: bytes | str, *, write_id: str | None = None) -> None:
        self._loop.run(self._process.write(data, write_id=write_id))

    def close_stdin(self) -> None:
        self._loop.run(self._process.close_stdin())

    def resize(self, rows: int, cols: int) -> None:
        self._loop.run(self._process.resize(rows, cols))

    def signal(self, signal: str) -> bool:
        return self._loop.run(self._process.signal(signal))

    def terminate(self, grace: float | None = None) -> bool:
        return self._loop.run(self._process.terminate(grace))

    def wait(
        self,
        *,
        timeout: float | None = None,
        quiet: float | None = None,
        match: str | None = None,
    ) -> WaitResult:
        return self._loop.run(self._process.wait(timeout=timeout, quiet=quiet, match=match))

    def read(self, after_seq: int = 0, *, max_bytes: int | None = None, wait: float | None = None) -> ReadResult:
        return self._loop.run(self._process.read(after_seq, max_bytes=max_bytes, wait=wait))

    def snapshot(self) -> Snapshot:
        return self._loop.run(self._process.snapshot())

    def status(self) -> ProcessInfo:
        return self._loop.run(self._process.status())

    def release(self) -> None:
        self._loop.run(self._process.release())


class SyncClient:
    """Blocking twin of :class:`~exec_server.Client`; a context manager."""

    def __init__(self, loop: _LoopThread, client: Client) -> None:
        self._loop = loop
        self._client = client

    @property
    def session_id(self) -> str | None:
        return self._client.session_id

    @property
    def server_info(self) -> wire.InitializeResponse:
        return self._client.server_info

    def start(self, argv: Sequence[str], **options: Any) -> SyncProcess:
        """Same options as :meth:`exec_server.Client.start`."""
        return SyncProcess(self._loop, self._loop.run(self._client.start(argv, **options)))

    def run(self, argv: Sequence[str], *, input: bytes | str | None = None, **options: Any) -> Completed:
        """Same options as :meth:`exec_server.Client.run`."""
        return self._loop.run(self._client.run(argv, input=input, **options))

    def list(self, labels: Mapping[str, str] | None = None) -> list[ProcessInfo]:
        return self._loop.run(self._client.list(labels))

    def close(self) -> None:
        """Closes the connection and stops the event loop thread."""
        try:
            self._loop.run(self._client.close())
        finally:
            self._loop.stop()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _open(connecting: Connecting[Client]) -> SyncClient:
    loop = _LoopThread()
    try:
        client = loop.run(_await(connecting))
    except BaseException:
        loop.stop()
        raise
    return SyncClient(loop, client)


async def _await(connecting: Connecting[Client]) -> Client:
    return await connecting


def connect(
    url: str,
    *,
    token: str | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    reconnect: Reconnect | None = None,
    resume_session_id: str | None = None,
    client_name: str = "exec-server-python",
    open_timeout: float = 10.0,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    handle_capacity: int = HANDLE_CAPACITY,
) -> SyncClient:
    """Blocking :func:`exec_server.connect`."""
    return _open(
        async_connect(
            url,
            token=token,
            ca_file=ca_file,
            ssl_context=ssl_context,
            reconnect=reconnect,
            resume_session_id=resume_session_id,
            client_name=client_name,
            open_timeout=open_timeout,
            max_message_bytes=max_message_bytes,
            handle_capacity=handle_capacity,
        )
    )


def spawn_local(
    binary: str | os.PathLike[str] | None = None,
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    client_name: str = "exec-server-python",
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    handle_capacity: int = HANDLE_CAPACITY,
) -> SyncClient:
    """Blocking :func:`exec_server.spawn_local`."""
    return _open(
        async_spawn_local(
            binary,
            args,
            env=env,
            client_name=client_name,
            max_message_bytes=max_message_bytes,
            handle_capacity=handle_capacity,
        )
    )
