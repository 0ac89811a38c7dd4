/** The manifest of a pulled model (`kestrel-model.json`): its schema, reading it, and checking a cached copy. */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { ModelEntry } from './catalog.js';

/** What `kestrel-model.json` in a pulled model's directory records. */
export const PulledManifestSchema = z.object({
  name: z.string(),
  package: z.string(),
  integrity: z.string(),
  main: z.string(),
  format: z.enum(['tfjs-graph', 'onnx', 'other']),
  files: z.record(z.string(), z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: z.number().int().nonnegative() })),
  pulledAt: z.string(),
});
export type PulledManifest = z.infer<typeof PulledManifestSchema>;

/** The manifest's file name inside a pulled model's folder. */
export const MANIFEST = 'kestrel-model.json';

/** The manifest of `dir`, or undefined when it is missing, not JSON, or not a manifest (then the copy is not installed). */
export async function readManifest(dir: string): Promise<PulledManifest | undefined> {
  let raw: unknown;
  try { raw = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')); } catch { return undefined; }
  const r = PulledManifestSchema.safeParse(raw);
  return r.success ? r.data : undefined;
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** True when every file of `entry` is in the cache with the pinned sha256. */
export async function installedOk(entry: ModelEntry, dir: string, verifyBytes: boolean): Promise<boolean> {
  const m = await readManifest(dir);
  if (!m || m.package !== entry.package) return false;
  for (const f of entry.files) {
    if (m.files[f.as]?.sha256 !== f.sha256) return false;
    const p = join(dir, f.as);
    if (!existsSync(p)) return false;
    if (verifyBytes && sha256(await readFile(p)) !== f.sha256) return false;
  }
  return true;
}
