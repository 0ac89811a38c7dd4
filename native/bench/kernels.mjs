#!/usr/bin/env node
// Microbenchmark of the native kernels on the anchor model's shapes (DeepSeek-V2-Lite-like: hidden 1024,
// 64 experts of 512, top-6, vocab 32000). Prints one JSON line; with --pretty a table too.
//   node native/bench/kernels.mjs [--threads N] [--isa avx2] [--pretty]
// Weight sets larger than the last-level cache are rotated so decode-shaped calls stream from DRAM, as in
// real decoding. GB/s counts weight bytes (data + scales) read per call; GOP/s counts 2·m·n·k.
import { randomFillSync } from 'node:crypto';
import { loadNativeKernels, nativeInfo, setNativeIsa } from '../dist/addon.js';
import { quantizeQ8 } from '../dist/portable/quantize.js';

const arg = (name, def) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : def; };
const threads = Number(arg('threads', '2'));
const K = loadNativeKernels({ threads });
if (arg('isa')) setNativeIsa(arg('isa'));

function randF32(n, scale) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (Math.random() * 2 - 1) * scale;
  return a;
}
function weight(n, k, format) {
  if (format === 'q8') {
    const kp = Math.ceil(k / 32) * 32;
    const data = new Int8Array(n * kp);
    randomFillSync(data);
    for (let i = 0; i < data.length; i++) if (data[i] === -128) data[i] = -127;
    return K.prepareLinear({ format: 'q8', n, k, data, scales: randF32(n * kp / 32, 0.01).map(Math.abs) });
  }
  if (format === 'bf16') {
    const f = randF32(n * k, 1 / Math.sqrt(k));
    const u = new Uint32Array(f.buffer);
    const data = new Uint16Array(n * k);
    for (let i = 0; i < data.length; i++) data[i] = u[i] >>> 16;
    return K.prepareLinear({ format: 'bf16', n, k, data });
  }
  return K.prepareLinear({ format: 'f32', n, k, data: randF32(n * k, 1 / Math.sqrt(k)) });
}
const bytesOf = (w) => w.data.byteLength + (w.format === 'q8' ? w.scales.byteLength : 0);

function time(fn, minMs = 400) {
  fn(0); // warm-up
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < minMs) { fn(n++); t = performance.now(); }
  return (t - t0) / 1000 / n;
}

const results = [];
function record(name, s, extra) {
  results.push({ name, ms: +(s * 1000).toFixed(3), ...extra });
}

// --- linear, decode shape (m = 1): weights rotated over ~256 MB so they come from DRAM
for (const format of ['q8', 'bf16', 'f32']) {
  const [n, k] = [512, 1024];
  const per = n * k * (format === 'q8' ? 1.125 : format === 'bf16' ? 2 : 4);
  const count = Math.max(8, Math.ceil(256e6 / per));
  const ws = Array.from({ length: count }, () => weight(n, k, format));
  const x = randF32(k, 1), out = new Float32Array(n);
  const s = time((i) => K.linear(x, 1, ws[i % count], null, out));
  record(`linear ${format} m=1 ${n}x${k}`, s, { GBps: +(bytesOf(ws[0]) / s / 1e9).toFixed(2) });
}

// --- linear, prefill shapes (compute bound): GOP/s
for (const format of ['q8', 'bf16', 'f32']) {
  for (const [m, n, k] of [[512, 1024, 1024], [48, 512, 1024]]) {
    const w = weight(n, k, format);
    const x = randF32(m * k, 1), out = new Float32Array(m * n);
    const s = time(() => K.linear(x, m, w, null, out));
    record(`linear ${format} m=${m} ${n}x${k}`, s, { GOPs: +((2 * m * n * k) / s / 1e9).toFixed(1) });
  }
}

// --- MoE experts: 64 experts (512 x 1024), top-6; decode rotates over 4 layers' experts (~450 MB q8)
for (const format of ['q8', 'bf16']) {
  const E = 64, h = 1024, inter = 512, topK = 6;
  const layers = format === 'q8' ? 4 : 2;
  const sets = Array.from({ length: layers }, () => Array.from({ length: E }, () => ({ gate: weight(inter, h, format), up: weight(inter, h, format), down: weight(h, inter, format) })));
  for (const m of [1, 512]) {
    const x = randF32(m * h, 1), out = new Float32Array(m * h);
    const idx = new Int32Array(m * topK), wt = new Float32Array(m * topK).fill(1 / topK);
    for (let t = 0; t < m; t++) {
      const pick = new Set();
      while (pick.size < topK) pick.add(Math.floor(Math.random() * E));
      [...pick].forEach((e, j) => { idx[t * topK + j] = e; });
    }
    const s = time((i) => K.moeExperts(x, m, h, sets[i % layers], idx, wt, topK, out), m === 1 ? 400 : 1500);
    const used = new Set(idx).size;
    const bytes = used * 3 * bytesOf(sets[0][0].gate);
    const extra = m === 1 ? { GBps: +(bytes / s / 1e9).toFixed(2) } : { GOPs: +((2 * m * topK * 3 * h * inter) / s / 1e9).toFixed(1) };
    record(`moeExperts ${format} m=${m} E=${E} top${topK}`, s, extra);
  }
}

// --- attention: decode at depth 512 (MLA absorbed form: 16 heads sharing one 288/256 latent), prefill 512
{
  const H = 16, dqk = 288, dv = 256;
  for (const [tq, tk] of [[1, 512], [512, 512]]) {
    const q = randF32(tq * H * dqk, 1), k = randF32(tk * dqk, 1), v = randF32(tk * dv, 1), out = new Float32Array(tq * H * dv);
    const p = { tq, tk, nHeads: H, nKvHeads: 1, dqk, dv, qStride: H * dqk, kStride: dqk, vStride: dv, outStride: H * dv, scale: 0.1, causal: true, qPos0: tk - tq };
    const s = time(() => K.attention(q, k, v, out, p));
    record(`attention tq=${tq} tk=${tk} H=${H} dqk=${dqk} dv=${dv}`, s, {});
  }
}

const info = { ...nativeInfo(), kernels: K.name, results };
if (process.argv.includes('--pretty')) {
  console.error(`${K.name}, ${info.threads} threads`);
  for (const r of results) console.error(`${r.name.padEnd(42)} ${String(r.ms).padStart(9)} ms  ${r.GBps !== undefined ? `${r.GBps} GB/s` : r.GOPs !== undefined ? `${r.GOPs} GOP/s` : ''}`);
}
console.log(JSON.stringify(info));
