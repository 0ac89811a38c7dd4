/**
 * One checkpoint tensor as a linear weight in the in-memory format a model asked for. Used by the ViT and the
 * projector (the language model has its own reader with int8-checkpoint support): BF16 stays as stored, in place,
 * when bf16 (or nothing) is asked; other conversions make a new array.
 */
import { KestrelError, f32ToBf16, type Tensor } from '@kestrel/core';
import type { LinearWeight } from './contract.js';
import { quantizeQ8 } from './portable/index.js';

/** In-memory formats of a model's weights: f32, bf16 (read in place by the kernels), int8 (q8 block-32). */
export type WeightDType = 'f32' | 'bf16' | 'int8';

/**
 * `t` (any float dtype, shape flattened to [n, k]) as a LinearWeight in `dtype`; without `dtype`, BF16 stays bf16
 * and every other float type becomes f32. The result may share memory with `t` (a mapped checkpoint page).
 */
export function tensorToLinear(t: Tensor, n: number, k: number, dtype?: WeightDType, name = 'weight'): LinearWeight {
  if (t.dtype !== 'f32' && t.dtype !== 'bf16' && t.dtype !== 'f16' && t.dtype !== 'f64') {
    throw new KestrelError('E_CHECKPOINT_FORMAT', `tensor "${name}" has dtype ${t.dtype}; expected a float tensor`, { details: { tensor: name } });
  }
  if (t.size !== n * k) throw new KestrelError('E_INTERNAL', `tensorToLinear: ${name} has ${t.size} elements, not ${n}x${k}`);
  const want = dtype ?? (t.dtype === 'bf16' ? 'bf16' : 'f32');
  if (want === 'bf16' && t.dtype === 'bf16') return { format: 'bf16', n, k, data: t.data as Uint16Array };
  const f32: LinearWeight & { format: 'f32' } = { format: 'f32', n, k, data: t.toF32().data };
  if (want === 'f32') return f32;
  if (want === 'bf16') return { format: 'bf16', n, k, data: f32ToBf16(f32.data) };
  return quantizeQ8(t.dtype === 'bf16' ? { format: 'bf16', n, k, data: t.data as Uint16Array } : f32);
}
