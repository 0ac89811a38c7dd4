/** Element-wise and per-row portable ops: norms, activations, softmax, add/mul. */

/** out = w * x / sqrt(mean(x^2) + eps), per row of n. */
export function rmsnorm(x: Float32Array, m: number, n: number, weight: Float32Array, eps: number, out: Float32Array): void {
  for (let i = 0; i < m; i++) {
    const o = i * n;
    let ss = 0;
    for (let c = 0; c < n; c++) ss += x[o + c]! * x[o + c]!;
    const r = 1 / Math.sqrt(ss / n + eps);
    for (let c = 0; c < n; c++) out[o + c] = weight[c]! * (x[o + c]! * r);
  }
}

/** out = (x - mean) / sqrt(var + eps) * w + b, per row of n (biased variance, as PyTorch). */
export function layernorm(x: Float32Array, m: number, n: number, weight: Float32Array, bias: Float32Array, eps: number, out: Float32Array): void {
  for (let i = 0; i < m; i++) {
    const o = i * n;
    let s = 0;
    for (let c = 0; c < n; c++) s += x[o + c]!;
    const mean = s / n;
    let v = 0;
    for (let c = 0; c < n; c++) { const d = x[o + c]! - mean; v += d * d; }
    const r = 1 / Math.sqrt(v / n + eps);
    for (let c = 0; c < n; c++) out[o + c] = (x[o + c]! - mean) * r * weight[c]! + bias[c]!;
  }
}

/**
 * erf(x) to ~1e-15: Taylor series for |x| < 3, continued fraction of erfc beyond (Math has no erf).
 */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a < 3) {
    // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
    let term = a; // x^(2n+1)/n!
    let sum = a;
    const x2 = a * a;
    for (let n = 1; n < 100; n++) {
      term *= -x2 / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    const r = sum * 1.1283791670955126;
    return x < 0 ? -r : r;
  }
  if (a > 6) return x < 0 ? -1 : 1;
  // erfc(a) = exp(-a^2)/sqrt(pi) / (a + 1/2 / (a + 1 / (a + 3/2 / (a + ...)))), evaluated bottom-up.
  let f = a;
  for (let n = 60; n >= 1; n--) f = a + (n / 2) / f;
  const erfc = Math.exp(-a * a) / 1.7724538509055159 / f;
  return x < 0 ? erfc - 1 : 1 - erfc;
}

/** GELU, tanh approximation or exact erf; out may alias x. */
export function gelu(x: Float32Array, out: Float32Array, approx: 'tanh' | 'erf'): void {
  const n = x.length;
  if (approx === 'tanh') {
    const c = Math.sqrt(2 / Math.PI);
    for (let i = 0; i < n; i++) {
      const v = x[i]!;
      out[i] = 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v * v * v)));
    }
  } else {
    for (let i = 0; i < n; i++) {
      const v = x[i]!;
      out[i] = 0.5 * v * (1 + erf(v * Math.SQRT1_2));
    }
  }
}

/** SiLU x * sigmoid(x); out may alias x. */
export function silu(x: Float32Array, out: Float32Array): void {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    out[i] = v / (1 + Math.exp(-v));
  }
}

/** out = silu(gate) * up; out may alias gate. */
export function swiglu(gate: Float32Array, up: Float32Array, out: Float32Array): void {
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i]!;
    out[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}

/** In-place softmax over each row of n (max-subtracted). */
export function softmax(x: Float32Array, m: number, n: number): void {
  const e = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    const o = i * n;
    let mx = -Infinity;
    for (let c = 0; c < n; c++) if (x[o + c]! > mx) mx = x[o + c]!;
    let s = 0;
    for (let c = 0; c < n; c++) { const v = Math.exp(x[o + c]! - mx); e[c] = v; s += v; }
    for (let c = 0; c < n; c++) x[o + c] = e[c]! / s;
  }
}

/** out = a + b; out may alias a. */
export function add(a: Float32Array, b: Float32Array, out: Float32Array): void {
  for (let i = 0; i < a.length; i++) out[i] = a[i]! + b[i]!;
}

/** out = a * b; out may alias a. */
export function mul(a: Float32Array, b: Float32Array, out: Float32Array): void {
  for (let i = 0; i < a.length; i++) out[i] = a[i]! * b[i]!;
}
