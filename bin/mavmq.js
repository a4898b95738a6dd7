#!/usr/bin/env -S node --max-semi-space-size=1
// --max-semi-space-size=1: a small young generation. At telemetry rates the default (16 MB
// semi-spaces) only inflates RSS on a Pi; `npm run bench` measures both (RSS and CPU per frame drop).
// A checkout runs the TypeScript sources through tsx (never a stale build); an install
// (/opt/mavmq: dist/ and production dependencies only) runs the compiled JavaScript.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'src', 'cli', 'run.ts');
const tsx = join(root, 'node_modules', 'tsx');
if (existsSync(source) && existsSync(tsx) && process.env.MAVMQ_USE_DIST !== '1') {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(source).href);
} else {
  await import(pathToFileURL(join(root, 'dist', 'cli', 'run.js')).href);
}
