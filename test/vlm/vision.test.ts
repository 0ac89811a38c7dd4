// Vision path (ViT → projector → image-token layout) against the DeepSeek-VL2 golden cases, f32.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { openSafetensors, Tensor, type SafetensorsFile } from '@kestrel/core';
import { portableKernels } from '@kestrel/native';
import { VisionTransformer } from '@kestrel/vit';
import { MlpProjector, ImageTokenLayout, numImageTokens } from '@kestrel/projector';
import { FIXTURES, MODELS, CASES, loadCase, maxAbsDiff } from './golden.js';

for (const model of MODELS) {
  describe(`vision golden ${model}`, () => {
    let st: SafetensorsFile;
    let vit: VisionTransformer;
    let proj: MlpProjector;
    let layout: ImageTokenLayout;
    beforeAll(async () => {
      const cfg = JSON.parse(await readFile(join(FIXTURES, model, 'config.json'), 'utf8'));
      st = await openSafetensors(join(FIXTURES, model, 'model.safetensors'));
      vit = await VisionTransformer.load(st, cfg.vision_config, portableKernels);
      proj = await MlpProjector.load(st, cfg.projector_config, portableKernels);
      layout = await ImageTokenLayout.load(st, cfg, proj.outDim);
    });
    afterAll(async () => { await st?.close(); });

    for (const c of CASES) {
      it(`${c}: hidden states, features, projector, image embeds within 1e-4`, async () => {
        const g = await loadCase(model, c);
        const pixels = g.get('pixel_values') as Tensor<'f32'>;
        const { features, hiddenStates } = vit.encode(pixels, { hiddenStates: true });
        expect(hiddenStates!.shape).toEqual(g.get('vision_hidden_states').shape);
        expect(maxAbsDiff(hiddenStates!.data, g.get('vision_hidden_states').data as Float32Array)).toBeLessThan(1e-4);
        expect(features.shape).toEqual(g.get('vision_features').shape);
        expect(maxAbsDiff(features.data, g.get('vision_features').data as Float32Array)).toBeLessThan(1e-4);

        // Projector from the golden features too, so its error is not the ViT's.
        const p = proj.forward(g.get('vision_features') as Tensor<'f32'>);
        expect(p.shape).toEqual(g.get('projector_out').shape);
        expect(maxAbsDiff(p.data, g.get('projector_out').data as Float32Array)).toBeLessThan(1e-4);
        const pe = proj.forward(features);
        expect(maxAbsDiff(pe.data, g.get('projector_out').data as Float32Array)).toBeLessThan(1e-4);

        const crops = g.info.images.map((im) => im.images_spatial_crop);
        const emb = layout.arrange(pe, crops);
        expect(emb.shape).toEqual(g.get('image_embeds').shape);
        expect(maxAbsDiff(emb.data, g.get('image_embeds').data as Float32Array)).toBeLessThan(1e-4);
        // Layout of the golden projector output is a pure rearrangement: exact.
        expect(maxAbsDiff(layout.arrange(g.get('projector_out') as Tensor<'f32'>, crops).data, g.get('image_embeds').data as Float32Array)).toBe(0);
        const side = Math.round(Math.sqrt(p.shape[1]!));
        for (const im of g.info.images) expect(numImageTokens(side, im.images_spatial_crop)).toBe(im.num_image_tokens);
      });
    }
  });
}
