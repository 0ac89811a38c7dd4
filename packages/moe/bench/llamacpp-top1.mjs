// llama.cpp's greedy next token at every position of the perf-anchor prompt (node-llama-cpp
// controlledEvaluate), written as a JSON array, to compare with kestrel-top1.mjs.
// Needs node-llama-cpp@3.21.1 under /tmp/perf (see ../shared/tools/perf-anchor/README.md).
// Usage: node packages/moe/bench/llamacpp-top1.mjs MODEL.gguf OUT.json [512]
import { pathToFileURL } from 'node:url';
import { writeFileSync } from 'node:fs';
const nlc = await import(pathToFileURL('/tmp/perf/node_modules/node-llama-cpp/dist/index.js').href);
const { getLlama, LlamaLogLevel } = nlc;
const [modelPath, outPath, N = '512'] = process.argv.slice(2);
const n = Number(N);
const ids = [0]; let x = 12345 >>> 0;
while (ids.length < n) { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; ids.push(2 + ((x >>> 8) % (32000 - 2))); }
const llama = await getLlama({ gpu: false, build: 'never', maxThreads: 2, logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });
const context = await model.createContext({ contextSize: 1024, batchSize: 512, threads: 2 });
const seq = context.getSequence();
const res = await seq.controlledEvaluate(ids.map((t) => [t, { generateNext: { token: true, options: { temperature: 0 } } }]));
const top = res.map((r) => r?.next?.token ?? -1);
writeFileSync(outPath, JSON.stringify(top));
console.log(modelPath, 'positions', top.length, 'missing', top.filter((t) => t < 0).length);
await context.dispose(); await model.dispose();
