import { KestrelError, f32ToBf16, bf16ToF32, f16ToF32, type SafetensorsFile, type Tensor } from '@kestrel/core';
import { Q8_BLOCK, quantizeQ8, decodeRow, type LinearWeight, type PreparedLinear, type Kernels } from '@kestrel/native';

/** In-memory weight formats a model can be loaded as. */
export type ModelDType = 'f32' | 'bf16' | 'int8';

/**
 * The in-memory format a checkpoint loads as when the caller names none: its own, judged by `probe` (a large
 * matrix every checkpoint has, e.g. the token embedding). BF16 stays bf16 (the kernels read it in place), I8
 * (`kestrel quantize`) is int8, and F32 and F16 become f32 (no kernel reads f16; bf16 would drop 3 mantissa bits).
 */
export function checkpointDType(file: Pick<SafetensorsFile, 'has' | 'info'>, probe: string): ModelDType {
  if (!file.has(probe)) return 'f32';
  const d = file.info(probe).dtype;
  return d === 'bf16' ? 'bf16' : d === 'i8' ? 'int8' : 'f32';
}

/** Suffix of the per-block scales tensor that `kestrel quantize` writes next to an I8 weight. */
export const Q8_SCALE_SUFFIX = '_scale';

/**
 * Reads checkpoint tensors by name (under a prefix such as `language.`), checks their shapes and
 * converts matrices to the requested in-memory format.
 */
export class WeightReader {
  /** every tensor name read, so callers can report unused ones */
  readonly used = new Set<string>();
  constructor(
    readonly file: SafetensorsFile,
    readonly prefix: string,
    readonly dtype: ModelDType,
    readonly kernels: Kernels,
    private readonly label: string,
  ) {}

  has(name: string): boolean {
    return this.file.has(this.prefix + name);
  }

  private async readRaw(name: string): Promise<Tensor> {
    const full = this.prefix + name;
    if (!this.file.has(full)) throw new KestrelError('E_CHECKPOINT_FORMAT', `${this.label}: tensor "${full}" is missing (required by config.json)`, { details: { tensor: full } });
    this.used.add(full);
    return this.file.read(full);
  }

  private shapeError(name: string, got: number[], want: number[]): never {
    throw new KestrelError('E_CHECKPOINT_FORMAT', `${this.label}: tensor "${this.prefix + name}" has shape [${got.join(', ')}], config.json implies [${want.join(', ')}]`, { details: { tensor: this.prefix + name } });
  }

  /** A float vector (norm weight, bias, router bias) as f32. */
  async vector(name: string, n: number): Promise<Float32Array> {
    const t = await this.readRaw(name);
    if (t.shape.length !== 1 || t.shape[0] !== n) this.shapeError(name, t.shape, [n]);
    return toF32(t, this.label, this.prefix + name);
  }

  /** A matrix [n, k] as an f32 weight regardless of the model dtype (the router runs in f32). */
  async matrixF32(name: string, n: number, k: number): Promise<LinearWeight & { format: 'f32' }> {
    const w = await this.readLinear(name, n, k);
    if (w.format === 'f32') return w;
    const data = new Float32Array(n * k);
    for (let r = 0; r < n; r++) decodeRow(w, r, data.subarray(r * k, r * k + k));
    return { format: 'f32', n, k, data };
  }

  /** Read a weight matrix [n, k] as stored (f32 for float checkpoints, q8 for quantized ones). */
  async readLinear(name: string, n: number, k: number): Promise<LinearWeight> {
    const full = this.prefix + name;
    if (!this.file.has(full)) throw new KestrelError('E_CHECKPOINT_FORMAT', `${this.label}: tensor "${full}" is missing (required by config.json)`, { details: { tensor: full } });
    const info = this.file.info(full);
    if (info.dtype === 'i8') {
      const kp = Math.ceil(k / Q8_BLOCK) * Q8_BLOCK;
      const t = await this.readRaw(name);
      if (t.shape.length !== 2 || t.shape[0] !== n || t.shape[1] !== kp) this.shapeError(name, t.shape, [n, kp]);
      const s = await this.readRaw(name + Q8_SCALE_SUFFIX);
      if (s.dtype !== 'f32' || s.shape.length !== 2 || s.shape[0] !== n || s.shape[1] !== kp / Q8_BLOCK) this.shapeError(name + Q8_SCALE_SUFFIX, s.shape, [n, kp / Q8_BLOCK]);
      return { format: 'q8', n, k, data: t.data as Int8Array, scales: s.data as Float32Array };
    }
    const t = await this.readRaw(name);
    if (t.shape.length !== 2 || t.shape[0] !== n || t.shape[1] !== k) this.shapeError(name, t.shape, [n, k]);
    if (t.dtype === 'bf16') return { format: 'bf16', n, k, data: t.data as Uint16Array };
    return { format: 'f32', n, k, data: toF32(t, this.label, full) };
  }

  /** A weight matrix [n, k] converted to the model dtype and prepared by the kernels. */
  async linear(name: string, n: number, k: number): Promise<PreparedLinear> {
    return this.kernels.prepareLinear(convertLinear(await this.readLinear(name, n, k), this.dtype));
  }
}

function toF32(t: Tensor, label: string, name: string): Float32Array {
  if (t.dtype === 'f32') return t.data as Float32Array;
  if (t.dtype === 'bf16') return bf16ToF32(t.data as Uint16Array);
  if (t.dtype === 'f16') return f16ToF32(t.data as Uint16Array);
  throw new KestrelError('E_CHECKPOINT_FORMAT', `${label}: tensor "${name}" has dtype ${t.dtype}; expected F32, BF16 or F16`, { details: { tensor: name } });
}

/** Convert a weight to the in-memory format of `dtype` (q8 stays q8 for int8; decoded otherwise). */
export function convertLinear(w: LinearWeight, dtype: ModelDType): LinearWeight {
  if (dtype === 'int8') return w.format === 'q8' ? w : quantizeQ8(w);
  if (dtype === 'bf16') {
    if (w.format === 'bf16') return w;
    const f = w.format === 'f32' ? w.data : decodeAll(w);
    return { format: 'bf16', n: w.n, k: w.k, data: f32ToBf16(f) };
  }
  if (w.format === 'f32') return w;
  return { format: 'f32', n: w.n, k: w.k, data: decodeAll(w) };
}

function decodeAll(w: LinearWeight): Float32Array {
  const out = new Float32Array(w.n * w.k);
  for (let r = 0; r < w.n; r++) decodeRow(w, r, out.subarray(r * w.k, r * w.k + w.k));
  return out;
}

/** Rows [r0, r1) of a weight as a zero-copy weight of its own (any format). */
export function sliceRows(w: LinearWeight, r0: number, r1: number): LinearWeight {
  const n = r1 - r0;
  if (w.format === 'q8') {
    const kp = Math.ceil(w.k / Q8_BLOCK) * Q8_BLOCK;
    return { format: 'q8', n, k: w.k, data: w.data.subarray(r0 * kp, r1 * kp), scales: w.scales.subarray((r0 * kp) / Q8_BLOCK, (r1 * kp) / Q8_BLOCK) };
  }
  if (w.format === 'bf16') return { format: 'bf16', n, k: w.k, data: w.data.subarray(r0 * w.k, r1 * w.k) };
  return { format: 'f32', n, k: w.k, data: w.data.subarray(r0 * w.k, r1 * w.k) };
}

/** Wᵀ of rows [r0, r1) of w, as f32 [k, r1-r0]. */
export function transposeRows(w: LinearWeight, r0: number, r1: number): LinearWeight & { format: 'f32' } {
  const n = r1 - r0;
  const k = w.k;
  const row = new Float32Array(k);
  const out = new Float32Array(k * n);
  for (let r = 0; r < n; r++) {
    decodeRow(w, r0 + r, row);
    for (let c = 0; c < k; c++) out[c * n + r] = row[c]!;
  }
  return { format: 'f32', n: k, k: n, data: out };
}

/** Weights of one format and width stacked by rows into one [Σn, k] weight (copies; q8 rows keep their padding). */
export function stackRows(ws: LinearWeight[]): LinearWeight {
  const f = ws[0]!;
  if (ws.some((w) => w.format !== f.format || w.k !== f.k)) throw new KestrelError('E_INTERNAL', 'stackRows: weights differ in format or width');
  const n = ws.reduce((a, w) => a + w.n, 0);
  const cat = <T extends Float32Array | Uint16Array | Int8Array>(parts: T[], make: (len: number) => T): T => {
    const out = make(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  };
  if (f.format === 'q8') {
    const q = ws as Array<LinearWeight & { format: 'q8' }>;
    return { format: 'q8', n, k: f.k, data: cat(q.map((w) => w.data), (l) => new Int8Array(l)), scales: cat(q.map((w) => w.scales), (l) => new Float32Array(l)) };
  }
  if (f.format === 'bf16') return { format: 'bf16', n, k: f.k, data: cat((ws as Array<LinearWeight & { format: 'bf16' }>).map((w) => w.data), (l) => new Uint16Array(l)) };
  return { format: 'f32', n, k: f.k, data: cat((ws as Array<LinearWeight & { format: 'f32' }>).map((w) => w.data), (l) => new Float32Array(l)) };
}
