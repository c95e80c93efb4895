/**
 * Decodes standard base64 into bytes.
 * @param {string} text
 * @returns {Uint8Array}
 */
export function decodeBase64(text: string): Uint8Array;
/**
 * Encodes bytes (or a string, as UTF-8) as standard base64.
 * @param {Uint8Array | string} data
 * @returns {string}
 */
export function encodeBase64(data: Uint8Array | string): string;
/**
 * @typedef {import('../types/protocol.js').ReadResponse} ReadResponse
 * @typedef {import('../types/protocol.js').OutputChunk} OutputChunk
 * @typedef {import('../types/protocol.js').OutputNotification} OutputNotification
 * @typedef {import('../types/protocol.js').SnapshotResponse} SnapshotResponse
 * @typedef {import('../types/protocol.js').ProcessStream} ProcessStream
 */
/**
 * What a cursor hands on, in order: bytes to show, or the number of bytes
 * the server's retention dropped at that point.
 * @typedef {{type: 'data', stream: ProcessStream, bytes: Uint8Array}
 *   | {type: 'gap', stream: ProcessStream | null, bytes: number}} Segment
 */
/**
 * A chunk as carried by `process/output` or `process/read`; servers that
 * report it add `offset`, the stream byte offset of the chunk's first byte.
 * @typedef {{seq: number, stream: ProcessStream, chunk: string, offset?: number}} WireChunk
 */
/**
 * Follows one process's output so that every byte is handed on exactly
 * once, in order, and every byte lost to retention is reported with its
 * exact count.
 *
 * Two sources of truth, used in this order:
 * - per-stream byte offsets (`offset` on each chunk, when the server sends
 *   them): a chunk that starts before the next expected offset is cut or
 *   skipped, one that starts after it reveals a gap of exactly the
 *   difference, on that stream;
 * - otherwise sequence numbers and `droppedBytes`: chunks at or below the
 *   last seq seen are skipped, and a read's `droppedBytes` (bytes after
 *   `afterSeq` that retention dropped) is reported once, where retention's
 *   head meets its tail: before the first chunk past the stream's first
 *   `headBytes` (half the server's `retainedOutputBytes`) when the cursor
 *   has counted the stream from its start, else at the first break in the
 *   read's seq run (a seq seen twice or skipped), else before everything
 *   returned (right for reads past the head, whose dropped bytes all
 *   precede the retained tail). The count is exact when the read reached
 *   the newest output, since retention only ever drops bytes older than its
 *   newest chunk: read with a `maxBytes` of at least twice
 *   `retainedOutputBytes` (`ProcessTarget.follow` does).
 */
export class OutputCursor {
    /**
     * @param {{afterSeq?: number, headBytes?: number}} [options] `afterSeq`:
     *   start after this seq (0: from the first byte the process wrote);
     *   `headBytes`: the bytes of each stream retention keeps from its start
     *   (half the server's `retainedOutputBytes`), to place gaps exactly
     */
    constructor(options?: {
        afterSeq?: number;
        headBytes?: number;
    });
    /** The highest seq handed on or skipped past; the next `afterSeq`. */
    afterSeq: number;
    /** @type {number | undefined} */
    headBytes: number | undefined;
    /**
     * Bytes handed on per stream since the stream's start; only known
     * while the cursor has followed from seq 0 without a gap or snapshot.
     * @type {Map<string, number> | null}
     */
    streamBytes: Map<string, number> | null;
    /**
     * Next expected byte offset per stream, once known.
     * @type {Map<string, number>}
     */
    offsets: Map<string, number>;
    /** Total bytes reported as dropped so far. */
    droppedBytes: number;
    /** @type {number | null} */
    exitCode: number | null;
    exited: boolean;
    /** All output was delivered and the process reaped. */
    closed: boolean;
    /**
     * Starts from a snapshot: its screen (or retained output) stands for
     * everything up to `snapshot.seq`.
     * @param {SnapshotResponse} snapshot
     */
    acceptSnapshot(snapshot: SnapshotResponse): void;
    /**
     * One live `process/output` notification.
     * @param {WireChunk} chunk
     * @returns {Segment[]}
     */
    acceptNotification(chunk: WireChunk): Segment[];
    /**
     * One `process/read` answer, asked with `afterSeq: cursor.afterSeq`.
     * @param {Omit<ReadResponse, 'chunks'> & {chunks: WireChunk[], complete?: boolean}} result
     * @returns {Segment[]}
     */
    acceptRead(result: Omit<ReadResponse, "chunks"> & {
        chunks: WireChunk[];
        complete?: boolean;
    }): Segment[];
    #private;
}
export type ReadResponse = import("../types/protocol.js").ReadResponse;
export type OutputChunk = import("../types/protocol.js").OutputChunk;
export type OutputNotification = import("../types/protocol.js").OutputNotification;
export type SnapshotResponse = import("../types/protocol.js").SnapshotResponse;
export type ProcessStream = import("../types/protocol.js").ProcessStream;
/**
 * What a cursor hands on, in order: bytes to show, or the number of bytes
 * the server's retention dropped at that point.
 */
export type Segment = {
    type: "data";
    stream: ProcessStream;
    bytes: Uint8Array;
} | {
    type: "gap";
    stream: ProcessStream | null;
    bytes: number;
};
/**
 * A chunk as carried by `process/output` or `process/read`; servers that
 * report it add `offset`, the stream byte offset of the chunk's first byte.
 */
export type WireChunk = {
    seq: number;
    stream: ProcessStream;
    chunk: string;
    offset?: number;
};
