import { mkdtempSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { CommandContext, CommandSpec } from '../command.js';
import { runCommand, errorCode as code } from '../testing/run-command.js';
import { commands as genCommands } from './generate.js';
import { commands as quantCommands } from './quantize.js';

const FIX = fileURLToPath(new URL('../../../../test/fixtures/lm/', import.meta.url));
const generate = genCommands[0]!;
const quantize = quantCommands[0]!;

const runCmd = (cmd: CommandSpec, values: CommandContext['values'], json = true): Promise<{ out: string; err: string }> => runCommand(cmd, values, [], json);

describe('kestrel generate / quantize', () => {
  it('generate --ids prints the golden greedy tokens (JSON and plain)', async () => {
    const { out } = await runCmd(generate, { model: `${FIX}A`, ids: '0,17,230,45,9,12,101', 'max-tokens': '16', backend: 'portable' });
    const r = JSON.parse(out) as { tokenIds: number[]; usage: { newTokens: number } };
    expect(r.tokenIds).toEqual([250, 205, 121, 82, 234, 246, 238, 80, 207, 22, 80, 238, 82, 50, 29, 88]);
    expect(r.usage.newTokens).toBe(16);
    const plain = await runCmd(generate, { model: `${FIX}A`, ids: '0,17,230', 'max-tokens': '3', backend: 'portable' }, false);
    expect(plain.out.trim().split(',')).toHaveLength(3);
  });

  it('generate rejects bad flags with E_OPTIONS', async () => {
    expect(await code(runCmd(generate, { ids: '0' }))).toBe('E_OPTIONS');
    expect(await code(runCmd(generate, { model: `${FIX}A` }))).toBe('E_OPTIONS');
    expect(await code(runCmd(generate, { model: `${FIX}A`, ids: '0,x' }))).toBe('E_OPTIONS');
    expect(await code(runCmd(generate, { model: `${FIX}A`, ids: '0', temperature: 'hot' }))).toBe('E_OPTIONS');
    expect(await code(runCmd(generate, { model: `${FIX}A`, prompt: 'hello', backend: 'portable' }))).toBe('E_OPTIONS'); // no tokenizer.json
  });

  it('quantize writes a q8 checkpoint that generate loads as int8', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'kestrel-quant-')), 'q8');
    const { out: o } = await runCmd(quantize, { model: `${FIX}C`, out });
    const rep = JSON.parse(o) as { quantized: number; ratio: number };
    expect(rep.quantized).toBeGreaterThan(0);
    expect(rep.ratio).toBeLessThan(0.4);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).quantization_config).toEqual({ quant_method: 'kestrel_q8', block_size: 32 });
    expect(existsSync(join(out, 'generation_config.json'))).toBe(true);
    const g = JSON.parse((await runCmd(generate, { model: out, ids: '0,17,230', 'max-tokens': '4', dtype: 'int8', backend: 'portable' })).out) as { tokenIds: number[] };
    expect(g.tokenIds).toHaveLength(4);
    expect(await code(runCmd(quantize, { model: `${FIX}C`, out }))).toBe('E_OPTIONS'); // exists, not empty
    expect(await code(runCmd(quantize, { model: `${FIX}C` }))).toBe('E_OPTIONS');
    expect(await code(runCmd(quantize, { model: join(out, 'missing'), out: join(out, 'x') }))).toBe('E_MODEL_NOT_FOUND');
  });
});
