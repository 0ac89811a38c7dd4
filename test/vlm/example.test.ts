// examples/sdk-query.ts runs end to end (on the tiny golden checkpoint A with the test tokenizer).
import { it, expect, vi } from 'vitest';

it('examples/sdk-query.ts runs', async () => {
  const logs: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => { logs.push(a.map(String).join(' ')); });
  const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  try {
    await import('../../examples/sdk-query.ts');
  } finally {
    log.mockRestore();
    write.mockRestore();
  }
  expect(logs.some((l) => l.includes('57 of them image tokens'))).toBe(true);
  expect(logs.some((l) => l.startsWith('logits:'))).toBe(true);
});
