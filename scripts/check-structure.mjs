#!/usr/bin/env node
// Structure rules of the tree (docs/architecture rules): no TypeScript source over 500 lines, and no import
// cycle between source files. Static imports and re-exports count, type-only ones too (a type cycle still
// couples the two files); dynamic import() does not (it is how a lazy edge is meant to be written).
// Workspace package names resolve to the package's src/index.ts, so cycles across packages are found too.
// Usage: node scripts/check-structure.mjs [--json]; exits 1 when a rule is broken.
import { execFileSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const MAX_LINES = 500;

/** Tracked and untracked-but-not-ignored .ts/.mts files, without declaration files. */
function sourceFiles() {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '--', '*.ts', '*.mts'], { cwd: root, encoding: 'utf8' });
  return out.split('\n').filter((f) => f && !f.endsWith('.d.ts') && existsSync(join(root, f)));
}

/** Workspace package name -> its src entry, from the root package.json workspaces. */
function packageEntries() {
  const ws = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).workspaces ?? [];
  const map = new Map();
  for (const w of ws) {
    const pj = JSON.parse(readFileSync(join(root, w, 'package.json'), 'utf8'));
    for (const cand of ['src/index.ts', 'lib/index.ts']) {
      if (existsSync(join(root, w, cand))) { map.set(pj.name, join(w, cand)); break; }
    }
  }
  return map;
}

function resolveSpec(from, spec, pkgs) {
  if (pkgs.has(spec)) return pkgs.get(spec);
  if (!spec.startsWith('.')) return null;
  const base = join(dirname(from), spec);
  for (const c of [base.replace(/\.m?js$/, '.ts'), base.replace(/\.mjs$/, '.mts'), base + '.ts', join(base, 'index.ts')]) {
    if (existsSync(join(root, c))) return relative(root, join(root, c));
  }
  return null;
}

/** Static import/export-from edges of one file. */
function edgesOf(file, pkgs) {
  const text = readFileSync(join(root, file), 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false);
  const out = new Set();
  for (const st of sf.statements) {
    if ((ts.isImportDeclaration(st) || ts.isExportDeclaration(st)) && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier)) {
      const r = resolveSpec(file, st.moduleSpecifier.text, pkgs);
      if (r) out.add(r);
    }
  }
  return out;
}

/** Strongly connected components of more than one file (or a file importing itself), by Tarjan. */
function cycles(graph) {
  let index = 0;
  const idx = new Map(), low = new Map(), stack = [], on = new Set(), found = [];
  const visit = (v) => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v), low.get(w))); }
      else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const comp = [];
      let w;
      do { w = stack.pop(); on.delete(w); comp.push(w); } while (w !== v);
      if (comp.length > 1 || graph.get(v)?.has(v)) found.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return found;
}

export function checkStructure() {
  const files = sourceFiles();
  const pkgs = packageEntries();
  const long = [];
  const graph = new Map();
  for (const f of files) {
    const lines = readFileSync(join(root, f), 'utf8').split('\n').length - 1;
    if (lines > MAX_LINES) long.push({ file: f, lines });
    graph.set(f, edgesOf(f, pkgs));
  }
  return { files: files.length, long, cycles: cycles(graph) };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const r = checkStructure();
  if (process.argv.includes('--json')) console.log(JSON.stringify(r, null, 2));
  else {
    for (const l of r.long) console.log(`over ${MAX_LINES} lines: ${l.file} (${l.lines})`);
    for (const c of r.cycles) console.log(`import cycle: ${c.join(' <-> ')}`);
    console.log(`${r.files} files; ${r.long.length} over ${MAX_LINES} lines; ${r.cycles.length} import cycle(s)`);
  }
  process.exit(r.long.length || r.cycles.length ? 1 : 0);
}
