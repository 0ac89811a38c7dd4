#!/usr/bin/env node
// A simulated line camera: every 1/rate seconds it "captures" a real magnetic-tile image (or an ELPV
// cell) from datasets/ and delivers it, either to a callback (line.mjs) or as a file in a drop folder
// for `kestrel watch` (written under a temporary name, then renamed, as real cameras do; --in-place
// writes slowly under the final name to show that the watcher waits for the file to settle).
//
//   node examples/qc-line/camera.mjs --drop /tmp/qc-line/drop --rate 2 --parts 20 [--in-place]
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Real line images, shuffled with a fixed seed so a run is repeatable; defect classes included. */
export function lineImages(dataset = 'magnetic-tile', seed = 7) {
  const root = join(ROOT, 'datasets', dataset);
  const fallback = join(ROOT, 'test', 'fixtures', 'qc-serve');
  const files = [];
  const walk = (d, depth) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory() && depth < 3) walk(join(d, e.name), depth + 1);
      else if (/\.(jpe?g|png)$/i.test(e.name) && !/_mask|\/Imgs\/.*\.png$/.test(join(d, e.name))) files.push(join(d, e.name));
    }
  };
  walk(existsSync(root) ? root : fallback, 0);
  files.sort();
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  for (let i = files.length - 1; i > 0; i--) { const j = Math.floor(rnd() * (i + 1)); [files[i], files[j]] = [files[j], files[i]]; }
  return files;
}

/** Capture `parts` images at `rate` per second; calls `deliver(partId, bytes, file)` for each. Bounded. */
export async function runCamera({ rate = 2, parts = 20, dataset = 'magnetic-tile', deliver }) {
  const files = lineImages(dataset);
  const period = 1000 / rate;
  const t0 = Date.now();
  for (let i = 0; i < parts; i++) {
    const due = t0 + i * period;
    if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    const file = files[i % files.length];
    const partId = `P${String(i + 1).padStart(5, '0')}`;
    await deliver(partId, readFileSync(file), file);
  }
}

/** Deliver into a folder: temporary name + rename (atomic), or slow in-place writes. */
export function folderDelivery(drop, inPlace = false) {
  mkdirSync(drop, { recursive: true });
  return async (partId, bytes, file) => {
    const name = `${partId}${file.slice(file.lastIndexOf('.'))}`;
    if (!inPlace) {
      writeFileSync(join(drop, `.${name}.part`), bytes);
      renameSync(join(drop, `.${name}.part`), join(drop, name));
      return;
    }
    const fd = openSync(join(drop, name), 'w');
    try {
      const step = Math.ceil(bytes.length / 4);
      for (let o = 0; o < bytes.length; o += step) { writeSync(fd, bytes, o, Math.min(step, bytes.length - o)); await new Promise((r) => setTimeout(r, 150)); }
    } finally { closeSync(fd); }
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const a = process.argv.slice(2);
  const get = (k, d) => { const i = a.indexOf(`--${k}`); return i >= 0 && a[i + 1] && !a[i + 1].startsWith('--') ? a[i + 1] : d; };
  const drop = resolve(get('drop', '/tmp/qc-line/drop'));
  const rate = Number(get('rate', '2')), parts = Number(get('parts', '20'));
  console.error(`camera: ${parts} parts at ${rate}/s into ${drop}`);
  await runCamera({ rate, parts, dataset: get('dataset', 'magnetic-tile'), deliver: folderDelivery(drop, a.includes('--in-place')) });
  console.error('camera: done');
}
