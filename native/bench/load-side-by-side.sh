#!/bin/sh
# Load time and peak RSS of Kestrel's int8 (`kestrel quantize`) anchor checkpoint against llama.cpp's mmap load of
# the Q8_0 GGUF of the same weights, back to back in one script: Kestrel, llama.cpp, Kestrel. Short pp/tg runs
# (64/16) only touch the weights, so peak RSS includes every weight page. Files as for side-by-side.sh.
# usage: native/bench/load-side-by-side.sh [OUTDIR] [THREADS]   (run from the repository root)
set -e
OUT=${1:-/tmp/perf/results-load}
T=${2:-2}
MODELS=${MODELS:-/tmp/perf/models}
mkdir -p "$OUT"
uptime > "$OUT/uptime-start"
# read both files once so every load below starts from the page cache
cat "$MODELS/ds2moe-anchor-q8-kestrel/model.safetensors" "$MODELS/ds2moe-anchor-q8_0.gguf" > /dev/null
node packages/cli/bin/kestrel.js bench lm --model "$MODELS/ds2moe-anchor-q8-kestrel" --threads "$T" --reps 1 --prompt-tokens 64 --gen-tokens 16 --json > "$OUT/kestrel-a.json"
node ../shared/tools/perf-anchor/bench-llamacpp.mjs --models "$MODELS/ds2moe-anchor-q8_0.gguf" --threads "$T" --reps 1 --pp 64 --tg 16 --quiet-wait 0 > "$OUT/llamacpp.json"
node packages/cli/bin/kestrel.js bench lm --model "$MODELS/ds2moe-anchor-q8-kestrel" --threads "$T" --reps 1 --prompt-tokens 64 --gen-tokens 16 --json > "$OUT/kestrel-b.json"
uptime > "$OUT/uptime-end"
node -e '
const fs = require("fs"), d = process.argv[1];
const k = ["a", "b"].map((x) => JSON.parse(fs.readFileSync(d + "/kestrel-" + x + ".json")));
const l = JSON.parse(fs.readFileSync(d + "/llamacpp.json").toString().trim().split("\n").pop()).results[0];
const load = k.map((r) => r.load_s);
console.log(JSON.stringify({
  kestrel_int8: { load_s: load, peak_rss_mb: k.map((r) => r.peak_rss_mb), weight_mb: k[0].weight_mb, kv_cache_mb: k[0].kv_cache_mb,
    rss_budget_mb: Math.round(k[0].weight_mb + k[0].kv_cache_mb + 300) },
  llamacpp_q8_0: { load_s: l.loadMs / 1000, peak_rss_mib: l.peakRssMiB },
  ratio_load: +(Math.max(...load) / (l.loadMs / 1000)).toFixed(2),
  uptime: [fs.readFileSync(d + "/uptime-start", "utf8").trim(), fs.readFileSync(d + "/uptime-end", "utf8").trim()],
}, null, 1));' "$OUT" | tee "$OUT/summary.json"
