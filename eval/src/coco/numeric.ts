/** Numeric helpers that reproduce numpy / Python results bit for bit. */

/** numpy's pairwise summation (`np.add.reduce` on a contiguous float64 array), over `a[off..off+n)`. */
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

/** `np.sum(a)` for a float64 vector (the reduction starts from the identity 0). */
export function npSum(a: ArrayLike<number>): number {
  return 0 + pairwiseSum(a, 0, a.length);
}

/** `np.mean(a)` for a non-empty float64 vector. */
export function npMean(a: ArrayLike<number>): number {
  return npSum(a) / a.length;
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
