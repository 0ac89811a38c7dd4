import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { loadGrayResized, flipHorizontal } from './image-input.js';

const tile = fileURLToPath(new URL('../../../../test/fixtures/qc/magnetic-tile/MT_Free/Imgs/', import.meta.url));

describe('loadGrayResized', () => {
  it('returns exactly width*height gray bytes matching a direct sharp resize', async () => {
    const { readdirSync } = await import('node:fs');
    const f = tile + readdirSync(tile).find((n) => n.endsWith('.jpg'))!;
    const img = await loadGrayResized(f, 64, 48);
    expect(img.channels).toBe(1);
    expect(img.data.length).toBe(64 * 48);
    const ref = await sharp(f).toColourspace('b-w').resize(64, 48, { fit: 'fill', kernel: 'cubic' }).raw().toBuffer();
    expect(ref.length).toBe(64 * 48);
    let diff = 0;
    for (let i = 0; i < ref.length; i++) diff += Math.abs(ref[i]! - img.data[i]!);
    // One sharp pipeline may shrink JPEGs on load (DCT scaling), so single pixels differ; the
    // images must still be the same picture (a channel mix-up gives mean differences of tens).
    expect(diff / ref.length).toBeLessThan(2);
  });

  it('flips left-right', () => {
    const img = { data: Uint8Array.of(1, 2, 3, 4, 5, 6), width: 3, height: 2, channels: 1 as const };
    expect(Array.from(flipHorizontal(img).data)).toEqual([3, 2, 1, 6, 5, 4]);
  });
});
