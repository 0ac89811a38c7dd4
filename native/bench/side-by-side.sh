#!/bin/sh
# Kestrel `bench lm` and llama.cpp (perf-anchor, node-llama-cpp) on the same anchor model, back to back in one
# script so both see the same machine load: Kestrel, llama.cpp, Kestrel again. Prints the ratios at the end.
# Needs the anchor files from ../shared/tools/perf-anchor (README) in $MODELS, node-llama-cpp in /tmp/perf, and
# the int8 checkpoint written once with:
#   kestrel quantize --model $MODELS/ds2moe-anchor-hf --out $MODELS/ds2moe-anchor-q8-kestrel
# Both benches wait (up to QUIET seconds, default 120) before each run for a second in which other processes
# use < 0.15 core.
# usage: native/bench/side-by-side.sh [OUTDIR] [THREADS] [LLAMA_REPS]   (run from the repository root)
set -e
OUT=${1:-/tmp/perf/results}
T=${2:-2}
LREPS=${3:-2}
MODELS=${MODELS:-/tmp/perf/models}
QUIET=${QUIET:-120}
mkdir -p "$OUT"
date -u +%FT%TZ > "$OUT/started"
node packages/cli/bin/kestrel.js bench lm --model "$MODELS/ds2moe-anchor-q8-kestrel" --threads "$T" --dtype int8 --reps 3 --quiet-wait "$QUIET" --json > "$OUT/kestrel-int8-a.json"
node ../shared/tools/perf-anchor/bench-llamacpp.mjs --models "$MODELS/ds2moe-anchor-q8_0.gguf" --threads "$T" --reps "$LREPS" --quiet-wait "$QUIET" > "$OUT/llamacpp-q8_0.json"
node packages/cli/bin/kestrel.js bench lm --model "$MODELS/ds2moe-anchor-q8-kestrel" --threads "$T" --dtype int8 --reps 3 --quiet-wait "$QUIET" --json > "$OUT/kestrel-int8-b.json"
date -u +%FT%TZ > "$OUT/finished"
node -e '
const fs = require("fs"), d = process.argv[1];
const a = JSON.parse(fs.readFileSync(d + "/kestrel-int8-a.json")), b = JSON.parse(fs.readFileSync(d + "/kestrel-int8-b.json"));
const l = JSON.parse(fs.readFileSync(d + "/llamacpp-q8_0.json").toString().trim().split("\n").pop()).results[0];
const k = (x) => [a, b].map((r) => r[x]);
console.log(JSON.stringify({
  kestrel_int8: { prefill_tok_s: k("prefill_tok_s"), decode_tok_s: k("decode_tok_s"), peak_rss_mb: k("peak_rss_mb"), other_cores: [...a.runs, ...b.runs].map((r) => r.other_cores),
    machine: k("machine"), decode_bound_tok_s: k("decode_bound_tok_s"), decode_fraction_of_bound: k("decode_fraction_of_bound"), prefill_fraction_of_peak: k("prefill_fraction_of_peak") },
  llamacpp_q8_0: { prefill_tok_s: l.ppTokS.median, decode_tok_s: l.tgTokS.median, peak_rss_mib: l.peakRssMiB, other_cores: l.otherCpuCoresDuringRuns },
  ratio_prefill: +(Math.min(...k("prefill_tok_s")) / l.ppTokS.median).toFixed(2),
  ratio_decode: +(Math.min(...k("decode_tok_s")) / l.tgTokS.median).toFixed(2),
}, null, 1));' "$OUT" | tee "$OUT/summary.json"
