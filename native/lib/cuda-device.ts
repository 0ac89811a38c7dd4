/**
 * The device-pointer layer of the CUDA backend: buffers that live on the GPU and the contract's ops on them,
 * so a model can keep its activations and KV cache on the device and copy only its inputs in and its output
 * out (device-resident decode). Kernels are queued without a host wait; `download` waits for them.
 *
 * Every length the C side trusts is checked here against the buffer it points into (a {@link DeviceView}
 * knows how many elements it has left), so a wrong shape is a RangeError, never a stray device write.
 * Elements are 4 bytes (f32 activations, int32 ids/indices).
 */
import { KestrelError } from '@kestrel/core';
import type { AttentionParams, ExpertWeights, MoeRouteParams, PreparedLinear, RopeParams } from './contract.js';
import { BINARY, attentionGeometry, ropeGeometry, routeConfig, runOp, type CudaBinding } from './cuda-binding.js';
import { count, shape } from './op-checks.js';

/** Frees device buffers the program dropped without calling free(). */
const collector = new FinalizationRegistry<{ b: CudaBinding; ptr: bigint }>(({ b, ptr }) => b.dFree(ptr));

/** A GPU allocation of `length` 4-byte elements. Free it with {@link DeviceBuffer.free} (or let GC do it). */
export class DeviceBuffer {
  private freed = false;
  /** @internal use {@link DeviceOps.alloc} */
  constructor(private readonly b: CudaBinding, private readonly address: bigint, readonly length: number) {
    collector.register(this, { b, ptr: address }, this);
  }

  /** A view starting `offset` elements in. */
  at(offset = 0): DeviceView {
    shape(Number.isInteger(offset) && offset >= 0 && offset <= this.length, 'device', `offset ${offset} outside a buffer of ${this.length}`);
    return new DeviceView(this, offset);
  }

  /** The device address (throws once freed). */
  get ptr(): bigint {
    if (this.freed) throw new RangeError('cuda device: this buffer was freed');
    return this.address;
  }

  get isFreed(): boolean { return this.freed; }

  /** Free the device memory now; later use throws. */
  free(): void {
    if (this.freed) return;
    this.freed = true;
    collector.unregister(this);
    this.b.dFree(this.address);
  }
}

/** A position inside a {@link DeviceBuffer}: `length` is what is left from there. */
export class DeviceView {
  constructor(readonly buffer: DeviceBuffer, readonly offset: number) {}
  get length(): number { return this.buffer.length - this.offset; }
  get ptr(): bigint { return this.buffer.ptr + BigInt(this.offset * 4); }
  /** A view `n` elements further on. */
  at(n: number): DeviceView { return this.buffer.at(this.offset + n); }
}

/** The routed experts of one MoE layer registered as one device table (for {@link DeviceOps.moeExperts}). */
export interface DeviceExpertGroup {
  readonly nExperts: number;
  readonly h: number;
  release(): void;
}

/** A captured sequence of device ops (a CUDA graph): one call replays all of them. */
export interface DeviceGraph {
  /** the library's workspace epoch when captured: the graph is stale once {@link DeviceOps.workspaceEpoch} differs */
  readonly epoch: number;
  launch(): void;
  release(): void;
}

/** The contract's ops on device views. Shapes follow the host ops in contract.ts. */
export interface DeviceOps {
  alloc(length: number): DeviceBuffer;
  upload(dst: DeviceView, src: Float32Array | Int32Array): void;
  /** Waits for the queued work, then copies. */
  download(dst: Float32Array | Int32Array, src: DeviceView): void;
  sync(): void;
  /** Copy `length` elements. */
  copy(dst: DeviceView, src: DeviceView, length: number): void;
  /** Copy `rows` rows of `cols` elements between strided layouts. */
  copyRows(dst: DeviceView, ldd: number, src: DeviceView, lds: number, rows: number, cols: number): void;
  linear(x: DeviceView, m: number, w: PreparedLinear, bias: DeviceView | null, out: DeviceView): void;
  /** Per-group products with W [groups*n, k]: out[r*ldo + g*ogs + j] = Σ_c x[r*ldx + g*xgs + c]·W[g*n + j, c]. */
  linearGrouped(x: DeviceView, m: number, ldx: number, groups: number, xGroupStride: number, w: PreparedLinear, out: DeviceView, ldo: number, outGroupStride: number): void;
  /** rmsnorm over n elements of each of m rows with row strides ldx/ldo (in place allowed). */
  rmsnorm(x: DeviceView, m: number, n: number, ldx: number, weight: DeviceView, eps: number, out: DeviceView, ldo: number): void;
  /** ids were checked against the table by the caller (a bad id yields a NaN row). */
  embedding(table: PreparedLinear, ids: DeviceView, m: number, out: DeviceView): void;
  add(a: DeviceView, b: DeviceView, length: number, out: DeviceView): void;
  swiglu(gate: DeviceView, up: DeviceView, length: number, out: DeviceView): void;
  /** positions [m] on the device (checked by the caller); cos/sin whole tables [maxPos, dim/2] on the device. */
  rope(x: DeviceView, p: RopeParams, positions: DeviceView, cos: DeviceView, sin: DeviceView): void;
  attention(q: DeviceView, k: DeviceView, v: DeviceView, out: DeviceView, p: AttentionParams): void;
  moeRoute(logits: DeviceView, m: number, nExperts: number, p: MoeRouteParams, bias: DeviceView | null, idx: DeviceView, weight: DeviceView, scores: DeviceView): void;
  expertGroup(experts: ExpertWeights[]): DeviceExpertGroup;
  /** Routed experts; the slot sort and tiles are built on the device from idx/weight. accumulate: out += the sum. */
  moeExperts(x: DeviceView, m: number, h: number, group: DeviceExpertGroup, idx: DeviceView, weight: DeviceView, topK: number, out: DeviceView, accumulate?: boolean): void;
  /** out += x·Wᵀ (+ bias): the residual add fused into the product. m ≤ 16 rows (bf16 above that takes a GEMM that does not accumulate). */
  linearAdd(x: DeviceView, m: number, w: PreparedLinear, bias: DeviceView | null, out: DeviceView): void;
  /**
   * MLA before attention in one launch: rmsnorm of each row's latent kva[r, :kvl] (weight normW), rope of its k_pe and
   * of every head's q_pe (de-interleaved, at positions[r]), [latent | k_pe] to cache row base[0] + r (cache holds
   * `capacityRows` rows of kvl + rope), and the rotated q_pe into qAbs [T, nHeads, kvl + rope] at column kvl.
   */
  mlaPrep(q: DeviceView, kva: DeviceView, p: { T: number; nHeads: number; dq: number; nope: number; rope: number; kvl: number }, normW: DeviceView, eps: number,
    cos: DeviceView, sin: DeviceView, positions: DeviceView, base: DeviceView, cache: DeviceView, capacityRows: number, currentRow: number, qAbs: DeviceView): void;
  /** A SiLU-gated MLP from a one-expert group (see expertGroup), m ≤ 16 rows, in 2 launches: out (+)= down(silu(gate·x)·(up·x)). */
  mlp(x: DeviceView, m: number, group: DeviceExpertGroup, out: DeviceView, accumulate: boolean): void;
  /** out[r] = index of the largest value of row r (lowest among equals). */
  argmax(x: DeviceView, m: number, n: number, out: DeviceView): void;
  /**
   * Causal attention continuing a cache whose length is read on the device from base[0]: keys are rows
   * [0, base[0] + tq) of k/v. `p.tk`/`p.qPos0` give the current values for the checks; k/v must hold `maxTk` rows,
   * so a captured launch stays valid while the cache fits in them.
   */
  attentionAt(q: DeviceView, k: DeviceView, v: DeviceView, out: DeviceView, p: AttentionParams, base: DeviceView, maxTk: number): void;
  /** Append `rows` rows of `width` to `cache` at row base[0] (read on the device). */
  appendRows(cache: DeviceView, width: number, src: DeviceView, rows: number, base: DeviceView, capacityRows: number, currentRow: number): void;
  /** Counter that moves when a library workspace is reallocated (captured graphs become stale). */
  workspaceEpoch(): number;
  /** Start capturing the device ops that follow (no uploads or downloads until {@link DeviceOps.endGraph}). */
  beginGraph(): void;
  endGraph(): DeviceGraph;
  /** Start or stop the range a profiler records (`ncu --profile-from-start off`); harmless without one. */
  profilerRange(on: boolean): void;
}

interface GroupImpl extends DeviceExpertGroup { handle: unknown; released: boolean }

/** @internal the device ops of a CUDA binding; `handleOf` turns a prepared weight into its device handle. */
export function createDeviceOps(b: CudaBinding, handleOf: (w: PreparedLinear, op: string) => unknown): DeviceOps {
  const need = (v: { length: number }, n: number, op: string, what: string): void => shape(v.length >= n, op, `${what} needs ${n} elements, has ${v.length}`);
  const run = runOp;
  const groupOf = (g: DeviceExpertGroup, op: string): unknown => {
    const gi = g as GroupImpl;
    shape(typeof gi === 'object' && gi !== null && 'handle' in gi, op, 'not an expert group of this backend');
    shape(!gi.released, op, 'the expert group was released (model disposed)');
    return gi.handle;
  };
  return {
    alloc(length) {
      count(length, 'alloc', 'length');
      let p: bigint;
      try {
        p = b.dAlloc(Math.max(length, 1) * 4);
      } catch (e) {
        throw new KestrelError('E_BACKEND_UNAVAILABLE', `allocating ${(length * 4 / 2 ** 20).toFixed(1)} MiB on the GPU failed: ${(e as Error).message}`, { cause: e });
      }
      return new DeviceBuffer(b, p, length);
    },
    upload(dst, src) {
      need(dst, src.length, 'upload', 'dst');
      run('upload', () => b.dUpload(dst.ptr, src));
    },
    download(dst, src) {
      need(src, dst.length, 'download', 'src');
      run('download', () => b.dDownload(dst, src.ptr));
    },
    sync() {
      run('sync', () => b.dSync());
    },
    copy(dst, src, length) {
      count(length, 'copy', 'length');
      need(dst, length, 'copy', 'dst');
      need(src, length, 'copy', 'src');
      run('copy', () => b.dMemcpy(dst.ptr, src.ptr, length * 4));
    },
    copyRows(dst, ldd, src, lds, rows, cols) {
      for (const [v, n] of [[ldd, 'ldd'], [lds, 'lds'], [rows, 'rows'], [cols, 'cols']] as const) count(v, 'copyRows', n);
      if (rows === 0 || cols === 0) return;
      shape(cols <= ldd && cols <= lds, 'copyRows', 'cols exceeds a row stride');
      need(dst, (rows - 1) * ldd + cols, 'copyRows', 'dst');
      need(src, (rows - 1) * lds + cols, 'copyRows', 'src');
      run('copyRows', () => b.dCopyRows(dst.ptr, ldd, src.ptr, lds, rows, cols));
    },
    linear(x, m, w, bias, out) {
      count(m, 'linear', 'm');
      if (m === 0) return;
      need(x, m * w.k, 'linear', 'x');
      need(out, m * w.n, 'linear', 'out');
      if (bias) need(bias, w.n, 'linear', 'bias');
      const h = handleOf(w, 'linear');
      run('linear', () => b.dLinear(x.ptr, m, h, bias ? bias.ptr : 0n, out.ptr));
    },
    linearGrouped(x, m, ldx, groups, xgs, w, out, ldo, ogs) {
      const op = 'linearGrouped';
      for (const [v, n] of [[m, 'm'], [ldx, 'ldx'], [groups, 'groups'], [xgs, 'xGroupStride'], [ldo, 'ldo'], [ogs, 'outGroupStride']] as const) count(v, op, n);
      if (m === 0 || groups === 0) return;
      shape(w.n % groups === 0, op, `weight rows ${w.n} are not a multiple of ${groups} groups`);
      const n = w.n / groups;
      need(x, (m - 1) * ldx + (groups - 1) * xgs + w.k, op, 'x');
      need(out, (m - 1) * ldo + (groups - 1) * ogs + n, op, 'out');
      const h = handleOf(w, op);
      run(op, () => b.dLinearGrouped(x.ptr, m, ldx, groups, xgs, h, out.ptr, ldo, ogs));
    },
    rmsnorm(x, m, n, ldx, weight, eps, out, ldo) {
      for (const [v, k] of [[m, 'm'], [n, 'n'], [ldx, 'ldx'], [ldo, 'ldo']] as const) count(v, 'rmsnorm', k);
      if (m === 0) return;
      shape(n <= ldx && n <= ldo, 'rmsnorm', 'n exceeds a row stride');
      need(x, (m - 1) * ldx + n, 'rmsnorm', 'x');
      need(out, (m - 1) * ldo + n, 'rmsnorm', 'out');
      need(weight, n, 'rmsnorm', 'weight');
      run('rmsnorm', () => b.dRmsnorm(x.ptr, m, n, ldx, weight.ptr, eps, out.ptr, ldo));
    },
    embedding(table, ids, m, out) {
      count(m, 'embedding', 'm');
      if (m === 0) return;
      need(ids, m, 'embedding', 'ids');
      need(out, m * table.k, 'embedding', 'out');
      const h = handleOf(table, 'embedding');
      run('embedding', () => b.dEmbedding(h, ids.ptr, m, out.ptr));
    },
    add(a, c, length, out) {
      count(length, 'add', 'length');
      for (const v of [a, c, out]) need(v, length, 'add', 'operand');
      run('add', () => b.dBinary(BINARY.add, a.ptr, c.ptr, length, out.ptr));
    },
    swiglu(gate, up, length, out) {
      count(length, 'swiglu', 'length');
      for (const v of [gate, up, out]) need(v, length, 'swiglu', 'operand');
      run('swiglu', () => b.dBinary(BINARY.swiglu, gate.ptr, up.ptr, length, out.ptr));
    },
    rope(x, p, positions, cos, sin) {
      const geom = ropeGeometry(x, p, null, cos, sin);
      if (p.m === 0 || p.nHeads === 0) return;
      need(positions, p.m, 'rope', 'positions');
      run('rope', () => b.dRope(x.ptr, geom, positions.ptr, cos.ptr, sin.ptr));
    },
    attention(q, k, v, out, p) {
      const geom = attentionGeometry(q, k, v, out, p);
      if (p.tq === 0 || p.nHeads === 0) return;
      run('attention', () => b.dAttention(q.ptr, k.ptr, v.ptr, out.ptr, geom, p.scale));
    },
    moeRoute(logits, m, nExperts, p, bias, idx, weight, scores) {
      const cfg = routeConfig(logits, m, nExperts, p, idx, weight, scores);
      if (m === 0) return;
      if (p.method === 'noaux_tc' && bias) need(bias, nExperts, 'moeRoute', 'bias');
      run('moeRoute', () => b.dMoeRoute(logits.ptr, m, nExperts, cfg, p.method === 'noaux_tc' && bias ? bias.ptr : 0n, p.scalingFactor, idx.ptr, weight.ptr, scores.ptr));
    },
    expertGroup(experts) {
      const op = 'expertGroup';
      shape(experts.length > 0, op, 'no experts');
      const r = experts[0]!;
      const h = r.gate.k;
      for (const [e, ex] of experts.entries()) {
        shape(ex.gate.k === h && ex.up.k === h && ex.down.n === h && ex.gate.n === r.gate.n && ex.up.n === r.gate.n && ex.down.k === r.gate.n, op, `expert ${e} does not map h=${h} -> ${r.gate.n} -> h like expert 0`);
        shape(ex.gate.format === r.gate.format && ex.up.format === r.gate.format && ex.down.format === r.down.format, op, `expert ${e} differs in weight format from expert 0`);
      }
      const handles: unknown[] = [];
      for (const ex of experts) handles.push(handleOf(ex.gate, op), handleOf(ex.up, op), handleOf(ex.down, op));
      let handle: unknown;
      run(op, () => { handle = b.moeGroup(handles); });
      const g: GroupImpl = {
        nExperts: experts.length, h, handle, released: false,
        release() {
          if (g.released) return;
          g.released = true;
          b.moeGroupRelease(g.handle);
        },
      };
      return g;
    },
    moeExperts(x, m, h, group, idx, weight, topK, out, accumulate = false) {
      const op = 'moeExperts';
      count(m, op, 'm');
      count(topK, op, 'topK');
      shape(h === group.h, op, `h ${h} does not match the experts' ${group.h}`);
      if (m === 0) return;
      need(x, m * h, op, 'x');
      need(out, m * h, op, 'out');
      need(idx, m * topK, op, 'idx');
      need(weight, m * topK, op, 'weight');
      const gh = groupOf(group, op);
      run(op, () => b.dMoeExperts(x.ptr, m, h, gh, idx.ptr, weight.ptr, topK, out.ptr, accumulate ? 1 : 0));
    },
    linearAdd(x, m, w, bias, out) {
      count(m, 'linearAdd', 'm');
      if (m === 0) return;
      shape(m <= 16, 'linearAdd', `at most 16 rows, got ${m}`);
      need(x, m * w.k, 'linearAdd', 'x');
      need(out, m * w.n, 'linearAdd', 'out');
      if (bias) need(bias, w.n, 'linearAdd', 'bias');
      const h = handleOf(w, 'linearAdd');
      run('linearAdd', () => b.dLinearAdd(x.ptr, m, h, bias ? bias.ptr : 0n, out.ptr));
    },
    mlaPrep(q, kva, p, normW, eps, cos, sin, positions, base, cache, capacityRows, currentRow, qAbs) {
      const op = 'mlaPrep';
      for (const key of ['T', 'nHeads', 'dq', 'nope', 'rope', 'kvl'] as const) count(p[key], op, key);
      if (p.T === 0) return;
      shape(p.rope > 0 && p.rope % 2 === 0 && p.nope + p.rope === p.dq, op, `rope ${p.rope} must be even and nope + rope = dq`);
      shape(currentRow + p.T <= capacityRows, op, `rows ${currentRow}+${p.T} exceed the capacity ${capacityRows}`);
      const lw = p.kvl + p.rope;
      need(q, p.T * p.nHeads * p.dq, op, 'q');
      need(kva, p.T * lw, op, 'kva');
      need(normW, p.kvl, op, 'normW');
      need(positions, p.T, op, 'positions');
      need(base, 1, op, 'base');
      need(cache, capacityRows * lw, op, 'cache');
      need(qAbs, p.T * p.nHeads * lw, op, 'qAbs');
      shape(cos.length === sin.length && cos.length % (p.rope / 2) === 0, op, 'cos and sin must be tables of the same [maxPos, rope/2] shape');
      const geom = Int32Array.from([p.T, p.nHeads, p.dq, p.nope, p.rope, p.kvl]);
      run(op, () => b.dMlaPrep(q.ptr, kva.ptr, geom, normW.ptr, eps, cos.ptr, sin.ptr, positions.ptr, base.ptr, cache.ptr, qAbs.ptr));
    },
    mlp(x, m, group, out, accumulate) {
      const op = 'mlp';
      count(m, op, 'm');
      if (m === 0) return;
      shape(m <= 16, op, `at most 16 rows, got ${m}`);
      shape(group.nExperts === 1, op, 'needs a group of one expert (gate, up, down)');
      need(x, m * group.h, op, 'x');
      need(out, m * group.h, op, 'out');
      const gh = groupOf(group, op);
      run(op, () => b.dMlp(x.ptr, m, gh, out.ptr, accumulate ? 1 : 0));
    },
    attentionAt(q, k, v, out, p, base, maxTk) {
      const op = 'attentionAt';
      shape(p.causal, op, 'needs causal attention');
      count(maxTk, op, 'maxTk');
      shape(p.tk <= maxTk && p.tk - p.qPos0 === p.tq, op, `tk ${p.tk} must be qPos0 + tq and at most maxTk ${maxTk}`);
      // check against the capacity the graph may reach, not only today's length
      const geom = attentionGeometry(q, k, v, out, { ...p, tk: maxTk });
      if (p.tq === 0 || p.nHeads === 0) return;
      need(base, 1, op, 'base');
      geom[1] = p.tq;  // relative to base[0]
      geom[11] = 0;
      run(op, () => b.dAttentionAt(q.ptr, k.ptr, v.ptr, out.ptr, geom, p.scale, base.ptr, maxTk));
    },
    appendRows(cache, width, src, rows, base, capacityRows, currentRow) {
      const op = 'appendRows';
      for (const [v, n] of [[width, 'width'], [rows, 'rows'], [capacityRows, 'capacityRows'], [currentRow, 'currentRow']] as const) count(v, op, n);
      if (rows === 0) return;
      shape(currentRow + rows <= capacityRows, op, `rows ${currentRow}+${rows} exceed the capacity ${capacityRows}`);
      need(cache, capacityRows * width, op, 'cache');
      need(src, rows * width, op, 'src');
      need(base, 1, op, 'base');
      run(op, () => b.dAppendRows(cache.ptr, width, src.ptr, rows, base.ptr));
    },
    workspaceEpoch() {
      return b.wsEpoch();
    },
    profilerRange(on) {
      run('profiler', () => b.profiler(on ? 1 : 0));
    },
    beginGraph() {
      run('beginGraph', () => b.graphBegin());
    },
    endGraph() {
      let h: unknown;
      run('endGraph', () => { h = b.graphEnd(); });
      const epoch = b.wsEpoch();
      let released = false;
      return {
        epoch,
        launch() {
          shape(!released, 'graph', 'the graph was released');
          run('graphLaunch', () => b.graphLaunch(h));
        },
        release() {
          if (released) return;
          released = true;
          b.graphRelease(h);
        },
      };
    },
    argmax(x, m, n, out) {
      count(m, 'argmax', 'm');
      count(n, 'argmax', 'n');
      if (m === 0) return;
      shape(n > 0, 'argmax', 'rows must not be empty');
      need(x, m * n, 'argmax', 'x');
      need(out, m, 'argmax', 'out');
      run('argmax', () => b.dArgmax(x.ptr, m, n, out.ptr));
    },
  };
}
