/**
 * The machine's limits measured by the native engine itself, in the same process and on the same thread pool
 * that runs the model, so `kestrel bench lm` can print how close its figures come to them.
 */
import { KestrelError } from '@kestrel/core';

/** What {@link probeMachine} measured. All figures are for the whole pool (every thread at once). */
export interface MachineProbe {
  /** read bandwidth over a buffer far larger than the last-level cache, GB/s */
  readGBps: number;
  /** f32 FMA peak of the instruction set in use, GFLOP/s (2 per multiply-add) */
  f32Gflops: number;
  /** int8 dot peak of the instruction set in use (vpdpbusd with AVX512-VNNI), GOP/s (2 per multiply-add) */
  int8Gops: number;
  /** instruction set and pool threads the probe ran with */
  isa: string;
  threads: number;
}

/**
 * Measure read bandwidth (best of 3 passes over `bufferMb`, default 256 MB, allocated for the call and freed)
 * and the f32 / int8 peaks (register-only instruction chains on every pool thread) with the current native
 * engine. Throws `E_BACKEND_UNAVAILABLE` when the addon is not built. Takes about a second.
 */
export async function probeMachine(options: { bufferMb?: number } = {}): Promise<MachineProbe> {
  const mb = options.bufferMb ?? 256;
  if (!Number.isInteger(mb) || mb < 1) throw new KestrelError('E_OPTIONS', `bufferMb must be a positive integer, got ${String(mb)}`);
  // A variable specifier, as in select.ts: the addon loader may be absent at build time.
  const spec = './addon.js';
  const mod = (await import(spec)) as typeof import('./addon.js');
  const p = mod.nativeProbe(mb);
  const info = mod.nativeInfo();
  return { ...p, isa: info.isa, threads: info.threads };
}
