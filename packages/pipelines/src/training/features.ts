import { reportProgress, type GrayImage, type ProgressListener } from '@kestrel/core';
import { FrozenBackbone, poolFeatures, type PoolStat } from './backbone.js';
import { loadGrayResized, type ImageInput } from './image-input.js';

/** How an image becomes a feature vector: resize, backbone nodes, pooling. Stored in every model. */
export interface FeatureSpec {
  /** Backbone input size (images are stretched to it). */
  width: number;
  height: number;
  /** Backbone node names whose activations are pooled. */
  nodes: string[];
  /** Per-channel statistics of each node (`mean+max` = ['mean', 'max']). */
  pooling: 'mean+max' | PoolStat[];
}

/** Pooled backbone features of one image. */
export async function pooledFeatures(backbone: FrozenBackbone, input: ImageInput | GrayImage, spec: FeatureSpec): Promise<Float32Array> {
  const img = isGray(input) ? input : await loadGrayResized(input, spec.width, spec.height);
  return poolFeatures(await backbone.featureMaps(img, spec.nodes), spec.pooling === 'mean+max' ? ['mean', 'max'] : spec.pooling);
}

/** Pooled features of many image files, with progress events. */
export async function pooledFeaturesOf(
  backbone: FrozenBackbone,
  files: readonly string[],
  spec: FeatureSpec,
  progress: { task: string; onProgress?: ProgressListener },
): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (let i = 0; i < files.length; i++) {
    out.push(await pooledFeatures(backbone, files[i]!, spec));
    if (i % 16 === 15 || i === files.length - 1) reportProgress({ task: progress.task, done: i + 1, total: files.length }, progress.onProgress);
  }
  return out;
}

function isGray(x: unknown): x is GrayImage {
  return typeof x === 'object' && x !== null && 'channels' in x && 'data' in x && (x as GrayImage).channels === 1 && !(x instanceof Uint8Array);
}
