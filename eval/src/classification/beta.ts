/**
 * Special functions for exact binomial intervals: log-gamma, the regularized incomplete beta
 * function I_x(a, b) (the Beta(a, b) CDF) and its inverse (the Beta quantile).
 */

// Lanczos approximation, g = 7, 9 coefficients: ~15 significant digits for x > 0.
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0. */
export function logGamma(x: number): number {
  if (!(x > 0)) throw new RangeError(`logGamma needs x > 0, got ${x}`);
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x); // reflection
  const z = x - 1;
  let s = LANCZOS[0]!;
  for (let i = 1; i < LANCZOS.length; i++) s += LANCZOS[i]! / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(s);
}

/** ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b). */
export function logBeta(a: number, b: number): number {
  return logGamma(a) + logGamma(b) - logGamma(a + b);
}

/** Continued fraction for I_x(a, b) (modified Lentz), valid where x < (a + 1) / (a + b + 2). */
function betaContinuedFraction(x: number, a: number, b: number): number {
  const TINY = 1e-300;
  const EPS = 1e-16;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < TINY) d = TINY;
  d = 1 / d;
  let h = d;
  // Convergence takes O(sqrt(max(a, b))) terms; the cap only guards against a bug.
  const maxIter = 10_000 + 20 * Math.ceil(Math.sqrt(Math.max(a, b)));
  for (let m = 1; m <= maxIter; m++) {
    const m2 = 2 * m;
    // Even step.
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    h *= d * c;
    // Odd step.
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < EPS) return h;
  }
  throw new Error(`incomplete beta continued fraction did not converge (x=${x}, a=${a}, b=${b})`);
}

/**
 * Regularized incomplete beta I_x(a, b) = P(X ≤ x) for X ~ Beta(a, b), a, b > 0, x in [0, 1].
 * Relative accuracy ~1e-14 for moderate a, b (slightly less for a, b ~ 1e6, from ln Γ).
 */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (!(a > 0) || !(b > 0)) throw new RangeError(`incompleteBeta needs a, b > 0, got a=${a}, b=${b}`);
  if (Number.isNaN(x)) return NaN;
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  // x^a (1-x)^b / (a B(a,b)), in logs so large a, b do not overflow.
  const logFront = a * Math.log(x) + b * Math.log1p(-x) - logBeta(a, b);
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(logFront) * betaContinuedFraction(x, a, b)) / a;
  // Symmetry I_x(a,b) = 1 − I_{1−x}(b,a) keeps the continued fraction in its fast region.
  return 1 - (Math.exp(logFront) * betaContinuedFraction(1 - x, b, a)) / b;
}

/**
 * Beta(a, b) quantile: the x with I_x(a, b) = q, by bisection on [0, 1] down to adjacent doubles
 * (monotone, so it cannot fail to converge; a few hundred CDF evaluations at most). Closed forms
 * for a = 1 or b = 1.
 */
export function betaQuantile(q: number, a: number, b: number): number {
  if (!(a > 0) || !(b > 0)) throw new RangeError(`betaQuantile needs a, b > 0, got a=${a}, b=${b}`);
  if (!(q >= 0 && q <= 1)) throw new RangeError(`betaQuantile needs q in [0, 1], got ${q}`);
  if (q === 0) return 0;
  if (q === 1) return 1;
  if (b === 1) return Math.exp(Math.log(q) / a); // CDF x^a
  if (a === 1) return -Math.expm1(Math.log1p(-q) / b); // CDF 1 − (1−x)^b
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 2200; i++) {
    // Geometric midpoints once the bracket spans orders of magnitude, so tiny quantiles need few steps.
    const mid = lo > 0 && hi / lo > 4 ? Math.sqrt(lo * hi) : lo === 0 && hi < 1e-3 ? hi / 1024 : 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    if (incompleteBeta(mid, a, b) < q) lo = mid;
    else hi = mid;
  }
  // Both ends bracket the root within one ulp; return the closer one.
  return Math.abs(incompleteBeta(lo, a, b) - q) <= Math.abs(incompleteBeta(hi, a, b) - q) ? lo : hi;
}
