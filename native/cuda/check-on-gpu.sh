#!/usr/bin/env bash
# The one prepared check of the CUDA backend on a GPU machine (e.g. the `device` tool's H200), run from the
# repository root:   bash native/cuda/check-on-gpu.sh
# Writes everything under $OUT (default ./cuda-check-out): device.txt, build.log, ops.log, ops-vitest.log,
# golden.log, decode.json, decode.log, summary.txt. Exits non-zero when a step fails; later steps still run.
#
# Steps (about 4-6 minutes on an H200 with 16 cores; budget 15 minutes of device time for all tries):
#   1. nvidia-smi and nvcc facts
#   2. npm run build:cuda (sm_80, sm_90, compute_90 PTX; warnings are errors) and the C++ CPU addon
#   3. every CUDA op vs the portable reference (native/lib/cuda-ops.test.ts)
#   4. golden LM and VLM cases on device 'cuda' (native/lib/cuda-golden.test.ts)
#   5. decode timing on the perf-anchor model vs the copy-bandwidth bound (native/lib/cuda-decode.test.ts)
#
# Step 5 needs the anchor's HF checkpoint. Either set KESTREL_ANCHOR_DIR to an existing one, or make it here:
# the generator needs python3 + numpy + llama.cpp's gguf-py. The device machine has no network, so carry them
# in an ignored folder, e.g. before the run:
#   mkdir -p native/cuda/build/anchor && cp ../shared/tools/perf-anchor/gen_deepseek2_moe.py native/cuda/build/anchor/ \
#     && cp -r /tmp/llcpp/gguf-py native/cuda/build/anchor/    # (see ../shared/tools/perf-anchor/README.md)
# and pass carry: ["native/cuda/build", "node_modules"] (node_modules only if the machine lacks it).
set -u
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/cuda-check-out}"
mkdir -p "$OUT"
status=0
step() { echo "== $*" | tee -a "$OUT/summary.txt"; }
result() { # name rc
  if [ "$2" -eq 0 ]; then echo "   PASS $1" | tee -a "$OUT/summary.txt"; else echo "   FAIL $1 (rc $2)" | tee -a "$OUT/summary.txt"; status=1; fi
}
: > "$OUT/summary.txt"

step "device"
{ nvidia-smi || true; nvidia-smi --query-gpu=name,memory.total,clocks.max.memory,driver_version --format=csv || true; nvcc --version || true; node --version; nproc; } > "$OUT/device.txt" 2>&1
head -20 "$OUT/device.txt"

step "build"
{ npm run build:cuda && node native/scripts/build-addon.mjs --allow-fail; } > "$OUT/build.log" 2>&1
rc=$?; result "build:cuda (all targets, warning-free)" $rc
if [ ! -f native/cuda/build/kestrel_cuda.node ]; then echo "no CUDA build; stopping" | tee -a "$OUT/summary.txt"; exit 1; fi
node -e "import('./native/lib/cuda.ts').catch(()=>0)" >/dev/null 2>&1 || true

step "ops vs portable"
KESTREL_CUDA_LOG="$OUT/ops.log" timeout 300 npx vitest run native/lib/cuda-ops.test.ts > "$OUT/ops-vitest.log" 2>&1
rc=$?; result "cuda-ops" $rc
[ -f "$OUT/ops.log" ] && grep -c PASS "$OUT/ops.log" | sed 's/^/   ops passing: /' | tee -a "$OUT/summary.txt"
[ -f "$OUT/ops.log" ] && grep FAIL "$OUT/ops.log" | tee -a "$OUT/summary.txt"
grep -m3 -E "skipped|Error" "$OUT/ops-vitest.log" | tee -a "$OUT/summary.txt"

step "golden LM/VLM on device 'cuda'"
timeout 600 npx vitest run native/lib/cuda-golden.test.ts > "$OUT/golden.log" 2>&1
rc=$?; result "cuda-golden" $rc
grep -E "✓|×|skipped" "$OUT/golden.log" | head -20 | tee -a "$OUT/summary.txt"

step "decode timing (perf anchor)"
if [ -z "${KESTREL_ANCHOR_DIR:-}" ]; then
  GEN=""; for g in native/cuda/build/anchor/gen_deepseek2_moe.py shared/tools/perf-anchor/gen_deepseek2_moe.py ../shared/tools/perf-anchor/gen_deepseek2_moe.py; do [ -f "$g" ] && GEN="$g" && break; done
  GGUF_PY="${GGUF_PY:-}"; for p in native/cuda/build/anchor/gguf-py /tmp/llcpp/gguf-py; do [ -z "$GGUF_PY" ] && [ -d "$p" ] && GGUF_PY="$p"; done
  if [ -n "$GEN" ] && [ -n "$GGUF_PY" ]; then
    PYTHONPATH="$GGUF_PY" timeout 300 python3 "$GEN" --preset anchor --out /tmp/kestrel-anchor --gguf '' --hf bf16 > "$OUT/anchor-gen.log" 2>&1
    d=$(ls -d /tmp/kestrel-anchor/*-hf 2>/dev/null | head -1)
    [ -n "$d" ] && export KESTREL_ANCHOR_DIR="$d"
  fi
fi
if [ -n "${KESTREL_ANCHOR_DIR:-}" ]; then
  KESTREL_CUDA_BENCH_OUT="$OUT/decode.json" timeout 600 npx vitest run native/lib/cuda-decode.test.ts > "$OUT/decode.log" 2>&1
  rc=$?; result "cuda-decode" $rc
  [ -f "$OUT/decode.json" ] && cat "$OUT/decode.json" | tee -a "$OUT/summary.txt"
else
  echo "   SKIP decode timing: no anchor checkpoint (set KESTREL_ANCHOR_DIR or carry the generator, see the header)" | tee -a "$OUT/summary.txt"
fi

step "done (status $status)"
exit $status
