/**
 * The golden LM and VLM cases with `device: 'cuda'` (same tolerances as the CPU golden tests: LM logits
 * within 1e-4 of the float64 reference and the 16 greedy ids equal; VLM image embeds within 1e-4, logits
 * within 1e-3 and 8 greedy ids equal). Needs a GPU: skipped, with the reason, elsewhere.
 * The model packages are imported lazily, so this file costs nothing where it is skipped.
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readAllSafetensors } from '@kestrel/core';
import { cudaAvailability } from './cuda.js';

const avail = await cudaAvailability();
const LM = fileURLToPath(new URL('../../test/fixtures/lm/', import.meta.url));

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe.skipIf(!avail.available)(`golden cases on device 'cuda'${avail.available ? '' : ` (skipped: ${avail.reason})`}`, () => {
  for (const m of ['A', 'B', 'C']) {
    it(`LM ${m}: logits vs f64 and 16 greedy tokens`, async () => {
      const { MoeLanguageModel } = await import('@kestrel/moe');
      const model = await MoeLanguageModel.load(join(LM, m), { device: 'cuda' });
      try {
        for (const c of ['case_short', 'case_long']) {
          const t = await readAllSafetensors(join(LM, m, `${c}.safetensors`));
          const json = JSON.parse(readFileSync(join(LM, m, `${c}.json`), 'utf8')) as { input_ids: number[]; decode_token_ids: number[] };
          const out = model.forward({ inputIds: json.input_ids });
          expect(maxAbs(out.logits.data, t.get('logits.f64')!.data as Float64Array), `${m}/${c} logits`).toBeLessThan(1e-4);
          const res = await model.generate({ inputIds: json.input_ids }, { maxNewTokens: 16, temperature: 0, stopOnEos: false });
          expect(res.tokenIds, `${m}/${c} greedy ids`).toEqual(json.decode_token_ids);
        }
      } finally {
        model.dispose();
      }
    }, 300_000);
  }

  it('VLM A/B/C: embeds, logits vs f64, 8 greedy tokens', async () => {
    const { VisionLanguageModel } = await import('../../packages/pipelines/src/vlm/vision-language-model.js');
    const { FIXTURES, MODELS, CASES, loadCase, maxAbsDiff } = await import('../../test/vlm/golden.js');
    for (const model of MODELS) {
      const vlm = await VisionLanguageModel.load(join(FIXTURES, model), { device: 'cuda' });
      try {
        for (const c of CASES) {
          const g = await loadCase(model, c);
          const input = { inputIds: g.info.input_ids, images: g.info.image_files.map((f: string) => join(g.dir, f)) };
          const prep = await vlm.prepareInputs(input);
          expect(maxAbsDiff(prep.imageEmbeds.data, g.get('image_embeds').data as Float32Array), `${model}/${c} image embeds`).toBeLessThan(1e-4);
          const again = { ...input, preprocessed: prep.preprocessed };
          const { logits } = await vlm.forward(again);
          expect(maxAbsDiff(logits.data, g.get('logits.f64').data as Float64Array), `${model}/${c} logits`).toBeLessThan(1e-3);
          const { tokenIds } = await vlm.generate(again, { maxNewTokens: 8, temperature: 0, stopOnEos: false });
          expect(tokenIds, `${model}/${c} greedy ids`).toEqual(g.info.decode_token_ids);
        }
      } finally {
        vlm.dispose();
      }
    }
  }, 600_000);
});
