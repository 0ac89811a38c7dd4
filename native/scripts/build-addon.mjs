#!/usr/bin/env node
// Builds the C++ addon with node-gyp (incrementally when build/ is already configured).
// --allow-fail: on any failure print a warning and exit 0, so `npm ci` still succeeds and the SDK runs on the
// portable TypeScript kernels (it says so once at run time).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const allowFail = process.argv.includes('--allow-fail');

function gypScript() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return fromNpm;
  try {
    return createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return null;
  }
}

function fail(msg) {
  if (allowFail) {
    console.warn(`@kestrel/native: the C++ addon was not built (${msg}); Kestrel will use the portable kernels.`);
    process.exit(0);
  }
  console.error(`@kestrel/native: build failed: ${msg}`);
  process.exit(1);
}

const gyp = gypScript();
if (!gyp) fail('node-gyp not found');

// Headers of the running Node when they are installed next to it, so no download is needed.
const prefix = resolve(dirname(process.execPath), '..');
const extra = [];
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) extra.push(`--nodedir=${prefix}`);
extra.push('--jobs', '2');

const gypRun = (cmd) => spawnSync(process.execPath, [gyp, cmd, ...extra], { cwd: root, stdio: 'inherit' });
// Incremental when configured; a stale configuration (e.g. node-addon-api updated) falls back to a rebuild.
let r = existsSync(join(root, 'build', 'Makefile')) ? gypRun('build') : null;
if (!r || r.error || r.status !== 0) r = gypRun('rebuild');
if (r.error) fail(r.error.message);
if (r.status !== 0) fail(`node-gyp exited with ${r.status}`);
