"""A started process (:class:`Process`), its events, and the results of the
calls made on it.

Events arrive in the order the server produced them: output chunks, then
:class:`Exited` after every byte the process wrote before exiting, then
:class:`Closed` last. After a resume, a :class:`Gap` says how many bytes
the server's retention dropped while the client was away; nothing else is
ever missing or repeated.
"""

from __future__ import annotations

import asyncio
import base64
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Union

from . import wire
from .errors import ConnectionClosed

if TYPE_CHECKING:
    from .client import Client

__all__ = [
    "Chunk",
    "Closed",
    "Completed",
    "Exited",
    "Gap",
    "Output",
    "Process",
    "ProcessEvent",
    "ProcessInfo",
    "ReadResult",
    "Snapshot",
    "WaitResult",
]

Stream = Literal["stdout", "stderr", "pty"]


@dataclass(frozen=True)
class Output:
    """A chunk of output."""

    seq: int
    """Position in the process's sequence (output and exit share it)."""
    stream: Stream
    data: bytes


@dataclass(frozen=True)
class Gap:
    """Bytes the server's retention dropped while this client was away.

    They are gone; the gap is reported, never hidden. ``stream`` names the
    stream when the server reports chunk offsets (then ``dropped_bytes`` is
    exact for that stream), else ``None``.
    """

    dropped_bytes: int
    stream: Stream | None = None


@dataclass(frozen=True)
class Exited:
    """The process exited; everything it wrote before came first."""

    seq: int
    exit_code: int
    """The exit status, or 128 + N after death by signal N."""
    signal: str | None
    """Name of the signal that killed it (``"SIGKILL"``), if one did."""
    timed_out: bool
    """Killed by its own ``timeout``."""


@dataclass(frozen=True)
class Closed:
    """All output delivered and the process reaped: the last event."""


ProcessEvent = Union[Output, Gap, Exited, Closed]


@dataclass(frozen=True)
class _Failure:
    """Ends a handle's events with an error (internal)."""

    error: Exception


class _Mailbox:
    """A handle's bounded event queue. ``put`` waits for room; ``put_final``
    (the end of the stream) never waits; an abandoned mailbox swallows
    everything."""

    def __init__(self, capacity: int) -> None:
        self._items: deque[ProcessEvent | _Failure] = deque()
        self._capacity = capacity
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.abandoned = False

    async def put(self, item: ProcessEvent) -> None:
        while len(self._items) >= self._capacity and not self.abandoned:
            self._writable.clear()
            await self._writable.wait()
        if not self.abandoned:
            self._items.append(item)
            self._readable.set()

    def put_final(self, item: ProcessEvent | _Failure) -> None:
        if not self.abandoned:
            self._items.append(item)
            self._readable.set()

    async def get(self) -> ProcessEvent | _Failure:
        while not self._items:
            self._readable.clear()
            await self._readable.wait()
        item = self._items.popleft()
        if len(self._items) < self._capacity:
            self._writable.set()
        return item

    def abandon(self) -> None:
        self.abandoned = True
        self._items.clear()
        self._writable.set()


@dataclass
class Completed:
    """Everything a process printed until it exited, and how it ended."""

    stdout: bytes = b""
    stderr: bytes = b""
    terminal: bytes = b""
    """Output of a process with a terminal (``tty=True``)."""
    exit_code: int = -1
    signal: str | None = None
    timed_out: bool = False
    dropped_bytes: int = 0
    """Bytes lost to retention during a disconnection (see :class:`Gap`)."""


@dataclass(frozen=True)
class WaitResult:
    """Why :meth:`Process.wait` returned, and the process's state then."""

    reason: wire.WaitReason
    exited: bool
    exit_code: int | None
    signal: str | None
    timed_out: bool


@dataclass(frozen=True)
class Chunk:
    """A chunk of retained output returned by :meth:`Process.read`."""

    seq: int
    stream: Stream
    data: bytes
    offset: int | None = None
    """Stream byte offset of the first byte, from servers that report it."""


@dataclass(frozen=True)
class ReadResult:
    """Retained output after a cursor (``process/read``)."""

    chunks: list[Chunk]
    next_seq: int
    """Pass as ``after_seq`` to continue."""
    dropped_bytes: int
    """Bytes after the cursor that retention had already dropped."""
    exited: bool
    exit_code: int | None
    closed: bool
    complete: bool | None
    """The answer reached the newest output (``None``: server does not say)."""


@dataclass(frozen=True)
class Snapshot:
    """Retained output and state of a process (``process/snapshot``)."""

    stdout: bytes | None
    stderr: bytes | None
    terminal: bytes | None
    screen: list[str] | None
    """For a process with a terminal: the rendered screen, one string per row."""
    truncated: bool
    exit_code: int | None
    running: bool


@dataclass(frozen=True)
class ProcessInfo:
    """One entry of :meth:`Client.list`."""

    process_id: str
    pid: int
    argv: list[str]
    tty: bool
    labels: dict[str, str] = field(default_factory=dict)
    running: bool = False
    exit_code: int | None = None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else max(0, round(seconds * 1000))


class Process:
    """A process started with :meth:`Client.start`.

    Its events go through a bounded queue: while nobody reads them, the
    client stops reading the connection, the server stops reading the
    process's output, and the process blocks on its writes, as with a pipe.
    Nothing is dropped to make room. Read the events (:meth:`events`,
    :meth:`output`), or start the process with ``stream_output=False`` and
    use :meth:`read`, :meth:`wait` and :meth:`snapshot` instead.
    """

    def __init__(
        self,
        client: Client,
        process_id: str,
        pid: int,
        events: _Mailbox | None,
    ) -> None:
        self._client = client
        self._events = events
        self._finished = False
        self.process_id = process_id
        """The process id (chosen by the client or assigned by the server)."""
        self.pid = pid
        """The OS pid, which is also its process group id."""

    def __repr__(self) -> str:
        return f"<Process {self.process_id!r} pid={self.pid}>"

    async def next_event(self, timeout: float | None = None) -> ProcessEvent | None:
        """The next event, or ``None`` after :class:`Closed`.

        Raises :class:`ConnectionClosed` when the connection ended for good
        before the process closed, :class:`ProcessLost` when the server forgot
        it during a disconnection, :class:`TimeoutError` after ``timeout``
        seconds without an event.
        """
        if self._events is None:
            raise RuntimeError(f"process {self.process_id} was started with stream_output=False")
        if self._finished:
            return None
        event = await asyncio.wait_for(self._events.get(), timeout)
        if isinstance(event, _Failure):
            self._finished = True
            raise event.error
        if isinstance(event, Closed):
            self._finished = True
        return event

    async def events(self) -> AsyncIterator[ProcessEvent]:
        """Every event in order, ending with :class:`Closed`."""
        while True:
            event = await self.next_event()
            if event is None:
                return
            yield event
            if isinstance(event, Closed):
                return

    async def output(self, timeout: float | None = None) -> Completed:
        """Reads events until the exit and returns what the process printed.

        Output that background jobs print after the exit is not waited for.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        completed = Completed()
        parts: dict[str, list[bytes]] = {"stdout": [], "stderr": [], "pty": []}
        while True:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            event = await self.next_event(left)
            if event is None or isinstance(event, Closed):
                raise ConnectionClosed(f"process {self.process_id} closed without an exit")
            if isinstance(event, Output):
                parts[event.stream].append(event.data)
            elif isinstance(event, Gap):
                completed.dropped_bytes += event.dropped_bytes
            else:
                completed.exit_code = event.exit_code
                completed.signal = event.signal
                completed.timed_out = event.timed_out
                break
        completed.stdout = b"".join(parts["stdout"])
        completed.stderr = b"".join(parts["stderr"])
        completed.terminal = b"".join(parts["pty"])
        return completed

    async def write(self, data: bytes | str, *, write_id: str | None = None) -> None:
        """Writes to the process's stdin (a pipe started with
        ``stdin="pipe"``) or terminal. A retry with a ``write_id`` the
        process already accepted is acknowledged without writing twice."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        params: wire.WriteParams = {"processId": self.process_id, "chunk": _b64(data)}
        if write_id is not None:
            params["writeId"] = write_id
        await self._client._call("process/write", params)

    async def close_stdin(self) -> None:
        """Pipe: closes it. Terminal: sends its end-of-file character."""
        params: wire.ProcessIdParams = {"processId": self.process_id}
        await self._client._call("process/closeStdin", params)

    async def resize(self, rows: int, cols: int) -> None:
        """Resizes the terminal (the process gets SIGWINCH)."""
        params: wire.ResizeParams = {"processId": self.process_id, "rows": rows, "cols": cols}
        await self._client._call("process/resize", params)

    async def signal(self, signal: str) -> bool:
        """Sends ``signal`` (``"SIGINT"``, ``"SIGTERM"``, ``"SIGKILL"``,
        ``"SIGHUP"``, ``"SIGQUIT"``, ``"SIGUSR1"``, ``"SIGUSR2"``) to the
        process group. False when the group no longer exists."""
        params: wire.SignalParams = {"processId": self.process_id, "signal": signal}
        result: wire.SignalResponse = await self._client._call("process/signal", params)
        return result["delivered"]

    async def terminate(self, grace: float | None = None) -> bool:
        """Without ``grace``: SIGKILL the group now. With it: SIGTERM now,
        SIGKILL after ``grace`` seconds. True if it was still running."""
        params: wire.TerminateParams = {"processId": self.process_id}
        if grace is not None:
            params["graceMs"] = _ms(grace)
        result: wire.TerminateResponse = await self._client._call("process/terminate", params)
        return result["running"]

    async def wait(
        self,
        *,
        timeout: float | None = None,
        quiet: float | None = None,
        match: str | None = None,
    ) -> WaitResult:
        """Returns at the first of: the exit (``reason == "exited"``), new
        output matching the regular expression ``match`` (``"matched"``), no
        new output for ``quiet`` seconds (``"quiet"``), ``timeout`` seconds
        (``"timeout"``). Without any of them it waits for the exit."""
        params: wire.WaitParams = {"processId": self.process_id}
        if quiet is not None:
            params["quietMs"] = _ms(quiet)
        if match is not None:
            params["match"] = match
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if deadline is not None:
                params["timeoutMs"] = _ms(max(0.0, deadline - loop.time()))
            result: wire.WaitResponse = await self._client._call("process/wait", params)
            # The server caps one wait (an hour by default); without a
            # timeout of our own, wait again.
            if result["reason"] != "timeout" or deadline is not None:
                return WaitResult(
                    reason=result["reason"],
                    exited=result["exited"],
                    exit_code=result.get("exitCode"),
                    signal=result.get("signal"),
                    timed_out=result["timedOut"],
                )

    async def read(
        self,
        after_seq: int = 0,
        *,
        max_bytes: int | None = None,
        wait: float | None = None,
    ) -> ReadResult:
        """Retained output with a seq above ``after_seq``; with ``wait``,
        waits up to that many seconds for something new."""
        params: wire.ReadParams = {"processId": self.process_id, "afterSeq": after_seq}
        if max_bytes is not None:
            params["maxBytes"] = max_bytes
        if wait is not None:
            params["waitMs"] = _ms(wait)
        result: wire.ReadResponse = await self._client._call("process/read", params)
        return _read_result(result)

    async def snapshot(self) -> Snapshot:
        """Retained output, the rendered screen of a terminal, and state."""
        params: wire.ProcessIdParams = {"processId": self.process_id}
        result: wire.SnapshotResponse = await self._client._call("process/snapshot", params)
        return Snapshot(
            stdout=_unb64(result.get("stdout")),
            stderr=_unb64(result.get("stderr")),
            terminal=_unb64(result.get("terminal")),
            screen=result.get("screen"),
            truncated=result["truncated"],
            exit_code=result.get("exitCode"),
            running=result["running"],
        )

    async def status(self) -> ProcessInfo:
        """What ``client.list()`` says about this process, for this one only."""
        params: wire.ProcessIdParams = {"processId": self.process_id}
        result: wire.ProcessInfo = await self._client._call("process/status", params)
        return _process_info(result)

    async def release(self) -> None:
        """Forgets an exited process and its retained output on the server."""
        params: wire.ProcessIdParams = {"processId": self.process_id}
        await self._client._call("process/release", params)
        self._client._forget(self.process_id)


def _read_result(result: wire.ReadResponse) -> ReadResult:
    return ReadResult(
        chunks=[
            Chunk(
                seq=chunk["seq"],
                stream=chunk["stream"],
                data=base64.b64decode(chunk["chunk"]),
                offset=chunk.get("offset"),
            )
            for chunk in result["chunks"]
        ],
        next_seq=result["nextSeq"],
        dropped_bytes=result["droppedBytes"],
        exited=result["exited"],
        exit_code=result.get("exitCode"),
        closed=result["closed"],
        complete=result.get("complete"),
    )


def _process_info(info: wire.ProcessInfo) -> ProcessInfo:
    return ProcessInfo(
        process_id=info["processId"],
        pid=info["pid"],
        argv=list(info["argv"]),
        tty=info["tty"],
        labels=dict(info["labels"]),
        running=info["running"],
        exit_code=info.get("exitCode"),
    )

