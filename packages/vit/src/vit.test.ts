// bf16 checkpoints: weight matrices stay bf16 (decoded by the kernels) and give the same features as the
// same values held in f32; shape mismatches are E_CHECKPOINT_FORMAT.
import { describe, it, expect } from 'vitest';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { readAllSafetensors, Tensor, f32ToBf16, bf16ToF32, isKestrelError } from '@kestrel/core';
import { portableKernels } from '@kestrel/native';
import { VisionTransformer } from './index.js';

const A = fileURLToPath(new URL('../../../test/fixtures/vlm/A/', import.meta.url));

function source(map: Map<string, Tensor>): { has(n: string): boolean; read(n: string): Promise<Tensor> } {
  return { has: (n) => map.has(n), read: async (n) => map.get(n)! };
}

describe('VisionTransformer weights', () => {
  it('bf16 weight matrices = the same values in f32', async () => {
    const cfg = JSON.parse(readFileSync(A + 'config.json', 'utf8')).vision_config;
    const all = await readAllSafetensors(A + 'model.safetensors');
    const bf = new Map<string, Tensor>();
    const rounded = new Map<string, Tensor>();
    for (const [n, t] of all) {
      if (!n.startsWith('vision.')) continue;
      if (t.rank >= 2 && n.endsWith('.weight')) {
        const u = new Uint16Array(t.size);
        f32ToBf16(t.data as Float32Array, u);
        const back = new Float32Array(t.size);
        bf16ToF32(u, back);
        bf.set(n, new Tensor('bf16', t.shape, u));
        rounded.set(n, new Tensor('f32', t.shape, back));
      } else { bf.set(n, t); rounded.set(n, t); }
    }
    const vb = await VisionTransformer.load(source(bf), cfg, portableKernels);
    const vf = await VisionTransformer.load(source(rounded), cfg, portableKernels);
    const S = cfg.image_size as number;
    const px = new Float32Array(2 * 3 * S * S);
    for (let i = 0; i < px.length; i++) px[i] = Math.sin(i * 0.37);
    const a = vb.encode(new Tensor('f32', [2, 3, S, S], px)).features.data;
    const b = vf.encode(new Tensor('f32', [2, 3, S, S], px)).features.data;
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
    expect(m).toBeLessThan(1e-6);
  });

  it('a tensor whose shape disagrees with the config is E_CHECKPOINT_FORMAT', async () => {
    const cfg = JSON.parse(readFileSync(A + 'config.json', 'utf8')).vision_config;
    const all = await readAllSafetensors(A + 'model.safetensors');
    const err = await VisionTransformer.load(source(all), { ...cfg, mlp_ratio: 3 }, portableKernels).catch((e: unknown) => e);
    expect(isKestrelError(err, 'E_CHECKPOINT_FORMAT')).toBe(true);
    all.delete('vision.norm.bias');
    const err2 = await VisionTransformer.load(source(all), cfg, portableKernels).catch((e: unknown) => e);
    expect(isKestrelError(err2, 'E_CHECKPOINT_FORMAT')).toBe(true);
  });

  it('dispose releases every prepared weight once (patch embedding + 4 per block) and refuses later use', async () => {
    const cfg = JSON.parse(readFileSync(A + 'config.json', 'utf8')).vision_config;
    const all = await readAllSafetensors(A + 'model.safetensors');
    const released: unknown[] = [];
    const counting = { ...portableKernels, releaseLinear: (w: unknown) => { released.push(w); } };
    const v = await VisionTransformer.load(source(all), cfg, counting);
    v.dispose();
    v.dispose();
    expect(released.length).toBe(1 + 4 * (cfg.layers as number));
    expect(new Set(released).size).toBe(released.length);
    expect(v.isDisposed).toBe(true);
    const S = cfg.image_size as number;
    expect(() => v.encode(new Tensor('f32', [1, 3, S, S]))).toThrow(/disposed/);
  });
});
