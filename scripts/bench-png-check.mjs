#!/usr/bin/env node
// Cost of the PNG integrity check against a whole `inspect` of the same 1-megapixel PNG with a shipped
// QC model, side by side in one run (medians over N rounds, interleaved): `chunks` is what loadImage adds
// to every PNG (checkPngStructure: CRCs, lengths, order); `inflate` is the Adler-32 check by a second
// inflate (checkPngImageData), which loadImage runs only after a failed decode.
// Run after `npm run build`: node scripts/bench-png-check.mjs [--model anomaly-magnetic-tile] [--rounds 30]
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { checkPngImageData, checkPngStructure } from '@kestrel/core';
import { pipeline } from '@kestrel/pipelines';

const { values } = parseArgs({ options: { model: { type: 'string', default: 'anomaly-magnetic-tile' }, rounds: { type: 'string', default: '30' } } });
const rounds = Number(values.rounds);
// A camera-like 1000x1000 RGB frame: a gradient plus noise, so zlib has real work (not a flat image).
const W = 1000, H = 1000;
const raw = Buffer.alloc(W * H * 3);
let seed = 12345;
for (let i = 0; i < raw.length; i++) { seed = (seed * 1103515245 + 12345) >>> 0; raw[i] = ((i / 3) % W) * 0.2 + (seed >>> 27); }
const png = await sharp(raw, { raw: { width: W, height: H, channels: 3 } }).png().toBuffer();

const layout = checkPngStructure(png);
const chunks = async () => { checkPngStructure(png); };
const inflate = async () => { await checkPngImageData(layout); };
const run = await pipeline('defects', { model: values.model });
const inspect = async () => { await run(png); };
const jobs = { chunks, inflate, inspect };
const times = { chunks: [], inflate: [], inspect: [] };
for (const f of Object.values(jobs)) await f(); // warm up
for (let r = 0; r < rounds; r++) {
  for (const [k, f] of Object.entries(jobs)) { const t = performance.now(); await f(); times[k].push(performance.now() - t); }
}
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
const [c, z, i] = [med(times.chunks), med(times.inflate), med(times.inspect)];
console.log(JSON.stringify({ image: `${W}x${H} RGB PNG, ${png.length} bytes`, model: values.model, rounds, chunksMs: +c.toFixed(3), inflateMs: +z.toFixed(3), inspectMs: +i.toFixed(2), chunksOverInspect: +(c / i).toFixed(4), inflateOverInspect: +(z / i).toFixed(4) }));
