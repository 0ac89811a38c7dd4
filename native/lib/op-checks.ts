/**
 * The argument checks of every op of the kernel contract, written once for all backends. The CUDA wrappers
 * run them before any length reaches C; the portable kernels run them when KESTREL_CHECK_OPS=1 (see
 * {@link withOpChecks}), since the portable loops would otherwise read past an array's end and return NaN
 * where the other backends reject the call. A failed check is a RangeError `<op>: <what is wrong>`.
 */
import { Q8_BLOCK, type AttentionParams, type ExpertWeights, type Kernels, type LinearWeight, type MoeRouteParams, type PreparedLinear, type RopeParams } from './contract.js';

/** Anything with a length in elements: a typed array, or a device view (cuda-device.ts). */
export interface Sized { readonly length: number }

export function shape(cond: boolean, op: string, msg: string): void {
  if (!cond) throw new RangeError(`${op}: ${msg}`);
}

export function count(v: number, op: string, name: string): void {
  shape(Number.isInteger(v) && v >= 0 && v <= 0x7fffffff, op, `${name} must be a non-negative int32, got ${v}`);
}

/** Highest element index + 1 touched by `rows` rows of `stride` whose last row uses `width` elements. */
export function extent(rows: number, stride: number, width: number): number {
  return rows === 0 ? 0 : (rows - 1) * stride + width;
}

/** A weight's sizes, and its arrays against its format. */
export function checkWeight(w: LinearWeight, op: string): void {
  count(w.n, op, 'n');
  count(w.k, op, 'k');
  if (w.format === 'q8') {
    const kp = Math.ceil(w.k / Q8_BLOCK) * Q8_BLOCK;
    shape(w.data instanceof Int8Array && w.data.length >= w.n * kp, op, `q8 data must be an Int8Array of n*kp = ${w.n * kp}`);
    shape(w.scales instanceof Float32Array && w.scales.length >= (w.n * kp) / Q8_BLOCK, op, `q8 scales must hold n*kp/32 = ${(w.n * kp) / Q8_BLOCK}`);
  } else if (w.format === 'bf16') {
    shape(w.data instanceof Uint16Array && w.data.length >= w.n * w.k, op, `bf16 data must be a Uint16Array of n*k = ${w.n * w.k}`);
  } else if (w.format === 'f32') {
    shape(w.data instanceof Float32Array && w.data.length >= w.n * w.k, op, `f32 data must be a Float32Array of n*k = ${w.n * w.k}`);
  } else {
    shape(false, op, `unknown weight format ${(w as { format: string }).format}`);
  }
}

export function checkLinear(x: Sized, m: number, w: LinearWeight, bias: Sized | null, out: Sized): void {
  count(m, 'linear', 'm');
  shape(x.length >= m * w.k, 'linear', `x needs m*k = ${m * w.k} elements, has ${x.length}`);
  shape(out.length >= m * w.n, 'linear', `out needs m*n = ${m * w.n} elements, has ${out.length}`);
  shape(bias === null || bias.length >= w.n, 'linear', 'bias is shorter than n');
}

/** rmsnorm (no bias) and layernorm (with bias) over m rows of n. */
export function checkNorm(op: 'rmsnorm' | 'layernorm', x: Sized, m: number, n: number, weight: Sized, bias: Sized | null, out: Sized): void {
  count(m, op, 'm');
  count(n, op, 'n');
  shape(x.length >= m * n && out.length >= m * n && weight.length >= n && (bias === null || bias.length >= n), op, `x/out need m*n and weight${bias ? '/bias' : ''} n elements`);
}

/** Element-wise ops: every operand at least as long as the first. */
export function checkElementwise(op: string, first: Sized, ...rest: Sized[]): void {
  shape(rest.every((r) => r.length >= first.length), op, `operands are shorter than the first (${first.length})`);
}

export function checkGeluApprox(approx: string): void {
  shape(approx === 'tanh' || approx === 'erf', 'gelu', `approx must be 'tanh' or 'erf', got ${String(approx)}`);
}

export function checkSoftmax(x: Sized, m: number, n: number): void {
  count(m, 'softmax', 'm');
  count(n, 'softmax', 'n');
  shape(x.length >= m * n, 'softmax', 'x needs m*n elements');
}

export function checkEmbedding(table: LinearWeight, ids: ArrayLike<number>, out: Sized): void {
  shape(out.length >= ids.length * table.k, 'embedding', 'out needs ids.length*k elements');
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    shape(id >= 0 && id < table.n, 'embedding', `token id ${id} outside [0, ${table.n})`);
  }
}

/** Rope parameters against the buffers; `positions` null means device positions, checked by their producer. */
export function checkRope(x: Sized, p: RopeParams, positions: ArrayLike<number> | null, cos: Sized, sin: Sized): void {
  const op = 'rope';
  for (const key of ['m', 'nHeads', 'headStride', 'rowStride', 'offset', 'dim'] as const) count(p[key], op, key);
  shape(p.dim % 2 === 0 && p.dim > 0, op, `dim must be even and positive, got ${p.dim}`);
  if (p.m > 0 && p.nHeads > 0) shape(x.length >= (p.m - 1) * p.rowStride + (p.nHeads - 1) * p.headStride + p.offset + p.dim, op, 'x is shorter than the rows and heads it rotates');
  const half = p.dim / 2;
  shape(cos.length === sin.length && cos.length % half === 0, op, 'cos and sin must be tables of the same [maxPos, dim/2] shape');
  const maxPos = cos.length / half;
  if (!positions) return;
  shape(positions.length >= p.m, op, 'fewer positions than rows');
  for (let r = 0; r < p.m; r++) shape(positions[r]! >= 0 && positions[r]! < maxPos, op, `position ${positions[r]} outside the table [0, ${maxPos})`);
}

export function checkAttention(q: Sized, k: Sized, v: Sized, out: Sized, p: AttentionParams): void {
  const op = 'attention';
  for (const key of ['tq', 'tk', 'nHeads', 'nKvHeads', 'dqk', 'dv', 'qStride', 'kStride', 'vStride', 'outStride', 'qPos0'] as const) count(p[key], op, key);
  shape(p.nKvHeads > 0 && p.nHeads % p.nKvHeads === 0, op, `nHeads ${p.nHeads} must be a multiple of nKvHeads ${p.nKvHeads}`);
  shape(q.length >= extent(p.tq, p.qStride, p.nHeads * p.dqk), op, 'q is shorter than tq rows of nHeads*dqk');
  shape(k.length >= extent(p.tk, p.kStride, p.nKvHeads * p.dqk), op, 'k is shorter than tk rows of nKvHeads*dqk');
  shape(v.length >= extent(p.tk, p.vStride, p.nKvHeads * p.dv), op, 'v is shorter than tk rows of nKvHeads*dv');
  shape(out.length >= extent(p.tq, p.outStride, p.nHeads * p.dv), op, 'out is shorter than tq rows of nHeads*dv');
  shape(Number.isFinite(p.scale), op, 'scale must be finite');
}

export function checkRoute(logits: Sized, m: number, nExperts: number, p: MoeRouteParams, idx: Sized, weight: Sized, scores: Sized): void {
  const op = 'moeRoute';
  count(m, op, 'm');
  shape(Number.isInteger(nExperts) && nExperts > 0 && nExperts <= 4096, op, `nExperts must be in [1, 4096], got ${nExperts}`);
  shape(Number.isInteger(p.topK) && p.topK >= 1 && p.topK <= nExperts, op, `topK must be in [1, nExperts], got ${p.topK}`);
  if (p.method !== 'greedy') {
    shape(Number.isInteger(p.nGroup) && p.nGroup > 0 && nExperts % p.nGroup === 0, op, `nExperts ${nExperts} must be a multiple of nGroup ${p.nGroup}`);
    shape(Number.isInteger(p.topkGroup) && p.topkGroup >= 1 && p.topkGroup <= p.nGroup, op, `topkGroup must be in [1, nGroup], got ${p.topkGroup}`);
  }
  if (p.method === 'noaux_tc' && p.bias) shape(p.bias.length >= nExperts, op, 'bias is shorter than nExperts');
  shape(logits.length >= m * nExperts && scores.length >= m * nExperts, op, 'logits and scores need m*nExperts');
  shape(idx.length >= m * p.topK && weight.length >= m * p.topK, op, 'idx and weight need m*topK');
  shape(p.scoring === 'softmax' || p.scoring === 'sigmoid', op, `unknown scoring ${p.scoring}`);
  shape(p.method === 'greedy' || p.method === 'group_limited_greedy' || p.method === 'noaux_tc', op, `unknown method ${p.method}`);
}

/** Checks a routed-experts call; returns the experts the rows use (the others are never read). */
export function checkMoeExperts(x: Sized, m: number, h: number, experts: readonly ExpertWeights[], idx: ArrayLike<number>, weight: Sized, topK: number, out: Sized): Set<number> {
  const op = 'moeExperts';
  count(m, op, 'm');
  count(h, op, 'h');
  count(topK, op, 'topK');
  shape(x.length >= m * h && out.length >= m * h, op, 'x/out need m*h elements');
  shape(idx.length >= m * topK && weight.length >= m * topK, op, 'idx/weight need m*topK elements');
  const used = new Set<number>();
  for (let s = 0; s < m * topK; s++) {
    const e = idx[s]!;
    shape(e >= 0 && e < experts.length, op, `expert index ${e} outside [0, ${experts.length})`);
    used.add(e);
  }
  for (const e of used) {
    const ex = experts[e]!;
    shape(ex.gate.k === h && ex.up.k === h && ex.down.n === h && ex.gate.n === ex.up.n && ex.down.k === ex.gate.n, op, `expert ${e} does not map h=${h} -> inter -> h`);
  }
  return used;
}

/**
 * The same kernels with every op's arguments checked first (the portable backend with KESTREL_CHECK_OPS=1;
 * a custom backend under test). Checks only: the wrapped kernels compute exactly as before.
 */
export function withOpChecks(k: Kernels): Kernels {
  return {
    ...k,
    prepareLinear(w) { checkWeight(w, 'prepareLinear'); return k.prepareLinear(w); },
    linear(x, m, w, bias, out) { checkWeight(w, 'linear'); checkLinear(x, m, w, bias, out); k.linear(x, m, w, bias, out); },
    rmsnorm(x, m, n, weight, eps, out) { checkNorm('rmsnorm', x, m, n, weight, null, out); k.rmsnorm(x, m, n, weight, eps, out); },
    layernorm(x, m, n, weight, bias, eps, out) { checkNorm('layernorm', x, m, n, weight, bias, out); k.layernorm(x, m, n, weight, bias, eps, out); },
    gelu(x, out, approx) { checkElementwise('gelu', x, out); checkGeluApprox(approx); k.gelu(x, out, approx); },
    silu(x, out) { checkElementwise('silu', x, out); k.silu(x, out); },
    swiglu(gate, up, out) { checkElementwise('swiglu', gate, up, out); k.swiglu(gate, up, out); },
    softmax(x, m, n) { checkSoftmax(x, m, n); k.softmax(x, m, n); },
    add(a, b, out) { checkElementwise('add', a, b, out); k.add(a, b, out); },
    mul(a, b, out) { checkElementwise('mul', a, b, out); k.mul(a, b, out); },
    embedding(table: PreparedLinear, ids, out) { checkWeight(table, 'embedding'); checkEmbedding(table, ids, out); k.embedding(table, ids, out); },
    rope(x, p, positions, cos, sin) { checkRope(x, p, positions, cos, sin); k.rope(x, p, positions, cos, sin); },
    attention(q, kk, v, out, p) { checkAttention(q, kk, v, out, p); k.attention(q, kk, v, out, p); },
    moeRoute(logits, m, nExperts, p, idx, weight, scores) { checkRoute(logits, m, nExperts, p, idx, weight, scores); k.moeRoute(logits, m, nExperts, p, idx, weight, scores); },
    moeExperts(x, m, h, experts, idx, weight, topK, out) { checkMoeExperts(x, m, h, experts, idx, weight, topK, out); k.moeExperts(x, m, h, experts, idx, weight, topK, out); },
  };
}
