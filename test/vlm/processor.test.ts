// DeepseekVLV2Processor against the golden cases: pixels bit-identical, tiling and token counts equal.
import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { isKestrelError } from '@kestrel/core';
import { DeepseekVLV2Processor } from '../../packages/pipelines/src/vlm/processor.js';
import { FIXTURES, MODELS, CASES, loadCase } from './golden.js';

for (const model of MODELS) {
  describe(`processor golden ${model}`, () => {
    for (const c of CASES) {
      it(`${c}: pixel_values bit-identical, images_spatial_crop and image-token counts equal`, async () => {
        const g = await loadCase(model, c);
        const proc = new DeepseekVLV2Processor(JSON.parse(await readFile(join(FIXTURES, model, 'processor_config.json'), 'utf8')));
        const res = await proc.preprocess(g.info.image_files.map((f) => join(g.dir, f)));
        const ref = g.get('pixel_values');
        expect(res.pixelValues.shape).toEqual(ref.shape);
        let diff = 0;
        for (let i = 0; i < ref.size; i++) if (res.pixelValues.data[i] !== ref.data[i]) diff++;
        expect(diff).toBe(0);
        expect(res.imagesSpatialCrop).toEqual(Array.from({ length: g.info.images.length }, (_, j) => Array.from(g.get('images_spatial_crop').data.subarray(2 * j, 2 * j + 2) as Int32Array)));
        expect(res.numImageTokens).toEqual(g.info.images.map((im) => im.num_image_tokens));
        // The prompt layout of tokenize_with_images: bos, text, image tokens, text.
        const ids = Array.from(g.get('input_ids').data as Int32Array);
        const spans = g.info.images.map((im) => im.token_span);
        const texts: number[][] = [];
        let at = 1;
        for (const [s, e] of spans) { texts.push(ids.slice(at, s)); at = e; }
        texts.push(ids.slice(at));
        const prompt = texts.map((_, i) => `T${i}`).join('<image>');
        const tok = proc.tokenizeWithImages(prompt, res.numImageTokens, (t) => texts[Number(t.slice(1))]!);
        expect(Array.from(tok.inputIds)).toEqual(ids);
        expect(Array.from(tok.imagesSeqMask)).toEqual(Array.from(g.get('images_seq_mask').data as Int32Array));
      });
    }

    it('accepts Buffers and sharp instances; 3+ images switch cropping off', async () => {
      const proc = new DeepseekVLV2Processor(JSON.parse(await readFile(join(FIXTURES, model, 'processor_config.json'), 'utf8')));
      const p0 = join(FIXTURES, model, 'img0.png');
      const a = await proc.preprocess([p0]);
      const b = await proc.preprocess([await readFile(p0)]);
      const s = await proc.preprocess([sharp(p0)]);
      expect(b.pixelValues.data).toEqual(a.pixelValues.data);
      expect(s.pixelValues.data).toEqual(a.pixelValues.data);
      const three = await proc.preprocess([p0, p0, p0]);
      expect(three.imagesSpatialCrop).toEqual([[1, 1], [1, 1], [1, 1]]);
      expect(three.pixelValues.shape[0]).toBe(6);
      // Global views do not depend on cropping.
      expect(three.pixelValues.data.subarray(0, a.pixelValues.size / a.pixelValues.shape[0]!)).toEqual(a.pixelValues.data.subarray(0, a.pixelValues.size / a.pixelValues.shape[0]!));
    });

    it('placeholder / image count mismatch is E_IMAGE_TOKENS', async () => {
      const proc = new DeepseekVLV2Processor(JSON.parse(await readFile(join(FIXTURES, model, 'processor_config.json'), 'utf8')));
      let err: unknown;
      try { proc.tokenizeWithImages('<image> and <image>', [5], () => []); } catch (e) { err = e; }
      expect(isKestrelError(err, 'E_IMAGE_TOKENS')).toBe(true);
    });
  });
}
