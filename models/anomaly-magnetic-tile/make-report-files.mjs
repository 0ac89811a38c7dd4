// Writes report-files.txt: the held-out defect-free images (from holdout.txt) plus the defective
// images NOT in the development half (stratified by defect class, seed 4242) that chose the border
// rule and memory size. Run after `npx tsc -b` from anywhere: node models/anomaly-magnetic-tile/make-report-files.mjs
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stratifiedSplit } from '../../packages/pipelines/dist/training/split.js';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const rows = readFileSync(here('../../datasets/magnetic-tile/labels.csv'), 'utf8').trim().split('\n').slice(1)
  .map((l) => { const c = l.split(','); return { file: c[0], cls: c[2], defective: c[3] === '1' }; });
const defects = rows.filter((r) => r.defective);
const [, report] = stratifiedSplit(defects.map((d) => d.cls), [0.5, 0.5], 4242);
const good = readFileSync(here('holdout.txt'), 'utf8').trim().split('\n').filter((f) => f.startsWith('MT_Free/'));
writeFileSync(here('report-files.txt'), [...good, ...report.map((i) => defects[i].file)].join('\n') + '\n');
console.log(`report-files.txt: ${good.length} good + ${report.length} defective`);
