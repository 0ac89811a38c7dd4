import type Database from 'better-sqlite3';
import { KestrelError } from '@kestrel/core';

/** One schema step. Versions are consecutive from 1; a step never changes once released. */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

/**
 * The inspection log's schema history. Append new steps; never edit old ones, because databases in the
 * field have already run them.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'inspections: one row per inspection',
    sql: `
      CREATE TABLE inspections (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        ts INTEGER NOT NULL,
        station TEXT NOT NULL,
        part_id TEXT,
        source TEXT NOT NULL,
        image_sha256 TEXT NOT NULL,
        image_bytes INTEGER NOT NULL,
        model_name TEXT NOT NULL,
        model_version TEXT NOT NULL,
        score REAL NOT NULL,
        threshold REAL NOT NULL,
        verdict TEXT NOT NULL CHECK (verdict IN ('OK', 'NG')),
        defects TEXT NOT NULL,
        queue_ms REAL NOT NULL,
        infer_ms REAL NOT NULL,
        total_ms REAL NOT NULL,
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
        size INTEGER NOT NULL,
        mtime_ms REAL NOT NULL,
        sha256 TEXT,
        state TEXT NOT NULL CHECK (state IN ('inspected', 'done', 'failed')),
        inspection_id TEXT REFERENCES inspections (id),
        dest TEXT,
        error TEXT,
        updated_at INTEGER NOT NULL
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

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/**
 * Bring a database up to {@link SCHEMA_VERSION}. Each step runs in its own transaction together with
 * its `schema_version` row and `PRAGMA user_version`, so a crash leaves the database at a whole
 * version. A database from a newer build is refused rather than guessed at.
 *
 * @returns the versions applied now (empty when already current)
 */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  const current = db.pragma('user_version', { simple: true }) as number;
  const latest = migrations.length ? migrations[migrations.length - 1]!.version : 0;
  if (current > latest) {
    throw new KestrelError('E_DATA_FORMAT', `inspection log schema version ${current} is newer than this Kestrel understands (${latest}); upgrade Kestrel or use another --db file`);
  }
  const applied: number[] = [];
  for (const m of migrations) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)').run(m.version, m.description, Date.now());
      // PRAGMA user_version is transactional in SQLite; it commits or rolls back with the step.
      db.pragma(`user_version = ${m.version | 0}`);
    })();
    applied.push(m.version);
  }
  return applied;
}
