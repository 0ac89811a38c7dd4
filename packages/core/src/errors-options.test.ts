import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { KestrelError, isKestrelError, onProgress, parseOptions, reportProgress, type ProgressEvent } from './index.js';

describe('KestrelError', () => {
  it('carries a stable code, details and cause, and serialises to JSON without the stack', () => {
    const cause = new Error('low level');
    const e = new KestrelError('E_IMAGE_DECODE', 'cannot decode x', { cause, details: { input: 'x.png' } });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('KestrelError');
    expect(e.code).toBe('E_IMAGE_DECODE');
    expect(e.cause).toBe(cause);
    expect(JSON.parse(JSON.stringify(e))).toEqual({ name: 'KestrelError', code: 'E_IMAGE_DECODE', message: 'cannot decode x', details: { input: 'x.png' } });
    expect(isKestrelError(e)).toBe(true);
    expect(isKestrelError(e, 'E_IMAGE_DECODE')).toBe(true);
    expect(isKestrelError(e, 'E_OPTIONS')).toBe(false);
    expect(isKestrelError(new Error('x'))).toBe(false);
  });
});

describe('parseOptions', () => {
  const S = z.object({ size: z.number().int().positive().default(8), mode: z.enum(['a', 'b']).default('a') });
  it('fills defaults from undefined or partial input', () => {
    expect(parseOptions(S, undefined)).toEqual({ size: 8, mode: 'a' });
    expect(parseOptions(S, { mode: 'b' })).toEqual({ size: 8, mode: 'b' });
  });
  it('turns schema failures into E_OPTIONS naming the field', () => {
    let err: unknown;
    try { parseOptions(S, { size: -1 }, 'resize options'); } catch (e) { err = e; }
    expect(isKestrelError(err, 'E_OPTIONS')).toBe(true);
    expect((err as KestrelError).message).toMatch(/^invalid resize options: size:/);
  });
});

describe('progress', () => {
  it('delivers events to the per-call listener and the bus, and unsubscribes', () => {
    const bus: ProgressEvent[] = [];
    const local: ProgressEvent[] = [];
    const off = onProgress((e) => bus.push(e));
    reportProgress({ task: 'load', done: 1, total: 2 }, (e) => local.push(e));
    off();
    reportProgress({ task: 'load', done: 2, total: 2 });
    expect(local).toEqual([{ task: 'load', done: 1, total: 2 }]);
    expect(bus).toEqual([{ task: 'load', done: 1, total: 2 }]);
  });
});
