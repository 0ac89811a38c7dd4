// int8 / bf16 vs f32 on a large checkpoint: top-1 agreement over a prompt of the perf-anchor ids
// (BOS + LCG ids, as `kestrel bench lm`), max logit error, and the f32 top-1 margin distribution.
// Usage: node packages/moe/bench/quality-anchor.mjs FLOAT_DIR [Q8_DIR] [--tokens 512] [--threads 2] [--backend native]
// (backend defaults to native: the portable kernels would take hours on a 1B model)
import { MoeLanguageModel } from '@kestrel/moe';

const args = process.argv.slice(2);
const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 ? Number(args.splice(i, 2)[1]) : d; };
const N = opt('--tokens', 512), threads = opt('--threads', 2);
const bi = args.indexOf('--backend');
const backend = bi >= 0 ? args.splice(bi, 2)[1] : 'native';
const [floatDir, q8Dir = floatDir] = args;
async function run(dir, dtype) {
  const t0 = performance.now();
  const lm = await MoeLanguageModel.load(dir, { dtype, threads, backend });
  const V = lm.config.vocab;
  const ids = [lm.config.bosId ?? 0];
  let x = 12345 >>> 0;
  while (ids.length < N) { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; ids.push(2 + ((x >>> 8) % (V - 2))); }
  const t1 = performance.now();
  const logits = lm.forward({ inputIds: ids }).logits.data;
  const t2 = performance.now();
  const top = [], margin = [];
  for (let r = 0; r < N; r++) {
    let a = 0, b = 1;
    if (logits[r * V + 1] > logits[r * V]) { a = 1; b = 0; }
    for (let v = 2; v < V; v++) { const y = logits[r * V + v]; if (y > logits[r * V + a]) { b = a; a = v; } else if (y > logits[r * V + b]) b = v; }
    top.push(a); margin.push(logits[r * V + a] - logits[r * V + b]);
  }
  const info = { dtype, kernels: lm.kernels.name, weight_mib: Math.round(lm.weightBytes / 2 ** 20), load_s: +((t1 - t0) / 1000).toFixed(1), prefill_s: +((t2 - t1) / 1000).toFixed(1) };
  lm.dispose();
  return { top, margin, logits, info };
}
const f = await run(floatDir, 'f32');
const s = f.margin.slice().sort((a, b) => a - b);
console.log(JSON.stringify({ ...f.info, tokens: N, f32_top1_margin_median: +s[N >> 1].toFixed(4), frac_margin_below_0_03: f.margin.filter((m) => m < 0.03).length / N }));
for (const [dir, dtype] of [[floatDir, 'bf16'], [q8Dir, 'int8']]) {
  const o = await run(dir, dtype);
  let agree = 0, err = 0;
  for (let r = 0; r < N; r++) if (o.top[r] === f.top[r]) agree++;
  for (let i = 0; i < f.logits.length; i++) err = Math.max(err, Math.abs(o.logits[i] - f.logits[i]));
  console.log(JSON.stringify({ ...o.info, tokens: N, top1_agreement_vs_f32: `${agree}/${N}`, max_abs_logit_err_vs_f32: +err.toFixed(4) }));
}
