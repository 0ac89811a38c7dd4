import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KestrelError } from './errors.js';
import { openSafetensors, readAllSafetensors } from './safetensors.js';
import { writeSafetensors } from './safetensors-stream.js';
import { Tensor, type DType } from './tensor.js';

let dir = '';
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'kestrel-core-st-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

let fileNo = 0;
const tmp = (name = 'x.safetensors') => join(dir, `${fileNo++}-${name}`);

/** Raw safetensors bytes from a header object (or raw header text) and a data section. */
function rawFile(header: unknown, data: Uint8Array | number = 0, headerLen?: bigint): Buffer {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLen ?? BigInt(h.length));
  return Buffer.concat([len, h, typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data)]);
}

async function expectFormatError(bytes: Buffer, pattern?: RegExp): Promise<KestrelError> {
  const p = tmp();
  await writeFile(p, bytes);
  const before = process.memoryUsage().rss;
  const e = await openSafetensors(p).then(async (f) => {
    // some defects only show when the data is read
    try { for (const n of f.names()) await f.read(n); } finally { await f.close(); }
    return null;
  }, (err: unknown) => err);
  expect(e, 'expected E_CHECKPOINT_FORMAT').toBeInstanceOf(KestrelError);
  expect((e as KestrelError).code).toBe('E_CHECKPOINT_FORMAT');
  if (pattern) expect((e as KestrelError).message).toMatch(pattern);
  // fails before allocating what the header claims (memory counted, not wall time: the machine is shared)
  expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
  return e as KestrelError;
}

function sample(dtype: DType, shape: number[]): Tensor {
  const t = Tensor.zeros(dtype, shape);
  const d = t.data;
  for (let i = 0; i < d.length; i++) {
    if (d instanceof BigInt64Array) d[i] = BigInt(i) * -123456789012345n + 7n;
    else if (dtype === 'f16' || dtype === 'bf16') d[i] = (i * 2654435761) & 0xffff;
    else if (dtype === 'bool') d[i] = i % 3 === 0 ? 1 : 0;
    else if (dtype === 'f32' || dtype === 'f64') d[i] = (i - 3.25) * 1.1e-3 * (i % 2 ? -1 : 1);
    else (d as Uint8Array | Int8Array | Int32Array)[i] = (i * 73 - 100) | 0;
  }
  return t;
}

const DTYPES: DType[] = ['f32', 'f16', 'bf16', 'f64', 'i8', 'u8', 'i32', 'i64', 'bool'];

describe('safetensors round trip', () => {
  it('every dtype, odd shapes, scalars and empty tensors, with metadata', async () => {
    const tensors: Record<string, Tensor> = {};
    DTYPES.forEach((dt, i) => { tensors[`t.${dt}`] = sample(dt, [3, i + 1, 5]); });
    tensors.scalar = sample('f32', []);
    tensors.empty = sample('i64', [0, 4]);
    tensors['odd.u8'] = sample('u8', [7]); // leaves later tensors unaligned in the file
    tensors.after = sample('f64', [3]);
    const meta = { format: 'pt', note: 'ünïcödé ✓' };
    const p = tmp();
    await writeSafetensors(p, tensors, meta);
    // header padded so data starts 8-byte aligned
    const raw = await readFile(p);
    expect((8 + Number(raw.readBigUInt64LE(0))) % 8).toBe(0);
    const f = await openSafetensors(p);
    try {
      expect(f.names()).toEqual(Object.keys(tensors));
      expect(f.metadata()).toEqual(meta);
      for (const [n, t] of Object.entries(tensors)) {
        expect(f.has(n)).toBe(true);
        expect(f.info(n)).toEqual({ dtype: t.dtype, shape: t.shape });
        const r = await f.read(n);
        expect(r.dtype).toBe(t.dtype);
        expect(r.shape).toEqual(t.shape);
        expect(Buffer.from(r.bytes()).equals(Buffer.from(t.bytes()))).toBe(true);
      }
      expect(f.has('missing')).toBe(false);
      expect(() => f.info('missing')).toThrow(KestrelError);
    } finally {
      await f.close();
    }
  });

  it('reads files written by the Python reference writer (golden copy)', async () => {
    const all = await readAllSafetensors(new URL('../../../test/fixtures/core/pillow/pillow_cases.safetensors', import.meta.url).pathname);
    expect(all.size).toBeGreaterThan(60);
    for (const t of all.values()) expect(t.dtype).toBe('u8');
  });

  it('sharded checkpoint through model.safetensors.index.json (file or directory)', async () => {
    const d = await mkdtemp(join(dir, 'shard-'));
    const a = { 'w.a': sample('f32', [4, 4]), 'w.b': sample('bf16', [8]) };
    const b = { 'w.c': sample('i32', [2, 3]), 'w.d': sample('bool', [5]) };
    await writeSafetensors(join(d, 'model-00001-of-00002.safetensors'), a, { format: 'pt' });
    await writeSafetensors(join(d, 'model-00002-of-00002.safetensors'), b);
    const weight_map: Record<string, string> = {};
    for (const n of Object.keys(a)) weight_map[n] = 'model-00001-of-00002.safetensors';
    for (const n of Object.keys(b)) weight_map[n] = 'model-00002-of-00002.safetensors';
    await writeFile(join(d, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map }));
    for (const path of [d, join(d, 'model.safetensors.index.json')]) {
      const f = await openSafetensors(path);
      try {
        expect(new Set(f.names())).toEqual(new Set(Object.keys(weight_map)));
        expect(f.metadata()).toEqual({ format: 'pt' });
        for (const [n, t] of Object.entries({ ...a, ...b })) expect(Buffer.from((await f.read(n)).bytes()).equals(Buffer.from(t.bytes()))).toBe(true);
      } finally {
        await f.close();
      }
    }
  });

  it('is lazy: lists a 10 GB (sparse) checkpoint and reads one small tensor without reading the rest', async () => {
    const big = 10 * 1024 ** 3;
    const header = { huge: { dtype: 'U8', shape: [big], data_offsets: [0, big] }, small: { dtype: 'I32', shape: [2], data_offsets: [big, big + 8] } };
    const h = Buffer.from(JSON.stringify(header));
    const p = tmp('sparse.safetensors');
    const fh = await open(p, 'w');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    await fh.write(Buffer.concat([len, h]), 0, 8 + h.length, 0);
    await fh.write(Buffer.from(new Int32Array([7, -9]).buffer), 0, 8, 8 + h.length + big);
    await fh.close();
    const before = process.memoryUsage().rss;
    const f = await openSafetensors(p);
    expect(f.names()).toEqual(['huge', 'small']);
    expect(f.info('huge')).toEqual({ dtype: 'u8', shape: [big] });
    expect(Array.from((await f.read('small')).data as Int32Array)).toEqual([7, -9]);
    await f.close();
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
  });

  it('writes atomically: a failed write leaves no file and no temporary behind', async () => {
    const d = await mkdtemp(join(dir, 'atomic-'));
    const p = join(d, 'out.safetensors');
    await expect(writeSafetensors(p, { __metadata__: sample('f32', [1]) })).rejects.toMatchObject({ code: 'E_OPTIONS' });
    await expect(writeSafetensors(join(d, 'no-such-dir', 'x.safetensors'), { a: sample('f32', [1]) })).rejects.toMatchObject({ code: 'E_IO' });
    expect(await readdir(d)).toEqual([]);
    // overwriting an existing file replaces it whole
    await writeSafetensors(p, { a: sample('f32', [2]) });
    await writeSafetensors(p, { b: sample('u8', [3]) });
    expect((await openSafetensors(p).then(async (f) => { const n = f.names(); await f.close(); return n; }))).toEqual(['b']);
    expect(await readdir(d)).toEqual(['out.safetensors']);
  });
});

describe('malformed safetensors -> E_CHECKPOINT_FORMAT', () => {
  const ok = (extra: Record<string, unknown> = {}) => ({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, ...extra });
  const cases: Array<[string, () => Buffer, RegExp?]> = [
    ['file shorter than the 8-byte length', () => Buffer.from([1, 0, 0]), /too short/],
    ['header length past the end of the file', () => rawFile(ok(), 8, 5000n), /past the end/],
    ['header length absurdly large (2^63)', () => rawFile(ok(), 8, 1n << 63n), /absurdly large/],
    ['header length 1 TB', () => rawFile(ok(), 8, 1n << 40n), /absurdly large/],
    ['header not JSON', () => rawFile('{"a": {dtype: F32', 8), /not valid JSON/],
    ['header a JSON array', () => rawFile([1, 2, 3], 8), /not a JSON object/],
    ['header JSON null', () => rawFile('null', 8), /not a JSON object/],
    ['tensor entry not an object', () => rawFile({ a: 5 }, 8), /entry is not an object/],
    ['unknown dtype', () => rawFile({ a: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, 2), /unknown dtype/],
    ['missing dtype', () => rawFile({ a: { shape: [2], data_offsets: [0, 8] } }, 8), /dtype/],
    ['shape not an array', () => rawFile({ a: { dtype: 'F32', shape: 2, data_offsets: [0, 8] } }, 8), /shape/],
    ['negative dimension', () => rawFile({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, 8), /dimension/],
    ['non-integer dimension', () => rawFile({ a: { dtype: 'F32', shape: [1.5], data_offsets: [0, 8] } }, 8), /dimension/],
    ['string dimension', () => rawFile({ a: { dtype: 'F32', shape: ['2'], data_offsets: [0, 8] } }, 8), /dimension/],
    ['overflowing shape', () => rawFile({ a: { dtype: 'F32', shape: [2 ** 40, 2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, 8)],
    ['shape larger than the file', () => rawFile({ a: { dtype: 'U8', shape: [1e12], data_offsets: [0, 1e12] } }, 8)],
    ['offsets outside the data', () => rawFile({ a: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }, 16), /outside/],
    ['offsets reversed', () => rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, 8), /reversed/],
    ['offsets negative', () => rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [-8, 0] } }, 8), /data_offsets/],
    ['offsets not two numbers', () => rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0] } }, 8), /data_offsets/],
    ['offsets missing', () => rawFile({ a: { dtype: 'F32', shape: [2] } }, 8), /data_offsets/],
    ['overlapping tensors', () => rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12), /overlaps/],
    ['shape / size mismatch', () => rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 12), /needs 12 bytes/],
    ['truncated data section', () => rawFile({ a: { dtype: 'F64', shape: [100], data_offsets: [0, 800] } }, 100), /outside|truncated/],
    ['__metadata__ not an object', () => rawFile(ok({ __metadata__: 'x' }), 8), /__metadata__/],
    ['__metadata__ value not a string', () => rawFile(ok({ __metadata__: { n: 3 } }), 8), /__metadata__/],
    ['header length too small', () => rawFile('{}', 8, 1n)],
  ];
  it(`has at least 15 cases (${cases.length})`, () => expect(cases.length).toBeGreaterThanOrEqual(15));
  it.each(cases)('%s', async (_name, make, pattern) => {
    const e = await expectFormatError(make(), pattern);
    expect(e.message).toMatch(/safetensors/);
  });

  it('errors name the tensor', async () => {
    const e = await expectFormatError(rawFile({ 'layers.3.w': { dtype: 'Q4', shape: [2], data_offsets: [0, 2] } }, 2));
    expect(e.message).toContain('layers.3.w');
    expect(e.details?.tensor).toBe('layers.3.w');
  });

  describe('bad sharded index', () => {
    async function indexErr(index: string, shards: Record<string, Record<string, Tensor>> = {}): Promise<KestrelError> {
      const d = await mkdtemp(join(dir, 'badidx-'));
      for (const [n, t] of Object.entries(shards)) await writeSafetensors(join(d, n), t);
      await writeFile(join(d, 'model.safetensors.index.json'), index);
      const e = await openSafetensors(d).then(() => null, (err: unknown) => err);
      expect(e).toBeInstanceOf(KestrelError);
      expect((e as KestrelError).code).toBe('E_CHECKPOINT_FORMAT');
      return e as KestrelError;
    }
    it('index not JSON', async () => { await indexErr('{ weight_map: '); });
    it('index without weight_map', async () => { await indexErr(JSON.stringify({ metadata: {} })); });
    it('weight_map entry that is a path', async () => {
      expect((await indexErr(JSON.stringify({ weight_map: { a: '../../etc/passwd' } }))).message).toMatch(/plain shard file name/);
    });
    it('index maps a tensor to a shard that does not hold it', async () => {
      const e = await indexErr(JSON.stringify({ weight_map: { a: 's1.safetensors', b: 's1.safetensors' } }), { 's1.safetensors': { a: sample('f32', [1]) } });
      expect(e.message).toContain('"b"');
    });
    it('a malformed shard', async () => {
      const d = await mkdtemp(join(dir, 'badshard-'));
      await writeFile(join(d, 's1.safetensors'), rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, 8));
      await writeFile(join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 's1.safetensors' } }));
      await expect(openSafetensors(d)).rejects.toMatchObject({ code: 'E_CHECKPOINT_FORMAT' });
    });
  });

  it('a missing file or folder is E_MODEL_NOT_FOUND, not a crash', async () => {
    await expect(openSafetensors(join(dir, 'absent.safetensors'))).rejects.toMatchObject({ code: 'E_MODEL_NOT_FOUND' });
    const empty = await mkdtemp(join(dir, 'empty-'));
    await expect(openSafetensors(empty)).rejects.toMatchObject({ code: 'E_MODEL_NOT_FOUND' });
  });
});

describe('concurrent writes', () => {
  it('two writes of the same path at once both complete and leave one valid file', async () => {
    const d = await mkdtemp(join(dir, 'conc-'));
    const p = join(d, 'c.safetensors');
    await Promise.all([writeSafetensors(p, { a: sample('f32', [1000]) }), writeSafetensors(p, { b: sample('f32', [1000]) })]);
    const f = await openSafetensors(p);
    expect(f.names().length).toBe(1);
    await f.read(f.names()[0]!);
    await f.close();
    expect(await readdir(d)).toEqual(['c.safetensors']);
  });
});
