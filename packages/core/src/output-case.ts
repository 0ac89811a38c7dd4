/**
 * The case of Kestrel's JSON outputs: camelCase (as the SDK's result objects, e.g. `usage.promptTokens`). Outputs
 * that were snake_case (`ms_per_image`, `prefill_tok_s`) keep those keys as aliases for one release (0.x, removed in
 * the next minor); docs/core.md says so. Keys of external formats (COCO's `image_id`, ...) are not Kestrel's and
 * are left alone: only the top level of an output object is given camelCase keys.
 */

/** `ms_per_image` -> `msPerImage`; a key without an underscore is returned as it is. */
export function camelCaseKey(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * A copy of `value` (a plain object) with a camelCase key beside every snake_case top-level key, camelCase first;
 * the snake_case keys stay as deprecated aliases. Anything that is not a plain object is returned unchanged.
 */
export function withCamelCaseKeys<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Object.getPrototypeOf(value) !== Object.prototype) return value;
  const out: Record<string, unknown> = {};
  const src = value as Record<string, unknown>;
  for (const [k, v] of Object.entries(src)) {
    const c = camelCaseKey(k);
    if (c !== k && !(c in src)) out[c] = v;
    else out[k] = v;
  }
  for (const [k, v] of Object.entries(src)) if (!(k in out)) out[k] = v;
  return out as T;
}
