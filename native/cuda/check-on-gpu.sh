#!/usr/bin/env bash
# The one prepared check of the CUDA backend on a GPU machine (e.g. the `device` tool's H200), from the repo root:
#   bash native/cuda/check-on-gpu.sh
# Writes under $OUT (default ./cuda-check-out): device.txt, build.log, ops.log, memcheck.log, golden.log/.json,
# anchor-gen.log, decode.log/.json, summary.txt (the key lines of every step). Exits non-zero when a step fails;
# the later steps still run. The whole script keeps within a time budget (KESTREL_CHECK_BUDGET_S, default 470 s):
# every step has a timeout, cut down so that the later steps keep their time.
#
# The device image has nvcc, python3 + numpy and compute-sanitizer, but no Node.js, and node_modules (~540 MB) is
# over the 64 MiB carry limit. So the op check is Python (ctypes on the C ABI). The JS steps (5, 6) run with
#   - node + node_modules (a dev machine), or
#   - the carried .gpu-carry/ made by native/cuda/gpu/pack.sh (node.xz, runtime.tar.xz, anchor/): node is unpacked
#     to /tmp/kestrel-node and the runtime (dist/, the imported node_modules, the prebuilt N-API shim) into the
#     tree. See native/cuda/gpu/README.md.
#
#   1. device facts (nvidia-smi, nvcc)
#   2. build libkestrel_cuda.so for sm_80, sm_90, compute_90 PTX, warnings as errors (npm run build:cuda when
#      node_modules is there, else the same nvcc command directly, with -t 0: the targets in parallel)
#   3. every op vs a float64 reference (check_ops.py; its reference is checked against the portable TS ops by
#      native/lib/cuda-pyref.test.ts) + decode-shaped GEMV bandwidth on device buffers and the copy bandwidth
#   4. the same op check under compute-sanitizer memcheck (out-of-bounds and misaligned accesses)
#   5. [node] golden LM/VLM cases on device 'cuda' (native/cuda/gpu/run-golden.mjs, as native/lib/cuda-golden.test.ts;
#      with node_modules also the JS op check native/lib/cuda-ops.test.ts)
#   6. [node] decode timing, bf16 and int8, on the perf-anchor model vs the bandwidth bound
#      (native/cuda/gpu/run-decode.mjs, as native/lib/cuda-decode.test.ts). The checkpoint: KESTREL_ANCHOR_DIR, or
#      made in /tmp/kestrel-anchor (HF bf16 only, started in the background at the beginning) by the generator in
#      .gpu-carry/anchor/ (with its gguf stand-in) or native/cuda/build/anchor/ (with llama.cpp's gguf-py).
# Expected time on an H200 (16 cores): about 5-7 minutes; nvcc for three targets and memcheck are most of it.
# Knobs (for rehearsals on a machine without a GPU, see native/cuda/gpu/README.md): KESTREL_CUDA_DIR (folder of
# libkestrel_cuda.so + kestrel_cuda.node, as native/lib/cuda.ts), KESTREL_CHECK_NO_BUILD=1 (skip step 2),
# KESTREL_ANCHOR_PRESET (default anchor), KESTREL_DECODE_STEPS (default 64), KESTREL_DECODE_DTYPE (default all).
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT="${OUT:-$ROOT/cuda-check-out}"
mkdir -p "$OUT"
: > "$OUT/summary.txt"
status=0
T0=$SECONDS
BUDGET=${KESTREL_CHECK_BUDGET_S:-470}
say() { echo "$*" | tee -a "$OUT/summary.txt"; }
result() { if [ "$2" -eq 0 ]; then say "   PASS $1 ($3s)"; elif [ "$2" -eq 124 ] || [ "$2" -eq 137 ]; then say "   FAIL $1: timed out after $3s"; status=1; else say "   FAIL $1 (rc $2, $3s)"; status=1; fi; }
# cap SECONDS [RESERVE]: a step's timeout, at most SECONDS, leaving RESERVE seconds of the budget to later steps
cap() { local c=$1 r=$((BUDGET - (SECONDS - T0) - ${2:-0})); [ "$r" -lt "$c" ] && c=$r; [ "$c" -lt 15 ] && c=15; echo "$c"; }
PY=python3
LIBDIR="${KESTREL_CUDA_DIR:-$ROOT/native/cuda/build}"
LIB="$LIBDIR/libkestrel_cuda.so"

# Node: node_modules here (full), or the carried runtime (carried), or none
NODE_MODE=none
if command -v node >/dev/null 2>&1 && [ -d node_modules ] && [ ! -f node_modules/.kestrel-gpu-runtime ]; then
  NODE_MODE=full
elif [ -f .gpu-carry/node.xz ] && [ -f .gpu-carry/runtime.tar.xz ]; then
  # xz, or Python's lzma where the image has no xz
  unxz() { if command -v xz >/dev/null 2>&1; then xz -dc "$1"; else $PY -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"; fi; }
  mkdir -p /tmp/kestrel-node
  if unxz .gpu-carry/node.xz > /tmp/kestrel-node/node && chmod +x /tmp/kestrel-node/node \
     && unxz .gpu-carry/runtime.tar.xz | tar -xf - -C "$ROOT" && touch node_modules/.kestrel-gpu-runtime; then
    export PATH="/tmp/kestrel-node:$PATH"
    if node_v=$(node --version 2>&1); then NODE_MODE=carried; else NODE_UNPACK_ERR="the carried node does not run: $node_v"; fi
  else
    NODE_UNPACK_ERR="unpacking .gpu-carry failed"
  fi
fi

# the anchor checkpoint for step 6, made in the background while steps 2-5 run (one core, ~1 min, 2.5 GB)
ANCHOR_PID=""
ANCHOR_PRESET=${KESTREL_ANCHOR_PRESET:-anchor}
if [ "$NODE_MODE" != none ] && [ -z "${KESTREL_ANCHOR_DIR:-}" ]; then
  GEN=""; GEN_PATH=""
  if [ -f .gpu-carry/anchor/gen_deepseek2_moe.py ]; then GEN=.gpu-carry/anchor/gen_deepseek2_moe.py; GEN_PATH=.gpu-carry/anchor
  elif [ -f native/cuda/build/anchor/gen_deepseek2_moe.py ]; then GEN=native/cuda/build/anchor/gen_deepseek2_moe.py; GEN_PATH=native/cuda/build/anchor/gguf-py; fi
  if [ -n "$GEN" ]; then
    rm -rf "/tmp/kestrel-anchor/ds2moe-$ANCHOR_PRESET-hf"
    ( s=$SECONDS; PYTHONPATH=$GEN_PATH timeout -k 5 240 $PY "$GEN" --preset "$ANCHOR_PRESET" --out /tmp/kestrel-anchor --gguf '' --hf bf16 > "$OUT/anchor-gen.log" 2>&1
      rc=$?; echo "anchor-gen rc $rc in $((SECONDS - s))s" >> "$OUT/anchor-gen.log"; exit $rc ) &
    ANCHOR_PID=$!
  fi
fi

say "== 1 device"
{ nvidia-smi; nvidia-smi --query-gpu=name,memory.total,clocks.max.memory,driver_version --format=csv; nvcc --version; nproc; command -v node && node --version; } > "$OUT/device.txt" 2>&1
grep -E "H200|H100|A100|Driver|release" "$OUT/device.txt" | head -4 | tee -a "$OUT/summary.txt"
say "   node: $NODE_MODE${node_v:+ ($node_v)}${NODE_UNPACK_ERR:+ ($NODE_UNPACK_ERR)}"

say "== 2 build"
s=$SECONDS
if [ "${KESTREL_CHECK_NO_BUILD:-0}" = 1 ]; then
  say "   SKIP build (KESTREL_CHECK_NO_BUILD=1); library: $LIB"
elif [ "$NODE_MODE" = full ]; then
  timeout -k 10 "$(cap 300)" npm run build:cuda > "$OUT/build.log" 2>&1
  rc=$?; result "build (all targets, warning-free)" $rc $((SECONDS - s))
else
  mkdir -p native/cuda/build
  ( cd native/cuda && timeout -k 10 "$(cap 300)" nvcc -t 0 -std=c++17 -O3 -shared \
      -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 \
      -Werror all-warnings -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra,-Werror \
      -Isrc -o build/libkestrel_cuda.so src/kernels.cu ) > "$OUT/build.log" 2>&1
  rc=$?; result "build (all targets, warning-free)" $rc $((SECONDS - s))
fi
[ -f "$LIB" ] || { say "no library ($LIB); stopping"; [ -n "$ANCHOR_PID" ] && kill "$ANCHOR_PID" 2>/dev/null; exit 1; }

# time kept for steps 5 and 6 when they will run
RESERVE=0; [ "$NODE_MODE" != none ] && RESERVE=300

say "== 3 ops vs float64 reference, bandwidth"
s=$SECONDS
PYTHONUNBUFFERED=1 timeout -k 10 "$(cap 150 $((RESERVE + 60)))" $PY native/cuda/check_ops.py --lib "$LIB" --bench --log "$OUT/ops.log" > "$OUT/ops-stdout.log" 2>&1
rc=$?; result "check_ops.py" $rc $((SECONDS - s))
grep -E "^FAIL|error in|ops pass|bandwidth|gemv|unavailable" "$OUT/ops-stdout.log" | tee -a "$OUT/summary.txt"

say "== 4 compute-sanitizer memcheck"
if command -v compute-sanitizer >/dev/null 2>&1; then
  s=$SECONDS
  PYTHONUNBUFFERED=1 timeout -k 10 "$(cap 90 $RESERVE)" compute-sanitizer --tool memcheck --error-exitcode 9 $PY native/cuda/check_ops.py --lib "$LIB" > "$OUT/memcheck.log" 2>&1
  rc=$?; result "memcheck" $rc $((SECONDS - s))
  grep -E "ERROR SUMMARY|Invalid|misaligned" "$OUT/memcheck.log" | head -5 | tee -a "$OUT/summary.txt"
else
  say "   SKIP memcheck: compute-sanitizer not found"
fi

if [ "$NODE_MODE" != none ]; then
  say "== 5 golden LM/VLM on device 'cuda'"
  if [ "$NODE_MODE" = full ]; then
    [ -f "$LIBDIR/kestrel_cuda.node" ] || node native/cuda/build.mjs --targets=sm90 >> "$OUT/build.log" 2>&1
    [ -f native/dist/decode-bound.js ] || npx tsc -b >> "$OUT/build.log" 2>&1
    s=$SECONDS
    timeout -k 10 "$(cap 120 180)" npx vitest run native/lib/cuda-ops.test.ts > "$OUT/cuda-ops.log" 2>&1
    rc=$?; result "cuda-ops (JS, vitest)" $rc $((SECONDS - s))
    grep -E "✓|×|skipped" "$OUT/cuda-ops.log" | head -10 | tee -a "$OUT/summary.txt"
  fi
  [ -f "$LIBDIR/kestrel_cuda.node" ] || say "   note: no N-API shim at $LIBDIR/kestrel_cuda.node"
  s=$SECONDS
  OUT="$OUT" timeout -k 10 "$(cap 150 120)" node native/cuda/gpu/run-golden.mjs --device cuda > "$OUT/golden.log" 2>&1
  rc=$?; result "golden LM/VLM (run-golden.mjs)" $rc $((SECONDS - s))
  grep -E "^(PASS|FAIL)|^golden:|Error|error:" "$OUT/golden.log" | head -24 | sed 's/^/   /' | tee -a "$OUT/summary.txt"
  # the experimental fused ops (KESTREL_CUDA_FUSED=1) on the LM cases: decode steps and prefills of <= 16 rows
  s=$SECONDS
  KESTREL_CUDA_FUSED=1 OUT="$OUT/fused" timeout -k 10 "$(cap 60 120)" node native/cuda/gpu/run-golden.mjs --device cuda --only lm > "$OUT/golden-fused.log" 2>&1
  rc=$?; result "golden LM with fused ops (KESTREL_CUDA_FUSED=1, experimental)" $rc $((SECONDS - s))
  grep -E "^(FAIL)|^golden:|Error|error:" "$OUT/golden-fused.log" | head -8 | sed 's/^/   /' | tee -a "$OUT/summary.txt"

  say "== 6 decode timing (perf anchor)"
  if [ -n "$ANCHOR_PID" ]; then
    wait "$ANCHOR_PID"; rc=$?
    tail -1 "$OUT/anchor-gen.log" | sed 's/^/   /' | tee -a "$OUT/summary.txt"
    d=/tmp/kestrel-anchor/ds2moe-$ANCHOR_PRESET-hf
    if [ "$rc" -eq 0 ] && [ -f "$d/model.safetensors" ]; then export KESTREL_ANCHOR_DIR="$d"; else result "anchor checkpoint ($ANCHOR_PRESET)" "$rc" 0; fi
  fi
  if [ -n "${KESTREL_ANCHOR_DIR:-}" ]; then
    s=$SECONDS
    OUT="$OUT" timeout -k 10 "$(cap 240)" node native/cuda/gpu/run-decode.mjs --dir "$KESTREL_ANCHOR_DIR" \
      --dtype "${KESTREL_DECODE_DTYPE:-all}" --steps "${KESTREL_DECODE_STEPS:-64}" > "$OUT/decode.log" 2>&1
    rc=$?; result "decode timing (run-decode.mjs)" $rc $((SECONDS - s))
    grep -E "^device|^decode|^  (bf16|int8)|FAIL|Error|error:" "$OUT/decode.log" | head -24 | sed 's/^/   /' | tee -a "$OUT/summary.txt"
  else
    say "   SKIP decode timing: no anchor checkpoint (KESTREL_ANCHOR_DIR, or the generator in .gpu-carry/anchor/ or native/cuda/build/anchor/)"
  fi
else
  say "== 5/6 SKIP golden cases and decode timing: no Node.js (neither node + node_modules nor .gpu-carry/ from native/cuda/gpu/pack.sh)${NODE_UNPACK_ERR:+: $NODE_UNPACK_ERR}"
fi

# 7. where a decode step's time goes: ncu's kernel times over 3 op-by-op steps (needs ncu, node and the anchor)
if [ "${KESTREL_PROFILE:-1}" = 1 ] && [ "$NODE_MODE" != none ] && [ -n "${KESTREL_ANCHOR_DIR:-}" ] && command -v ncu >/dev/null 2>&1; then
  say "== 7 decode profile (ncu, bf16, 3 op-by-op steps)"
  s=$SECONDS
  OUT="$OUT" timeout -k 10 "$(cap 150)" ncu --profile-from-start off --clock-control none --target-processes all \
    --metrics gpu__time_duration.sum --csv --print-units base --log-file "$OUT/ncu.csv" \
    node native/cuda/gpu/profile-decode.mjs --dir "$KESTREL_ANCHOR_DIR" --dtype bf16 --steps 3 > "$OUT/profile.log" 2>&1
  rc=$?; result "ncu profile" $rc $((SECONDS - s))
  step_ms=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["msPerTokenEager"])' "$OUT/profile-steps.json" 2>/dev/null)
  $PY native/cuda/gpu/ncu_summary.py "$OUT/ncu.csv" --steps 3 ${step_ms:+--step-ms "$step_ms"} > "$OUT/profile-summary.txt" 2>&1
  grep -E "^\{" "$OUT/profile.log" | head -1 | sed 's/^/   /' | tee -a "$OUT/summary.txt"
  head -16 "$OUT/profile-summary.txt" | sed 's/^/   /' | tee -a "$OUT/summary.txt"
  tail -1 "$OUT/profile-summary.txt" | sed 's/^/   /' | tee -a "$OUT/summary.txt"
fi

say "== done (status $status) in $((SECONDS - T0))s"
# The device tool returns at most 8 files: keep the summaries, put every log into one archive.
( cd "$OUT" && ls | grep -vE '^(summary\.txt|decode\.json|golden\.json|profile-summary\.txt|logs\.tgz)$' > .logs.list \
  && [ -s .logs.list ] && tar czf logs.tgz -T .logs.list && xargs rm -f < .logs.list; rm -f .logs.list ) 2>/dev/null
exit $status
