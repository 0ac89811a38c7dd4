import pg from 'pg';
import { KestrelError } from '@kestrel/core';
import type { InspectionRecord, ListQuery, NewInspection, WindowFigures } from '../records.js';
import type { InspectionStore } from '../scale-out.js';
import { migratePostgres } from './postgres-migrations.js';
import { decodeCursor, encodeCursor, toRecord, type Row } from './rows.js';

const INT8_OID = 20;
// BIGINT columns (seq, ts, sizes) hold epoch ms and counters far below 2^53: read them as numbers.
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser,
};

const COLUMNS = 'id, ts, station, part_id, source, image_sha256, image_bytes, model_name, model_version, score, threshold, verdict, defects, queue_ms, infer_ms, total_ms, archive_path, request_key';

/** Options of {@link PostgresStore.open}. */
export interface PostgresStoreOptions {
  /** Connections kept open at most (default 10). */
  maxConnections?: number;
  /** Give up connecting after this long, ms (default 10000). */
  connectTimeoutMs?: number;
}

/** A `postgres://` URL with its password hidden, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@');
}

/**
 * The inspection log in PostgreSQL, for several frontends and workers on several machines: the same
 * schema, migrations, idempotency keys, cursor paging and stats as the SQLite {@link InspectionLog}.
 * Every write is one autocommitted statement, so it is durable (synchronous_commit) when it resolves.
 */
export class PostgresStore implements InspectionStore {
  private closed = false;

  private constructor(readonly pool: pg.Pool, readonly url: string) {}

  /** Connect, check the server answers, and migrate. A refused connection is E_BACKEND_UNAVAILABLE. */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const pool = new pg.Pool({ connectionString: url, max: options.maxConnections ?? 10, connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000, types });
    // An idle connection that breaks (server restart) is dropped from the pool, never thrown at the process.
    pool.on('error', () => undefined);
    try {
      await migratePostgres(pool);
    } catch (e) {
      await pool.end().catch(() => undefined);
      if (e instanceof KestrelError) throw e;
      throw new KestrelError('E_BACKEND_UNAVAILABLE', `cannot use PostgreSQL at ${redactUrl(url)}: ${(e as Error).message}; check --store and that the server is running`, { cause: e });
    }
    return new PostgresStore(pool, url);
  }

  /** Where the store is (no password), for logs and /healthz. */
  get file(): string {
    return redactUrl(this.url);
  }

  private async q<R extends pg.QueryResultRow>(sql: string, args: unknown[] = []): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, args);
    } catch (e) {
      if (e instanceof KestrelError) throw e;
      throw new KestrelError('E_BACKEND_UNAVAILABLE', `PostgreSQL ${redactUrl(this.url)}: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * Commit one inspection; resolves once it is committed. An `id` or `requestKey` already logged writes
   * nothing and resolves to the stored row, so a re-run job or a retried request is logged once.
   */
  async insert(n: NewInspection): Promise<InspectionRecord> {
    const args = [n.id, n.ts, n.station, n.partId, n.source, n.imageSha256, n.imageBytes, n.model.name, n.model.version, n.score,
      n.threshold, n.verdict, JSON.stringify(n.defects), n.timings.queueMs, n.timings.inferMs, n.timings.totalMs, n.archivePath, n.requestKey ?? null];
    const r = await this.q<Row>(`INSERT INTO inspections (${COLUMNS}) VALUES (${args.map((_, i) => `$${i + 1}`).join(', ')})
      ON CONFLICT DO NOTHING RETURNING *`, args);
    if (r.rows[0]) return toRecord(r.rows[0]);
    const prior = await this.q<Row>('SELECT * FROM inspections WHERE id = $1 OR (request_key IS NOT NULL AND request_key = $2) ORDER BY (id = $1) DESC LIMIT 1', [n.id, n.requestKey ?? null]);
    if (!prior.rows[0]) throw new KestrelError('E_BACKEND_UNAVAILABLE', `inspection ${n.id} was neither inserted nor found; retry`);
    return toRecord(prior.rows[0]);
  }

  /** The inspection logged under a client's Idempotency-Key, or undefined. */
  async getByRequestKey(key: string): Promise<InspectionRecord | undefined> {
    const r = await this.q<Row>('SELECT * FROM inspections WHERE request_key = $1', [key]);
    return r.rows[0] ? toRecord(r.rows[0]) : undefined;
  }

  /** One inspection by id, or undefined. */
  async get(id: string): Promise<InspectionRecord | undefined> {
    const r = await this.q<Row>('SELECT * FROM inspections WHERE id = $1', [id]);
    return r.rows[0] ? toRecord(r.rows[0]) : undefined;
  }

  private where(q: Omit<ListQuery, 'limit' | 'cursor'>, args: unknown[]): string {
    const parts: string[] = [];
    const p = (v: unknown): string => { args.push(v); return `$${args.length}`; };
    if (q.station !== undefined) parts.push(`station = ${p(q.station)}`);
    if (q.stations !== undefined) parts.push(q.stations.length === 0 ? 'FALSE' : `station = ANY(${p([...q.stations])})`);
    if (q.verdict !== undefined) parts.push(`verdict = ${p(q.verdict)}`);
    if (q.since !== undefined) parts.push(`ts >= ${p(q.since)}`);
    if (q.until !== undefined) parts.push(`ts < ${p(q.until)}`);
    return parts.length ? parts.join(' AND ') : 'TRUE';
  }

  /** Newest first, `limit` at a time; pass `next` back as `cursor` for the following page. */
  async list(q: ListQuery): Promise<{ items: InspectionRecord[]; next: string | null }> {
    const args: unknown[] = [];
    let sql = `SELECT * FROM inspections WHERE ${this.where(q, args)}`;
    if (q.cursor !== undefined) { args.push(decodeCursor(q.cursor)); sql += ` AND seq < $${args.length}`; }
    args.push(q.limit + 1);
    sql += ` ORDER BY seq DESC LIMIT $${args.length}`;
    const rows = (await this.q<Row>(sql, args)).rows;
    const more = rows.length > q.limit;
    const page = more ? rows.slice(0, q.limit) : rows;
    return { items: page.map(toRecord), next: more ? encodeCursor(page[page.length - 1]!.seq) : null };
  }

  /** Counts and latencies in [since, until). */
  async window(q: Omit<ListQuery, 'limit' | 'cursor'>, maxLatencies = 100_000): Promise<WindowFigures> {
    const args: unknown[] = [];
    const w = this.where(q, args);
    const c = (await this.q<{ total: number; ng: number; first_ts: number | null; last_ts: number | null }>(
      `SELECT COUNT(*)::int AS total, COALESCE(SUM(CASE WHEN verdict = 'NG' THEN 1 ELSE 0 END), 0)::int AS ng, MIN(ts) AS first_ts, MAX(ts) AS last_ts
       FROM inspections WHERE ${w}`, args)).rows[0]!;
    args.push(maxLatencies);
    const lat = (await this.q<{ ms: number }>(`SELECT total_ms AS ms FROM inspections WHERE ${w} ORDER BY seq DESC LIMIT $${args.length}`, args))
      .rows.map((r) => r.ms).sort((a, b) => a - b);
    return { total: c.total, ng: c.ng, latenciesMs: lat, firstTs: c.first_ts, lastTs: c.last_ts };
  }

  /** Number of inspections logged (all stations). */
  async count(): Promise<number> {
    return (await this.q<{ n: number }>('SELECT COUNT(*)::int AS n FROM inspections')).rows[0]!.n;
  }

  /** Close every connection (idempotent). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
