"""The asyncio client: connection, dispatcher, resume.

One reader task per client owns the transport's receiving side. It matches
responses to requests and routes process notifications to their handles,
in order, each through a bounded mailbox: when a handle is not read, the
reader waits, the connection backs up, and the server stops reading that
process's output. Nothing is dropped to make room.

Exactly once, across a dropped connection. Each handle's route remembers
the last ``seq`` it delivered and, per stream, how many bytes. When the
websocket drops and the client has a :class:`Reconnect` policy, the reader:

1. fails every request in flight with :class:`ConnectionLost` (they are
   never sent twice) and holds new ones until the session is back;
2. reconnects with ``initialize {resumeSessionId}``;
3. puts every route in replay mode: live notifications for it are
   buffered, and a replay task reads what it missed with ``process/read``
   from its last seq, then flushes the buffer, skipping what it already
   delivered (by seq), and goes live.

A gap is reported as a :class:`Gap` event: exactly, per stream, when the
server gives chunk offsets (the first retained offset minus the bytes this
handle had for that stream), else from ``droppedBytes``. A live
notification whose seq skips ahead (a buffer that overflowed during a
replay) sends the route back to replay mode, so a skipped seq is read back,
never silently lost.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import json
import logging
import os
import ssl
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

from . import wire
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
    Closed,
    Completed,
    Exited,
    Gap,
    Output,
    Process,
    ProcessEvent,
    ProcessInfo,
    _Failure,
    _Mailbox,
    _process_info,
)
from .transport import DEFAULT_MAX_MESSAGE_BYTES, StdioTransport, Transport, WebSocketTransport

__all__ = ["Client", "Connecting", "Reconnect", "connect", "resume_url", "spawn_local"]

log = logging.getLogger("exec_server")

PROTOCOL_VERSION = "exec-server.v0"
# Events queued per handle before the reader waits for the handle's reader.
HANDLE_CAPACITY = 256
# Budget of one replay read: whole chunks, at least one.
REPLAY_READ_BYTES = 1024 * 1024
# Live output a replaying route buffers (base64 text); beyond it the
# notifications are dropped and read back from retention.
REPLAY_BUFFER_BYTES = 16 * 1024 * 1024
# Replay passes per route before giving up (each pass reads up to the
# newest output; a second one is needed only after a buffer overflow).
MAX_REPLAY_PASSES = 64
# Input written per `process/write`, well under the server's message limit.
WRITE_CHUNK_BYTES = 1024 * 1024

_OUTPUT = "process/output"
_EXITED = "process/exited"
_CLOSED = "process/closed"

T = TypeVar("T")


@dataclass(frozen=True)
class Reconnect:
    """How a websocket client resumes its session after the connection drops.

    Processes survive a drop only when started with
    ``on_disconnect="detach"``, which :meth:`Client.start` uses by default on
    a client with a reconnect policy.
    """

    attempts: int = 10
    """Connection attempts before giving up."""
    delay: float = 0.2
    """Seconds before each attempt."""
    give_up_after: float = 10.0
    """Seconds from the drop to giving up, whatever the attempts."""
    initialize_timeout: float = 10.0
    """Seconds to wait for the server's answer to ``initialize``."""
    target: str = "owner-path"
    """Where to resume. A session lives on one server (``serverId``);
    through a load balancer the resume must reach it. ``"owner-path"``:
    the connect URL with the owner's id appended to its path
    (``wss://lb/exec/`` resumes at ``wss://lb/exec/SERVER_ID/``), which a
    balancer routes on and a lone server accepts as its own.
    ``"same-url"``: the connect URL (sticky sessions). Any other string is
    a template whose ``{serverId}`` is replaced, e.g.
    ``"wss://{serverId}.exec.example.com/"``."""


def resume_url(connect_url: str, target: str, server_id: str | None) -> str:
    """The URL a session owned by ``server_id`` resumes at (see
    :attr:`Reconnect.target`); the connect URL when the server has no id."""
    if server_id is None or target == "same-url":
        return connect_url
    if target != "owner-path":
        return target.replace("{serverId}", server_id)
    scheme_end = connect_url.find("://")
    after_scheme = scheme_end + 3 if scheme_end >= 0 else 0
    cut = min((i for i in (connect_url.find("?"), connect_url.find("#")) if i >= 0), default=len(connect_url))
    base, query = connect_url[:cut], connect_url[cut:]
    slash = base.find("/", after_scheme)
    authority, path = (base, "") if slash < 0 else (base[:slash], base[slash:])
    path = path.rstrip("/")
    if path.rsplit("/", 1)[-1] == server_id:
        return f"{authority}{path}/{query}"
    return f"{authority}{path}/{server_id}/{query}"


class _Route:
    """Where one process's notifications go, and what was delivered."""

    def __init__(self, process_id: str, mailbox: _Mailbox) -> None:
        self.process_id = process_id
        self.mailbox = mailbox
        self.last_seq = 0
        # Bytes delivered per stream: the next chunk's offset, when the
        # server reports offsets.
        self.positions: dict[str, int] = {}
        self.exited = False
        self.replaying = False
        self.buffer: deque[tuple[str, dict[str, Any]]] = deque()
        self.buffer_bytes = 0
        self.overflow = False
        self.replay_task: asyncio.Task[None] | None = None


# Opens a transport; for a reconnect, with the session's server id.
_Opener = Callable[[str | None], Awaitable[Transport]]
_Hook = Callable[[Any], None]


class Client:
    """A connection to an exec-server. Make one with :func:`connect` or
    :func:`spawn_local`; close it with :meth:`close` or ``async with``."""

    def __init__(
        self,
        transport: Transport,
        info: wire.InitializeResponse,
        *,
        opener: _Opener | None,
        client_name: str,
        reconnect: Reconnect | None,
        default_cwd: str,
        handle_capacity: int = HANDLE_CAPACITY,
    ) -> None:
        self._transport = transport
        self._opener = opener
        self._client_name = client_name
        self._reconnect_policy = reconnect
        self._default_cwd = default_cwd
        self._handle_capacity = handle_capacity
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[Any], _Hook | None, str]] = {}
        self._routes: dict[str, _Route] = {}
        self._ready = asyncio.Event()
        self._ready.set()
        self._closing = False
        self._closed: ConnectionClosed | None = None
        self._loop = asyncio.get_running_loop()
        self.server_info: wire.InitializeResponse = info
        """The server's ``initialize`` result (the latest one after a resume)."""
        self.resumes = 0
        """How many times this client resumed its session."""
        self._reader = asyncio.create_task(self._read_loop(), name="exec-server reader")

    # -- connection --------------------------------------------------------

    @classmethod
    async def _open(
        cls,
        opener: _Opener,
        *,
        client_name: str,
        reconnect: Reconnect | None,
        resume_session_id: str | None,
        default_cwd: str,
        initialize_timeout: float = 10.0,
        handle_capacity: int = HANDLE_CAPACITY,
    ) -> Client:
        transport = await opener(None)
        try:
            info = await _handshake(transport, client_name, resume_session_id, initialize_timeout)
        except BaseException:
            await transport.close()
            raise
        return cls(
            transport,
            info,
            opener=opener if reconnect is not None else None,
            client_name=client_name,
            reconnect=reconnect,
            default_cwd=default_cwd,
            handle_capacity=handle_capacity,
        )

    @property
    def session_id(self) -> str | None:
        """This connection's session: a secret that resumes it
        (``connect(..., resume_session_id=...)``)."""
        return self.server_info.get("sessionId")

    @property
    def closed(self) -> bool:
        """The connection is gone for good."""
        return self._closed is not None

    async def close(self) -> None:
        """Closes the connection. The server kills the processes not started
        with ``on_disconnect="detach"``. Idempotent."""
        self._closing = True
        self._ready.set()  # Release requests waiting for a resume.
        try:
            await self._transport.close()
        finally:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), 10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._reader.cancel()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- the process API ---------------------------------------------------

    async def start(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = False,
        tty: bool = False,
        size: tuple[int, int] | None = None,
        stdin: wire.StdinKind | None = None,
        process_id: str | None = None,
        arg0: str | None = None,
        timeout: float | None = None,
        stream_output: bool = True,
        labels: Mapping[str, str] | None = None,
        on_disconnect: wire.OnDisconnect | None = None,
        detach_ttl: float | None = None,
    ) -> Process:
        """Starts a process (``process/start``).

        ``cwd``: absolute; default: this program's directory for a local
        server, ``/`` for a remote one. ``env``: the complete environment,
        or with ``inherit_env=True`` an overlay on the server's. ``tty``: a
        terminal of ``size`` ``(rows, cols)`` (default 24x80); else pipes,
        with a writable stdin when ``stdin="pipe"``. ``timeout``: seconds
        after which the server kills the process group. ``stream_output``:
        False for no events; read with :meth:`Process.read`,
        :meth:`Process.wait` and :meth:`Process.snapshot`. ``on_disconnect``:
        ``"detach"`` keeps the process running when the connection drops
        (the default with a reconnect policy), ``"kill"`` (the server's
        default) ends it with the connection.
        """
        params: wire.StartParams = {
            "argv": list(argv),
            "cwd": cwd if cwd is not None else self._default_cwd,
            "env": dict(env) if env else {},
            "inheritEnv": inherit_env,
            "tty": tty,
            "labels": dict(labels) if labels else {},
        }
        if process_id is not None:
            params["processId"] = process_id
        if size is not None:
            params["size"] = {"rows": size[0], "cols": size[1]}
        if stdin is not None:
            params["stdin"] = stdin
        if arg0 is not None:
            params["arg0"] = arg0
        if timeout is not None:
            params["timeoutMs"] = max(0, round(timeout * 1000))
        if not stream_output:
            params["streamOutput"] = False
        if on_disconnect is None and self._reconnect_policy is not None:
            on_disconnect = "detach"
        if on_disconnect is not None:
            params["onDisconnect"] = on_disconnect
        if detach_ttl is not None:
            params["detachTtlMs"] = max(0, round(detach_ttl * 1000))
        mailbox = _Mailbox(self._handle_capacity) if stream_output else None
        registered: list[str] = []

        def register(result: wire.StartResponse) -> None:
            # Runs in the reader before it reads the next message, so no
            # output of the new process can arrive before its route.
            if mailbox is not None:
                self._routes[result["processId"]] = _Route(result["processId"], mailbox)
                registered.append(result["processId"])

        try:
            result: wire.StartResponse = await self._call("process/start", params, hook=register)
        except BaseException:
            # Cancelled after the server answered: nobody will read the
            # events, so they must not hold up the connection.
            for registered_id in registered:
                self._abandon(registered_id, mailbox)
            raise
        process = Process(self, result["processId"], result["pid"], mailbox)
        if mailbox is not None:
            # A handle dropped unread must not hold up the connection.
            weakref.finalize(process, self._abandon_threadsafe, result["processId"], mailbox)
        return process

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | str | None = None,
        **options: Any,
    ) -> Completed:
        """Runs a process to its exit: starts it (same options as
        :meth:`start`), feeds ``input`` to its stdin and closes it, and
        returns what it printed and how it ended."""
        if input is not None and not options.get("tty"):
            options.setdefault("stdin", "pipe")
        process = await self.start(argv, **options)
        if input is None:
            return await process.output()
        data = input.encode("utf-8") if isinstance(input, str) else input

        async def feed() -> None:
            for start in range(0, len(data), WRITE_CHUNK_BYTES):
                await process.write(data[start : start + WRITE_CHUNK_BYTES])
            await process.close_stdin()

        # Output is read while input is written: a process that echoes
        # would otherwise fill its output and stop reading input.
        feeder = asyncio.create_task(feed())
        try:
            completed = await process.output()
        except BaseException:
            feeder.cancel()
            raise
        try:
            await feeder
        except RpcError:
            # The process exited before reading all of its input (stdin is
            # closed): that is its business, as with a pipe.
            pass
        return completed

    async def attach(self, process_id: str) -> Process:
        """A handle for a process of this session that this client did not
        start (e.g. after ``resume_session_id``): every call but the event
        stream (use :meth:`Process.read` and :meth:`Process.wait`)."""
        for info in await self.list():
            if info.process_id == process_id:
                return Process(self, process_id, info.pid, None)
        raise ExecServerError(f"unknown process id {process_id}")

    async def list(self, labels: Mapping[str, str] | None = None) -> list[ProcessInfo]:
        """The session's processes, running and exited; with ``labels``,
        only those carrying all of them."""
        params: wire.ListParams = {}
        if labels is not None:
            params["labels"] = dict(labels)
        result: wire.ListResponse = await self._call("process/list", params)
        return [_process_info(info) for info in result["processes"]]

    # -- requests ----------------------------------------------------------

    async def _call(self, method: str, params: Mapping[str, Any], hook: _Hook | None = None) -> Any:
        """Sends a request and returns its result; raises :class:`RpcError`
        for an error answer and :class:`ConnectionLost` when the connection
        dropped before the answer."""
        if not self._ready.is_set():
            await self._ready.wait()
        if self._closed is not None:
            raise copy.copy(self._closed)
        request_id = next(self._ids)
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending[request_id] = (future, hook, method)
        text = json.dumps({"id": request_id, "method": method, "params": params}, separators=(",", ":"))
        try:
            await self._transport.send(text)
        except ConnectionClosed as error:
            # The reader sees the same broken connection and fails the
            # request (or already did); whether it left is unknown.
            if not future.done():
                self._pending.pop(request_id, None)
                future.set_exception(ConnectionLost(f"{method}: {error}"))
        try:
            return await future
        finally:
            self._pending.pop(request_id, None)

    def _forget(self, process_id: str) -> None:
        route = self._routes.pop(process_id, None)
        if route is not None:
            route.mailbox.put_final(Closed())

    def _abandon(self, process_id: str, mailbox: _Mailbox | None) -> None:
        route = self._routes.get(process_id)
        if route is not None and route.mailbox is mailbox:
            del self._routes[process_id]
        if mailbox is not None:
            mailbox.abandon()

    def _abandon_threadsafe(self, process_id: str, mailbox: _Mailbox) -> None:
        # Finalizers run in whichever thread dropped the last reference.
        if self._loop.is_closed():
            return
        try:
            self._loop.call_soon_threadsafe(self._abandon, process_id, mailbox)
        except RuntimeError:
            pass  # The loop is shutting down.

    # -- the reader --------------------------------------------------------

    async def _read_loop(self) -> None:
        reason: ConnectionClosed = ConnectionClosed("the connection is closed")
        try:
            while True:
                try:
                    text = await self._transport.recv()
                except ProtocolError as error:
                    log.warning("closing the connection: %s", error)
                    await self._transport.close()
                    text = None
                if text is None:
                    if await self._resume():
                        continue
                    if self._closed is not None:
                        reason = self._closed
                    return
                if not text.strip():
                    continue
                try:
                    message = json.loads(text)
                except ValueError:
                    reason = ConnectionClosed(f"the server sent invalid JSON: {text[:200]!r}")
                    return
                if not isinstance(message, dict):
                    reason = ConnectionClosed(f"the server sent a non-object message: {text[:200]!r}")
                    return
                try:
                    await self._dispatch(message)
                except (KeyError, TypeError, ValueError) as error:
                    # A message with the right name and the wrong shape.
                    reason = ConnectionClosed(f"the server sent a malformed message ({error!r}): {text[:200]!r}")
                    log.warning("%s", reason)
                    return
        finally:
            self._finish(reason)
            await self._transport.close()

    async def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message and ("result" in message or "error" in message):
            entry = self._pending.pop(message["id"], None) if isinstance(message["id"], int) else None
            if entry is None:
                return  # The caller gave up (cancelled) or the id is not ours.
            future, hook, method = entry
            if "error" in message:
                error = message["error"] if isinstance(message["error"], dict) else {}
                if not future.done():
                    future.set_exception(
                        RpcError(
                            method,
                            int(error.get("code", 0)),
                            str(error.get("message", "")),
                            error.get("data"),
                        )
                    )
                return
            if hook is not None and not future.cancelled():
                hook(message["result"])
            if not future.done():
                future.set_result(message["result"])
            return
        name = message.get("method")
        params = message.get("params")
        if name in (_OUTPUT, _EXITED, _CLOSED) and isinstance(params, dict):
            route = self._routes.get(params.get("processId", ""))
            if route is not None:
                await self._route_live(route, str(name), params)

    async def _route_live(self, route: _Route, method: str, params: dict[str, Any]) -> None:
        if route.replaying:
            size = len(params.get("chunk", ""))
            if method == _CLOSED or route.buffer_bytes + size <= REPLAY_BUFFER_BYTES:
                route.buffer.append((method, params))
                route.buffer_bytes += size
            else:
                route.overflow = True  # Read back from retention by the replay.
            return
        if method == _CLOSED:
            await self._deliver_closed(route)
            return
        seq = int(params["seq"])
        if seq <= route.last_seq:
            return  # Already delivered by a replay.
        if seq > route.last_seq + 1:
            # Notifications were missed: read them back first.
            route.buffer.append((method, params))
            route.buffer_bytes += len(params.get("chunk", ""))
            self._begin_replay(route)
            return
        await self._deliver_notification(route, method, params)

    async def _deliver_notification(self, route: _Route, method: str, params: dict[str, Any]) -> None:
        seq = int(params["seq"])
        if method == _OUTPUT:
            data = base64.b64decode(params["chunk"])
            events = _account(route, seq, params["stream"], data, params.get("offset"))
            route.last_seq = seq
            for event in events:
                await route.mailbox.put(event)
            return
        route.last_seq = seq
        if route.exited:
            return
        route.exited = True
        await route.mailbox.put(
            Exited(
                seq=seq,
                exit_code=int(params["exitCode"]),
                signal=params.get("signal"),
                timed_out=bool(params.get("timedOut", False)),
            )
        )

    async def _deliver_closed(self, route: _Route) -> None:
        if self._routes.get(route.process_id) is route:
            del self._routes[route.process_id]
        route.mailbox.put_final(Closed())

    def _finish(self, reason: ConnectionClosed) -> None:
        """The connection is gone for good: fail what waits on it."""
        if self._closed is None:
            self._closed = reason
        self._ready.set()
        self._fail_pending(ConnectionLost(str(reason)))
        for route in list(self._routes.values()):
            if route.replay_task is not None:
                route.replay_task.cancel()
            route.mailbox.put_final(_Failure(copy.copy(reason)))
        self._routes.clear()

    def _fail_pending(self, error: ConnectionLost) -> None:
        pending, self._pending = self._pending, {}
        for future, _, method in pending.values():
            if not future.done():
                future.set_exception(ConnectionLost(f"{method}: {error}"))

    # -- resume ------------------------------------------------------------

    async def _resume(self) -> bool:
        """Called by the reader when the connection ended. Reconnects and
        resumes the session when allowed; False when the client is done."""
        self._ready.clear()
        self._fail_pending(ConnectionLost("the connection dropped while the request was in flight"))
        policy = self._reconnect_policy
        token = self.session_id
        if self._closing or policy is None or self._opener is None or token is None:
            self._ready.set()
            return False
        server_id = self.server_info.get("serverId")
        deadline = self._loop.time() + policy.give_up_after
        for attempt in range(1, policy.attempts + 1):
            await asyncio.sleep(policy.delay)
            if self._closing:
                break
            if self._loop.time() > deadline:
                self._closed = ServerUnavailable(
                    server_id or "?", f"no resume within {policy.give_up_after} s ({attempt - 1} attempts)"
                )
                break
            try:
                transport = await self._opener(server_id)
            except ConnectionClosed as error:
                log.info("reconnect attempt %d failed: %s", attempt, error)
                continue
            try:
                info = await _handshake(transport, self._client_name, token, policy.initialize_timeout)
            except RpcError as error:
                await transport.close()
                if "attached to another connection" in error.message:
                    # The server has not yet seen the old connection drop
                    # (the drop may be a cut upstream of a proxy): retry.
                    log.info("reconnect attempt %d: %s", attempt, error.message)
                    continue
                owner = error.data.get("ownerServerId") if isinstance(error.data, dict) else None
                if isinstance(owner, str):
                    # A balancer routed around the owner: it is down.
                    self._closed = ServerUnavailable(owner, f"the resume reached another server: {error.message}")
                else:
                    # Expired or unknown: nothing to come back to.
                    self._closed = ConnectionClosed(f"the server refused to resume the session: {error.message}")
                log.warning("%s", self._closed)
                break
            except (ConnectionClosed, ProtocolError, asyncio.TimeoutError) as error:
                await transport.close()
                log.info("reconnect attempt %d failed: %s", attempt, error)
                continue
            self._transport = transport
            self.server_info = info
            self.resumes += 1
            log.info("session resumed after %d attempt(s)", attempt)
            for route in self._routes.values():
                self._begin_replay(route)
            self._ready.set()
            return True
        else:
            self._closed = ServerUnavailable(server_id or "?", f"{policy.attempts} reconnect attempts failed")
        self._ready.set()
        return False

    def _begin_replay(self, route: _Route) -> None:
        route.replaying = True
        if route.replay_task is None or route.replay_task.done():
            route.replay_task = asyncio.create_task(self._replay(route), name=f"replay {route.process_id}")

    async def _replay(self, route: _Route) -> None:
        """Delivers what the route missed, then the live notifications
        buffered meanwhile, then hands the route back to the reader."""
        for _ in range(MAX_REPLAY_PASSES):
            route.overflow = False
            try:
                if await self._catch_up(route):
                    return  # Closed.
            except ConnectionLost:
                return  # Dropped again: the next resume replays.
            except ConnectionClosed:
                return  # The client is done; _finish ended the route.
            except RpcError as error:
                log.warning("cannot replay process %s after resuming: %s", route.process_id, error)
                self._routes.pop(route.process_id, None)
                route.mailbox.put_final(_Failure(ProcessLost(f"process {route.process_id}: {error.message}")))
                return
            # Flush in replay mode, so the reader keeps buffering behind us.
            hole = False
            while route.buffer and not hole:
                method, params = route.buffer.popleft()
                route.buffer_bytes -= len(params.get("chunk", ""))
                if method == _CLOSED:
                    if route.overflow:
                        route.buffer.appendleft((method, params))
                        hole = True
                        continue
                    await self._deliver_closed(route)
                    return
                seq = int(params["seq"])
                if seq <= route.last_seq:
                    continue
                if seq > route.last_seq + 1:
                    route.buffer.appendleft((method, params))
                    route.buffer_bytes += len(params.get("chunk", ""))
                    hole = True
                    continue
                await self._deliver_notification(route, method, params)
            if not hole and not route.overflow:
                route.replaying = False
                return
        self._routes.pop(route.process_id, None)
        route.mailbox.put_final(
            _Failure(ProcessLost(f"process {route.process_id}: output came faster than it could be replayed"))
        )

    async def _catch_up(self, route: _Route) -> bool:
        """Reads retained output after the route's last seq until the newest;
        True when that included the end (the route is closed)."""
        previous_dropped: int | None = None
        while True:
            params: wire.ReadParams = {
                "processId": route.process_id,
                "afterSeq": route.last_seq,
                "maxBytes": REPLAY_READ_BYTES,
            }
            read: wire.ReadResponse = await self._call("process/read", params)
            chunks = read["chunks"]
            complete = read.get("complete")
            if complete is None:
                # A budget-limited answer ends at its last chunk; one that
                # reached the newest output covers more (the exit) or is empty.
                complete = not chunks or read["nextSeq"] > chunks[-1]["seq"]
            if not any("offset" in chunk for chunk in chunks):
                # Without offsets, droppedBytes counts every dropped byte
                # after the cursor; report only what the previous read of
                # this pass did not.
                dropped = read["droppedBytes"]
                new = dropped if previous_dropped is None else max(0, dropped - previous_dropped)
                previous_dropped = dropped
                if new > 0:
                    await route.mailbox.put(Gap(new))
            for chunk in chunks:
                seq = chunk["seq"]
                data = base64.b64decode(chunk["chunk"])
                events = _account(route, seq, chunk["stream"], data, chunk.get("offset"))
                route.last_seq = max(route.last_seq, seq)
                for event in events:
                    await route.mailbox.put(event)
            if complete and read["exited"] and not route.exited:
                # The exit happened while we were away; its details come
                # from a wait that returns at once.
                wait_params: wire.WaitParams = {"processId": route.process_id, "timeoutMs": 0}
                waited: wire.WaitResponse = await self._call("process/wait", wait_params)
                route.exited = True
                exit_code = waited.get("exitCode")
                if exit_code is None:
                    exit_code = read.get("exitCode")
                await route.mailbox.put(
                    Exited(
                        seq=read["nextSeq"],
                        exit_code=exit_code if exit_code is not None else -1,
                        signal=waited.get("signal"),
                        timed_out=waited["timedOut"],
                    )
                )
            route.last_seq = max(route.last_seq, read["nextSeq"])
            if complete and read["closed"]:
                await self._deliver_closed(route)
                return True
            if complete:
                return False


def _account(route: _Route, seq: int, stream: str, data: bytes, offset: int | None) -> list[ProcessEvent]:
    """The events for a chunk, given what the route already delivered of
    its stream: a gap before it, or only its new bytes, or nothing."""
    events: list[ProcessEvent] = []
    position = route.positions.get(stream, 0)
    if offset is None:
        route.positions[stream] = position + len(data)
    else:
        end = offset + len(data)
        if end <= position and data:
            return events  # Delivered already.
        if offset > position:
            events.append(Gap(offset - position, cast(Any, stream)))
        elif offset < position:
            data = data[position - offset :]
        route.positions[stream] = max(position, end)
    events.append(Output(seq, cast(Any, stream), data))
    return events


async def _handshake(
    transport: Transport, client_name: str, resume_session_id: str | None, timeout: float
) -> wire.InitializeResponse:
    """``initialize`` then ``initialized`` on a fresh connection, before any
    reader runs on it."""
    params: wire.InitializeParams = {"clientName": client_name}
    if resume_session_id is not None:
        params["resumeSessionId"] = resume_session_id
    await transport.send(json.dumps({"id": 0, "method": "initialize", "params": params}))

    async def answer() -> dict[str, Any]:
        while True:
            text = await transport.recv()
            if text is None:
                raise ConnectionClosed("the server closed the connection during initialize")
            if not text.strip():
                continue
            message = json.loads(text)
            if isinstance(message, dict) and message.get("id") == 0:
                return message

    message = await asyncio.wait_for(answer(), timeout)
    if "error" in message:
        error = message["error"] if isinstance(message["error"], dict) else {}
        raise RpcError("initialize", int(error.get("code", 0)), str(error.get("message", "")), error.get("data"))
    info = cast(wire.InitializeResponse, message.get("result"))
    if not isinstance(info, dict) or info.get("protocolVersion") != PROTOCOL_VERSION:
        raise ProtocolError(f"expected protocol {PROTOCOL_VERSION}, the server answered {message!r}")
    if resume_session_id is not None and info.get("resumed") is False:
        raise ProtocolError("the server did not resume the session")
    await transport.send(json.dumps({"method": "initialized"}))
    return info


class Connecting(Generic[T]):
    """What :func:`connect` and :func:`spawn_local` return: await it for the
    client, or use it with ``async with`` to close the client at the end."""

    def __init__(self, factory: Callable[[], Awaitable[T]], close: Callable[[T], Awaitable[None]]) -> None:
        self._factory = factory
        self._close = close
        self._value: T | None = None

    def __await__(self) -> Generator[Any, None, T]:
        return self._factory().__await__()

    async def __aenter__(self) -> T:
        self._value = await self._factory()
        return self._value

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._value is not None:
            await self._close(self._value)


async def _close_client(client: Client) -> None:
    await client.close()


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
) -> Connecting[Client]:
    """Connects to a websocket server (``ws://`` or ``wss://``).

    ``token``: the server's bearer token. ``ca_file``: PEM certificates to
    trust for ``wss://`` (else the system's). ``reconnect``: resume the
    session after a dropped connection (see :class:`Reconnect`).
    ``resume_session_id``: take over the session of an earlier client (its
    ``session_id``), e.g. after this program restarted.
    """

    target = reconnect.target if reconnect is not None else "same-url"

    async def opener(server_id: str | None) -> Transport:
        return await WebSocketTransport.open(
            resume_url(url, target, server_id),
            token=token,
            ca_file=ca_file,
            ssl_context=ssl_context,
            open_timeout=open_timeout,
            max_message_bytes=max_message_bytes,
        )

    async def factory() -> Client:
        return await Client._open(
            opener,
            client_name=client_name,
            reconnect=reconnect,
            resume_session_id=resume_session_id,
            default_cwd="/",
            initialize_timeout=open_timeout,
            handle_capacity=handle_capacity,
        )

    return Connecting(factory, _close_client)


def spawn_local(
    binary: str | os.PathLike[str] | None = None,
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    client_name: str = "exec-server-python",
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    handle_capacity: int = HANDLE_CAPACITY,
) -> Connecting[Client]:
    """Starts ``exec-server`` (``binary``, else ``$EXEC_SERVER_BIN``, else
    ``PATH``) as a child and connects over its stdio. Closing the client
    ends the server and every process it started. ``args`` are server
    flags, e.g. ``["--retained-output-bytes", "4194304"]``."""

    async def opener(_server_id: str | None) -> Transport:
        return await StdioTransport.spawn(binary, args, env=env, max_message_bytes=max_message_bytes)

    async def factory() -> Client:
        return await Client._open(
            opener,
            client_name=client_name,
            reconnect=None,
            resume_session_id=None,
            default_cwd=os.getcwd(),
            handle_capacity=handle_capacity,
        )

    return Connecting(factory, _close_client)
