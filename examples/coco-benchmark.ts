/**
 * Score a pretrained COCO detector on the bundled 128 COCO val2017 images through the SDK: pull the
 * weights, run the `detect` pipeline image by image, write a COCO results JSON, score it with COCOeval,
 * and draw one overlay. (`kestrel bench coco` and `npm run demo` do the same from the command line.)
 *
 * Run from the repository root (after `npm run build`):
 *   npx tsc examples/coco-benchmark.ts --module nodenext --target es2022 --types node --skipLibCheck --outDir examples/dist
 *   node examples/dist/coco-benchmark.js [centernet|nanodet|model.onnx] [LIMIT]
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadCocoDataset } from '@kestrel/datasets';
import { evaluateCoco } from '@kestrel/eval';
import { pipeline, pullModel, catalogEntry, drawOverlay, benchCoco } from '@kestrel/pipelines';

const model = process.argv[2] ?? 'centernet';
const limit = process.argv[3] ? Number(process.argv[3]) : undefined;
const data = 'datasets/coco-val2017-128';
const out = 'kestrel-demo-output'; // gitignored
await mkdir(out, { recursive: true });

// 1. Built-in names are pulled once into the cache ($KESTREL_HOME, default ~/.cache/kestrel).
if (catalogEntry(model)) await pullModel(model);

// 2. The pipeline by hand: low score threshold and up to 100 boxes per image, as COCO mAP expects.
const ds = await loadCocoDataset(data);
const images = ds.images.slice(0, limit);
const detect = await pipeline('detect', { model, scoreThreshold: 0.001, maxDetections: 100 });
const results: Array<{ image_id: number; category_id: number; bbox: number[]; score: number }> = [];
for (const im of images) {
  const [dets] = await detect(im.path);
  for (const d of dets!) results.push({ image_id: im.id, category_id: d.categoryId, bbox: d.bbox, score: d.score });
}
const t = detect.timings();
await detect.dispose();
await writeFile(join(out, 'coco-results.json'), JSON.stringify(results));
const gt = JSON.parse(await readFile(ds.annotationsPath, 'utf8')) as unknown;
const scored = evaluateCoco({ gt, results, iouType: 'bbox', params: { imgIds: images.map((im) => im.id) } });
process.stdout.write(scored.summary);
console.log(`${images.length} images, model ${(t.modelMs / t.images).toFixed(0)} ms/image, pre ${(t.preMs / t.images).toFixed(0)} ms, post ${(t.postMs / t.images).toFixed(0)} ms`);

// 3. Or in one call (same numbers): benchCoco runs, writes and scores.
const r = await benchCoco({ model, data, ...(limit ? { limit } : {}) });
console.log(`benchCoco: AP ${r.stats[0]!.toFixed(3)} AP50 ${r.stats[1]!.toFixed(3)} (${r.msPerImage.toFixed(0)} ms/image)`);

// 4. An overlay for a human: display threshold 0.3.
const show = await pipeline('detect', { model, scoreThreshold: 0.3 });
const first = join(data, 'images', images[0]!.fileName);
const [objs] = await show(first);
await writeFile(join(out, 'coco-overlay.png'), await drawOverlay(first, objs!));
await show.dispose();
console.log(`wrote ${out}/coco-results.json and ${out}/coco-overlay.png (${objs!.length} objects on ${images[0]!.fileName})`);
