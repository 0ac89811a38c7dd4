/** Where a model's routed experts live on device 'cuda': the plan from its config and the GPU's memory. */
import { KestrelError } from '@kestrel/core';
import { BYTES_PER_PARAM, mlaAttentionParams } from '@kestrel/native';
import type { ModelConfig } from './config.js';
import type { ModelDType } from './weights.js';

/** The expert placement of a model on the GPU, from its config and the GPU's memory ('auto'). */
export function planExperts(cfg: ModelConfig, dtype: ModelDType, expertsOn: 'gpu' | 'cpu' | 'auto', cpuExpertLayers: number | undefined, gpuMem: number | undefined): ExpertPlacement {
  const bpp = BYTES_PER_PARAM[dtype];
  const H = cfg.hidden;
  const expertBytesPerLayer = cfg.nRouted * 3 * H * cfg.moeIntermediate * bpp;
  // MLA also holds kv_b split per head (W_ukᵀ, W_uv) for the absorbed form
  const attn = cfg.useMla
    ? mlaAttentionParams(cfg) + cfg.nHeads * (cfg.nope + cfg.vHead) * cfg.kvLoraRank
    : (cfg.nHeads + 2 * cfg.nKvHeads) * cfg.headDim * H + H * cfg.nHeads * cfg.headDim;
  let other = (cfg.tied ? 1 : 2) * cfg.vocab * H * bpp;
  for (let l = 0; l < cfg.nLayers; l++) {
    other += attn * bpp;
    other += cfg.isMoeLayer[l] ? cfg.nShared * 3 * H * cfg.moeIntermediate * bpp + cfg.nRouted * H * 4 : 3 * H * cfg.intermediate * bpp;
  }
  const gpuBytes = gpuMem;
  return planExpertPlacement({
    expertsOn, layers: cfg.nLayers, isMoeLayer: (l) => cfg.isMoeLayer[l] === true, expertBytesPerLayer, otherBytes: other,
    ...(cpuExpertLayers !== undefined ? { cpuExpertLayers } : {}),
    // headroom for the KV cache, workspaces and the CUDA context: a tenth of the card, at least 1 GiB
    ...(gpuBytes !== undefined ? { gpuBytes, reserveBytes: Math.max(2 ** 30, gpuBytes / 10) } : {}),
  });
}

export interface ExpertPlacementOptions {
  /** 'gpu': all on the GPU; 'cpu': all in host memory (CPU kernels); 'auto': as many layers on the GPU as fit */
  expertsOn: 'gpu' | 'cpu' | 'auto';
  /** keep the routed experts of the first N MoE layers on the CPU (like llama.cpp's --n-cpu-moe); overrides 'gpu' for those layers */
  cpuExpertLayers?: number;
  /** number of decoder layers and which of them are MoE layers */
  layers: number;
  isMoeLayer: (layer: number) => boolean;
  /** bytes of the routed experts of one MoE layer, and of everything else (attention, dense, shared experts, embeddings, head) */
  expertBytesPerLayer: number;
  otherBytes: number;
  /** GPU memory available for weights, in bytes ('auto' only) and headroom kept for KV cache and workspaces */
  gpuBytes?: number;
  reserveBytes?: number;
}

/** The plan: per layer, where its routed experts run, and the bytes that go to the GPU. */
export interface ExpertPlacement {
  experts: Array<'gpu' | 'cpu' | null>;
  gpuBytes: number;
  cpuBytes: number;
  expertLayersOnCpu: number;
}

/**
 * Decide where each layer's routed experts live. Everything but the routed experts is on the GPU; with
 * 'auto' the first MoE layers move to the CPU until the rest fits in `gpuBytes - reserveBytes`.
 * Throws `E_OPTIONS` for inconsistent options and `E_BACKEND_UNAVAILABLE` when even the non-expert
 * weights do not fit.
 */
export function planExpertPlacement(o: ExpertPlacementOptions): ExpertPlacement {
  if (!['gpu', 'cpu', 'auto'].includes(o.expertsOn)) throw new KestrelError('E_OPTIONS', `expertsOn must be 'gpu', 'cpu' or 'auto', got ${String(o.expertsOn)}`);
  const moeLayers: number[] = [];
  for (let l = 0; l < o.layers; l++) if (o.isMoeLayer(l)) moeLayers.push(l);
  let nCpu: number;
  if (o.cpuExpertLayers !== undefined) {
    if (!Number.isInteger(o.cpuExpertLayers) || o.cpuExpertLayers < 0) throw new KestrelError('E_OPTIONS', `cpuExpertLayers must be a non-negative integer, got ${o.cpuExpertLayers}`);
    if (o.expertsOn === 'cpu') throw new KestrelError('E_OPTIONS', "cpuExpertLayers goes with expertsOn 'gpu' or 'auto', not 'cpu'");
  }
  if (o.expertsOn === 'cpu') {
    nCpu = moeLayers.length;
  } else if (o.expertsOn === 'gpu') {
    nCpu = Math.min(o.cpuExpertLayers ?? 0, moeLayers.length);
  } else {
    if (o.gpuBytes === undefined) throw new KestrelError('E_OPTIONS', "expertsOn 'auto' needs gpuBytes");
    const budget = o.gpuBytes - (o.reserveBytes ?? 0);
    if (o.otherBytes > budget) {
      throw new KestrelError('E_BACKEND_UNAVAILABLE', `the non-expert weights (${(o.otherBytes / 2 ** 30).toFixed(2)} GiB) do not fit in the GPU budget (${(budget / 2 ** 30).toFixed(2)} GiB)`);
    }
    const fit = o.expertBytesPerLayer > 0 ? Math.floor((budget - o.otherBytes) / o.expertBytesPerLayer) : moeLayers.length;
    nCpu = Math.max(moeLayers.length - Math.max(fit, 0), Math.min(o.cpuExpertLayers ?? 0, moeLayers.length));
  }
  const experts: Array<'gpu' | 'cpu' | null> = Array.from({ length: o.layers }, () => null);
  moeLayers.forEach((l, i) => (experts[l] = i < nCpu ? 'cpu' : 'gpu'));
  const onGpu = moeLayers.length - nCpu;
  return { experts, gpuBytes: o.otherBytes + onGpu * o.expertBytesPerLayer, cpuBytes: nCpu * o.expertBytesPerLayer, expertLayersOnCpu: nCpu };
}
