import { KestrelError, type Tensor } from '@kestrel/core';
import type { Kernels, LinearWeight, PreparedLinear } from '@kestrel/native';

/** Where weights come from: a SafetensorsFile satisfies it, and so does a Map wrapper in tests. */
export interface WeightSource {
  has(name: string): boolean;
  read(name: string): Promise<Tensor>;
}

function missing(name: string): KestrelError {
  return new KestrelError('E_CHECKPOINT_FORMAT', `checkpoint is missing tensor "${name}"; is this a DeepSeek-VL2 checkpoint?`, {
    details: { tensor: name },
  });
}

function checkShape(name: string, t: Tensor, shape: readonly number[]): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new KestrelError('E_CHECKPOINT_FORMAT', `tensor "${name}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}] from the config`, {
      details: { tensor: name, shape: t.shape, expected: shape },
    });
  }
}

/** Read a tensor as float32 with an exact expected shape. */
export async function readF32(src: WeightSource, name: string, shape: readonly number[]): Promise<Float32Array> {
  if (!src.has(name)) throw missing(name);
  const t = await src.read(name);
  checkShape(name, t, shape);
  if (t.dtype !== 'f32' && t.dtype !== 'bf16' && t.dtype !== 'f16' && t.dtype !== 'f64') {
    throw new KestrelError('E_CHECKPOINT_FORMAT', `tensor "${name}" has dtype ${t.dtype}; expected a float tensor`);
  }
  // Copy so the weight never aliases a reader buffer that may be reused.
  const f = t.toF32().data;
  return f === t.data ? f.slice() : f;
}

/**
 * Read a weight matrix [n, k] (further dims are flattened into k, e.g. a conv kernel [D,3,P,P]) and
 * prepare it for `kernels.linear`. bf16 stays bf16 (the kernels decode it); other float types become f32.
 */
export async function readLinear(src: WeightSource, kernels: Kernels, name: string, shape: readonly number[]): Promise<PreparedLinear> {
  if (!src.has(name)) throw missing(name);
  const t = await src.read(name);
  checkShape(name, t, shape);
  const n = shape[0]!;
  const k = shape.slice(1).reduce((a, b) => a * b, 1);
  let w: LinearWeight;
  if (t.dtype === 'bf16') w = { format: 'bf16', n, k, data: (t.data as Uint16Array).slice() };
  else if (t.dtype === 'f32' || t.dtype === 'f16' || t.dtype === 'f64') {
    const f = t.toF32().data;
    w = { format: 'f32', n, k, data: f === t.data ? f.slice() : f };
  } else throw new KestrelError('E_CHECKPOINT_FORMAT', `tensor "${name}" has dtype ${t.dtype}; expected a float tensor`);
  return kernels.prepareLinear(w);
}
