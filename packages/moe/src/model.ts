import { KestrelError, Tensor } from '@kestrel/core';
import type { CudaKernels, Kernels, PreparedLinear } from '@kestrel/native';
import type { ModelConfig } from './config.js';
import { KvCache } from './kv-cache.js';
import type { ExpertPlacement } from './placement.js';
import type { Layer, ModelWeights } from './layers.js';
import { DeviceRunner } from './device-forward.js';
import type { RopeTables } from './rope-tables.js';
import type { ModelDType } from './weights.js';
import type { TextTokenizer } from './tokenizer.js';
import { generateTokens, type GenerateInput, type GenerateOptions, type GenerateResult, type StreamChunk, type GenerationHost } from './generation.js';
import { loadModel, type LoadedModel } from './loader.js';
import type { LoadOptions } from './load-options.js';
import type { ForwardInput, ForwardOptions, ForwardOutput } from './forward-types.js';
import { hostForward } from './host-forward.js';
import type { HostContext } from './host-attention.js';

export { loadOptionsSchema, type LoadOptions } from './load-options.js';
export type { ForwardInput, ForwardOptions, ForwardOutput, RouterOutput } from './forward-types.js';

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
  /** validated configuration and derived geometry */
  readonly config: ModelConfig;
  /** the kernels in use */
  readonly kernels: Kernels;
  readonly dtype: ModelDType;
  /** the checkpoint directory */
  readonly dir: string;
  /** the weights: embeddings, layers, final norm, lm_head */
  private readonly w: ModelWeights;
  private readonly ropeTables: RopeTables;
  private readonly host: HostContext;

  private constructor(m: LoadedModel) {
    this.config = m.config;
    this.kernels = m.kernels;
    this.dtype = m.dtype;
    this.dir = m.dir;
    this.w = { embedTable: m.embedTable, layers: m.layers, finalNorm: m.finalNorm, lmHead: m.lmHead };
    this.ropeTables = m.ropeTables;
    this.host = { config: m.config, kernels: m.kernels, ropeTables: m.ropeTables, mlaMode: m.mlaMode };
    this.expertPlacement = m.placement;
    this.tokenizer = m.tokenizer;
    this.eosIds = m.eosIds;
    const ops = (m.kernels as Partial<CudaKernels>).deviceOps;
    if (ops) this.runner = new DeviceRunner({ config: m.config, kernels: m.kernels, ops, layers: m.layers, embedTable: m.embedTable, finalNorm: m.finalNorm, lmHead: m.lmHead, ropeTables: m.ropeTables });
  }

  /**
   * Load a DeepseekV2ForCausalLM checkpoint directory (config.json + model.safetensors or a sharded
   * index), or the language model inside a DeepSeek-VL2 checkpoint (`prefix: 'language.'`).
   */
  static async load(dir: string, options?: LoadOptions): Promise<MoeLanguageModel> {
    return new MoeLanguageModel(await loadModel(dir, options));
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
    const widths = this.w.layers.map((l) => (l.attn.kind === 'mha' ? [c.nKvHeads * c.headDim, c.nKvHeads * c.headDim] : [c.kvLoraRank + c.rope]));
    return new KvCache(widths, initialCapacity);
  }

  /** Token embeddings [T, H] (e.g. to splice image embeddings in before calling forward). */
  embed(inputIds: ArrayLike<number>): Tensor<'f32'> {
    this.check();
    const ids = this.toIds(inputIds);
    const out = new Float32Array(ids.length * this.config.hidden);
    this.kernels.embedding(this.w.embedTable, ids, out);
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
    const H = this.config.hidden;
    const embeds = inputs.map((i) => this.embedsOf(i));
    const caches = inputs.map((inp, i) => inp.cache ?? this.createCache(embeds[i]!.length / H));
    this.checkCaches(caches);
    return hostForward(this.host, this.w, embeds, caches, options);
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
      if (cc.layers.length !== this.w.layers.length || cc.layers.some((l, i) => l.length !== arrays(this.w.layers[i]!))) {
        throw new KestrelError('E_OPTIONS', 'this KvCache was created by another model; use model.createCache()');
      }
    }
  }
  /** Every prepared weight of the model (shared ones once). */
  private allWeights(): PreparedLinear[] {
    const all: PreparedLinear[] = [this.w.embedTable, this.w.lmHead];
    for (const l of this.w.layers) {
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
    for (const l of this.w.layers) {
      const m = l.mlp;
      if (m.kind === 'moe' && m.expertKernels?.releaseLinear) for (const e of m.experts) for (const x of [e.gate, e.up, e.down]) m.expertKernels.releaseLinear(x);
    }
    const release = this.kernels.releaseLinear;
    if (release) for (const w of this.allWeights()) release.call(this.kernels, w);
    this.w.layers.length = 0;
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
