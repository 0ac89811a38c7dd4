/**
 * The hook through which safetensors reads become memory maps. `@kestrel/native` registers its `mapFile` when it
 * loads (core cannot import it: native depends on core); without it, tensors are read into memory, said once.
 */

/** Maps bytes [offset, offset + length) of a file and returns them as an ArrayBuffer backed by the mapping. */
export type FileMapper = (path: string, offset: number, length: number) => ArrayBuffer;

let mapper: FileMapper | null = null;
// null until @kestrel/native says why it cannot map: a process that never loads the addon (a QC model on
// tfjs, say) reads its small weight files without a warning
let unavailable: string | null = null;
let warned = false;

/** Install the mapper (or say why there is none). Called by `@kestrel/native` on import. */
export function registerFileMapper(fn: FileMapper | null, reason?: string): void {
  mapper = fn;
  unavailable = fn ? null : (reason ?? 'no file mapper');
}

/** The registered mapper, or null after warning once that tensors will be read into memory instead. */
export function fileMapper(): FileMapper | null {
  if (!mapper && unavailable !== null && !warned) {
    warned = true;
    process.emitWarning(`checkpoints are read into memory, not memory-mapped (${unavailable}); loading needs RAM for every weight and takes longer`, { code: 'KESTREL_NO_MMAP' });
  }
  return mapper;
}

/**
 * Bytes per mapping window. Tensors are views of a few large mappings rather than one mapping each: V8 counts
 * every external ArrayBuffer as allocated memory, and thousands of them (one per expert matrix) made it collect
 * garbage again and again during a load.
 */
export const MAP_WINDOW_BYTES = 1 << 30;

/** The mapped windows of one file; a tensor inside a window is a view of it, one that crosses a border gets its own. */
export class MappedFile {
  private readonly windows = new Map<number, Uint8Array>();
  constructor(private readonly map: FileMapper, private readonly path: string, private readonly end: number, private readonly window = MAP_WINDOW_BYTES) {}

  /** Bytes [begin, begin + length) of the file, memory-mapped. */
  view(begin: number, length: number): Uint8Array {
    const k = Math.floor(begin / this.window);
    const w0 = k * this.window;
    if (begin + length > w0 + this.window) return new Uint8Array(this.map(this.path, begin, length));
    let w = this.windows.get(k);
    if (!w) {
      w = new Uint8Array(this.map(this.path, w0, Math.min(this.window, this.end - w0)));
      this.windows.set(k, w);
    }
    return w.subarray(begin - w0, begin - w0 + length);
  }

  /** Forget the windows (views already handed out keep their mapping alive until collected). */
  release(): void {
    this.windows.clear();
  }
}
