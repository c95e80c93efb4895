"""Errors raised by the client. All derive from :class:`ExecServerError`."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConnectionClosed",
    "ConnectionLost",
    "ExecServerError",
    "ProcessLost",
    "ProtocolError",
    "RpcError",
    "ServerUnavailable",
]


class ExecServerError(Exception):
    """Base class of every error this package raises."""


class RpcError(ExecServerError):
    """The server answered a request with a JSON-RPC error.

    ``code`` is the JSON-RPC code (-32600 invalid request, -32602 invalid
    params, -32603 internal error); ``message`` names the thing at fault,
    e.g. ``unknown process id build``.
    """

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class ConnectionClosed(ExecServerError):
    """The connection is gone and will not come back (closed by either side,
    or every reconnect attempt failed)."""


class ConnectionLost(ConnectionClosed):
    """The connection dropped while this request was in flight.

    The client may have resumed its session since, but it never sends a
    request twice: whether the server carried it out is unknown. Retry when
    the request is safe to repeat (``write`` is, with a ``write_id``).
    """


class ServerUnavailable(ConnectionClosed):
    """The server that owns the session cannot be reached: reconnecting
    failed until the policy gave up, or a balancer routed the resume to
    another server (the owner is down). ``server_id`` names the owner."""

    def __init__(self, server_id: str, reason: str) -> None:
        super().__init__(f"server {server_id} is unavailable: {reason}")
        self.server_id = server_id
        self.reason = reason

    def __reduce__(self) -> tuple[type[ServerUnavailable], tuple[str, str]]:
        # copy and pickle rebuild it from its fields, not its message.
        return (type(self), (self.server_id, self.reason))


class ProtocolError(ExecServerError):
    """The server sent something this client cannot understand."""


class ProcessLost(ExecServerError):
    """A process's events cannot continue: after a resume the server no
    longer knew the process (released, evicted, or its session expired)."""
