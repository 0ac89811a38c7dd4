import { z } from 'zod';
import { KestrelError } from '@kestrel/core';
import { clopperPearson, clopperPearsonUpper, zeroFailureSampleSize } from './intervals.js';

/** What a false-positive-rate claim needs: parts without a false alarm, three ways. */
export interface FprClaimRequirement {
  /** The claimed FPR p. */
  fpr: number;
  confidence: number;
  partsNeeded: {
    /** Exact, one-sided (the usual reading of "FPR ≤ p at 95 %"): smallest n with (1−p)^n ≤ 1−confidence. */
    clopperPearsonOneSided: number;
    /** Rule of three, n ≈ 3/p: an approximation of the one-sided 95 % bound (null at other confidences). */
    ruleOfThree: number | null;
    /** Exact, two-sided: the upper end of the two-sided interval at 0/n is ≤ p. */
    clopperPearsonTwoSided: number;
  };
}

/** The FPR range a bench result supports. */
export interface FprEvidence {
  fp: number;
  negatives: number;
  /** fp / negatives. */
  fpr: number;
  confidence: number;
  /** Two-sided exact Clopper-Pearson interval. */
  interval: [number, number];
  /** One-sided exact upper bound: the data support "FPR ≤ upperOneSided". */
  upperOneSided: number;
  /** With a claimed FPR: whether the one-sided upper bound is ≤ the claim. */
  claimSupported?: boolean;
  /** With a claimed FPR and no false alarm so far: more consecutive clean parts needed (0 if already enough). */
  additionalCleanPartsNeeded?: number;
}

/** The parts needed to support an FPR claim of `fpr` at `confidence` (default 95 %). */
export function fprClaimRequirement(fpr: number, confidence = 0.95): FprClaimRequirement {
  const z0 = zeroFailureSampleSize(fpr, confidence);
  return {
    fpr,
    confidence,
    partsNeeded: { clopperPearsonOneSided: z0.exactOneSided, ruleOfThree: z0.ruleOfThree, clopperPearsonTwoSided: z0.exactTwoSided },
  };
}

/** The FPR range that `fp` false alarms in `negatives` defect-free parts support; optionally test a claim. */
export function fprEvidence(fp: number, negatives: number, confidence = 0.95, claimedFpr?: number): FprEvidence {
  const two = clopperPearson(fp, negatives, confidence);
  const one = clopperPearsonUpper(fp, negatives, confidence);
  const out: FprEvidence = { fp, negatives, fpr: fp / negatives, confidence, interval: [two.lower, two.upper], upperOneSided: one.upper };
  if (claimedFpr !== undefined) {
    out.claimSupported = one.upper <= claimedFpr;
    if (fp === 0) out.additionalCleanPartsNeeded = Math.max(0, zeroFailureSampleSize(claimedFpr, confidence).exactOneSided - negatives);
  }
  return out;
}

const count = z.number().int().nonnegative();
const counts = z.object({ fp: count, negatives: count.optional(), tn: count.optional() });

/**
 * A bench result's false-positive counts. Accepted shapes: `{fp, negatives}`, `{fp, tn}`, or either
 * nested under `confusion` / `confusion_matrix` (objects with `fp` and `tn`).
 */
export const BenchFpSchema = z.union([
  counts,
  z.object({ confusion: counts }),
  z.object({ confusion_matrix: counts }),
]);

/** Read `{fp, negatives}` from a bench result (see {@link BenchFpSchema}); bad shapes → E_DATA_FORMAT. */
export function benchFpCounts(value: unknown, source = 'bench result'): { fp: number; negatives: number } {
  const r = BenchFpSchema.safeParse(value);
  if (!r.success) {
    throw new KestrelError('E_DATA_FORMAT', `${source}: expected {"fp": K, "negatives": N} (or "tn" instead of "negatives", optionally under "confusion"), as non-negative integers`, {
      details: { issues: r.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })) },
    });
  }
  const c = 'confusion' in r.data ? r.data.confusion : 'confusion_matrix' in r.data ? r.data.confusion_matrix : r.data;
  const negatives = c.negatives ?? (c.tn !== undefined ? c.tn + c.fp : undefined);
  if (negatives === undefined) throw new KestrelError('E_DATA_FORMAT', `${source}: has "fp" but neither "negatives" nor "tn"`, { details: { path: 'negatives' } });
  if (c.negatives !== undefined && c.tn !== undefined && c.tn + c.fp !== c.negatives) {
    throw new KestrelError('E_DATA_FORMAT', `${source}: tn + fp (${c.tn + c.fp}) differs from negatives (${c.negatives})`, { details: { path: 'negatives' } });
  }
  if (negatives < 1) throw new KestrelError('E_DATA_FORMAT', `${source}: no negative (defect-free) samples, so there is no false-positive rate to bound`, { details: { path: 'negatives' } });
  if (c.fp > negatives) throw new KestrelError('E_DATA_FORMAT', `${source}: fp (${c.fp}) exceeds negatives (${negatives})`, { details: { path: 'fp' } });
  return { fp: c.fp, negatives };
}
