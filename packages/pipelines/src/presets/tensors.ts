/**
 * The tensor list of a DeepSeek-VL2 checkpoint (names, shapes) as DeepSeek's own modules name them
 * (`DeepseekVLV2ForCausalLM`: `vision.*` timm SigLIP with its attention-pool head, `projector.layers.*`,
 * `image_newline`, `view_seperator`, `language.*` DeepseekV2ForCausalLM), written from the config alone so that
 * loading a preset checkpoint checks Kestrel's loader against an independent list.
 */

/** How a random tensor is filled: all ones (norm weights), zeros (biases) or random with this standard deviation. */
export type Init = 'one' | 'zero' | number;

/** One tensor to write. */
export interface PresetTensor {
  name: string;
  shape: number[];
  init: Init;
}

type Obj = Record<string, unknown>;
const num = (o: Obj, k: string, d?: number): number => {
  const v = o[k] ?? d;
  if (typeof v !== 'number') throw new Error(`preset config: ${k} is missing`);
  return v;
};

/** Random init scaled by fan-in, so activations keep unit size through a random network. */
const fan = (k: number): number => 1 / Math.sqrt(k);

function vision(v: Obj, out: PresetTensor[]): void {
  const D = num(v, 'width');
  const P = num(v, 'patch_size');
  const g = Math.floor(num(v, 'image_size', 384) / P);
  const M = Math.floor(D * num(v, 'mlp_ratio'));
  const add = (name: string, shape: number[], init: Init): void => { out.push({ name: `vision.${name}`, shape, init }); };
  add('pos_embed', [1, g * g, D], 0.02);
  add('patch_embed.proj.weight', [D, 3, P, P], fan(3 * P * P));
  add('patch_embed.proj.bias', [D], 'zero');
  const ln = (p: string): void => { add(`${p}.weight`, [D], 'one'); add(`${p}.bias`, [D], 'zero'); };
  const lin = (p: string, n: number, k: number): void => { add(`${p}.weight`, [n, k], fan(k)); add(`${p}.bias`, [n], 'zero'); };
  for (let i = 0; i < num(v, 'layers'); i++) {
    const b = `blocks.${i}`;
    ln(`${b}.norm1`);
    lin(`${b}.attn.qkv`, 3 * D, D);
    lin(`${b}.attn.proj`, D, D);
    ln(`${b}.norm2`);
    lin(`${b}.mlp.fc1`, M, D);
    lin(`${b}.mlp.fc2`, D, M);
  }
  ln('norm');
  // timm builds the MAP head (global_pool 'map') even though DeepSeek-VL2 ignores it; the published files hold it.
  add('attn_pool.latent', [1, 1, D], 0.02);
  lin('attn_pool.q', D, D);
  lin('attn_pool.kv', 2 * D, D);
  lin('attn_pool.proj', D, D);
  ln('attn_pool.norm');
  lin('attn_pool.mlp.fc1', M, D);
  lin('attn_pool.mlp.fc2', D, M);
}

function language(l: Obj, out: PresetTensor[]): void {
  const H = num(l, 'hidden_size');
  const V = num(l, 'vocab_size');
  const nh = num(l, 'num_attention_heads');
  const add = (name: string, shape: number[], init: Init): void => { out.push({ name: `language.${name}`, shape, init }); };
  const lin = (name: string, n: number, k: number): void => add(name, [n, k], fan(k));
  const mlp = (p: string, inter: number): void => { lin(`${p}.gate_proj.weight`, inter, H); lin(`${p}.up_proj.weight`, inter, H); lin(`${p}.down_proj.weight`, H, inter); };
  add('model.embed_tokens.weight', [V, H], fan(H));
  const dense = num(l, 'first_k_dense_replace', 0);
  const freq = num(l, 'moe_layer_freq', 1);
  const E = num(l, 'n_routed_experts');
  for (let i = 0; i < num(l, 'num_hidden_layers'); i++) {
    const p = `model.layers.${i}`;
    if (l.use_mla === false) {
      const nkv = num(l, 'num_key_value_heads', nh);
      const hd = H / nh;
      lin(`${p}.self_attn.q_proj.weight`, nh * hd, H);
      lin(`${p}.self_attn.k_proj.weight`, nkv * hd, H);
      lin(`${p}.self_attn.v_proj.weight`, nkv * hd, H);
      lin(`${p}.self_attn.o_proj.weight`, H, nh * hd);
    } else {
      const nope = num(l, 'qk_nope_head_dim');
      const rope = num(l, 'qk_rope_head_dim');
      const vh = num(l, 'v_head_dim');
      const kvl = num(l, 'kv_lora_rank');
      const ql = l.q_lora_rank;
      if (typeof ql === 'number') {
        lin(`${p}.self_attn.q_a_proj.weight`, ql, H);
        add(`${p}.self_attn.q_a_layernorm.weight`, [ql], 'one');
        lin(`${p}.self_attn.q_b_proj.weight`, nh * (nope + rope), ql);
      } else lin(`${p}.self_attn.q_proj.weight`, nh * (nope + rope), H);
      lin(`${p}.self_attn.kv_a_proj_with_mqa.weight`, kvl + rope, H);
      add(`${p}.self_attn.kv_a_layernorm.weight`, [kvl], 'one');
      lin(`${p}.self_attn.kv_b_proj.weight`, nh * (nope + vh), kvl);
      lin(`${p}.self_attn.o_proj.weight`, H, nh * vh);
    }
    if (i >= dense && i % freq === 0) {
      const mi = num(l, 'moe_intermediate_size');
      lin(`${p}.mlp.gate.weight`, E, H);
      if (l.topk_method === 'noaux_tc') add(`${p}.mlp.gate.e_score_correction_bias`, [E], 'zero');
      for (let e = 0; e < E; e++) mlp(`${p}.mlp.experts.${e}`, mi);
      const shared = num(l, 'n_shared_experts', 0);
      if (shared > 0) mlp(`${p}.mlp.shared_experts`, mi * shared);
    } else mlp(`${p}.mlp`, num(l, 'intermediate_size'));
    add(`${p}.input_layernorm.weight`, [H], 'one');
    add(`${p}.post_attention_layernorm.weight`, [H], 'one');
  }
  add('model.norm.weight', [H], 'one');
  lin('lm_head.weight', V, H);
}

/** Every tensor of a DeepSeek-VL2 checkpoint with this config.json, in DeepSeek's module order. */
export function vl2Tensors(config: Obj): PresetTensor[] {
  const out: PresetTensor[] = [];
  const v = config.vision_config as Obj;
  const p = config.projector_config as Obj;
  const l = config.language_config as Obj;
  vision(v, out);
  const inDim = num(p, 'input_dim', 1152) * num(p, 'downsample_ratio', 2) ** 2;
  const nEmbed = num(p, 'n_embed');
  const depth = num(p, 'depth', 2);
  const hidden = nEmbed * num(p, 'mlp_ratio', 1);
  out.push({ name: 'projector.layers.0.weight', shape: [hidden, inDim], init: fan(inDim) }, { name: 'projector.layers.0.bias', shape: [hidden], init: 'zero' });
  for (let i = 1; i < depth; i++) {
    const n = i === depth - 1 ? nEmbed : hidden;
    out.push({ name: `projector.layers.${2 * i}.weight`, shape: [n, hidden], init: fan(hidden) }, { name: `projector.layers.${2 * i}.bias`, shape: [n], init: 'zero' });
  }
  out.push({ name: 'image_newline', shape: [nEmbed], init: 0.02 }, { name: 'view_seperator', shape: [nEmbed], init: 0.02 });
  language(l, out);
  return out;
}
