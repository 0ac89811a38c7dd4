import type pg from 'pg';
import { KestrelError } from '@kestrel/core';
import type { Migration } from '../migrations.js';

/**
 * The inspection log's schema history in PostgreSQL's dialect: the same versions, tables, columns and
 * indexes as the SQLite {@link MIGRATIONS} (only the types differ: BIGSERIAL for the row order, BIGINT
 * epoch ms, DOUBLE PRECISION). Append new steps in both lists together; never edit old ones.
 */
export const PG_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'inspections: one row per inspection',
    sql: `
      CREATE TABLE inspections (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        ts BIGINT NOT NULL,
        station TEXT NOT NULL,
        part_id TEXT,
        source TEXT NOT NULL,
        image_sha256 TEXT NOT NULL,
        image_bytes INTEGER NOT NULL,
        model_name TEXT NOT NULL,
        model_version TEXT NOT NULL,
        score DOUBLE PRECISION NOT NULL,
        threshold DOUBLE PRECISION NOT NULL,
        verdict TEXT NOT NULL CHECK (verdict IN ('OK', 'NG')),
        defects TEXT NOT NULL,
        queue_ms DOUBLE PRECISION NOT NULL,
        infer_ms DOUBLE PRECISION NOT NULL,
        total_ms DOUBLE PRECISION NOT NULL,
        archive_path TEXT
      );
      CREATE INDEX inspections_station_seq ON inspections (station, seq);
      CREATE INDEX inspections_verdict_seq ON inspections (verdict, seq);
      CREATE INDEX inspections_ts ON inspections (ts);
    `,
  },
  {
    version: 2,
    description: 'watch_journal: files seen by kestrel watch, so a restart neither skips nor repeats one',
    sql: `
      CREATE TABLE watch_journal (
        key TEXT PRIMARY KEY,
        dir TEXT NOT NULL,
        name TEXT NOT NULL,
        size BIGINT NOT NULL,
        mtime_ms DOUBLE PRECISION NOT NULL,
        sha256 TEXT,
        state TEXT NOT NULL CHECK (state IN ('inspected', 'done', 'failed')),
        inspection_id TEXT REFERENCES inspections (id),
        dest TEXT,
        error TEXT,
        updated_at BIGINT NOT NULL
      );
      CREATE INDEX watch_journal_state ON watch_journal (state);
    `,
  },
  {
    version: 3,
    description: 'inspections.request_key: the client Idempotency-Key, so a retried request is answered from the log, not inspected twice',
    sql: `
      ALTER TABLE inspections ADD COLUMN request_key TEXT;
      CREATE UNIQUE INDEX inspections_request_key ON inspections (request_key) WHERE request_key IS NOT NULL;
    `,
  },
];

// Any constant: every process that migrates the same database takes this advisory lock first.
const MIGRATE_LOCK = 0x4b45_5354;

/**
 * Bring a PostgreSQL database up to the latest version. Each step commits together with its
 * `schema_version` row; a transaction-scoped advisory lock makes a frontend and its workers that start
 * at once apply each step exactly once. A database from a newer build is refused.
 *
 * @returns the versions applied now (empty when already current)
 */
export async function migratePostgres(pool: pg.Pool, migrations: readonly Migration[] = PG_MIGRATIONS): Promise<number[]> {
  const c = await pool.connect();
  const applied: number[] = [];
  try {
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATE_LOCK]);
    await c.query(`CREATE TABLE IF NOT EXISTS schema_version (
      version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)`);
    const r = await c.query<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_version');
    const current = r.rows[0]?.v ?? 0;
    const latest = migrations.length ? migrations[migrations.length - 1]!.version : 0;
    if (current > latest) {
      throw new KestrelError('E_DATA_FORMAT', `inspection store schema version ${current} is newer than this Kestrel understands (${latest}); upgrade Kestrel or use another database`);
    }
    // One transaction for all pending steps: DDL is transactional in PostgreSQL, so a crash leaves
    // the database at the version it had.
    for (const m of migrations) {
      if (m.version <= current) continue;
      await c.query(m.sql);
      await c.query('INSERT INTO schema_version (version, description, applied_at) VALUES ($1, $2, $3)', [m.version, m.description, Date.now()]);
      applied.push(m.version);
    }
    await c.query('COMMIT');
    return applied;
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    c.release();
  }
}
