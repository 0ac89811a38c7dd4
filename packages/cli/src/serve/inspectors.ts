import { readFileSync, existsSync } from 'node:fs';
import { KestrelError } from '@kestrel/core';
import type { DetectRules } from './detect-inspector.js';
import type { Inspector } from './inspector.js';

/** Which pipeline decides OK/NG. */
export type InspectPipelineName = 'defects' | 'detect';

/** Read `--rules` as a JSON file path or inline JSON. */
export function readRules(value: string): DetectRules {
  const text = existsSync(value) ? readFileSync(value, 'utf8') : value;
  try {
    return JSON.parse(text) as DetectRules;
  } catch (e) {
    throw new KestrelError('E_OPTIONS', `--rules is neither a readable JSON file nor JSON: ${(e as Error).message}`);
  }
}

/** Build the inspector for `kestrel serve` / `kestrel watch` from their options. */
export async function createInspector(o: { pipeline: InspectPipelineName; model: string; rules?: DetectRules | undefined }): Promise<Inspector> {
  if (o.pipeline === 'detect') {
    if (!o.rules) throw new KestrelError('E_OPTIONS', 'the detect pipeline needs --rules (e.g. {"ngLabels":["scratch"],"minScore":0.5})');
    const { createDetectInspector } = await import('./detect-inspector.js');
    return createDetectInspector({ model: o.model, rules: o.rules });
  }
  if (o.rules) throw new KestrelError('E_OPTIONS', '--rules applies to --pipeline detect only');
  const { createDefectsInspector } = await import('./inspector.js');
  return createDefectsInspector({ model: o.model });
}
