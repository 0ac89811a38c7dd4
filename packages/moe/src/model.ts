import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { KestrelError, Tensor, openSafetensors, parseOptions, reportProgress, type SafetensorsFile, type ProgressListener } from '@kestrel/core';
import { BYTES_PER_PARAM, getKernels, loadCudaKernels, mlaAttentionParams, planExpertPlacement, type CudaKernels, type ExpertPlacement, type Kernels, type PreparedLinear, type ExpertWeights, type MoeRouteParams, type LinearWeight } from '@kestrel/native';
import { parseModelConfig, type ModelConfig } from './config.js';
import { KvCache } from './kv-cache.js';
import type { Layer, MhaWeights, MlaWeights, DenseMlp, MoeMlp } from './layers.js';
import { DeviceRunner } from './device-forward.js';
import { sharedInExpertCall } from './shared-experts.js';
import { RopeTables, ropeFrequencies, attentionMscale2 } from './rope-tables.js';
import { WeightReader, convertLinear, sliceRows, transposeRows, type ModelDType } from './weights.js';
import { TextTokenizer } from './tokenizer.js';
import { generateTokens, type GenerateInput, type GenerateOptions, type GenerateResult, type StreamChunk, type GenerationHost } from './generation.js';

/** Options of {@link MoeLanguageModel.load}. */
export const loadOptionsSchema = z.object({
  /** in-memory weight format: f32, bf16, or int8 (q8 weight-only, block 32) */
  dtype: z.enum(['f32', 'bf16', 'int8']).default('f32'),
  /** kernel threads (native backend) */
  threads: z.number().int().positive().optional(),
  device: z.enum(['cpu', 'cuda']).default('cpu'),
  /** 'auto' (native when built, else portable), 'portable' or 'native' */
  backend: z.enum(['auto', 'portable', 'native']).default('auto'),
  /**
   * Name prefix of the LM weights: '' for DeepseekV2ForCausalLM, 'language.' inside DeepSeek-VL2.
   * Default: detected from the checkpoint.
   */
  prefix: z.string().optional(),
  /** config object to use instead of `<dir>/config.json` (e.g. VL2's `language_config`) */
  config: z.record(z.string(), z.unknown()).optional(),
  /**
   * MLA attention form: 'absorbed' (attend over the cached latent, weights absorbed), 'naive'
   * (decompress k/v), or 'auto' (cheaper of the two per call; decode is always absorbed).
   */
  mlaMode: z.enum(['auto', 'absorbed', 'naive']).default('auto'),
  /**
   * Use these kernels instead of choosing by `device`/`backend` (a custom backend, or a CUDA backend made
   * from another build). Kernels with device ops (device 'cuda') get the device-resident forward pass.
   */
  kernels: z.custom<Kernels>((v) => typeof v === 'object' && v !== null && typeof (v as Kernels).linear === 'function', 'kernels must implement the Kernels contract').optional(),
  /**
   * device 'cuda': where the routed experts live. 'gpu' (default): all on the GPU; 'cpu': all in host memory on
   * the CPU kernels (only the token activations cross the bus, per MoE layer); 'auto': as many MoE layers' experts
   * on the GPU as its memory holds, the first layers' on the CPU. Like llama.cpp's --cpu-moe / --n-cpu-moe.
   */
  expertsOn: z.enum(['gpu', 'cpu', 'auto']).optional(),
  /** device 'cuda': keep the routed experts of the first N MoE layers on the CPU (llama.cpp's --n-cpu-moe) */
  cpuExpertLayers: z.number().int().nonnegative().optional(),
  /** receives 'load language model' progress events (one per layer); they also go to the core progress bus */
  onProgress: z.custom<ProgressListener>((v) => typeof v === 'function', 'onProgress must be a function').optional(),
}).strict();
export type LoadOptions = z.input<typeof loadOptionsSchema>;

/** One sequence of a forward call: token ids or precomputed input embeddings [T, H]. */
export interface ForwardInput {
  inputIds?: ArrayLike<number>;
  /** [T, H] row-major (Tensor or Float32Array); replaces the embedding lookup (e.g. image tokens) */
  inputsEmbeds?: Tensor | Float32Array;
  /** continue this cache (positions start at cache.length); it is extended in place */
  cache?: KvCache;
}

/** What to return besides logits. */
export interface ForwardOptions {
  /** residual stream after the embeddings and after each layer: [L+1, T, H] */
  outputHiddenStates?: boolean;
  /** router top-k per MoE layer */
  outputRouter?: boolean;
  /** logits of the last position only ([1, V]) */
  lastOnly?: boolean;
}

/** Router decisions of one MoE layer for the rows of one sequence. */
export interface RouterOutput { layer: number; topkIdx: Int32Array; topkWeight: Float32Array; scores: Float32Array; topK: number; nExperts: number }

/** Result of a forward pass over one sequence. */
export interface ForwardOutput {
  /** [T, vocab] (or [1, vocab] with lastOnly) */
  logits: Tensor<'f32'>;
  hiddenStates?: Tensor<'f32'>;
  router?: RouterOutput[];
}

const DISPOSED = 'this MoeLanguageModel was disposed; load it again';


/**
 * A DeepSeek-V2-family Mixture-of-Experts decoder (DeepseekV2ForCausalLM, also the LM of DeepSeek-VL2)
 * running on the kernels of @kestrel/native. All math goes through the `Kernels` interface.
 */
export class MoeLanguageModel implements GenerationHost {
  private disposed = false;
  /** the device-resident forward pass, when the kernels have device ops (device 'cuda') */
  private runner: DeviceRunner | null = null;
  /** where each layer's routed experts live (device 'cuda' with expertsOn / cpuExpertLayers), else null */
  expertPlacement: ExpertPlacement | null = null;
  /** the checkpoint's tokenizer.json, when it has one */
  tokenizer: TextTokenizer | null = null;
  /** ids that end generation with stopOnEos (generation_config.json, else config.json) */
  eosIds: readonly number[] = [];
  private constructor(
    /** validated configuration and derived geometry */
    readonly config: ModelConfig,
    /** the kernels in use */
    readonly kernels: Kernels,
    readonly dtype: ModelDType,
    private readonly embedTable: PreparedLinear,
    private readonly layers: Layer[],
    private readonly finalNorm: Float32Array,
    private readonly lmHead: PreparedLinear,
    private readonly ropeTables: RopeTables,
    private readonly mlaMode: 'auto' | 'absorbed' | 'naive',
    /** the checkpoint directory */
    readonly dir: string,
  ) {}

  /**
   * Load a DeepseekV2ForCausalLM checkpoint directory (config.json + model.safetensors or a sharded
   * index), or the language model inside a DeepSeek-VL2 checkpoint (`prefix: 'language.'`).
   */
  static async load(dir: string, options?: LoadOptions): Promise<MoeLanguageModel> {
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
      let placement: ExpertPlacement | null = null;
      let cpuKernels: Kernels | null = null;
      if (onCuda && (o.expertsOn !== undefined || o.cpuExpertLayers !== undefined)) {
        placement = planExperts(cfg, o.dtype, o.expertsOn ?? 'gpu', o.cpuExpertLayers, (kernels as Partial<CudaKernels>).device?.totalMem);
        if (placement.expertLayersOnCpu > 0) cpuKernels = await getKernels({ backend: o.backend, ...(o.threads !== undefined ? { threads: o.threads } : {}) });
      }
      const model = await MoeLanguageModel.build(dir, cfg, file, prefix, o.dtype, kernels, o.mlaMode, o.onProgress, placement, cpuKernels);
      model.tokenizer = await TextTokenizer.load(dir);
      model.eosIds = cfg.eosIds;
      const gen = await readFile(join(dir, 'generation_config.json'), 'utf8').then((t) => JSON.parse(t) as { eos_token_id?: unknown }, () => null);
      const ge = gen?.eos_token_id;
      if (typeof ge === 'number') model.eosIds = [ge];
      else if (Array.isArray(ge) && ge.every((v) => typeof v === 'number')) model.eosIds = ge as number[];
      return model;
    } finally {
      await file.close();
    }
  }

  private static async build(dir: string, cfg: ModelConfig, file: SafetensorsFile, prefix: string, dtype: ModelDType, kernels: Kernels, mlaMode: 'auto' | 'absorbed' | 'naive', onProgress: ProgressListener | undefined, placement: ExpertPlacement | null, cpuKernels: Kernels | null): Promise<MoeLanguageModel> {
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
    const ropeDim = cfg.useMla ? cfg.rope : cfg.headDim;
    const tables = new RopeTables(ropeFrequencies(ropeDim, cfg.raw), Math.min(cfg.raw.max_position_embeddings, 4096));
    const model = new MoeLanguageModel(cfg, kernels, dtype, embed, layers, finalNorm, lmHead, tables, mlaMode, dir);
    model.expertPlacement = placement;
    const ops = (kernels as Partial<CudaKernels>).deviceOps;
    if (ops) model.runner = new DeviceRunner({ config: cfg, kernels, ops, layers, embedTable: embed, finalNorm, lmHead, ropeTables: tables });
    return model;
  }

  /** vocabulary size */
  get vocab(): number { return this.config.vocab; }

  /**
   * Generate new tokens for one prompt. `temperature: 0` (the default) is greedy. Returns the new
   * tokens only (and their text when the checkpoint has a tokenizer).
   */
  async generate(input: GenerateInput, options?: GenerateOptions): Promise<GenerateResult> {
    return (await this.generateBatch([input], options))[0]!;
  }

  /** Generate for several independent prompts at once (one batched forward per step). */
  async generateBatch(inputs: GenerateInput[], options?: GenerateOptions): Promise<GenerateResult[]> {
    this.check();
    let result: GenerateResult[] = [];
    for await (const _ of generateTokens(this, inputs, options, (r) => { result = r; })) { /* drain */ }
    return result;
  }

  /** Stream the new tokens of one prompt as they are chosen (an async iterator). */
  async *stream(input: GenerateInput, options?: GenerateOptions): AsyncGenerator<StreamChunk> {
    this.check();
    for await (const c of generateTokens(this, [input], options, () => undefined)) {
      yield { tokenId: c.tokenId, index: c.index, ...(c.text !== undefined ? { text: c.text } : {}) };
    }
  }

  private check(): void {
    if (this.disposed) throw new KestrelError('E_OPTIONS', DISPOSED);
  }

  /** A new empty KV cache for one sequence. */
  createCache(initialCapacity = 64): KvCache {
    this.check();
    const c = this.config;
    const widths = this.layers.map((l) => (l.attn.kind === 'mha' ? [c.nKvHeads * c.headDim, c.nKvHeads * c.headDim] : [c.kvLoraRank + c.rope]));
    return new KvCache(widths, initialCapacity);
  }

  /** Token embeddings [T, H] (e.g. to splice image embeddings in before calling forward). */
  embed(inputIds: ArrayLike<number>): Tensor<'f32'> {
    this.check();
    const ids = this.toIds(inputIds);
    const out = new Float32Array(ids.length * this.config.hidden);
    this.kernels.embedding(this.embedTable, ids, out);
    return new Tensor('f32', [ids.length, this.config.hidden], out);
  }

  private toIds(inputIds: ArrayLike<number>): Int32Array {
    const ids = Int32Array.from(inputIds as ArrayLike<number>);
    for (let i = 0; i < ids.length; i++) {
      const v = (inputIds as ArrayLike<number>)[i]!;
      if (!Number.isInteger(v) || v < 0 || v >= this.config.vocab) throw new KestrelError('E_OPTIONS', `token id ${v} at position ${i} is outside [0, ${this.config.vocab})`);
    }
    return ids;
  }

  private embedsOf(inp: ForwardInput): Float32Array {
    const H = this.config.hidden;
    if (inp.inputsEmbeds !== undefined) {
      const e = inp.inputsEmbeds;
      const data = e instanceof Float32Array ? e : (e.toF32().data);
      if (!(e instanceof Float32Array) && (e.shape.length !== 2 || e.shape[1] !== H)) throw new KestrelError('E_OPTIONS', `inputsEmbeds must have shape [T, ${H}], got [${e.shape.join(', ')}]`);
      if (data.length % H !== 0 || data.length === 0) throw new KestrelError('E_OPTIONS', `inputsEmbeds must hold T*${H} values (T >= 1), got ${data.length}`);
      return data;
    }
    if (inp.inputIds === undefined || inp.inputIds.length === 0) throw new KestrelError('E_OPTIONS', 'forward needs inputIds (at least one token) or inputsEmbeds');
    return this.embed(inp.inputIds).data;
  }

  /**
   * Run the model over one sequence. Without a cache this is a full prefill from position 0; with a
   * cache the rows continue it (and are appended to it).
   */
  forward(input: ForwardInput, options: ForwardOptions = {}): ForwardOutput {
    return this.forwardBatch([input], options)[0]!;
  }

  /**
   * Run several independent sequences in one pass: projections, norms and experts run over all rows
   * together, attention runs per sequence against its own cache.
   */
  forwardBatch(inputs: ForwardInput[], options: ForwardOptions = {}): ForwardOutput[] {
    this.check();
    if (inputs.length === 0) return [];
    // hidden states and router outputs are read per layer, which the host path does
    if (this.runner && !options.outputHiddenStates && !options.outputRouter) return this.forwardDevice(this.runner, inputs, options);
    const K = this.kernels;
    const c = this.config;
    const H = c.hidden;
    const embeds = inputs.map((i) => this.embedsOf(i));
    const lens = embeds.map((e) => e.length / H);
    const caches = inputs.map((inp, i) => inp.cache ?? this.createCache(lens[i]!));
    this.checkCaches(caches);
    for (const cc of caches) cc.syncToHost();
    const starts = caches.map((cc) => cc.length);
    const rowOff: number[] = [];
    let M = 0;
    for (const t of lens) { rowOff.push(M); M += t; }
    const x = new Float32Array(M * H);
    embeds.forEach((e, i) => x.set(e, rowOff[i]! * H));
    const positions = new Int32Array(M);
    inputs.forEach((_, i) => { for (let t = 0; t < lens[i]!; t++) positions[rowOff[i]! + t] = starts[i]! + t; });
    let maxPos = 0;
    inputs.forEach((_, i) => { caches[i]!.reserve(starts[i]! + lens[i]!); maxPos = Math.max(maxPos, starts[i]! + lens[i]!); });
    this.ropeTables.ensure(maxPos);

    const hidden: Float32Array[] | null = options.outputHiddenStates ? [x.slice()] : null;
    const routers: RouterOutput[][] = inputs.map(() => []);
    const xn = new Float32Array(M * H);
    const tmp = new Float32Array(M * H);
    for (let l = 0; l < this.layers.length; l++) {
      const layer = this.layers[l]!;
      K.rmsnorm(x, M, H, layer.inNorm, c.eps, xn);
      if (layer.attn.kind === 'mha') this.mha(l, layer.attn, xn, M, positions, caches, starts, lens, rowOff, tmp);
      else this.mla(l, layer.attn, xn, M, positions, caches, starts, lens, rowOff, tmp);
      K.add(x, tmp, x);
      K.rmsnorm(x, M, H, layer.postNorm, c.eps, xn);
      if (layer.mlp.kind === 'dense') this.denseMlp(layer.mlp, xn, M, tmp);
      else {
        const r = this.moeMlp(layer.mlp, xn, M, tmp);
        if (options.outputRouter) {
          const E = c.nRouted, Kk = c.topK;
          inputs.forEach((_, i) => {
            const a = rowOff[i]!, b = a + lens[i]!;
            routers[i]!.push({ layer: l, topK: Kk, nExperts: E, topkIdx: r.idx.slice(a * Kk, b * Kk), topkWeight: r.weight.slice(a * Kk, b * Kk), scores: r.scores.slice(a * E, b * E) });
          });
        }
      }
      K.add(x, tmp, x);
      if (hidden) hidden.push(x.slice());
    }
    inputs.forEach((_, i) => { caches[i]!.length = caches[i]!.hostRows = starts[i]! + lens[i]!; });

    // final norm + lm_head, on the rows asked for
    const outs: ForwardOutput[] = [];
    const V = c.vocab;
    for (let i = 0; i < inputs.length; i++) {
      const a = options.lastOnly ? rowOff[i]! + lens[i]! - 1 : rowOff[i]!;
      const t = options.lastOnly ? 1 : lens[i]!;
      const rows = x.subarray(a * H, (a + t) * H);
      const normed = new Float32Array(t * H);
      K.rmsnorm(rows, t, H, this.finalNorm, c.eps, normed);
      const logits = new Float32Array(t * V);
      K.linear(normed, t, this.lmHead, null, logits);
      const o: ForwardOutput = { logits: new Tensor('f32', [t, V], logits) };
      if (hidden) {
        const T = lens[i]!;
        const hs = new Float32Array((this.layers.length + 1) * T * H);
        hidden.forEach((h, j) => hs.set(h.subarray(rowOff[i]! * H, (rowOff[i]! + T) * H), j * T * H));
        o.hiddenStates = new Tensor('f32', [this.layers.length + 1, T, H], hs);
      }
      if (options.outputRouter) o.router = routers[i]!;
      outs.push(o);
    }
    return outs;
  }

  /**
   * The greedy next token of each sequence, picked on the GPU so only the ids come back (used by generate
   * for temperature 0); null when this model runs on the host path.
   */
  greedyTokens(inputs: ForwardInput[]): number[] | null {
    this.check();
    if (!this.runner || inputs.length === 0) return null;
    return this.runDevice(this.runner, inputs, true, true).map((r) => r.token!);
  }

  /** The device-resident pass: one sequence after another, each on its GPU cache. */
  private forwardDevice(runner: DeviceRunner, inputs: ForwardInput[], options: ForwardOptions): ForwardOutput[] {
    const V = this.config.vocab;
    return this.runDevice(runner, inputs, options.lastOnly === true, false).map((r) => ({ logits: new Tensor('f32', [r.logits!.length / V, V], r.logits!) }));
  }

  private runDevice(runner: DeviceRunner, inputs: ForwardInput[], lastOnly: boolean, greedy: boolean): Array<{ logits: Float32Array | null; token: number | null }> {
    const H = this.config.hidden;
    const prepared = inputs.map((inp) => {
      if (inp.inputsEmbeds !== undefined) {
        const e = this.embedsOf(inp);
        return { input: { embeds: e }, T: e.length / H };
      }
      if (inp.inputIds === undefined || inp.inputIds.length === 0) throw new KestrelError('E_OPTIONS', 'forward needs inputIds (at least one token) or inputsEmbeds');
      const ids = this.toIds(inp.inputIds);
      return { input: { ids }, T: ids.length };
    });
    const caches = inputs.map((inp, i) => inp.cache ?? this.createCache(prepared[i]!.T));
    this.checkCaches(caches);
    return prepared.map(({ input, T }, i) => {
      const cache = caches[i]!;
      const s = cache.length;
      this.ropeTables.ensure(s + T);
      const r = runner.forward(input, T, cache, lastOnly, greedy);
      cache.length = s + T;
      return r;
    });
  }

  private checkCaches(caches: KvCache[]): void {
    if (new Set(caches).size !== caches.length) throw new KestrelError('E_OPTIONS', 'each sequence of a batch needs its own KvCache');
    // a cache of this model holds [k, v] per MHA layer and [latent] per MLA layer (as createCache makes it)
    const arrays = (l: Layer): number => (l.attn.kind === 'mha' ? 2 : 1);
    for (const cc of caches) {
      if (cc.layers.length !== this.layers.length || cc.layers.some((l, i) => l.length !== arrays(this.layers[i]!))) {
        throw new KestrelError('E_OPTIONS', 'this KvCache was created by another model; use model.createCache()');
      }
    }
  }

  private mha(l: number, a: MhaWeights, xn: Float32Array, M: number, positions: Int32Array, caches: KvCache[], starts: number[], lens: number[], rowOff: number[], out: Float32Array): void {
    const K = this.kernels;
    const c = this.config;
    const hd = c.headDim, nh = c.nHeads, nkv = c.nKvHeads;
    const q = new Float32Array(M * nh * hd);
    const k = new Float32Array(M * nkv * hd);
    const v = new Float32Array(M * nkv * hd);
    K.linear(xn, M, a.q, a.qb, q);
    K.linear(xn, M, a.k, a.kb, k);
    K.linear(xn, M, a.v, a.vb, v);
    const rt = this.ropeTables;
    K.rope(q, { m: M, nHeads: nh, headStride: hd, rowStride: nh * hd, offset: 0, dim: hd, interleaved: false }, positions, rt.cos, rt.sin);
    K.rope(k, { m: M, nHeads: nkv, headStride: hd, rowStride: nkv * hd, offset: 0, dim: hd, interleaved: false }, positions, rt.cos, rt.sin);
    const attn = new Float32Array(M * nh * hd);
    const w = nkv * hd;
    for (let i = 0; i < caches.length; i++) {
      const [kc, vc] = caches[i]!.layers[l]!;
      const r0 = rowOff[i]!, t = lens[i]!, s = starts[i]!;
      kc!.set(k.subarray(r0 * w, (r0 + t) * w), s * w);
      vc!.set(v.subarray(r0 * w, (r0 + t) * w), s * w);
      K.attention(q.subarray(r0 * nh * hd, (r0 + t) * nh * hd), kc!, vc!, attn.subarray(r0 * nh * hd, (r0 + t) * nh * hd), {
        tq: t, tk: s + t, nHeads: nh, nKvHeads: nkv, dqk: hd, dv: hd,
        qStride: nh * hd, kStride: w, vStride: w, outStride: nh * hd,
        scale: 1 / Math.sqrt(hd), causal: true, qPos0: s,
      });
    }
    K.linear(attn, M, a.o, a.ob, out);
  }

  private mla(l: number, a: MlaWeights, xn: Float32Array, M: number, positions: Int32Array, caches: KvCache[], starts: number[], lens: number[], rowOff: number[], out: Float32Array): void {
    const K = this.kernels;
    const c = this.config;
    const nh = c.nHeads, nope = c.nope, rope = c.rope, dq = nope + rope, kvl = c.kvLoraRank, vh = c.vHead;
    const q = new Float32Array(M * nh * dq);
    if (a.qA) {
      const qa = new Float32Array(M * c.qLoraRank!);
      K.linear(xn, M, a.qA, a.qAb, qa);
      K.rmsnorm(qa, M, c.qLoraRank!, a.qANorm!, c.eps, qa);
      K.linear(qa, M, a.qB!, null, q);
    } else {
      K.linear(xn, M, a.q!, null, q);
    }
    const lw = kvl + rope;
    const kva = new Float32Array(M * lw);
    K.linear(xn, M, a.kvA, a.kvAb, kva);
    // normalise the latent part of each row (rows are [c | k_pe], so copy c out and back)
    const lat = new Float32Array(M * kvl);
    for (let r = 0; r < M; r++) lat.set(kva.subarray(r * lw, r * lw + kvl), r * kvl);
    K.rmsnorm(lat, M, kvl, a.kvANorm, c.eps, lat);
    for (let r = 0; r < M; r++) kva.set(lat.subarray(r * kvl, r * kvl + kvl), r * lw);
    const rt = this.ropeTables;
    K.rope(q, { m: M, nHeads: nh, headStride: dq, rowStride: nh * dq, offset: nope, dim: rope, interleaved: true }, positions, rt.cos, rt.sin);
    K.rope(kva, { m: M, nHeads: 1, headStride: lw, rowStride: lw, offset: kvl, dim: rope, interleaved: true }, positions, rt.cos, rt.sin);
    const scale = attentionMscale2(c.raw) / Math.sqrt(dq);
    const attn = new Float32Array(M * nh * vh);
    for (let i = 0; i < caches.length; i++) {
      const cache = caches[i]!.layers[l]![0]!;
      const r0 = rowOff[i]!, t = lens[i]!, s = starts[i]!, tk = s + t;
      cache.set(kva.subarray(r0 * lw, (r0 + t) * lw), s * lw);
      const qi = q.subarray(r0 * nh * dq, (r0 + t) * nh * dq);
      const oi = attn.subarray(r0 * nh * vh, (r0 + t) * nh * vh);
      // cost (multiply-adds) of the two equivalent forms; decode (t small) favours absorbed
      const absorbedCost = t * tk * nh * (2 * kvl + rope) + t * nh * 2 * nope * kvl;
      const naiveCost = tk * kvl * nh * (nope + vh) + t * tk * nh * (dq + vh);
      const absorbed = this.mlaMode === 'absorbed' || (this.mlaMode === 'auto' && absorbedCost <= naiveCost);
      if (absorbed) this.mlaAbsorbed(a, qi, t, cache, tk, s, scale, oi);
      else this.mlaNaive(a, qi, t, cache, tk, s, scale, oi);
    }
    K.linear(attn, M, a.o, a.ob, out);
  }

  /** Attention over the cached latent: q_nope is mapped into latent space by W_ukᵀ, the output back by W_uv. */
  private mlaAbsorbed(a: MlaWeights, q: Float32Array, t: number, cache: Float32Array, tk: number, s: number, scale: number, out: Float32Array): void {
    const K = this.kernels;
    const c = this.config;
    const nh = c.nHeads, nope = c.nope, rope = c.rope, dq = nope + rope, kvl = c.kvLoraRank, vh = c.vHead, lw = kvl + rope;
    const qAbs = new Float32Array(t * nh * lw);
    const qn = new Float32Array(t * nope);
    const qk = new Float32Array(t * kvl);
    for (let h = 0; h < nh; h++) {
      for (let r = 0; r < t; r++) qn.set(q.subarray(r * nh * dq + h * dq, r * nh * dq + h * dq + nope), r * nope);
      K.linear(qn, t, a.ukT[h]!, null, qk);
      for (let r = 0; r < t; r++) {
        qAbs.set(qk.subarray(r * kvl, r * kvl + kvl), r * nh * lw + h * lw);
        qAbs.set(q.subarray(r * nh * dq + h * dq + nope, r * nh * dq + (h + 1) * dq), r * nh * lw + h * lw + kvl);
      }
    }
    const o = new Float32Array(t * nh * kvl);
    K.attention(qAbs, cache, cache, o, {
      tq: t, tk, nHeads: nh, nKvHeads: 1, dqk: lw, dv: kvl,
      qStride: nh * lw, kStride: lw, vStride: lw, outStride: nh * kvl,
      scale, causal: true, qPos0: s,
    });
    const oh = new Float32Array(t * kvl);
    const vo = new Float32Array(t * vh);
    for (let h = 0; h < nh; h++) {
      for (let r = 0; r < t; r++) oh.set(o.subarray(r * nh * kvl + h * kvl, r * nh * kvl + (h + 1) * kvl), r * kvl);
      K.linear(oh, t, a.uv[h]!, null, vo);
      for (let r = 0; r < t; r++) out.set(vo.subarray(r * vh, (r + 1) * vh), r * nh * vh + h * vh);
    }
  }

  /** Attention with k/v decompressed from the cached latent by kv_b_proj (cheaper for long prefill). */
  private mlaNaive(a: MlaWeights, q: Float32Array, t: number, cache: Float32Array, tk: number, s: number, scale: number, out: Float32Array): void {
    const K = this.kernels;
    const c = this.config;
    const nh = c.nHeads, nope = c.nope, rope = c.rope, dq = nope + rope, kvl = c.kvLoraRank, vh = c.vHead, lw = kvl + rope;
    const lat = new Float32Array(tk * kvl);
    for (let j = 0; j < tk; j++) lat.set(cache.subarray(j * lw, j * lw + kvl), j * kvl);
    const kvb = new Float32Array(tk * nh * (nope + vh));
    K.linear(lat, tk, a.kvB, null, kvb);
    const kk = new Float32Array(tk * nh * dq);
    const vv = new Float32Array(tk * nh * vh);
    for (let j = 0; j < tk; j++) {
      const kpe = cache.subarray(j * lw + kvl, (j + 1) * lw);
      for (let h = 0; h < nh; h++) {
        const src = j * nh * (nope + vh) + h * (nope + vh);
        kk.set(kvb.subarray(src, src + nope), j * nh * dq + h * dq);
        kk.set(kpe, j * nh * dq + h * dq + nope);
        vv.set(kvb.subarray(src + nope, src + nope + vh), j * nh * vh + h * vh);
      }
    }
    K.attention(q, kk, vv, out, {
      tq: t, tk, nHeads: nh, nKvHeads: nh, dqk: dq, dv: vh,
      qStride: nh * dq, kStride: nh * dq, vStride: nh * vh, outStride: nh * vh,
      scale, causal: true, qPos0: s,
    });
  }

  private denseMlp(m: DenseMlp, xn: Float32Array, M: number, out: Float32Array): void {
    const K = this.kernels;
    const inter = m.gate.n;
    const g = new Float32Array(M * inter);
    const u = new Float32Array(M * inter);
    K.linear(xn, M, m.gate, null, g);
    K.linear(xn, M, m.up, null, u);
    K.swiglu(g, u, g);
    K.linear(g, M, m.down, null, out);
  }

  private moeMlp(m: MoeMlp, xn: Float32Array, M: number, out: Float32Array): { idx: Int32Array; weight: Float32Array; scores: Float32Array } {
    const K = this.kernels;
    const E = this.config.nRouted, Kk = this.config.topK, H = this.config.hidden;
    const logits = new Float32Array(M * E);
    K.linear(xn, M, m.router, null, logits);
    const idx = new Int32Array(M * Kk);
    const weight = new Float32Array(M * Kk);
    const scores = new Float32Array(M * E);
    K.moeRoute(logits, M, E, m.route, idx, weight, scores);
    // Decode: the shared experts ride in the grouped expert call where the kernels can take them.
    if (!m.expertKernels && sharedInExpertCall(K, m, xn, M, H, idx, weight, Kk, out)) return { idx, weight, scores };
    (m.expertKernels ?? K).moeExperts(xn, M, H, m.experts, idx, weight, Kk, out);
    if (m.shared) {
      const sh = new Float32Array(M * H);
      this.denseMlp(m.shared, xn, M, sh);
      K.add(out, sh, out);
    }
    return { idx, weight, scores };
  }

  /** Every prepared weight of the model (shared ones once). */
  private allWeights(): PreparedLinear[] {
    const all: PreparedLinear[] = [this.embedTable, this.lmHead];
    for (const l of this.layers) {
      const a = l.attn;
      if (a.kind === 'mha') all.push(a.q, a.k, a.v, a.o);
      else { for (const w of [a.qA, a.qB, a.q, a.kvA, a.kvB, a.o]) if (w) all.push(w); all.push(...a.ukT, ...a.uv); }
      const m = l.mlp;
      if (m.kind === 'dense') all.push(m.gate, m.up, m.down);
      else { all.push(m.router); for (const e of m.experts) all.push(e.gate, e.up, e.down); if (m.shared) all.push(m.shared.gate, m.shared.up, m.shared.down); }
    }
    return [...new Set(all)];
  }

  /** Bytes of weight matrices held in memory (buffers shared between views counted once). */
  get weightBytes(): number {
    const bufs = new Set<ArrayBufferLike>();
    for (const w of this.allWeights()) {
      bufs.add(w.data.buffer);
      if (w.format === 'q8') bufs.add(w.scales.buffer);
    }
    let b = 0;
    for (const x of bufs) b += x.byteLength;
    return b;
  }

  /** Release the weights (and any native buffers the kernels attached to them). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.runner?.dispose();
    this.runner = null;
    for (const l of this.layers) {
      const m = l.mlp;
      if (m.kind === 'moe' && m.expertKernels?.releaseLinear) for (const e of m.experts) for (const x of [e.gate, e.up, e.down]) m.expertKernels.releaseLinear(x);
    }
    const release = this.kernels.releaseLinear;
    if (release) for (const w of this.allWeights()) release.call(this.kernels, w);
    (this as unknown as { layers: Layer[] }).layers.length = 0;
  }

  /**
   * How the device-resident pass ran so far (device 'cuda'): single-token steps replayed from a captured CUDA
   * graph, graphs captured, steps run op by op, and graph captures that failed (after 3, graphs are turned off).
   * null on the host path.
   */
  get deviceStats(): { graphReplays: number; graphCaptures: number; eagerSteps: number; captureFailures: number } | null {
    return this.runner ? { ...this.runner.stats } : null;
  }

  /**
   * Device 'cuda': whether single-token steps are captured and replayed as CUDA graphs (default true, or false
   * when KESTREL_CUDA_GRAPHS=0). Turning it off runs every op as its own launch (for timing and debugging).
   */
  get cudaGraphs(): boolean {
    return this.runner?.useGraphs ?? false;
  }

  set cudaGraphs(on: boolean) {
    if (this.runner) this.runner.useGraphs = on;
    else if (on) throw new KestrelError('E_OPTIONS', "cudaGraphs needs a model on device 'cuda'");
  }

  /**
   * Device 'cuda', experimental: fused ops for steps of at most 16 rows (residual adds inside the products, each
   * dense MLP / shared-expert block in 2 launches). Off by default (KESTREL_CUDA_FUSED=1 turns it on) until a
   * GPU run has checked it; see docs/cuda.md.
   */
  get cudaFusedOps(): boolean {
    return this.runner?.useFused ?? false;
  }

  set cudaFusedOps(on: boolean) {
    if (this.runner) this.runner.useFused = on;
    else if (on) throw new KestrelError('E_OPTIONS', "cudaFusedOps needs a model on device 'cuda'");
  }

  /** Whether dispose() was called. */
  get isDisposed(): boolean { return this.disposed; }
}

/** The expert placement of a model on the GPU, from its config and the GPU's memory ('auto'). */
function planExperts(cfg: ModelConfig, dtype: ModelDType, expertsOn: 'gpu' | 'cpu' | 'auto', cpuExpertLayers: number | undefined, gpuMem: number | undefined): ExpertPlacement {
  const bpp = BYTES_PER_PARAM[dtype];
  const H = cfg.hidden;
  const expertBytesPerLayer = cfg.nRouted * 3 * H * cfg.moeIntermediate * bpp;
  // MLA also holds kv_b split per head (W_ukᵀ, W_uv) for the absorbed form
  const attn = cfg.useMla
    ? mlaAttentionParams(cfg) + cfg.nHeads * (cfg.nope + cfg.vHead) * cfg.kvLoraRank
    : (cfg.nHeads + 2 * cfg.nKvHeads) * cfg.headDim * H + H * cfg.nHeads * cfg.headDim;
  let other = (cfg.tied ? 1 : 2) * cfg.vocab * H * bpp;
  for (let l = 0; l < cfg.nLayers; l++) {
    other += attn * bpp;
    other += cfg.isMoeLayer[l] ? cfg.nShared * 3 * H * cfg.moeIntermediate * bpp + cfg.nRouted * H * 4 : 3 * H * cfg.intermediate * bpp;
  }
  const gpuBytes = gpuMem;
  return planExpertPlacement({
    expertsOn, layers: cfg.nLayers, isMoeLayer: (l) => cfg.isMoeLayer[l] === true, expertBytesPerLayer, otherBytes: other,
    ...(cpuExpertLayers !== undefined ? { cpuExpertLayers } : {}),
    // headroom for the KV cache, workspaces and the CUDA context: a tenth of the card, at least 1 GiB
    ...(gpuBytes !== undefined ? { gpuBytes, reserveBytes: Math.max(2 ** 30, gpuBytes / 10) } : {}),
  });
}
