import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

const r = (p: string): string => fileURLToPath(new URL(p, import.meta.url));

// Tests import workspace packages by name; resolve them to TypeScript sources so a test never runs
// against a stale dist/.
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@kestrel\/core$/, replacement: r('./packages/core/src/index.ts') },
      { find: /^@kestrel\/native$/, replacement: r('./native/lib/index.ts') },
      { find: /^@kestrel\/vit$/, replacement: r('./packages/vit/src/index.ts') },
      { find: /^@kestrel\/projector$/, replacement: r('./packages/projector/src/index.ts') },
      { find: /^@kestrel\/moe$/, replacement: r('./packages/moe/src/index.ts') },
      { find: /^@kestrel\/pipelines$/, replacement: r('./packages/pipelines/src/index.ts') },
      { find: /^@kestrel\/eval$/, replacement: r('./eval/src/index.ts') },
      { find: /^@kestrel\/datasets$/, replacement: r('./datasets/src/index.ts') },
      { find: /^@kestrel\/serve$/, replacement: r('./packages/serve/src/index.ts') },
      { find: /^@kestrel\/cli$/, replacement: r('./packages/cli/src/index.ts') },
    ],
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'native/lib/**/*.test.ts', 'eval/src/**/*.test.ts', 'datasets/src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Pulled weights go to a cache inside the checkout, never the user's ~/.cache (spawned CLIs inherit it).
    env: { KESTREL_HOME: process.env.KESTREL_HOME ?? r('./.kestrel-cache/test-home') },
    // In CI also write a machine-readable report; .ci/run prints its plain "N passed, N failed" line.
    ...(process.env.CI ? { reporters: ['default', 'json'], outputFile: { json: '.vitest-report.json' } } : {}),
  },
});
