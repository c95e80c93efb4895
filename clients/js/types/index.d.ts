/**
 * @typedef {object} ConnectOptions
 * @property {string} [token] the server's bearer token; sent as a
 *   websocket subprotocol, so it never appears in a URL
 * @property {string} [clientName] shown to observers of this session
 * @property {string} [resumeSessionId] resume this session (a secret from an
 *   earlier connection's `sessionId`)
 * @property {any} [WebSocket] a WebSocket class; default: the platform's,
 *   else the `ws` package
 * @property {number} [timeoutMs] budget for opening the socket and the
 *   handshake (default 10000)
 */
/**
 * Opens a connection and performs the handshake.
 * @param {string} url `ws://IP:PORT/` or `wss://HOST:PORT/`
 * @param {ConnectOptions} [options]
 * @returns {Promise<ExecServerClient>}
 */
export function connect(url: string, options?: ConnectOptions): Promise<ExecServerClient>;
/**
 * @typedef {import('../types/protocol.js').Methods} Methods
 * @typedef {import('../types/protocol.js').Notifications} Notifications
 * @typedef {import('../types/protocol.js').InitializeResponse} InitializeResponse
 * @typedef {import('../types/protocol.js').ServerLimits} ServerLimits
 * @typedef {import('../types/protocol.js').StartParams} StartParams
 * @typedef {import('../types/protocol.js').ReadResponse} ReadResponse
 * @typedef {import('../types/protocol.js').SnapshotResponse} SnapshotResponse
 * @typedef {import('../types/protocol.js').ObservedProcess} ObservedProcess
 */
/** The subprotocol the server speaks JSON-RPC on. */
export const SUBPROTOCOL: "exec-server";
/** Prefix of the subprotocol that carries the bearer token, base64url-encoded. */
export const BEARER_SUBPROTOCOL_PREFIX: "exec-server.bearer.";
/** An error answer from the server. */
export class RpcError extends Error {
    /**
     * @param {string} method
     * @param {{code: number, message: string, data?: unknown}} error
     */
    constructor(method: string, error: {
        code: number;
        message: string;
        data?: unknown;
    });
    /** JSON-RPC error code (-32600 invalid request, -32602 invalid params, ...). */
    code: number;
    /** The server's message, exactly. */
    rpcMessage: string;
    data: unknown;
}
/** The connection ended (or never opened) before an answer came. */
export class ConnectionError extends Error {
    /**
     * @param {string} message
     * @param {{status?: number}} [details] `status`: the HTTP status of a
     *   refused handshake, when the platform reveals it (Node does, browsers
     *   do not)
     */
    constructor(message: string, details?: {
        status?: number;
    });
    status: number | undefined;
}
/** A request got no answer in its time budget. */
export class TimeoutError extends Error {
    /** @param {string} method */
    constructor(method: string);
}
/**
 * @typedef {{[M in keyof Notifications]: {method: M, params: Notifications[M]['params']}}[keyof Notifications]} Notification
 */
/** One connection to an exec-server. Create with {@link connect}. */
export class ExecServerClient {
    /** @param {any} socket an open WebSocket */
    constructor(socket: any);
    socket: any;
    nextId: number;
    /** @type {Map<number, {method: string, resolve: (value: any) => void, reject: (error: Error) => void, timer?: ReturnType<typeof setTimeout>}>} */
    pending: Map<number, {
        method: string;
        resolve: (value: any) => void;
        reject: (error: Error) => void;
        timer?: ReturnType<typeof setTimeout>;
    }>;
    /** @type {Set<(notification: Notification) => void>} */
    notificationListeners: Set<(notification: Notification) => void>;
    /** @type {Set<(error: ConnectionError) => void>} */
    closeListeners: Set<(error: ConnectionError) => void>;
    /** @type {ConnectionError | null} */
    closed: ConnectionError | null;
    /** This session's resume secret. Keep it like a password. */
    sessionId: string;
    resumed: boolean;
    /** @type {ServerLimits | undefined} */
    limits: ServerLimits | undefined;
    /**
     * Sends a request and resolves with its result.
     * @template {keyof Methods} M
     * @param {M} method
     * @param {Methods[M]['params']} params
     * @param {{timeoutMs?: number}} [options] reject with a TimeoutError
     *   after this long (the request itself is not cancelled)
     * @returns {Promise<Methods[M]['result']>}
     */
    call<M extends keyof Methods>(method: M, params: Methods[M]["params"], options?: {
        timeoutMs?: number;
    }): Promise<Methods[M]["result"]>;
    /**
     * @param {{clientName: string, resumeSessionId?: string}} params
     * @param {number} timeoutMs
     */
    initialize(params: {
        clientName: string;
        resumeSessionId?: string;
    }, timeoutMs: number): Promise<import("../types/protocol.js").InitializeResponse>;
    serverVersion: string | null | undefined;
    /**
     * Calls `listener` with every notification (`process/output`,
     * `process/exited`, `process/closed`, ...). Returns an unsubscribe function.
     * @param {(notification: Notification) => void} listener
     */
    onNotification(listener: (notification: Notification) => void): () => boolean;
    /**
     * Calls `listener` once when the connection ends.
     * @param {(error: ConnectionError) => void} listener
     */
    onClose(listener: (error: ConnectionError) => void): () => boolean;
    /** Closes the connection. Detached processes live on; others are killed. */
    close(): void;
    /** @param {StartParams} params */
    start(params: StartParams): Promise<import("../types/protocol.js").StartResponse>;
    /** @param {{labels?: Record<string, string>}} [params] */
    list(params?: {
        labels?: Record<string, string>;
    }): Promise<import("../types/protocol.js").ListResponse>;
    /** @param {{labels?: Record<string, string>}} [params] */
    observeList(params?: {
        labels?: Record<string, string>;
    }): Promise<import("../types/protocol.js").ObserveListResponse>;
    /** @param {string} processId */
    release(processId: string): Promise<import("../types/protocol.js").EmptyResponse>;
    /**
     * @param {string} processId
     * @param {number} [graceMs]
     */
    terminate(processId: string, graceMs?: number): Promise<import("../types/protocol.js").TerminateResponse>;
    /**
     * @param {string} processId
     * @param {{timeoutMs?: number, quietMs?: number, match?: string}} [options]
     */
    wait(processId: string, options?: {
        timeoutMs?: number;
        quietMs?: number;
        match?: string;
    }): Promise<import("../types/protocol.js").WaitResponse>;
    /**
     * One process, own (`owner` absent) or another session's (`owner` from
     * `observe/list`), with the same methods either way.
     * @param {{processId: string, owner?: string}} ref
     */
    target(ref: {
        processId: string;
        owner?: string;
    }): ProcessTarget;
    #private;
}
/**
 * One process: its own session's through `process/*`, another session's
 * through `observe/*` (the same params plus `owner`).
 */
export class ProcessTarget {
    /**
     * @param {ExecServerClient} client
     * @param {string} processId
     * @param {string} [owner]
     */
    constructor(client: ExecServerClient, processId: string, owner?: string);
    client: ExecServerClient;
    processId: string;
    owner: string | undefined;
    /**
     * Retained output after `afterSeq`, long-polling up to `waitMs`.
     * @param {{afterSeq?: number, maxBytes?: number, waitMs?: number}} [options]
     * @param {{timeoutMs?: number}} [callOptions]
     * @returns {Promise<ReadResponse>}
     */
    read(options?: {
        afterSeq?: number;
        maxBytes?: number;
        waitMs?: number;
    }, callOptions?: {
        timeoutMs?: number;
    }): Promise<ReadResponse>;
    /** @returns {Promise<SnapshotResponse>} */
    snapshot(): Promise<SnapshotResponse>;
    /**
     * Writes bytes (a string is sent as UTF-8) to the process's stdin or terminal.
     * @param {Uint8Array | string} data
     * @param {string} [writeId] makes a retry idempotent
     */
    write(data: Uint8Array | string, writeId?: string): Promise<import("../types/protocol.js").WriteResponse>;
    /**
     * @param {number} rows
     * @param {number} cols
     */
    resize(rows: number, cols: number): Promise<import("../types/protocol.js").EmptyResponse>;
    /** @param {string} signal e.g. `SIGINT` */
    signal(signal: string): Promise<import("../types/protocol.js").SignalResponse>;
    /**
     * Follows the output from `cursor` on, exactly once, handing each batch
     * of segments to `consume` and waiting for it before reading on (so a
     * slow consumer reads less often; the process is never held back, and
     * what retention drops meanwhile is reported as a gap). Ends when the
     * process is closed, the connection ends, or `signal` is aborted.
     * @param {OutputCursor} cursor
     * @param {(segments: import('./cursor.js').Segment[], cursor: OutputCursor) => void | Promise<void>} consume
     * @param {{maxBytes?: number, waitMs?: number, signal?: AbortSignal}} [options]
     */
    follow(cursor: OutputCursor, consume: (segments: import("./cursor.js").Segment[], cursor: OutputCursor) => void | Promise<void>, options?: {
        maxBytes?: number;
        waitMs?: number;
        signal?: AbortSignal;
    }): Promise<void>;
}
export type ConnectOptions = {
    /**
     * the server's bearer token; sent as a
     * websocket subprotocol, so it never appears in a URL
     */
    token?: string | undefined;
    /**
     * shown to observers of this session
     */
    clientName?: string | undefined;
    /**
     * resume this session (a secret from an
     * earlier connection's `sessionId`)
     */
    resumeSessionId?: string | undefined;
    /**
     * a WebSocket class; default: the platform's,
     * else the `ws` package
     */
    WebSocket?: any;
    /**
     * budget for opening the socket and the
     * handshake (default 10000)
     */
    timeoutMs?: number | undefined;
};
export type Methods = import("../types/protocol.js").Methods;
export type Notifications = import("../types/protocol.js").Notifications;
export type InitializeResponse = import("../types/protocol.js").InitializeResponse;
export type ServerLimits = import("../types/protocol.js").ServerLimits;
export type StartParams = import("../types/protocol.js").StartParams;
export type ReadResponse = import("../types/protocol.js").ReadResponse;
export type SnapshotResponse = import("../types/protocol.js").SnapshotResponse;
export type ObservedProcess = import("../types/protocol.js").ObservedProcess;
export type Notification = { [M in keyof Notifications]: {
    method: M;
    params: Notifications[M]["params"];
}; }[keyof Notifications];
import { OutputCursor } from './cursor.js';
import { decodeBase64 } from './cursor.js';
import { encodeBase64 } from './cursor.js';
export { OutputCursor, decodeBase64, encodeBase64 };
