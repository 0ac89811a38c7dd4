/** COCO detection / segmentation / keypoint evaluation with pycocotools' semantics. */
export { COCO, readJsonFile, type CocoAnnotation, type CocoImage, type CocoCategory } from './coco.js';
export { COCOeval, argsortDescStable, type AccumulatedEval } from './cocoeval.js';
export { defaultParams, linspace, type CocoParams, type IouType } from './params.js';
export {
  evaluateCoco, cocoParamsSchema, type EvaluateCocoOptions, type CocoEvalResult, type CocoCategoryResult, type CocoParamsOverride,
} from './evaluate-coco.js';
export { gtDatasetSchema, resultsSchema, type GtDatasetInput, type ResultInput } from './schema.js';
export { formatFixed, pairwiseSum } from './numeric.js';
