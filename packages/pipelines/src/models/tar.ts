import { Writable } from 'node:stream';

/** One regular file found in a tar stream. */
export interface TarFile {
  /** Path inside the archive (after pax/GNU long-name handling). */
  path: string;
  data: Buffer;
}

function field(h: Buffer, start: number, len: number): string {
  const s = h.subarray(start, start + len);
  const nul = s.indexOf(0);
  return s.subarray(0, nul < 0 ? len : nul).toString('utf8');
}

function octal(h: Buffer, start: number, len: number): number {
  // GNU base-256 sizes (files over 8 GiB) never occur in npm packages; reject rather than misparse.
  if (h[start]! & 0x80) throw new Error('tar: base-256 size field not supported');
  const s = field(h, start, len).trim();
  return s ? parseInt(s, 8) : 0;
}

/**
 * A writable that parses an (already gunzipped) tar stream and hands the regular files whose path
 * `want(path)` accepts to `onFile`; everything else is skipped without buffering. Enough of ustar, pax
 * (`path=`) and GNU long names for npm tarballs; npm's own tooling verified the bytes upstream.
 */
export function tarExtractor(want: (path: string) => boolean, onFile: (f: TarFile) => void): Writable {
  let buf: Buffer = Buffer.alloc(0);
  let state: 'header' | 'body' = 'header';
  let remaining = 0; // bytes of the current entry body (incl. padding) still to consume
  let size = 0;
  let keep = false;
  let kind = '';
  let path = '';
  let nextPath: string | undefined;
  let chunks: Buffer[] = [];
  let ended = false;

  const finishEntry = (): void => {
    const body = Buffer.concat(chunks).subarray(0, size);
    chunks = [];
    if (kind === 'x') {
      const m = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(body.toString('utf8'));
      if (m) nextPath = m[1];
    } else if (kind === 'L') {
      nextPath = body.toString('utf8').replace(/\0+$/, '');
    } else if (keep) {
      onFile({ path, data: body });
    }
  };

  const step = (): void => {
    for (;;) {
      if (ended) return;
      if (state === 'header') {
        if (buf.length < 512) return;
        const h = buf.subarray(0, 512);
        buf = buf.subarray(512);
        if (h.every((b) => b === 0)) { ended = true; return; }
        const name = field(h, 0, 100);
        const prefix = field(h, 257, 6).startsWith('ustar') ? field(h, 345, 155) : '';
        size = octal(h, 124, 12);
        kind = String.fromCharCode(h[156]!) || '0';
        if (kind === '\0') kind = '0';
        path = nextPath ?? (prefix ? `${prefix}/${name}` : name);
        if (kind !== 'x' && kind !== 'g' && kind !== 'L') nextPath = undefined;
        keep = (kind === '0' || kind === '7') && want(path);
        remaining = Math.ceil(size / 512) * 512;
        state = 'body';
        if (remaining === 0) { finishEntry(); state = 'header'; }
      } else {
        if (buf.length === 0) return;
        const take = Math.min(remaining, buf.length);
        if (keep || kind === 'x' || kind === 'L') chunks.push(buf.subarray(0, take));
        buf = buf.subarray(take);
        remaining -= take;
        if (remaining === 0) { finishEntry(); state = 'header'; }
      }
    }
  };

  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      try {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        step();
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
  });
}
