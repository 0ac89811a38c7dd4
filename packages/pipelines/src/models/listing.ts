/** Listing models: the catalog (pulled or not), other models in the cache, and the shipped models. */
import { existsSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CATALOG } from './catalog.js';
import { kestrelHome, modelCacheDir, repoModelsDir } from './paths.js';
import { MANIFEST, installedOk } from './manifest.js';
import { findMainFile } from './resolve.js';

/** One row of {@link listModels}. */
export interface ModelListing {
  name: string;
  /** `catalog` (pullable), `cache` (pulled or copied into the cache), `repo` (shipped in models/). */
  source: 'catalog' | 'cache' | 'repo';
  installed: boolean;
  dir: string;
  tasks: string[];
  description: string;
  bytes?: number;
}

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const f of await readdir(dir, { withFileTypes: true })) if (f.isFile()) n += statSync(join(dir, f.name)).size;
  return n;
}

/** Catalog models (pulled or not), other models in the cache, and models shipped in the repo's models/. */
export async function listModels(home = kestrelHome()): Promise<ModelListing[]> {
  const out: ModelListing[] = [];
  for (const e of CATALOG.values()) {
    const dir = modelCacheDir(e.name, home);
    const installed = await installedOk(e, dir, false);
    out.push({ name: e.name, source: 'catalog', installed, dir, tasks: e.tasks, description: e.description, ...(installed ? { bytes: await dirBytes(dir) } : {}) });
  }
  const scan = async (root: string, source: 'cache' | 'repo'): Promise<void> => {
    let ents;
    try { ents = await readdir(root, { withFileTypes: true }); } catch { return; }
    for (const d of ents) {
      if (!d.isDirectory() || d.name.startsWith('.') || (source === 'cache' && CATALOG.has(d.name))) continue;
      const dir = join(root, d.name);
      // A runtime file, or a Kestrel-trained model folder (qc-model.json + MODEL_CARD.md).
      if (!findMainFile(dir) && !CARD_FILES.some((f) => existsSync(join(dir, f)))) continue;
      const card = await readCard(dir);
      const description = card.description ?? (await modelCardSummary(dir)) ?? '';
      out.push({ name: d.name, source, installed: true, dir, tasks: card.tasks ?? [], description, bytes: await dirBytes(dir) });
    }
  };
  await scan(join(home, 'models'), 'cache');
  const shipped = repoModelsDir();
  if (shipped) await scan(shipped, 'repo');
  return out;
}

/** Files that mark a folder as a model even without model.json / *.onnx. */
const CARD_FILES = [MANIFEST, 'model-card.json', 'qc-model.json', 'MODEL_CARD.md'];

/** The first sentence of a folder's MODEL_CARD.md (its first paragraph line), as a description. */
async function modelCardSummary(dir: string): Promise<string | undefined> {
  let text: string;
  try { text = await readFile(join(dir, 'MODEL_CARD.md'), 'utf8'); } catch { return undefined; }
  const line = text.split('\n').map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#'));
  if (!line) return undefined;
  const sentence = line.replace(/\*\*/g, '').split(/(?<=[.)])\s/)[0]!;
  return sentence.length > 90 ? `${sentence.slice(0, 87)}...` : sentence;
}

async function readCard(dir: string): Promise<{ tasks?: string[]; description?: string }> {
  for (const f of [MANIFEST, 'model-card.json', 'qc-model.json']) {
    try {
      const j = JSON.parse(await readFile(join(dir, f), 'utf8')) as Record<string, unknown>;
      const tasks = Array.isArray(j.tasks) ? (j.tasks as string[]) : typeof j.task === 'string' ? [j.task] : undefined;
      return { tasks, description: typeof j.description === 'string' ? j.description : undefined };
    } catch { /* next */ }
  }
  return {};
}
