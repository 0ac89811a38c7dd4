import { onProgress, type ProgressEvent } from '@kestrel/core';

/**
 * Render progress events as a one-line bar on stderr when it is a TTY; print nothing when piped, so
 * `--json` output and logs stay clean.
 */
export function attachProgressBar(stream: NodeJS.WriteStream = process.stderr): () => void {
  if (!stream.isTTY) return () => undefined;
  let last = 0;
  let active = false;
  const render = (e: ProgressEvent): void => {
    const now = Date.now();
    const finished = e.total !== undefined && e.done >= e.total;
    if (!finished && now - last < 100) return;
    last = now;
    const width = 28;
    let line: string;
    if (e.total && e.total > 0) {
      const f = Math.min(1, e.done / e.total);
      const fill = Math.round(f * width);
      line = `${e.task} [${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ${e.done}/${e.total}`;
    } else {
      line = `${e.task} ${e.done}`;
    }
    if (e.message) line += ` ${e.message}`;
    const cols = stream.columns ?? 100;
    stream.write('\r' + line.slice(0, cols - 1).padEnd(Math.min(cols - 1, line.length + 2)));
    active = true;
    if (finished) { stream.write('\n'); active = false; }
  };
  const off = onProgress(render);
  return () => { off(); if (active) stream.write('\n'); };
}
