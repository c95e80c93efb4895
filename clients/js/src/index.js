// exec-server client for browsers and Node (20 and later, with the `ws`
// package): JSON-RPC over one websocket, the process API and the observer
// API (`observe/*`), typed by the committed JSON Schema
// (types/protocol.d.ts is generated from it; `npm test` checks both).
//
// Layers, each knowing only the one below: a websocket (the browser's, or
// `ws` in Node) → `ExecServerClient` (requests matched to answers by id,
// notifications to listeners, the handshake) → typed helpers and
// `ProcessTarget` (one process, own or observed) → `OutputCursor`
// (exactly-once output, gaps counted; see cursor.js).

import {OutputCursor, decodeBase64, encodeBase64} from './cursor.js';

export {OutputCursor, decodeBase64, encodeBase64};

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
export const SUBPROTOCOL = 'exec-server';
/** Prefix of the subprotocol that carries the bearer token, base64url-encoded. */
export const BEARER_SUBPROTOCOL_PREFIX = 'exec-server.bearer.';

/** An error answer from the server. */
export class RpcError extends Error {
  /**
   * @param {string} method
   * @param {{code: number, message: string, data?: unknown}} error
   */
  constructor(method, error) {
    super(`${method}: ${error.message} (code ${error.code})`);
    this.name = 'RpcError';
    /** JSON-RPC error code (-32600 invalid request, -32602 invalid params, ...). */
    this.code = error.code;
    /** The server's message, exactly. */
    this.rpcMessage = error.message;
    this.data = error.data;
  }
}

/** The connection ended (or never opened) before an answer came. */
export class ConnectionError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number}} [details] `status`: the HTTP status of a
   *   refused handshake, when the platform reveals it (Node does, browsers
   *   do not)
   */
  constructor(message, details = {}) {
    super(message);
    this.name = 'ConnectionError';
    this.status = details.status;
  }
}

/** A request got no answer in its time budget. */
export class TimeoutError extends Error {
  /** @param {string} method */
  constructor(method) {
    super(`${method}: no answer in time`);
    this.name = 'TimeoutError';
  }
}

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
export async function connect(url, options = {}) {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const socket = await openSocket(url, options, timeoutMs);
  const client = new ExecServerClient(socket);
  try {
    await client.initialize(
      {clientName: options.clientName ?? 'exec-server-js', resumeSessionId: options.resumeSessionId},
      timeoutMs,
    );
  } catch (error) {
    client.close();
    throw error;
  }
  return client;
}

/**
 * @param {string} url
 * @param {ConnectOptions} options
 * @param {number} timeoutMs
 */
async function openSocket(url, options, timeoutMs) {
  const WebSocketClass = options.WebSocket ?? globalThis.WebSocket ?? (await import('ws')).default;
  const protocols = [SUBPROTOCOL];
  if (options.token) protocols.push(BEARER_SUBPROTOCOL_PREFIX + base64url(options.token));
  const socket = new WebSocketClass(url, protocols);
  socket.binaryType = 'arraybuffer';
  return new Promise((resolve, reject) => {
    /** @type {number | undefined} */
    let status;
    const timer = setTimeout(() => {
      socket.close();
      reject(new ConnectionError(`connecting to ${url} timed out`));
    }, timeoutMs);
    // Node's `ws` tells the status of a refused handshake; browsers do not.
    socket.on?.('unexpected-response', (/** @type {unknown} */ _request, /** @type {{statusCode: number}} */ response) => {
      status = response.statusCode;
      socket.terminate?.();
    });
    socket.onopen = () => {
      clearTimeout(timer);
      resolve(socket);
    };
    socket.onerror = () => {};
    socket.onclose = () => {
      clearTimeout(timer);
      const why = status ? `the server refused the connection with HTTP ${status}` : 'the connection failed';
      reject(new ConnectionError(`${url}: ${why}`, {status}));
    };
  });
}

/**
 * @param {string} text
 * @returns {string} base64url without padding, of the UTF-8 bytes
 */
function base64url(text) {
  return encodeBase64(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * @typedef {{[M in keyof Notifications]: {method: M, params: Notifications[M]['params']}}[keyof Notifications]} Notification
 */

/** One connection to an exec-server. Create with {@link connect}. */
export class ExecServerClient {
  /** @param {any} socket an open WebSocket */
  constructor(socket) {
    this.socket = socket;
    this.nextId = 1;
    /** @type {Map<number, {method: string, resolve: (value: any) => void, reject: (error: Error) => void, timer?: ReturnType<typeof setTimeout>}>} */
    this.pending = new Map();
    /** @type {Set<(notification: Notification) => void>} */
    this.notificationListeners = new Set();
    /** @type {Set<(error: ConnectionError) => void>} */
    this.closeListeners = new Set();
    /** @type {ConnectionError | null} */
    this.closed = null;
    /** This session's resume secret. Keep it like a password. */
    this.sessionId = '';
    this.resumed = false;
    /** @type {ServerLimits | undefined} */
    this.limits = undefined;
    socket.onmessage = (/** @type {{data: string | ArrayBuffer}} */ event) => this.#receive(event.data);
    socket.onclose = () => this.#closed(new ConnectionError('the connection closed'));
    socket.onerror = () => {};
  }

  /**
   * Sends a request and resolves with its result.
   * @template {keyof Methods} M
   * @param {M} method
   * @param {Methods[M]['params']} params
   * @param {{timeoutMs?: number}} [options] reject with a TimeoutError
   *   after this long (the request itself is not cancelled)
   * @returns {Promise<Methods[M]['result']>}
   */
  call(method, params, options = {}) {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      /** @type {{method: string, resolve: (value: any) => void, reject: (error: Error) => void, timer?: ReturnType<typeof setTimeout>}} */
      const entry = {method, resolve, reject};
      if (options.timeoutMs !== undefined) {
        entry.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new TimeoutError(method));
        }, options.timeoutMs);
      }
      this.pending.set(id, entry);
      this.socket.send(JSON.stringify({jsonrpc: '2.0', id, method, params}));
    });
  }

  /**
   * @param {{clientName: string, resumeSessionId?: string}} params
   * @param {number} timeoutMs
   */
  async initialize(params, timeoutMs) {
    const result = await this.call('initialize', params, {timeoutMs});
    this.socket.send(JSON.stringify({jsonrpc: '2.0', method: 'initialized'}));
    this.sessionId = result.sessionId ?? '';
    this.resumed = result.resumed ?? false;
    this.limits = result.limits ?? undefined;
    this.serverVersion = result.serverVersion;
    return result;
  }

  /**
   * Calls `listener` with every notification (`process/output`,
   * `process/exited`, `process/closed`, ...). Returns an unsubscribe function.
   * @param {(notification: Notification) => void} listener
   */
  onNotification(listener) {
    this.notificationListeners.add(listener);
    return () => this.notificationListeners.delete(listener);
  }

  /**
   * Calls `listener` once when the connection ends.
   * @param {(error: ConnectionError) => void} listener
   */
  onClose(listener) {
    if (this.closed) queueMicrotask(() => listener(/** @type {ConnectionError} */ (this.closed)));
    else this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /** Closes the connection. Detached processes live on; others are killed. */
  close() {
    try {
      this.socket.close();
    } catch {
      // Already closed.
    }
    this.#closed(new ConnectionError('closed by the client'));
  }

  /** @param {StartParams} params */
  start(params) {
    return this.call('process/start', params);
  }

  /** @param {{labels?: Record<string, string>}} [params] */
  list(params = {}) {
    return this.call('process/list', params);
  }

  /** @param {{labels?: Record<string, string>}} [params] */
  observeList(params = {}) {
    return this.call('observe/list', params);
  }

  /** @param {string} processId */
  release(processId) {
    return this.call('process/release', {processId});
  }

  /**
   * @param {string} processId
   * @param {number} [graceMs]
   */
  terminate(processId, graceMs) {
    return this.call('process/terminate', {processId, graceMs});
  }

  /**
   * @param {string} processId
   * @param {{timeoutMs?: number, quietMs?: number, match?: string}} [options]
   */
  wait(processId, options = {}) {
    return this.call('process/wait', {processId, ...options});
  }

  /**
   * One process, own (`owner` absent) or another session's (`owner` from
   * `observe/list`), with the same methods either way.
   * @param {{processId: string, owner?: string}} ref
   */
  target(ref) {
    return new ProcessTarget(this, ref.processId, ref.owner);
  }

  /** @param {string | ArrayBuffer} data */
  #receive(data) {
    const text = typeof data === 'string' ? data : new TextDecoder().decode(data);
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.id !== undefined && message.id !== null && (message.result !== undefined || message.error)) {
      const entry = this.pending.get(message.id);
      if (!entry) return;
      this.pending.delete(message.id);
      clearTimeout(entry.timer);
      if (message.error) entry.reject(new RpcError(entry.method, message.error));
      else entry.resolve(message.result);
    } else if (typeof message.method === 'string') {
      for (const listener of this.notificationListeners) listener(message);
    }
  }

  /** @param {ConnectionError} error */
  #closed(error) {
    if (this.closed) return;
    this.closed = error;
    for (const entry of this.pending.values()) {
      clearTimeout(entry.timer);
      entry.reject(error);
    }
    this.pending.clear();
    for (const listener of this.closeListeners) listener(error);
    this.closeListeners.clear();
  }
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
  constructor(client, processId, owner) {
    this.client = client;
    this.processId = processId;
    this.owner = owner;
  }

  /**
   * Retained output after `afterSeq`, long-polling up to `waitMs`.
   * @param {{afterSeq?: number, maxBytes?: number, waitMs?: number}} [options]
   * @param {{timeoutMs?: number}} [callOptions]
   * @returns {Promise<ReadResponse>}
   */
  read(options = {}, callOptions = {}) {
    const params = {processId: this.processId, ...options};
    return this.owner === undefined
      ? this.client.call('process/read', params, callOptions)
      : this.client.call('observe/read', {owner: this.owner, ...params}, callOptions);
  }

  /** @returns {Promise<SnapshotResponse>} */
  snapshot() {
    const params = {processId: this.processId};
    return this.owner === undefined
      ? this.client.call('process/snapshot', params)
      : this.client.call('observe/snapshot', {owner: this.owner, ...params});
  }

  /**
   * Writes bytes (a string is sent as UTF-8) to the process's stdin or terminal.
   * @param {Uint8Array | string} data
   * @param {string} [writeId] makes a retry idempotent
   */
  write(data, writeId) {
    const params = {processId: this.processId, chunk: encodeBase64(data), writeId};
    return this.owner === undefined
      ? this.client.call('process/write', params)
      : this.client.call('observe/write', {owner: this.owner, ...params});
  }

  /**
   * @param {number} rows
   * @param {number} cols
   */
  resize(rows, cols) {
    const params = {processId: this.processId, rows, cols};
    return this.owner === undefined
      ? this.client.call('process/resize', params)
      : this.client.call('observe/resize', {owner: this.owner, ...params});
  }

  /** @param {string} signal e.g. `SIGINT` */
  signal(signal) {
    const params = {processId: this.processId, signal};
    return this.owner === undefined
      ? this.client.call('process/signal', params)
      : this.client.call('observe/signal', {owner: this.owner, ...params});
  }

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
  async follow(cursor, consume, options = {}) {
    const waitMs = options.waitMs ?? 20_000;
    // Whole retention in one answer, so `droppedBytes` is exact (cursor.js).
    const retained = this.client.limits?.retainedOutputBytes ?? 1 << 20;
    const maxBytes = options.maxBytes ?? 2 * retained + 65_536;
    cursor.headBytes ??= Math.floor(retained / 2);
    while (!cursor.closed && !options.signal?.aborted) {
      const result = await this.read(
        {afterSeq: cursor.afterSeq, maxBytes, waitMs},
        // A silently dead connection never answers: give up a while after
        // the long poll should have returned.
        {timeoutMs: waitMs + 15_000},
      );
      const segments = cursor.acceptRead(result);
      if (segments.length || result.exited) await consume(segments, cursor);
    }
  }
}
