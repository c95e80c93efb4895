// Generates types/protocol.d.ts from the committed JSON Schema
// (schema/exec-server.schema.json, itself generated from the Rust types).
//
//   node scripts/generate-types.mjs          # write types/protocol.d.ts
//   node scripts/generate-types.mjs --check  # fail when it is stale (npm test)

import {readFileSync, writeFileSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const schemaPath = join(here, '../../../schema/exec-server.schema.json');
const outputPath = join(here, '../types/protocol.d.ts');

/**
 * @param {any} schema
 * @returns {string} a TypeScript type expression
 */
function typeOf(schema) {
  if (schema === true || schema === undefined || Object.keys(schema).length === 0) return 'unknown';
  if (schema.$ref) return schema.$ref.replace('#/$defs/', '');
  if (schema.enum) return schema.enum.map((value) => JSON.stringify(value)).join(' | ');
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  const union = schema.anyOf ?? schema.oneOf;
  if (union) return union.map(typeOf).join(' | ');
  if (Array.isArray(schema.type)) {
    return schema.type.map((type) => typeOf({...schema, type})).join(' | ');
  }
  switch (schema.type) {
    case 'string':
      return 'string';
    case 'integer':
    case 'number':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'null':
      return 'null';
    case 'array':
      return `Array<${typeOf(schema.items)}>`;
    case 'object':
      if (schema.properties) return objectType(schema, '');
      if (schema.additionalProperties) return `Record<string, ${typeOf(schema.additionalProperties)}>`;
      return 'Record<string, never>';
    default:
      throw new Error(`unsupported schema ${JSON.stringify(schema)}`);
  }
}

/**
 * @param {string | undefined} text
 * @param {string} indent
 */
function doc(text, indent) {
  if (!text) return '';
  const lines = text.split('\n');
  return `${indent}/**\n${lines.map((line) => `${indent} * ${line}`.trimEnd()).join('\n')}\n${indent} */\n`;
}

/**
 * @param {any} schema
 * @param {string} indent
 */
function objectType(schema, indent) {
  const required = new Set(schema.required ?? []);
  const members = Object.entries(schema.properties).map(([name, property]) => {
    // Fields with a default may be left out by a client.
    const optional = required.has(name) ? '' : '?';
    return `${doc(property.description, `${indent}  `)}${indent}  ${name}${optional}: ${typeOf(property)};`;
  });
  return `{\n${members.join('\n')}\n${indent}}`;
}

/** @param {any} schema */
export function generate(schema) {
  const out = [
    '// Generated from schema/exec-server.schema.json by scripts/generate-types.mjs.',
    '// Do not edit: change the Rust types, regenerate the schema, then run',
    '// `node scripts/generate-types.mjs`.',
    '',
  ];
  for (const [name, definition] of Object.entries(schema.$defs)) {
    out.push(doc(definition.description, '').trimEnd());
    if (definition.type === 'object' && definition.properties) {
      out.push(`export interface ${name} ${objectType(definition, '')}`);
    } else {
      out.push(`export type ${name} = ${typeOf(definition)};`);
    }
    out.push('');
  }
  out.push('/** Every request: its params and its result. */');
  out.push('export interface Methods {');
  for (const [name, method] of Object.entries(schema.methods)) {
    out.push(`  ${JSON.stringify(name)}: {params: ${typeOf(method.params)}; result: ${typeOf(method.result)}};`);
  }
  out.push('}');
  out.push('');
  out.push('/** Every notification and its params. */');
  out.push('export interface Notifications {');
  for (const [name, notification] of Object.entries(schema.notifications)) {
    out.push(`  ${JSON.stringify(name)}: {params: ${typeOf(notification.params)}};`);
  }
  out.push('}');
  out.push('');
  return out.filter((line, i, all) => !(line === '' && all[i - 1] === '')).join('\n');
}

const generated = generate(JSON.parse(readFileSync(schemaPath, 'utf8')));
if (process.argv.includes('--check')) {
  const committed = readFileSync(outputPath, 'utf8');
  if (committed !== generated) {
    console.error('types/protocol.d.ts is stale: run `node scripts/generate-types.mjs` and commit it');
    process.exit(1);
  }
} else {
  writeFileSync(outputPath, generated);
}
