import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { KestrelError } from '@kestrel/core';
import type * as Ort from 'onnxruntime-node';

/** Where ONNX Runtime executes: `cpu` (default), `cuda` (onnxruntime-node builds with the CUDA provider), `cann` (Ascend: not in the Node binding). */
export type ExecutionProvider = 'cpu' | 'cuda' | 'cann';

/** An ONNX Runtime session and the provider it runs on. */
export interface OnnxSession {
  ort: typeof Ort;
  session: Ort.InferenceSession;
  provider: ExecutionProvider;
}

/** True when onnxruntime-node's CUDA provider library sits next to its Node binding (Linux). */
function cudaProviderInstalled(): boolean {
  try {
    const root = dirname(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')));
    return existsSync(join(root, 'bin', 'napi-v6', 'linux', process.arch, 'libonnxruntime_providers_cuda.so'));
  } catch {
    return false;
  }
}

/** Execution providers this onnxruntime-node build can use (`bundled: false` ones need their libraries installed). */
export async function onnxProviders(): Promise<Array<{ name: string; bundled: boolean }>> {
  const ort = await import('onnxruntime-node');
  return ort.listSupportedBackends().map((b) => ({ name: b.name, bundled: b.bundled }));
}

/**
 * Open an ONNX model with the requested execution provider. `cann` always throws
 * `E_BACKEND_UNAVAILABLE`: Huawei's CANN provider exists in ONNX Runtime's C/C++ and Python builds,
 * but onnxruntime-node is not built with it, so Node cannot reach an Ascend NPU through ONNX Runtime.
 */
export async function openOnnxSession(file: string, provider: ExecutionProvider = 'cpu'): Promise<OnnxSession> {
  if (provider === 'cann') {
    throw new KestrelError('E_BACKEND_UNAVAILABLE', 'executionProvider "cann" is not available: onnxruntime-node (the Node.js binding) ships no CANN execution provider, so Ascend NPUs cannot be used from Node through ONNX Runtime. Use "cpu", or run the model with ONNX Runtime for Python/C++ built with CANN.');
  }
  let ort: typeof Ort;
  try {
    ort = await import('onnxruntime-node');
  } catch (e) {
    throw new KestrelError('E_BACKEND_UNAVAILABLE', `onnxruntime-node cannot load here: ${(e as Error).message}`, { cause: e });
  }
  if (provider === 'cuda' && !ort.listSupportedBackends().some((b) => b.name === 'cuda')) {
    throw new KestrelError('E_BACKEND_UNAVAILABLE', 'executionProvider "cuda": this onnxruntime-node build has no CUDA provider (Linux x64 builds have one; install CUDA 12 + cuDNN 9)');
  }
  if (provider === 'cuda' && process.platform === 'linux' && !cudaProviderInstalled()) {
    // Checked up front so ORT does not print its own native error before ours.
    throw new KestrelError('E_BACKEND_UNAVAILABLE', 'executionProvider "cuda": the CUDA provider libraries of onnxruntime-node are not installed (its install script fetches them; it needs CUDA 12 + cuDNN 9, and was skipped or failed here). Use "cpu".');
  }
  try {
    // a pool of model workers gives each its share of the cores (KESTREL_THREADS, set per worker thread)
    const threads = Number(process.env.KESTREL_THREADS);
    const sized = Number.isInteger(threads) && threads > 0 ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {};
    const session = await ort.InferenceSession.create(file, { executionProviders: [provider], graphOptimizationLevel: 'all', ...sized });
    return { ort, session, provider };
  } catch (e) {
    const msg = (e as Error).message;
    if (provider === 'cuda') {
      throw new KestrelError('E_BACKEND_UNAVAILABLE', `executionProvider "cuda" failed to start (${msg}); onnxruntime-node needs the CUDA provider libraries (installed by its install script with CUDA 12 + cuDNN 9). Use "cpu".`, { cause: e });
    }
    throw new KestrelError('E_CHECKPOINT_FORMAT', `cannot load ONNX model ${file}: ${msg}`, { cause: e });
  }
}
