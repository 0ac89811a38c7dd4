/** The expert placement plan (`expertsOn`, `cpuExpertLayers`) on hand-computed byte budgets. */
import { describe, it, expect } from 'vitest';
import { planExpertPlacement } from './placement.js';

describe('expert placement', () => {
  // DeepSeek-VL2-tiny-like: 12 layers, layer 0 dense, 11 MoE layers
  const base = { layers: 12, isMoeLayer: (l: number) => l >= 1, expertBytesPerLayer: 100, otherBytes: 300 };

  it("'gpu' puts every MoE layer's experts on the GPU; dense layers have none", () => {
    const p = planExpertPlacement({ ...base, expertsOn: 'gpu' });
    expect(p.experts[0]).toBeNull();
    expect(p.experts.slice(1).every((x) => x === 'gpu')).toBe(true);
    expect([p.gpuBytes, p.cpuBytes, p.expertLayersOnCpu]).toEqual([300 + 1100, 0, 0]);
  });

  it("'cpu' keeps all routed experts in host memory", () => {
    const p = planExpertPlacement({ ...base, expertsOn: 'cpu' });
    expect(p.experts.slice(1).every((x) => x === 'cpu')).toBe(true);
    expect([p.gpuBytes, p.cpuBytes]).toEqual([300, 1100]);
  });

  it('cpuExpertLayers moves the first N MoE layers to the CPU', () => {
    const p = planExpertPlacement({ ...base, expertsOn: 'gpu', cpuExpertLayers: 3 });
    expect(p.experts.slice(0, 5)).toEqual([null, 'cpu', 'cpu', 'cpu', 'gpu']);
    expect(p.expertLayersOnCpu).toBe(3);
    expect(planExpertPlacement({ ...base, expertsOn: 'gpu', cpuExpertLayers: 99 }).expertLayersOnCpu).toBe(11);
  });

  it("'auto' fits as many expert layers as the budget allows, first layers to the CPU", () => {
    // budget 1000 - 100 reserve = 900; 300 other -> 6 expert layers fit, 5 go to the CPU
    const p = planExpertPlacement({ ...base, expertsOn: 'auto', gpuBytes: 1000, reserveBytes: 100 });
    expect(p.expertLayersOnCpu).toBe(5);
    expect(p.gpuBytes).toBeLessThanOrEqual(900);
    expect(p.experts.slice(1, 7)).toEqual(['cpu', 'cpu', 'cpu', 'cpu', 'cpu', 'gpu']);
    expect(planExpertPlacement({ ...base, expertsOn: 'auto', gpuBytes: 1e9 }).expertLayersOnCpu).toBe(0);
  });

  it('inconsistent options and an impossible fit are errors with codes', () => {
    const code = (f: () => unknown) => { try { f(); } catch (e) { return (e as { code?: string }).code; } return 'none'; };
    expect(code(() => planExpertPlacement({ ...base, expertsOn: 'auto' }))).toBe('E_OPTIONS');
    expect(code(() => planExpertPlacement({ ...base, expertsOn: 'cpu', cpuExpertLayers: 2 }))).toBe('E_OPTIONS');
    expect(code(() => planExpertPlacement({ ...base, expertsOn: 'gpu', cpuExpertLayers: -1 }))).toBe('E_OPTIONS');
    expect(code(() => planExpertPlacement({ ...base, expertsOn: 'tpu' as 'gpu' }))).toBe('E_OPTIONS');
    expect(code(() => planExpertPlacement({ ...base, expertsOn: 'auto', gpuBytes: 250 }))).toBe('E_BACKEND_UNAVAILABLE');
  });
});
