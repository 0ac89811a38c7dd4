/**
 * COCO bbox evaluation benchmark: a deterministic (seeded) COCO-sized case — by default 5,000 images,
 * 36,000 GT boxes and 100,000 detections over 80 categories, the size the issue quotes pycocotools'
 * ~25 s for — written to a temp dir and timed end to end (reading + parsing JSON, evaluate, accumulate,
 * summarize).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { mulberry32 } from '@kestrel/core';
import { COCO } from '../coco/coco.js';
import { COCOeval } from '../coco/cocoeval.js';

/** Size of the generated case. */
export interface CocoBenchSize {
  images: number;
  gt: number;
  detections: number;
  categories: number;
  seed: number;
}

/** The case: 5,000 images, 36,000 GT, 100,000 detections, 80 categories. */
export const COCO_BENCH_DEFAULT: CocoBenchSize = { images: 5000, gt: 36000, detections: 100000, categories: 80, seed: 20240611 };

const rng = mulberry32;

const round2 = (x: number): number => Math.round(x * 100) / 100;

/**
 * Generate GT and results JSON for the benchmark. GT boxes span small, medium and large areas, 1 % are
 * crowd regions; detections are jittered copies of GT (some with the wrong label) plus background
 * false positives, with 2- or 3-decimal scores so that ties occur.
 */
export function generateCocoBenchCase(size: CocoBenchSize = COCO_BENCH_DEFAULT): { gt: unknown; results: unknown[] } {
  const r = rng(size.seed);
  const images: { id: number; width: number; height: number; file_name: string }[] = [];
  for (let i = 0; i < size.images; i++) {
    const landscape = r() < 0.7;
    images.push({ id: 100000 + i * 7 + Math.floor(r() * 7), width: landscape ? 640 : 480, height: landscape ? 480 : 640, file_name: `${i}.jpg` });
  }
  const categories = Array.from({ length: size.categories }, (_, k) => ({ id: k + 1 + Math.floor(k / 10), name: `class_${k}`, supercategory: 'thing' }));
  const pickImage = (): (typeof images)[number] => images[Math.floor(r() * images.length)]!;
  const box = (img: { width: number; height: number }): number[] => {
    // Log-uniform side lengths give a COCO-like spread of small / medium / large objects.
    const w = Math.min(img.width - 1, Math.exp(Math.log(4) + r() * Math.log(img.width / 4)));
    const h = Math.min(img.height - 1, Math.max(2, w * (0.4 + r() * 1.6)));
    const x = r() * (img.width - w), y = r() * (img.height - Math.min(h, img.height - 1));
    return [round2(x), round2(y), round2(w), round2(Math.min(h, img.height - 1))];
  };
  const annotations: Record<string, unknown>[] = [];
  for (let i = 0; i < size.gt; i++) {
    const img = pickImage();
    const cat = categories[Math.floor(Math.pow(r(), 1.5) * categories.length)]!;
    const b = box(img);
    annotations.push({
      id: i + 1, image_id: img.id, category_id: cat.id, bbox: b,
      area: round2(b[2]! * b[3]! * (0.55 + r() * 0.4)), iscrowd: r() < 0.01 ? 1 : 0, segmentation: [],
    });
  }
  const results: unknown[] = [];
  for (let i = 0; i < size.detections; i++) {
    const u = r();
    const score = r() < 0.5 ? round2(r()) : Math.round(r() * 1000) / 1000;
    if (u < 0.55) {
      const g = annotations[Math.floor(r() * annotations.length)]!;
      const b = g.bbox as number[];
      const j = 0.25 * r();
      const nb = [b[0]! + (r() - 0.5) * j * b[2]!, b[1]! + (r() - 0.5) * j * b[3]!, b[2]! * (1 + (r() - 0.5) * j), b[3]! * (1 + (r() - 0.5) * j)].map(round2);
      const cat = r() < 0.9 ? (g.category_id as number) : categories[Math.floor(r() * categories.length)]!.id;
      results.push({ image_id: g.image_id, category_id: cat, bbox: nb, score });
    } else {
      const img = pickImage();
      results.push({ image_id: img.id, category_id: categories[Math.floor(r() * categories.length)]!.id, bbox: box(img), score: round2(score * 0.6) });
    }
  }
  return { gt: { images, annotations, categories }, results };
}

/** What {@link runCocoBench} reports. */
export interface CocoBenchResult {
  size: CocoBenchSize;
  /** How the end-to-end figure was taken. */
  mode: 'spawned-cli' | 'in-process';
  /** End-to-end seconds (median over runs) — for spawned-cli this includes Node start-up. */
  seconds: number;
  runs: number[];
  /** CPU seconds (user + system) of each run: the child's for spawned-cli (from /proc, Linux), else this process's; null where unknown. */
  cpuSeconds: (number | null)[];
  /** 1-minute load average when the runs started and ended (a loaded machine inflates wall time). */
  loadAverage: [number, number];
  /** Logical CPUs here. */
  cpus: number;
  /** In-process phase times in seconds (one run): read+parse JSON, index+loadRes, evaluate, accumulate, summarize. */
  phases: { load: number; index: number; evaluate: number; accumulate: number; summarize: number };
  stats: number[];
  /** The pycocotools figure the issue quotes for this case (2 cores), for the ratio. */
  referenceSeconds: number;
  /** referenceSeconds / seconds. */
  speedup: number;
  gtBytes: number;
  resultsBytes: number;
}

/** Options of {@link runCocoBench}. */
export interface CocoBenchOptions {
  size?: Partial<CocoBenchSize>;
  /** Path to `kestrel.js`: time `node kestrel.js eval coco ... --json` as a child process (whole process). */
  cliPath?: string;
  /** Repetitions of the end-to-end timing (median reported). Default 3. */
  runs?: number;
}

/** Generate the case, time it and return the figures. Temp files are removed afterwards. */
export function runCocoBench(opts: CocoBenchOptions = {}): CocoBenchResult {
  const size = { ...COCO_BENCH_DEFAULT, ...(opts.size ?? {}) };
  const dir = mkdtempSync(join(tmpdir(), 'kestrel-coco-bench-'));
  try {
    const { gt, results } = generateCocoBenchCase(size);
    const gtPath = join(dir, 'gt.json'), resPath = join(dir, 'results.json');
    const gtText = JSON.stringify(gt), resText = JSON.stringify(results);
    writeFileSync(gtPath, gtText);
    writeFileSync(resPath, resText);

    // In-process phases (one run).
    const t0 = performance.now();
    const gtJson = JSON.parse(readFileSync(gtPath, 'utf8')) as unknown;
    const resJson = JSON.parse(readFileSync(resPath, 'utf8')) as unknown;
    const t1 = performance.now();
    const G = new COCO(gtJson, gtPath);
    const D = G.loadRes(resJson, resPath);
    const t2 = performance.now();
    const E = new COCOeval(G, D, 'bbox');
    E.evaluate();
    const t3 = performance.now();
    E.accumulate();
    const t4 = performance.now();
    const stats = E.summarize();
    const t5 = performance.now();
    const phases = { load: (t1 - t0) / 1e3, index: (t2 - t1) / 1e3, evaluate: (t3 - t2) / 1e3, accumulate: (t4 - t3) / 1e3, summarize: (t5 - t4) / 1e3 };

    const n = Math.max(1, opts.runs ?? 3);
    const runs: number[] = [];
    const cpu: (number | null)[] = [];
    const load0 = loadavg()[0]!;
    let mode: CocoBenchResult['mode'] = 'in-process';
    if (opts.cliPath) {
      mode = 'spawned-cli';
      for (let i = 0; i < n; i++) {
        const c0 = childCpuSeconds();
        const s = performance.now();
        const p = spawnSync(process.execPath, [opts.cliPath, 'eval', 'coco', '--gt', gtPath, '--results', resPath, '--iou-type', 'bbox', '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
        runs.push((performance.now() - s) / 1e3);
        const c1 = childCpuSeconds();
        cpu.push(c0 !== null && c1 !== null ? c1 - c0 : null);
        if (p.status !== 0) throw new Error(`kestrel eval coco failed (${p.status}): ${p.stderr}`);
        const out = JSON.parse(p.stdout) as { stats: number[] };
        if (out.stats.some((v, j) => v !== stats[j])) throw new Error('spawned CLI and in-process stats differ');
      }
    } else {
      for (let i = 0; i < n; i++) {
        const c0 = process.cpuUsage();
        const s = performance.now();
        const g = new COCO(JSON.parse(readFileSync(gtPath, 'utf8')), gtPath);
        const e = new COCOeval(g, g.loadRes(JSON.parse(readFileSync(resPath, 'utf8')), resPath), 'bbox');
        e.evaluate(); e.accumulate(); e.summarize();
        runs.push((performance.now() - s) / 1e3);
        const c = process.cpuUsage(c0);
        cpu.push((c.user + c.system) / 1e6);
      }
    }
    const sorted = [...runs].sort((a, b) => a - b);
    const seconds = sorted[Math.floor(sorted.length / 2)]!;
    return {
      size, mode, seconds, runs, cpuSeconds: cpu, loadAverage: [load0, loadavg()[0]!], cpus: availableParallelism(), phases, stats, referenceSeconds: 25, speedup: 25 / seconds,
      gtBytes: gtText.length, resultsBytes: resText.length,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** User + system CPU seconds of waited-for children of this process (Linux /proc), or null. */
function childCpuSeconds(): number | null {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // Fields after the ")" that closes the command name; cutime and cstime are fields 16 and 17.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[13]) + Number(f[14])) / 100;
  } catch {
    return null;
  }
}
