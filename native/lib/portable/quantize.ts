import { Q8_BLOCK, type LinearWeight } from '../contract.js';
import { decodeRow } from './linear.js';

/**
 * Quantize a weight matrix to the q8 format of the contract (Q8_0-like): per block of 32 along k,
 * scale = max|w| / 127 and q = round(w / scale); rows are zero-padded to a multiple of 32.
 */
export function quantizeQ8(w: LinearWeight): LinearWeight & { format: 'q8' } {
  if (w.format === 'q8') return w;
  const { n, k } = w;
  const kp = Math.ceil(k / Q8_BLOCK) * Q8_BLOCK;
  const data = new Int8Array(n * kp);
  const scales = new Float32Array((n * kp) / Q8_BLOCK);
  const row = new Float32Array(kp);
  for (let r = 0; r < n; r++) {
    row.fill(0);
    decodeRow(w, r, row);
    for (let b = 0; b < kp / Q8_BLOCK; b++) {
      let amax = 0;
      for (let c = 0; c < Q8_BLOCK; c++) amax = Math.max(amax, Math.abs(row[b * Q8_BLOCK + c]!));
      const d = Math.fround(amax / 127);
      scales[r * (kp / Q8_BLOCK) + b] = d;
      const inv = d === 0 ? 0 : 1 / d;
      for (let c = 0; c < Q8_BLOCK; c++) {
        const q = Math.round(row[b * Q8_BLOCK + c]! * inv);
        data[r * kp + b * Q8_BLOCK + c] = Math.max(-127, Math.min(127, q));
      }
    }
  }
  return { format: 'q8', n, k, data, scales };
}
