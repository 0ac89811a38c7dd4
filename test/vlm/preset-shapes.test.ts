// The published deepseek-vl2-tiny and -small shapes through the real loader, without 6.7 / 32 GB of disk: each
// preset's tensors are laid out exactly as `kestrel bench vlm` writes them, but the data section is a sparse hole
// (all-zero BF16), so VisionLanguageModel.load maps it and checks every tensor's name and shape against the config.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, mkdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { safetensorsHeader } from '@kestrel/core';
import { mapsFiles } from '@kestrel/native';
import { PRESETS, VisionLanguageModel, vl2Tensors, type PresetName } from '@kestrel/pipelines';
import { standInTokenizer } from '../../packages/pipelines/src/presets/tokenizer.js';

const root = mkdtempSync(join(tmpdir(), 'kestrel-preset-shapes-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function layout(name: PresetName): string {
  const spec = PRESETS[name];
  const dir = join(root, name);
  mkdirSync(dir);
  const tensors = vl2Tensors(spec.config).map((t) => ({ name: t.name, dtype: 'bf16' as const, shape: t.shape }));
  const head = safetensorsHeader(tensors);
  const bytes = tensors.reduce((a, t) => a + 2 * t.shape.reduce((q, d) => q * d, 1), 0);
  const file = join(dir, 'model-00001-of-00001.safetensors');
  writeFileSync(file, head);
  truncateSync(file, head.length + bytes);
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: bytes }, weight_map: Object.fromEntries(tensors.map((t) => [t.name, 'model-00001-of-00001.safetensors'])) }));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(spec.config));
  writeFileSync(join(dir, 'processor_config.json'), JSON.stringify(spec.processorConfig));
  const tok = standInTokenizer((spec.config.language_config as { vocab_size: number }).vocab_size);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tok.tokenizer));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tok.config));
  return dir;
}

describe.skipIf(!mapsFiles)('published preset shapes load (sparse, all-zero weights)', () => {
  it('deepseek-vl2-tiny: every tensor the config implies is present with its shape; bf16 by default', async () => {
    const vlm = await VisionLanguageModel.load(layout('deepseek-vl2-tiny'));
    try {
      expect(vlm.language.dtype).toBe('bf16');
      expect(vlm.language.config.hidden).toBe(1280);
      expect(vlm.projector.outDim).toBe(1280);
      expect(vlm.processor.imageSize).toBe(384);
    } finally { vlm.dispose(); }
  }, 300_000);

  it('deepseek-vl2-small (MLA, 27 layers) loads the same way', async () => {
    const vlm = await VisionLanguageModel.load(layout('deepseek-vl2-small'));
    try {
      expect(vlm.language.config.hidden).toBe(2048);
      expect(vlm.projector.outDim).toBe(2048);
    } finally { vlm.dispose(); }
  }, 300_000);
});

it('skip reason', () => { if (!mapsFiles) console.log('skip: needs the native addon (memory mapping) to avoid reading GBs of zeros'); });
