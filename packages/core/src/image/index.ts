export type { PixelImage, RgbImage, GrayImage } from './types.js';
export { assertPixelImage } from './types.js';
export { loadImage, rgbToLuma, LoadImageOptionsSchema, DEFAULT_MAX_PIXELS, type LoadImageOptions, type ImageInput } from './load.js';
export { resizeBicubicPillow, bicubicCoefficients, type ResampleCoefficients } from './resize.js';
export { padToSize, containSize, pythonRound, solidImage, pasteImage } from './pad.js';
export { cropImage, cropTiles } from './tiles.js';
export { toChwNormalized, NormalizeOptionsSchema, type NormalizeOptions } from './normalize.js';
export { selectBestResolution } from './resolution.js';
