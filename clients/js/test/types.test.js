// The client's types follow the committed JSON Schema: the protocol types
// are generated from it (and must be up to date), the client's JSDoc is
// checked against them by the TypeScript compiler, and the published
// declarations are what the compiler emits from the sources.

import assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import {mkdtempSync, readFileSync, readdirSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join} from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(root, 'node_modules/typescript/bin/tsc');

test('types/protocol.d.ts is generated from the committed schema', () => {
  execFileSync(process.execPath, [join(root, 'scripts/generate-types.mjs'), '--check'], {stdio: 'inherit'});
});

test('the sources type-check against the protocol types', () => {
  execFileSync(process.execPath, [tsc, '-p', root], {stdio: 'inherit'});
});

test('the committed declarations are what the sources declare', () => {
  const out = mkdtempSync(join(tmpdir(), 'exec-server-js-types-'));
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.types.json'), '--outDir', out], {stdio: 'inherit'});
  for (const file of readdirSync(out).filter((name) => name.endsWith('.d.ts'))) {
    assert.equal(
      readFileSync(join(root, 'types', file), 'utf8'),
      readFileSync(join(out, file), 'utf8'),
      `types/${file} is stale: run \`npx tsc -p tsconfig.types.json\` in clients/js`,
    );
  }
});

test('every method of the schema is typed, with its params and result', () => {
  const schema = JSON.parse(readFileSync(join(root, '../../schema/exec-server.schema.json'), 'utf8'));
  const types = readFileSync(join(root, 'types/protocol.d.ts'), 'utf8');
  for (const method of Object.keys(schema.methods)) {
    assert.ok(types.includes(`${JSON.stringify(method)}: {params:`), `${method} missing from types`);
  }
  assert.ok(types.includes('"observe/read": {params: ObservedReadParams; result: ReadResponse}'));
});
