/**
 * @kestrel/pipelines — task pipelines (detect, segment, xray, defects, ask, caption) on the Kestrel
 * engine, ONNX Runtime and TensorFlow.js, plus the VisionLanguageModel.
 */
export { pipeline, pipelineTasks, RuntimeOptionsSchema, type PipelineTasks, type RuntimeOptions } from './registry.js';
export { VisionLanguageModel, VlmLoadOptionsSchema, type VlmLoadOptions, type VlmInput, type PreparedInputs } from './vlm/vision-language-model.js';
export { DeepseekVLV2Processor, ProcessorConfigSchema, PreprocessOptionsSchema, type ProcessorConfig, type PreprocessResult, type PreprocessOptions, type TokenizedPrompt, type VlmImage } from './vlm/processor.js';
export { conversationTokenizer } from './vlm/chat.js';
export { chat, formatConversation, tokenizeConversation, conversationImages, DEEPSEEK_TEMPLATE, type ConversationTokenizer, ChatOptionsSchema, type ChatHost, type ChatMessage, type ChatContentPart, type ChatOptions, type ChatResult, type ChatUsage, type ChatTimings } from './vlm/chat.js';
export { generateOptionsSchema as VlmGenerateOptionsSchema, type GenerateOptions as VlmGenerateOptions } from '@kestrel/moe';
export { TextTokenizer as VlmTokenizer, processorSpecialTokens, GROUNDING_TOKENS, CHAT_TOKENS } from './vlm/tokenizer.js';
export { AskOptionsSchema, CaptionOptionsSchema, ChatPipelineOptionsSchema, type AskOptions, type CaptionOptions, type ChatPipelineOptions, type AskPipeline, type CaptionPipeline, type ChatPipeline, type AskResult, type CaptionResult, type CallOptions } from './vlm/pipelines.js';
export { GroundOptionsSchema, type GroundOptions, type GroundPipeline, type GroundResult, type GroundDetection, type VlmDetection, type GroundCategory } from './vlm/ground.js';
export { benchGround, BenchGroundOptionsSchema, type BenchGroundOptions, type BenchGroundResult } from './vlm/ground-coco.js';
export { parseGrounding, type GroundingFlag, type ParsedGrounding, type ParsedBox, type DeepseekBox } from './vlm/grounding-parse.js';
export { boxFromDeepseek, boxToDeepseek, type GroundingFrame, type FrameGeometry } from './vlm/grounding-coords.js';
export { parseVl2Config, type Vl2Config } from './vlm/vl2-config.js';
export { checkCheckpoint, type CheckpointCheck } from './vlm/check-checkpoint.js';
export { vl2TensorShapes, visionTensorShapes, projectorTensorShapes, checkCheckpointTensors, countParameters, type TensorCheckReport } from './vlm/checkpoint-tensors.js';
export { isRemoteModel, DEFAULT_API_KEY_ENV, type RemoteModelInfo } from './remote/options.js';
export { trainXray, benchXray, XrayOptionsSchema, TrainXrayOptionsSchema, BenchXrayOptionsSchema, type XrayOptions, type XrayResult, type XrayPipeline, type TrainXrayOptions, type BenchXrayOptions, type XrayBenchResult } from './xray/index.js';
export { trainDefects, trainAnomaly, benchDefects, DefectsOptionsSchema, TrainDefectsOptionsSchema, TrainAnomalyOptionsSchema, BenchDefectsOptionsSchema, type DefectsOptions, type DefectsResult, type DefectsPipeline, type TrainDefectsOptions, type TrainAnomalyOptions, type BenchDefectsOptions, type DefectsBenchResult } from './defects/index.js';
export { qcModelTask, resolveQcModelDir } from './training/model-dir.js';
export { DetectOptionsSchema, COCO80_LABELS, COCO80_TO_91, type DetectOptionsInput, type Detection, type Segmentation, type DetectPipeline, type SegmentPipeline, type DetectTimings, type CocoRle } from './detect/index.js';
export { benchCoco, BenchCocoOptionsSchema, writeFileAtomic, type BenchCocoOptions, type BenchCocoResult, type CocoResultEntry } from './detect/bench.js';
export { registerModel, modelCatalog, catalogEntry, kestrelHome, modelCacheDir, repoModelsDir, pullModel, listModels, resolveModel, findMainFile, type ModelEntry, type ModelFile, type ModelFormat, type PulledManifest, type PullOptions, type PullResult, type ModelListing, type ResolvedModel } from './models/index.js';
export { drawOverlay, labelColour, OverlayOptionsSchema, type OverlayObject, type OverlayOptions } from './overlay/index.js';
export { useTfjsBackend, loadTfjsGraphModel, type TfjsBackend } from './runtime/tfjs.js';
export { openOnnxSession, onnxProviders, type ExecutionProvider } from './runtime/onnx.js';
export { PRESETS, PRESET_NAMES, ensurePresetCheckpoint, writePresetCheckpoint, presetDir, presetName, vl2Tensors, runOnnxVision, type OnnxVisionRun, type PresetName, type PresetSpec, type PresetTensor } from './presets/index.js';
