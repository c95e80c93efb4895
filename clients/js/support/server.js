// Starts the real exec-server binary for a test: `EXEC_SERVER_BIN` names it
// (crates/cli/tests/js_client.rs sets it; by hand:
// `EXEC_SERVER_BIN=../../target/debug/exec-server npm test`).

import {spawn} from 'node:child_process';
import {mkdtempSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {createInterface} from 'node:readline';

/**
 * @param {{token?: string, args?: string[]}} [options]
 * @returns {Promise<{url: string, token: string | undefined, stop: () => Promise<void>}>}
 */
export async function startServer(options = {}) {
  const binary = process.env.EXEC_SERVER_BIN;
  if (!binary) throw new Error('set EXEC_SERVER_BIN to the exec-server binary (cargo build first)');
  const args = ['--listen', 'ws://127.0.0.1:0', ...(options.args ?? [])];
  if (options.token) {
    const dir = mkdtempSync(join(tmpdir(), 'exec-server-js-'));
    const file = join(dir, 'token');
    writeFileSync(file, options.token, {mode: 0o600});
    args.push('--auth-token-file', file);
  }
  const child = spawn(binary, args, {stdio: ['ignore', 'ignore', 'pipe']});
  const lines = createInterface({input: /** @type {import('node:stream').Readable} */ (child.stderr)});
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no banner from exec-server in 20 s')), 20_000);
    child.once('exit', (code) => reject(new Error(`exec-server exited early with ${code}`)));
    lines.on('line', (line) => {
      const found = line.split(/\s+/).find((word) => word.startsWith('ws://'));
      if (found) {
        clearTimeout(timer);
        resolve(found);
      }
    });
  });
  return {
    url,
    token: options.token,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** A shell command as `process/start` params. */
export function sh(/** @type {string} */ script, extra = {}) {
  return {
    argv: ['/bin/sh', '-c', script],
    cwd: '/',
    env: {PATH: '/usr/local/bin:/usr/bin:/bin', TERM: 'xterm-256color'},
    ...extra,
  };
}

/** @param {number} ms */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
