// One suite for both inspection stores: the embedded SQLite log and PostgreSQL. Expected values are
// written by hand from the rows inserted here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InspectionLog } from '../packages/serve/src/inspection-log.js';
import type { NewInspection } from '../packages/serve/src/records.js';
import type { InspectionStore } from '../packages/serve/src/scale-out.js';
import { PostgresStore } from '../packages/serve/src/stores/postgres-store.js';
import { isPostgresUrl } from '../packages/serve/src/stores/open-store.js';
import { PG_SKIP, freshPgDatabase, sayWhySkipped } from './helpers/qc-services.js';

const T0 = Date.parse('2026-03-01T08:00:00.000Z');

function row(i: number, over: Partial<NewInspection> = {}): NewInspection {
  return {
    id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    ts: T0 + i * 1000,
    station: i % 2 ? 'line-a' : 'line-b',
    partId: `p${i}`,
    source: 'http',
    imageSha256: 'ab'.repeat(32),
    imageBytes: 1000 + i,
    model: { name: 'm', version: 'v1' },
    score: i / 10,
    threshold: 0.5,
    verdict: i / 10 >= 0.5 ? 'NG' : 'OK',
    defects: i / 10 >= 0.5 ? [{ label: 'crack', score: i / 10, box: [1, 2, 3, 4] }] : [],
    timings: { queueMs: i, inferMs: 10 * i, totalMs: 100 * i },
    archivePath: null,
    requestKey: null,
    ...over,
  };
}

type Opened = { store: InspectionStore; close: () => Promise<void> };
const kinds: { name: string; skip: string | false; open: () => Promise<Opened> }[] = [
  { name: 'SQLite', skip: false, open: async () => { const s = InspectionLog.open(':memory:'); return { store: s, close: async () => s.close() }; } },
  {
    name: 'PostgreSQL', skip: PG_SKIP, open: async () => {
      const db = await freshPgDatabase();
      const s = await PostgresStore.open(db.url);
      return { store: s, close: async () => { await s.close(); await db.drop(); } };
    },
  },
];
sayWhySkipped('inspection store suite on PostgreSQL', PG_SKIP);

for (const kind of kinds) {
  describe.skipIf(kind.skip)(`inspection store: ${kind.name}`, () => {
    let o: Opened;
    beforeAll(async () => { o = await kind.open(); });
    afterAll(async () => { await o?.close(); });

    it('inserts and reads back a row field for field, by id and by request key', async () => {
      const n = row(7, { requestKey: 'key-7', archivePath: '2026-03-01/x.png' });
      const rec = await o.store.insert(n);
      expect(rec.ts).toBe('2026-03-01T08:00:07.000Z');
      const got = await o.store.get(n.id);
      expect(got).toEqual({
        id: n.id, ts: '2026-03-01T08:00:07.000Z', station: 'line-a', partId: 'p7', source: 'http', imageSha256: 'ab'.repeat(32),
        imageBytes: 1007, model: { name: 'm', version: 'v1' }, score: 0.7, threshold: 0.5, verdict: 'NG',
        defects: [{ label: 'crack', score: 0.7, box: [1, 2, 3, 4] }], timings: { queueMs: 7, inferMs: 70, totalMs: 700 },
        archivePath: '2026-03-01/x.png', requestKey: 'key-7',
      });
      expect(await o.store.getByRequestKey('key-7')).toEqual(got);
      expect(await o.store.get('00000000-0000-4000-8000-999999999999')).toBeUndefined();
      expect(await o.store.getByRequestKey('nope')).toBeUndefined();
    });

    it('logs a re-run job (same id) and a retried request (same key) once, answering with the first row', async () => {
      const before = await o.store.count();
      const first = row(20, { requestKey: 'key-20' });
      await o.store.insert(first);
      const again = await o.store.insert({ ...first, score: 0.99 });
      expect(again.score).toBe(2);
      const retried = await o.store.insert(row(21, { requestKey: 'key-20' }));
      expect(retried.id).toBe(first.id);
      expect(await o.store.count()).toBe(before + 1);
      expect(await o.store.get(row(21).id)).toBeUndefined();
    });

    it('pages newest first with a cursor, filters by station, station set, verdict and time', async () => {
      // Rows 1..5 of station "s" (ids ...101..105), inserted in order: pages are [105,104] [103,102] [101].
      for (let i = 1; i <= 5; i++) await o.store.insert(row(100 + i, { station: 's', score: i / 10, verdict: i >= 4 ? 'NG' : 'OK', ts: T0 + 100_000 + i }));
      const ids = (p: { items: { partId: string | null }[] }): (string | null)[] => p.items.map((r) => r.partId);
      const p1 = await o.store.list({ station: 's', limit: 2 });
      expect(ids(p1)).toEqual(['p105', 'p104']);
      const p2 = await o.store.list({ station: 's', limit: 2, cursor: p1.next! });
      expect(ids(p2)).toEqual(['p103', 'p102']);
      const p3 = await o.store.list({ station: 's', limit: 2, cursor: p2.next! });
      expect(ids(p3)).toEqual(['p101']);
      expect(p3.next).toBeNull();
      expect(ids(await o.store.list({ station: 's', verdict: 'NG', limit: 10 }))).toEqual(['p105', 'p104']);
      expect(ids(await o.store.list({ stations: ['s'], since: T0 + 100_002, until: T0 + 100_004, limit: 10 }))).toEqual(['p103', 'p102']);
      expect((await o.store.list({ stations: [], limit: 10 })).items).toEqual([]);
      await expect(Promise.resolve().then(() => o.store.list({ limit: 1, cursor: 'not-a-cursor' }))).rejects.toMatchObject({ code: 'E_OPTIONS' });
    });

    it('window figures: counts, NG count, first/last time and sorted latencies', async () => {
      // Station "w": total_ms 300, 100, 200 (inserted in that order), one NG.
      await o.store.insert(row(201, { station: 'w', ts: T0 + 500_000, timings: { queueMs: 0, inferMs: 1, totalMs: 300 }, verdict: 'OK' }));
      await o.store.insert(row(202, { station: 'w', ts: T0 + 500_010, timings: { queueMs: 0, inferMs: 1, totalMs: 100 }, verdict: 'NG' }));
      await o.store.insert(row(203, { station: 'w', ts: T0 + 500_020, timings: { queueMs: 0, inferMs: 1, totalMs: 200 }, verdict: 'OK' }));
      expect(await o.store.window({ station: 'w' })).toEqual({ total: 3, ng: 1, latenciesMs: [100, 200, 300], firstTs: T0 + 500_000, lastTs: T0 + 500_020 });
      expect(await o.store.window({ station: 'w', since: T0 + 500_005 })).toEqual({ total: 2, ng: 1, latenciesMs: [100, 200], firstTs: T0 + 500_010, lastTs: T0 + 500_020 });
      expect(await o.store.window({ station: 'none' })).toEqual({ total: 0, ng: 0, latenciesMs: [], firstTs: null, lastTs: null });
    });
  });
}

describe.skipIf(PG_SKIP)('PostgreSQL migrations', () => {
  it('records versions 1-3 once even when three processes open the store at once', async () => {
    const db = await freshPgDatabase();
    try {
      const stores = await Promise.all([0, 1, 2].map(() => PostgresStore.open(db.url)));
      const r = await stores[0]!.pool.query<{ version: number }>('SELECT version FROM schema_version ORDER BY version');
      expect(r.rows.map((x) => x.version)).toEqual([1, 2, 3]);
      await Promise.all(stores.map((s) => s.close()));
    } finally {
      await db.drop();
    }
  });

  it('an unreachable server is a clear E_BACKEND_UNAVAILABLE without the password', async () => {
    await expect(PostgresStore.open('postgres://u:secret@127.0.0.1:1/x', { connectTimeoutMs: 2000 })).rejects.toSatisfy((e: { code?: string; message?: string }) =>
      e.code === 'E_BACKEND_UNAVAILABLE' && !e.message!.includes('secret') && e.message!.includes('--store'));
  });
});

describe('store URLs', () => {
  it('postgres:// and postgresql:// name PostgreSQL; anything else is a SQLite file', () => {
    expect([isPostgresUrl('postgres://h/db'), isPostgresUrl('postgresql://h/db'), isPostgresUrl('log.db'), isPostgresUrl(':memory:')]).toEqual([true, true, false, false]);
  });
});
