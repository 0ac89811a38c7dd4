// VisionLanguageModel end to end against the DeepSeek-VL2 golden cases (f32 engine, every available backend):
// image embeds / inputs_embeds within 1e-5, logits within the LM golden's tolerance (1e-5 portable, 1e-4 other
// backends) of the float64 reference, 8 greedy ids equal. Measured (2026-12-04, this machine): embeds <= 2.0e-6,
// logits <= 1.5e-6 portable and <= 3.7e-6 native.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { isKestrelError } from '@kestrel/core';
import { availableBackends } from '@kestrel/native';
import { VisionLanguageModel } from '../../packages/pipelines/src/vlm/vision-language-model.js';
import { FIXTURES, MODELS, CASES, loadCase, maxAbsDiff } from './golden.js';

const EMBEDS_TOL = 1e-5;
/** As packages/moe/src/golden.test.ts: the portable kernels accumulate in f64; other backends get the acceptance. */
const logitsTol = (backend: string): number => (backend === 'portable' ? 1e-5 : 1e-4);

// Every backend that loads here: the portable kernels always, the native CPU addon when it is built.
const BACKENDS = (await availableBackends()).map((k) => (k.name === 'portable' ? 'portable' : 'native') as 'portable' | 'native');

for (const backend of BACKENDS) for (const model of MODELS) {
  describe(`VisionLanguageModel golden ${model} (${backend})`, () => {
    let vlm: VisionLanguageModel;
    beforeAll(async () => { vlm = await VisionLanguageModel.load(join(FIXTURES, model), { backend }); });
    afterAll(() => vlm?.dispose());

    for (const c of CASES) {
      it(`${c}: embeds, logits vs f64, 8 greedy tokens`, async () => {
        const g = await loadCase(model, c);
        const input = { inputIds: g.info.input_ids, images: g.info.image_files.map((f) => join(g.dir, f)) };
        const prep = await vlm.prepareInputs(input);
        expect(prep.preprocessed!.pixelValues.data).toEqual(g.get('pixel_values').data);
        expect(maxAbsDiff(prep.imageEmbeds.data, g.get('image_embeds').data as Float32Array)).toBeLessThan(EMBEDS_TOL);
        expect(prep.inputsEmbeds.shape).toEqual(g.get('inputs_embeds').shape);
        expect(maxAbsDiff(prep.inputsEmbeds.data, g.get('inputs_embeds').data as Float32Array)).toBeLessThan(EMBEDS_TOL);

        const again = { ...input, preprocessed: prep.preprocessed }; // skip decoding the PNGs twice more
        const { logits } = await vlm.forward(again);
        const ref = g.get('logits.f64');
        expect(logits.shape).toEqual(ref.shape);
        expect(maxAbsDiff(logits.data, ref.data as Float64Array)).toBeLessThan(logitsTol(backend));

        const { tokenIds } = await vlm.generate(again, { maxNewTokens: 8, temperature: 0, stopOnEos: false });
        expect(tokenIds).toEqual(Array.from(g.get('decode_token_ids').data as Int32Array));
        expect(tokenIds).toEqual(g.info.decode_token_ids);
      });
    }

    it('image-token positions that do not match the images throw E_IMAGE_TOKENS', async () => {
      const g = await loadCase(model, 'case_img0');
      const ids = g.info.input_ids.slice();
      ids.splice(g.info.images[0]!.token_span[0], 1); // one image token short
      const err = await vlm.forward({ inputIds: ids, images: [join(g.dir, 'img0.png')] }).catch((e: unknown) => e);
      expect(isKestrelError(err, 'E_IMAGE_TOKENS')).toBe(true);
      const err2 = await vlm.forward({ inputIds: g.info.input_ids }).catch((e: unknown) => e);
      expect(isKestrelError(err2, 'E_IMAGE_TOKENS')).toBe(true);
    });
  });
}
