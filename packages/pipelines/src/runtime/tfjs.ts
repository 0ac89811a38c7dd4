import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { KestrelError } from '@kestrel/core';
import type * as TfCore from '@tensorflow/tfjs-core';
import type * as TfConverter from '@tensorflow/tfjs-converter';

// tfjs ships CommonJS for Node; loading every tfjs package through one `require` guarantees that the
// converter, the backends and we share one tfjs-core instance (two copies would have two registries).
const require = createRequire(import.meta.url);

/** tfjs backends Kestrel can run graph models on. `node` is @tensorflow/tfjs-node, used only if installed. */
export type TfjsBackend = 'wasm' | 'cpu' | 'node';

/** The tfjs-core module. */
export type Tf = typeof TfCore;
/** A loaded tfjs graph model. */
export type GraphModel = TfConverter.GraphModel;

let tfCore: Tf | undefined;
const ready = new Map<TfjsBackend, Promise<void>>();

/** The tfjs-core module (loaded on first use). */
export function tf(): Tf {
  if (!tfCore) {
    tfCore = require('@tensorflow/tfjs-core') as Tf;
    // PROD silences tfjs's console banners (e.g. "install tfjs-node" when cpu is chosen on purpose)
    // and skips its debug-mode checks.
    tfCore.env().set('PROD', true);
  }
  return tfCore;
}

async function initBackend(name: TfjsBackend): Promise<void> {
  const t = tf();
  if (name === 'cpu') {
    require('@tensorflow/tfjs-backend-cpu');
  } else if (name === 'wasm') {
    const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
    // Point emscripten at the binaries inside node_modules: never fetch them from a CDN.
    const dist = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    wasm.setWasmPaths({
      'tfjs-backend-wasm.wasm': join(dist, 'tfjs-backend-wasm.wasm'),
      'tfjs-backend-wasm-simd.wasm': join(dist, 'tfjs-backend-wasm-simd.wasm'),
      'tfjs-backend-wasm-threaded-simd.wasm': join(dist, 'tfjs-backend-wasm-threaded-simd.wasm'),
    });
  } else {
    try {
      require('@tensorflow/tfjs-node');
    } catch (e) {
      throw new KestrelError('E_BACKEND_UNAVAILABLE', 'the tfjs "node" backend needs @tensorflow/tfjs-node, which is not installed here; use backend "wasm" (default) or "cpu"', { cause: e });
    }
    // tfjs-node registers against its own tfjs-core copy when versions differ; refuse rather than run on cpu silently.
    if (!t.findBackend('tensorflow')) {
      throw new KestrelError('E_BACKEND_UNAVAILABLE', '@tensorflow/tfjs-node is installed but did not register with this tfjs-core (version mismatch?)');
    }
  }
}

/**
 * Make `name` the active tfjs backend (registering it on first use). `wasm` falls back to `cpu` with a
 * warning when WebAssembly cannot start (it needs the binaries shipped in @tensorflow/tfjs-backend-wasm).
 *
 * @returns the backend actually in use.
 */
export async function useTfjsBackend(name: TfjsBackend = 'wasm'): Promise<TfjsBackend> {
  const t = tf();
  let p = ready.get(name);
  if (!p) {
    p = initBackend(name);
    ready.set(name, p);
  }
  try {
    await p;
    const id = name === 'node' ? 'tensorflow' : name;
    if (!(await t.setBackend(id))) throw new Error(`tfjs could not initialise backend "${id}"`);
    await t.ready();
    return name;
  } catch (e) {
    if (name === 'wasm') {
      process.emitWarning(`tfjs wasm backend unavailable (${(e as Error).message}); falling back to cpu (about 30x slower)`);
      return useTfjsBackend('cpu');
    }
    if (e instanceof KestrelError) throw e;
    throw new KestrelError('E_BACKEND_UNAVAILABLE', `tfjs backend "${name}" failed to start: ${(e as Error).message}`, { cause: e });
  }
}

/** The tfjs `model.json` fields Kestrel reads. */
interface ModelJson {
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  modelTopology?: unknown;
  signature?: unknown;
  userDefinedMetadata?: Record<string, unknown>;
  modelInitializer?: unknown;
  weightsManifest?: Array<{ paths: string[]; weights: TfCore.io.WeightsManifestEntry[] }>;
}

/**
 * An IO handler that reads a tfjs `model.json` and its weight shards from the local disk (tfjs's own
 * file loaders are browser- or tfjs-node-only). Shards are concatenated in manifest order, which is
 * the layout `weightSpecs` offsets refer to.
 */
export function fileIOHandler(modelJsonPath: string): TfCore.io.IOHandler {
  return {
    async load(): Promise<TfCore.io.ModelArtifacts> {
      let json: ModelJson;
      try {
        json = JSON.parse(await readFile(modelJsonPath, 'utf8')) as ModelJson;
      } catch (e) {
        throw new KestrelError('E_CHECKPOINT_FORMAT', `cannot read tfjs model ${modelJsonPath}: ${(e as Error).message}`, { cause: e });
      }
      if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
        throw new KestrelError('E_CHECKPOINT_FORMAT', `${modelJsonPath} is not a tfjs model.json (no modelTopology/weightsManifest)`);
      }
      const dir = dirname(modelJsonPath);
      const specs: TfCore.io.WeightsManifestEntry[] = [];
      const parts: Buffer[] = [];
      for (const group of json.weightsManifest) {
        specs.push(...group.weights);
        for (const p of group.paths) {
          try {
            parts.push(await readFile(join(dir, p)));
          } catch (e) {
            throw new KestrelError('E_CHECKPOINT_FORMAT', `weight shard ${p} of ${modelJsonPath} is missing: ${(e as Error).message}`, { cause: e });
          }
        }
      }
      const all = Buffer.concat(parts);
      const expected = specs.reduce((n, s) => n + weightBytes(s), 0);
      if (expected !== all.byteLength) {
        throw new KestrelError('E_CHECKPOINT_FORMAT', `weights of ${modelJsonPath} hold ${all.byteLength} bytes, the manifest describes ${expected} (truncated download?)`);
      }
      const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
      return {
        modelTopology: json.modelTopology as TfCore.io.ModelArtifacts['modelTopology'],
        weightSpecs: specs,
        weightData,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        signature: json.signature as object | undefined,
        userDefinedMetadata: json.userDefinedMetadata as TfCore.io.ModelArtifacts['userDefinedMetadata'],
        modelInitializer: json.modelInitializer as TfCore.io.ModelArtifacts['modelInitializer'],
      };
    },
  };
}

function weightBytes(s: TfCore.io.WeightsManifestEntry): number {
  const n = s.shape.reduce((a, b) => a * b, 1);
  if (s.quantization) {
    const q = s.quantization.dtype;
    return n * (q === 'uint8' ? 1 : q === 'float16' || q === 'uint16' ? 2 : 4);
  }
  return n * (s.dtype === 'bool' ? 1 : s.dtype === 'string' ? Number.NaN : 4);
}

/** Load a tfjs graph model (model.json + shards) from disk onto the active backend. */
export async function loadTfjsGraphModel(modelJsonPath: string, backend: TfjsBackend = 'wasm'): Promise<{ model: GraphModel; backend: TfjsBackend }> {
  const used = await useTfjsBackend(backend);
  const conv = require('@tensorflow/tfjs-converter') as typeof TfConverter;
  try {
    const model = await conv.loadGraphModel(fileIOHandler(modelJsonPath));
    return { model, backend: used };
  } catch (e) {
    if (e instanceof KestrelError) throw e;
    throw new KestrelError('E_CHECKPOINT_FORMAT', `cannot load tfjs graph model ${modelJsonPath}: ${(e as Error).message}`, { cause: e });
  }
}
