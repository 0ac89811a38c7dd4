/**
 * @kestrel/vit — the SigLIP ViT image encoder of DeepSeek-VL2 (`vision.*` weights), running on the
 * Kestrel kernel contract so the portable, native CPU and CUDA backends all apply.
 */
export { VisionTransformer, type VisionOutput } from './vision-transformer.js';
export { VisionConfigSchema, parseVisionConfig, patchGrid, visionMlpHidden, type VisionConfig } from './config.js';
export { readF32, readLinear, type WeightSource } from './weights.js';
