/**
 * `kestrel bench lm` prints the machine bound and, with --profile, where the time goes. Checked on the golden
 * fixture model A (test/fixtures/lm/A, MHA, int8): the weight bytes per decoded token against a count worked out
 * by hand from its config, the fractions against the figures printed beside them, and the profile's phases.
 * Skipped (with the reason) when the native addon is not built: the probe needs it.
 */
import { describe, it, expect } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const bin = join(root, 'packages/cli/bin/kestrel.js');
const built = existsSync(join(root, 'native/build/Release/kestrel_native.node'));
if (!built) console.log('bench-lm.test: skipped, the native addon is not built (npm run build:native)');

interface Row { phase: string; op: string; calls: number; ms: number; share: number }

describe.skipIf(!built)('kestrel bench lm: bound and profile', () => {
  it('prints decode_fraction_of_bound / prefill_fraction_of_peak and a per-phase profile', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [bin, 'bench', 'lm', '--model', join(root, 'test/fixtures/lm/A'), '--prompt-tokens', '8', '--gen-tokens', '2', '--threads', '1', '--dtype', 'int8', '--reps', '1', '--backend', 'native', '--profile', '--json'], { cwd: root, maxBuffer: 16 << 20 });
    const r = JSON.parse(stdout) as Record<string, number> & { machine: Record<string, number | string>; profile: Row[] };
    // model A: attention 4·64·64 ·3 layers, dense 3·64·128, 2 MoE layers × 3 experts (2 routed + 1 shared) ×
    // 3·64·32, lm_head 300·64 = 129792 parameters at 1.125 bytes, plus the f32 routers 2·8·64·4
    expect(r.weight_bytes_per_token).toBe(129792 * 1.125 + 2 * 8 * 64 * 4);
    for (const k of ['read_gb_s', 'f32_gflop_s', 'int8_gop_s']) expect(r.machine[k], k).toBeGreaterThan(0);
    expect(r.machine.threads).toBe(1);
    // read_gb_s is printed rounded to 0.01 GB/s
    expect(Math.abs(r.decode_bound_tok_s / ((Number(r.machine.read_gb_s) * 1e9) / r.weight_bytes_per_token) - 1)).toBeLessThan(0.01 / Number(r.machine.read_gb_s) + 1e-6);
    expect(r.decode_fraction_of_bound).toBeCloseTo(r.decode_tok_s / r.decode_bound_tok_s, 2);
    expect(r.prefill_fraction_of_peak).toBeCloseTo(r.prefill_tok_s / r.prefill_peak_tok_s, 2);
    const phases = new Set(r.profile.map((x) => x.phase));
    expect([...phases].sort()).toEqual(['decode', 'prefill']);
    for (const phase of phases) {
      const ops = r.profile.filter((x) => x.phase === phase).map((x) => x.op);
      expect(ops, phase).toContain('outside kernels');
      expect(ops, phase).toContain('moeExperts');
      expect(ops.some((o) => o.startsWith('linear q8 ')), phase).toBe(true);
    }
  }, 120_000);
});
