/**
 * @kestrel/projector — DeepSeek-VL2's MLP projector (2×2 downsample + GELU MLP) and the image-token
 * layout (global/local views, row newlines, view separator) that turns ViT features into LM tokens.
 */
export { MlpProjector, type WeightSource } from './mlp-projector.js';
export { ProjectorConfigSchema, parseProjectorConfig, projectedSide, type ProjectorConfig } from './config.js';
export { ImageTokenLayout, numImageTokens, type GlobalViewPos, type SpatialCrop } from './image-token-layout.js';
