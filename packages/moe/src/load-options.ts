/** The options of MoeLanguageModel.load. */
import { z } from 'zod';
import type { ProgressListener } from '@kestrel/core';
import type { Kernels } from '@kestrel/native';

/** Options of {@link MoeLanguageModel.load}. */
export const loadOptionsSchema = z.object({
  /**
   * in-memory weight format: f32, bf16, or int8 (q8 weight-only, block 32). Default: the checkpoint's own (BF16
   * weights stay bf16 and are used in place, a `kestrel quantize` checkpoint is int8, F32 and F16 become f32).
   */
  dtype: z.enum(['f32', 'bf16', 'int8']).optional(),
  /** kernel threads (native backend) */
  threads: z.number().int().positive().optional(),
  device: z.enum(['cpu', 'cuda']).default('cpu'),
  /** 'auto' (native when built, else portable), 'portable' or 'native' */
  backend: z.enum(['auto', 'portable', 'native']).default('auto'),
  /**
   * Name prefix of the LM weights: '' for DeepseekV2ForCausalLM, 'language.' inside DeepSeek-VL2.
   * Default: detected from the checkpoint.
   */
  prefix: z.string().optional(),
  /** config object to use instead of `<dir>/config.json` (e.g. VL2's `language_config`) */
  config: z.record(z.string(), z.unknown()).optional(),
  /**
   * MLA attention form: 'absorbed' (attend over the cached latent, weights absorbed), 'naive'
   * (decompress k/v), or 'auto' (cheaper of the two per call; decode is always absorbed).
   */
  mlaMode: z.enum(['auto', 'absorbed', 'naive']).default('auto'),
  /**
   * Use these kernels instead of choosing by `device`/`backend` (a custom backend, or a CUDA backend made
   * from another build). Kernels with device ops (device 'cuda') get the device-resident forward pass.
   */
  kernels: z.custom<Kernels>((v) => typeof v === 'object' && v !== null && typeof (v as Kernels).linear === 'function', 'kernels must implement the Kernels contract').optional(),
  /**
   * device 'cuda': where the routed experts live. 'gpu' (default): all on the GPU; 'cpu': all in host memory on
   * the CPU kernels (only the token activations cross the bus, per MoE layer); 'auto': as many MoE layers' experts
   * on the GPU as its memory holds, the first layers' on the CPU. Like llama.cpp's --cpu-moe / --n-cpu-moe.
   */
  expertsOn: z.enum(['gpu', 'cpu', 'auto']).optional(),
  /** device 'cuda': keep the routed experts of the first N MoE layers on the CPU (llama.cpp's --n-cpu-moe) */
  cpuExpertLayers: z.number().int().nonnegative().optional(),
  /** receives 'load language model' progress events (one per layer); they also go to the core progress bus */
  onProgress: z.custom<ProgressListener>((v) => typeof v === 'function', 'onProgress must be a function').optional(),
}).strict();
export type LoadOptions = z.input<typeof loadOptionsSchema>;
