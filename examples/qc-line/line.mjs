#!/usr/bin/env node
// The production line in one process: the simulated camera captures real images at a set rate, and a
// small PLC client asks `kestrel serve` "OK or NG?" for each part and drives a (virtual) reject gate.
// If the server is busy (429) or briefly down, the PLC retries a bounded number of times, then routes
// the part to manual inspection rather than guessing.
//
//   node examples/qc-line/line.mjs --url http://127.0.0.1:8080 --key demo-line-key-2026 --rate 2 --parts 30
import { runCamera } from './camera.mjs';

const a = process.argv.slice(2);
const get = (k, d) => { const i = a.indexOf(`--${k}`); return i >= 0 && a[i + 1] && !a[i + 1].startsWith('--') ? a[i + 1] : d; };
const url = get('url', 'http://127.0.0.1:8080');
const key = get('key', process.env.KESTREL_API_KEY ?? 'demo-line-key-2026');
const station = get('station', 'line-1');
const rate = Number(get('rate', '2'));
const parts = Number(get('parts', '30'));
const auth = { authorization: `Bearer ${key}` };

const run = Date.now().toString(36);

/**
 * The PLC's question: OK or NG? Retries 429 and connection errors at most 5 times, always with the same
 * Idempotency-Key, so a part whose answer was lost in a server restart is answered from the log, not
 * inspected (and logged) twice.
 */
async function askVerdict(partId, bytes) {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const r = await fetch(`${url}/v1/inspect?station=${station}&partId=${partId}`, {
        method: 'POST', headers: { ...auth, 'content-type': 'image/jpeg', 'idempotency-key': `${station}-${run}-${partId}` }, body: bytes, signal: AbortSignal.timeout(30_000),
      });
      const body = await r.json();
      if (r.status === 200) return body;
      if (r.status !== 429 && r.status < 500) return { error: body.error };
    } catch { /* server restarting: retry */ }
    await new Promise((res) => setTimeout(res, 300 * (attempt + 1)));
  }
  return { error: { code: 'E_UNREACHABLE', message: 'no answer after 5 tries' } };
}

const tally = { OK: 0, NG: 0, manual: 0 };
const pending = [];
console.log(`line: ${parts} parts at ${rate}/s -> ${url} (station ${station})`);
await runCamera({
  rate, parts,
  deliver: (partId, bytes, file) => {
    // The camera does not wait for the verdict; parts move on while the PLC waits.
    pending.push(askVerdict(partId, bytes).then((v) => {
      const cls = file.split('/').slice(-3)[0];
      if (v.error) { tally.manual++; console.log(`${partId} ${cls.padEnd(12)} -> MANUAL (${v.error.code})`); return; }
      tally[v.verdict]++;
      console.log(`${partId} ${cls.padEnd(12)} -> ${v.verdict === 'NG' ? 'NG: reject gate OPEN ' : 'OK: pass             '} score ${v.score.toFixed(3)} / ${v.threshold.toFixed(3)}  ${v.ms.toFixed(0)} ms  id ${v.id}`);
    }));
  },
});
await Promise.all(pending);
const stats = await (await fetch(`${url}/v1/stats?station=${station}&window=3600`, { headers: auth })).json();
console.log(`\nPLC tally: ${JSON.stringify(tally)}`);
console.log(`server stats (last hour, ${station}): ${stats.counts.total} inspected, NG rate ${(100 * (stats.ngRate?.estimate ?? 0)).toFixed(1)} % ` +
  `(95 % CI ${(100 * (stats.ngRate?.lower ?? 0)).toFixed(1)}-${(100 * (stats.ngRate?.upper ?? 0)).toFixed(1)} %), p95 latency ${stats.latencyMs?.p95 ?? '-'} ms`);
