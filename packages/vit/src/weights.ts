import { KestrelError, type Tensor } from '@kestrel/core';
import { tensorToLinear, type Kernels, type PreparedLinear, type WeightDType } from '@kestrel/native';

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
  // f32 is used as read (a mapped page, copy-on-write); other types are decoded into a new array.
  return t.toF32().data;
}

/**
 * Read a weight matrix [n, k] (further dims are flattened into k, e.g. a conv kernel [D,3,P,P]) and
 * prepare it for `kernels.linear` in `dtype`; without one, bf16 stays bf16 (in place, the kernels read it) and
 * other float types become f32.
 */
export async function readLinear(src: WeightSource, kernels: Kernels, name: string, shape: readonly number[], dtype?: WeightDType): Promise<PreparedLinear> {
  if (!src.has(name)) throw missing(name);
  const t = await src.read(name);
  checkShape(name, t, shape);
  const n = shape[0]!;
  const k = shape.slice(1).reduce((a, b) => a * b, 1);
  return kernels.prepareLinear(tensorToLinear(t, n, k, dtype, name));
}
