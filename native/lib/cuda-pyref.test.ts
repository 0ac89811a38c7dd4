/**
 * native/cuda/check_ops.py (the GPU op check, run where only Python is available) compares the CUDA ops with
 * its own float64 numpy reference. This test holds that reference to the portable TypeScript ops on the same
 * inputs (check_ops.py --emit), so a failure on the GPU points at the CUDA code, not at the reference.
 * Skipped, with the reason, where python3 with numpy is missing.
 */
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { portableKernels as P } from './portable/index.js';
import type { AttentionParams, ExpertWeights, LinearWeight, MoeRouteParams, RopeParams } from './contract.js';
import { relErr } from './cuda-check.js';

const script = fileURLToPath(new URL('../cuda/check_ops.py', import.meta.url));
const probe = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
const why = probe.error ? 'python3 not found' : probe.status !== 0 ? 'python3 has no numpy' : '';

interface Entry { name: string; op: string; tol: number; params: Record<string, unknown>; files: Record<string, { file: string; dtype: string; length: number }> }

describe.skipIf(why !== '')(`check_ops.py reference vs portable ops${why ? ` (skipped: ${why})` : ''}`, () => {
  it('every case: the numpy reference equals the portable op (rel err <= 1e-6)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kestrel-pyref-'));
    try {
      const r = spawnSync('python3', [script, '--emit', dir], { encoding: 'utf8' });
      expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
      const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Entry[];
      const load = (e: Entry, key: string): Float32Array | Float64Array | Int32Array | Int8Array | Uint16Array => {
        const f = e.files[key]!;
        const b = readFileSync(join(dir, f.file));
        const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
        const T = { float32: Float32Array, float64: Float64Array, int32: Int32Array, int8: Int8Array, uint16: Uint16Array }[f.dtype];
        if (!T) throw new Error(`dtype ${f.dtype}`);
        return new T(ab);
      };
      const f32 = (e: Entry, k: string) => load(e, `in:${k}`) as Float32Array;
      const has = (e: Entry, k: string) => `in:${k}` in e.files;
      const weight = (e: Entry, fmt: string, n: number, k: number, prefix: string): LinearWeight =>
        fmt === 'f32' ? { format: 'f32', n, k, data: load(e, `in:${prefix}_data`) as Float32Array }
          : fmt === 'bf16' ? { format: 'bf16', n, k, data: load(e, `in:${prefix}_data`) as Uint16Array }
            : { format: 'q8', n, k, data: load(e, `in:${prefix}_data`) as Int8Array, scales: load(e, `in:${prefix}_scales`) as Float32Array };
      const bad: string[] = [];
      for (const e of manifest) {
        const p = e.params as Record<string, number & string & number[] & boolean>;
        let err: number;
        if (e.op === 'moe_route') {
          const cfg = p.cfg as number[];
          const methods = ['greedy', 'group_limited_greedy', 'noaux_tc'] as const;
          const rp: MoeRouteParams = { topK: cfg[0]!, scoring: cfg[1] === 0 ? 'softmax' : 'sigmoid', method: methods[cfg[2]!]!, nGroup: cfg[3]!, topkGroup: cfg[4]!, normTopkProb: cfg[5] === 1, bias: p.bias ? f32(e, 'bias') : null, scalingFactor: p.scaling };
          const idx = new Int32Array(p.m * cfg[0]!), w = new Float32Array(p.m * cfg[0]!), s = new Float32Array(p.m * p.E);
          P.moeRoute(f32(e, 'logits'), p.m, p.E, rp, idx, w, s);
          const same = Array.from(idx).every((v, i) => v === (load(e, 'ref:idx') as Int32Array)[i]);
          err = same ? Math.max(relErr(w, load(e, 'ref:weight')), relErr(s, load(e, 'ref:scores'))) : Infinity;
        } else {
          const ref = load(e, 'ref:out') as Float64Array;
          const out = new Float32Array(ref.length);
          switch (e.op) {
            case 'linear': P.linear(f32(e, 'x'), p.m, weight(e, p.fmt, p.n, p.k, 'w'), has(e, 'bias') ? f32(e, 'bias') : null, out); break;
            case 'rmsnorm': P.rmsnorm(f32(e, 'x'), p.m, p.n, f32(e, 'w'), p.eps, out); break;
            case 'layernorm': P.layernorm(f32(e, 'x'), p.m, p.n, f32(e, 'w'), f32(e, 'b'), p.eps, out); break;
            case 'gelu_tanh': P.gelu(f32(e, 'x'), out, 'tanh'); break;
            case 'gelu_erf': P.gelu(f32(e, 'x'), out, 'erf'); break;
            case 'silu': P.silu(f32(e, 'x'), out); break;
            case 'swiglu': P.swiglu(f32(e, 'a'), f32(e, 'b'), out); break;
            case 'add': P.add(f32(e, 'a'), f32(e, 'b'), out); break;
            case 'mul': P.mul(f32(e, 'a'), f32(e, 'b'), out); break;
            case 'softmax': out.set(f32(e, 'x')); P.softmax(out, p.m, p.n); break;
            case 'embedding': P.embedding(weight(e, p.fmt, p.n, p.k, 'w'), load(e, 'in:ids') as Int32Array, out); break;
            case 'rope': {
              const g = p.geom as number[];
              const rp: RopeParams = { m: g[0]!, nHeads: g[1]!, headStride: g[2]!, rowStride: g[3]!, offset: g[4]!, dim: g[5]!, interleaved: g[6] === 1 };
              out.set(f32(e, 'x'));
              P.rope(out, rp, load(e, 'in:positions') as Int32Array, f32(e, 'cos'), f32(e, 'sin'));
              break;
            }
            case 'attention': {
              const g = p.geom as number[];
              const ap: AttentionParams = { tq: g[0]!, tk: g[1]!, nHeads: g[2]!, nKvHeads: g[3]!, dqk: g[4]!, dv: g[5]!, qStride: g[6]!, kStride: g[7]!, vStride: g[8]!, outStride: g[9]!, causal: g[10] === 1, qPos0: g[11]!, scale: p.scale };
              out.set(f32(e, 'out'));
              P.attention(f32(e, 'q'), f32(e, 'k'), f32(e, 'v'), out, ap);
              break;
            }
            case 'moe_experts': {
              const experts: ExpertWeights[] = [];
              for (let x = 0; x < p.E; x++) {
                experts.push({ gate: weight(e, p.fmt, p.inter, p.h, `e${x}_gate`), up: weight(e, p.fmt, p.inter, p.h, `e${x}_up`), down: weight(e, p.fmt, p.h, p.inter, `e${x}_down`) });
              }
              P.moeExperts(f32(e, 'x'), p.m, p.h, experts, load(e, 'in:idx') as Int32Array, f32(e, 'weight'), p.topK, out);
              break;
            }
            default: throw new Error(`unknown op ${e.op}`);
          }
          err = relErr(out, ref);
        }
        if (!(err <= 1e-6)) bad.push(`${e.name}: ${err}`);
      }
      expect(manifest.length).toBeGreaterThan(40);
      expect(bad).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
