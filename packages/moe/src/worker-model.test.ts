/** MoeWorkerModel: the same generation as in-process, run in a worker thread (needs `npx tsc -b`: workers run dist/). */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { fileURLToPath } from 'node:url';
import { MoeWorkerModel } from './index.js';

const FIX = fileURLToPath(new URL('../../../test/fixtures/lm/', import.meta.url));
const PROMPT = [0, 17, 230, 45, 9, 12, 101];
// A/case_short's golden greedy tokens (test/fixtures/lm/README.md: from the reference implementation)
const GREEDY = [250, 205, 121, 82, 234, 246, 238, 80, 207, 22, 80, 238, 82, 50, 29, 88];

let lm: MoeWorkerModel;
beforeAll(async () => { lm = await MoeWorkerModel.load(`${FIX}A`, { backend: 'portable' }); });
afterAll(async () => { await lm.dispose(); });

describe('MoeWorkerModel', () => {
  it('generates the golden greedy tokens in the worker', async () => {
    const r = await lm.generate({ inputIds: PROMPT }, { maxNewTokens: 16, stopOnEos: false });
    expect(r.tokenIds).toEqual(GREEDY);
    expect(r.finishReason).toBe('length');
    expect(lm.info.vocab).toBeGreaterThan(250);
  });

  it('streams the same tokens one by one', async () => {
    const got: number[] = [];
    for await (const c of lm.stream({ inputIds: PROMPT }, { maxNewTokens: 16, stopOnEos: false })) got.push(c.tokenId);
    expect(got).toEqual(GREEDY);
  });

  it('an AbortSignal stops generation inside the worker', async () => {
    const ac = new AbortController();
    const got: number[] = [];
    const run = (async () => {
      for await (const c of lm.stream({ inputIds: PROMPT }, { maxNewTokens: 10_000, stopOnEos: false, signal: ac.signal })) {
        got.push(c.tokenId);
        if (got.length === 3) ac.abort();
      }
    })();
    await expect(run).rejects.toMatchObject({ code: 'E_ABORTED' });
    expect(got.length).toBeLessThan(50);
    // the worker is free again
    expect((await lm.generate({ inputIds: PROMPT }, { maxNewTokens: 2, stopOnEos: false })).tokenIds).toEqual(GREEDY.slice(0, 2));
  });

  it('load and option errors keep their KestrelError code', async () => {
    await expect(MoeWorkerModel.load(`${FIX}nope`)).rejects.toMatchObject({ code: 'E_MODEL_NOT_FOUND' });
    await expect(MoeWorkerModel.load(`${FIX}A`, { dtype: 'f64' as never })).rejects.toMatchObject({ code: 'E_OPTIONS' });
    await expect(lm.generate({ inputIds: PROMPT }, { maxNewTokens: -1 })).rejects.toMatchObject({ code: 'E_OPTIONS' });
  });
});
