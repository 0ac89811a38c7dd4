// Short CI versions of scripts/load-test.mjs and scripts/crash-test.mjs: `kestrel serve` (built CLI) as a
// child process with the real model, loaded by HTTP clients; killed with SIGKILL mid-load and restarted.
import { describe, expect, it } from 'vitest';
import { cliBuilt, qcTestModel } from './helpers/qc-model.js';

const M = qcTestModel();
const skip = M.skip !== false ? M.skip : !cliBuilt() ? 'packages/cli/dist is not built (npm run build)' : false;

interface LoadResult { ok: number; failed: number; rejected429: number; requests: number; log: { rows: number; answeredButMissing: number }; serverExit: { code: number | null }; peakRssMB: number; latencyMs: { p99: number | null } }
interface WatchCrashResult { kills: unknown[]; left: number; ok: number; ng: number; rejected: number; log: { rows: number; duplicates: number; misplaced: number; integrity: string }; pass: boolean }
interface CrashResult { answered: number; otherFailures: number; kills: unknown[]; log: { rows: number; answeredMissing: number; duplicates: number; integrity: string }; pass: boolean }

describe.skipIf(skip !== false)(`kestrel serve under load and crashes (${skip || M.model})`, () => {
  it('10 s of 8 clients: no failed request (429s allowed), every answered id logged, clean SIGTERM exit', async () => {
    // @ts-expect-error plain ESM script without types
    const { loadTest } = (await import('../scripts/load-test.mjs')) as { loadTest: (o: Record<string, string>) => Promise<LoadResult> };
    const r = await loadTest({ model: M.model!, clients: '8', duration: '10', queue: '4', concurrency: '1', images: '32' });
    expect(r.failed).toBe(0);
    expect(r.ok).toBeGreaterThan(0);
    expect(r.ok + r.rejected429).toBe(r.requests);
    expect(r.log.answeredButMissing).toBe(0);
    expect(r.log.rows).toBe(r.ok);
    expect(r.serverExit.code).toBe(0);
    expect(r.peakRssMB).toBeGreaterThan(0);
  }, 120_000);

  it('kill -9 mid-load and restart: every answered inspection is in the log exactly once', async () => {
    // @ts-expect-error plain ESM script without types
    const { crashTest } = (await import('../scripts/crash-test.mjs')) as { crashTest: (o: Record<string, string>) => Promise<CrashResult> };
    const r = await crashTest({ model: M.model!, clients: '8', duration: '10', queue: '16', kills: '1' });
    expect(r.kills).toHaveLength(1);
    expect(r.answered).toBeGreaterThan(0);
    expect(r.log.answeredMissing).toBe(0);
    expect(r.log.duplicates).toBe(0);
    expect(r.log.integrity).toBe('ok');
    expect(r.otherFailures).toBe(0);
    expect(r.pass).toBe(true);
  }, 180_000);

  it('kill -9 kestrel watch while a camera drops files, restart: each file inspected, logged and moved exactly once', async () => {
    // @ts-expect-error plain ESM script without types
    const { crashWatchTest } = (await import('../scripts/crash-test.mjs')) as { crashWatchTest: (o: Record<string, string>) => Promise<WatchCrashResult> };
    const r = await crashWatchTest({ model: M.model!, files: '6', kills: '1', rate: '4', timeoutS: '150' });
    expect(r.kills).toHaveLength(1);
    expect(r.left).toBe(0);
    expect(r.rejected).toBe(0);
    expect(r.ok + r.ng).toBe(6);
    expect(r.log).toEqual({ rows: 6, duplicates: 0, misplaced: 0, integrity: 'ok' });
    expect(r.pass).toBe(true);
  }, 200_000);
});
