import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InspectionLog } from '../packages/serve/src/inspection-log.js';
import { DirectoryWatcher, type WatchEvent } from '../packages/serve/src/watcher.js';
import { FakeBrightnessInspectorForTests } from './helpers/qc-fake-inspector.js';
import { NOT_AN_IMAGE } from './helpers/qc-bad-images.js';

const FIX = resolve(import.meta.dirname, 'fixtures/qc-serve');
const NAMES = readdirSync(FIX).filter((f) => f.endsWith('.jpg')).sort();
const cleanups: (() => void)[] = [];
afterEach(() => { while (cleanups.length) cleanups.pop()!(); });

function setup(): { dir: string; db: string } {
  const root = mkdtempSync(join(tmpdir(), 'kestrel-qc-watch-'));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'drop');
  mkdirSync(dir);
  return { dir, db: join(root, 'log.db') };
}

/** Age a file so it counts as settled (mtime in the past). */
function settle(path: string, ageMs = 10_000): void {
  const t = (Date.now() - ageMs) / 1000;
  utimesSync(path, t, t);
}

function open(db: string): InspectionLog {
  const log = InspectionLog.open(db);
  cleanups.push(() => log.close());
  return log;
}

describe('kestrel watch: DirectoryWatcher', () => {
  it('inspects each image once, moves it to ok/ or ng/, and a restart repeats nothing', async () => {
    const { dir, db } = setup();
    for (const n of NAMES) { writeFileSync(join(dir, n), readFileSync(join(FIX, n))); settle(join(dir, n)); }
    const log = open(db);
    const inspector = new FakeBrightnessInspectorForTests(0.27);
    const events: WatchEvent[] = [];
    const w = new DirectoryWatcher({ dir, stableMs: 0 }, inspector, log, (e) => events.push(e));
    expect(await w.scanOnce()).toBe(0); // first listing only records sizes
    expect(await w.scanOnce()).toBe(NAMES.length);
    expect(inspector.calls).toBe(NAMES.length);
    expect(readdirSync(dir).filter((f) => f.endsWith('.jpg'))).toEqual([]);
    const ok = existsSync(join(dir, 'ok')) ? readdirSync(join(dir, 'ok')) : [];
    const ng = existsSync(join(dir, 'ng')) ? readdirSync(join(dir, 'ng')) : [];
    expect([...ok, ...ng].sort()).toEqual(NAMES);
    for (const e of events) expect(e.dest).toBe(join(dir, e.record!.verdict.toLowerCase(), e.record!.partId!));
    expect(log.count()).toBe(NAMES.length);
    expect(log.journalCount('done')).toBe(NAMES.length);

    // A new process on the same database: nothing left to do, nothing inspected again.
    const w2 = new DirectoryWatcher({ dir, stableMs: 0 }, inspector, log);
    w2.recover();
    await w2.scanOnce(); await w2.scanOnce();
    expect(inspector.calls).toBe(NAMES.length);
    expect(log.count()).toBe(NAMES.length);
  });

  it('never reads a file that is still being written, and ignores temporary names', async () => {
    const { dir, db } = setup();
    const log = open(db);
    const inspector = new FakeBrightnessInspectorForTests(0.27);
    const w = new DirectoryWatcher({ dir, stableMs: 300 }, inspector, log);
    const bytes = readFileSync(join(FIX, NAMES[0]!));
    const p = join(dir, 'cam1.jpg');
    writeFileSync(p, bytes.subarray(0, 1000));
    writeFileSync(join(dir, 'cam2.jpg.part'), bytes);
    writeFileSync(join(dir, '.cam3.jpg'), bytes);
    writeFileSync(join(dir, 'cam4.tmp'), bytes);
    for (let i = 0; i < 4; i++) {
      await w.scanOnce();
      appendFileSync(p, bytes.subarray(1000 + i * 500, 1000 + (i + 1) * 500)); // the camera keeps writing
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(inspector.calls).toBe(0);
    appendFileSync(p, bytes.subarray(3000));
    await w.scanOnce();
    await new Promise((r) => setTimeout(r, 350));
    expect(await w.scanOnce()).toBe(1);
    expect(inspector.calls).toBe(1);
    const rec = log.list({ limit: 10 }).items[0]!;
    expect(rec.imageBytes).toBe(bytes.length); // the whole file, not a prefix
    // Write-then-rename makes a file visible whole; temporary names were never touched.
    expect(readdirSync(dir).sort()).toEqual(['.cam3.jpg', 'cam2.jpg.part', 'cam4.tmp', rec.verdict.toLowerCase()].sort());
    renameSync(join(dir, 'cam2.jpg.part'), join(dir, 'cam2.jpg'));
    settle(join(dir, 'cam2.jpg'));
    await w.scanOnce(); await new Promise((r) => setTimeout(r, 350));
    expect(await w.scanOnce()).toBe(1);
  });

  it('finishes a move interrupted after the commit, without inspecting again', async () => {
    const { dir, db } = setup();
    const p = join(dir, NAMES[0]!);
    writeFileSync(p, readFileSync(join(FIX, NAMES[0]!)));
    settle(p);
    const log = open(db);
    const inspector = new FakeBrightnessInspectorForTests(0.27);
    const w = new DirectoryWatcher({ dir, stableMs: 0 }, inspector, log);
    // Simulate a crash between the commit and the rename: make the rename fail once.
    const priv = w as unknown as { moveTo: (s: string, d: string) => void };
    const real = priv.moveTo.bind(w);
    priv.moveTo = () => { throw new Error('simulated crash before rename'); };
    await w.scanOnce();
    await expect(w.scanOnce()).rejects.toThrow(/simulated crash/);
    expect(log.count()).toBe(1);
    expect(log.journalCount('inspected')).toBe(1);
    expect(existsSync(p)).toBe(true);
    priv.moveTo = real;

    const w2 = new DirectoryWatcher({ dir, stableMs: 0 }, inspector, log);
    expect(w2.recover()).toBe(1);
    await w2.scanOnce(); await w2.scanOnce();
    expect(inspector.calls).toBe(1);
    expect(log.count()).toBe(1);
    expect(existsSync(p)).toBe(false);
    const rec = log.list({ limit: 1 }).items[0]!;
    expect(existsSync(join(dir, rec.verdict.toLowerCase(), NAMES[0]!))).toBe(true);
    expect(log.journalCount('done')).toBe(1);
  });

  it('leave mode keeps files in place and still inspects each once across restarts; a changed file counts as new', async () => {
    const { dir, db } = setup();
    const p = join(dir, 'a.jpg');
    writeFileSync(p, readFileSync(join(FIX, NAMES[0]!)));
    settle(p);
    const inspector = new FakeBrightnessInspectorForTests(0.27);
    const log = open(db);
    for (let run = 0; run < 2; run++) {
      const w = new DirectoryWatcher({ dir, stableMs: 0, mode: 'leave' }, inspector, log);
      w.recover();
      await w.scanOnce(); await w.scanOnce(); await w.scanOnce();
    }
    expect(inspector.calls).toBe(1);
    expect(readdirSync(dir)).toEqual(['a.jpg']);
    writeFileSync(p, readFileSync(join(FIX, NAMES[1]!))); // the camera reuses the name
    settle(p, 5000);
    const w = new DirectoryWatcher({ dir, stableMs: 0, mode: 'leave' }, inspector, log);
    await w.scanOnce(); await w.scanOnce();
    expect(inspector.calls).toBe(2);
  });

  it('moves unreadable files to rejected/, skips symlinks and sub-folders', async () => {
    const { dir, db } = setup();
    writeFileSync(join(dir, 'bad.png'), NOT_AN_IMAGE);
    settle(join(dir, 'bad.png'));
    const outside = join(dir, '..', 'outside.jpg');
    writeFileSync(outside, readFileSync(join(FIX, NAMES[0]!)));
    symlinkSync(outside, join(dir, 'link.jpg'));
    mkdirSync(join(dir, 'sub.jpg'));
    const inspector = new FakeBrightnessInspectorForTests(0.27);
    const log = open(db);
    const events: WatchEvent[] = [];
    const w = new DirectoryWatcher({ dir, stableMs: 0 }, inspector, log, (e) => events.push(e));
    await w.scanOnce(); await w.scanOnce();
    expect(events).toHaveLength(1);
    expect(events[0]!.error!.code).toBe('E_IMAGE_DECODE');
    expect(existsSync(join(dir, 'rejected', 'bad.png'))).toBe(true);
    expect(log.journalCount('failed')).toBe(1);
    expect(log.count()).toBe(0);
    expect(inspector.calls).toBe(0);
    expect(existsSync(outside)).toBe(true);
  });
});
