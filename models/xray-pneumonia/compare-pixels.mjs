// From-scratch baselines on raw 28x28 pixels (no backbone), same protocol as the shipped model:
// train split -> seeded stratified 80/20 fit/calibration, L2 by calibration AUC, threshold 0.5 on a
// class-balanced head, figures on val. Run after `npx tsc -b`: node models/xray-pneumonia/compare-pixels.mjs
import { trainLogistic, predictLogistic } from '../../packages/pipelines/dist/training/logistic.js';
import { trainMlp, predictMlp } from '../../packages/pipelines/dist/training/mlp.js';
import { stratifiedSplit } from '../../packages/pipelines/dist/training/split.js';
import { readLabelledImages } from '../../datasets/dist/index.js';
import { rocAuc, accuracy } from '../../eval/dist/index.js';
import { loadImage } from '../../packages/core/dist/index.js';
const data = new URL('../../datasets/pneumoniamnist', import.meta.url).pathname;
const load = async (items) => Promise.all(items.map(async (i) => Float32Array.from((await loadImage(i.file, { mode: 'gray' })).data, (v) => v / 255)));
const { items: train } = await readLabelledImages(data, { split: 'train' });
const { items: val } = await readLabelledImages(data, { split: 'val' });
const Xt = await load(train), Xv = await load(val);
const yt = train.map((i) => i.label), yv = val.map((i) => i.label);
const [fit, cal] = stratifiedSplit(yt.map(String), [0.8, 0.2], 20261129);
for (const kind of ['logistic', 'mlp']) {
  let best;
  for (const l2 of [0.01, 0.1, 0.3, 1]) {
    const c0 = process.cpuUsage();
    const h = kind === 'logistic' ? trainLogistic(fit.map((i) => Xt[i]), fit.map((i) => yt[i]), { l2, steps: 300 }) : trainMlp(fit.map((i) => Xt[i]), fit.map((i) => yt[i]), { l2, seed: 20261129 });
    const p = (x) => (kind === 'logistic' ? predictLogistic(h, x) : predictMlp(h, x));
    const a = rocAuc(cal.map((i) => yt[i]), cal.map((i) => p(Xt[i])));
    const cpu = (process.cpuUsage(c0).user / 1e6).toFixed(1);
    if (!best || a > best.a) best = { a, l2, p, cpu };
  }
  const s = Xv.map((x) => best.p(x));
  console.log(`${kind} on raw pixels: l2=${best.l2} cal AUC ${best.a.toFixed(4)} | val acc@0.5 ${accuracy(yv, s.map((v) => (v >= 0.5 ? 1 : 0))).toFixed(4)} AUC ${rocAuc(yv, s).toFixed(4)} (fit ${best.cpu} s CPU)`);
}
