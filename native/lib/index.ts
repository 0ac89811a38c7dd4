/**
 * @kestrel/native — the kernel contract, the portable TypeScript kernels (the reference every other
 * backend is tested against) and the loader for the C++ addon.
 */
export * from './contract.js';

/** Which compute backends this process can use. */
export interface BackendInfo {
  /** the backend models get by default */
  default: string;
  /** whether the C++ addon loaded, and why not when it did not */
  native: { loaded: boolean; reason?: string; isa?: string };
}

/** Report which kernels are available. */
export function backendInfo(): BackendInfo {
  return { default: 'portable', native: { loaded: false, reason: 'the C++ addon is not built yet' } };
}
