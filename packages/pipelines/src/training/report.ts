import {
  accuracy, binaryCounts, bootstrapAccuracy, bootstrapAuc, clopperPearson, ratesAtThreshold, rocAuc,
  type BinaryCounts, type ProportionInterval,
} from '@kestrel/eval';

/** A figure with its 95 % interval. */
export interface IntervalFigure {
  estimate: number;
  lower: number;
  upper: number;
  method: string;
}

/** What `kestrel bench xray|defects` reports for a binary model on labelled data. */
export interface BinaryBenchReport {
  n: number;
  positives: number;
  negatives: number;
  /** Decision threshold used (stored with the model). */
  threshold: number;
  accuracy: IntervalFigure;
  /** ROC AUC with a stratified bootstrap interval (null when only one class is present). */
  auc: IntervalFigure | null;
  /** Counts at the threshold; `fp` and `tn` feed `kestrel claims --bench`. */
  confusion: BinaryCounts;
  /** Rows = true class, columns = predicted class, in `labels` order [negative, positive]. */
  confusionMatrix: { labels: [string, string]; matrix: [[number, number], [number, number]] };
  /** False-positive rate at the threshold with its exact Clopper-Pearson interval (null without negatives). */
  fpr: number | null;
  fprInterval: ProportionInterval | null;
  /** One-sided 95 % Clopper-Pearson upper bound on the FPR. */
  fprUpper95: number | null;
  /** True-positive rate (sensitivity) at the threshold, with its Clopper-Pearson interval. */
  tpr: number | null;
  tprInterval: ProportionInterval | null;
}

/**
 * Score a binary model: accuracy with a bootstrap interval, AUC with a stratified bootstrap interval,
 * FPR/TPR at the threshold with exact Clopper-Pearson intervals, confusion counts.
 */
export function binaryBenchReport(y: readonly (0 | 1)[], scores: readonly number[], threshold: number, labels: [string, string], seed = 20261129): BinaryBenchReport {
  const pred = scores.map((s) => (s >= threshold ? 1 : 0));
  const counts = binaryCounts(y, pred);
  const positives = counts.tp + counts.fn;
  const negatives = counts.tn + counts.fp;
  const acc = bootstrapAccuracy(y, pred, { seed });
  const both = positives > 0 && negatives > 0;
  const auc = both ? bootstrapAuc(y, scores, { seed }) : null;
  const rates = ratesAtThreshold(y, scores, threshold);
  const tprInterval = positives > 0 ? clopperPearson(counts.tp, positives) : null;
  return {
    n: y.length,
    positives,
    negatives,
    threshold,
    accuracy: { estimate: accuracy(y, pred), lower: acc.lower, upper: acc.upper, method: `percentile bootstrap, ${acc.resamples} resamples, seed ${acc.seed}` },
    auc: auc ? { estimate: rocAuc(y, scores), lower: auc.lower, upper: auc.upper, method: `stratified percentile bootstrap, ${auc.resamples} resamples, seed ${auc.seed}` } : null,
    confusion: counts,
    confusionMatrix: { labels, matrix: [[counts.tn, counts.fp], [counts.fn, counts.tp]] },
    fpr: negatives > 0 ? rates.fpr : null,
    fprInterval: rates.fprInterval,
    fprUpper95: rates.fprUpper ? rates.fprUpper.upper : null,
    tpr: positives > 0 ? rates.tpr : null,
    tprInterval,
  };
}

