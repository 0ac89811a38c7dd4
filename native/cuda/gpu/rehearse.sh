#!/usr/bin/env bash
# A rehearsal of the device run on this machine, without a GPU: copies what the device tool would copy (tracked
# files on disk + untracked non-ignored files, less what stage.sh hides) and .gpu-carry/ into $SIM (default
# /tmp/gpu-sim), puts the CPU stand-in of the C ABI (native/cuda/test/fake_kc.cc, built as cuda-stack.test.ts
# builds it) where nvcc would put libkestrel_cuda.so, and runs native/cuda/check-on-gpu.sh there with a PATH that
# has no node (so the carried node and runtime are used), the build step skipped, and the tiny anchor preset.
# Run native/cuda/gpu/pack.sh first. Output: $SIM/out/summary.txt (printed at the end).
#   bash native/cuda/gpu/rehearse.sh [--anchor] [--no-xz]
#     --anchor: the real anchor preset (2.5 GB in /tmp; slow through the stand-in, which computes in double)
#     --no-xz:  no xz on the PATH either (check-on-gpu.sh then unpacks with Python's lzma)
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=$PWD
SIM=${SIM:-/tmp/gpu-sim}
[ -f .gpu-carry/node.xz ] && [ -f .gpu-carry/runtime.tar.xz ] || { echo "rehearse: run native/cuda/gpu/pack.sh first" >&2; exit 1; }
PRESET=tiny; STEPS=16; SKIP="node|npm|npx|corepack|nvcc"
for a in "$@"; do
  case "$a" in --anchor) PRESET=anchor; STEPS=4 ;; --no-xz) SKIP="$SKIP|xz" ;; *) echo "usage: rehearse.sh [--anchor] [--no-xz]" >&2; exit 2 ;; esac
done

rm -rf "$SIM"; mkdir -p "$SIM"
mapfile -t HIDE < <(bash native/cuda/gpu/stage.sh list)
EX=(); for h in "${HIDE[@]}"; do EX+=(":(exclude)$h"); done
git ls-files -z --cached --others --exclude-standard -- . "${EX[@]}" | sort -zu \
  | tar -cf - --null -T - --ignore-failed-read 2>/dev/null | tar -xf - -C "$SIM"
cp -a .gpu-carry "$SIM/.gpu-carry"
echo "rehearse: $(du -sb --exclude=.gpu-carry "$SIM" | cut -f1) bytes of tree + $(du -sb "$SIM/.gpu-carry" | cut -f1) bytes of .gpu-carry in $SIM"

mkdir -p "$SIM/native/cuda/build"
( cd "$SIM/native/cuda" && c++ -O1 -shared -fPIC -std=c++17 -Wall -Wextra -Werror -o build/libkestrel_cuda.so test/fake_kc.cc )

# a PATH without node/npm/npx (the device image has none)
BIN=$SIM.bin; rm -rf "$BIN"; mkdir -p "$BIN"
for f in /usr/bin/* /usr/local/bin/*; do
  b=$(basename "$f"); [[ "$b" =~ ^($SKIP)$ ]] && continue
  [ -e "$BIN/$b" ] || ln -s "$f" "$BIN/$b"
done
PYDIR=$(dirname "$(python3 -c 'import sys; print(sys.executable)')")
cd "$SIM"
env -i HOME="$HOME" PATH="$PYDIR:$BIN" OUT="$SIM/out" KESTREL_CHECK_NO_BUILD=1 KESTREL_ANCHOR_PRESET=$PRESET KESTREL_DECODE_STEPS=$STEPS \
  bash native/cuda/check-on-gpu.sh > "$SIM/check.log" 2>&1 && rc=0 || rc=$?
echo "rehearse: check-on-gpu.sh exited $rc; $SIM/out/summary.txt:"
cat "$SIM/out/summary.txt"
