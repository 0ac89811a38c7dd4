#!/usr/bin/env bash
# Packs what the GPU machine needs to run Kestrel's JS there (it has no Node.js and no network) into the git-ignored
# folder .gpu-carry/ at the repo root, to be carried by the device tool (carry: [".gpu-carry"]):
#   node.xz           this machine's node binary (process.execPath), xz -6
#   runtime.tar.xz    what plain `node` needs to run native/cuda/gpu/run-{golden,decode}.mjs from the repo root:
#                     the compiled dist/ of the imported workspace packages, the node_modules packages they import
#                     at run time, the node_modules/@kestrel/* links, and the N-API shim
#                     native/cuda/build/kestrel_cuda.node (built here from src/shim.c on every run: the GPU
#                     machine has no Node headers; libkestrel_cuda.so is built there by nvcc)
#   anchor/           gen_deepseek2_moe.py (from ../shared/tools/perf-anchor, which does not travel) and gguf.py,
#                     a stand-in for llama.cpp's gguf-py that is enough for the HF-only checkpoint (--gguf '')
# Then checks the runtime from an isolated copy (the carried node + runtime + the tracked sources, no
# node_modules) and prints the size that would travel: tracked files on disk + untracked non-ignored files +
# .gpu-carry, without the paths stage.sh hides. Fails above 62 MiB.
#   bash native/cuda/gpu/pack.sh [--no-build] [--no-verify]
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=$PWD
CARRY=$ROOT/.gpu-carry
GEN_SRC=${KESTREL_ANCHOR_GEN:-$ROOT/../shared/tools/perf-anchor/gen_deepseek2_moe.py}
[ -f "$GEN_SRC" ] || GEN_SRC=/work/shared/tools/perf-anchor/gen_deepseek2_moe.py
LIMIT=$((62 * 1024 * 1024))
BUILD=1; VERIFY=1
for a in "$@"; do
  case "$a" in --no-build) BUILD=0 ;; --no-verify) VERIFY=0 ;; *) echo "usage: pack.sh [--no-build] [--no-verify]" >&2; exit 2 ;; esac
done
NODE=$(command -v node)
NODE_BIN=$(node -p 'process.execPath')
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }

# never commit or track the carry folder
EXCL=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCL")"
grep -qxF '/.gpu-carry/' "$EXCL" 2>/dev/null || echo '/.gpu-carry/' >> "$EXCL"
mkdir -p "$CARRY/anchor"

# 1. the TypeScript, and the shim (cc, the same flags as native/cuda/build.mjs) into a temp folder
TMP=$(mktemp -d /tmp/kestrel-pack.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
if [ "$BUILD" = 1 ]; then
  # tsc -b needs every project, datasets/ included: pack before 'stage.sh hide', not after
  if [ ! -f datasets/tsconfig.json ]; then echo "pack: datasets/ is hidden; run 'bash native/cuda/gpu/stage.sh restore' first, then pack, then hide" >&2; exit 1; fi
  echo "pack: npx tsc -b"
  npx tsc -b
fi
NODE_INC=""
for d in "${npm_config_nodedir:+$npm_config_nodedir/include/node}" "$(dirname "$NODE_BIN")/../include/node" /usr/include/node; do
  [ -n "$d" ] && [ -f "$d/node_api.h" ] && { NODE_INC=$d; break; }
done
[ -n "$NODE_INC" ] || { echo "pack: node_api.h not found (Node headers)" >&2; exit 1; }
mkdir -p "$TMP/shim/native/cuda/build"
echo "pack: cc shim.c -> kestrel_cuda.node (headers $NODE_INC)"
( cd native/cuda && ${CC:-cc} -O2 -fPIC -shared -std=c11 -Wall -Wextra -Werror -I"$NODE_INC" -Isrc -DNODE_GYP_MODULE_NAME=kestrel_cuda \
    -o "$TMP/shim/native/cuda/build/kestrel_cuda.node" src/shim.c -ldl ) 2>&1 | tee "$TMP/shim.log"
if [ -s "$TMP/shim.log" ] || [ ! -f "$TMP/shim/native/cuda/build/kestrel_cuda.node" ]; then echo "pack: the shim build failed or printed warnings" >&2; exit 1; fi
GLIBC_NEED=$(objdump -T "$TMP/shim/native/cuda/build/kestrel_cuda.node" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
echo "pack: shim needs $GLIBC_NEED (node: $(objdump -T "$NODE_BIN" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1))"

# 2. node.xz: reuse one that decompresses to exactly this binary (/tmp/node.xz is a cache of it)
node_ok() { [ -f "$1" ] && [ "$1" -nt "$NODE_BIN" ] && xz -dc "$1" 2>/dev/null | cmp -s - "$NODE_BIN"; }
if node_ok "$CARRY/node.xz"; then
  echo "pack: node.xz is up to date"
elif node_ok /tmp/node.xz; then
  cp /tmp/node.xz "$CARRY/node.xz"; echo "pack: node.xz from /tmp/node.xz"
else
  echo "pack: xz -6 $NODE_BIN (about 90 s)"
  xz -6 -T0 -c "$NODE_BIN" > "$CARRY/node.xz.tmp" && mv "$CARRY/node.xz.tmp" "$CARRY/node.xz"
  cp "$CARRY/node.xz" /tmp/node.xz
fi

# 3. runtime.tar.xz. The module set is what the runners load (found with a resolve hook + require.cache:
#    @kestrel/{core,native,moe,vit,projector} and pipelines/dist/vlm; zod, @huggingface/tokenizers; sharp and its
#    deps + the linux-x64 binaries). Whole packages, without type declarations, source maps and zod's TS sources.
RUNTIME=(
  packages/core/dist packages/moe/dist packages/vit/dist packages/projector/dist packages/pipelines/dist native/dist
  node_modules/@kestrel/core node_modules/@kestrel/native node_modules/@kestrel/moe node_modules/@kestrel/vit
  node_modules/@kestrel/projector node_modules/@kestrel/pipelines
  node_modules/zod node_modules/@huggingface/tokenizers
  node_modules/sharp node_modules/@img/colour node_modules/detect-libc node_modules/semver
  node_modules/@img/sharp-linux-x64 node_modules/@img/sharp-libvips-linux-x64
)
for p in "${RUNTIME[@]}"; do [ -e "$p" ] || { echo "pack: $p is missing (npm ci, npx tsc -b?)" >&2; exit 1; }; done
[ -f native/dist/decode-bound.js ] || { echo "pack: native/dist/decode-bound.js is missing (npx tsc -b)" >&2; exit 1; }
echo "pack: runtime.tar.xz"
tar -cf "$TMP/runtime.tar" --exclude='*.d.ts' --exclude='*.d.cts' --exclude='*.d.mts' --exclude='*.map' \
  --exclude='node_modules/zod/src' --exclude='*.test.js' "${RUNTIME[@]}"
tar -rf "$TMP/runtime.tar" -C "$TMP/shim" native/cuda/build/kestrel_cuda.node
xz -6 -T0 -c "$TMP/runtime.tar" > "$CARRY/runtime.tar.xz"

# 4. the anchor generator + the gguf stand-in
rm -f "$CARRY/anchor/gen_deepseek2_moe.py" "$CARRY/anchor/gguf.py"
cp "$GEN_SRC" "$CARRY/anchor/gen_deepseek2_moe.py"
cp native/cuda/gpu/anchor/gguf.py "$CARRY/anchor/gguf.py"
( cd "$CARRY/anchor" && python3 gen_deepseek2_moe.py --preset anchor --gguf '' --hf bf16 --stats-only > /dev/null ) \
  || { echo "pack: the carried generator does not run with the gguf stand-in" >&2; exit 1; }

# 5. an isolated check: the carried node + runtime on a copy of the sources with no node_modules
if [ "$VERIFY" = 1 ]; then
  V=$TMP/verify
  mkdir -p "$V"
  git ls-files -z --cached --others --exclude-standard -- package.json packages native test/fixtures/lm/A test/fixtures/vlm/A \
    | tar -cf - --null -T - --ignore-failed-read 2>/dev/null | tar -xf - -C "$V"
  xz -dc "$CARRY/node.xz" > "$TMP/node"; chmod +x "$TMP/node"
  tar -xJf "$CARRY/runtime.tar.xz" -C "$V"
  echo "pack: isolated check (carried node, runtime, no node_modules from here; device 'cpu')"
  if ! ( cd "$V" && env -i PATH=/usr/bin:/bin HOME="$TMP" "$TMP/node" native/cuda/gpu/run-golden.mjs --device cpu --models A ); then
    echo "pack: the isolated check failed: a module is missing from runtime.tar.xz?" >&2; exit 1
  fi
fi

# 6. what would travel: tracked files on disk + untracked non-ignored + .gpu-carry, less what stage.sh hides
mapfile -t HIDE < <(bash native/cuda/gpu/stage.sh list)
tree_bytes() { # $1 = 1 to leave out the hidden paths
  local args=()
  if [ "$1" = 1 ]; then for h in "${HIDE[@]}"; do args+=(":(exclude)$h"); done; fi
  git ls-files -z --cached --others --exclude-standard -- . "${args[@]}" | sort -zu \
    | xargs -0 -r stat -c '%s %F' 2>/dev/null | awk '$2 == "regular" || $2 == "symbolic" { s += $1 } END { print s + 0 }'
}
CARRY_B=$(find "$CARRY" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
NOW_B=$(tree_bytes 0); HID_B=$(tree_bytes 1)
echo "pack: node.xz $(mib "$(stat -c %s "$CARRY/node.xz")"), runtime.tar.xz $(mib "$(stat -c %s "$CARRY/runtime.tar.xz")"), .gpu-carry $(mib "$CARRY_B")"
echo "pack: working tree as it is now $(mib "$NOW_B"); without the paths stage.sh hides $(mib "$HID_B")"
TOTAL=$((HID_B + CARRY_B))
echo "pack: total that travels after 'stage.sh hide': $(mib "$TOTAL") (limit 62 MiB; the device tool's is 64 MiB)"
if [ "$TOTAL" -gt "$LIMIT" ]; then echo "pack: FAIL: over 62 MiB" >&2; exit 1; fi
if [ $((NOW_B + CARRY_B)) -gt "$LIMIT" ]; then echo "pack: note: run 'bash native/cuda/gpu/stage.sh hide' before the device run ($(mib $((NOW_B + CARRY_B))) now)"; fi
echo "pack: OK"
