/** Numeric helpers that reproduce numpy / Python results bit for bit. */

/**
 * numpy's pairwise summation of one inner-loop call (`DOUBLE_pairwise_sum`) over `a[off..off+n)`:
 * under 8 values a plain loop, up to 128 values 8 interleaved partial sums, above that the halves
 * (split at a multiple of 8) summed recursively. {@link npSum} applies it per 8,192-value block.
 */
export function pairwiseSum(a: ArrayLike<number>, off: number, n: number): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[off + i]!;
    return res;
  }
  if (n <= 128) {
    let r0 = a[off]!, r1 = a[off + 1]!, r2 = a[off + 2]!, r3 = a[off + 3]!;
    let r4 = a[off + 4]!, r5 = a[off + 5]!, r6 = a[off + 6]!, r7 = a[off + 7]!;
    let i = 8;
    const end = n - (n % 8);
    for (; i < end; i += 8) {
      r0 += a[off + i]!; r1 += a[off + i + 1]!; r2 += a[off + i + 2]!; r3 += a[off + i + 3]!;
      r4 += a[off + i + 4]!; r5 += a[off + i + 5]!; r6 += a[off + i + 6]!; r7 += a[off + i + 7]!;
    }
    let res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7));
    for (; i < n; i++) res += a[off + i]!;
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, off, n2) + pairwiseSum(a, off + n2, n - n2);
}

/**
 * numpy's ufunc buffer size (`np.getbufsize()`). numpy 1.x reductions always run buffered, so the
 * inner loop sees at most this many values at a time, even for a contiguous array (numpy issue 17649).
 */
export const NUMPY_REDUCE_BLOCK = 8192;

/**
 * Which numpy's summation order to reproduce. `'blocked'`: numpy before 2.3 (run: 1.24.2, the numpy
 * the reference pycocotools ran on): 8,192-value blocks, each summed pairwise, added one after
 * another. `'pairwise'`: numpy 2.3 and later (run: 2.4.6), whose reductions no longer buffer a
 * contiguous array, so the whole array is one pairwise sum. The two agree up to 8,192 values. The
 * 2.3 boundary is inferred (docs/eval-coco.md).
 */
export type NumpySumOrder = 'blocked' | 'pairwise';

/**
 * `np.sum(a)` / `np.add.reduce` for a contiguous 1-D float64 array, in numpy's order: the result
 * starts at the identity 0, then each block of {@link NUMPY_REDUCE_BLOCK} values (the whole array
 * with `'pairwise'`) is summed pairwise and added to it in sequence. Checked against numpy 1.24.2 and
 * 2.4.6 on adversarial inputs (scripts/coco-golden-8192/probe_numpy_order.py).
 */
export function npSum(a: ArrayLike<number>, order: NumpySumOrder = 'blocked'): number {
  const n = a.length;
  const block = order === 'pairwise' ? n : NUMPY_REDUCE_BLOCK;
  let res = 0;
  for (let s = 0; s < n; s += block) res += pairwiseSum(a, s, Math.min(block, n - s));
  return res;
}

/** `np.mean(a)` for a non-empty contiguous 1-D float64 array: {@link npSum} divided by the count. */
export function npMean(a: ArrayLike<number>, order: NumpySumOrder = 'blocked'): number {
  return npSum(a, order) / a.length;
}

/**
 * Python `'{:0.Nf}'.format(x)`: correctly rounded, ties to even. JS `toFixed` breaks exact ties
 * upward, so exact binary ties are detected and rounded to even here.
 */
export function formatFixed(x: number, digits: number): string {
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : x < 0 ? '-inf' : 'nan';
  const ax = Math.abs(x);
  const exact = ax.toFixed(Math.min(100, digits + 60));
  const dot = exact.indexOf('.');
  const tail = exact.slice(dot + 1 + digits);
  let s: string;
  if (/^50*$/.test(tail)) {
    // Exact tie: truncate, then round up only if the kept last digit is odd.
    const kept = exact.slice(0, dot + 1 + digits).replace(/\.$/, '');
    const lastDigit = Number(kept[kept.length - 1]);
    s = lastDigit % 2 === 1 ? ax.toFixed(digits) : kept;
  } else {
    s = ax.toFixed(digits);
  }
  const neg = x < 0 || Object.is(x, -0);
  return neg ? '-' + s : s;
}
