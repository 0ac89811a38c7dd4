/**
 * @kestrel/moe — the DeepSeek-V2-family Mixture-of-Experts language model: config validation, weight
 * loading (f32/bf16/f16 checkpoints, int8 quantization), MHA and MLA attention with KV cache, routed +
 * shared experts, sampling and streaming generation, tokenizer.json support.
 */
export { MoeLanguageModel, loadOptionsSchema, type LoadOptions, type ForwardInput, type ForwardOptions, type ForwardOutput, type RouterOutput } from './model.js';
export { KvCache } from './kv-cache.js';
export { planExpertPlacement, type ExpertPlacement, type ExpertPlacementOptions } from './placement.js';
export { parseModelConfig, deepseekV2ConfigSchema, type DeepseekV2Config, type ModelConfig } from './config.js';
export { ropeFrequencies, attentionMscale2 } from './rope-tables.js';
export { checkpointDType, type ModelDType } from './weights.js';
export { TextTokenizer } from './tokenizer.js';
export { languageTensorShapes } from './tensor-shapes.js';
export { generateOptionsSchema, type GenerateOptions, type GenerateInput, type GenerateResult, type StreamChunk, type FinishReason } from './generation.js';
export { samplingProbs, applyRepetitionPenalty, argmax, SeededRandom, type SamplingParams } from './sampling.js';
export { quantizeCheckpoint, type QuantizeReport } from './quantize.js';
export { MoeWorkerModel } from './worker-model.js';
export type { MoeWorkerInfo } from './moe-worker.js';
