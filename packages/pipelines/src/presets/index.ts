export { PRESETS, PRESET_NAMES, type PresetName, type PresetSpec } from './configs.js';
export { vl2Tensors, type PresetTensor, type Init } from './tensors.js';
export { standInTokenizer, VL2_SPECIAL_TOKENS } from './tokenizer.js';
export { ensurePresetCheckpoint, ensureCheckpoint, writePresetCheckpoint, presetDir, presetName, SHARD_BYTES } from './writer.js';
export { runOnnxVision, type OnnxVisionRun } from './onnx-vision.js';
