import { KestrelError, Tensor } from '@kestrel/core';
import type { Kernels, PreparedLinear, WeightDType } from '@kestrel/native';
import { parseVisionConfig, patchGrid, visionMlpHidden, type VisionConfig } from './config.js';
import { readF32, readLinear, type WeightSource } from './weights.js';

interface BlockWeights {
  norm1W: Float32Array; norm1B: Float32Array;
  qkv: PreparedLinear; qkvB: Float32Array;
  proj: PreparedLinear; projB: Float32Array;
  norm2W: Float32Array; norm2B: Float32Array;
  fc1: PreparedLinear; fc1B: Float32Array;
  fc2: PreparedLinear; fc2B: Float32Array;
}

/** What {@link VisionTransformer.encode} returns. */
export interface VisionOutput {
  /** final-LayerNorm'd patch sequence [tiles, N, width] */
  features: Tensor<'f32'>;
  /** residual stream after the position embedding and after each block [layers+1, tiles, N, width] (only when asked) */
  hiddenStates?: Tensor<'f32'>;
}

/**
 * The SigLIP ViT as DeepSeek-VL2 configures timm's VisionTransformer: stride-P conv patch embedding
 * (run as im2col + GEMM), learned position embedding without class token, pre-LN blocks (LayerNorm,
 * qkv with bias, bidirectional attention, GELU-tanh MLP) and a final LayerNorm. The MAP head
 * (`attn_pool.*`) is in the checkpoints but unused (`ignore_head`), so it is never read.
 */
export class VisionTransformer {
  readonly config: VisionConfig;
  /** patches per side */
  readonly grid: number;
  /** patches per tile (grid²) */
  readonly numPatches: number;
  private readonly kernels: Kernels;
  private readonly patch: PreparedLinear;
  private readonly patchB: Float32Array;
  private readonly pos: Float32Array;
  private readonly blocks: BlockWeights[];
  private readonly normW: Float32Array;
  private readonly normB: Float32Array;
  private disposed = false;

  private constructor(config: VisionConfig, kernels: Kernels, w: {
    patch: PreparedLinear; patchB: Float32Array; pos: Float32Array; blocks: BlockWeights[]; normW: Float32Array; normB: Float32Array;
  }) {
    this.config = config;
    this.kernels = kernels;
    this.grid = patchGrid(config);
    this.numPatches = this.grid * this.grid;
    this.patch = w.patch;
    this.patchB = w.patchB;
    this.pos = w.pos;
    this.blocks = w.blocks;
    this.normW = w.normW;
    this.normB = w.normB;
  }

  /**
   * Bind the ViT to its weights. `prefix` is the weight-name prefix (`vision.` in VL2 checkpoints).
   * Every tensor's shape is checked against the config (E_CHECKPOINT_FORMAT on mismatch). `dtype`: the matrices'
   * in-memory format (default: as stored; BF16 stays bf16, in place).
   */
  static async load(src: WeightSource, rawConfig: unknown, kernels: Kernels, prefix = 'vision.', dtype?: WeightDType): Promise<VisionTransformer> {
    const cfg = parseVisionConfig(rawConfig);
    const D = cfg.width;
    const P = cfg.patch_size;
    const g = patchGrid(cfg);
    const M = visionMlpHidden(cfg);
    const p = prefix;
    const patch = await readLinear(src, kernels, `${p}patch_embed.proj.weight`, [D, 3, P, P], dtype);
    const patchB = await readF32(src, `${p}patch_embed.proj.bias`, [D]);
    const pos = await readF32(src, `${p}pos_embed`, [1, g * g, D]);
    const blocks: BlockWeights[] = [];
    for (let i = 0; i < cfg.layers; i++) {
      const b = `${p}blocks.${i}.`;
      blocks.push({
        norm1W: await readF32(src, `${b}norm1.weight`, [D]),
        norm1B: await readF32(src, `${b}norm1.bias`, [D]),
        qkv: await readLinear(src, kernels, `${b}attn.qkv.weight`, [3 * D, D], dtype),
        qkvB: await readF32(src, `${b}attn.qkv.bias`, [3 * D]),
        proj: await readLinear(src, kernels, `${b}attn.proj.weight`, [D, D], dtype),
        projB: await readF32(src, `${b}attn.proj.bias`, [D]),
        norm2W: await readF32(src, `${b}norm2.weight`, [D]),
        norm2B: await readF32(src, `${b}norm2.bias`, [D]),
        fc1: await readLinear(src, kernels, `${b}mlp.fc1.weight`, [M, D], dtype),
        fc1B: await readF32(src, `${b}mlp.fc1.bias`, [M]),
        fc2: await readLinear(src, kernels, `${b}mlp.fc2.weight`, [D, M], dtype),
        fc2B: await readF32(src, `${b}mlp.fc2.bias`, [D]),
      });
    }
    const normW = await readF32(src, `${p}norm.weight`, [D]);
    const normB = await readF32(src, `${p}norm.bias`, [D]);
    return new VisionTransformer(cfg, kernels, { patch, patchB, pos, blocks, normW, normB });
  }

  /**
   * Encode a batch of tiles. `pixels` is [tiles, 3, S, S] float32 (normalised). Returns the patch
   * features [tiles, N, width]; with `hiddenStates: true` also the residual stream of every layer.
   */
  encode(pixels: Tensor<'f32'>, options: { hiddenStates?: boolean } = {}): VisionOutput {
    if (this.disposed) throw new KestrelError('E_OPTIONS', 'this VisionTransformer was disposed; load it again');
    const S = this.config.image_size;
    const [nt, c, h, w] = pixels.shape;
    if (pixels.rank !== 4 || c !== 3 || h !== S || w !== S) {
      throw new KestrelError('E_OPTIONS', `vision input must be [tiles, 3, ${S}, ${S}], got [${pixels.shape.join(', ')}]`);
    }
    const k = this.kernels;
    const D = this.config.width;
    const P = this.config.patch_size;
    const g = this.grid;
    const N = this.numPatches;
    const m = nt! * N;
    const nh = this.config.heads;
    const hd = D / nh;
    const eps = this.config.layer_norm_eps;
    const src = pixels.data;

    // im2col: one row per patch (tile-major, then row-major over the grid), columns c*P*P + ky*P + kx,
    // the order of the conv kernel [D, 3, P, P] flattened, so the patch embedding is one GEMM.
    const kc = 3 * P * P;
    const cols = new Float32Array(m * kc);
    for (let t = 0; t < nt!; t++) {
      for (let py = 0; py < g; py++) {
        for (let px = 0; px < g; px++) {
          let o = ((t * g + py) * g + px) * kc;
          for (let ch = 0; ch < 3; ch++) {
            const plane = (t * 3 + ch) * S * S;
            for (let ky = 0; ky < P; ky++) {
              const r = plane + (py * P + ky) * S + px * P;
              cols.set(src.subarray(r, r + P), o);
              o += P;
            }
          }
        }
      }
    }
    const x = new Float32Array(m * D);
    k.linear(cols, m, this.patch, this.patchB, x);
    for (let t = 0; t < nt!; t++) {
      const xt = x.subarray(t * N * D, (t + 1) * N * D);
      k.add(xt, this.pos, xt);
    }

    const layers = this.blocks.length;
    const hidden = options.hiddenStates ? new Float32Array((layers + 1) * m * D) : null;
    if (hidden) hidden.set(x, 0);

    const hbuf = new Float32Array(m * D);
    const qkv = new Float32Array(m * 3 * D);
    const att = new Float32Array(m * D);
    const tmp = new Float32Array(m * D);
    const mlp = new Float32Array(m * visionMlpHidden(this.config));
    const scale = 1 / Math.sqrt(hd);
    for (let l = 0; l < layers; l++) {
      const b = this.blocks[l]!;
      k.layernorm(x, m, D, b.norm1W, b.norm1B, eps, hbuf);
      k.linear(hbuf, m, b.qkv, b.qkvB, qkv);
      // qkv rows are [q | k | v], each nh heads of hd (timm reshape(B, N, 3, nh, hd)); attention runs per
      // tile, bidirectionally, on strided views into the packed buffer.
      for (let t = 0; t < nt!; t++) {
        const base = t * N * 3 * D;
        k.attention(
          qkv.subarray(base), qkv.subarray(base + D), qkv.subarray(base + 2 * D), att.subarray(t * N * D, (t + 1) * N * D),
          { tq: N, tk: N, nHeads: nh, nKvHeads: nh, dqk: hd, dv: hd, qStride: 3 * D, kStride: 3 * D, vStride: 3 * D, outStride: D, scale, causal: false, qPos0: 0 },
        );
      }
      k.linear(att, m, b.proj, b.projB, tmp);
      k.add(x, tmp, x);
      k.layernorm(x, m, D, b.norm2W, b.norm2B, eps, hbuf);
      k.linear(hbuf, m, b.fc1, b.fc1B, mlp);
      k.gelu(mlp, mlp, 'tanh');
      k.linear(mlp, m, b.fc2, b.fc2B, tmp);
      k.add(x, tmp, x);
      if (hidden) hidden.set(x, (l + 1) * m * D);
    }
    const out = new Float32Array(m * D);
    k.layernorm(x, m, D, this.normW, this.normB, eps, out);
    const res: VisionOutput = { features: new Tensor('f32', [nt!, N, D], out) };
    if (hidden) res.hiddenStates = new Tensor('f32', [layers + 1, nt!, N, D], hidden);
    return res;
  }

  /** Release the prepared weights (their device copies on CUDA, native buffers on the CPU addon). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const release = this.kernels.releaseLinear;
    if (!release) return;
    for (const w of [this.patch, ...this.blocks.flatMap((b) => [b.qkv, b.proj, b.fc1, b.fc2])]) release.call(this.kernels, w);
  }

  /** Whether dispose() was called. */
  get isDisposed(): boolean { return this.disposed; }
}
