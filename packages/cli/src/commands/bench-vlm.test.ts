import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorCode, runCommand } from '../testing/run-command.js';
import { BENCH_IMAGE, commands, vitGflopPerTile } from './bench-vlm.js';

const cmd = commands[0]!;

describe('kestrel bench vlm', () => {
  it('refuses unknown presets and missing or conflicting choices with E_OPTIONS (before writing anything)', async () => {
    expect(await errorCode(runCommand(cmd, { preset: 'deepseek-vl2-huge' }))).toBe('E_OPTIONS');
    expect(await errorCode(runCommand(cmd, {}))).toBe('E_OPTIONS');
    expect(await errorCode(runCommand(cmd, { preset: 'deepseek-vl2-tiny', model: '/x' }))).toBe('E_OPTIONS');
    expect(await errorCode(runCommand(cmd, { preset: 'deepseek-vl2-tiny', dtype: 'fp8' }))).toBe('E_OPTIONS');
    expect(await errorCode(runCommand(cmd, { preset: 'deepseek-vl2-tiny', image: '/no/such.jpg' }))).toBe('E_IO');
  });

  it('bundles its COCO photo', () => {
    expect(existsSync(BENCH_IMAGE)).toBe(true);
  });

  it('counts SigLIP-SO400M/14 at 384 px as 666.448 GFLOP per tile (hand count)', () => {
    // per block 2*729*(3*1152^2 + 1152^2 + 2*1152*4304) + 4*729^2*1152 = 24,646,685,184; x27, + patch conv 987,614,208
    expect(vitGflopPerTile({ image_size: 384, patch_size: 14, width: 1152, layers: 27, mlp_ratio: 3.7362 })).toBeCloseTo(666.448114176, 6);
  });
});
