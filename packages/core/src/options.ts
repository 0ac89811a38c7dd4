import type { z } from 'zod';
import { KestrelError } from './errors.js';

/**
 * Validate an options object (or config file contents) against a zod schema, filling defaults.
 * Failures become `E_OPTIONS` naming the bad field.
 */
export function parseOptions<S extends z.ZodType>(schema: S, value: unknown, what = 'options'): z.output<S> {
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
  throw new KestrelError('E_OPTIONS', `invalid ${what}: ${issues}`, { details: { issues: r.error.issues } });
}
