// Generated from schema/exec-server.schema.json by scripts/generate-types.mjs.
// Do not edit: change the Rust types, regenerate the schema, then run
// `node scripts/generate-types.mjs`.

/**
 * `fs/canonicalize` result.
 */
export interface CanonicalizeResponse {
  path: string;
  /**
   * The raw bytes, present only when the path is not UTF-8.
   */
  pathBase64?: string | null;
}

/**
 * What happened, in `fs/changed`.
 */
export type ChangeKind = "created" | "modified" | "deleted" | "metadata" | "renamed" | "overflow";

/**
 * `fs/changed` notification.
 */
export interface ChangedNotification {
  kind: ChangeKind;
  oldPath?: string | null;
  oldPathBase64?: string | null;
  path: string;
  pathBase64?: string | null;
  watchId: string;
}

/**
 * `initialize` params `capabilities`: optional features a client asks for.
 */
export interface ClientCapabilities {
  /**
   * Output (and the client's `process/write`) as binary websocket
   * frames (`schema/binary-frames.md`). Websocket only; ignored on stdio.
   */
  binaryFrames?: boolean;
}

/**
 * `fs/close`: closes a handle; a write handle commits its file, or with
 * `discard: true` throws it away (the target keeps its old content).
 */
export interface CloseParams {
  discard?: boolean | null;
  handleId: string;
}

/**
 * `process/closed`: the last notification of a process.
 */
export interface ClosedNotification {
  processId: string;
}

/**
 * `fs/copy` (files; trees with `recursive`), keeping modes.
 */
export interface CopyParams {
  destinationPath?: string | null;
  destinationPathBase64?: string | null;
  recursive?: boolean;
  sourcePath?: string | null;
  sourcePathBase64?: string | null;
}

/**
 * `fs/createDirectory`.
 */
export interface CreateDirectoryParams {
  /**
   * Permission bits, set exactly (no umask), also on an existing
   * directory (like `install -d -m`).
   */
  mode?: number | null;
  path?: string | null;
  pathBase64?: string | null;
  /**
   * Create missing parents; an existing directory is then fine.
   */
  recursive?: boolean | null;
}

export interface DirectoryEntry {
  fileName: string;
  /**
   * The name's raw bytes, present only when it is not UTF-8.
   */
  fileNameBase64?: string | null;
  /**
   * The entry (a symlink's target, when inside the roots) is a directory.
   */
  isDirectory: boolean;
  isFile: boolean;
  isSymlink?: boolean;
  /**
   * Permission bits (`st_mode & 07777`).
   */
  mode?: number;
  modifiedAtMs?: number;
  size?: number;
}

/**
 * The empty result `{}`.
 */
export type EmptyResponse = Record<string, never>;

export interface ExecExitedNotification {
  exitCode: number;
  sessionId: string;
}

export interface ExecOutputDeltaNotification {
  chunk: string;
  sessionId: string;
  stream: ExecOutputStream;
}

/**
 * Which output stream a chunk came from. PTY output is reported as `stdout`.
 */
export type ExecOutputStream = "stdout" | "stderr";

/**
 * `command/exec` params. `env` is the child's complete environment.
 */
export interface ExecParams {
  arg0?: string | null;
  argv: Array<string>;
  cwd: string;
  env?: Record<string, string>;
  tty?: boolean;
}

export interface ExecResponse {
  sessionId: string;
}

export interface ExecTerminateParams {
  sessionId: string;
}

export interface ExecTerminateResponse {
  running: boolean;
}

export interface ExecWriteParams {
  chunk: string;
  sessionId: string;
}

export interface ExecWriteResponse {
  accepted: boolean;
}

/**
 * `process/exited`: sent after all output the process wrote before exiting.
 */
export interface ExitedNotification {
  /**
   * The exit status, or 128 + N after death by signal N.
   */
  exitCode: number;
  processId: string;
  seq: number;
  signal?: string | null;
  timedOut: boolean;
}

/**
 * What the filesystem looks like to a sandboxed process. Ordered from the
 * narrowest to the widest.
 */
export type FilesystemMode = "read-only" | "workspace-write" | "full";

/**
 * The `fs/*` limits of the server, in the `initialize` result.
 */
export interface FsLimits {
  maxEntries: number;
  maxHandles: number;
  /**
   * Most bytes one `fs/readFile` or `fs/readBlock` returns, or one
   * `fs/writeBlock` carries.
   */
  maxReadBytes: number;
  maxWatches: number;
}

export interface InitializeParams {
  /**
   * What the client would like turned on for this connection.
   */
  capabilities?: ClientCapabilities | null;
  clientName?: string;
  /**
   * Resume the session (and its detached processes) with this id, taken
   * from an earlier `initialize` result.
   */
  resumeSessionId?: string | null;
}

export interface InitializeResponse {
  /**
   * The optional features on for this connection, answering the
   * client's `capabilities`.
   */
  capabilities?: ServerCapabilities | null;
  /**
   * The server's limits, so clients can size their requests.
   */
  limits?: ServerLimits | null;
  protocolVersion: string;
  /**
   * True when `resumeSessionId` was accepted.
   */
  resumed?: boolean;
  /**
   * What the server can confine, and its sandbox policy.
   */
  sandbox?: SandboxInfo | null;
  /**
   * This server's public name in a fleet (`--server-id`). A client
   * resumes its session through a balancer by routing to this name.
   */
  serverId?: string | null;
  serverName?: string | null;
  serverVersion?: string | null;
  /**
   * This connection's session: a secret that resumes it later.
   */
  sessionId?: string | null;
}

export interface ListParams {
  /**
   * Only processes carrying all these labels.
   */
  labels?: Record<string, string> | null;
}

export interface ListResponse {
  processes: Array<ProcessInfo>;
}

/**
 * `fs/getMetadata` result.
 */
export interface Metadata {
  /**
   * Birth time where the file system keeps one, else 0.
   */
  createdAtMs: number;
  isDirectory: boolean;
  isFile: boolean;
  isSymlink: boolean;
  mode?: number;
  modifiedAtMs: number;
  size: number;
}

/**
 * Which sockets a sandboxed process may open. Ordered narrowest first.
 */
export type NetworkMode = "none" | "full";

/**
 * `observe/list` params.
 */
export interface ObserveListParams {
  /**
   * Only processes carrying all these labels.
   */
  labels?: Record<string, string> | null;
}

export interface ObserveListResponse {
  /**
   * Sorted by owner, then process id.
   */
  processes: Array<ObservedProcess>;
  /**
   * More processes matched than one answer carries
   * ([`MAX_LISTED_PROCESSES`]); narrow with `labels`.
   */
  truncated?: boolean;
}

/**
 * One process of some session on the server.
 */
export interface ObservedProcess {
  argv: Array<string>;
  exitCode?: number | null;
  labels: Record<string, string>;
  /**
   * The process belongs to the caller's own session.
   */
  mine: boolean;
  /**
   * The owning session's public handle (not its secret id).
   */
  owner: string;
  /**
   * The owning session has a connection right now (false while its
   * detached processes wait to be resumed).
   */
  ownerAttached: boolean;
  /**
   * The `clientName` the owning session gave at `initialize`.
   */
  ownerClient: string;
  pid: number;
  processId: string;
  running: boolean;
  /**
   * PTY: the terminal's current size.
   */
  size?: TerminalSize | null;
  tty: boolean;
}

/**
 * The params of a `process/*` method, addressed to a process of the
 * session `owner` (a handle from `observe/list`).
 */
export interface ObservedProcessIdParams {
  /**
   * The owning session's public handle, from `observe/list`.
   */
  owner: string;
  processId: string;
}

/**
 * The params of a `process/*` method, addressed to a process of the
 * session `owner` (a handle from `observe/list`).
 */
export interface ObservedReadParams {
  /**
   * Return output with a greater seq (default 0: from the start).
   */
  afterSeq?: number;
  /**
   * Budget for the chunks returned; whole chunks only, at least one.
   */
  maxBytes?: number | null;
  /**
   * The owning session's public handle, from `observe/list`.
   */
  owner: string;
  processId: string;
  /**
   * While waiting (`waitMs`), also return as soon as the process is
   * blocked reading its input with its output drained; the result then
   * says `waitingForInput`. Linux only (see `process/wait`).
   */
  untilInputWait?: boolean;
  /**
   * When nothing is new, wait up to this long for output or the exit.
   */
  waitMs?: number | null;
}

/**
 * The params of a `process/*` method, addressed to a process of the
 * session `owner` (a handle from `observe/list`).
 */
export interface ObservedResizeParams {
  cols: number;
  /**
   * The owning session's public handle, from `observe/list`.
   */
  owner: string;
  processId: string;
  rows: number;
}

/**
 * The params of a `process/*` method, addressed to a process of the
 * session `owner` (a handle from `observe/list`).
 */
export interface ObservedSignalParams {
  /**
   * The owning session's public handle, from `observe/list`.
   */
  owner: string;
  processId: string;
  /**
   * One of SIGINT, SIGTERM, SIGKILL, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2.
   */
  signal: string;
}

/**
 * The params of a `process/*` method, addressed to a process of the
 * session `owner` (a handle from `observe/list`).
 */
export interface ObservedWriteParams {
  /**
   * Base64 bytes.
   */
  chunk: string;
  /**
   * The owning session's public handle, from `observe/list`.
   */
  owner: string;
  processId: string;
  /**
   * Idempotency key: a retry with an id this process already accepted is
   * acknowledged without writing twice.
   */
  writeId?: string | null;
}

/**
 * What happens to a process when its connection ends.
 */
export type OnDisconnect = "kill" | "detach";

/**
 * `fs/open`: a handle for block reads (default) or block writes.
 */
export interface OpenParams {
  /**
   * Add to the end instead of replacing (never atomic).
   */
  append?: boolean | null;
  /**
   * Default true: write a temp file in the same directory and rename it
   * over the target, so readers never see a partial file and a failed
   * write leaves the old content.
   */
  atomic?: boolean | null;
  /**
   * Create missing parent directories.
   */
  createParents?: boolean | null;
  /**
   * Client-chosen id (at most 256 bytes); the server assigns `file-N`
   * when absent.
   */
  handleId?: string | null;
  /**
   * Permission bits as a number (e.g. 420 for 0644). Default: an
   * existing file keeps its mode, a new one gets 0666 less the umask.
   */
  mode?: number | null;
  path?: string | null;
  pathBase64?: string | null;
  /**
   * `fsync` before the file replaces its target.
   */
  sync?: boolean | null;
  /**
   * Open for `fs/writeBlock`; the write takes effect at `fs/close`
   * (atomically, unless `atomic: false`).
   */
  write?: boolean | null;
}

export interface OpenResponse {
  handleId: string;
  /**
   * Read handles: the file's size when it was opened.
   */
  size?: number | null;
}

export interface OutputChunk {
  chunk: string;
  /**
   * Stream offset of the chunk's first byte: how many bytes the process
   * wrote to this stream before it. A reader that counts the bytes it
   * has per stream knows exactly how many it missed before this chunk
   * (offset minus its count). Absent from servers that predate it.
   */
  offset?: number;
  seq: number;
  stream: ProcessStream;
}

/**
 * `process/output`.
 */
export interface OutputNotification {
  chunk: string;
  processId: string;
  seq: number;
  stream: ProcessStream;
}

/**
 * A params struct that is just a path (`getMetadata`, `canonicalize`).
 */
export interface PathParams {
  /**
   * Absolute path (UTF-8).
   */
  path?: string | null;
  /**
   * The path's raw bytes, for names that are not UTF-8.
   */
  pathBase64?: string | null;
}

/**
 * Params of methods that take only a process id (`closeStdin`,
 * `snapshot`, `release`).
 */
export interface ProcessIdParams {
  processId: string;
}

export interface ProcessInfo {
  argv: Array<string>;
  exitCode?: number | null;
  labels: Record<string, string>;
  pid: number;
  processId: string;
  running: boolean;
  tty: boolean;
}

/**
 * Which stream a chunk belongs to.
 */
export type ProcessStream = "stdout" | "stderr" | "pty";

/**
 * `fs/readBlock`: up to `len` bytes at `offset` of a read handle.
 */
export interface ReadBlockParams {
  handleId: string;
  len: number;
  offset: number;
}

export interface ReadBlockResponse {
  chunk: string;
  /**
   * The block reaches the end of the file.
   */
  eof: boolean;
}

/**
 * `fs/readDirectory`.
 */
export interface ReadDirectoryParams {
  /**
   * With `recursive`: levels to list, 1 = only the directory's entries.
   */
  maxDepth?: number | null;
  /**
   * Stop after this many entries (at most the server's `maxEntries`)
   * and set `truncated`.
   */
  maxEntries?: number | null;
  path?: string | null;
  pathBase64?: string | null;
  /**
   * List subdirectories too (breadth first, never through symlinks);
   * `fileName` is then the path below the listed directory.
   */
  recursive?: boolean | null;
}

export interface ReadDirectoryResponse {
  entries: Array<DirectoryEntry>;
  /**
   * The entry cap ended the listing early.
   */
  truncated?: boolean;
}

/**
 * `fs/readFile`: the whole file, or `length` bytes from `offset`.
 */
export interface ReadFileParams {
  /**
   * At most this many bytes (fewer at the end of the file); absent: to
   * the end. Either way at most the server's `maxReadBytes`.
   */
  length?: number | null;
  /**
   * Start here (default 0).
   */
  offset?: number | null;
  path?: string | null;
  pathBase64?: string | null;
}

export interface ReadFileResponse {
  dataBase64: string;
}

export type ReadOnlySubpathSupport = "mountNamespace" | "userNamespace" | "unavailable";

export interface ReadParams {
  /**
   * Return output with a greater seq (default 0: from the start).
   */
  afterSeq?: number;
  /**
   * Budget for the chunks returned; whole chunks only, at least one.
   */
  maxBytes?: number | null;
  processId: string;
  /**
   * While waiting (`waitMs`), also return as soon as the process is
   * blocked reading its input with its output drained; the result then
   * says `waitingForInput`. Linux only (see `process/wait`).
   */
  untilInputWait?: boolean;
  /**
   * When nothing is new, wait up to this long for output or the exit.
   */
  waitMs?: number | null;
}

export interface ReadResponse {
  chunks: Array<OutputChunk>;
  /**
   * All output delivered and the process reaped.
   */
  closed: boolean;
  /**
   * The answer reached the newest output: nothing after `nextSeq`
   * existed when it was made. False when `maxBytes` cut it short: read
   * again from `nextSeq`. (Absent from older servers; read as false.)
   */
  complete?: boolean;
  /**
   * Bytes of the seqs this answer covers (after `afterSeq`, up to
   * `nextSeq`) that retention had already dropped. Reading on from
   * `nextSeq` never counts a byte twice; for gaps older than about a
   * thousand evictions the count is approximate (see DESIGN.md), while
   * chunk `offset`s are always exact.
   */
  droppedBytes: number;
  exitCode?: number | null;
  exited: boolean;
  /**
   * Pass as `afterSeq` to continue: the highest seq this answer covers
   * (including the exit once it is reported).
   */
  nextSeq: number;
  /**
   * Only with `untilInputWait`: true when this read returned because the
   * process is waiting for input (no new output came with it).
   */
  waitingForInput?: boolean | null;
}

/**
 * `fs/remove`.
 */
export interface RemoveParams {
  /**
   * A missing path is success.
   */
  force?: boolean | null;
  path?: string | null;
  pathBase64?: string | null;
  /**
   * Remove a directory with its content.
   */
  recursive?: boolean | null;
}

/**
 * `fs/rename`: within one file system, replacing the destination.
 */
export interface RenameParams {
  destinationPath?: string | null;
  destinationPathBase64?: string | null;
  sourcePath?: string | null;
  sourcePathBase64?: string | null;
}

export interface ResizeParams {
  cols: number;
  processId: string;
  rows: number;
}

/**
 * `process/start` result `sandbox`: the confinement actually applied.
 * Absent for an unconfined process.
 */
export interface SandboxApplied {
  enforcement: SandboxEnforcement;
  filesystem: FilesystemMode;
  network: NetworkMode;
  /**
   * Absolute paths kept read-only inside the writable roots.
   */
  readOnlyPaths: Array<string>;
  /**
   * Canonical readable roots, when reads are restricted.
   */
  readableRoots?: Array<string> | null;
  /**
   * The private temporary directory, the child's `TMPDIR`; removed when
   * the process is closed.
   */
  tmpdir?: string | null;
  /**
   * Canonical writable roots (`workspace-write`).
   */
  writableRoots: Array<string>;
}

/**
 * The kernel mechanisms that confine a process.
 */
export interface SandboxEnforcement {
  /**
   * Abstract `AF_UNIX` sockets outside the sandbox are refused (ABI ≥ 6,
   * network `none`).
   */
  abstractUnixScope: boolean;
  /**
   * The capability bounding set is empty too.
   */
  boundingSetCleared: boolean;
  /**
   * Effective, permitted, inheritable and ambient capabilities are empty.
   */
  capabilitiesDropped: boolean;
  /**
   * Landlock ABI the ruleset was built for; absent when Landlock is not
   * used (filesystem `full` on a kernel without it).
   */
  landlockAbi?: number | null;
  /**
   * TCP bind/connect also refused by Landlock (ABI ≥ 4, network `none`).
   */
  landlockNetwork: boolean;
  /**
   * Read-only subpaths are enforced by a read-only bind mount in a
   * private mount namespace.
   */
  mountNamespace: boolean;
  noNewPrivs: boolean;
  /**
   * The seccomp filter (sockets, io_uring, ptrace, namespaces, …).
   */
  seccomp: boolean;
  /**
   * Signals to processes outside the sandbox are refused (ABI ≥ 6).
   */
  signalScope: boolean;
}

/**
 * `initialize` result `sandbox`.
 */
export interface SandboxInfo {
  /**
   * The server's policy (`--sandbox`): the default for every process,
   * `command/exec` included, and the ceiling for requests. Absent: a
   * process is confined only when it asks.
   */
  policy?: SandboxParams | null;
  support: SandboxSupport;
}

/**
 * `process/start` `sandbox`: confine the process and all its descendants.
 * `null` or absent: the server's policy (`--sandbox`), or no confinement
 * when the server has none. With a server policy a request may only
 * narrow it; asking for more is refused with an error naming the flag.
 */
export interface SandboxParams {
  /**
   * Default: the server policy's mode, or `read-only` without one.
   */
  filesystem?: FilesystemMode | null;
  /**
   * Default: the server policy's, or `none`.
   */
  network?: NetworkMode | null;
  /**
   * Relative paths under every writable root that stay read-only (when
   * they exist at start). Default `[".git"]`; under a server policy it
   * must include the server's.
   */
  readOnlySubpaths?: Array<string> | null;
  /**
   * When set, nothing else is readable but these absolute paths, the
   * writable roots, the temporary directory and what programs need to
   * start (the system's program and library directories and a few files
   * of `/etc`). Needs `read-only` or `workspace-write`.
   */
  readableRoots?: Array<string> | null;
  /**
   * Absolute paths writable under `workspace-write` (each must exist).
   * Default: the server's writable roots, or the process's `cwd` when
   * the server has no `workspace-write` policy. The private temporary
   * directory (the child's `TMPDIR`) is writable in any confined mode.
   */
  writableRoots?: Array<string> | null;
}

/**
 * What this server can enforce.
 */
export interface SandboxSupport {
  /**
   * Children can have an empty capability bounding set.
   */
  boundingSet: boolean;
  /**
   * Filesystem confinement (`read-only`, `workspace-write`) is possible:
   * Landlock ABI 3 or later.
   */
  filesystem: boolean;
  /**
   * Landlock ABI version of the kernel; absent without Landlock.
   */
  landlockAbi?: number | null;
  /**
   * How read-only subpaths are enforced: `mountNamespace` (the server
   * has CAP_SYS_ADMIN), `userNamespace`, or `unavailable`.
   */
  readOnlySubpaths: ReadOnlySubpathSupport;
  /**
   * Signals and abstract sockets are scoped to the sandbox (ABI ≥ 6).
   */
  scopes: boolean;
  /**
   * seccomp filters; without them no sandbox can be started.
   */
  seccomp: boolean;
}

/**
 * `initialize` result `capabilities`: what is on for this connection.
 * Present only when the client sent `capabilities`.
 */
export interface ServerCapabilities {
  /**
   * Output notifications come as binary frames, and binary
   * `process/write` frames are accepted.
   */
  binaryFrames?: boolean;
}

/**
 * Limits a client may want to know about.
 */
export interface ServerLimits {
  detachTtlMs: number;
  /**
   * Limits of the `fs/*` methods.
   */
  fs?: FsLimits | null;
  maxExitedRecords: number;
  maxMessageBytes: number;
  maxProcessesPerConnection: number;
  retainedOutputBytes: number;
}

export interface SignalParams {
  processId: string;
  /**
   * One of SIGINT, SIGTERM, SIGKILL, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2.
   */
  signal: string;
}

export interface SignalResponse {
  /**
   * False when the process group no longer exists.
   */
  delivered: boolean;
}

export interface SnapshotResponse {
  exitCode?: number | null;
  running: boolean;
  /**
   * PTY: the rendered screen, one string per row.
   */
  screen?: Array<string> | null;
  /**
   * PTY: base64 bytes that redraw `screen` on a fresh terminal of `size`:
   * the alternate screen when active, colours and attributes, cursor
   * position, input modes. A terminal paints these, then the output
   * after `seq`.
   */
  screenAnsi?: string | null;
  /**
   * PTY: true when retention dropped output before a terminal emulator
   * parsed it (the server's screen memory had no room to keep one), so
   * `screen` and `screenAnsi` are rebuilt from what retention kept and
   * may differ from what a terminal would show. False: the screen is
   * exact, however much output `truncated` says was dropped.
   */
  screenApproximate?: boolean | null;
  /**
   * The newest output seq this snapshot reflects (0 before any output):
   * continue with `process/read {afterSeq: seq}` to see every later byte
   * exactly once.
   */
  seq?: number;
  /**
   * PTY: the terminal size `screen` is rendered at.
   */
  size?: TerminalSize | null;
  /**
   * Retained stderr (pipes), base64.
   */
  stderr?: string | null;
  /**
   * Retained stdout (pipes), base64.
   */
  stdout?: string | null;
  /**
   * Retained terminal output (PTY), base64.
   */
  terminal?: string | null;
  /**
   * Retention dropped the middle of some stream.
   */
  truncated: boolean;
}

/**
 * `process/start` params.
 */
export interface StartParams {
  arg0?: string | null;
  argv: Array<string>;
  /**
   * Absolute working directory.
   */
  cwd: string;
  /**
   * How long a detached process waits for its session to be resumed
   * (bounded by the server's `--detach-ttl-ms`).
   */
  detachTtlMs?: number | null;
  /**
   * With `inheritEnv: false` (default) the complete environment; with
   * `true`, overlaid on the server's environment.
   */
  env?: Record<string, string>;
  inheritEnv?: boolean;
  labels?: Record<string, string>;
  onDisconnect?: OnDisconnect | null;
  /**
   * Client-chosen id; the server assigns `proc-N` when absent.
   */
  processId?: string | null;
  /**
   * Confine the process and its descendants (see [`crate::sandbox`]).
   */
  sandbox?: SandboxParams | null;
  /**
   * Terminal size for `tty: true` (default 24×80).
   */
  size?: TerminalSize | null;
  /**
   * stdin of a pipe-mode process (default `closed`). PTY processes always
   * take input.
   */
  stdin?: StdinKind | null;
  /**
   * `false`: no `process/output` notifications; read with `process/read`
   * or `process/snapshot`. The process then never blocks on output.
   */
  streamOutput?: boolean | null;
  /**
   * Kill the process group after this long; the exit reports `timedOut`.
   */
  timeoutMs?: number | null;
  tty?: boolean;
}

export interface StartResponse {
  /**
   * The OS pid, which is also the process group id.
   */
  pid: number;
  processId: string;
  /**
   * The confinement applied; absent when the process runs unconfined.
   */
  sandbox?: SandboxApplied | null;
}

/**
 * Where a pipe-mode process's stdin comes from.
 */
export type StdinKind = "closed" | "pipe";

/**
 * A terminal size in character cells.
 */
export interface TerminalSize {
  cols: number;
  rows: number;
}

export interface TerminateParams {
  /**
   * Without: SIGKILL the group now. With: SIGTERM now, SIGKILL after
   * this many milliseconds if it has not exited.
   */
  graceMs?: number | null;
  processId: string;
}

export interface TerminateResponse {
  /**
   * Whether the process was still running.
   */
  running: boolean;
}

export interface UnwatchParams {
  watchId: string;
}

export interface WaitParams {
  /**
   * Match `match` against output after this seq (default: output that no
   * earlier wait on this process examined).
   */
  afterSeq?: number | null;
  /**
   * Return when new output matches this regular expression (`"matched"`).
   */
  match?: string | null;
  processId: string;
  /**
   * Return when no new output arrived for this long (`"quiet"`).
   */
  quietMs?: number | null;
  /**
   * Give up after this long (`reason: "timeout"`). Capped by the server.
   */
  timeoutMs?: number | null;
  /**
   * Also return as soon as the process is blocked reading its input (a
   * PTY's foreground group reading the terminal, or a pipe process
   * reading its stdin) with its output drained (`"inputWait"`). Linux
   * only; see docs/DESIGN.md for how it is detected and its limits.
   */
  untilInputWait?: boolean;
}

/**
 * Why `process/wait` returned (`inputWait`: the process is waiting for
 * input, with `untilInputWait`).
 */
export type WaitReason = "exited" | "matched" | "quiet" | "timeout" | "inputWait";

export interface WaitResponse {
  exitCode?: number | null;
  exited: boolean;
  reason: WaitReason;
  /**
   * Name of the signal that killed the process, if one did.
   */
  signal?: string | null;
  /**
   * The process was killed by its own `timeoutMs` (not the wait's).
   */
  timedOut: boolean;
}

/**
 * `fs/watch`: a directory (or one file) for `fs/changed` notifications.
 */
export interface WatchParams {
  path?: string | null;
  pathBase64?: string | null;
  /**
   * Watch the whole tree below, following it as it changes.
   */
  recursive?: boolean | null;
}

export interface WatchResponse {
  watchId: string;
}

/**
 * `fs/writeBlock`: bytes at `offset` of a write handle.
 */
export interface WriteBlockParams {
  chunk: string;
  handleId: string;
  offset: number;
}

/**
 * `fs/writeFile`.
 */
export interface WriteFileParams {
  /**
   * Add to the end instead of replacing (never atomic).
   */
  append?: boolean | null;
  /**
   * Default true: write a temp file in the same directory and rename it
   * over the target, so readers never see a partial file and a failed
   * write leaves the old content.
   */
  atomic?: boolean | null;
  /**
   * Create missing parent directories.
   */
  createParents?: boolean | null;
  dataBase64: string;
  /**
   * Permission bits as a number (e.g. 420 for 0644). Default: an
   * existing file keeps its mode, a new one gets 0666 less the umask.
   */
  mode?: number | null;
  path?: string | null;
  pathBase64?: string | null;
  /**
   * `fsync` before the file replaces its target.
   */
  sync?: boolean | null;
}

export interface WriteParams {
  /**
   * Base64 bytes.
   */
  chunk: string;
  processId: string;
  /**
   * Idempotency key: a retry with an id this process already accepted is
   * acknowledged without writing twice.
   */
  writeId?: string | null;
}

export interface WriteResponse {
  accepted: boolean;
}

/** Every request: its params and its result. */
export interface Methods {
  "command/exec": {params: ExecParams; result: ExecResponse};
  "command/exec/terminate": {params: ExecTerminateParams; result: ExecTerminateResponse};
  "command/exec/write": {params: ExecWriteParams; result: ExecWriteResponse};
  "fs/canonicalize": {params: PathParams; result: CanonicalizeResponse};
  "fs/close": {params: CloseParams; result: EmptyResponse};
  "fs/copy": {params: CopyParams; result: EmptyResponse};
  "fs/createDirectory": {params: CreateDirectoryParams; result: EmptyResponse};
  "fs/getMetadata": {params: PathParams; result: Metadata};
  "fs/open": {params: OpenParams; result: OpenResponse};
  "fs/readBlock": {params: ReadBlockParams; result: ReadBlockResponse};
  "fs/readDirectory": {params: ReadDirectoryParams; result: ReadDirectoryResponse};
  "fs/readFile": {params: ReadFileParams; result: ReadFileResponse};
  "fs/remove": {params: RemoveParams; result: EmptyResponse};
  "fs/rename": {params: RenameParams; result: EmptyResponse};
  "fs/unwatch": {params: UnwatchParams; result: EmptyResponse};
  "fs/watch": {params: WatchParams; result: WatchResponse};
  "fs/writeBlock": {params: WriteBlockParams; result: EmptyResponse};
  "fs/writeFile": {params: WriteFileParams; result: EmptyResponse};
  "initialize": {params: InitializeParams; result: InitializeResponse};
  "observe/list": {params: ObserveListParams; result: ObserveListResponse};
  "observe/read": {params: ObservedReadParams; result: ReadResponse};
  "observe/resize": {params: ObservedResizeParams; result: EmptyResponse};
  "observe/signal": {params: ObservedSignalParams; result: SignalResponse};
  "observe/snapshot": {params: ObservedProcessIdParams; result: SnapshotResponse};
  "observe/write": {params: ObservedWriteParams; result: WriteResponse};
  "process/closeStdin": {params: ProcessIdParams; result: EmptyResponse};
  "process/list": {params: ListParams; result: ListResponse};
  "process/read": {params: ReadParams; result: ReadResponse};
  "process/release": {params: ProcessIdParams; result: EmptyResponse};
  "process/resize": {params: ResizeParams; result: EmptyResponse};
  "process/signal": {params: SignalParams; result: SignalResponse};
  "process/snapshot": {params: ProcessIdParams; result: SnapshotResponse};
  "process/start": {params: StartParams; result: StartResponse};
  "process/status": {params: ProcessIdParams; result: ProcessInfo};
  "process/terminate": {params: TerminateParams; result: TerminateResponse};
  "process/wait": {params: WaitParams; result: WaitResponse};
  "process/write": {params: WriteParams; result: WriteResponse};
}

/** Every notification and its params. */
export interface Notifications {
  "command/exec/exited": {params: ExecExitedNotification};
  "command/exec/outputDelta": {params: ExecOutputDeltaNotification};
  "fs/changed": {params: ChangedNotification};
  "initialized": {params: unknown};
  "process/closed": {params: ClosedNotification};
  "process/exited": {params: ExitedNotification};
  "process/output": {params: OutputNotification};
}
