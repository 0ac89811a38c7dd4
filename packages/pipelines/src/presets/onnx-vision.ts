/**
 * The ONNX Runtime side of `kestrel bench vlm --onnx`: the same SigLIP tower exported by
 * scripts/siglip-onnx/export_siglip_onnx.py, run by onnxruntime-node on the same tiles with the same thread count.
 */
import { KestrelError, type Tensor } from '@kestrel/core';

/** Time and output of one ONNX Runtime run over all tiles. */
export interface OnnxVisionRun {
  /** wall time of the run (after one warm-up run on the first tile) */
  ms: number;
  msPerTile: number;
  /** largest |ORT - reference| over the features, relative to the reference's largest |value| */
  maxRelDiff: number | null;
}

/** Run `file` on `pixels` [tiles, 3, S, S] with `threads` intra-op threads; compare with `reference` features when given. */
export async function runOnnxVision(file: string, pixels: Tensor<'f32'>, threads: number, reference?: Tensor<'f32'>): Promise<OnnxVisionRun> {
  let ort: typeof import('onnxruntime-node');
  try {
    ort = await import('onnxruntime-node');
  } catch (e) {
    throw new KestrelError('E_BACKEND_UNAVAILABLE', `onnxruntime-node cannot load here: ${(e as Error).message}`, { cause: e });
  }
  let session: import('onnxruntime-node').InferenceSession;
  try {
    session = await ort.InferenceSession.create(file, { executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1 });
  } catch (e) {
    throw new KestrelError('E_MODEL_NOT_FOUND', `cannot open ${file} with ONNX Runtime: ${(e as Error).message}; write it with scripts/siglip-onnx/export_siglip_onnx.py`, { cause: e });
  }
  try {
    const [T, C, H, W] = pixels.shape as [number, number, number, number];
    const one = new ort.Tensor('float32', pixels.data.subarray(0, C * H * W), [1, C, H, W]);
    await session.run({ pixel_values: one });
    const t0 = performance.now();
    const out = await session.run({ pixel_values: new ort.Tensor('float32', pixels.data, [T, C, H, W]) });
    const ms = performance.now() - t0;
    const feats = out.features!.data as Float32Array;
    let maxRelDiff: number | null = null;
    if (reference && reference.data.length === feats.length) {
      let d = 0; let s = 0;
      for (let i = 0; i < feats.length; i++) { d = Math.max(d, Math.abs(feats[i]! - reference.data[i]!)); s = Math.max(s, Math.abs(reference.data[i]!)); }
      maxRelDiff = s > 0 ? d / s : d;
    }
    return { ms, msPerTile: ms / T, maxRelDiff };
  } finally {
    await session.release();
  }
}
