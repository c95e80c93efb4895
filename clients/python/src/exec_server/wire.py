"""The wire shapes of protocol ``exec-server.v0`` that this client speaks.

One ``TypedDict`` per definition in the server's JSON Schema
(``schema/exec-server.schema.json``), with the names and camelCase keys the
server uses; ``METHODS`` and ``NOTIFICATIONS`` map method names to them.
The client's tests compare these against the committed schema, so a change
of the server's types that this file does not follow fails the tests.

Bytes travel as base64 strings (``chunk``, ``stdout``, ...).
"""

# No `from __future__ import annotations` here: TypedDict must see
# `NotRequired` at class creation to know which keys are optional.
import sys
from typing import Literal, TypedDict, Union

if sys.version_info >= (3, 11):
    from typing import NotRequired
else:  # pragma: no cover - exercised on Python 3.10 only
    from typing_extensions import NotRequired

__all__ = [
    "ClientCapabilities",
    "ClosedNotification",
    "EmptyResponse",
    "ExitedNotification",
    "InitializeParams",
    "InitializeResponse",
    "ListParams",
    "ListResponse",
    "METHODS",
    "NOTIFICATIONS",
    "OnDisconnect",
    "OutputChunk",
    "OutputNotification",
    "ProcessIdParams",
    "ProcessInfo",
    "ProcessNotification",
    "ProcessStream",
    "ReadParams",
    "ReadResponse",
    "ResizeParams",
    "ServerCapabilities",
    "ServerLimits",
    "SignalParams",
    "SignalResponse",
    "SnapshotResponse",
    "StartParams",
    "StartResponse",
    "StdinKind",
    "TerminalSize",
    "TerminateParams",
    "TerminateResponse",
    "WaitParams",
    "WaitReason",
    "WaitResponse",
    "WriteParams",
    "WriteResponse",
]

ProcessStream = Literal["stdout", "stderr", "pty"]
StdinKind = Literal["closed", "pipe"]
OnDisconnect = Literal["kill", "detach"]
WaitReason = Literal["exited", "matched", "quiet", "timeout", "inputWait"]
FilesystemMode = Literal["read-only", "workspace-write", "full"]
NetworkMode = Literal["none", "full"]
ReadOnlySubpathSupport = Literal["mountNamespace", "userNamespace", "unavailable"]


class SandboxParams(TypedDict):
    filesystem: NotRequired[FilesystemMode | None]
    network: NotRequired[NetworkMode | None]
    readOnlySubpaths: NotRequired[list[str] | None]
    readableRoots: NotRequired[list[str] | None]
    writableRoots: NotRequired[list[str] | None]


class SandboxEnforcement(TypedDict):
    abstractUnixScope: bool
    boundingSetCleared: bool
    capabilitiesDropped: bool
    landlockAbi: NotRequired[int | None]
    landlockNetwork: bool
    mountNamespace: bool
    noNewPrivs: bool
    seccomp: bool
    signalScope: bool


class SandboxApplied(TypedDict):
    enforcement: SandboxEnforcement
    filesystem: FilesystemMode
    network: NetworkMode
    readOnlyPaths: list[str]
    readableRoots: NotRequired[list[str] | None]
    tmpdir: NotRequired[str | None]
    writableRoots: list[str]


class SandboxSupport(TypedDict):
    boundingSet: bool
    filesystem: bool
    landlockAbi: NotRequired[int | None]
    readOnlySubpaths: ReadOnlySubpathSupport
    scopes: bool
    seccomp: bool


class SandboxInfo(TypedDict):
    policy: NotRequired[SandboxParams | None]
    support: SandboxSupport


class ClientCapabilities(TypedDict):
    binaryFrames: NotRequired[bool]


class ServerCapabilities(TypedDict):
    binaryFrames: NotRequired[bool]


class InitializeParams(TypedDict):
    clientName: NotRequired[str]
    resumeSessionId: NotRequired[str | None]
    capabilities: NotRequired[ClientCapabilities | None]


class FsLimits(TypedDict):
    maxReadBytes: int
    maxHandles: int
    maxWatches: int
    maxEntries: int


class ServerLimits(TypedDict):
    maxMessageBytes: int
    maxProcessesPerConnection: int
    retainedOutputBytes: int
    maxExitedRecords: int
    detachTtlMs: int
    fs: NotRequired[FsLimits | None]


class InitializeResponse(TypedDict):
    protocolVersion: str
    serverName: NotRequired[str | None]
    serverVersion: NotRequired[str | None]
    sessionId: NotRequired[str | None]
    resumed: NotRequired[bool]
    serverId: NotRequired[str | None]
    limits: NotRequired[ServerLimits | None]
    sandbox: NotRequired[SandboxInfo | None]
    capabilities: NotRequired[ServerCapabilities | None]


class TerminalSize(TypedDict):
    rows: int
    cols: int


class StartParams(TypedDict):
    processId: NotRequired[str | None]
    argv: list[str]
    cwd: str
    env: NotRequired[dict[str, str]]
    inheritEnv: NotRequired[bool]
    tty: NotRequired[bool]
    size: NotRequired[TerminalSize | None]
    stdin: NotRequired[StdinKind | None]
    arg0: NotRequired[str | None]
    timeoutMs: NotRequired[int | None]
    streamOutput: NotRequired[bool | None]
    labels: NotRequired[dict[str, str]]
    onDisconnect: NotRequired[OnDisconnect | None]
    detachTtlMs: NotRequired[int | None]
    sandbox: NotRequired[SandboxParams | None]


class StartResponse(TypedDict):
    processId: str
    pid: int
    sandbox: NotRequired[SandboxApplied | None]


class ProcessIdParams(TypedDict):
    processId: str


class EmptyResponse(TypedDict):
    pass


class WriteParams(TypedDict):
    processId: str
    chunk: str
    writeId: NotRequired[str | None]


class WriteResponse(TypedDict):
    accepted: bool


class ResizeParams(TypedDict):
    processId: str
    rows: int
    cols: int


class SignalParams(TypedDict):
    processId: str
    signal: str


class SignalResponse(TypedDict):
    delivered: bool


class TerminateParams(TypedDict):
    processId: str
    graceMs: NotRequired[int | None]


class TerminateResponse(TypedDict):
    running: bool


# ``match`` is a Python keyword only in statements; as a key it is fine.
WaitParams = TypedDict(
    "WaitParams",
    {
        "processId": str,
        "timeoutMs": NotRequired[int | None],
        "quietMs": NotRequired[int | None],
        "match": NotRequired[str | None],
        # Issue 16: match after this seq; end on an input wait ("inputWait").
        "afterSeq": NotRequired[int | None],
        "untilInputWait": NotRequired[bool],
    },
)


class WaitResponse(TypedDict):
    reason: WaitReason
    exited: bool
    exitCode: NotRequired[int | None]
    signal: NotRequired[str | None]
    timedOut: bool


class ReadParams(TypedDict):
    processId: str
    afterSeq: NotRequired[int]
    maxBytes: NotRequired[int | None]
    waitMs: NotRequired[int | None]
    # Issue 16: a long poll also ends when the process waits for input.
    untilInputWait: NotRequired[bool]


class OutputChunk(TypedDict):
    seq: int
    stream: ProcessStream
    chunk: str
    # The stream byte offset of the chunk's first byte, from servers that
    # report it (issue 10): exact gap accounting after a resume.
    offset: NotRequired[int]


class ReadResponse(TypedDict):
    chunks: list[OutputChunk]
    nextSeq: int
    droppedBytes: int
    exited: bool
    exitCode: NotRequired[int | None]
    closed: bool
    # SPEC section 7: the answer reached the newest output.
    complete: NotRequired[bool]
    # With untilInputWait: the read ended because the process waits for input.
    waitingForInput: NotRequired[bool | None]


class SnapshotResponse(TypedDict):
    stdout: NotRequired[str | None]
    stderr: NotRequired[str | None]
    terminal: NotRequired[str | None]
    screen: NotRequired[list[str] | None]
    truncated: bool
    exitCode: NotRequired[int | None]
    running: bool
    # The newest output seq the snapshot reflects; read on after it.
    seq: NotRequired[int]
    # PTY: the size the screen is rendered at, and bytes (base64) that
    # redraw it on a fresh terminal of that size.
    size: NotRequired[TerminalSize | None]
    screenAnsi: NotRequired[str | None]
    # PTY: true when the screen was rebuilt from retention after output it
    # needed was dropped (not exact).
    screenApproximate: NotRequired[bool | None]


class ListParams(TypedDict):
    labels: NotRequired[dict[str, str] | None]


class ProcessInfo(TypedDict):
    processId: str
    pid: int
    argv: list[str]
    tty: bool
    labels: dict[str, str]
    running: bool
    exitCode: NotRequired[int | None]


class ListResponse(TypedDict):
    processes: list[ProcessInfo]


class OutputNotification(TypedDict):
    processId: str
    seq: int
    stream: ProcessStream
    chunk: str


class ExitedNotification(TypedDict):
    processId: str
    seq: int
    exitCode: int
    signal: NotRequired[str | None]
    timedOut: bool


class ClosedNotification(TypedDict):
    processId: str


# Method name -> (params, result), for the methods this client calls.
METHODS: dict[str, tuple[type, type]] = {
    "initialize": (InitializeParams, InitializeResponse),
    "process/start": (StartParams, StartResponse),
    "process/write": (WriteParams, WriteResponse),
    "process/closeStdin": (ProcessIdParams, EmptyResponse),
    "process/resize": (ResizeParams, EmptyResponse),
    "process/signal": (SignalParams, SignalResponse),
    "process/terminate": (TerminateParams, TerminateResponse),
    "process/wait": (WaitParams, WaitResponse),
    "process/read": (ReadParams, ReadResponse),
    "process/snapshot": (ProcessIdParams, SnapshotResponse),
    "process/list": (ListParams, ListResponse),
    "process/release": (ProcessIdParams, EmptyResponse),
    "process/status": (ProcessIdParams, ProcessInfo),
}

# Notification name -> params, for the notifications this client handles.
NOTIFICATIONS: dict[str, type] = {
    "process/output": OutputNotification,
    "process/exited": ExitedNotification,
    "process/closed": ClosedNotification,
}

# What the server may send about a process.
ProcessNotification = Union[OutputNotification, ExitedNotification, ClosedNotification]
