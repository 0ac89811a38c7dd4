// native/cuda/gpu/ncu_summary.py (the per-kernel table of a profiled decode step) on a CSV in ncu's format:
// units, thousands separators, program output before the header, and division by the step count.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../native/cuda/gpu/ncu_summary.py', import.meta.url));
const csv = fileURLToPath(new URL('./fixtures/ncu/decode-2-steps.csv', import.meta.url));
const py = spawnSync('python3', ['--version'], { encoding: 'utf8' }).status === 0;

describe.skipIf(!py)('ncu_summary.py', () => {
  it('sums each kernel per step, largest first, and the time between kernels from the step time', () => {
    const r = spawnSync('python3', [script, csv, '--steps', '2', '--step-ms', '0.02'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    // rows_kernel: (4000 + 2500 + 4000 + 3500) ns / 2 steps = 7.0 us, 2 launches per step, mean 3.5 us
    expect(lines[1]).toMatch(/^rows_kernel<1,true,false>\s+2\.0\s+7\.0\s+3\.50/);
    // rmsnorm: (2112 + 1888) / 2 = 2.0 us
    expect(lines[2]).toMatch(/^rmsnorm_kernel\s+1\.0\s+2\.0\s+2\.00/);
    expect(lines.at(-1)).toBe('per step: 3 kernels, 9.0 us of kernel time; step 20.0 us, so 11.0 us between kernels (3.67 us per launch)');
  });

  it('says so when the file holds no ncu CSV', () => {
    const r = spawnSync('python3', [script, script], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('no ncu CSV header');
  });
});
