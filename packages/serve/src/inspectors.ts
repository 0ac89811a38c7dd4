import { readFileSync, existsSync } from 'node:fs';
import { KestrelError } from '@kestrel/core';
import type { DetectRules } from './detect-inspector.js';
import type { Inspector } from './inspector.js';

/** Which pipeline decides OK/NG. */
export type InspectPipelineName = 'defects' | 'detect';

/** Read `--rules` as a JSON file path or inline JSON. */
export function readRules(value: string): DetectRules {
  let text = value;
  if (existsSync(value)) {
    // A folder or unreadable file must be a KestrelError, not an internal error.
    try {
      text = readFileSync(value, 'utf8');
    } catch (e) {
      throw new KestrelError('E_OPTIONS', `--rules ${value}: cannot read the rules file: ${(e as Error).message}`);
    }
  }
  try {
    return JSON.parse(text) as DetectRules;
  } catch (e) {
    const inline = text === value;
    const what = inline && !/^\s*[[{]/.test(value) ? `${value} is not a file and not inline JSON` : inline ? 'is not valid JSON' : `file ${value} is not valid JSON`;
    throw new KestrelError('E_OPTIONS', `--rules ${what}: ${(e as Error).message}. Give a JSON file or inline JSON such as {"ngLabels":["scratch"],"minScore":0.5}`);
  }
}

/** Build the inspector for `kestrel serve` / `kestrel watch` from their options. */
export async function createInspector(o: { pipeline: InspectPipelineName; model: string; rules?: DetectRules | undefined; workers?: number }): Promise<Inspector> {
  if (o.pipeline === 'detect') {
    if (!o.rules) throw new KestrelError('E_OPTIONS', 'the detect pipeline needs --rules (e.g. {"ngLabels":["scratch"],"minScore":0.5})');
    const { createDetectInspector } = await import('./detect-inspector.js');
    return createDetectInspector({ model: o.model, rules: o.rules, ...(o.workers !== undefined ? { workers: o.workers } : {}) });
  }
  if (o.rules) throw new KestrelError('E_OPTIONS', '--rules applies to --pipeline detect only');
  const { createDefectsInspector } = await import('./inspector.js');
  return createDefectsInspector({ model: o.model, ...(o.workers !== undefined ? { workers: o.workers } : {}) });
}
