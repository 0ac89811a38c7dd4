/** Where a model's routed experts live on device 'cuda': the plan from its config and the GPU's memory. */
import { BYTES_PER_PARAM, mlaAttentionParams, planExpertPlacement, type ExpertPlacement } from '@kestrel/native';
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
