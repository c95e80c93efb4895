// The JavaScript client against the real exec-server binary, in Node
// through the `ws` package.

import assert from 'node:assert/strict';
import {after, before, describe, test} from 'node:test';

import {ConnectionError, OutputCursor, RpcError, connect, decodeBase64} from '../src/index.js';
import {sh, sleep, startServer} from '../support/server.js';

const TOKEN = 'js/client+token=';
const text = (/** @type {import('../src/cursor.js').Segment[]} */ segments) =>
  segments.map((s) => (s.type === 'data' ? new TextDecoder().decode(s.bytes) : `<gap ${s.bytes}>`)).join('');

/**
 * Follows a process until it is closed and returns what was shown.
 * @param {import('../src/index.js').ProcessTarget} target
 * @param {OutputCursor} [cursor]
 */
async function followToEnd(target, cursor = new OutputCursor()) {
  /** @type {import('../src/cursor.js').Segment[]} */
  const shown = [];
  await target.follow(cursor, (segments) => {
    shown.push(...segments);
  }, {waitMs: 2000});
  return {shown, cursor};
}

describe('a server with a token', () => {
  /** @type {Awaited<ReturnType<typeof startServer>>} */
  let server;
  before(async () => {
    server = await startServer({token: TOKEN});
  });
  after(() => server.stop());

  test('the token travels as a subprotocol and a command runs', async () => {
    const client = await connect(server.url, {token: TOKEN, clientName: 'node-test'});
    assert.ok(client.sessionId.length >= 32, client.sessionId);
    const {processId} = await client.start(sh('echo hi; echo oops >&2; exit 3', {streamOutput: false}));
    const {shown, cursor} = await followToEnd(client.target({processId}));
    const out = shown.filter((s) => s.type === 'data' && s.stream === 'stdout');
    const err = shown.filter((s) => s.type === 'data' && s.stream === 'stderr');
    assert.equal(text(out), 'hi\n');
    assert.equal(text(err), 'oops\n');
    assert.equal(cursor.exitCode, 3);
    client.close();
  });

  test('a wrong or missing token is refused with 401', async () => {
    for (const token of ['wrong', undefined]) {
      await assert.rejects(connect(server.url, {token}), (error) => {
        assert.ok(error instanceof ConnectionError);
        assert.equal(error.status, 401);
        return true;
      });
    }
  });

  test('live notifications are handed on exactly once, in order', async () => {
    const client = await connect(server.url, {token: TOKEN});
    const cursor = new OutputCursor();
    let output = '';
    /** @type {(code: number) => void} */
    let exited = () => {};
    const done = new Promise((resolve) => (exited = resolve));
    const decoder = new TextDecoder();
    client.onNotification((notification) => {
      if (notification.method === 'process/output') {
        for (const segment of cursor.acceptNotification(notification.params)) {
          if (segment.type === 'data') output += decoder.decode(segment.bytes, {stream: true});
        }
      } else if (notification.method === 'process/exited') {
        exited(notification.params.exitCode);
      }
    });
    await client.start(sh('seq 1 20000'));
    assert.equal(await done, 0);
    const expected = Array.from({length: 20000}, (_, i) => `${i + 1}\n`).join('');
    assert.equal(output, expected);
    client.close();
  });

  test('errors carry the server code and message', async () => {
    const client = await connect(server.url, {token: TOKEN});
    await assert.rejects(client.call('process/write', {processId: 'nope', chunk: ''}), (error) => {
      assert.ok(error instanceof RpcError);
      assert.equal(error.code, -32600);
      assert.equal(error.rpcMessage, 'unknown process id nope');
      return true;
    });
    client.close();
  });

  test('a dropped connection resumes the same processes with no byte lost or repeated', async () => {
    let client = await connect(server.url, {token: TOKEN});
    const sessionId = client.sessionId;
    // Output keeps coming while the client is away (retention only).
    const script = 'i=1; while [ $i -le 3000 ]; do echo line-$i; i=$((i+1)); [ $((i % 300)) = 0 ] && sleep 0.05; done';
    const {processId} = await client.start(sh(script, {streamOutput: false, onDisconnect: 'detach'}));
    const cursor = new OutputCursor();
    let seen = '';
    const first = await client.target({processId}).read({afterSeq: cursor.afterSeq, waitMs: 2000});
    seen += text(cursor.acceptRead(first));
    assert.ok(seen.length > 0);
    client.close();
    await sleep(200);
    client = await connect(server.url, {token: TOKEN, resumeSessionId: sessionId});
    assert.equal(client.resumed, true);
    const listed = await client.list();
    assert.deepEqual(listed.processes.map((p) => p.processId), [processId]);
    const rest = await followToEnd(client.target({processId}), cursor);
    seen += text(rest.shown);
    const expected = Array.from({length: 3000}, (_, i) => `line-${i + 1}\n`).join('');
    assert.equal(seen, expected);
    assert.equal(cursor.droppedBytes, 0);
    client.close();
  });

  test('a snapshot paints the screen and gives the seq to go on from', async () => {
    const client = await connect(server.url, {token: TOKEN});
    const draw = "printf '\\033[2J\\033[3;5Hhello\\033[1;31m red\\033[0m\\033[10;1Hready'; read line; echo got-$line";
    const {processId} = await client.start(sh(draw, {tty: true, size: {rows: 12, cols: 40}, streamOutput: false}));
    const target = client.target({processId});
    await client.wait(processId, {match: 'ready', timeoutMs: 10_000});
    const snapshot = await target.snapshot();
    assert.deepEqual(snapshot.size, {rows: 12, cols: 40});
    assert.equal(snapshot.screen?.[2], '    hello red');
    assert.ok((snapshot.seq ?? 0) > 0);
    const ansi = new TextDecoder().decode(decodeBase64(/** @type {string} */ (snapshot.screenAnsi)));
    assert.ok(ansi.includes('hello'), ansi);
    assert.match(ansi, /\u001b\[(\d+;)*31[;m]/, 'the colour is kept');
    // Nothing after the snapshot's seq until the program prints again.
    const cursor = new OutputCursor();
    cursor.acceptSnapshot(snapshot);
    const quiet = await target.read({afterSeq: cursor.afterSeq, waitMs: 300});
    assert.equal(quiet.chunks.length, 0);
    await target.write('x\r');
    const {shown} = await followToEnd(target, cursor);
    assert.match(text(shown), /^x\r\ngot-x\r\n$/);
    client.close();
  });
});

describe('a server that retains little', () => {
  /** @type {Awaited<ReturnType<typeof startServer>>} */
  let server;
  before(async () => {
    server = await startServer({args: ['--retained-output-bytes', '4096']});
  });
  after(() => server.stop());

  test('output dropped by retention is reported with its exact count, where it was', async () => {
    const client = await connect(server.url);
    const {processId} = await client.start(sh('seq 1 5000', {streamOutput: false}));
    await client.wait(processId, {timeoutMs: 10_000});
    const {shown, cursor} = await followToEnd(client.target({processId}));
    const total = Array.from({length: 5000}, (_, i) => `${i + 1}\n`).join('');
    const gaps = shown.filter((s) => s.type === 'gap');
    assert.equal(gaps.length, 1, text(shown).slice(0, 200));
    assert.equal(gaps[0].bytes, total.length - 4096);
    assert.equal(cursor.droppedBytes, total.length - 4096);
    // Head, the marker, then the tail: the gap sits where the bytes were
    // (follow() tells the cursor the size of retention's head).
    const [head, tail] = text(shown).split(`<gap ${total.length - 4096}>`);
    assert.equal(head, total.slice(0, 2048));
    assert.equal(tail, total.slice(total.length - 2048));
    client.close();
  });

  test('a gap is placed where the head ends even when the head ends at a chunk boundary', async () => {
    const client = await connect(server.url);
    // Exactly 2048 bytes, then more after a pause: the head ends exactly
    // at the end of the first chunk, and the next one is cut at its front.
    const script = 'head -c 2048 /dev/zero | tr "\\0" a; sleep 0.3; head -c 10000 /dev/zero | tr "\\0" b';
    const {processId} = await client.start(sh(script, {streamOutput: false}));
    await client.wait(processId, {timeoutMs: 10_000});
    const {shown} = await followToEnd(client.target({processId}));
    assert.equal(text(shown), `${'a'.repeat(2048)}<gap ${10000 - 2048}>${'b'.repeat(2048)}`);
    client.close();
  });
});

describe('observers', () => {
  /** @type {Awaited<ReturnType<typeof startServer>>} */
  let server;
  before(async () => {
    server = await startServer({token: TOKEN});
  });
  after(() => server.stop());

  test("another connection lists, reads and types into a session's process without learning its id", async () => {
    const agent = await connect(server.url, {token: TOKEN, clientName: 'agent'});
    const person = await connect(server.url, {token: TOKEN, clientName: 'person'});
    const {processId} = await agent.start(
      sh('echo agent-ready; read line; echo agent-got-$line', {tty: true, streamOutput: false, labels: {role: 'agent-shell'}}),
    );
    await agent.wait(processId, {match: 'agent-ready', timeoutMs: 10_000});

    const listed = await person.observeList({labels: {role: 'agent-shell'}});
    assert.equal(listed.processes.length, 1);
    const [entry] = listed.processes;
    assert.equal(entry.processId, processId);
    assert.equal(entry.mine, false);
    assert.equal(entry.ownerClient, 'agent');
    assert.equal(entry.ownerAttached, true);
    assert.deepEqual(entry.size, {rows: 24, cols: 80});
    assert.ok(!JSON.stringify(listed).includes(agent.sessionId), 'the session id stays secret');
    assert.notEqual(entry.owner, agent.sessionId);
    // The agent sees itself as the owner of the same process.
    const own = await agent.observeList({labels: {role: 'agent-shell'}});
    assert.equal(own.processes[0].mine, true);
    assert.equal(own.processes[0].owner, entry.owner);

    const watched = person.target(entry);
    const cursor = new OutputCursor();
    const first = cursor.acceptRead(await watched.read({afterSeq: 0, waitMs: 2000}));
    assert.match(text(first), /agent-ready/);
    await watched.write('from-person\r');
    const result = await agent.wait(processId, {timeoutMs: 10_000});
    assert.equal(result.exitCode, 0);
    const rest = await followToEnd(watched, cursor);
    assert.match(text(rest.shown), /agent-got-from-person/);

    await assert.rejects(person.call('observe/read', {owner: 'nobody', processId}), /unknown owner nobody/);
    await assert.rejects(person.call('observe/read', {owner: agent.sessionId, processId}), /unknown owner/);
    agent.close();
    person.close();
  });

  test('an observer that reads slowly never holds the process back', async () => {
    const agent = await connect(server.url, {token: TOKEN, clientName: 'agent'});
    const person = await connect(server.url, {token: TOKEN});
    // 4 MiB, four times what retention keeps; nobody reads while it runs.
    const {processId} = await agent.start(sh('head -c 4194304 /dev/zero | tr "\\0" x', {streamOutput: false}));
    const started = Date.now();
    const waited = await agent.wait(processId, {timeoutMs: 20_000});
    assert.equal(waited.reason, 'exited');
    assert.ok(Date.now() - started < 15_000);
    const [entry] = (await person.observeList()).processes.filter((p) => p.processId === processId);
    const {shown, cursor} = await followToEnd(person.target(entry));
    const data = shown.filter((s) => s.type === 'data').reduce((n, s) => n + s.bytes.length, 0);
    assert.equal(data + cursor.droppedBytes, 4194304);
    assert.ok(cursor.droppedBytes > 0);
    agent.close();
    person.close();
  });
});
