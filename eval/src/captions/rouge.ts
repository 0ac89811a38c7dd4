/** Length of the longest common subsequence of two token lists (dynamic programming, O(|a|·|b|)). */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  const [long, short] = a.length >= b.length ? [a, b] : [b, a];
  let prev = new Array<number>(short.length + 1).fill(0);
  let cur = new Array<number>(short.length + 1).fill(0);
  for (let i = 1; i <= long.length; i++) {
    for (let j = 1; j <= short.length; j++) {
      cur[j] = long[i - 1] === short[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[short.length]!;
}

/** ROUGE-L's F-measure weight, as pycocoevalcap's `Rouge` (beta = 1.2). */
export const ROUGE_BETA = 1.2;

/**
 * ROUGE-L of one candidate against its references, as pycocoevalcap's `Rouge.calc_score`: tokens are
 * `split(" ")` (so an empty caption is one empty token), precision and recall are each maximised over
 * the references separately, then combined as an F-measure with beta 1.2.
 */
export function rougeL(candidate: string, refs: readonly string[]): number {
  const c = candidate.split(' ');
  let precMax = -Infinity;
  let recMax = -Infinity;
  for (const ref of refs) {
    const r = ref.split(' ');
    const lcs = lcsLength(r, c);
    precMax = Math.max(precMax, lcs / c.length);
    recMax = Math.max(recMax, lcs / r.length);
  }
  if (precMax !== 0 && recMax !== 0) {
    const b2 = ROUGE_BETA ** 2;
    return ((1 + b2) * precMax * recMax) / (recMax + b2 * precMax);
  }
  return 0;
}
