import { describe, expect, it } from 'vitest';
import { PRESETS, PRESET_NAMES } from './configs.js';
import { vl2Tensors } from './tensors.js';

describe('published DeepSeek-VL2 presets', () => {
  for (const name of PRESET_NAMES) {
    it(`${name}: the tensor list adds up to DeepSeek's published parameter count`, () => {
      const p = PRESETS[name];
      const total = vl2Tensors(p.config).reduce((a, t) => a + t.shape.reduce((q, d) => q * d, 1), 0);
      expect(Math.abs(total - p.parameters)).toBeLessThanOrEqual(p.parametersTolerance);
    });
  }

  it('tiny: hand-counted pieces (SigLIP-SO400M tower with its MAP head, 12-layer MHA MoE LM)', () => {
    const t = new Map(vl2Tensors(PRESETS['deepseek-vl2-tiny'].config).map((x) => [x.name, x.shape]));
    expect(t.get('vision.pos_embed')).toEqual([1, 729, 1152]);
    expect(t.get('vision.blocks.26.mlp.fc1.weight')).toEqual([4304, 1152]);
    expect(t.get('projector.layers.0.weight')).toEqual([1280, 4608]);
    expect(t.get('language.model.layers.0.mlp.gate_proj.weight')).toEqual([6848, 1280]);
    expect(t.get('language.model.layers.11.mlp.experts.63.down_proj.weight')).toEqual([1280, 896]);
    expect(t.get('language.model.layers.1.mlp.shared_experts.up_proj.weight')).toEqual([1792, 1280]);
    expect(t.get('language.lm_head.weight')).toEqual([129280, 1280]);
    expect(t.has('language.model.layers.0.mlp.gate.weight')).toBe(false);
  });
});
