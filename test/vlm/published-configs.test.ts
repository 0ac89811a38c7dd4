// Item 1 of issue 14: the configs of the published DeepSeek-VL2 / DeepSeek-V2 / DeepSeek-OCR checkpoints
// (test/fixtures/published-configs, provenance in its README) load as they are.
import { mkdirSync, mkdtempSync, openSync, closeSync, ftruncateSync, writeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { isKestrelError } from '@kestrel/core';
import { parseVisionConfig } from '@kestrel/vit';
import { parseProjectorConfig } from '@kestrel/projector';
import { parseModelConfig, languageTensorShapes } from '@kestrel/moe';
import { DeepseekVLV2Processor, parseVl2Config, vl2TensorShapes, checkCheckpointTensors, countParameters } from '@kestrel/pipelines';

const here = fileURLToPath(new URL('../fixtures/published-configs/', import.meta.url));
const json = (p: string): Record<string, unknown> => JSON.parse(readFileSync(join(here, p), 'utf8')) as Record<string, unknown>;
const VL2 = ['deepseek-vl2-tiny', 'deepseek-vl2-small', 'deepseek-vl2'] as const;
const tmp = mkdtempSync(join(tmpdir(), 'kestrel-published-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => { vi.restoreAllMocks(); });

function kestrelWarnings(): string[][] {
  const spy = vi.spyOn(process, 'emitWarning');
  return spy.mock.calls as unknown as string[][];
}

function thrown(f: () => unknown): unknown {
  try { f(); } catch (e) { return e; }
  return null;
}

describe('published DeepSeek-VL2 configs', () => {
  for (const m of VL2) {
    it(`${m}: config.json, processor_config.json and all three sub-configs parse with no warning`, () => {
      const warnings = kestrelWarnings();
      const cfg = parseVl2Config(json(`${m}/config.json`));
      const v = parseVisionConfig(cfg.vision_config);
      const p = parseProjectorConfig(cfg.projector_config);
      const l = parseModelConfig(cfg.language_config);
      const proc = new DeepseekVLV2Processor(json(`${m}/processor_config.json`));
      // SigLIP-SO400M at 384 px, patch 14: 27 x 27 patches, 14 x 14 tokens per tile after the 2x2 downsample
      expect([v.image_size, v.patch_size, v.width, v.layers, v.heads]).toEqual([384, 14, 1152, 27, 16]);
      expect(proc.imageSize).toBe(384);
      expect(proc.tokensPerSide).toBe(14);
      expect(p.n_embed).toBe(l.hidden);
      expect(warnings).toEqual([]);
    });
  }

  it('the language models get the geometry DeepSeek publishes (defaults of DeepseekV2Config fill the omitted keys)', () => {
    const [tiny, small, big] = VL2.map((m) => parseModelConfig(parseVl2Config(json(`${m}/config.json`)).language_config));
    expect(tiny).toMatchObject({ useMla: false, headDim: 128, nLayers: 12, nHeads: 10, nRouted: 64, topK: 6, nShared: 2 });
    expect(small).toMatchObject({ useMla: true, qLoraRank: null, kvLoraRank: 512, nLayers: 27, nHeads: 16, nRouted: 64 });
    // deepseek-vl2 leaves layers, heads, kv_lora_rank to the class defaults (30, 32, 512)
    expect(big).toMatchObject({ useMla: true, nLayers: 30, nHeads: 32, kvLoraRank: 512, qLoraRank: null, nRouted: 72 });
    expect(big.raw).toMatchObject({ topk_method: 'noaux_tc', scoring_func: 'sigmoid', norm_topk_prob: true, routed_scaling_factor: 2, lm_head: false });
  });

  it('parameter counts equal the published totals (tiny 3,370,501,440; small 16.1 B with a DeepSeek-V2-Lite LM; deepseek-vl2 27.5 B)', () => {
    const [tiny, small, big] = VL2.map((m) => vl2TensorShapes(json(`${m}/config.json`)));
    expect(countParameters(tiny!)).toBe(3_370_501_440);
    expect(Math.round(countParameters(small!) / 1e8) / 10).toBe(16.1);
    expect(Math.round(countParameters(big!) / 1e8) / 10).toBe(27.5);
    // DeepSeek-V2-Lite: 15,706,484,224 parameters (its safetensors index); VL2-small's language model has its geometry
    const lite = languageTensorShapes(parseModelConfig(json('DeepSeek-V2-Lite/config.json')));
    expect(countParameters(lite)).toBe(15_706_484_224);
    const smallLm = new Map([...small!].filter(([k]) => k.startsWith('language.')));
    expect(countParameters(smallLm)).toBe(15_706_484_224);
  });

  it('the tensor table matches the golden checkpoints tensor for tensor (names written by the PyTorch reference)', async () => {
    for (const m of ['A', 'B', 'C']) {
      const dir = fileURLToPath(new URL(`../fixtures/vlm/${m}/`, import.meta.url));
      const r = await checkCheckpointTensors(dir, vl2TensorShapes(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))));
      expect(r.missing.length + r.unexpected.length + r.mismatched.length).toBe(0);
      expect(r.checked).toBeGreaterThan(50);
    }
  });

  // published totals: the 3,370,501,440 for tiny; 16.1 B and 27.5 B (DeepSeek-VL2 paper / model cards)
  const totals: Record<(typeof VL2)[number], (n: number) => boolean> = {
    'deepseek-vl2-tiny': (n) => n === 3_370_501_440,
    'deepseek-vl2-small': (n) => Math.round(n / 1e8) === 161,
    'deepseek-vl2': (n) => Math.round(n / 1e8) === 275,
  };
  for (const m of VL2) {
    it(`weight check of a real-size ${m} checkpoint (sharded BF16; headers only, the data is a sparse file)`, async () => {
      const shapes = vl2TensorShapes(json(`${m}/config.json`));
      const dir = join(tmp, m);
      writeSparseCheckpoint(dir, shapes, 3);
      const r = await checkCheckpointTensors(dir, shapes);
      expect(r).toMatchObject({ missing: [], unexpected: [], mismatched: [], checked: shapes.size });
      expect(totals[m](r.parameters), String(r.parameters)).toBe(true);
      // the same weights under a config with one layer fewer: refused, naming the extra tensors
      const fewer = json(`${m}/config.json`);
      const lc = fewer.language_config as Record<string, unknown>;
      const layers = parseModelConfig(lc).nLayers;
      lc.num_hidden_layers = layers - 1;
      const err = await checkCheckpointTensors(dir, vl2TensorShapes(fewer)).catch((e: unknown) => e);
      expect(isKestrelError(err, 'E_CHECKPOINT_FORMAT'), String(err)).toBe(true);
      expect((err as Error).message).toContain(`language.model.layers.${layers - 1}.`);
      rmSync(dir, { recursive: true, force: true });
    });
  }
});

/** A sharded BF16 safetensors checkpoint with `shapes`: real headers, zero data as sparse files (no disk used). */
function writeSparseCheckpoint(dir: string, shapes: ReadonlyMap<string, readonly number[]>, shards: number): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const names = [...shapes.keys()];
  const per = Math.ceil(names.length / shards);
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (let i = 0; i < shards; i++) {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const header: Record<string, unknown> = {};
    let off = 0;
    for (const n of names.slice(i * per, (i + 1) * per)) {
      const bytes = shapes.get(n)!.reduce((a, b) => a * b, 1) * 2;
      header[n] = { dtype: 'BF16', shape: shapes.get(n), data_offsets: [off, off + bytes] };
      off += bytes;
      weightMap[n] = file;
    }
    total += off;
    const h = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    const fd = openSync(join(dir, file), 'w');
    writeSync(fd, len);
    writeSync(fd, h);
    ftruncateSync(fd, 8 + h.length + off);
    closeSync(fd);
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }));
}

describe('DeepSeek-V2-Lite and DeepSeek-OCR', () => {
  it('DeepSeek-V2-Lite config.json parses with YaRN and no warning', () => {
    const warnings = kestrelWarnings();
    const c = parseModelConfig(json('DeepSeek-V2-Lite/config.json'));
    expect(c).toMatchObject({ useMla: true, nLayers: 27, kvLoraRank: 512, qLoraRank: null, bosId: 100000, eosIds: [100001] });
    expect(c.raw.rope_scaling).toMatchObject({ type: 'yarn', factor: 40, mscale: 0.707, mscale_all_dim: 0.707 });
    expect(warnings).toEqual([]);
  });

  it('weight check of a real-size DeepSeek-V2-Lite checkpoint (DeepseekV2ForCausalLM names, sparse BF16 shards)', async () => {
    const shapes = languageTensorShapes(parseModelConfig(json('DeepSeek-V2-Lite/config.json')));
    const dir = join(tmp, 'lite');
    writeSparseCheckpoint(dir, shapes, 4);
    const r = await checkCheckpointTensors(dir, shapes);
    expect(r).toMatchObject({ missing: [], unexpected: [], mismatched: [], parameters: 15_706_484_224 });
    expect(shapes.get('model.layers.1.self_attn.kv_a_proj_with_mqa.weight')).toEqual([512 + 64, 2048]);
    expect(shapes.get('model.layers.1.self_attn.kv_b_proj.weight')).toEqual([16 * (128 + 128), 512]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("DeepSeek-OCR's language model parses (use_mla false, kv_lora_rank null, head dims 0) and its tensor names are the published ones", () => {
    const ocr = json('DeepSeek-OCR/config.json');
    const c = parseModelConfig(ocr.language_config);
    expect(c).toMatchObject({ useMla: false, headDim: 128, kvLoraRank: 0, nLayers: 12, nRouted: 64, nShared: 2 });
    const s = languageTensorShapes(c);
    // shapes from the published checkpoint's tensor list (DeepSeek-OCR model-00001-of-000001.safetensors)
    expect(s.get('model.layers.0.self_attn.q_proj.weight')).toEqual([1280, 1280]);
    expect(s.get('model.layers.0.mlp.gate_proj.weight')).toEqual([6848, 1280]);
    expect(s.get('model.layers.11.mlp.experts.63.down_proj.weight')).toEqual([1280, 896]);
    expect(s.get('model.layers.1.mlp.shared_experts.up_proj.weight')).toEqual([1792, 1280]);
    expect(s.get('model.layers.1.mlp.gate.weight')).toEqual([64, 1280]);
    expect(s.get('lm_head.weight')).toEqual([129280, 1280]);
  });

  it('the whole DeepSeek-OCR checkpoint is refused by name (its vision tower is SAM + CLIP, not SigLIP)', () => {
    const err = thrown(() => parseVl2Config(json('DeepSeek-OCR/config.json')));
    expect(isKestrelError(err, 'E_UNSUPPORTED'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/DeepseekOCRForCausalLM/);
  });
});

describe('keys: ignored, warned, refused', () => {
  it('lm_head false / rm_head true are accepted (DeepSeek always builds lm_head and never reads rm_head)', () => {
    const lc = { ...json('deepseek-vl2-tiny/config.json').language_config as object, lm_head: false, rm_head: true };
    expect(parseModelConfig(lc).nLayers).toBe(12);
  });

  it('an unknown key is a one-line warning, once, not a refusal', () => {
    const warnings = kestrelWarnings();
    const lc = { ...json('deepseek-vl2-tiny/config.json').language_config as object, brand_new_key_xyz: 1 };
    parseModelConfig(lc);
    parseModelConfig(lc);
    const mine = warnings.filter((w) => String(w[0]).includes('brand_new_key_xyz'));
    expect(mine.length).toBe(1);
    expect(String(mine[0]![0])).not.toMatch(/\n/);
    const proc = { ...json('deepseek-vl2-tiny/processor_config.json'), another_new_key_xyz: true };
    expect(new DeepseekVLV2Processor(proc).imageSize).toBe(384);
    expect(warnings.some((w) => String(w[0]).includes('another_new_key_xyz'))).toBe(true);
  });

  const refused: Array<[string, () => unknown, RegExp]> = [
    ['hidden_act gelu', () => parseModelConfig({ ...json('deepseek-vl2-tiny/config.json').language_config as object, hidden_act: 'gelu' }), /hidden_act/],
    ['rope_scaling dynamic', () => parseModelConfig({ ...json('DeepSeek-V2-Lite/config.json'), rope_scaling: { type: 'dynamic', factor: 2 } }), /rope_scaling/],
    ['sft_format plain', () => new DeepseekVLV2Processor({ ...json('deepseek-vl2-tiny/processor_config.json'), sft_format: 'plain' }), /sft_format/],
    ['use_mla true without kv_lora_rank', () => parseModelConfig({ ...json('deepseek-vl2-tiny/config.json').language_config as object, use_mla: true }), /kv_lora_rank/],
  ];
  for (const [what, f, re] of refused) {
    it(`an unsupported value that changes the computation is E_CHECKPOINT_FORMAT naming it: ${what}`, () => {
      const err = thrown(f);
      expect(isKestrelError(err, 'E_CHECKPOINT_FORMAT'), String(err)).toBe(true);
      expect((err as Error).message).toMatch(re);
    });
  }

  it("defaults are DeepseekV2Config's (configuration_deepseek.py, read by hand)", () => {
    const c = parseModelConfig({ n_routed_experts: null }).raw;
    expect(c).toMatchObject({
      vocab_size: 102400, hidden_size: 4096, intermediate_size: 11008, moe_intermediate_size: 1407, num_hidden_layers: 30,
      num_attention_heads: 32, num_key_value_heads: 32, n_shared_experts: null, n_routed_experts: null, routed_scaling_factor: 1,
      kv_lora_rank: 512, q_lora_rank: 1536, qk_rope_head_dim: 64, v_head_dim: 128, qk_nope_head_dim: 128, n_group: null,
      topk_group: null, num_experts_per_tok: null, moe_layer_freq: 1, first_k_dense_replace: 0, norm_topk_prob: false,
      scoring_func: 'softmax', hidden_act: 'silu', max_position_embeddings: 2048, rms_norm_eps: 1e-6, pad_token_id: null,
      bos_token_id: 100000, eos_token_id: 100001, tie_word_embeddings: false, rope_theta: 10000, rope_scaling: null,
      attention_bias: false, use_mla: true,
    });
  });
});

describe('a checkpoint folder in the published layout loads end to end (golden A weights)', () => {
  it('published-style config keys, a processor_config without token ids and a tokenizer_config with AddedToken objects', async () => {
    const { copyFileSync } = await import('node:fs');
    const { VisionLanguageModel } = await import('@kestrel/pipelines');
    const A = fileURLToPath(new URL('../fixtures/vlm/A/', import.meta.url));
    const CHAT = fileURLToPath(new URL('../fixtures/vlm-chat/', import.meta.url));
    const dir = join(tmp, 'published-layout');
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(A, 'model.safetensors'), join(dir, 'model.safetensors'));
    copyFileSync(join(CHAT, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    copyFileSync(join(here, 'deepseek-vl2-tiny/tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
    const cfg = JSON.parse(readFileSync(join(A, 'config.json'), 'utf8')) as Record<string, Record<string, unknown>>;
    const published = json('deepseek-vl2-tiny/config.json');
    // A's geometry with the published file's extra keys (lm_head: false as in deepseek-vl2 / -small)
    cfg.language_config = { ...cfg.language_config, auto_map: (published.language_config as Record<string, unknown>).auto_map, lm_head: false, rm_head: false, torch_dtype: 'bfloat16' };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    const proc = JSON.parse(readFileSync(join(A, 'processor_config.json'), 'utf8')) as Record<string, unknown>;
    for (const k of ['image_token_id', 'bos_token_id', 'eos_token_id', 'pad_token_id']) delete proc[k];
    writeFileSync(join(dir, 'processor_config.json'), JSON.stringify(proc));
    const warnings = kestrelWarnings();
    const vlm = await VisionLanguageModel.load(dir, { backend: 'portable' });
    try {
      // ids from the tokenizer: BOS/EOS named by the AddedToken objects, <｜▁pad▁｜> added as pad (tokenizer_config has none)
      expect(vlm.processor.config).toMatchObject({ image_token_id: 299, bos_token_id: 0, eos_token_id: 1, pad_token_id: 2 });
      const r = await vlm.chat([{ role: 'user', content: '<image>\nWhat is it?', images: [join(A, 'img0.png')] }], { maxNewTokens: 3 });
      expect(r.usage.imageTokens).toBe(57);
      expect(warnings).toEqual([]);
    } finally {
      vlm.dispose();
    }
  });
});

describe('kestrel check / checkCheckpoint', () => {
  it('golden VL2 and DeepSeek-V2 checkpoints match their configs; a kestrel quantize copy too; a wrong config is named', async () => {
    const { checkCheckpoint } = await import('@kestrel/pipelines');
    const { quantizeCheckpoint } = await import('@kestrel/moe');
    const { copyFileSync } = await import('node:fs');
    const fx = (p: string): string => fileURLToPath(new URL(`../fixtures/${p}/`, import.meta.url));
    for (const m of ['A', 'B', 'C']) {
      expect((await checkCheckpoint(fx(`vlm/${m}`))).kind).toBe('deepseek-vl2');
      expect((await checkCheckpoint(fx(`lm/${m}`))).kind).toBe('deepseek-v2');
    }
    const q = join(tmp, 'q8');
    await quantizeCheckpoint(fx('lm/B'), q);
    expect((await checkCheckpoint(q)).report.mismatched).toEqual([]);
    const bad = join(tmp, 'bad-config');
    mkdirSync(bad, { recursive: true });
    copyFileSync(join(fx('vlm/A'), 'model.safetensors'), join(bad, 'model.safetensors'));
    const cfg = JSON.parse(readFileSync(join(fx('vlm/A'), 'config.json'), 'utf8')) as { language_config: Record<string, unknown> };
    cfg.language_config.moe_intermediate_size = 48;
    writeFileSync(join(bad, 'config.json'), JSON.stringify(cfg));
    const err = await checkCheckpoint(bad).catch((e: unknown) => e);
    expect(isKestrelError(err, 'E_CHECKPOINT_FORMAT'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/language\.model\.layers\.1\.mlp\.experts\.0\.gate_proj\.weight \[32, 64\] \(config says \[48, 64\]\)/);
  });

  it('the command prints the parameter count, or JSON', async () => {
    const { commands } = await import('../../packages/cli/src/commands/check.js');
    const { Writable } = await import('node:stream');
    let out = '';
    const stream = new Writable({ write(c, _e, cb) { out += String(c); cb(); } });
    const A = fileURLToPath(new URL('../fixtures/vlm/A/', import.meta.url));
    await commands[0]!.run({ values: { model: A }, positionals: [], json: false, debug: false, out: stream, err: stream });
    expect(out).toMatch(/deepseek-vl2, \d+ tensors, [\d,]+ parameters; the weights match config\.json/);
    out = '';
    await commands[0]!.run({ values: { model: A }, positionals: [], json: true, debug: false, out: stream, err: stream });
    expect(JSON.parse(out)).toMatchObject({ kind: 'deepseek-vl2', report: { missing: [], unexpected: [], mismatched: [] } });
  });
});
