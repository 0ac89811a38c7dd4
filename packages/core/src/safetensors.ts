import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import { SafetensorsIndexSchema } from './config.js';
import { KestrelError } from './errors.js';
import { Tensor, DTYPE_BYTES, type DType } from './tensor.js';
import { fileMapper, MappedFile } from './file-mapper.js';

/** safetensors dtype names <-> Kestrel dtypes. */
const ST_TO_DTYPE: Record<string, DType> = {
  F32: 'f32', F16: 'f16', BF16: 'bf16', F64: 'f64', I8: 'i8', U8: 'u8', I32: 'i32', I64: 'i64', BOOL: 'bool',
};
/** Kestrel dtypes -> safetensors dtype names. */
export const DTYPE_TO_ST: Record<DType, string> = {
  f32: 'F32', f16: 'F16', bf16: 'BF16', f64: 'F64', i8: 'I8', u8: 'U8', i32: 'I32', i64: 'I64', bool: 'BOOL',
};

/** Largest header we accept: real checkpoints have headers of a few MB. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Shape and dtype of one stored tensor. */
export interface TensorInfo {
  dtype: DType;
  shape: number[];
}

interface Entry extends TensorInfo {
  file: string;
  /** absolute byte offsets in the file */
  begin: number;
  end: number;
}

/** Options of {@link openSafetensors}. */
export interface OpenSafetensorsOptions {
  /**
   * Memory-map tensors (default true): `read` returns views of the file's pages, which are shared with the page
   * cache and copy-on-write, so nothing is copied and writing into a tensor never changes the file (it does change
   * what later reads from the same opened checkpoint see). false reads each tensor into its own buffer.
   */
  map?: boolean;
}

/** A (possibly sharded) safetensors checkpoint opened for lazy reading. */
export interface SafetensorsFile {
  /** Tensor names in file order. */
  names(): string[];
  /** dtype and shape of a tensor, without reading it. */
  info(name: string): TensorInfo;
  /** True when the checkpoint holds `name`. */
  has(name: string): boolean;
  /** One tensor: a view of its memory-mapped bytes, or (map: false, no addon) only its bytes read. */
  read(name: string): Promise<Tensor>;
  /** `__metadata__` of the (first) file. */
  metadata(): Record<string, string>;
  /** Close file handles. */
  close(): Promise<void>;
}

function bad(path: string, msg: string, tensor?: string): KestrelError {
  const where = tensor !== undefined ? ` (tensor "${tensor}")` : '';
  return new KestrelError('E_CHECKPOINT_FORMAT', `${path}: ${msg}${where}. The file is not a valid safetensors checkpoint; re-export or re-download it.`, {
    details: { path, ...(tensor !== undefined ? { tensor } : {}) },
  });
}

interface ParsedFile {
  entries: Map<string, Entry>;
  metadata: Record<string, string>;
}

/** Read exactly `buf.length` bytes at `pos` (a single read may return fewer). */
async function readFully(path: string, fh: FileHandle, buf: Uint8Array, pos: number): Promise<void> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, pos + got);
    if (bytesRead === 0) throw bad(path, 'file ended while reading the header (truncated?)');
    got += bytesRead;
  }
}

async function parseHeader(path: string, fh: FileHandle): Promise<ParsedFile> {
  const { size } = await fh.stat();
  if (size < 8) throw bad(path, `file is ${size} bytes, too short for a header length`);
  const lenBuf = Buffer.alloc(8);
  await readFully(path, fh, lenBuf, 0);
  const hlen = lenBuf.readBigUInt64LE(0);
  if (hlen > BigInt(MAX_HEADER_BYTES)) throw bad(path, `header length ${hlen} is absurdly large (limit ${MAX_HEADER_BYTES})`);
  const n = Number(hlen);
  if (8 + n > size) throw bad(path, `header length ${n} runs past the end of the ${size}-byte file`);
  if (n < 2) throw bad(path, `header length ${n} is too small`);
  const hbuf = Buffer.alloc(n);
  await readFully(path, fh, hbuf, 8);
  let header: unknown;
  try {
    header = JSON.parse(hbuf.toString('utf8'));
  } catch (e) {
    throw bad(path, `header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw bad(path, 'header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = size - dataStart;
  const entries = new Map<string, Entry>();
  let metadata: Record<string, string> = {};
  const ranges: Array<[number, number, string]> = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw bad(path, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw bad(path, `__metadata__.${k} is not a string`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw bad(path, 'entry is not an object', name);
    const r = raw as Record<string, unknown>;
    if (typeof r.dtype !== 'string') throw bad(path, 'missing dtype', name);
    const dtype = ST_TO_DTYPE[r.dtype];
    if (!dtype) throw bad(path, `unknown dtype "${r.dtype}"`, name);
    if (!Array.isArray(r.shape)) throw bad(path, 'shape is not an array', name);
    let count = 1;
    for (const d of r.shape) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) throw bad(path, `invalid dimension ${JSON.stringify(d)} in shape`, name);
      count *= d;
      if (!Number.isSafeInteger(count) || count > dataLen) {
        if (count !== 0 && count > dataLen) throw bad(path, `shape [${r.shape.join(', ')}] needs more bytes than the file holds`, name);
      }
    }
    const offs = r.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)) {
      throw bad(path, `data_offsets ${JSON.stringify(offs)} must be two non-negative integers`, name);
    }
    const [b, e] = offs as [number, number];
    if (e < b) throw bad(path, `data_offsets [${b}, ${e}] are reversed`, name);
    if (e > dataLen) throw bad(path, `data_offsets [${b}, ${e}] lie outside the ${dataLen}-byte data section (truncated file?)`, name);
    const need = count * DTYPE_BYTES[dtype];
    if (e - b !== need) throw bad(path, `shape [${r.shape.join(', ')}] of ${dtype} needs ${need} bytes but data_offsets span ${e - b}`, name);
    entries.set(name, { dtype, shape: r.shape as number[], file: path, begin: dataStart + b, end: dataStart + e });
    ranges.push([b, e, name]);
  }
  ranges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1]!;
    const cur = ranges[i]!;
    if (cur[0] < prev[1]) throw bad(path, `data of "${cur[2]}" overlaps "${prev[2]}"`, cur[2]);
  }
  return { entries, metadata };
}

class SafetensorsReader implements SafetensorsFile {
  constructor(
    private readonly entries: Map<string, Entry>,
    private readonly handles: Map<string, FileHandle>,
    private readonly meta: Record<string, string>,
    private readonly label: string,
    private readonly map: boolean,
  ) {}

  private readonly mapped = new Map<string, MappedFile>();

  /** The file's mapped windows, which end where its last tensor does (the header checked that lies in the file). */
  private mappedFile(path: string, map: NonNullable<ReturnType<typeof fileMapper>>): MappedFile {
    let m = this.mapped.get(path);
    if (!m) {
      let end = 0;
      for (const e of this.entries.values()) if (e.file === path && e.end > end) end = e.end;
      m = new MappedFile(map, path, end);
      this.mapped.set(path, m);
    }
    return m;
  }

  names(): string[] { return [...this.entries.keys()]; }
  has(name: string): boolean { return this.entries.has(name); }
  metadata(): Record<string, string> { return { ...this.meta }; }

  info(name: string): TensorInfo {
    const e = this.entries.get(name);
    if (!e) throw new KestrelError('E_CHECKPOINT_FORMAT', `${this.label}: no tensor named "${name}" in the checkpoint`, { details: { tensor: name } });
    return { dtype: e.dtype, shape: [...e.shape] };
  }

  async read(name: string): Promise<Tensor> {
    const e = this.entries.get(name);
    if (!e) throw new KestrelError('E_CHECKPOINT_FORMAT', `${this.label}: no tensor named "${name}" in the checkpoint`, { details: { tensor: name } });
    const fh = this.handles.get(e.file);
    if (!fh) throw new KestrelError('E_IO', `${this.label}: checkpoint is closed`);
    const len = e.end - e.begin;
    // Mapped in place (the OS pages it in on first use) unless mapping is off, or the tensor starts at an address
    // its element type cannot be viewed at (then it is read into an aligned buffer).
    const map = this.map && len > 0 && e.begin % DTYPE_BYTES[e.dtype] === 0 ? fileMapper() : null;
    if (map) {
      let bytes: Uint8Array;
      try {
        bytes = this.mappedFile(e.file, map).view(e.begin, len);
      } catch (err) {
        const code = (err as { code?: string }).code;
        throw new KestrelError(code === 'E_CHECKPOINT_FORMAT' ? 'E_CHECKPOINT_FORMAT' : 'E_IO', `${this.label}: cannot map tensor "${name}": ${(err as Error).message}`, { cause: err, details: { tensor: name } });
      }
      return Tensor.fromBytes(e.dtype, e.shape, bytes);
    }
    const ab = new ArrayBuffer(len);
    const buf = new Uint8Array(ab);
    let got = 0;
    while (got < len) {
      const { bytesRead } = await fh.read(buf, got, len - got, e.begin + got);
      if (bytesRead === 0) throw bad(e.file, 'file ended while reading tensor data (truncated?)', name);
      got += bytesRead;
    }
    return Tensor.fromBytes(e.dtype, e.shape, buf);
  }

  async close(): Promise<void> {
    const hs = [...this.handles.values()];
    this.handles.clear();
    for (const m of this.mapped.values()) m.release();
    this.mapped.clear();
    await Promise.all(hs.map((h) => h.close().catch(() => undefined)));
  }
}

async function openOne(path: string): Promise<{ fh: FileHandle; parsed: ParsedFile }> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new KestrelError(code === 'ENOENT' ? 'E_MODEL_NOT_FOUND' : 'E_IO', `cannot open ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return { fh, parsed: await parseHeader(path, fh) };
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw e;
  }
}

/**
 * Open a safetensors checkpoint lazily: only the header is read. `path` may be a `.safetensors` file, a
 * `model.safetensors.index.json` of a sharded checkpoint, or a directory holding either.
 */
export async function openSafetensors(path: string, options: OpenSafetensorsOptions = {}): Promise<SafetensorsFile> {
  const map = options.map ?? true;
  let p = path;
  const st = await stat(p).catch(() => null);
  if (!st) throw new KestrelError('E_MODEL_NOT_FOUND', `checkpoint not found: ${path}`, { details: { path } });
  if (st.isDirectory()) {
    const idx = join(p, 'model.safetensors.index.json');
    if (await stat(idx).catch(() => null)) p = idx;
    else if (await stat(join(p, 'model.safetensors')).catch(() => null)) p = join(p, 'model.safetensors');
    else throw new KestrelError('E_MODEL_NOT_FOUND', `${path} holds neither model.safetensors nor model.safetensors.index.json`, { details: { path } });
  }
  if (p.endsWith('.index.json')) return openSharded(p, map);
  const { fh, parsed } = await openOne(p);
  return new SafetensorsReader(parsed.entries, new Map([[p, fh]]), parsed.metadata, p, map);
}

async function openSharded(indexPath: string, map: boolean): Promise<SafetensorsFile> {
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (e) {
    throw bad(indexPath, `index is not readable JSON (${(e as Error).message})`);
  }
  const parsed = SafetensorsIndexSchema.safeParse(index);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const tensor = issue.path[0] === 'weight_map' && typeof issue.path[1] === 'string' ? issue.path[1] : undefined;
    const where = issue.path.length ? issue.path.map(String).join('.') : 'index';
    throw bad(indexPath, `${where}: ${issue.message}${issue.path[0] === 'weight_map' && issue.path.length === 1 ? ' (the index needs a "weight_map" object)' : ''}`, tensor);
  }
  const wm = parsed.data.weight_map;
  const dir = dirname(indexPath);
  const shards = new Set(Object.values(wm));
  const handles = new Map<string, FileHandle>();
  const entries = new Map<string, Entry>();
  let metadata: Record<string, string> = {};
  try {
    for (const shard of shards) {
      const sp = join(dir, shard);
      const { fh, parsed } = await openOne(sp);
      handles.set(sp, fh);
      if (handles.size === 1) metadata = parsed.metadata;
      for (const [n, e] of parsed.entries) entries.set(n, e);
    }
    for (const [name, f] of Object.entries(wm)) {
      const e = entries.get(name);
      if (!e || basename(e.file) !== f) throw bad(indexPath, `index maps the tensor to ${f}, which does not hold it`, name);
    }
  } catch (e) {
    await Promise.all([...handles.values()].map((h) => h.close().catch(() => undefined)));
    throw e;
  }
  return new SafetensorsReader(entries, handles, metadata, indexPath, map);
}

/** Convenience: read every tensor of a (small) checkpoint into a Map. */
export async function readAllSafetensors(path: string): Promise<Map<string, Tensor>> {
  const f = await openSafetensors(path);
  try {
    const out = new Map<string, Tensor>();
    for (const n of f.names()) out.set(n, await f.read(n));
    return out;
  } finally {
    await f.close();
  }
}

