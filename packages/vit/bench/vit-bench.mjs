// Side-by-side ViT encode timing on each available backend (portable TS vs native CPU).
// A synthetic ViT-S/16-like encoder (random weights): 224 px, patch 16 (196 patches), width 384,
// 6 heads, 6 layers, MLP 1536; 3 tiles per call (a 2x1 DeepSeek-VL2 image = global + 2 local tiles).
// Run after `npx tsc -b`:  nice -n 5 node packages/vit/bench/vit-bench.mjs
import { Tensor } from '../../core/dist/index.js';
import { availableBackends } from '../../../native/dist/index.js';
import { VisionTransformer } from '../dist/index.js';

const cfg = { image_size: 224, patch_size: 16, width: 384, layers: 6, heads: 6, mlp_ratio: 4 };
const D = cfg.width, P = cfg.patch_size, M = D * cfg.mlp_ratio, N = (cfg.image_size / P) ** 2;
let seed = 1;
const rnd = (n, s) => { const a = new Float32Array(n); for (let i = 0; i < n; i++) { seed = (seed * 1103515245 + 12345) >>> 0; a[i] = ((seed / 2 ** 32) - 0.5) * 2 * s; } return a; };
const w = new Map();
const put = (n, shape, s) => w.set(n, new Tensor('f32', shape, rnd(shape.reduce((a, b) => a * b, 1), s)));
put('vision.patch_embed.proj.weight', [D, 3, P, P], 1 / Math.sqrt(3 * P * P)); put('vision.patch_embed.proj.bias', [D], 0.02);
put('vision.pos_embed', [1, N, D], 0.2);
for (let i = 0; i < cfg.layers; i++) {
  const b = `vision.blocks.${i}.`;
  for (const n of ['norm1', 'norm2']) { w.set(b + n + '.weight', new Tensor('f32', [D], new Float32Array(D).fill(1))); put(b + n + '.bias', [D], 0.05); }
  put(b + 'attn.qkv.weight', [3 * D, D], 1 / Math.sqrt(D)); put(b + 'attn.qkv.bias', [3 * D], 0.02);
  put(b + 'attn.proj.weight', [D, D], 1 / Math.sqrt(D)); put(b + 'attn.proj.bias', [D], 0.02);
  put(b + 'mlp.fc1.weight', [M, D], 1 / Math.sqrt(D)); put(b + 'mlp.fc1.bias', [M], 0.02);
  put(b + 'mlp.fc2.weight', [D, M], 1 / Math.sqrt(M)); put(b + 'mlp.fc2.bias', [D], 0.02);
}
w.set('vision.norm.weight', new Tensor('f32', [D], new Float32Array(D).fill(1))); put('vision.norm.bias', [D], 0.05);
const src = { has: (n) => w.has(n), read: async (n) => w.get(n) };
const tiles = 3;
const px = new Tensor('f32', [tiles, 3, cfg.image_size, cfg.image_size], rnd(tiles * 3 * cfg.image_size ** 2, 1));
const results = [];
let ref = null;
for (const k of await availableBackends()) {
  const vit = await VisionTransformer.load(src, cfg, k);
  vit.encode(px); // warm-up
  const times = [];
  let out;
  for (let r = 0; r < 3; r++) { const t0 = performance.now(); out = vit.encode(px).features.data; times.push(performance.now() - t0); }
  times.sort((a, b) => a - b);
  let diff = 0;
  if (ref) for (let i = 0; i < ref.length; i++) diff = Math.max(diff, Math.abs(ref[i] - out[i])); else ref = out;
  results.push({ backend: k.name, median_ms: +times[1].toFixed(1), ms_per_tile: +(times[1] / tiles).toFixed(1), max_abs_diff_vs_first: diff });
}
console.log(JSON.stringify({ config: cfg, tiles, results }, null, 1));
