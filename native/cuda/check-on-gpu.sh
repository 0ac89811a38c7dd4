#!/usr/bin/env bash
# The one prepared check of the CUDA backend on a GPU machine (e.g. the `device` tool's H200), from the repo root:
#   bash native/cuda/check-on-gpu.sh
# Writes under $OUT (default ./cuda-check-out): device.txt, build.log, ops.log, memcheck.log, golden.log,
# decode.json/decode.log, summary.txt. Exits non-zero when a step fails; the later steps still run.
#
# The device image has nvcc, python3 + numpy and compute-sanitizer, but (as far as KINDS.md says) no Node.js, and
# node_modules (~540 MB) is over the 64 MiB carry limit. So the op check is Python (ctypes on the C ABI), and the
# steps that run Kestrel's JS models (golden cases, decode timing) run only where `node` and node_modules exist.
#
#   1. device facts (nvidia-smi, nvcc)
#   2. build libkestrel_cuda.so for sm_80, sm_90, compute_90 PTX, warnings as errors (npm run build:cuda when
#      node is there, else the same nvcc command directly)
#   3. every op vs a float64 reference (check_ops.py; its reference is checked against the portable TS ops by
#      native/lib/cuda-pyref.test.ts) + decode-shaped GEMV bandwidth on device buffers and the copy bandwidth
#   4. the same op check under compute-sanitizer memcheck (out-of-bounds and misaligned accesses)
#   5. [node] golden LM/VLM cases on device 'cuda' (native/lib/cuda-golden.test.ts)
#   6. [node] decode timing on the perf-anchor model (native/lib/cuda-decode.test.ts; KESTREL_ANCHOR_DIR or the
#      generator carried into native/cuda/build/anchor/ with llama.cpp's gguf-py, see docs/cuda.md)
# Expected time on an H200: steps 1-4 about 2-3 minutes (nvcc for three targets is most of it).
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT="${OUT:-$ROOT/cuda-check-out}"
mkdir -p "$OUT"
: > "$OUT/summary.txt"
status=0
say() { echo "$*" | tee -a "$OUT/summary.txt"; }
result() { if [ "$2" -eq 0 ]; then say "   PASS $1"; else say "   FAIL $1 (rc $2)"; status=1; fi; }
PY=python3
HAVE_NODE=0; command -v node >/dev/null 2>&1 && [ -d node_modules ] && HAVE_NODE=1

say "== 1 device"
{ nvidia-smi; nvidia-smi --query-gpu=name,memory.total,clocks.max.memory,driver_version --format=csv; nvcc --version; nproc; command -v node && node --version; } > "$OUT/device.txt" 2>&1
grep -E "H200|H100|A100|Driver|release" "$OUT/device.txt" | head -4 | tee -a "$OUT/summary.txt"

say "== 2 build"
if [ "$HAVE_NODE" = 1 ]; then
  npm run build:cuda > "$OUT/build.log" 2>&1
else
  mkdir -p native/cuda/build
  ( cd native/cuda && nvcc -std=c++17 -O3 -shared \
      -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 \
      -Werror all-warnings -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra,-Werror \
      -Isrc -o build/libkestrel_cuda.so src/kernels.cu ) > "$OUT/build.log" 2>&1
fi
rc=$?; result "build (all targets, warning-free)" $rc
[ -f native/cuda/build/libkestrel_cuda.so ] || { say "no library; stopping"; exit 1; }

say "== 3 ops vs float64 reference, bandwidth"
PYTHONUNBUFFERED=1 timeout 300 $PY native/cuda/check_ops.py --lib native/cuda/build/libkestrel_cuda.so --bench --log "$OUT/ops.log" > "$OUT/ops-stdout.log" 2>&1
rc=$?; result "check_ops.py" $rc
grep -E "^FAIL|error in|ops pass|bandwidth|gemv|unavailable" "$OUT/ops-stdout.log" | tee -a "$OUT/summary.txt"

say "== 4 compute-sanitizer memcheck"
if command -v compute-sanitizer >/dev/null 2>&1; then
  PYTHONUNBUFFERED=1 timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 $PY native/cuda/check_ops.py --lib native/cuda/build/libkestrel_cuda.so > "$OUT/memcheck.log" 2>&1
  rc=$?; result "memcheck" $rc
  grep -E "ERROR SUMMARY|Invalid|misaligned" "$OUT/memcheck.log" | head -5 | tee -a "$OUT/summary.txt"
else
  say "   SKIP memcheck: compute-sanitizer not found"
fi

if [ "$HAVE_NODE" = 1 ]; then
  say "== 5 golden LM/VLM on device 'cuda'"
  [ -f native/cuda/build/kestrel_cuda.node ] || node native/cuda/build.mjs --targets=sm90 >> "$OUT/build.log" 2>&1
  timeout 600 npx vitest run native/lib/cuda-ops.test.ts native/lib/cuda-golden.test.ts > "$OUT/golden.log" 2>&1
  rc=$?; result "cuda-ops (JS) + cuda-golden" $rc
  grep -E "✓|×|skipped" "$OUT/golden.log" | head -20 | tee -a "$OUT/summary.txt"

  say "== 6 decode timing (perf anchor)"
  if [ -z "${KESTREL_ANCHOR_DIR:-}" ] && [ -f native/cuda/build/anchor/gen_deepseek2_moe.py ]; then
    PYTHONPATH=native/cuda/build/anchor/gguf-py timeout 300 $PY native/cuda/build/anchor/gen_deepseek2_moe.py --preset anchor --out /tmp/kestrel-anchor --gguf '' --hf bf16 > "$OUT/anchor-gen.log" 2>&1
    d=$(ls -d /tmp/kestrel-anchor/*-hf 2>/dev/null | head -1); [ -n "$d" ] && export KESTREL_ANCHOR_DIR="$d"
  fi
  if [ -n "${KESTREL_ANCHOR_DIR:-}" ]; then
    KESTREL_CUDA_BENCH_OUT="$OUT/decode.json" timeout 600 npx vitest run native/lib/cuda-decode.test.ts > "$OUT/decode.log" 2>&1
    rc=$?; result "cuda-decode" $rc
    [ -f "$OUT/decode.json" ] && tee -a "$OUT/summary.txt" < "$OUT/decode.json"
  else
    say "   SKIP decode timing: no anchor checkpoint (KESTREL_ANCHOR_DIR, or the generator in native/cuda/build/anchor/)"
  fi
else
  say "== 5/6 SKIP golden cases and decode timing: Node.js or node_modules is not on this machine"
fi

say "== done (status $status)"
exit $status
