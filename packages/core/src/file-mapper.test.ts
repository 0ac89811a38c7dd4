import { describe, expect, it } from 'vitest';
import { MappedFile } from './file-mapper.js';

// A stand-in "file" of 100 bytes whose byte i is i; the mapper records every range it was asked for.
const file = Uint8Array.from({ length: 100 }, (_, i) => i);
function recorder(): { calls: Array<[number, number]>; map: (p: string, off: number, len: number) => ArrayBuffer } {
  const calls: Array<[number, number]> = [];
  return { calls, map: (_p, off, len) => { calls.push([off, len]); return file.slice(off, off + len).buffer; } };
}

describe('MappedFile windows', () => {
  it('serves ranges inside a window from one mapping and gives a range across a border its own', () => {
    const r = recorder();
    const m = new MappedFile(r.map, 'f', 100, 32);
    expect(Array.from(m.view(3, 4))).toEqual([3, 4, 5, 6]);
    expect(Array.from(m.view(10, 2))).toEqual([10, 11]);
    expect(Array.from(m.view(30, 4))).toEqual([30, 31, 32, 33]); // crosses 32
    expect(Array.from(m.view(96, 4))).toEqual([96, 97, 98, 99]); // last window is cut at the end
    expect(r.calls).toEqual([[0, 32], [30, 4], [96, 4]]);
  });
});
