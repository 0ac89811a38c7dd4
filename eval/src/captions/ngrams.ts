/**
 * n-gram counting shared by BLEU and CIDEr. Keys are the n-gram's words joined by a single space
 * (tokens never contain spaces, so the key is unambiguous). Map insertion order equals the order in
 * which pycocoevalcap's `precook` first sees each n-gram, so sums over a map add terms in the same
 * order as its Python dict iteration.
 */
export interface NgramCounts {
  /** Number of words (`len(s.split())`). */
  length: number;
  /** `grams[k-1]`: (k)-gram key -> count, in precook order. */
  grams: Map<string, number>[];
}

/** Count the 1..n-grams of a whitespace-separated sentence, as pycocoevalcap's `precook`. */
export function precook(sentence: string, n = 4): NgramCounts {
  // Python's str.split() with no argument: split on runs of whitespace, drop empty strings.
  const words = sentence.split(/\s+/).filter((w) => w.length > 0);
  const grams: Map<string, number>[] = [];
  // keys[i] holds the (k)-gram starting at word i; extended in place from the (k-1)-grams.
  const keys = words.slice();
  for (let k = 1; k <= n; k++) {
    const m = new Map<string, number>();
    const count = words.length - k + 1;
    for (let i = 0; i < count; i++) {
      if (k > 1) keys[i] = keys[i] + ' ' + words[i + k - 1]!;
      const key = keys[i]!;
      m.set(key, (m.get(key) ?? 0) + 1);
    }
    grams.push(m);
  }
  return { length: words.length, grams };
}

/** A memoising {@link precook}: identical sentences (common among captions) are counted once. */
export function precookCache(n = 4): (sentence: string) => NgramCounts {
  const cache = new Map<string, NgramCounts>();
  return (s) => {
    let c = cache.get(s);
    if (!c) { c = precook(s, n); cache.set(s, c); }
    return c;
  };
}
