import { randomBytes } from 'node:crypto';

/**
 * The PostgreSQL and Redis servers the distributed QC tests use, from KESTREL_TEST_POSTGRES_URL and
 * KESTREL_TEST_REDIS_URL (`.ci/run` starts throw-away ones and sets both). Without them the tests skip
 * and say why.
 */
export const PG_URL = process.env.KESTREL_TEST_POSTGRES_URL;
export const REDIS_URL = process.env.KESTREL_TEST_REDIS_URL;
export const PG_SKIP = PG_URL ? false : 'KESTREL_TEST_POSTGRES_URL is not set (bash .ci/run starts PostgreSQL and sets it)';
export const REDIS_SKIP = REDIS_URL ? false : 'KESTREL_TEST_REDIS_URL is not set (bash .ci/run starts Redis and sets it)';

/** Print a skip reason once, so a skipped suite says why in the test output. */
export function sayWhySkipped(what: string, reason: string | false): void {
  if (reason) process.stderr.write(`[skip] ${what}: ${reason}\n`);
}

/** Create a fresh database on the test server; resolves to its URL and a function that drops it. */
export async function freshPgDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  if (!PG_URL) throw new Error('no KESTREL_TEST_POSTGRES_URL');
  const { default: pg } = await import('pg');
  const name = `kestrel_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(PG_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
