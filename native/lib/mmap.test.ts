import { mkdtemp, readFile, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KestrelError, Tensor, openSafetensors, writeSafetensors } from '@kestrel/core';
import { mapsFiles } from './index.js';

let dir = '';
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'kestrel-mmap-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

// Values written by hand, so the read-back is checked against the writer's input, not against the reader.
const f32 = Float32Array.from([1.5, -2, 3.25, 0, 1e-3, -7]);
const bf16 = Uint16Array.from([0x3f80, 0xc000, 0x4049, 0x0000, 0x7f80]); // 1, -2, 3.140625, 0, inf
const i8 = Int8Array.from([-128, -1, 0, 1, 127]);

async function sample(name: string): Promise<string> {
  const p = join(dir, name);
  // bf16 of odd length first: the f32 tensor after it starts at an offset that is not a multiple of 4
  await writeSafetensors(p, { b: new Tensor('bf16', [5], bf16), a: new Tensor('f32', [2, 3], f32), q: new Tensor('i8', [5], i8) });
  return p;
}

describe.skipIf(!mapsFiles)('memory-mapped safetensors (native mapFile)', () => {
  it('returns the stored values, for aligned and misaligned tensors', async () => {
    const f = await openSafetensors(await sample('values.safetensors'));
    expect(Array.from((await f.read('b')).data as Uint16Array)).toEqual(Array.from(bf16));
    expect(Array.from((await f.read('a')).data as Float32Array)).toEqual(Array.from(f32));
    expect(Array.from((await f.read('q')).data as Int8Array)).toEqual(Array.from(i8));
    await f.close();
  });

  it('is copy-on-write: writing into a mapped tensor changes neither the file nor another opening of it', async () => {
    const p = await sample('cow.safetensors');
    const before = await readFile(p);
    const f = await openSafetensors(p);
    const t = await f.read('b');
    (t.data as Uint16Array).fill(0x1234);
    // reads from one opened checkpoint share its mapped pages; a second opening maps the file afresh
    expect(Array.from((await f.read('b')).data as Uint16Array)).toEqual(new Array(5).fill(0x1234));
    await f.close();
    const g = await openSafetensors(p);
    expect(Array.from((await g.read('b')).data as Uint16Array)).toEqual(Array.from(bf16));
    await g.close();
    expect((await readFile(p)).equals(before)).toBe(true);
  });

  it('a file truncated after opening gives E_CHECKPOINT_FORMAT, not a bus error', async () => {
    const p = await sample('trunc.safetensors');
    const f = await openSafetensors(p);
    await truncate(p, 20);
    const e = await f.read('q').then(() => null, (err: unknown) => err);
    await f.close();
    expect(e).toBeInstanceOf(KestrelError);
    expect((e as KestrelError).code).toBe('E_CHECKPOINT_FORMAT');
    expect((e as KestrelError).message).toMatch(/past the end/);
  });

  it('map: false reads the same values into memory', async () => {
    const f = await openSafetensors(await sample('read.safetensors'), { map: false });
    expect(Array.from((await f.read('a')).data as Float32Array)).toEqual(Array.from(f32));
    await f.close();
  });
});

it('says why checkpoints are not mapped when the addon is missing', () => {
  if (!mapsFiles) console.log('skip: the native addon is not built, so mapping is not tested here');
  expect(typeof mapsFiles).toBe('boolean');
});
