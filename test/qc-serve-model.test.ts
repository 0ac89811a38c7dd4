// The inspection server and watcher with the real shipped defects model (no stand-ins).
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipeline } from '@kestrel/pipelines';
import { parseApiKeyFlag } from '../packages/serve/src/auth.js';
import { InspectionLog } from '../packages/serve/src/inspection-log.js';
import { createDefectsInspector, type Inspector } from '../packages/serve/src/inspector.js';
import { createServer, type KestrelServer } from '../packages/serve/src/server.js';
import { DirectoryWatcher } from '../packages/serve/src/watcher.js';
import { NOT_AN_IMAGE, corruptPng, hugePngHeader, truncated } from './helpers/qc-bad-images.js';
import { qcTestModel } from './helpers/qc-model.js';

const FIX = resolve(import.meta.dirname, 'fixtures/qc-serve');
const NAMES = readdirSync(FIX).filter((f) => f.endsWith('.jpg')).sort();
const KEY = 'model-test-key-0123456789';
const AUTH = { authorization: `Bearer ${KEY}` };
const M = qcTestModel();

describe.skipIf(M.skip !== false)(`kestrel serve with the real model (${M.skip || M.model})`, () => {
  let dir: string;
  let inspector: Inspector;
  let log: InspectionLog;
  let s: KestrelServer;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kestrel-qc-model-'));
    inspector = await createDefectsInspector({ model: M.model! });
    log = InspectionLog.open(join(dir, 'log.db'));
    s = await createServer({ config: { port: 0, apiKeys: [parseApiKeyFlag(KEY)], archiveNgDir: join(dir, 'ng') }, log, inspector });
  });
  afterAll(async () => {
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers what the defects pipeline says, with the model name and weights hash, and logs it', async () => {
    const direct = await pipeline('defects', { model: M.model!, heatmap: false });
    expect(inspector.model.version).toMatch(/^sha256:[0-9a-f]{12}$/);
    for (const n of NAMES) {
      const bytes = readFileSync(join(FIX, n));
      const r = await s.app.inject({ method: 'POST', url: `/v1/inspect?station=line-1&partId=${n}`, headers: { ...AUTH, 'content-type': 'image/jpeg' }, payload: bytes });
      expect(r.statusCode).toBe(200);
      const body = r.json();
      const ref = await direct(bytes);
      expect(body.score).toBeCloseTo(ref.score, 5);
      expect(body.threshold).toBe(ref.threshold);
      expect(body.verdict).toBe(ref.defective ? 'NG' : 'OK');
      expect(body.model).toEqual(inspector.model);
      if (body.verdict === 'NG') {
        expect(body.defects.length).toBeGreaterThan(0);
        for (const d of body.defects) if (d.box) for (const v of d.box) expect(Number.isFinite(v)).toBe(true);
        // Anomaly models: the strongest region is where the image score comes from.
        if (body.defects[0].box) expect(body.defects[0].score).toBeCloseTo(body.score, 4);
      } else expect(body.defects).toEqual([]);
      const row = log.get(body.id)!;
      expect(row.verdict).toBe(body.verdict);
      expect(row.model).toEqual(inspector.model);
      expect(row.archivePath !== null).toBe(body.verdict === 'NG');
    }
    const st = (await s.app.inject({ method: 'GET', url: '/v1/stats', headers: AUTH })).json();
    expect(st.counts.total).toBe(NAMES.length);
  });

  it('bad uploads get 4xx with the KestrelError code and the server keeps serving', async () => {
    const good = readFileSync(join(FIX, NAMES[0]!));
    const before = log.count();
    const cases: [Buffer, string, string][] = [
      [Buffer.alloc(0), 'image/jpeg', 'E_IMAGE_DECODE'],
      [NOT_AN_IMAGE, 'image/jpeg', 'E_IMAGE_DECODE'],
      [truncated(good, 0.5), 'image/jpeg', 'E_IMAGE_DECODE'],
      [await corruptPng(good), 'image/png', 'E_IMAGE_DECODE'],
      [hugePngHeader(), 'image/png', 'E_IMAGE_TOO_LARGE'],
    ];
    for (const [payload, type, code] of cases) {
      const r = await s.app.inject({ method: 'POST', url: '/v1/inspect?station=line-1', headers: { ...AUTH, 'content-type': type }, payload });
      expect(r.statusCode).toBeGreaterThanOrEqual(400);
      expect(r.statusCode).toBeLessThan(500);
      expect(r.json().error.code).toBe(code);
    }
    expect(log.count()).toBe(before);
    const ok = await s.app.inject({ method: 'POST', url: '/v1/inspect?station=line-1', headers: { ...AUTH, 'content-type': 'image/jpeg' }, payload: good });
    expect(ok.statusCode).toBe(200);
  });

  it('kestrel watch inspects each dropped image once with the model and sorts it by verdict', async () => {
    const drop = join(dir, 'drop');
    mkdirSync(drop);
    for (const n of NAMES) {
      writeFileSync(join(drop, n), readFileSync(join(FIX, n)));
      const t = (Date.now() - 5000) / 1000;
      utimesSync(join(drop, n), t, t);
    }
    const wlog = InspectionLog.open(join(dir, 'watch.db'));
    try {
      const w = new DirectoryWatcher({ dir: drop, stableMs: 0, station: 'cam-1' }, inspector, wlog);
      await w.scanOnce();
      expect(await w.scanOnce()).toBe(NAMES.length);
      const items = wlog.list({ limit: 100 }).items;
      expect(items).toHaveLength(NAMES.length);
      for (const it of items) expect(readdirSync(join(drop, it.verdict.toLowerCase()))).toContain(it.partId);
      await w.scanOnce();
      expect(wlog.count()).toBe(NAMES.length);
    } finally {
      wlog.close();
    }
  });
});
