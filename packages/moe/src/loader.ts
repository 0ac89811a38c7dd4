/** Loading of MoeLanguageModel: options, config, kernels, expert placement, and every weight of the checkpoint. */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { KestrelError, openSafetensors, parseOptions, reportProgress, type SafetensorsFile, type ProgressListener } from '@kestrel/core';
import { getKernels, loadCudaKernels, type CudaKernels, type Kernels, type PreparedLinear, type ExpertWeights } from '@kestrel/native';
import { parseModelConfig, type ModelConfig } from './config.js';
import type { Layer, MhaWeights, MlaWeights, DenseMlp, MoeMlp, ModelWeights } from './layers.js';
import { loadOptionsSchema, type LoadOptions } from './load-options.js';
import { planExperts, type ExpertPlacement } from './placement.js';
import { RopeTables, ropeFrequencies } from './rope-tables.js';
import { WeightReader, checkpointDType, convertLinear, sliceRows, transposeRows, type ModelDType } from './weights.js';
import { TextTokenizer } from './tokenizer.js';

/** Everything MoeLanguageModel is made of once loaded. */
export interface LoadedModel extends ModelWeights {
  config: ModelConfig;
  kernels: Kernels;
  dtype: ModelDType;
  ropeTables: RopeTables;
  mlaMode: 'auto' | 'absorbed' | 'naive';
  dir: string;
  placement: ExpertPlacement | null;
  tokenizer: TextTokenizer | null;
  eosIds: readonly number[];
}

/**
 * Load a DeepseekV2ForCausalLM checkpoint directory (config.json + model.safetensors or a sharded
 * index), or the language model inside a DeepSeek-VL2 checkpoint (`prefix: 'language.'`).
 */
export async function loadModel(dir: string, options?: LoadOptions): Promise<LoadedModel> {
  const o = parseOptions(loadOptionsSchema, options, 'MoeLanguageModel.load options');
  const st = await stat(dir).catch(() => null);
  if (!st || !st.isDirectory()) throw new KestrelError('E_MODEL_NOT_FOUND', `model directory not found: ${dir}`, { details: { path: dir } });
  let cfgJson: unknown = o.config;
  if (cfgJson === undefined) {
    const p = join(dir, 'config.json');
    let text: string;
    try { text = await readFile(p, 'utf8'); } catch {
      throw new KestrelError('E_CHECKPOINT_FORMAT', `${dir} has no config.json; a DeepseekV2ForCausalLM checkpoint directory needs one`, { details: { path: p } });
    }
    try { cfgJson = JSON.parse(text); } catch (e) {
      throw new KestrelError('E_CHECKPOINT_FORMAT', `${p} is not valid JSON (${(e as Error).message})`, { details: { path: p } });
    }
  }
  const cfg = parseModelConfig(cfgJson);
  const onCuda = o.device === 'cuda' || (o.kernels !== undefined && 'deviceOps' in o.kernels);
  if ((o.expertsOn !== undefined || o.cpuExpertLayers !== undefined) && !onCuda) {
    throw new KestrelError('E_OPTIONS', "expertsOn and cpuExpertLayers place experts between GPU and CPU; they need device 'cuda'");
  }
  // device 'cuda': the CUDA kernels, or E_BACKEND_UNAVAILABLE saying why not (no build, driver or GPU)
  const kernels = o.kernels ?? (o.device === 'cuda'
    ? await loadCudaKernels()
    : await getKernels({ backend: o.backend, ...(o.threads !== undefined ? { threads: o.threads } : {}) }));
  const file = await openSafetensors(dir);
  try {
    let prefix = o.prefix;
    if (prefix === undefined) {
      if (file.has('model.embed_tokens.weight')) prefix = '';
      else if (file.has('language.model.embed_tokens.weight')) prefix = 'language.';
      else throw new KestrelError('E_CHECKPOINT_FORMAT', `${dir}: no model.embed_tokens.weight (nor language.model.embed_tokens.weight); not a DeepSeek-V2 checkpoint`);
    }
    const dtype = o.dtype ?? checkpointDType(file, `${prefix}model.embed_tokens.weight`);
    let placement: ExpertPlacement | null = null;
    let cpuKernels: Kernels | null = null;
    if (onCuda && (o.expertsOn !== undefined || o.cpuExpertLayers !== undefined)) {
      placement = planExperts(cfg, dtype, o.expertsOn ?? 'gpu', o.cpuExpertLayers, (kernels as Partial<CudaKernels>).device?.totalMem);
      if (placement.expertLayersOnCpu > 0) cpuKernels = await getKernels({ backend: o.backend, ...(o.threads !== undefined ? { threads: o.threads } : {}) });
    }
    const weights = await readWeights({ dir, cfg, file, prefix, dtype, kernels, onProgress: o.onProgress, placement, cpuKernels });
    const ropeDim = cfg.useMla ? cfg.rope : cfg.headDim;
    const ropeTables = new RopeTables(ropeFrequencies(ropeDim, cfg.raw), Math.min(cfg.raw.max_position_embeddings, 4096));
    let eosIds: readonly number[] = cfg.eosIds;
    const gen = await readFile(join(dir, 'generation_config.json'), 'utf8').then((t) => JSON.parse(t) as { eos_token_id?: unknown }, () => null);
    const ge = gen?.eos_token_id;
    if (typeof ge === 'number') eosIds = [ge];
    else if (Array.isArray(ge) && ge.every((v) => typeof v === 'number')) eosIds = ge as number[];
    return { ...weights, config: cfg, kernels, dtype, ropeTables, mlaMode: o.mlaMode, dir, placement, tokenizer: await TextTokenizer.load(dir), eosIds };
  } finally {
    await file.close();
  }
}

/** What reading the weights needs. */
interface ReadContext {
  dir: string;
  cfg: ModelConfig;
  file: SafetensorsFile;
  prefix: string;
  dtype: ModelDType;
  kernels: Kernels;
  onProgress: ProgressListener | undefined;
  placement: ExpertPlacement | null;
  /** the CPU kernels, when some layers' routed experts are placed in host memory */
  cpuKernels: Kernels | null;
}

/** Read and prepare every weight of the LM; a tensor of the LM left unread means config.json disagrees. */
async function readWeights(b: ReadContext): Promise<ModelWeights> {
  const { dir, cfg, file, prefix, dtype, kernels, onProgress, placement, cpuKernels } = b;
  const w = new WeightReader(file, prefix, dtype, kernels, dir);
  // routed experts placed on the CPU are read and prepared by the CPU kernels
  const wCpu = cpuKernels ? new WeightReader(file, prefix, dtype, cpuKernels, dir) : null;
  const H = cfg.hidden;
  const embed = await w.linear('model.embed_tokens.weight', cfg.vocab, H);
  const layers: Layer[] = [];
  const bias = async (name: string, n: number): Promise<Float32Array | null> => (cfg.attentionBias ? w.vector(name, n) : null);
  const mlp = async (p: string, inter: number): Promise<DenseMlp> => ({
    kind: 'dense',
    gate: await w.linear(`${p}.gate_proj.weight`, inter, H),
    up: await w.linear(`${p}.up_proj.weight`, inter, H),
    down: await w.linear(`${p}.down_proj.weight`, H, inter),
  });
  for (let l = 0; l < cfg.nLayers; l++) {
    const p = `model.layers.${l}`;
    let attn: MhaWeights | MlaWeights;
    if (!cfg.useMla) {
      const hd = cfg.headDim, nh = cfg.nHeads, nkv = cfg.nKvHeads;
      attn = {
        kind: 'mha',
        q: await w.linear(`${p}.self_attn.q_proj.weight`, nh * hd, H),
        k: await w.linear(`${p}.self_attn.k_proj.weight`, nkv * hd, H),
        v: await w.linear(`${p}.self_attn.v_proj.weight`, nkv * hd, H),
        o: await w.linear(`${p}.self_attn.o_proj.weight`, H, nh * hd),
        qb: await bias(`${p}.self_attn.q_proj.bias`, nh * hd),
        kb: await bias(`${p}.self_attn.k_proj.bias`, nkv * hd),
        vb: await bias(`${p}.self_attn.v_proj.bias`, nkv * hd),
        ob: await bias(`${p}.self_attn.o_proj.bias`, H),
      };
    } else {
      const nh = cfg.nHeads, dq = cfg.nope + cfg.rope, kvl = cfg.kvLoraRank, vh = cfg.vHead;
      const q = cfg.qLoraRank;
      // int8: quantize kv_b first and derive the absorbed per-head weights from the q8 values, so a
      // pre-quantized checkpoint and quantize-on-load give identical models
      const kvBRaw = convertLinear(await w.readLinear(`${p}.self_attn.kv_b_proj.weight`, nh * (cfg.nope + vh), kvl), dtype === 'int8' ? 'int8' : 'f32');
      const ukT: PreparedLinear[] = [];
      const uv: PreparedLinear[] = [];
      for (let h = 0; h < nh; h++) {
        const r0 = h * (cfg.nope + vh);
        ukT.push(kernels.prepareLinear(convertLinear(transposeRows(kvBRaw, r0, r0 + cfg.nope), dtype)));
        uv.push(kernels.prepareLinear(convertLinear(sliceRows(kvBRaw, r0 + cfg.nope, r0 + cfg.nope + vh), dtype)));
      }
      attn = {
        kind: 'mla',
        qA: q !== null ? await w.linear(`${p}.self_attn.q_a_proj.weight`, q, H) : null,
        qAb: q !== null ? await bias(`${p}.self_attn.q_a_proj.bias`, q) : null,
        qANorm: q !== null ? await w.vector(`${p}.self_attn.q_a_layernorm.weight`, q) : null,
        qB: q !== null ? await w.linear(`${p}.self_attn.q_b_proj.weight`, nh * dq, q) : null,
        q: q === null ? await w.linear(`${p}.self_attn.q_proj.weight`, nh * dq, H) : null,
        kvA: await w.linear(`${p}.self_attn.kv_a_proj_with_mqa.weight`, kvl + cfg.rope, H),
        kvAb: await bias(`${p}.self_attn.kv_a_proj_with_mqa.bias`, kvl + cfg.rope),
        kvANorm: await w.vector(`${p}.self_attn.kv_a_layernorm.weight`, kvl),
        kvB: kernels.prepareLinear(convertLinear(kvBRaw, dtype)),
        ukT, uv,
        o: await w.linear(`${p}.self_attn.o_proj.weight`, H, nh * vh),
        ob: await bias(`${p}.self_attn.o_proj.bias`, H),
      };
    }
    let m: DenseMlp | MoeMlp;
    if (cfg.isMoeLayer[l]) {
      const E = cfg.nRouted;
      const experts: ExpertWeights[] = [];
      const onCpu = placement?.experts[l] === 'cpu' && wCpu !== null;
      const er = onCpu ? wCpu : w;
      for (let e = 0; e < E; e++) {
        const ep = `${p}.mlp.experts.${e}`;
        experts.push({
          gate: await er.linear(`${ep}.gate_proj.weight`, cfg.moeIntermediate, H),
          up: await er.linear(`${ep}.up_proj.weight`, cfg.moeIntermediate, H),
          down: await er.linear(`${ep}.down_proj.weight`, H, cfg.moeIntermediate),
        });
      }
      const needBias = cfg.raw.topk_method === 'noaux_tc';
      if (!needBias && w.has(`${p}.mlp.gate.e_score_correction_bias`)) {
        throw new KestrelError('E_CHECKPOINT_FORMAT', `${dir}: ${prefix}${p}.mlp.gate.e_score_correction_bias is present but topk_method is "${cfg.raw.topk_method}" (the bias is only used by noaux_tc); fix config.json`);
      }
      m = {
        kind: 'moe',
        router: kernels.prepareLinear(await w.matrixF32(`${p}.mlp.gate.weight`, E, H)),
        route: {
          topK: cfg.topK,
          scoring: cfg.raw.scoring_func,
          method: cfg.raw.topk_method,
          nGroup: cfg.nGroup,
          topkGroup: cfg.topkGroup,
          bias: needBias ? await w.vector(`${p}.mlp.gate.e_score_correction_bias`, E) : null,
          normTopkProb: cfg.raw.norm_topk_prob,
          scalingFactor: cfg.raw.routed_scaling_factor,
        },
        experts,
        expertKernels: onCpu ? cpuKernels : null,
        shared: cfg.nShared > 0 ? await mlp(`${p}.mlp.shared_experts`, cfg.moeIntermediate * cfg.nShared) : null,
      };
    } else {
      m = await mlp(`${p}.mlp`, cfg.intermediate);
    }
    layers.push({
      inNorm: await w.vector(`${p}.input_layernorm.weight`, H),
      postNorm: await w.vector(`${p}.post_attention_layernorm.weight`, H),
      attn, mlp: m,
    });
    reportProgress({ task: 'load language model', done: l + 1, total: cfg.nLayers, message: `layer ${l + 1}/${cfg.nLayers} (${dtype})` }, onProgress);
  }
  const finalNorm = await w.vector('model.norm.weight', H);
  let lmHead: PreparedLinear;
  if (cfg.tied) {
    if (w.has('lm_head.weight')) throw new KestrelError('E_CHECKPOINT_FORMAT', `${dir}: tie_word_embeddings is true but the checkpoint has its own lm_head.weight; fix config.json`);
    lmHead = embed;
  } else {
    lmHead = await w.linear('lm_head.weight', cfg.vocab, H);
  }
  // Everything of the LM must have been read: a stray tensor means config.json disagrees with the weights.
  const lmPrefix = prefix + 'model.';
  const stray = file.names().filter((n) => (n.startsWith(lmPrefix) || n === prefix + 'lm_head.weight') && !w.used.has(n) && !wCpu?.used.has(n));
  if (stray.length) {
    throw new KestrelError('E_CHECKPOINT_FORMAT', `${dir}: ${stray.length} tensor(s) are not used by the model config.json describes (e.g. ${stray.slice(0, 3).join(', ')}); check num_hidden_layers, first_k_dense_replace, moe_layer_freq and q_lora_rank`, { details: { stray: stray.slice(0, 20) } });
  }
  return { embedTable: embed, layers, finalNorm, lmHead };
}
