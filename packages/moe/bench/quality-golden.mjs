// Logit error and token agreement of f32 / bf16 / int8 on the golden LM cases (test/fixtures/lm).
// Usage: node packages/moe/bench/quality-golden.mjs [portable|native|auto]   (after `npx tsc -b`)
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MoeLanguageModel } from '@kestrel/moe';
import { readAllSafetensors } from '@kestrel/core';

const FIX = fileURLToPath(new URL('../../../test/fixtures/lm/', import.meta.url));
const backend = process.argv[2] ?? 'portable';
for (const dtype of ['f32', 'bf16', 'int8']) {
  for (const m of ['A', 'B', 'C']) {
    const lm = await MoeLanguageModel.load(FIX + m, { dtype, backend });
    const V = lm.config.vocab;
    let err = 0, maxRef = 0, top1 = 0, rows = 0, same = 0, steps = 0;
    for (const c of ['case_short', 'case_long', 'case_batch_0', 'case_batch_1']) {
      const g = await readAllSafetensors(`${FIX}${m}/${c}.safetensors`);
      const j = JSON.parse(readFileSync(`${FIX}${m}/${c}.json`, 'utf8'));
      const ref = g.get('logits.f64').data;
      const out = lm.forward({ inputIds: j.input_ids }).logits.data;
      for (let r = 0; r < j.input_ids.length; r++) {
        let a = 0, b = 0;
        for (let v = 0; v < V; v++) {
          err = Math.max(err, Math.abs(out[r * V + v] - ref[r * V + v]));
          maxRef = Math.max(maxRef, Math.abs(ref[r * V + v]));
          if (out[r * V + v] > out[r * V + a]) a = v;
          if (ref[r * V + v] > ref[r * V + b]) b = v;
        }
        if (a === b) top1++;
        rows++;
      }
      // greedy tokens identical to the golden 16, up to the first difference
      const res = await lm.generate({ inputIds: j.input_ids }, { maxNewTokens: 16, stopOnEos: false });
      for (let i = 0; i < 16 && res.tokenIds[i] === j.decode_token_ids[i]; i++) same++;
      steps += 16;
    }
    console.log(JSON.stringify({ dtype, model: m, kernels: lm.kernels.name, max_abs_logit_err_vs_f64: +err.toExponential(2), max_abs_logit: +maxRef.toFixed(2), prefill_top1_agreement: `${top1}/${rows}`, greedy_tokens_before_first_difference: `${same}/${steps}` }));
    lm.dispose();
  }
}
