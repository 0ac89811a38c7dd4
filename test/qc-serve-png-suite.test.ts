// POST /v1/inspect with the real shipped defects model on the generated PNG suite
// (test/fixtures/png-suite): every corrupt PNG is a 422 E_IMAGE_DECODE with nothing logged, SVG is
// refused the same way, and the valid odd PNGs are inspected.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseApiKeyFlag } from '../packages/serve/src/auth.js';
import { InspectionLog } from '../packages/serve/src/inspection-log.js';
import { createDefectsInspector } from '../packages/serve/src/inspector.js';
import { createServer, type KestrelServer } from '../packages/serve/src/server.js';
import { qcTestModel } from './helpers/qc-model.js';

const DIR = resolve(import.meta.dirname, 'fixtures/png-suite');
const MANIFEST = JSON.parse(readFileSync(join(DIR, 'manifest.json'), 'utf8')) as Record<string, { expect: 'ok' | 'corrupt' }>;
const KEY = 'png-suite-key-0123456789';
const M = qcTestModel();

describe.skipIf(M.skip !== false)(`POST /v1/inspect on the PNG suite (${M.skip || M.model})`, () => {
  let dir: string;
  let log: InspectionLog;
  let s: KestrelServer;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kestrel-png-suite-'));
    log = InspectionLog.open(join(dir, 'log.db'));
    s = await createServer({ config: { port: 0, apiKeys: [parseApiKeyFlag(KEY)] }, log, inspector: await createDefectsInspector({ model: M.model! }) });
  });
  afterAll(async () => {
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const post = (bytes: Buffer, type = 'image/png') => s.app.inject({ method: 'POST', url: '/v1/inspect?station=png-suite', headers: { authorization: `Bearer ${KEY}`, 'content-type': type }, payload: bytes });

  it('refuses every corrupt PNG with 422 E_IMAGE_DECODE and logs nothing', async () => {
    for (const [name, f] of Object.entries(MANIFEST)) {
      if (f.expect !== 'corrupt') continue;
      const r = await post(readFileSync(join(DIR, name)));
      expect([name, r.statusCode]).toEqual([name, 422]);
      expect(r.json().error.code).toBe('E_IMAGE_DECODE');
    }
    expect(log.count()).toBe(0);
  });

  it('refuses SVG with 422, listing the accepted formats', async () => {
    const r = await post(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>'), 'image/svg+xml');
    expect(r.statusCode).toBe(422);
    expect(r.json().error.code).toBe('E_IMAGE_DECODE');
    expect(r.json().error.message).toContain('JPEG, PNG, WebP, TIFF, GIF, AVIF');
  });

  it('inspects every valid odd PNG (16-bit, interlaced, palette + tRNS, 1x1, ...)', async () => {
    const valid = Object.keys(MANIFEST).filter((n) => MANIFEST[n]!.expect === 'ok');
    for (const name of valid) {
      const r = await post(readFileSync(join(DIR, name)));
      expect([name, r.statusCode]).toEqual([name, 200]);
      expect(['OK', 'NG']).toContain(r.json().verdict);
    }
    expect(log.count()).toBe(valid.length);
  });
});
