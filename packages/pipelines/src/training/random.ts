import { mulberry32 } from '@kestrel/core';

/** Seeded pseudo-random numbers (mulberry32): splits and subsampling must be reproducible from a seed. */
export const seededRandom: (seed: number) => () => number = mulberry32;

/** Fisher-Yates shuffle in place with the given generator. */
export function shuffleInPlace<T>(a: T[], rand: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}
