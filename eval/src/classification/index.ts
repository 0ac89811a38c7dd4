/**
 * Classification / QC metrics for the X-ray and defect pipelines: accuracy, balanced accuracy, ROC AUC,
 * precision/recall/F1, confusion matrices, FPR at a threshold with exact Clopper-Pearson intervals,
 * bootstrap intervals, threshold choice for a target FPR, and zero-failure sample sizes.
 */
export {
  accuracy, balancedAccuracy, confusionMatrix, binaryCounts, precisionRecallF1, rocAuc, ratesAtThreshold,
  type Label, type ConfusionMatrix, type BinaryCounts, type PrecisionRecallF1, type RatesAtThreshold,
} from './metrics.js';
export { logGamma, logBeta, incompleteBeta, betaQuantile } from './beta.js';
export {
  clopperPearson, clopperPearsonUpper, zeroFailureSampleSize,
  type ProportionInterval, type ZeroFailureSampleSize,
} from './intervals.js';
export {
  bootstrapInterval, bootstrapAuc, bootstrapAccuracy, seededRandom, quantileSorted, BootstrapOptionsSchema,
  type BootstrapOptions, type BootstrapInterval,
} from './bootstrap.js';
export { thresholdForTargetFpr, nextUp, type ThresholdChoice } from './threshold.js';
export {
  fprClaimRequirement, fprEvidence, benchFpCounts, BenchFpSchema,
  type FprClaimRequirement, type FprEvidence,
} from './claims.js';
