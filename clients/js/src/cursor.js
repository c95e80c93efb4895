// Exactly-once accounting of one process's output across notifications,
// reads, snapshots and reconnections, with gaps reported, never hidden.

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
  constructor(options = {}) {
    /** The highest seq handed on or skipped past; the next `afterSeq`. */
    this.afterSeq = options.afterSeq ?? 0;
    /** @type {number | undefined} */
    this.headBytes = options.headBytes;
    /**
     * Bytes handed on per stream since the stream's start; only known
     * while the cursor has followed from seq 0 without a gap or snapshot.
     * @type {Map<string, number> | null}
     */
    this.streamBytes = this.afterSeq === 0 ? new Map() : null;
    /**
     * Next expected byte offset per stream, once known.
     * @type {Map<string, number>}
     */
    this.offsets = new Map();
    /** Total bytes reported as dropped so far. */
    this.droppedBytes = 0;
    /** @type {number | null} */
    this.exitCode = null;
    this.exited = false;
    /** All output was delivered and the process reaped. */
    this.closed = false;
  }

  /**
   * Starts from a snapshot: its screen (or retained output) stands for
   * everything up to `snapshot.seq`.
   * @param {SnapshotResponse} snapshot
   */
  acceptSnapshot(snapshot) {
    this.afterSeq = Math.max(this.afterSeq, snapshot.seq ?? 0);
    this.offsets.clear();
    this.streamBytes = null;
    if (!snapshot.running) {
      this.exited = true;
      this.exitCode = snapshot.exitCode ?? null;
    }
  }

  /**
   * One live `process/output` notification.
   * @param {WireChunk} chunk
   * @returns {Segment[]}
   */
  acceptNotification(chunk) {
    if (chunk.offset === undefined && chunk.seq <= this.afterSeq) return [];
    const segments = this.#chunk(chunk);
    this.afterSeq = Math.max(this.afterSeq, chunk.seq);
    return segments;
  }

  /**
   * One `process/read` answer, asked with `afterSeq: cursor.afterSeq`.
   * @param {Omit<ReadResponse, 'chunks'> & {chunks: WireChunk[], complete?: boolean}} result
   * @returns {Segment[]}
   */
  acceptRead(result) {
    const before = this.afterSeq;
    const chunks = result.chunks.filter((c) => c.offset !== undefined || c.seq > before);
    const withOffsets = chunks.length > 0 && chunks.every((c) => c.offset !== undefined);
    /** @type {Segment[]} */
    const segments = [];
    let gap = withOffsets ? 0 : result.droppedBytes;
    if (gap > 0) {
      const at = this.#gapPosition(chunks);
      chunks.forEach((chunk, i) => {
        if (i === at && gap > 0) {
          segments.push({type: 'gap', stream: null, bytes: gap});
          this.droppedBytes += gap;
          gap = 0;
        }
        segments.push(...this.#chunk(chunk));
      });
      if (gap > 0) {
        segments.push({type: 'gap', stream: null, bytes: gap});
        this.droppedBytes += gap;
      }
    } else {
      for (const chunk of chunks) segments.push(...this.#chunk(chunk));
    }
    const last = chunks.length > 0 ? chunks[chunks.length - 1].seq : 0;
    this.afterSeq = Math.max(before, result.nextSeq, last);
    if (result.exited) {
      this.exited = true;
      this.exitCode = result.exitCode ?? null;
    }
    this.closed = this.closed || result.closed;
    return segments;
  }

  /**
   * Where, among a read's chunks, retention's head meets its tail.
   * @param {WireChunk[]} chunks
   */
  #gapPosition(chunks) {
    const head = this.headBytes;
    if (this.streamBytes && head !== undefined) {
      const counted = new Map(this.streamBytes);
      for (let i = 0; i < chunks.length; i++) {
        const before = counted.get(chunks[i].stream) ?? 0;
        if (before >= head) return i;
        counted.set(chunks[i].stream, before + decodedLength(chunks[i].chunk));
      }
      return chunks.length;
    }
    for (let i = 1; i < chunks.length; i++) {
      const previous = chunks[i - 1].seq;
      if (chunks[i].seq === previous || chunks[i].seq > previous + 1) return i;
    }
    return 0;
  }

  /**
   * @param {WireChunk} chunk
   * @returns {Segment[]}
   */
  #chunk(chunk) {
    let bytes = decodeBase64(chunk.chunk);
    if (this.streamBytes) {
      this.streamBytes.set(chunk.stream, (this.streamBytes.get(chunk.stream) ?? 0) + bytes.length);
    }
    if (chunk.offset === undefined) return bytes.length ? [{type: 'data', stream: chunk.stream, bytes}] : [];
    /** @type {Segment[]} */
    const segments = [];
    const expected = this.offsets.get(chunk.stream);
    let start = chunk.offset;
    if (expected !== undefined) {
      if (start + bytes.length <= expected) return [];
      if (start < expected) {
        bytes = bytes.subarray(expected - start);
        start = expected;
      } else if (start > expected) {
        segments.push({type: 'gap', stream: chunk.stream, bytes: start - expected});
        this.droppedBytes += start - expected;
      }
    } else if (this.afterSeq === 0 && start > 0) {
      // Reading from the very beginning: everything before the first
      // chunk was dropped.
      segments.push({type: 'gap', stream: chunk.stream, bytes: start});
      this.droppedBytes += start;
    }
    this.offsets.set(chunk.stream, start + bytes.length);
    if (bytes.length) segments.push({type: 'data', stream: chunk.stream, bytes});
    return segments;
  }
}

/**
 * The length of the bytes a padded base64 text decodes to.
 * @param {string} text
 */
function decodedLength(text) {
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  return (text.length / 4) * 3 - padding;
}

/**
 * Decodes standard base64 into bytes.
 * @param {string} text
 * @returns {Uint8Array}
 */
export function decodeBase64(text) {
  const NodeBuffer = /** @type {any} */ (globalThis).Buffer;
  if (NodeBuffer) {
    const buffer = NodeBuffer.from(text, 'base64');
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
  }
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * Encodes bytes (or a string, as UTF-8) as standard base64.
 * @param {Uint8Array | string} data
 * @returns {string}
 */
export function encodeBase64(data) {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  const NodeBuffer = /** @type {any} */ (globalThis).Buffer;
  if (NodeBuffer) return NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64');
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
