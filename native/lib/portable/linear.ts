import { Q8_BLOCK, type LinearWeight, type PreparedLinear } from '../contract.js';

/**
 * Decode row `r` of a weight matrix into `dst` (length >= k) as f32 values. Shared by `linear`,
 * `embedding` and the MoE experts so every format has exactly one decoding rule.
 */
export function decodeRow(w: LinearWeight, r: number, dst: Float32Array): void {
  const k = w.k;
  if (w.format === 'f32') {
    dst.set(w.data.subarray(r * k, r * k + k));
  } else if (w.format === 'bf16') {
    const u32 = new Uint32Array(dst.buffer, dst.byteOffset, k);
    const d = w.data;
    const base = r * k;
    for (let c = 0; c < k; c++) u32[c] = d[base + c]! << 16;
  } else {
    const kp = Math.ceil(k / Q8_BLOCK) * Q8_BLOCK;
    const d = w.data;
    const s = w.scales;
    const base = r * kp;
    const sb = base / Q8_BLOCK;
    for (let c = 0; c < k; c++) dst[c] = d[base + c]! * s[sb + ((c / Q8_BLOCK) | 0)]!;
  }
}

/** Portable `prepareLinear`: the weight is used as stored. */
export function prepareLinear(w: LinearWeight): PreparedLinear {
  return w;
}

/**
 * out[m,n] = x[m,k] · Wᵀ (+ bias). Each weight row is decoded once and dotted with every input row;
 * sums are accumulated in float64 (JS numbers), which keeps the portable path a tight reference.
 */
export function linear(x: Float32Array, m: number, w: PreparedLinear, bias: Float32Array | null, out: Float32Array): void {
  if (w.format === 'q8') return linearQ8(x, m, w, bias, out);
  const { n, k } = w;
  const row = w.format === 'f32' ? null : new Float32Array(k);
  for (let j = 0; j < n; j++) {
    let wr: Float32Array;
    let wo: number;
    if (row === null) {
      wr = (w as { data: Float32Array }).data;
      wo = j * k;
    } else {
      decodeRow(w, j, row);
      wr = row;
      wo = 0;
    }
    const b = bias ? bias[j]! : 0;
    let i0 = 0;
    // four input rows at a time: each weight element loaded once is used four times
    for (; i0 + 3 < m; i0 += 4) {
      const x0 = i0 * k, x1 = x0 + k, x2 = x1 + k, x3 = x2 + k;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let c = 0; c < k; c++) {
        const wv = wr[wo + c]!;
        s0 += x[x0 + c]! * wv;
        s1 += x[x1 + c]! * wv;
        s2 += x[x2 + c]! * wv;
        s3 += x[x3 + c]! * wv;
      }
      out[i0 * n + j] = s0 + b;
      out[(i0 + 1) * n + j] = s1 + b;
      out[(i0 + 2) * n + j] = s2 + b;
      out[(i0 + 3) * n + j] = s3 + b;
    }
    for (let i = i0; i < m; i++) {
      const xo = i * k;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      let c = 0;
      for (; c + 3 < k; c += 4) {
        s0 += x[xo + c]! * wr[wo + c]!;
        s1 += x[xo + c + 1]! * wr[wo + c + 1]!;
        s2 += x[xo + c + 2]! * wr[wo + c + 2]!;
        s3 += x[xo + c + 3]! * wr[wo + c + 3]!;
      }
      for (; c < k; c++) s0 += x[xo + c]! * wr[wo + c]!;
      out[i * n + j] = s0 + s1 + s2 + s3 + b;
    }
  }
}

/**
 * q8 weights: int8 values times the f32 input summed per block of 32, then scaled once per block
 * (no decoded row), each weight block reused for every input row. Float64 sums.
 */
function linearQ8(x: Float32Array, m: number, w: { n: number; k: number; data: Int8Array; scales: Float32Array }, bias: Float32Array | null, out: Float32Array): void {
  const { n, k, data: q, scales } = w;
  const kp = Math.ceil(k / Q8_BLOCK) * Q8_BLOCK;
  const acc = new Float64Array(m);
  for (let j = 0; j < n; j++) {
    acc.fill(0);
    const wo = j * kp;
    for (let b = 0; b < k; b += Q8_BLOCK) {
      const d = scales[(wo + b) / Q8_BLOCK]!;
      const end = Math.min(b + Q8_BLOCK, k);
      let i0 = 0;
      for (; i0 + 3 < m; i0 += 4) {
        const x0 = i0 * k, x1 = x0 + k, x2 = x1 + k, x3 = x2 + k;
        let t0 = 0, t1 = 0, t2 = 0, t3 = 0;
        for (let c = b; c < end; c++) {
          const qv = q[wo + c]!;
          t0 += x[x0 + c]! * qv;
          t1 += x[x1 + c]! * qv;
          t2 += x[x2 + c]! * qv;
          t3 += x[x3 + c]! * qv;
        }
        acc[i0] += t0 * d;
        acc[i0 + 1] += t1 * d;
        acc[i0 + 2] += t2 * d;
        acc[i0 + 3] += t3 * d;
      }
      for (let i = i0; i < m; i++) {
        const xo = i * k;
        let t0 = 0, t1 = 0, t2 = 0, t3 = 0;
        let c = b;
        for (; c + 3 < end; c += 4) {
          t0 += x[xo + c]! * q[wo + c]!;
          t1 += x[xo + c + 1]! * q[wo + c + 1]!;
          t2 += x[xo + c + 2]! * q[wo + c + 2]!;
          t3 += x[xo + c + 3]! * q[wo + c + 3]!;
        }
        for (; c < end; c++) t0 += x[xo + c]! * q[wo + c]!;
        acc[i] += (t0 + t1 + t2 + t3) * d;
      }
    }
    const bj = bias ? bias[j]! : 0;
    for (let i = 0; i < m; i++) out[i * n + j] = acc[i]! + bj;
  }
}

/** out[i,:] = table[ids[i], :] decoded to f32. */
export function embedding(table: PreparedLinear, ids: Int32Array, out: Float32Array): void {
  const k = table.k;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!(id >= 0 && id < table.n)) throw new RangeError(`embedding: token id ${id} outside [0, ${table.n})`);
    decodeRow(table, id, out.subarray(i * k, i * k + k));
  }
}
