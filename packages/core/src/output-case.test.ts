// The case policy of JSON outputs: camelCase keys first, snake_case top-level keys kept beside them as aliases.
import { describe, it, expect } from 'vitest';
import { camelCaseKey, withCamelCaseKeys } from './index.js';

describe('withCamelCaseKeys', () => {
  it('names: hand-written cases', () => {
    expect(['ms_per_image', 'prefill_tok_s', 'peak_rss_mb', 'per_category', 'stats', 'AP50', 'model_ms'].map(camelCaseKey))
      .toEqual(['msPerImage', 'prefillTokS', 'peakRssMb', 'perCategory', 'stats', 'AP50', 'modelMs']);
  });

  it('adds camelCase beside snake_case at the top level only, keeps existing camelCase keys, leaves non-objects alone', () => {
    const runs = [{ prefill_tok_s: 1 }];
    const out = withCamelCaseKeys({ prefill_tok_s: 10, decode_tok_s: null, stats: [1], msPerImage: 3, ms_per_image: 4, runs });
    expect(out).toEqual({ prefillTokS: 10, decodeTokS: null, stats: [1], msPerImage: 3, ms_per_image: 4, runs, prefill_tok_s: 10, decode_tok_s: null });
    // an existing camelCase key wins over the conversion of its snake_case twin
    expect((out as Record<string, unknown>).msPerImage).toBe(3);
    expect(Object.keys(out).slice(0, 2)).toEqual(['prefillTokS', 'decodeTokS']);
    expect(out.runs[0]).toBe(runs[0]);
    for (const v of [null, 3, 'x', [{ a_b: 1 }], new Date(0)]) expect(withCamelCaseKeys(v)).toBe(v);
  });
});
