import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { KestrelError } from '@kestrel/core';
import { migrate } from './migrations.js';
import type { InspectionRecord, ListQuery, NewInspection, WindowFigures } from './records.js';
import { decodeCursor, encodeCursor, toRecord, type Row } from './stores/rows.js';

export type { NewInspection, InspectionRecord, ListQuery, WindowFigures } from './records.js';

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
   * Commit one inspection. Returns once the row is durable. With an `id` or a `requestKey` that is
   * already logged, nothing is written and the stored row is returned (a retried request or a re-run job
   * is answered as the first was).
   */
  insert(n: NewInspection): InspectionRecord {
    // A job run again (its worker was killed after the commit) carries the same id: log it once.
    const same = this.get(n.id);
    if (same) return same;
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
