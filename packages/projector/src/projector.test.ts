// Synthetic checks of the downsampling unfold for sizes the golden set does not have (ratio 3, pads of 1 and 2).
import { describe, it, expect } from 'vitest';
import { Tensor } from '@kestrel/core';
import { portableKernels } from '@kestrel/native';
import { MlpProjector, ImageTokenLayout, numImageTokens } from './index.js';

function source(map: Record<string, Tensor>): { has(n: string): boolean; read(n: string): Promise<Tensor> } {
  return { has: (n) => n in map, read: async (n) => map[n]! };
}

describe('MlpProjector downsample unfold', () => {
  for (const [g, r] of [[5, 2], [7, 3], [8, 3], [6, 3]] as const) {
    it(`grid ${g}, ratio ${r}: identity first layer exposes F.unfold order c*r*r + ky*r + kx with zero padding`, async () => {
      const D = 3;
      const k = D * r * r;
      // depth 1 with an identity Linear: the output is the unfolded input itself.
      const eye = new Float32Array(k * k);
      for (let i = 0; i < k; i++) eye[i * k + i] = 1;
      const w = source({
        'projector.layers.0.weight': new Tensor('f32', [k, k], eye), 'projector.layers.0.bias': new Tensor('f32', [k]),
      });
      const proj = await MlpProjector.load(w, { projector_type: 'downsample_mlp_gelu', input_dim: D, n_embed: k, depth: 1, mlp_ratio: 1, downsample_ratio: r }, portableKernels);
      const nt = 2;
      const x = new Float32Array(nt * g * g * D);
      for (let i = 0; i < x.length; i++) x[i] = i + 1;
      const out = proj.forward(new Tensor('f32', [nt, g * g, D], x));
      const side = Math.ceil(g / r);
      expect(out.shape).toEqual([nt, side * side, k]);
      for (let t = 0; t < nt; t++) for (let i = 0; i < side; i++) for (let j = 0; j < side; j++) for (let c = 0; c < D; c++) for (let ky = 0; ky < r; ky++) for (let kx = 0; kx < r; kx++) {
        const y = i * r + ky, xx = j * r + kx;
        const want = y < g && xx < g ? x[((t * g + y) * g + xx) * D + c]! : 0;
        expect(out.data[((t * side + i) * side + j) * k + c * r * r + ky * r + kx]).toBe(want);
      }
    });
  }

  it('layout: tail puts local rows first; counts match numImageTokens', () => {
    const E = 1;
    const side = 2;
    const nl = Float32Array.of(-1), sep = Float32Array.of(-2);
    const tiles = 1 + 2 * 1; // global + 2x1 local
    const p = new Float32Array(tiles * side * side);
    for (let i = 0; i < p.length; i++) p[i] = i;
    const head = new ImageTokenLayout(nl, sep, 'head').arrange(new Tensor('f32', [tiles, side * side, E], p), [[2, 1]]);
    expect(Array.from(head.data)).toEqual([0, 1, -1, 2, 3, -1, -2, 4, 5, 8, 9, -1, 6, 7, 10, 11, -1]);
    expect(head.shape[0]).toBe(numImageTokens(side, [2, 1]));
    const tail = new ImageTokenLayout(nl, sep, 'tail').arrange(new Tensor('f32', [tiles, side * side, E], p), [[2, 1]]);
    expect(Array.from(tail.data)).toEqual([4, 5, 8, 9, -1, 6, 7, 10, 11, -1, -2, 0, 1, -1, 2, 3, -1]);
  });

  it('dispose releases each layer weight once and refuses later use', async () => {
    const w = source({
      'projector.layers.0.weight': new Tensor('f32', [4, 12]), 'projector.layers.0.bias': new Tensor('f32', [4]),
      'projector.layers.2.weight': new Tensor('f32', [4, 4]), 'projector.layers.2.bias': new Tensor('f32', [4]),
    });
    const released: unknown[] = [];
    const counting = { ...portableKernels, releaseLinear: (x: unknown) => { released.push(x); } };
    const proj = await MlpProjector.load(w, { projector_type: 'downsample_mlp_gelu', input_dim: 3, n_embed: 4, depth: 2, mlp_ratio: 1, downsample_ratio: 2 }, counting);
    proj.dispose();
    proj.dispose();
    expect(released.length).toBe(2);
    expect(new Set(released).size).toBe(2);
    expect(() => proj.forward(new Tensor('f32', [1, 4, 3]))).toThrow(/disposed/);
  });
});
