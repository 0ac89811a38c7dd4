// Shared by the tests that run the built `kestrel` CLI as a child process or expect a KestrelError.
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { expect } from 'vitest';
import { KestrelError } from '@kestrel/core';

/** The CLI entry the tests run (needs `npm run build`). */
export const KESTREL_BIN = resolve(import.meta.dirname, '../../packages/cli/bin/kestrel.js');

/** What one `kestrel` run printed and its exit code (-1 when it was killed, e.g. by the timeout). */
export interface CliRun { code: number; out: string; err: string }

/** Run `kestrel ...args` with this Node; never rejects. */
export function runKestrel(args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliRun> {
  return new Promise((done) => {
    execFile(process.execPath, [KESTREL_BIN, ...args], { timeout: options.timeoutMs ?? 120_000, ...(options.env ? { env: options.env } : {}) },
      (e, out, err) => done({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, out, err }));
  });
}

/** Awaits `p`, expects it to reject with a KestrelError of `code`, and returns that error. */
export async function expectKestrelError(p: Promise<unknown>, code: string): Promise<KestrelError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(KestrelError);
  expect((e as KestrelError).code).toBe(code);
  return e as KestrelError;
}
