import { KestrelError } from '@kestrel/core';
import type { Kernels } from './contract.js';
import { portableKernels } from './portable/index.js';

/** Which backend `getKernels` should return. */
export type BackendChoice = 'auto' | 'portable' | 'native';

/** Options of {@link getKernels}. */
export interface GetKernelsOptions {
  /** 'auto' (default): native when the addon loads, else portable (with one warning on stderr). */
  backend?: BackendChoice;
  /** Worker threads for the native backend (default: its own choice, normally the core count). */
  threads?: number;
}

/** Which compute backends this process can use. */
export interface BackendInfo {
  /** the backend models get by default */
  default: string;
  /** whether the C++ addon loaded, and why not when it did not */
  native: { loaded: boolean; reason?: string; isa?: string };
}

/**
 * What `./addon.js` (the C++ addon loader, written by the native backend) is expected to export:
 * `loadNativeKernels(options)` returning the native `Kernels` or throwing when the binary is missing.
 * `nativeKernels` / a default export holding `Kernels` are accepted too.
 */
interface AddonModule {
  loadNativeKernels?: (options?: { threads?: number }) => Kernels | Promise<Kernels>;
  nativeKernels?: Kernels;
  default?: Kernels | { loadNativeKernels?: (options?: { threads?: number }) => Kernels | Promise<Kernels> };
}

let nativeState: { kernels: Kernels | null; reason?: string; loader?: (options?: { threads?: number }) => Kernels | Promise<Kernels> } | null = null;
let warned = false;

async function loadNative(threads?: number): Promise<{ kernels: Kernels | null; reason?: string }> {
  if (nativeState) {
    // a later threads request resizes this JS thread's native pool (each worker_thread has its own)
    if (nativeState.kernels && nativeState.loader && threads !== undefined) nativeState.kernels = await nativeState.loader({ threads });
    return nativeState;
  }
  try {
    // A variable specifier keeps tsc from requiring the addon loader at build time: it may be absent.
    const spec = './addon.js';
    const mod = (await import(spec)) as AddonModule;
    const def = mod.default as (Kernels & { loadNativeKernels?: undefined }) | { loadNativeKernels?: AddonModule['loadNativeKernels'] } | undefined;
    const loader = mod.loadNativeKernels ?? (def && 'loadNativeKernels' in def ? def.loadNativeKernels : undefined);
    let k: Kernels | undefined;
    if (loader) k = await loader(threads !== undefined ? { threads } : {});
    else if (mod.nativeKernels) k = mod.nativeKernels;
    else if (def && 'linear' in def) k = def as Kernels;
    if (!k) throw new Error('./addon.js exports no kernels');
    nativeState = loader ? { kernels: k, loader } : { kernels: k };
  } catch (e) {
    nativeState = { kernels: null, reason: (e as Error).message };
  }
  return nativeState;
}

/**
 * The kernels models should use. 'auto' returns the native CPU kernels when the addon loads, else the
 * portable TypeScript kernels (saying so once on stderr); 'native' throws `E_BACKEND_UNAVAILABLE` when
 * the addon cannot load; 'portable' always returns the portable kernels.
 */
export async function getKernels(options: GetKernelsOptions = {}): Promise<Kernels> {
  const backend = options.backend ?? 'auto';
  if (backend === 'portable') return portableKernels;
  if (backend !== 'auto' && backend !== 'native') {
    throw new KestrelError('E_OPTIONS', `unknown backend "${String(backend)}"; use 'auto', 'portable' or 'native'`);
  }
  const st = await loadNative(options.threads);
  if (st.kernels) return st.kernels;
  if (backend === 'native') {
    throw new KestrelError('E_BACKEND_UNAVAILABLE', `the native kernels are not available (${st.reason ?? 'unknown reason'}); build them with \`npm run build:native\` or use backend 'portable'`);
  }
  if (!warned) {
    warned = true;
    process.stderr.write(`kestrel: native kernels unavailable (${st.reason ?? 'unknown reason'}); using the portable TypeScript kernels (slower)\n`);
  }
  return portableKernels;
}

/** The backends that load in this process (portable always; native when the addon loads). */
export async function availableBackends(): Promise<Kernels[]> {
  const st = await loadNative();
  return st.kernels ? [portableKernels, st.kernels] : [portableKernels];
}

/**
 * Report which kernels are available. Synchronous: it reflects the last `getKernels` /
 * `availableBackends` call (before any, the addon has not been tried yet).
 */
export function backendInfo(): BackendInfo {
  if (!nativeState) return { default: 'portable', native: { loaded: false, reason: 'the addon has not been loaded yet (call getKernels() first)' } };
  if (nativeState.kernels) {
    const name = nativeState.kernels.name;
    const m = /\(([^)]+)\)/.exec(name);
    return { default: name, native: { loaded: true, ...(m ? { isa: m[1]! } : {}) } };
  }
  return { default: 'portable', native: { loaded: false, ...(nativeState.reason !== undefined ? { reason: nativeState.reason } : {}) } };
}
