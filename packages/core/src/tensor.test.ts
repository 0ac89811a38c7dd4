import { describe, it, expect } from 'vitest';
import { Tensor, f32ToBf16, bf16ToF32, f32ToF16, f16ToF32, KestrelError } from '@kestrel/core';

describe('Tensor', () => {
  it('wraps typed arrays without copying and reshapes as a view', () => {
    const data = new Float32Array([1, 2, 3, 4, 5, 6]);
    const t = new Tensor('f32', [2, 3], data);
    expect(t.data).toBe(data);
    const r = t.reshape([3, -1]);
    expect(r.shape).toEqual([3, 2]);
    r.data[0] = 42;
    expect(t.data[0]).toBe(42);
    expect(t.slice0(1, 2).data[0]).toBe(4);
  });

  it('rejects a data length that does not match the shape', () => {
    expect(() => new Tensor('f32', [2, 2], new Float32Array(3))).toThrow(KestrelError);
    expect(() => new Tensor('i32', [2], new Float32Array(2) as unknown as Int32Array)).toThrow(/Int32Array/);
  });

  it('converts bf16 with round-to-nearest-even', () => {
    // 1 + 2^-8 lies exactly halfway between two bf16 values: rounds to even (1.0)
    const x = new Float32Array([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5, Infinity, NaN]);
    const back = bf16ToF32(f32ToBf16(x));
    expect(Array.from(back.subarray(0, 5))).toEqual([1, 1, 1 + 2 ** -6, -2.5, Infinity]);
    expect(Number.isNaN(back[5])).toBe(true);
  });

  it('converts f16 exactly for representable values, including subnormals', () => {
    const x = new Float32Array([0, -0, 1, 65504, 2 ** -24, 2 ** -14, 0.333251953125, 70000]);
    const back = f16ToF32(f32ToF16(x));
    expect(Array.from(back)).toEqual([0, -0, 1, 65504, 2 ** -24, 2 ** -14, 0.333251953125, Infinity]);
    expect(new Tensor('f32', [2], new Float32Array([1.5, -3])).to('f16').toF32().data).toEqual(new Float32Array([1.5, -3]));
  });
});
