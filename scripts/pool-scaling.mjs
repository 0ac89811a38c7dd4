#!/usr/bin/env node
// defects-elpv through pipeline(..., { workers: N }) without the server: 48 ELPV holdout cells, 2 calls
// in flight per worker, for workers 1, 2, 1, 2; prints inspections/s and the cores the process got
// (process.cpuUsage covers its worker threads). Needs npx tsc -b.
import { readFileSync } from 'node:fs';
const { pipeline } = await import('../packages/pipelines/dist/index.js');
const root = new URL('../', import.meta.url).pathname;
const files = readFileSync(`${root}models/defects-elpv/holdout.txt`, 'utf8').split('\n').filter(Boolean).slice(0, 48).map((f) => readFileSync(`${root}datasets/elpv/${f}`));
for (const workers of [1, 2, 1, 2]) {
  const d = await pipeline('defects', { model: 'defects-elpv', workers });
  await Promise.all(files.slice(0, 4).map((b) => d(b)));
  const c0 = process.cpuUsage(); const t0 = performance.now();
  let i = 0;
  await Promise.all(Array.from({ length: workers * 2 }, async () => { while (i < files.length) await d(files[i++]); }));
  const s = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0); console.log(JSON.stringify({ workers, perS: +(files.length / s).toFixed(1), wallS: +s.toFixed(2), cores: +((c.user + c.system) / 1e6 / s).toFixed(2) }));
  await d.dispose();
}
