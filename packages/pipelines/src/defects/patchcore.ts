import { KestrelError, reportProgress, type GrayImage, type ProgressListener } from '@kestrel/core';
import type * as TfCore from '@tensorflow/tfjs-core';
import { tf } from '../runtime/tfjs.js';
import type { FeatureMap, FrozenBackbone } from '../training/backbone.js';
import { seededRandom } from '../training/random.js';

/** How images become patch features for the anomaly memory. Stored with the model. */
export interface PatchSpec {
  width: number;
  height: number;
  /** Backbone nodes; coarser maps are upsampled (nearest) to the first node's grid. */
  nodes: string[];
  /** Side of the average-pooling window applied to each map (local neighbourhood aggregation). */
  neighbourhood: number;
  /**
   * Patches at each edge of the grid left out of the image score (still in the heat map): part
   * borders and image edges differ from part to part and would otherwise dominate the maximum.
   */
  border: number;
}

/** Patch features of one image on a grid. */
export interface PatchGrid {
  /** gridH * gridW rows of `dim` features, row-major. */
  data: Float32Array;
  gridW: number;
  gridH: number;
  dim: number;
}

/** Average-pool a feature map with a k x k window (stride 1, edges use the pixels that exist). */
function boxPool(m: FeatureMap, k: number): Float32Array {
  const { height: h, width: w, channels: c, data } = m;
  if (k <= 1) return data;
  const r = Math.floor(k / 2);
  // Separable: rows, then columns.
  const tmp = new Float32Array(data.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const x0 = Math.max(0, x - r), x1 = Math.min(w - 1, x + r);
      const o = (y * w + x) * c;
      for (let xx = x0; xx <= x1; xx++) {
        const p = (y * w + xx) * c;
        for (let ch = 0; ch < c; ch++) tmp[o + ch] += data[p + ch]!;
      }
      const n = x1 - x0 + 1;
      for (let ch = 0; ch < c; ch++) tmp[o + ch] /= n;
    }
  }
  const out = new Float32Array(data.length);
  for (let y = 0; y < h; y++) {
    const y0 = Math.max(0, y - r), y1 = Math.min(h - 1, y + r);
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * c;
      for (let yy = y0; yy <= y1; yy++) {
        const p = (yy * w + x) * c;
        for (let ch = 0; ch < c; ch++) out[o + ch] += tmp[p + ch]!;
      }
      const n = y1 - y0 + 1;
      for (let ch = 0; ch < c; ch++) out[o + ch] /= n;
    }
  }
  return out;
}

/** Patch features: each node pooled over its neighbourhood, coarser nodes upsampled, channels concatenated. */
export async function patchGrid(backbone: FrozenBackbone, img: GrayImage, spec: PatchSpec): Promise<PatchGrid> {
  const maps = await backbone.featureMaps(img, spec.nodes);
  const base = maps[0]!;
  const gridW = base.width, gridH = base.height;
  const dim = maps.reduce((n, m) => n + m.channels, 0);
  const data = new Float32Array(gridW * gridH * dim);
  let off = 0;
  for (const m of maps) {
    const pooled = boxPool(m, spec.neighbourhood);
    const c = m.channels;
    for (let y = 0; y < gridH; y++) {
      const sy = Math.min(m.height - 1, Math.floor((y * m.height) / gridH));
      for (let x = 0; x < gridW; x++) {
        const sx = Math.min(m.width - 1, Math.floor((x * m.width) / gridW));
        const src = (sy * m.width + sx) * c;
        const dst = (y * gridW + x) * dim + off;
        for (let ch = 0; ch < c; ch++) data[dst + ch] = pooled[src + ch]!;
      }
    }
    off += c;
  }
  return { data, gridW, gridH, dim };
}

/**
 * Greedy k-center coreset (PatchCore): repeatedly take the candidate farthest from everything chosen
 * so far, so the kept patches cover the feature space of normal appearance. Distances are measured
 * after a seeded random projection to `projDim` dimensions (Johnson-Lindenstrauss), which keeps the
 * selection cheap. Returns the chosen row indices.
 */
export function greedyCoreset(rows: Float32Array, dim: number, count: number, options: { seed: number; projDim?: number; onProgress?: ProgressListener }): number[] {
  const n = rows.length / dim;
  if (count >= n) return Array.from({ length: n }, (_, i) => i);
  const pd = Math.min(options.projDim ?? 32, dim);
  const rand = seededRandom(options.seed);
  const proj = new Float32Array(dim * pd);
  for (let i = 0; i < proj.length; i++) {
    // Box-Muller normal entries.
    const u = Math.max(rand(), 1e-12), v = rand();
    proj[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v) / Math.sqrt(pd);
  }
  const p = new Float32Array(n * pd);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < pd; k++) {
      let s = 0;
      for (let j = 0; j < dim; j++) s += rows[i * dim + j]! * proj[j * pd + k]!;
      p[i * pd + k] = s;
    }
  }
  const minD = new Float32Array(n).fill(Infinity);
  const chosen: number[] = [];
  let next = Math.floor(rand() * n);
  for (let c = 0; c < count; c++) {
    chosen.push(next);
    const q = next * pd;
    let far = -1, farD = -1;
    for (let i = 0; i < n; i++) {
      let d = 0;
      const r = i * pd;
      for (let k = 0; k < pd; k++) {
        const t = p[r + k]! - p[q + k]!;
        d += t * t;
      }
      if (d < minD[i]!) minD[i] = d;
      if (minD[i]! > farD) { farD = minD[i]!; far = i; }
    }
    next = far;
    if (c % 100 === 99 || c === count - 1) reportProgress({ task: 'coreset', done: c + 1, total: count }, options.onProgress);
  }
  return chosen;
}

/** Nearest-neighbour distances from patches to a memory bank, on the active tfjs backend. */
export class PatchMemory {
  /** The bank transposed ([dim, size]): tfjs-wasm's matMul is ~10x slower with transposeB. */
  private readonly bankT: TfCore.Tensor2D;
  private readonly bankSq: TfCore.Tensor2D;

  constructor(readonly data: Float32Array, readonly dim: number) {
    const t = tf();
    if (data.length === 0 || data.length % dim !== 0) throw new KestrelError('E_CHECKPOINT_FORMAT', `memory bank of ${data.length} values is not a whole number of ${dim}-d patches`);
    const bank = t.tensor2d(data, [data.length / dim, dim]);
    this.bankT = t.tidy(() => t.transpose(bank) as TfCore.Tensor2D);
    this.bankSq = t.tidy(() => t.reshape(t.sum(t.square(bank), 1), [1, -1]) as TfCore.Tensor2D);
    bank.dispose();
  }

  /** Patches in the bank. */
  get size(): number {
    return this.data.length / this.dim;
  }

  /** Euclidean distance from each query row to its nearest bank row. */
  async nearest(queries: Float32Array): Promise<Float32Array> {
    const t = tf();
    const n = queries.length / this.dim;
    const out = t.tidy(() => {
      const q = t.tensor2d(queries, [n, this.dim]);
      const qSq = t.sum(t.square(q), 1, true);
      // |q - m|^2 = |q|^2 + |m|^2 - 2 q.m, clamped at 0 against rounding.
      const d2 = t.add(t.sub(qSq, t.mul(2, t.matMul(q, this.bankT))), this.bankSq);
      return t.sqrt(t.relu(t.min(d2, 1)));
    });
    try {
      return (await out.data()) as Float32Array;
    } finally {
      out.dispose();
    }
  }

  dispose(): void {
    this.bankT.dispose();
    this.bankSq.dispose();
  }
}

/** Smooth a score map with a 3 x 3 binomial kernel ([1 2 1] ⊗ [1 2 1] / 16), edges clamped. */
export function smoothMap(map: Float32Array, w: number, h: number): Float32Array {
  const out = new Float32Array(map.length);
  const k = [1, 2, 1];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = Math.min(h - 1, Math.max(0, y + dy));
        for (let dx = -1; dx <= 1; dx++) {
          const xx = Math.min(w - 1, Math.max(0, x + dx));
          s += k[dy + 1]! * k[dx + 1]! * map[yy * w + xx]!;
        }
      }
      out[y * w + x] = s / 16;
    }
  }
  return out;
}

/** Image score: the largest value of the score map, leaving out `border` cells at each edge. */
export function imageScore(map: Float32Array, w: number, h: number, border = 0): number {
  const b = Math.max(0, Math.min(border, Math.floor((Math.min(w, h) - 1) / 2)));
  let best = -Infinity;
  for (let y = b; y < h - b; y++) for (let x = b; x < w - b; x++) if (map[y * w + x]! > best) best = map[y * w + x]!;
  return best;
}
