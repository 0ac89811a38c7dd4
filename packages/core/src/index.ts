/**
 * @kestrel/core — tensors, safetensors, images, errors, progress and option schemas shared by every
 * Kestrel package.
 */
export { KestrelError, isKestrelError, type KestrelErrorCode } from './errors.js';
export {
  Tensor, DTYPE_BYTES, shapeSize, bf16ToF32, f32ToBf16, f16ToF32, f32ToF16,
  type DType, type TypedArrayFor, type AnyTypedArray, type DTypeArrayMap,
} from './tensor.js';
export { openSafetensors, readAllSafetensors, type SafetensorsFile, type TensorInfo, type OpenSafetensorsOptions } from './safetensors.js';
export { registerFileMapper, type FileMapper } from './file-mapper.js';
export { progress, reportProgress, onProgress, type ProgressEvent, type ProgressListener } from './progress.js';
export { parseOptions } from './options.js';
export { readJson, writeFileAtomic, type ReadJsonOptions } from './files.js';
export { camelCaseKey, withCamelCaseKeys } from './output-case.js';
export {
  loadImage, LoadImageOptionsSchema, DEFAULT_MAX_PIXELS, resizeBicubicPillow, bicubicCoefficients, padToSize, containSize,
  pythonRound, solidImage, pasteImage, cropImage, cropTiles, toChwNormalized, NormalizeOptionsSchema, selectBestResolution,
  assertPixelImage,
  type PixelImage, type RgbImage, type GrayImage, type LoadImageOptions, type ImageInput, type ResampleCoefficients,
  type NormalizeOptions,
} from './image/index.js';
export { rgbToLuma } from './image/index.js';
export { checkPngStructure, checkPngImageData, looksLikePng, assertAcceptedFormat, RASTER_FORMATS, type PngLayout } from './image/index.js';
export { SafetensorsIndexSchema, type SafetensorsIndex } from './config.js';
export { mulberry32, Xoshiro128 } from './random.js';
export { warnUnknownConfigKeys, PRETRAINED_CONFIG_KEYS } from './config-keys.js';
export {
  WorkerClient, WorkerPool, threadsPerWorker, modelCores, serveWorker, serializeError, deserializeError, workerScript, callbackStream,
  type WorkerSpec, type WorkerCallOptions, type CallContext, type WorkerHandlers, type WorkerSetup, type SerializedError,
} from './worker/index.js';
export { writeSafetensors, writeSafetensorsStreamed, safetensorsHeader, type StreamedTensor } from './safetensors-stream.js';
