import { Writable } from 'node:stream';
import { isKestrelError } from '@kestrel/core';
import type { CommandContext, CommandSpec } from '../command.js';

/** A writable stream that keeps what is written, for capturing a command's stdout/stderr. */
export function captureStream(): { stream: Writable; text: () => string } {
  let buf = '';
  return { stream: new Writable({ write(c, _e, cb) { buf += String(c); cb(); } }), text: () => buf };
}

/** Run one command in-process with parsed option values; resolves to what it wrote. */
export async function runCommand(
  cmd: CommandSpec,
  values: CommandContext['values'],
  positionals: string[] = [],
  json = true,
): Promise<{ out: string; err: string }> {
  const out = captureStream();
  const err = captureStream();
  await cmd.run({ values, positionals, json, debug: false, out: out.stream, err: err.stream });
  return { out: out.text(), err: err.text() };
}

/** 'ok' when the promise resolves, the KestrelError code when it rejects with one (other errors rethrow). */
export async function errorCode(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (e) { if (isKestrelError(e)) return e.code; throw e; }
  return 'ok';
}
