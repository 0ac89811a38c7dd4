/**
 * The forward pass of MoeLanguageModel kept on the GPU (device 'cuda'): weights were uploaded once at load,
 * activations, router decisions and the KV cache stay in device buffers, and a step copies in only its
 * token ids (or input embeddings) and positions, and copies out only the logits it returns, or just the
 * chosen token with `greedy`. The math mirrors host-forward.ts / host-attention.ts op for op, through the device ops of @kestrel/native.
 *
 * MLA attention always runs in the absorbed form here (attention over the cached latent); the host path may
 * pick the decompressed form for long prefills. Both are the same function; f32 rounding differs slightly.
 */
import type { DeviceBuffer, DeviceExpertGroup, DeviceGraph, DeviceOps, DeviceView, ExpertWeights, PreparedLinear, Kernels } from '@kestrel/native';
import type { ModelConfig } from './config.js';
import type { KvCache, DeviceCacheCopy } from './kv-cache.js';
import type { Layer, DenseMlp } from './layers.js';
import { attentionMscale2, type RopeTables } from './rope-tables.js';
import { stackRows } from './weights.js';

/** What the runner needs of the model. */
export interface DeviceModelParts {
  config: ModelConfig;
  kernels: Kernels;
  ops: DeviceOps;
  layers: Layer[];
  embedTable: PreparedLinear;
  finalNorm: Float32Array;
  lmHead: PreparedLinear;
  ropeTables: RopeTables;
}

interface LayerDev {
  inNorm: DeviceBuffer;
  postNorm: DeviceBuffer;
  qANorm: DeviceBuffer | null;
  kvANorm: DeviceBuffer | null;
  bias: Map<string, DeviceBuffer>;
  /** MLA: W_ukᵀ of all heads [nh*kvl, nope] and W_uv [nh*vh, kvl], stacked for one launch each */
  ukT: PreparedLinear | null;
  uv: PreparedLinear | null;
  experts: DeviceExpertGroup | null;
  routeBias: DeviceBuffer | null;
  /** the dense MLP, or the shared experts, as a one-expert group for the fused path (ops.mlp) */
  mlpGroup: DeviceExpertGroup | null;
}

/** The GPU copy of one sequence's KV cache: per layer [latent|k_pe] rows (MLA) or k and v rows (MHA). */
class DeviceKv implements DeviceCacheCopy {
  rows = 0;
  cap = 0;
  /** the captured decode step of this sequence and what it was captured for */
  graph: DeviceGraph | null = null;
  graphKey = '';
  /** the key of the last step run without a graph (the next step with that key is captured) */
  warmKey = '';
  /** the runner whose buffers the graph holds: another model continuing this cache must not replay it */
  owner: object | null = null;
  bufs: DeviceBuffer[][];
  constructor(private readonly ops: DeviceOps, private readonly widths: number[][]) {
    this.bufs = widths.map((ws) => ws.map(() => ops.alloc(0)));
  }
  reserve(n: number): void {
    if (n <= this.cap) return;
    const cap = Math.max(n, this.cap * 2, 64);
    for (let l = 0; l < this.bufs.length; l++) {
      for (let j = 0; j < this.bufs[l]!.length; j++) {
        const w = this.widths[l]![j]!;
        const nb = this.ops.alloc(cap * w);
        const old = this.bufs[l]![j]!;
        if (this.rows > 0) this.ops.copy(nb.at(), old.at(), this.rows * w);
        old.free();
        this.bufs[l]![j] = nb;
      }
    }
    this.cap = cap;
  }
  push(cache: KvCache, from: number, to: number): void {
    for (let l = 0; l < this.bufs.length; l++) {
      for (let j = 0; j < this.bufs[l]!.length; j++) {
        const w = this.widths[l]![j]!;
        this.ops.upload(this.bufs[l]![j]!.at(from * w), cache.layers[l]![j]!.subarray(from * w, to * w));
      }
    }
  }
  pull(cache: KvCache, from: number, to: number): void {
    for (let l = 0; l < this.bufs.length; l++) {
      for (let j = 0; j < this.bufs[l]!.length; j++) {
        const w = this.widths[l]![j]!;
        this.ops.download(cache.layers[l]![j]!.subarray(from * w, to * w), this.bufs[l]![j]!.at(from * w));
      }
    }
  }
  release(): void {
    this.graph?.release();
    this.graph = null;
    for (const l of this.bufs) for (const b of l) b.free();
    this.rows = 0;
    this.cap = 0;
  }
}

/** Named scratch buffers that grow (never shrink) with the rows of a call. */
class Scratch {
  private readonly bufs = new Map<string, DeviceBuffer>();
  /** bumped on every reallocation: graphs that hold the old addresses are stale */
  generation = 0;
  constructor(private readonly ops: DeviceOps) {}
  get(name: string, length: number): DeviceView {
    let b = this.bufs.get(name);
    if (!b || b.length < length) {
      b?.free();
      this.generation++;
      b = this.ops.alloc(Math.max(length, b ? Math.ceil(b.length * 1.5) : 0));
      this.bufs.set(name, b);
    }
    return b.at();
  }
  free(): void {
    for (const b of this.bufs.values()) b.free();
    this.bufs.clear();
  }
}

/** Runs MoeLanguageModel's forward pass on device buffers. */
export class DeviceRunner {
  private readonly dev: LayerDev[] = [];
  private readonly finalNorm: DeviceBuffer;
  private readonly scratch: Scratch;
  private cos: DeviceBuffer | null = null;
  private sin: DeviceBuffer | null = null;
  private ropeSrc: Float32Array | null = null;
  private ropeGen = 0;
  private readonly owned: PreparedLinear[] = [];
  /** some layer's routed experts run on the CPU: steps copy activations down and up, so they are not graphed */
  private readonly hostExperts: boolean;
  /** decode steps replayed from a CUDA graph, graphs captured, steps run op by op, and captures that failed (3 turn graphs off) */
  readonly stats = { graphReplays: 0, graphCaptures: 0, eagerSteps: 0, captureFailures: 0 };
  /** capture single-token steps as CUDA graphs (KESTREL_CUDA_GRAPHS=0 turns it off; so do experts on the CPU) */
  useGraphs = process.env.KESTREL_CUDA_GRAPHS !== '0';
  /**
   * Fused ops for calls of at most 16 rows: residual adds inside the products (o_proj, routed experts' combine)
   * and each dense MLP / shared-expert block in 2 launches. Off by default until a GPU run has checked it
   * (KESTREL_CUDA_FUSED=1 turns it on).
   */
  useFused = process.env.KESTREL_CUDA_FUSED === '1';

  constructor(private readonly p: DeviceModelParts) {
    const { ops, kernels } = p;
    const vec = (v: Float32Array): DeviceBuffer => {
      const b = ops.alloc(v.length);
      ops.upload(b.at(), v);
      return b;
    };
    this.scratch = new Scratch(ops);
    this.finalNorm = vec(p.finalNorm);
    this.hostExperts = p.layers.some((l) => l.mlp.kind === 'moe' && l.mlp.expertKernels !== null);
    for (const layer of p.layers) {
      const a = layer.attn;
      const bias = new Map<string, DeviceBuffer>();
      const addBias = (name: string, v: Float32Array | null): void => { if (v) bias.set(name, vec(v)); };
      let ukT: PreparedLinear | null = null;
      let uv: PreparedLinear | null = null;
      if (a.kind === 'mha') {
        addBias('q', a.qb); addBias('k', a.kb); addBias('v', a.vb); addBias('o', a.ob);
      } else {
        addBias('qA', a.qAb); addBias('kvA', a.kvAb); addBias('o', a.ob);
        ukT = kernels.prepareLinear(stackRows(a.ukT));
        uv = kernels.prepareLinear(stackRows(a.uv));
        this.owned.push(ukT, uv);
      }
      const m = layer.mlp;
      this.dev.push({
        inNorm: vec(layer.inNorm),
        postNorm: vec(layer.postNorm),
        qANorm: a.kind === 'mla' && a.qANorm ? vec(a.qANorm) : null,
        kvANorm: a.kind === 'mla' ? vec(a.kvANorm) : null,
        bias, ukT, uv,
        // experts placed on the CPU (expertsOn) stay in host memory and run on the CPU kernels
        experts: m.kind === 'moe' && !m.expertKernels ? ops.expertGroup(m.experts) : null,
        routeBias: m.kind === 'moe' && m.route.bias ? vec(m.route.bias) : null,
        mlpGroup: m.kind === 'dense' ? ops.expertGroup([m]) : m.shared ? ops.expertGroup([m.shared]) : null,
      });
    }
  }

  private ropeTables(): { cos: DeviceView; sin: DeviceView } {
    const rt = this.p.ropeTables;
    if (this.ropeSrc !== rt.cos) {
      this.cos?.free();
      this.sin?.free();
      this.cos = this.p.ops.alloc(rt.cos.length);
      this.sin = this.p.ops.alloc(rt.sin.length);
      this.p.ops.upload(this.cos.at(), rt.cos);
      this.p.ops.upload(this.sin.at(), rt.sin);
      this.ropeSrc = rt.cos;
      this.ropeGen++;
    }
    return { cos: this.cos!.at(), sin: this.sin!.at() };
  }

  /**
   * One sequence: T rows (ids, or embeds [T, H]) continuing `cache` (its length is the first position).
   * Returns the logits of every row, or of the last row only, or (greedy) just the argmax of the last row.
   * The caller has validated ids and reserved the rope tables; it updates cache.length afterwards.
   * Single-token steps are captured as a CUDA graph per sequence and replayed (one launch per token).
   */
  forward(input: { ids: Int32Array } | { embeds: Float32Array }, T: number, cache: KvCache, lastOnly: boolean, greedy: boolean): { logits: Float32Array | null; token: number | null } {
    const { ops, config: c } = this.p;
    const H = c.hidden;
    const s = cache.length;
    let kv = cache.device as DeviceKv | null;
    if (!(kv instanceof DeviceKv)) {
      kv = new DeviceKv(ops, cache.rowWidths);
      cache.device = kv;
    }
    if (kv.owner !== this) {
      kv.graph?.release();
      kv.graph = null;
      kv.graphKey = kv.warmKey = '';
      kv.owner = this;
    }
    kv.reserve(s + T);
    if (kv.rows < s) {
      // rows written by the host path (e.g. a forward that asked for hidden states) go up first
      cache.syncToHost();
      kv.push(cache, kv.rows, s);
      kv.rows = s;
    }
    const S = this.scratch;
    const byIds = 'ids' in input;
    const rows = lastOnly || greedy ? 1 : T;
    // inputs: uploads stay outside any graph (a graph replays device work only)
    const x = S.get('x', T * H);
    if ('ids' in input) ops.upload(S.get('ids', T), input.ids);
    else ops.upload(x, input.embeds);
    const positions = new Int32Array(T);
    for (let t = 0; t < T; t++) positions[t] = s + t;
    ops.upload(S.get('pos', T), positions);
    const rope = this.ropeTables();

    const key = (): string => `${kv.cap}/${S.generation}/${this.ropeGen}/${ops.workspaceEpoch()}/${byIds}/${rows}/${greedy}/${this.useFused}`;
    const body = (): void => this.body(kv, s, T, byIds, rows, greedy, rope);
    if (T === 1 && this.useGraphs && !this.hostExperts) {
      const k0 = key();
      if (kv.graph && kv.graphKey === k0) {
        kv.graph.launch();
        this.stats.graphReplays++;
      } else if (kv.warmKey === k0) {
        kv.graph?.release();
        kv.graph = null;
        ops.beginGraph();
        try {
          body();
        } catch (e) {
          try { ops.endGraph().release(); } catch { /* the body's error is the one to report */ }
          throw e;
        }
        let g: DeviceGraph | null = null;
        try {
          g = ops.endGraph();
        } catch {
          // e.g. a workspace moved during the capture; the captured work did not run, so run it op by op
          this.stats.captureFailures++;
          if (this.stats.captureFailures >= 3) this.useGraphs = false;
        }
        if (g) {
          kv.graph = g;
          kv.graphKey = k0;
          this.stats.graphCaptures++;
          g.launch();
        } else {
          body();
          this.stats.eagerSteps++;
          kv.warmKey = key();
        }
      } else {
        body();
        this.stats.eagerSteps++;
        kv.warmKey = key();
      }
    } else {
      body();
      this.stats.eagerSteps++;
    }

    // the download waits for the queued work: only after it succeeded do the new rows count as cached
    let out: { logits: Float32Array | null; token: number | null };
    if (greedy) {
      const tok = new Int32Array(1);
      ops.download(tok, S.get('token', 1));
      out = { logits: null, token: tok[0]! };
    } else {
      const logits = new Float32Array(rows * c.vocab);
      ops.download(logits, S.get('logits', rows * c.vocab));
      out = { logits, token: null };
    }
    kv.rows = s + T;
    return out;
  }

  /** The device work of one call: embeddings (ids) to logits, with the position read from scratch 'pos'. */
  private body(kv: DeviceKv, s: number, T: number, byIds: boolean, rows: number, greedy: boolean, rope: { cos: DeviceView; sin: DeviceView }): void {
    const { ops, config: c } = this.p;
    const H = c.hidden;
    const S = this.scratch;
    const x = S.get('x', T * H), xn = S.get('xn', T * H), tmp = S.get('tmp', T * H);
    const pos = S.get('pos', T);
    if (byIds) ops.embedding(this.p.embedTable, S.get('ids', T), T, x);
    // fused: the residual adds happen inside the products (x += ...), and dense MLPs take 2 launches
    const fused = this.useFused && T <= 16;
    for (let l = 0; l < this.p.layers.length; l++) {
      const layer = this.p.layers[l]!;
      const d = this.dev[l]!;
      ops.rmsnorm(x, T, H, H, d.inNorm.at(), c.eps, xn, H);
      const attnOut = fused ? x : tmp;
      if (layer.attn.kind === 'mha') this.mha(l, d, xn, s, T, kv, pos, rope, attnOut, fused);
      else this.mla(l, d, xn, s, T, kv, pos, rope, attnOut, fused);
      if (!fused) ops.add(x, tmp, T * H, x);
      ops.rmsnorm(x, T, H, H, d.postNorm.at(), c.eps, xn, H);
      const m = layer.mlp;
      if (m.kind === 'dense') {
        if (fused) ops.mlp(xn, T, d.mlpGroup!, x, true);
        else {
          this.dense(m, xn, T, tmp, 'mlp');
          ops.add(x, tmp, T * H, x);
        }
        continue;
      }
      const E = c.nRouted, K = c.topK;
      const logits = S.get('rlogits', T * E), idx = S.get('ridx', T * K), w = S.get('rw', T * K), scores = S.get('rscores', T * E);
      ops.linear(xn, T, m.router, null, logits);
      ops.moeRoute(logits, T, E, m.route, d.routeBias ? d.routeBias.at() : null, idx, w, scores);
      if (fused) {
        if (d.experts) ops.moeExperts(xn, T, H, d.experts, idx, w, K, x, true);
        else {
          this.expertsOnCpu(m.expertKernels!, m.experts, xn, T, idx, w, tmp);
          ops.add(x, tmp, T * H, x);
        }
        if (m.shared) ops.mlp(xn, T, d.mlpGroup!, x, true);
        continue;
      }
      if (d.experts) ops.moeExperts(xn, T, H, d.experts, idx, w, K, tmp);
      else this.expertsOnCpu(m.expertKernels!, m.experts, xn, T, idx, w, tmp);
      if (m.shared) {
        const sh = S.get('shared', T * H);
        this.dense(m.shared, xn, T, sh, 'shared');
        ops.add(tmp, sh, T * H, tmp);
      }
      ops.add(x, tmp, T * H, x);
    }
    const normed = S.get('normed', rows * H);
    ops.rmsnorm(x.at((T - rows) * H), rows, H, H, this.finalNorm.at(), c.eps, normed, H);
    const logitsDev = S.get('logits', rows * c.vocab);
    ops.linear(normed, rows, this.p.lmHead, null, logitsDev);
    if (greedy) ops.argmax(logitsDev, 1, c.vocab, S.get('token', 1));
  }

  /**
   * Routed experts kept in host memory: the normalised activations and the router's choice come down, the CPU
   * kernels run the experts, the result goes up (T*H floats each way per layer). Not capturable in a graph.
   */
  private expertsOnCpu(K: Kernels, experts: ExpertWeights[], xn: DeviceView, T: number, idx: DeviceView, w: DeviceView, out: DeviceView): void {
    const { ops, config: c } = this.p;
    const H = c.hidden, Kk = c.topK;
    const hx = new Float32Array(T * H), hi = new Int32Array(T * Kk), hw = new Float32Array(T * Kk), ho = new Float32Array(T * H);
    ops.download(hx, xn);
    ops.download(hi, idx);
    ops.download(hw, w);
    K.moeExperts(hx, T, H, experts, hi, hw, Kk, ho);
    ops.upload(out, ho);
  }

  private biasOf(d: LayerDev, name: string): DeviceView | null {
    const b = d.bias.get(name);
    return b ? b.at() : null;
  }

  /** out = o_proj(attention), or out += it with `accumulate` (the residual add fused in) */
  private mha(l: number, d: LayerDev, xn: DeviceView, s: number, T: number, kv: DeviceKv, pos: DeviceView, rope: { cos: DeviceView; sin: DeviceView }, out: DeviceView, accumulate: boolean): void {
    const { ops, config: c } = this.p;
    const a = this.p.layers[l]!.attn;
    if (a.kind !== 'mha') return;
    const hd = c.headDim, nh = c.nHeads, nkv = c.nKvHeads, w = nkv * hd;
    const S = this.scratch;
    const q = S.get('q', T * nh * hd), k = S.get('k', T * w), v = S.get('v', T * w), att = S.get('att', T * nh * hd);
    ops.linear(xn, T, a.q, this.biasOf(d, 'q'), q);
    ops.linear(xn, T, a.k, this.biasOf(d, 'k'), k);
    ops.linear(xn, T, a.v, this.biasOf(d, 'v'), v);
    ops.rope(q, { m: T, nHeads: nh, headStride: hd, rowStride: nh * hd, offset: 0, dim: hd, interleaved: false }, pos, rope.cos, rope.sin);
    ops.rope(k, { m: T, nHeads: nkv, headStride: hd, rowStride: w, offset: 0, dim: hd, interleaved: false }, pos, rope.cos, rope.sin);
    const [kc, vc] = kv.bufs[l]!;
    // the position comes from pos[0] on the device, so a captured step is valid at every position (s: the host's checks)
    ops.appendRows(kc!.at(), w, k, T, pos, kv.cap, s);
    ops.appendRows(vc!.at(), w, v, T, pos, kv.cap, s);
    ops.attentionAt(q, kc!.at(), vc!.at(), att, {
      tq: T, tk: s + T, nHeads: nh, nKvHeads: nkv, dqk: hd, dv: hd,
      qStride: nh * hd, kStride: w, vStride: w, outStride: nh * hd,
      scale: 1 / Math.sqrt(hd), causal: true, qPos0: s,
    }, pos, kv.cap);
    if (accumulate) ops.linearAdd(att, T, a.o, this.biasOf(d, 'o'), out);
    else ops.linear(att, T, a.o, this.biasOf(d, 'o'), out);
  }

  /** as mha; fused also runs the latent norm, the ropes, the cache append and the q_pe copy as one launch */
  private mla(l: number, d: LayerDev, xn: DeviceView, s: number, T: number, kv: DeviceKv, pos: DeviceView, rope: { cos: DeviceView; sin: DeviceView }, out: DeviceView, fused: boolean): void {
    const { ops, config: c } = this.p;
    const a = this.p.layers[l]!.attn;
    if (a.kind !== 'mla') return;
    const nh = c.nHeads, nope = c.nope, rp = c.rope, dq = nope + rp, kvl = c.kvLoraRank, vh = c.vHead, lw = kvl + rp;
    const S = this.scratch;
    const q = S.get('q', T * nh * dq);
    if (a.qA) {
      const qr = c.qLoraRank!;
      const qa = S.get('qa', T * qr);
      ops.linear(xn, T, a.qA, this.biasOf(d, 'qA'), qa);
      ops.rmsnorm(qa, T, qr, qr, d.qANorm!.at(), c.eps, qa, qr);
      ops.linear(qa, T, a.qB!, null, q);
    } else {
      ops.linear(xn, T, a.q!, null, q);
    }
    const kva = S.get('kva', T * lw);
    ops.linear(xn, T, a.kvA, this.biasOf(d, 'kvA'), kva);
    const cache = kv.bufs[l]![0]!;
    // absorbed query: per head [W_ukᵀ q_nope | q_pe] over the latent row [c | k_pe]
    const qAbs = S.get('qabs', T * nh * lw);
    if (fused) {
      // latent norm, both ropes, the cache append and the q_pe copy in one launch
      ops.mlaPrep(q, kva, { T, nHeads: nh, dq, nope, rope: rp, kvl }, d.kvANorm!.at(), c.eps, rope.cos, rope.sin, pos, pos, cache.at(), kv.cap, s, qAbs);
    } else {
      // normalise the latent part of each [latent | k_pe] row in place
      ops.rmsnorm(kva, T, kvl, lw, d.kvANorm!.at(), c.eps, kva, lw);
      ops.rope(q, { m: T, nHeads: nh, headStride: dq, rowStride: nh * dq, offset: nope, dim: rp, interleaved: true }, pos, rope.cos, rope.sin);
      ops.rope(kva, { m: T, nHeads: 1, headStride: lw, rowStride: lw, offset: kvl, dim: rp, interleaved: true }, pos, rope.cos, rope.sin);
      ops.appendRows(cache.at(), lw, kva, T, pos, kv.cap, s);
      ops.copyRows(qAbs.at(kvl), lw, q.at(nope), dq, T * nh, rp);
    }
    ops.linearGrouped(q, T, nh * dq, nh, dq, d.ukT!, qAbs, nh * lw, lw);
    const o = S.get('olat', T * nh * kvl);
    ops.attentionAt(qAbs, cache.at(), cache.at(), o, {
      tq: T, tk: s + T, nHeads: nh, nKvHeads: 1, dqk: lw, dv: kvl,
      qStride: nh * lw, kStride: lw, vStride: lw, outStride: nh * kvl,
      scale: attentionMscale2(c.raw) / Math.sqrt(dq), causal: true, qPos0: s,
    }, pos, kv.cap);
    const att = S.get('att', T * nh * vh);
    ops.linearGrouped(o, T, nh * kvl, nh, kvl, d.uv!, att, nh * vh, vh);
    if (fused) ops.linearAdd(att, T, a.o, this.biasOf(d, 'o'), out);
    else ops.linear(att, T, a.o, this.biasOf(d, 'o'), out);
  }

  private dense(m: DenseMlp, xn: DeviceView, T: number, out: DeviceView, tag: string): void {
    const ops = this.p.ops;
    const inter = m.gate.n;
    const g = this.scratch.get(`${tag}.g`, T * inter), u = this.scratch.get(`${tag}.u`, T * inter);
    ops.linear(xn, T, m.gate, null, g);
    ops.linear(xn, T, m.up, null, u);
    ops.swiglu(g, u, T * inter, g);
    ops.linear(g, T, m.down, null, out);
  }

  /** Free every device buffer and group this runner made (the model's own weights are released by the model). */
  dispose(): void {
    for (const d of this.dev) {
      d.inNorm.free(); d.postNorm.free(); d.qANorm?.free(); d.kvANorm?.free(); d.routeBias?.free();
      for (const b of d.bias.values()) b.free();
      d.experts?.release();
      d.mlpGroup?.release();
    }
    this.finalNorm.free();
    this.cos?.free();
    this.sin?.free();
    this.scratch.free();
    const release = this.p.kernels.releaseLinear;
    if (release) for (const w of this.owned) release.call(this.p.kernels, w);
  }
}
