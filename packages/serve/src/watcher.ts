import { createHash, randomUUID } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { z } from 'zod';
import { KestrelError, isKestrelError, parseOptions } from '@kestrel/core';
import { checkArchiveDir, extensionFor, fsyncDir, writeFileAtomic } from './archive.js';
import { StationSchema } from './config.js';
import type { InspectionLog, InspectionRecord, JournalEntry } from './inspection-log.js';
import { DEFAULT_MAX_IMAGE_PIXELS, probeImage, type Inspector } from './inspector.js';

/** Options of {@link DirectoryWatcher}. */
export const WatchOptionsSchema = z.object({
  /** The folder cameras drop images into (top level only). */
  dir: z.string().min(1),
  /** Station name logged with each inspection. */
  station: StationSchema.default('watch'),
  /** `move`: into `ok/`, `ng/` (and `rejected/` for unreadable files); `leave`: keep in place. */
  mode: z.enum(['move', 'leave']).default('move'),
  /** How often the folder is listed. */
  intervalMs: z.number().int().positive().default(500),
  /** A file is read only once its size and mtime have not changed for this long. */
  stableMs: z.number().int().min(0).default(1000),
  /** Image extensions picked up (lower case, with the dot). */
  extensions: z.array(z.string().regex(/^\.[a-z0-9]+$/)).default(['.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp']),
  maxImagePixels: z.number().int().positive().default(DEFAULT_MAX_IMAGE_PIXELS),
  /** Copy NG images here too (written atomically). */
  archiveNgDir: z.string().min(1).optional(),
}).strict();
export type WatchOptions = z.input<typeof WatchOptionsSchema>;

/** What happened to one file. */
export interface WatchEvent {
  file: string;
  record?: InspectionRecord;
  /** Where the file went (move mode). */
  dest?: string | null;
  /** Set when the file could not be inspected (moved to rejected/ in move mode). */
  error?: { code: string; message: string };
}

/** Names that are still being written by common tools: hidden files, temp and partial-download suffixes. */
const TEMP_NAME = /^\.|~$|\.(tmp|temp|part|partial|crdownload|download|filepart|swp)$/i;

/**
 * `kestrel watch`: inspect every image that appears in a folder exactly once, then move it to `ok/` or
 * `ng/`. A journal in the inspection log's database makes this survive restarts:
 *
 * - the inspection row and the journal entry are committed in one transaction, so a file is either
 *   logged (and never inspected again) or not (and inspected after a restart);
 * - the move happens after the commit; a crash in between is finished on the next start;
 * - files are read only once their size and mtime have stayed the same for `stableMs`, and temporary
 *   names (`.name`, `*.tmp`, `*.part`...) are ignored, so half-written files are never read.
 *
 * Only regular files directly inside `dir` are read (symlinks and sub-folders are skipped), so nothing
 * outside the configured folders is touched.
 */
export class DirectoryWatcher {
  readonly options: z.output<typeof WatchOptionsSchema>;
  readonly dir: string;
  private readonly seen = new Map<string, { size: number; mtimeMs: number; since: number }>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(options: WatchOptions, private readonly inspector: Inspector, private readonly log: InspectionLog, private readonly onEvent: (e: WatchEvent) => void = () => {}) {
    this.options = parseOptions(WatchOptionsSchema, options, 'watch options');
    this.dir = resolve(this.options.dir);
    if (!existsSync(this.dir) || !lstatSync(this.dir).isDirectory()) {
      throw new KestrelError('E_IO', `kestrel watch: ${this.dir} is not a folder`);
    }
    if (this.options.archiveNgDir) checkArchiveDir(this.options.archiveNgDir);
  }

  /** Finish moves interrupted by a crash (the inspection is logged; only the rename is missing). */
  recover(): number {
    let n = 0;
    for (const e of this.log.journalUnfinished(this.dir)) {
      const src = join(this.dir, e.name);
      if (e.dest && existsSync(src) && !existsSync(e.dest)) this.moveTo(src, e.dest);
      this.log.journalDone(e.key);
      n++;
    }
    return n;
  }

  /** Files that are ready now (stable, not temporary, not yet journaled). */
  private readyFiles(now: number): { name: string; size: number; mtimeMs: number }[] {
    const ready: { name: string; size: number; mtimeMs: number }[] = [];
    const present = new Set<string>();
    for (const name of readdirSync(this.dir).sort()) {
      if (TEMP_NAME.test(name) || !this.options.extensions.includes(extname(name).toLowerCase())) continue;
      let st;
      try { st = lstatSync(join(this.dir, name)); } catch { continue; }
      if (!st.isFile()) continue;
      present.add(name);
      const prev = this.seen.get(name);
      if (!prev || prev.size !== st.size || prev.mtimeMs !== st.mtimeMs) {
        this.seen.set(name, { size: st.size, mtimeMs: st.mtimeMs, since: now });
        continue;
      }
      // Unchanged since an earlier listing, for long enough, and not touched recently.
      if (now - prev.since >= this.options.stableMs && now - st.mtimeMs >= this.options.stableMs) ready.push({ name, size: st.size, mtimeMs: st.mtimeMs });
    }
    for (const k of this.seen.keys()) if (!present.has(k)) this.seen.delete(k);
    return ready;
  }

  private destFor(name: string, folder: string, id: string): string {
    const d = join(this.dir, folder);
    const plain = join(d, name);
    return existsSync(plain) ? join(d, `${id}-${name}`) : plain;
  }

  private async processFile(f: { name: string; size: number; mtimeMs: number }): Promise<WatchEvent | undefined> {
    const key = `${f.name}|${f.size}|${f.mtimeMs}`;
    const prior = this.log.journalGet(this.journalKey(key));
    if (prior) return undefined;
    const path = join(this.dir, f.name);
    const t0 = performance.now();
    const ts = Date.now();
    let bytes: Buffer;
    try { bytes = readFileSync(path); } catch { return undefined; }
    if (bytes.length !== f.size) return undefined; // changed under us: wait for it to settle again
    const sha = createHash('sha256').update(bytes).digest('hex');
    const id = randomUUID();
    const move = this.options.mode === 'move';
    const entryBase: Pick<JournalEntry, 'key' | 'dir' | 'name' | 'size' | 'mtimeMs' | 'sha256'> = { key: this.journalKey(key), dir: this.dir, name: f.name, size: f.size, mtimeMs: f.mtimeMs, sha256: sha };
    let result;
    let inferMs = 0;
    let format = 'bin';
    try {
      format = (await probeImage(bytes, this.options.maxImagePixels)).format;
      const ti = performance.now();
      result = await this.inspector.inspect(bytes);
      inferMs = performance.now() - ti;
    } catch (e) {
      if (!isKestrelError(e)) throw e;
      const dest = move ? this.destFor(f.name, 'rejected', id) : null;
      this.log.journalFailed({ ...entryBase, dest }, `${e.code}: ${e.message}`);
      if (dest) this.moveTo(path, dest);
      return { file: path, dest, error: { code: e.code, message: e.message } };
    }
    const dest = move ? this.destFor(f.name, result.verdict.toLowerCase(), id) : null;
    let archivePath: string | null = null;
    if (result.verdict === 'NG' && this.options.archiveNgDir) {
      archivePath = `${new Date(ts).toISOString().slice(0, 10)}/${id}.${extensionFor(format)}`;
      writeFileAtomic(this.options.archiveNgDir, archivePath, bytes);
    }
    const record = this.log.journalInspected({ ...entryBase, dest }, {
      id, ts, station: this.options.station, partId: f.name, source: 'watch', imageSha256: sha, imageBytes: bytes.length,
      model: this.inspector.model, score: result.score, threshold: result.threshold, verdict: result.verdict, defects: result.defects,
      timings: { queueMs: 0, inferMs, totalMs: performance.now() - t0 }, archivePath,
    });
    if (dest) this.moveTo(path, dest);
    this.log.journalDone(entryBase.key);
    return { file: path, record, dest };
  }

  /** Journal keys include the folder, so one database can serve several watched folders. */
  private journalKey(k: string): string {
    return `${this.dir}|${k}`;
  }

  private moveTo(src: string, dest: string): void {
    try {
      mkdirSync(resolve(dest, '..'), { recursive: true });
      renameSync(src, dest);
    } catch (e) {
      // e.g. DIR/ng is a file. The inspection is journaled, so a restart finishes this move (recover()).
      throw new KestrelError('E_IO', `cannot move ${src} to ${dest}: ${(e as Error).message}`, { cause: e });
    }
    fsyncDir(this.dir);
  }

  /** List the folder once and inspect every ready file. Returns how many files were handled. */
  async scanOnce(now = Date.now()): Promise<number> {
    let n = 0;
    for (const f of this.readyFiles(now)) {
      if (this.stopped) break;
      const ev = await this.processFile(f);
      if (ev) { n++; this.onEvent(ev); }
    }
    return n;
  }

  /** Recover, then poll every `intervalMs` until {@link stop}. */
  start(): void {
    this.recover();
    const tick = (): void => {
      if (this.stopped) return;
      this.running = this.scanOnce().catch((e: unknown) => this.onEvent({ file: this.dir, error: { code: 'E_IO', message: (e as Error).message } }))
        .finally(() => { if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs); });
    };
    tick();
  }

  /** Stop polling and wait for the file in progress (its record committed, its move done). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
