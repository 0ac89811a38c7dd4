import { z } from 'zod';

/**
 * zod schemas of the files @kestrel/core reads besides tensors. Other packages keep their own model
 * config schemas next to the code that uses them.
 */

/** `model.safetensors.index.json` of a sharded checkpoint (as written by Hugging Face `save_pretrained`). */
export const SafetensorsIndexSchema = z.object({
  /** Free-form; `total_size` is usual. Not used for reading. */
  metadata: z.record(z.string(), z.unknown()).optional(),
  /** Tensor name -> shard file name (in the index's folder). */
  weight_map: z.record(
    z.string(),
    z.string().refine((f) => f.length > 0 && !f.includes('/') && !f.includes('\\') && !f.startsWith('.'), 'is not a plain shard file name'),
  ),
});
export type SafetensorsIndex = z.output<typeof SafetensorsIndexSchema>;
