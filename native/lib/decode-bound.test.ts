/**
 * Multiply-adds and weight bytes per decoded token, against counts worked out by hand from the golden LM
 * fixtures' configs (test/fixtures/lm/A: MHA; C: MLA with dense layers between MoE ones, moe_layer_freq 2).
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { activeParams, activeWeightBytes, BYTES_PER_PARAM } from './decode-bound.js';

const cfg = (m: string) => JSON.parse(readFileSync(fileURLToPath(new URL(`../../test/fixtures/lm/${m}/config.json`, import.meta.url)), 'utf8')) as Record<string, number | null>;

describe('decode bound counts', () => {
  it('model A (MHA, 3 layers, layer 0 dense)', () => {
    // attention 2·64·64 (q, o) + 2·64·64 (k, v) per layer ×3; dense 3·64·128; 2 MoE layers × (2 routed + 1
    // shared)·3·64·32; lm_head 300·64
    expect(activeParams(cfg('A'))).toBe(3 * 16384 + 24576 + 2 * 18432 + 19200);
    expect(activeWeightBytes(cfg('A'), BYTES_PER_PARAM.f32)).toBe(4 * 129792 + 2 * 8 * 64 * 4);
  });
  it('model C (MLA, moe_layer_freq 2: layers 0 and 2 MoE, 1 and 3 dense)', () => {
    // attention q 5·20·80 + kv_a 32·80 + kv_b 5·32·24 + o 80·100 = 22400 per layer ×4; dense 3·80·96 ×2;
    // MoE (3 routed + 2 shared)·3·80·24 ×2; lm_head 300·80
    expect(activeParams(cfg('C'))).toBe(4 * 22400 + 2 * 23040 + 2 * 28800 + 24000);
    expect(activeWeightBytes(cfg('C'), BYTES_PER_PARAM.int8)).toBe(217280 * 1.125 + 2 * 8 * 80 * 4);
  });
});
