// Kestrel's greedy next token at every position of the perf-anchor prompt (one prefill, native kernels).
// Usage: node packages/moe/bench/kestrel-top1.mjs CHECKPOINT_DIR f32|bf16|int8 OUT.json
import { writeFileSync } from 'node:fs';
import { MoeLanguageModel } from '@kestrel/moe';
const [dir, dtype, outPath] = process.argv.slice(2);
const N = 512;
const ids = [0]; let x = 12345 >>> 0;
while (ids.length < N) { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; ids.push(2 + ((x >>> 8) % (32000 - 2))); }
const lm = await MoeLanguageModel.load(dir, { dtype, threads: 2, backend: 'native' });
const l = lm.forward({ inputIds: ids }).logits.data;
const V = 32000, top = [];
for (let r = 0; r < N; r++) { let a = 0; for (let v = 1; v < V; v++) if (l[r * V + v] > l[r * V + a]) a = v; top.push(a); }
writeFileSync(outPath, JSON.stringify(top));
console.log(dtype, 'done');
