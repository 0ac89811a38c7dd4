import { KestrelError } from './errors.js';

/** Element types a Tensor can hold. */
export type DType = 'f32' | 'f16' | 'bf16' | 'f64' | 'i8' | 'u8' | 'i32' | 'i64' | 'bool';

/** The typed array that backs each dtype (f16/bf16 are raw 16-bit patterns). */
export interface DTypeArrayMap {
  f32: Float32Array;
  f16: Uint16Array;
  bf16: Uint16Array;
  f64: Float64Array;
  i8: Int8Array;
  u8: Uint8Array;
  i32: Int32Array;
  i64: BigInt64Array;
  bool: Uint8Array;
}
export type TypedArrayFor<D extends DType> = DTypeArrayMap[D];
export type AnyTypedArray = DTypeArrayMap[DType];

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  f32: 4, f16: 2, bf16: 2, f64: 8, i8: 1, u8: 1, i32: 4, i64: 8, bool: 1,
};

type Ctor = { new (buf: ArrayBufferLike, byteOffset: number, length: number): AnyTypedArray; new (length: number): AnyTypedArray };
const CTORS: Record<DType, Ctor> = {
  f32: Float32Array as unknown as Ctor, f16: Uint16Array as unknown as Ctor, bf16: Uint16Array as unknown as Ctor,
  f64: Float64Array as unknown as Ctor, i8: Int8Array as unknown as Ctor, u8: Uint8Array as unknown as Ctor,
  i32: Int32Array as unknown as Ctor, i64: BigInt64Array as unknown as Ctor, bool: Uint8Array as unknown as Ctor,
};

/** Number of elements of a shape; throws on negative / non-integer / unsafe sizes. */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new KestrelError('E_OPTIONS', `invalid tensor dimension ${d} in shape [${shape.join(', ')}]`);
    n *= d;
    if (!Number.isSafeInteger(n)) throw new KestrelError('E_OPTIONS', `tensor shape [${shape.join(', ')}] is too large`);
  }
  return n;
}

/**
 * A dense row-major n-d array: a dtype, a shape and a typed array. Construction from an existing typed
 * array is zero-copy; `view`/`reshape` share memory.
 */
export class Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: number[];
  readonly data: TypedArrayFor<D>;

  constructor(dtype: D, shape: readonly number[], data?: TypedArrayFor<D>) {
    const n = shapeSize(shape);
    this.dtype = dtype;
    this.shape = [...shape];
    if (data === undefined) {
      this.data = new CTORS[dtype](n) as TypedArrayFor<D>;
    } else {
      const expect = CTORS[dtype];
      if (!(data instanceof (expect as unknown as Function))) {
        throw new KestrelError('E_OPTIONS', `Tensor(${dtype}) needs a ${(expect as unknown as Function).name}, got ${data.constructor.name}`);
      }
      if (data.length !== n) {
        throw new KestrelError('E_OPTIONS', `Tensor data has ${data.length} elements but shape [${shape.join(', ')}] needs ${n}`);
      }
      this.data = data;
    }
  }

  /** Allocate a zero-filled tensor. */
  static zeros<D extends DType>(dtype: D, shape: readonly number[]): Tensor<D> {
    return new Tensor(dtype, shape);
  }

  /** Wrap bytes (no copy when aligned) as a tensor of the given dtype. */
  static fromBytes<D extends DType>(dtype: D, shape: readonly number[], bytes: Uint8Array): Tensor<D> {
    const n = shapeSize(shape);
    const bpe = DTYPE_BYTES[dtype];
    if (bytes.byteLength !== n * bpe) {
      throw new KestrelError('E_OPTIONS', `expected ${n * bpe} bytes for ${dtype}[${shape.join(', ')}], got ${bytes.byteLength}`);
    }
    let src = bytes;
    if (bytes.byteOffset % bpe !== 0) src = bytes.slice(); // misaligned views must be copied
    return new Tensor(dtype, shape, new CTORS[dtype](src.buffer, src.byteOffset, n) as TypedArrayFor<D>);
  }

  /** Float32 tensor from a plain array or Float32Array (copies a plain array). */
  static f32(shape: readonly number[], values: ArrayLike<number>): Tensor<'f32'> {
    return new Tensor('f32', shape, values instanceof Float32Array ? values : Float32Array.from(values));
  }

  get size(): number { return this.data.length; }
  get rank(): number { return this.shape.length; }
  get byteLength(): number { return this.data.byteLength; }

  /** Raw bytes of the tensor (a view, no copy). */
  bytes(): Uint8Array { return new Uint8Array(this.data.buffer, this.data.byteOffset, this.data.byteLength); }

  /** Same memory, another shape with the same number of elements. One dimension may be -1. */
  reshape(shape: readonly number[]): Tensor<D> {
    const s = [...shape];
    const neg = s.indexOf(-1);
    if (neg >= 0) {
      const rest = shapeSize(s.filter((_, i) => i !== neg));
      if (rest === 0 || this.size % rest !== 0) throw new KestrelError('E_OPTIONS', `cannot reshape [${this.shape}] to [${shape}]`);
      s[neg] = this.size / rest;
    }
    if (shapeSize(s) !== this.size) throw new KestrelError('E_OPTIONS', `cannot reshape [${this.shape}] to [${shape}]`);
    return new Tensor(this.dtype, s, this.data);
  }

  /** Zero-copy view of rows [start, end) along the first axis. */
  slice0(start: number, end: number): Tensor<D> {
    const rows = this.shape[0] ?? 0;
    if (start < 0 || end > rows || start > end) throw new KestrelError('E_OPTIONS', `slice [${start}, ${end}) out of range for dim 0 = ${rows}`);
    const inner = rows === 0 ? 0 : this.size / rows;
    const sub = this.data.subarray(start * inner, end * inner) as TypedArrayFor<D>;
    return new Tensor(this.dtype, [end - start, ...this.shape.slice(1)], sub);
  }

  /** Element at a multi-index (slow; for tests and debugging). */
  at(...idx: number[]): number | bigint {
    let off = 0;
    for (let i = 0; i < this.shape.length; i++) off = off * this.shape[i]! + (idx[i] ?? 0);
    return this.data[off]!;
  }

  /** Copy (new memory). */
  clone(): Tensor<D> {
    return new Tensor(this.dtype, this.shape, this.data.slice() as TypedArrayFor<D>);
  }

  /** Convert to float32 (f16/bf16 decoded; integers cast). Returns `this` when already f32. */
  toF32(): Tensor<'f32'> {
    if (this.dtype === 'f32') return this as unknown as Tensor<'f32'>;
    const out = new Float32Array(this.size);
    const d = this.data;
    if (this.dtype === 'bf16') bf16ToF32(d as Uint16Array, out);
    else if (this.dtype === 'f16') f16ToF32(d as Uint16Array, out);
    else if (this.dtype === 'i64') for (let i = 0; i < out.length; i++) out[i] = Number((d as BigInt64Array)[i]);
    else for (let i = 0; i < out.length; i++) out[i] = (d as Float64Array)[i]!;
    return new Tensor('f32', this.shape, out);
  }

  /** Convert a float tensor to another float dtype (f32, f64, f16, bf16). */
  to<T extends 'f32' | 'f64' | 'f16' | 'bf16'>(dtype: T): Tensor<T> {
    if ((this.dtype as DType) === dtype) return this as unknown as Tensor<T>;
    const f = this.toF32();
    if (dtype === 'f32') return f as unknown as Tensor<T>;
    if (dtype === 'f64') return new Tensor('f64', this.shape, Float64Array.from(this.dtype === 'f64' ? (this.data as Float64Array) : f.data)) as unknown as Tensor<T>;
    const out = new Uint16Array(this.size);
    if (dtype === 'bf16') f32ToBf16(f.data, out); else f32ToF16(f.data, out);
    return new Tensor(dtype, this.shape, out as TypedArrayFor<T>);
  }
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** bf16 bit patterns -> f32 (exact). */
export function bf16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const d32 = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) d32[i] = src[i]! << 16;
  return dst;
}

/** f32 -> bf16 with round-to-nearest-even (NaN stays NaN), as PyTorch does. */
export function f32ToBf16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) {
    f32buf[0] = src[i]!;
    const x = u32buf[0]!;
    if ((x & 0x7f800000) === 0x7f800000 && (x & 0x007fffff) !== 0) { dst[i] = (x >>> 16) | 0x40; continue; }
    dst[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return dst;
}

/** IEEE half bit patterns -> f32 (exact, incl. subnormals, inf, NaN). */
export function f16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  for (let i = 0; i < src.length; i++) {
    const h = src[i]!;
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    let v: number;
    if (e === 0) v = m * 2 ** -24;
    else if (e === 31) v = m ? NaN : Infinity;
    else v = (1 + m / 1024) * 2 ** (e - 15);
    dst[i] = s * v;
  }
  return dst;
}

/** f32 -> IEEE half, round-to-nearest-even, overflow to inf. */
export function f32ToF16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) {
    f32buf[0] = src[i]!;
    const x = u32buf[0]!;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) { dst[i] = sign | 0x7c00 | (mant ? 0x200 : 0); continue; }
    let e = exp - 127 + 15;
    if (e >= 31) { dst[i] = sign | 0x7c00; continue; }
    if (e <= 0) {
      if (e < -10) { dst[i] = sign; continue; }
      mant |= 0x800000;
      const shift = 14 - e;
      let half = mant >>> shift;
      const rem = mant & ((1 << shift) - 1);
      const mid = 1 << (shift - 1);
      if (rem > mid || (rem === mid && (half & 1))) half++;
      dst[i] = sign | half;
      continue;
    }
    let half = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
    dst[i] = sign | half; // carry into exponent is correct rounding (may become inf)
  }
  return dst;
}
