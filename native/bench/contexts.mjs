// Two worker_threads with their own native engines (1 thread each) running a big q8 linear at the same time,
// against one alone, in the same run: the speed-up says whether contexts really compute in parallel.
// Usage: node native/bench/contexts.mjs [--reps 20]  (after npm run build:native)
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { reps: { type: 'string', default: '20' } } });
const reps = Number(values.reps);
const binary = fileURLToPath(new URL('../build/Release/kestrel_native.node', import.meta.url));
const code = `
const { parentPort, workerData: d } = require('node:worker_threads');
const b = require(d.binary);
b.setThreads(1);
const m = 64, k = 2048, n = 2048, kp = k;
const data = new Int8Array(n * kp), scales = new Float32Array(n * kp / 32).fill(0.01);
for (let i = 0; i < data.length; i++) data[i] = (i * 7919) % 255 - 127;
const w = { format: 'q8', n, k, data, scales };
w.handle = b.prepareLinear(w);
const x = new Float32Array(m * k).map((_, i) => Math.sin(i)), out = new Float32Array(m * n);
b.linear(x, m, w, null, out);
parentPort.once('message', () => {
  const t0 = performance.now();
  for (let i = 0; i < d.reps; i++) b.linear(x, m, w, null, out);
  parentPort.postMessage(performance.now() - t0);
});
parentPort.postMessage('ready');
`;
// CPU the process got per wall second in each phase: on a shared machine, two workers can only beat one
// when the scheduler gives the process more than one core.
const cores = {};
async function run(workers) {
  const ws = Array.from({ length: workers }, () => new Worker(code, { eval: true, workerData: { binary, reps } }));
  await Promise.all(ws.map((w) => new Promise((r) => w.once('message', r))));
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  await Promise.all(ws.map((w) => { const p = new Promise((r) => w.once('message', r)); w.postMessage('go'); return p; }));
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  cores[workers] = +((c.user + c.system) / 1000 / wall).toFixed(2);
  await Promise.all(ws.map((w) => w.terminate()));
  return wall;
}
const one = await run(1);
const two = await run(2);
const res = { reps, one_worker_ms: +one.toFixed(1), two_workers_ms: +two.toFixed(1), throughput_ratio: +((2 * one) / two).toFixed(2), cores_used: cores };
console.log(JSON.stringify(res));
