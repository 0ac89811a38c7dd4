// The README's SDK quick start must stay true: its code block type-checks against the real packages.
import { it, expect } from 'vitest';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

it('the README SDK quick start type-checks', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const m = /## SDK quick start\n\n```ts\n([\s\S]*?)```/.exec(readme);
  expect(m, 'README has an SDK quick start code block').not.toBeNull();
  // Inside the repo so the workspace packages resolve by name; removed afterwards.
  const dir = mkdtempSync(join(root, 'examples', '.readme-check-'));
  try {
    const file = join(dir, 'quick-start.ts');
    writeFileSync(file, `${m![1]}\nexport {};\n`);
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext',
      '--target', 'es2022', '--types', 'node', '--skipLibCheck', file], { cwd: root, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
