import { KestrelError } from '@kestrel/core';
import { seededRandom, shuffleInPlace } from './random.js';

/**
 * Split item indices into parts with the given fractions, stratified: each stratum (e.g. a class
 * label, or label + panel type) is shuffled with the seed and cut in the same proportions, so every
 * part keeps the class balance. Returns one sorted index list per fraction.
 *
 * @param strata one stratum key per item
 * @param fractions part sizes, summing to 1 (the last part takes the rounding remainder)
 * @param seed reproducible shuffle seed
 */
export function stratifiedSplit(strata: ReadonlyArray<string | number>, fractions: number[], seed: number): number[][] {
  const sum = fractions.reduce((a, b) => a + b, 0);
  if (!fractions.length || fractions.some((f) => !(f >= 0)) || Math.abs(sum - 1) > 1e-9) {
    throw new KestrelError('E_OPTIONS', `split fractions must be non-negative and sum to 1, got [${fractions.join(', ')}]`);
  }
  const groups = new Map<string, number[]>();
  strata.forEach((s, i) => {
    const k = String(s);
    let g = groups.get(k);
    if (!g) groups.set(k, (g = []));
    g.push(i);
  });
  const parts: number[][] = fractions.map(() => []);
  const rand = seededRandom(seed);
  // Sorted keys: the result must not depend on the order strata first appear in.
  for (const key of [...groups.keys()].sort()) {
    const idx = shuffleInPlace(groups.get(key)!.slice(), rand);
    let start = 0;
    let cum = 0;
    for (let p = 0; p < fractions.length; p++) {
      cum += fractions[p]!;
      const end = p === fractions.length - 1 ? idx.length : Math.round(cum * idx.length);
      parts[p]!.push(...idx.slice(start, end));
      start = end;
    }
  }
  return parts.map((p) => p.sort((a, b) => a - b));
}
