/**
 * Self-consistency on synthetic configs with other shapes than the goldens (GQA + linear RoPE + biases;
 * MLA without q-LoRA + another YaRN setting + 16 experts top-4 noaux_tc + tied embeddings): the KV-cache
 * path equals a full recompute, the absorbed MLA form equals the decompressed one, a batch equals its
 * sequences run alone.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, writeSafetensors } from '@kestrel/core';
import { availableBackends } from '@kestrel/native';
import { MoeLanguageModel, parseModelConfig } from './index.js';

const backends = (await availableBackends()).map((k) => k.name);

let work: string;
beforeAll(async () => { work = await mkdtemp(join(tmpdir(), 'kestrel-moe-synth-')); });
afterAll(async () => { await rm(work, { recursive: true, force: true }); });

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
}

/** Random weights for every tensor the config implies (N(0, 1/fan_in)-like uniform, norms near 1). */
async function synth(name: string, cfg: Record<string, unknown>, seed: number): Promise<string> {
  const c = parseModelConfig(cfg);
  const r = rng(seed);
  const t = new Map<string, Tensor>();
  const mat = (n: string, rows: number, cols: number, scale = 1 / Math.sqrt(cols)): void => {
    t.set(n, Tensor.f32([rows, cols], Float32Array.from({ length: rows * cols }, () => (r() * 2 - 1) * Math.sqrt(3) * scale)));
  };
  const vec = (n: string, len: number, base: number, spread: number): void => {
    t.set(n, Tensor.f32([len], Float32Array.from({ length: len }, () => base + (r() * 2 - 1) * spread)));
  };
  const H = c.hidden;
  mat('model.embed_tokens.weight', c.vocab, H, 1);
  const mlp = (p: string, inter: number): void => { mat(`${p}.gate_proj.weight`, inter, H); mat(`${p}.up_proj.weight`, inter, H); mat(`${p}.down_proj.weight`, H, inter); };
  for (let l = 0; l < c.nLayers; l++) {
    const p = `model.layers.${l}`;
    vec(`${p}.input_layernorm.weight`, H, 1, 0.1);
    vec(`${p}.post_attention_layernorm.weight`, H, 1, 0.1);
    if (!c.useMla) {
      const hd = c.headDim;
      mat(`${p}.self_attn.q_proj.weight`, c.nHeads * hd, H);
      mat(`${p}.self_attn.k_proj.weight`, c.nKvHeads * hd, H);
      mat(`${p}.self_attn.v_proj.weight`, c.nKvHeads * hd, H);
      mat(`${p}.self_attn.o_proj.weight`, H, c.nHeads * hd);
      if (c.attentionBias) for (const [n, len] of [['q', c.nHeads * hd], ['k', c.nKvHeads * hd], ['v', c.nKvHeads * hd], ['o', H]] as const) vec(`${p}.self_attn.${n}_proj.bias`, len, 0, 0.05);
    } else {
      const dq = c.nope + c.rope;
      if (c.qLoraRank) {
        mat(`${p}.self_attn.q_a_proj.weight`, c.qLoraRank, H);
        vec(`${p}.self_attn.q_a_layernorm.weight`, c.qLoraRank, 1, 0.1);
        mat(`${p}.self_attn.q_b_proj.weight`, c.nHeads * dq, c.qLoraRank);
      } else mat(`${p}.self_attn.q_proj.weight`, c.nHeads * dq, H);
      mat(`${p}.self_attn.kv_a_proj_with_mqa.weight`, c.kvLoraRank + c.rope, H);
      vec(`${p}.self_attn.kv_a_layernorm.weight`, c.kvLoraRank, 1, 0.1);
      mat(`${p}.self_attn.kv_b_proj.weight`, c.nHeads * (c.nope + c.vHead), c.kvLoraRank);
      mat(`${p}.self_attn.o_proj.weight`, H, c.nHeads * c.vHead);
    }
    if (c.isMoeLayer[l]) {
      mat(`${p}.mlp.gate.weight`, c.nRouted, H, 2 / Math.sqrt(H));
      if (c.raw.topk_method === 'noaux_tc') vec(`${p}.mlp.gate.e_score_correction_bias`, c.nRouted, 0.05, 0.05);
      for (let e = 0; e < c.nRouted; e++) mlp(`${p}.mlp.experts.${e}`, c.moeIntermediate);
      if (c.nShared) mlp(`${p}.mlp.shared_experts`, c.moeIntermediate * c.nShared);
    } else mlp(`${p}.mlp`, c.intermediate);
  }
  vec('model.norm.weight', H, 1, 0.1);
  if (!c.tied) mat('lm_head.weight', c.vocab, H);
  const dir = join(work, name);
  await rm(dir, { recursive: true, force: true });
  await import('node:fs/promises').then((fs) => fs.mkdir(dir, { recursive: true }));
  await writeFile(join(dir, 'config.json'), JSON.stringify(cfg));
  await writeSafetensors(join(dir, 'model.safetensors'), t);
  return dir;
}

const base = { architectures: ['DeepseekV2ForCausalLM'], model_type: 'deepseek_v2', vocab_size: 97, bos_token_id: 0, eos_token_id: 1, rms_norm_eps: 1e-6 };
const CONFIGS: Record<string, Record<string, unknown>> = {
  'MHA GQA, linear RoPE, biases, group_limited_greedy, moe_layer_freq 3': {
    ...base, hidden_size: 48, num_hidden_layers: 4, num_attention_heads: 6, num_key_value_heads: 2, use_mla: false,
    q_lora_rank: null, kv_lora_rank: null, qk_nope_head_dim: 0, qk_rope_head_dim: 0, v_head_dim: 0,
    rope_scaling: { type: 'linear', factor: 2 }, attention_bias: true, intermediate_size: 72, moe_intermediate_size: 20,
    n_routed_experts: 12, num_experts_per_tok: 3, n_shared_experts: null, first_k_dense_replace: 0, moe_layer_freq: 3,
    topk_method: 'group_limited_greedy', n_group: 3, topk_group: 2, scoring_func: 'softmax', norm_topk_prob: true, routed_scaling_factor: 1.0,
  },
  'MLA without q-LoRA, YaRN (factor 8, orig 16, mscale 0.707), 16 experts top-4 noaux_tc, tied': {
    ...base, hidden_size: 40, num_hidden_layers: 5, num_attention_heads: 3, num_key_value_heads: 3, use_mla: true,
    q_lora_rank: null, kv_lora_rank: 20, qk_nope_head_dim: 10, qk_rope_head_dim: 6, v_head_dim: 14, max_position_embeddings: 128,
    rope_scaling: { type: 'yarn', factor: 8, original_max_position_embeddings: 16, beta_fast: 16, beta_slow: 2, mscale: 0.707, mscale_all_dim: 0.707 },
    intermediate_size: 64, moe_intermediate_size: 12, n_routed_experts: 16, num_experts_per_tok: 4, n_shared_experts: 1,
    first_k_dense_replace: 2, moe_layer_freq: 1, topk_method: 'noaux_tc', n_group: 4, topk_group: 2, scoring_func: 'sigmoid',
    norm_topk_prob: true, routed_scaling_factor: 2.5, tie_word_embeddings: true,
  },
  'MLA with q-LoRA, YaRN mscale_all_dim only, softmax greedy top-1': {
    ...base, hidden_size: 32, num_hidden_layers: 3, num_attention_heads: 2, num_key_value_heads: 2, use_mla: true,
    q_lora_rank: 24, kv_lora_rank: 16, qk_nope_head_dim: 8, qk_rope_head_dim: 4, v_head_dim: 8,
    rope_scaling: { type: 'yarn', factor: 2, original_max_position_embeddings: 20, mscale_all_dim: 1 },
    intermediate_size: 40, moe_intermediate_size: 16, n_routed_experts: 6, num_experts_per_tok: 1, n_shared_experts: 2,
    first_k_dense_replace: 1, moe_layer_freq: 1, topk_method: 'greedy', scoring_func: 'softmax', norm_topk_prob: true, routed_scaling_factor: 1.0,
  },
};

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe.each(backends.map((b) => [b]))('self-consistency on synthetic configs, %s kernels', (backendName) => {
  const backend = backendName === 'portable' ? 'portable' : 'native';
  // portable keeps float64 sums inside ops; other backends sum in float32 (as the golden tests allow 10x)
  const rel = backendName === 'portable' ? 1e-6 : 1e-5;
  let seed = 11;
  for (const [name, cfg] of Object.entries(CONFIGS)) {
    it(name, async () => {
      const dir = await synth(`${backend}-${name.replace(/\W+/g, '-')}`, cfg, seed++);
      const r = rng(seed);
      const ids = Array.from({ length: 41 }, (_, i) => (i === 0 ? 0 : 2 + Math.floor(r() * 95)));
      const modes = cfg.use_mla ? (['absorbed', 'naive'] as const) : (['auto'] as const);
      const full: Float32Array[] = [];
      for (const mlaMode of modes) {
        const m = await MoeLanguageModel.load(dir, { backend, mlaMode });
        const V = m.config.vocab;
        const ref = m.forward({ inputIds: ids }).logits.data;
        full.push(ref);
        // float32 activations between ops: compare relative to the logit scale
        let scale = 1;
        for (const v of ref) scale = Math.max(scale, Math.abs(v));
        const tol = rel * scale;
        // prefill 17 tokens, then one token at a time through the cache
        const cache = m.createCache(4);
        const pre = m.forward({ inputIds: ids.slice(0, 17), cache }).logits.data;
        expect(maxAbs(pre, ref.subarray(0, 17 * V))).toBeLessThan(tol);
        for (let t = 17; t < ids.length; t++) {
          const step = m.forward({ inputIds: [ids[t]!], cache }, { lastOnly: true }).logits.data;
          expect(maxAbs(step, ref.subarray(t * V, (t + 1) * V))).toBeLessThan(tol);
        }
        // two chunks of several tokens also continue the cache correctly
        const c2 = m.createCache();
        m.forward({ inputIds: ids.slice(0, 9), cache: c2 });
        const chunk = m.forward({ inputIds: ids.slice(9, 30), cache: c2 }).logits.data;
        expect(maxAbs(chunk, ref.subarray(9 * V, 30 * V))).toBeLessThan(tol);
        // a batch of sequences of different lengths equals each alone
        const other = ids.slice(3, 25);
        const [b0, b1] = m.forwardBatch([{ inputIds: ids }, { inputIds: other }]);
        expect(maxAbs(b0!.logits.data, ref)).toBeLessThan(tol);
        expect(maxAbs(b1!.logits.data, m.forward({ inputIds: other }).logits.data)).toBeLessThan(tol);
        // greedy generation with the cache equals argmax of full recomputes
        const g = await m.generate({ inputIds: ids.slice(0, 10) }, { maxNewTokens: 6, stopOnEos: false });
        const seq = ids.slice(0, 10);
        for (let s = 0; s < 6; s++) {
          const l = m.forward({ inputIds: seq }, { lastOnly: true }).logits.data;
          let a = 0;
          for (let v = 1; v < V; v++) if (l[v]! > l[a]!) a = v;
          expect(g.tokenIds[s]).toBe(a);
          seq.push(a);
        }
        m.dispose();
      }
      if (full.length === 2) {
        let scale = 1;
        for (const v of full[0]!) scale = Math.max(scale, Math.abs(v));
        expect(maxAbs(full[0]!, full[1]!)).toBeLessThan(rel * scale);
      }
    });
  }
});
