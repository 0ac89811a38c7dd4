/**
 * `kestrel bench lm --profile`: where the time of a prefill and of the decode steps goes, per kernel op (linears
 * by weight shape), measured by timing every call through a thin wrapper of the kernels the model runs on.
 */
import type { Kernels } from '@kestrel/native';

/** One line of the profile: a phase's op (linears keyed by weight shape n×k), its calls and time. */
export interface ProfileRow {
  phase: string;
  op: string;
  calls: number;
  ms: number;
  /** share of the phase's wall time */
  share: number;
}

/** Kernels that time each call while a phase is set, and the report of what they saw. */
export interface KernelProfiler {
  kernels: Kernels;
  /** start timing calls under this phase name (null stops timing) */
  phase(name: string | null): void;
  /** add wall time to a phase (the share's denominator; what the kernels did not take is listed as 'outside kernels') */
  addWall(name: string, ms: number): void;
  report(): ProfileRow[];
}

type AnyFn = (...args: unknown[]) => unknown;

export function profileKernels(k: Kernels): KernelProfiler {
  let current: string | null = null;
  const acc = new Map<string, { phase: string; op: string; calls: number; ms: number }>();
  const wall = new Map<string, number>();
  const wrapped = new Map<PropertyKey, AnyFn>();
  const keyOf = (op: string, args: unknown[]): string => {
    if (op === 'linear') {
      const w = args[2] as { n: number; k: number; format: string };
      return `linear ${w.format} ${w.n}x${w.k}`;
    }
    return op;
  };
  const kernels = new Proxy(k, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function' || prop === 'prepareLinear' || prop === 'releaseLinear') return v;
      let f = wrapped.get(prop);
      if (!f) {
        const fn = v as AnyFn;
        f = (...args: unknown[]) => {
          if (current === null) return fn.apply(target, args);
          const t0 = performance.now();
          const r = fn.apply(target, args);
          const ms = performance.now() - t0;
          const op = keyOf(String(prop), args);
          const id = `${current}\u0000${op}`;
          const e = acc.get(id) ?? { phase: current, op, calls: 0, ms: 0 };
          e.calls++;
          e.ms += ms;
          acc.set(id, e);
          return r;
        };
        wrapped.set(prop, f);
      }
      return f;
    },
  });
  return {
    kernels,
    phase(name) { current = name; },
    addWall(name, ms) { wall.set(name, (wall.get(name) ?? 0) + ms); },
    report() {
      const rows: ProfileRow[] = [];
      for (const [phase, w] of wall) {
        const mine = [...acc.values()].filter((e) => e.phase === phase);
        const inKernels = mine.reduce((s, e) => s + e.ms, 0);
        for (const e of mine) rows.push({ ...e, ms: Math.round(e.ms * 100) / 100, share: Math.round((e.ms / w) * 1000) / 1000 });
        rows.push({ phase, op: 'outside kernels', calls: 0, ms: Math.round((w - inKernels) * 100) / 100, share: Math.round(((w - inKernels) / w) * 1000) / 1000 });
      }
      return rows.sort((a, b) => (a.phase === b.phase ? b.ms - a.ms : a.phase < b.phase ? 1 : -1));
    },
  };
}
