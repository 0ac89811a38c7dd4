/**
 * The hook through which safetensors reads become memory maps. `@kestrel/native` registers its `mapFile` when it
 * loads (core cannot import it: native depends on core); without it, tensors are read into memory, said once.
 */

/** Maps bytes [offset, offset + length) of a file and returns them as an ArrayBuffer backed by the mapping. */
export type FileMapper = (path: string, offset: number, length: number) => ArrayBuffer;

let mapper: FileMapper | null = null;
let unavailable: string | null = 'the native addon (which memory-maps checkpoints) is not loaded';
let warned = false;

/** Install the mapper (or say why there is none). Called by `@kestrel/native` on import. */
export function registerFileMapper(fn: FileMapper | null, reason?: string): void {
  mapper = fn;
  unavailable = fn ? null : (reason ?? 'no file mapper');
}

/** The registered mapper, or null after warning once that tensors will be read into memory instead. */
export function fileMapper(): FileMapper | null {
  if (!mapper && !warned) {
    warned = true;
    process.emitWarning(`checkpoints are read into memory, not memory-mapped (${unavailable}); loading needs RAM for every weight and takes longer`, { code: 'KESTREL_NO_MMAP' });
  }
  return mapper;
}
