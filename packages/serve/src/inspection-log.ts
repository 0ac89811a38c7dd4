import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { KestrelError } from '@kestrel/core';
import { migrate } from './migrations.js';
import type { Defect, Verdict } from './inspector.js';

/** What the caller supplies for one inspection; the log adds `id` order (seq) on insert. */
export interface NewInspection {
  id: string;
  /** Epoch milliseconds when the request arrived. */
  ts: number;
  station: string;
  partId: string | null;
  /** `http` (kestrel serve) or `watch` (kestrel watch). */
  source: 'http' | 'watch';
  imageSha256: string;
  imageBytes: number;
  model: { name: string; version: string };
  score: number;
  threshold: number;
  verdict: Verdict;
  defects: Defect[];
  timings: { queueMs: number; inferMs: number; totalMs: number };
  archivePath: string | null;
  /** The client's Idempotency-Key, if it sent one (unique across the log). */
  requestKey?: string | null;
}

/** One logged inspection, as the API returns it. */
export interface InspectionRecord extends Omit<NewInspection, 'ts'> {
  /** ISO 8601 time the request arrived. */
  ts: string;
}

/** Filters of {@link InspectionLog.list}. */
export interface ListQuery {
  station?: string | undefined;
  /** Restrict to these stations (a station-scoped API key); undefined = all. */
  stations?: readonly string[] | undefined;
  verdict?: Verdict | undefined;
  /** Epoch ms, inclusive. */
  since?: number | undefined;
  /** Epoch ms, exclusive. */
  until?: number | undefined;
  limit: number;
  cursor?: string | undefined;
}

/** Raw figures over a time window, for /v1/stats. */
export interface WindowFigures {
  total: number;
  ng: number;
  /** total_ms of each inspection in the window, ascending (at most `maxLatencies`, the newest). */
  latenciesMs: number[];
  firstTs: number | null;
  lastTs: number | null;
}

/** A file that kestrel watch has seen. */
export interface JournalEntry {
  key: string;
  dir: string;
  name: string;
  size: number;
  mtimeMs: number;
  sha256: string | null;
  state: 'inspected' | 'done' | 'failed';
  inspectionId: string | null;
  dest: string | null;
  error: string | null;
}

interface Row {
  seq: number; id: string; ts: number; station: string; part_id: string | null; source: string;
  image_sha256: string; image_bytes: number; model_name: string; model_version: string; score: number;
  threshold: number; verdict: Verdict; defects: string; queue_ms: number; infer_ms: number; total_ms: number;
  archive_path: string | null; request_key: string | null;
}

function toRecord(r: Row): InspectionRecord {
  return {
    id: r.id,
    ts: new Date(r.ts).toISOString(),
    station: r.station,
    partId: r.part_id,
    source: r.source as 'http' | 'watch',
    imageSha256: r.image_sha256,
    imageBytes: r.image_bytes,
    model: { name: r.model_name, version: r.model_version },
    score: r.score,
    threshold: r.threshold,
    verdict: r.verdict,
    defects: JSON.parse(r.defects) as Defect[],
    timings: { queueMs: r.queue_ms, inferMs: r.infer_ms, totalMs: r.total_ms },
    archivePath: r.archive_path,
    requestKey: r.request_key,
  };
}

function encodeCursor(seq: number): string {
  return Buffer.from(`s${seq}`).toString('base64url');
}

function decodeCursor(c: string): number {
  const m = /^s(\d{1,15})$/.exec(Buffer.from(c, 'base64url').toString('utf8'));
  if (!m) throw new KestrelError('E_OPTIONS', 'invalid cursor: pass back the `next` value of a previous page unchanged');
  return Number(m[1]);
}

/**
 * The durable inspection log: a SQLite file in WAL mode with `synchronous=FULL`, so a committed row
 * survives a process kill and a power cut. Writes are synchronous (better-sqlite3): when `insert`
 * returns, the row is on disk.
 */
export class InspectionLog {
  readonly file: string;
  readonly db: Database.Database;
  private readonly insertStmt: Database.Statement;

  private constructor(file: string, db: Database.Database) {
    this.file = file;
    this.db = db;
    this.insertStmt = db.prepare(`INSERT INTO inspections
      (id, ts, station, part_id, source, image_sha256, image_bytes, model_name, model_version, score, threshold,
       verdict, defects, queue_ms, infer_ms, total_ms, archive_path, request_key)
      VALUES (@id, @ts, @station, @partId, @source, @imageSha256, @imageBytes, @modelName, @modelVersion, @score,
       @threshold, @verdict, @defects, @queueMs, @inferMs, @totalMs, @archivePath, @requestKey)`);
  }

  /** Open (creating if needed) and migrate the log at `file` (`:memory:` for a throwaway one). */
  static open(file: string): InspectionLog {
    const path = file === ':memory:' ? file : resolve(file);
    let db: Database.Database;
    try {
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
      db = new Database(path);
    } catch (e) {
      throw new KestrelError('E_IO', `cannot open inspection log ${path}: ${(e as Error).message}`, { cause: e });
    }
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      // A second process (kestrel watch next to kestrel serve) may hold the write lock briefly.
      db.pragma('busy_timeout = 5000');
      migrate(db);
    } catch (e) {
      db.close();
      if (e instanceof KestrelError) throw e;
      throw new KestrelError('E_DATA_FORMAT', `${path} is not a usable inspection log: ${(e as Error).message}`, { cause: e });
    }
    return new InspectionLog(path, db);
  }

  private params(n: NewInspection): Record<string, unknown> {
    return {
      id: n.id, ts: n.ts, station: n.station, partId: n.partId, source: n.source, imageSha256: n.imageSha256,
      imageBytes: n.imageBytes, modelName: n.model.name, modelVersion: n.model.version, score: n.score,
      threshold: n.threshold, verdict: n.verdict, defects: JSON.stringify(n.defects), queueMs: n.timings.queueMs,
      inferMs: n.timings.inferMs, totalMs: n.timings.totalMs, archivePath: n.archivePath, requestKey: n.requestKey ?? null,
    };
  }

  /**
   * Commit one inspection. Returns once the row is durable. With a `requestKey` that is already logged,
   * nothing is written and the stored row is returned (a retried request is answered as the first was).
   */
  insert(n: NewInspection): InspectionRecord {
    if (n.requestKey) {
      const prior = this.getByRequestKey(n.requestKey);
      if (prior) return prior;
    }
    this.insertStmt.run(this.params(n));
    return { ...n, ts: new Date(n.ts).toISOString(), requestKey: n.requestKey ?? null };
  }

  /** The inspection logged under a client's Idempotency-Key, or undefined. */
  getByRequestKey(key: string): InspectionRecord | undefined {
    const r = this.db.prepare('SELECT * FROM inspections WHERE request_key = ?').get(key) as Row | undefined;
    return r ? toRecord(r) : undefined;
  }

  /** One inspection by id, or undefined. */
  get(id: string): InspectionRecord | undefined {
    const r = this.db.prepare('SELECT * FROM inspections WHERE id = ?').get(id) as Row | undefined;
    return r ? toRecord(r) : undefined;
  }

  private where(q: Omit<ListQuery, 'limit' | 'cursor'>): { sql: string; args: unknown[] } {
    const parts: string[] = [];
    const args: unknown[] = [];
    if (q.station !== undefined) { parts.push('station = ?'); args.push(q.station); }
    if (q.stations !== undefined) {
      if (q.stations.length === 0) parts.push('0');
      else { parts.push(`station IN (${q.stations.map(() => '?').join(',')})`); args.push(...q.stations); }
    }
    if (q.verdict !== undefined) { parts.push('verdict = ?'); args.push(q.verdict); }
    if (q.since !== undefined) { parts.push('ts >= ?'); args.push(q.since); }
    if (q.until !== undefined) { parts.push('ts < ?'); args.push(q.until); }
    return { sql: parts.length ? parts.join(' AND ') : '1', args };
  }

  /** Newest first, `limit` at a time; pass `next` back as `cursor` for the following page. */
  list(q: ListQuery): { items: InspectionRecord[]; next: string | null } {
    const w = this.where(q);
    let sql = `SELECT * FROM inspections WHERE ${w.sql}`;
    const args = [...w.args];
    if (q.cursor !== undefined) { sql += ' AND seq < ?'; args.push(decodeCursor(q.cursor)); }
    sql += ' ORDER BY seq DESC LIMIT ?';
    args.push(q.limit + 1);
    const rows = this.db.prepare(sql).all(...args) as Row[];
    const more = rows.length > q.limit;
    const page = more ? rows.slice(0, q.limit) : rows;
    return { items: page.map(toRecord), next: more ? encodeCursor(page[page.length - 1]!.seq) : null };
  }

  /** Counts and latencies in [since, until). */
  window(q: Omit<ListQuery, 'limit' | 'cursor'>, maxLatencies = 100_000): WindowFigures {
    const w = this.where(q);
    const c = this.db.prepare(`SELECT COUNT(*) AS total, COALESCE(SUM(verdict = 'NG'), 0) AS ng, MIN(ts) AS firstTs, MAX(ts) AS lastTs
      FROM inspections WHERE ${w.sql}`).get(...w.args) as { total: number; ng: number; firstTs: number | null; lastTs: number | null };
    const lat = (this.db.prepare(`SELECT total_ms AS ms FROM inspections WHERE ${w.sql} ORDER BY seq DESC LIMIT ?`)
      .all(...w.args, maxLatencies) as { ms: number }[]).map((r) => r.ms).sort((a, b) => a - b);
    return { total: c.total, ng: c.ng, latenciesMs: lat, firstTs: c.firstTs, lastTs: c.lastTs };
  }

  /** Number of inspections logged (all stations). */
  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM inspections').get() as { n: number }).n;
  }

  /** The journal entry of a watched file, if it was seen before. */
  journalGet(key: string): JournalEntry | undefined {
    const r = this.db.prepare('SELECT * FROM watch_journal WHERE key = ?').get(key) as
      | { key: string; dir: string; name: string; size: number; mtime_ms: number; sha256: string | null; state: JournalEntry['state']; inspection_id: string | null; dest: string | null; error: string | null }
      | undefined;
    return r && {
      key: r.key, dir: r.dir, name: r.name, size: r.size, mtimeMs: r.mtime_ms, sha256: r.sha256, state: r.state,
      inspectionId: r.inspection_id, dest: r.dest, error: r.error,
    };
  }

  /** Entries inspected but not yet moved (a crash between the commit and the move). */
  journalUnfinished(dir: string): JournalEntry[] {
    const keys = this.db.prepare("SELECT key FROM watch_journal WHERE dir = ? AND state = 'inspected'").all(dir) as { key: string }[];
    return keys.map((k) => this.journalGet(k.key)!);
  }

  /**
   * Commit an inspection of a watched file together with its journal entry, in one transaction: either
   * both are on disk or neither, so a restart re-inspects the file exactly when it was not logged.
   */
  journalInspected(entry: Pick<JournalEntry, 'key' | 'dir' | 'name' | 'size' | 'mtimeMs' | 'sha256' | 'dest'>, n: NewInspection): InspectionRecord {
    let rec!: InspectionRecord;
    this.db.transaction(() => {
      rec = this.insert(n);
      this.db.prepare(`INSERT INTO watch_journal (key, dir, name, size, mtime_ms, sha256, state, inspection_id, dest, error, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, 'inspected', ?, ?, NULL, ?)`).run(entry.key, entry.dir, entry.name, entry.size, entry.mtimeMs, entry.sha256, n.id, entry.dest, Date.now());
    })();
    return rec;
  }

  /** Record a file that cannot be inspected (not an image...), so it is not retried forever. */
  journalFailed(entry: Pick<JournalEntry, 'key' | 'dir' | 'name' | 'size' | 'mtimeMs' | 'sha256' | 'dest'>, error: string): void {
    this.db.prepare(`INSERT OR REPLACE INTO watch_journal (key, dir, name, size, mtime_ms, sha256, state, inspection_id, dest, error, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, 'failed', NULL, ?, ?, ?)`).run(entry.key, entry.dir, entry.name, entry.size, entry.mtimeMs, entry.sha256, entry.dest, error, Date.now());
  }

  /** The file has reached its destination. */
  journalDone(key: string): void {
    this.db.prepare("UPDATE watch_journal SET state = 'done', updated_at = ? WHERE key = ?").run(Date.now(), key);
  }

  /** Number of journal entries in a state (for tests and status). */
  journalCount(state?: JournalEntry['state']): number {
    const r = (state ? this.db.prepare('SELECT COUNT(*) AS n FROM watch_journal WHERE state = ?').get(state)
      : this.db.prepare('SELECT COUNT(*) AS n FROM watch_journal').get()) as { n: number };
    return r.n;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
