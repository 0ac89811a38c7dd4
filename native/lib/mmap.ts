/**
 * Registers the addon's `mapFile` (src/mmap.cc) as @kestrel/core's file mapper, so every safetensors checkpoint
 * opened after `@kestrel/native` is imported is memory-mapped. Without the binary, core reads tensors instead
 * and says so once.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { registerFileMapper, type FileMapper } from '@kestrel/core';

const BINARY = fileURLToPath(new URL('../build/Release/kestrel_native.node', import.meta.url));

/** The addon's mapper, or the reason there is none. */
function nativeMapper(): FileMapper | string {
  if (!existsSync(BINARY)) return `${BINARY} is missing; run \`npm run build:native\``;
  try {
    const b = createRequire(import.meta.url)(BINARY) as { mapFile?: FileMapper; canMapFiles?: boolean };
    if (typeof b.mapFile !== 'function' || b.canMapFiles !== true) return 'this build of the addon cannot map files';
    return b.mapFile;
  } catch (e) {
    return `the native addon failed to load: ${(e as Error).message}`;
  }
}

const m = nativeMapper();
if (typeof m === 'string') registerFileMapper(null, m);
else registerFileMapper(m);

/** Whether checkpoints are memory-mapped in this process. */
export const mapsFiles: boolean = typeof m !== 'string';
