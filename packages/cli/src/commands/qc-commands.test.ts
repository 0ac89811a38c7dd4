import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { CommandContext, CommandSpec } from '../command.js';
import { runCommand as run, errorCode as code } from '../testing/run-command.js';
import { commands as trainCommands } from './train.js';
import { commands as benchXrayCommands } from './bench-xray.js';
import { commands as benchDefectsCommands } from './bench-defects.js';
import { commands as inspectCommands } from './inspect.js';
import { commands as claimsCommands } from './claims.js';

const fixtures = fileURLToPath(new URL('../../../../test/fixtures/qc/', import.meta.url));
const byPath = (cmds: CommandSpec[], p: string): CommandSpec => cmds.find((c) => c.path.join(' ') === p)!;

describe('QC commands', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kestrel-qc-cli-'));

  it('train xray -> bench xray -> inspect, on the tiny fixture', async () => {
    const out = join(dir, 'xray');
    const t = await run(byPath(trainCommands, 'train xray'), { data: join(fixtures, 'pneumoniamnist'), out, split: 'train', size: '64' });
    expect(JSON.parse(t.out).task).toBe('xray');
    const b = JSON.parse((await run(byPath(benchXrayCommands, 'bench xray'), { model: out, data: join(fixtures, 'pneumoniamnist'), split: 'val' })).out);
    expect(b.n).toBe(8);
    expect(b.confusionMatrix.matrix.flat().reduce((a: number, c: number) => a + c, 0)).toBe(8);
    for (const k of ['accuracy', 'auc']) expect(b[k].lower).toBeLessThanOrEqual(b[k].estimate);
    const img = join(fixtures, 'pneumoniamnist/images/val_0000.png');
    const i = JSON.parse((await run(inspectCommands[0]!, { model: out }, [img])).out);
    expect(['normal', 'pneumonia']).toContain(i.label);
    const text = await run(inspectCommands[0]!, { model: out }, [img], false);
    expect(text.out).toMatch(/val_0000\.png: (normal|pneumonia) \(p=0\.\d{4}\)/);
  });

  it('train anomaly -> bench defects --files -> claims --bench reads the result', async () => {
    const out = join(dir, 'anomaly');
    await run(byPath(trainCommands, 'train anomaly'), { good: join(fixtures, 'magnetic-tile'), out, memory: '100', size: '96', 'target-fpr': '0' });
    const b = (await run(byPath(benchDefectsCommands, 'bench defects'), { model: out, data: join(fixtures, 'magnetic-tile'), files: join(out, 'holdout.txt') })).out;
    const r = JSON.parse(b);
    expect(r.kind).toBe('anomaly');
    expect(r.n).toBe(7);
    const benchFile = join(dir, 'bench.json');
    writeFileSync(benchFile, b);
    const c = JSON.parse((await run(claimsCommands[0]!, { bench: benchFile })).out);
    expect(JSON.stringify(c)).toContain(`"negatives":${r.negatives}`);
    const h = JSON.parse((await run(inspectCommands[0]!, { model: out, heatmap: true }, [join(fixtures, 'magnetic-tile', readFileSync(join(out, 'holdout.txt'), 'utf8').split('\n')[0]!)])).out);
    expect(h.heatmap.width * h.heatmap.height).toBe(h.heatmap.data.length);
  });

  it('bad flags and inputs are KestrelErrors', async () => {
    expect(await code(run(byPath(trainCommands, 'train xray'), { data: join(fixtures, 'pneumoniamnist') }))).toBe('E_OPTIONS'); // no --out
    expect(await code(run(byPath(trainCommands, 'train defects'), { data: join(fixtures, 'elpv'), out: join(dir, 'x'), 'target-fpr': '2' }))).toBe('E_OPTIONS');
    expect(await code(run(byPath(trainCommands, 'train defects'), { data: join(fixtures, 'elpv'), out: join(dir, 'x'), pool: 'median' }))).toBe('E_OPTIONS');
    expect(await code(run(byPath(benchDefectsCommands, 'bench defects'), { data: join(fixtures, 'nope') }))).toBe('E_DATA_FORMAT');
    expect(await code(run(inspectCommands[0]!, { model: 'no-such-model' }, ['x.png']))).toBe('E_MODEL_NOT_FOUND');
    expect(await code(run(inspectCommands[0]!, { model: 'defects-elpv' }, []))).toBe('E_OPTIONS');
  });
});
