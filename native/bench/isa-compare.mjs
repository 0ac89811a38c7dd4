#!/usr/bin/env node
// Prefill-shaped linears (q8 / bf16 / f32 weights) on every instruction set this CPU runs, interleaved round by
// round in one process so a shared machine's load hits every ISA alike; prints the median GOP/s per ISA and the
// ratio to the first one listed. Also GOP per CPU-second (process.cpuUsage, all threads): on a machine shared
// with other jobs, wall time measures the scheduler, CPU time still measures the kernel. Usage (after npx tsc -b):
//   node native/bench/isa-compare.mjs [--threads 2] [--rounds 7] [--isas avx512-vnni,avx512,avx2]
import { loadNativeKernels, nativeInfo, setNativeIsa } from '../dist/addon.js';
import { quantizeQ8 } from '../dist/portable/quantize.js';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { threads: { type: 'string', default: '2' }, rounds: { type: 'string', default: '7' }, isas: { type: 'string' } } });
const K = loadNativeKernels({ threads: Number(values.threads) });
const isas = values.isas ? values.isas.split(',') : nativeInfo().supportedIsas.filter((i) => i !== 'scalar');
const randF32 = (n, s) => Float32Array.from({ length: n }, () => (Math.random() * 2 - 1) * s);
function weight(n, k, format) {
  const f = { format: 'f32', n, k, data: randF32(n * k, 1 / Math.sqrt(k)) };
  if (format === 'q8') return K.prepareLinear(quantizeQ8(f));
  if (format === 'bf16') {
    const u = new Uint32Array(f.data.buffer);
    return K.prepareLinear({ format: 'bf16', n, k, data: Uint16Array.from(u, (v) => v >>> 16) });
  }
  return K.prepareLinear(f);
}
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
const out = [];
for (const format of ['q8', 'bf16', 'f32']) {
  for (const [m, n, k] of [[512, 1024, 1024], [729, 1152, 1152]]) {
    const w = weight(n, k, format);
    const x = randF32(m * k, 1), o = new Float32Array(m * n);
    const runs = Object.fromEntries(isas.map((i) => [i, []]));
    const cpu = Object.fromEntries(isas.map((i) => [i, []]));
    for (let r = 0; r < Number(values.rounds); r++) {
      for (const isa of isas) {
        if (!setNativeIsa(isa)) throw new Error(`this CPU cannot run ${isa}`);
        K.linear(x, m, w, null, o); // warm-up
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        K.linear(x, m, w, null, o);
        K.linear(x, m, w, null, o);
        const c = process.cpuUsage(c0);
        runs[isa].push((2 * 2 * m * n * k) / ((performance.now() - t0) / 1000) / 1e9);
        cpu[isa].push((2 * 2 * m * n * k) / ((c.user + c.system) / 1e6) / 1e9);
      }
    }
    const base = median(runs[isas[0]]);
    const row = { op: `linear ${format} m=${m} ${n}x${k}` };
    const cbase = median(cpu[isas[0]]);
    for (const isa of isas) {
      row[isa] = { GOPs: +median(runs[isa]).toFixed(1), ratio: +(median(runs[isa]) / base).toFixed(2), GOPsPerCpuS: +median(cpu[isa]).toFixed(1), cpuRatio: +(median(cpu[isa]) / cbase).toFixed(2) };
    }
    out.push(row);
    console.error(`${row.op.padEnd(30)} ${isas.map((i) => `${i} ${row[i].GOPs} GOP/s (${row[i].ratio}×), ${row[i].GOPsPerCpuS} GOP/cpu-s (${row[i].cpuRatio}×)`).join('  ')}`);
  }
}
setNativeIsa(nativeInfo().supportedIsas[0]);
console.log(JSON.stringify({ threads: nativeInfo().threads, results: out }));
