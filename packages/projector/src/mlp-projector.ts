import { KestrelError, Tensor } from '@kestrel/core';
import { tensorToLinear, type Kernels, type PreparedLinear, type WeightDType } from '@kestrel/native';
import { parseProjectorConfig, projectedSide, type ProjectorConfig } from './config.js';

/** Where weights come from (a SafetensorsFile satisfies it). */
export interface WeightSource {
  has(name: string): boolean;
  read(name: string): Promise<Tensor>;
}

interface Layer { w: PreparedLinear; b: Float32Array }

async function readLayer(src: WeightSource, kernels: Kernels, name: string, k: number | null, dtype: WeightDType | undefined): Promise<Layer> {
  for (const n of [`${name}.weight`, `${name}.bias`]) {
    if (!src.has(n)) throw new KestrelError('E_CHECKPOINT_FORMAT', `checkpoint is missing tensor "${n}" (projector)`, { details: { tensor: n } });
  }
  const wt = await src.read(`${name}.weight`);
  const bt = await src.read(`${name}.bias`);
  if (wt.rank !== 2 || bt.rank !== 1 || bt.shape[0] !== wt.shape[0] || (k !== null && wt.shape[1] !== k)) {
    throw new KestrelError('E_CHECKPOINT_FORMAT', `projector layer "${name}" has weight [${wt.shape.join(', ')}] and bias [${bt.shape.join(', ')}]${k !== null ? `; expected ${k} input features` : ''}`);
  }
  const n = wt.shape[0]!;
  const kk = wt.shape[1]!;
  return { w: kernels.prepareLinear(tensorToLinear(wt, n, kk, dtype, `${name}.weight`)), b: bt.toF32().data };
}

/**
 * DeepSeek-VL2's `MlpProjector`. For `downsample_mlp_gelu`: each tile's [g, g, D] patch grid is
 * zero-padded at the bottom/right to a multiple of the ratio r, unfolded into r×r blocks with the
 * channel-major order of `F.unfold` (feature `c*r*r + ky*r + kx`), then Linear → GELU(erf) → Linear
 * (…→ GELU → Linear for deeper configs). Layer widths come from the weights, so any depth and
 * mlp_ratio load.
 */
export class MlpProjector {
  readonly config: ProjectorConfig;
  private readonly kernels: Kernels;
  private readonly layers: Layer[];
  private disposed = false;

  private constructor(config: ProjectorConfig, kernels: Kernels, layers: Layer[]) {
    this.config = config;
    this.kernels = kernels;
    this.layers = layers;
  }

  /** Output width (the language model's hidden size). */
  get outDim(): number {
    return this.layers.length ? this.layers[this.layers.length - 1]!.w.n : this.config.input_dim;
  }

  /** Bind to the `projector.*` weights (prefix configurable); `dtype`: the matrices' in-memory format (default: as stored). */
  static async load(src: WeightSource, rawConfig: unknown, kernels: Kernels, prefix = 'projector.', dtype?: WeightDType): Promise<MlpProjector> {
    const cfg = parseProjectorConfig(rawConfig);
    const r = cfg.downsample_ratio;
    const layers: Layer[] = [];
    if (cfg.projector_type === 'linear') {
      layers.push(await readLayer(src, kernels, `${prefix}layers`, cfg.input_dim, dtype));
    } else if (cfg.projector_type !== 'identity') {
      // nn.Sequential(Linear, GELU, Linear, GELU, ..., Linear): Linear modules sit at even indices.
      let k = cfg.projector_type === 'downsample_mlp_gelu' ? cfg.input_dim * r * r : cfg.input_dim;
      // DeepSeek-VL2's downsample_mlp_gelu always appends GELU + Linear after the first Linear, so a
      // depth-1 config built by the original code has two Linears; take what the checkpoint holds.
      let n = cfg.depth;
      if (cfg.projector_type === 'downsample_mlp_gelu' && n === 1 && src.has(`${prefix}layers.2.weight`)) n = 2;
      if (src.has(`${prefix}layers.${2 * n}.weight`)) {
        throw new KestrelError('E_CHECKPOINT_FORMAT', `checkpoint has ${prefix}layers.${2 * n}.weight but projector_config.depth is ${cfg.depth}`);
      }
      for (let i = 0; i < n; i++) {
        const l = await readLayer(src, kernels, `${prefix}layers.${2 * i}`, k, dtype);
        layers.push(l);
        k = l.w.n;
      }
    }
    const out = layers.length ? layers[layers.length - 1]!.w.n : cfg.input_dim;
    if (out !== cfg.n_embed) {
      throw new KestrelError('E_CHECKPOINT_FORMAT', `projector outputs ${out} features but projector_config.n_embed is ${cfg.n_embed}`);
    }
    return new MlpProjector(cfg, kernels, layers);
  }

  /** Tokens per side of a tile with `grid` patches per side. */
  side(grid: number): number {
    return projectedSide(this.config, grid);
  }

  /** features [tiles, g*g, D] → [tiles, side*side, n_embed]. */
  forward(features: Tensor<'f32'>): Tensor<'f32'> {
    if (this.disposed) throw new KestrelError('E_OPTIONS', 'this MlpProjector was disposed; load it again');
    const [nt, hw, D] = features.shape;
    if (features.rank !== 3 || D !== this.config.input_dim) {
      throw new KestrelError('E_OPTIONS', `projector input must be [tiles, N, ${this.config.input_dim}], got [${features.shape.join(', ')}]`);
    }
    const g = Math.round(Math.sqrt(hw!));
    if (g * g !== hw) throw new KestrelError('E_OPTIONS', `projector input has ${hw} tokens per tile, not a square grid`);
    let x: Float32Array = features.data;
    let rows = nt! * hw!;
    let side = g;
    if (this.config.projector_type === 'downsample_mlp_gelu') {
      const r = this.config.downsample_ratio;
      side = Math.ceil(g / r);
      const kdim = D! * r * r;
      rows = nt! * side * side;
      const u = new Float32Array(rows * kdim); // zero-filled: the padding rows/cols stay 0
      for (let t = 0; t < nt!; t++) {
        for (let i = 0; i < side; i++) {
          for (let j = 0; j < side; j++) {
            const o = ((t * side + i) * side + j) * kdim;
            for (let ky = 0; ky < r; ky++) {
              const y = i * r + ky;
              if (y >= g) continue;
              for (let kx = 0; kx < r; kx++) {
                const xx = j * r + kx;
                if (xx >= g) continue;
                const s = ((t * g + y) * g + xx) * D!;
                const f = ky * r + kx;
                for (let c = 0; c < D!; c++) u[o + c * r * r + f] = x[s + c]!;
              }
            }
          }
        }
      }
      x = u;
    }
    const k = this.kernels;
    for (let li = 0; li < this.layers.length; li++) {
      const l = this.layers[li]!;
      if (li > 0) k.gelu(x, x, 'erf');
      const y = new Float32Array(rows * l.w.n);
      k.linear(x, rows, l.w, l.b, y);
      x = y;
    }
    if (x === features.data) x = x.slice();
    return new Tensor('f32', [nt!, side * side, this.outDim], x);
  }

  /** Release the prepared weights (their device copies on CUDA, native buffers on the CPU addon). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const release = this.kernels.releaseLinear;
    if (release) for (const l of this.layers) release.call(this.kernels, l.w);
  }

  /** Whether dispose() was called. */
  get isDisposed(): boolean { return this.disposed; }
}
