/**
 * Per-sequence KV cache. MHA layers keep k and v rows [len, nKv*headDim]; MLA layers keep, as DeepSeek
 * does, one compressed row per position: the normalised latent c (kv_lora_rank) followed by the
 * rotated shared rope key k_pe (qk_rope_head_dim).
 */
/** The GPU side of a {@link KvCache}: `rows` positions are valid there. */
export interface DeviceCacheCopy {
  rows: number;
  /** copy rows [from, to) of every layer into the host arrays of `cache` */
  pull(cache: KvCache, from: number, to: number): void;
  release(): void;
}

export class KvCache {
  /** positions already in the cache */
  length = 0;
  /** positions whose rows are in the host arrays (a device-resident model may hold newer rows on the GPU only) */
  hostRows = 0;
  /** the GPU copy kept by a model on device 'cuda' (device-forward.ts); null until such a model uses this cache */
  device: DeviceCacheCopy | null = null;
  private cap = 0;
  /** per layer: [k, v] for MHA or [latent] for MLA */
  readonly layers: Float32Array[][];
  /** @param rowWidths per layer, the width of each of its arrays (the GPU copy is laid out the same) */
  constructor(readonly rowWidths: number[][], initialCapacity = 64) {
    this.layers = rowWidths.map((ws) => ws.map(() => new Float32Array(0)));
    this.reserve(initialCapacity);
  }

  /** Make room for `n` positions in total. */
  reserve(n: number): void {
    if (n <= this.cap) return;
    const cap = Math.max(n, this.cap * 2);
    for (let l = 0; l < this.layers.length; l++) {
      const ws = this.rowWidths[l]!;
      for (let j = 0; j < ws.length; j++) {
        const a = new Float32Array(cap * ws[j]!);
        a.set(this.layers[l]![j]!.subarray(0, this.length * ws[j]!));
        this.layers[l]![j] = a;
      }
    }
    this.cap = cap;
  }

  /** Drop positions >= n (e.g. to re-run from a shared prefix). */
  truncate(n: number): void {
    this.length = Math.max(0, Math.min(this.length, n));
    this.hostRows = Math.min(this.hostRows, this.length);
    if (this.device) this.device.rows = Math.min(this.device.rows, this.length);
  }

  /** Make the host arrays hold every position (copies rows that exist only on the GPU). */
  syncToHost(): void {
    if (this.hostRows >= this.length) return;
    if (!this.device || this.device.rows < this.length) throw new Error('KvCache: rows are missing on both host and device');
    this.reserve(this.length);
    this.device.pull(this, this.hostRows, this.length);
    this.hostRows = this.length;
  }

  /** Free the GPU copy now (it is also freed when the cache is garbage-collected). */
  releaseDevice(): void {
    this.device?.release();
    this.device = null;
  }

  /** Bytes held. */
  get byteLength(): number {
    let b = 0;
    for (const l of this.layers) for (const a of l) b += a.byteLength;
    return b;
  }
}
