// Counts COCO stats that are !== pycocotools' on test/fixtures/coco-8192 (needs `npx tsc -b` first).
// 'pairwise' (one pairwise sum over the whole array) is exactly what kestrel summed before the
// blocked order, so its row against numpy 1.24.2 is the "before" figure. Run: node scripts/coco-golden-8192/count-diff.mjs
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { COCO, COCOeval } from '../../eval/dist/index.js';

const dir = new URL('../../test/fixtures/coco-8192/', import.meta.url);
const meta = JSON.parse(readFileSync(new URL('cases.json', dir), 'utf8'));
const gz = (f) => JSON.parse(gunzipSync(readFileSync(new URL(f, dir))).toString('utf8'));
const k1 = `blocked vs numpy ${meta.numpy}`, k2 = `pairwise vs numpy ${meta.numpy}`, k3 = `pairwise vs numpy ${meta.numpy_pairwise}`;
const rows = { [k1]: [0, 0], [k2]: [0, 0], [k3]: [0, 0] };
let total = 0;
for (const c of meta.cases) {
  const gt = new COCO(gz(c.gt));
  const E = new COCOeval(gt, gt.loadRes(gz(c.res)), c.iouType);
  Object.assign(E.params, c.params_override);
  E.evaluate(); E.accumulate();
  const blocked = E.summarize('blocked'), pairwise = E.summarize('pairwise');
  const count = (key, got, want) => {
    const n = got.filter((s, i) => s !== want[i]).length;
    rows[key][0] += n; if (n) rows[key][1]++;
  };
  count(k1, blocked, c.stats);
  count(k2, pairwise, c.stats);
  count(k3, pairwise, c.stats_pairwise);
  total += c.stats.length;
}
for (const [k, [n, cases]] of Object.entries(rows)) console.log(`${k}: ${n} of ${total} stats differ, on ${cases} of ${meta.cases.length} cases`);
