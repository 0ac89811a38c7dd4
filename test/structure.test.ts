// The tree's structure rules (scripts/check-structure.mjs): no TypeScript source over 500 lines and no import
// cycle between source files, static and type-only imports included.
import { describe, it, expect } from 'vitest';
// @ts-expect-error a plain .mjs script without type declarations
import { checkStructure, MAX_LINES } from '../scripts/check-structure.mjs';

interface Report { files: number; long: Array<{ file: string; lines: number }>; cycles: string[][] }

describe('source structure', () => {
  const r = checkStructure() as Report;

  it('reads the whole tree', () => {
    expect(r.files).toBeGreaterThan(100);
  });

  it(`no TypeScript source file is over ${MAX_LINES as number} lines`, () => {
    expect(r.long).toEqual([]);
  });

  it('no import cycle between source files', () => {
    expect(r.cycles).toEqual([]);
  });
});
