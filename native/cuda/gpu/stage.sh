#!/usr/bin/env bash
# Moves what the GPU check does not need out of the working tree, so that the device tool's copy of the tree
# (tracked + untracked-not-ignored files, 64 MiB with the carried paths) stays small, and puts it back after.
#   bash native/cuda/gpu/stage.sh hide      # datasets/ and test/fixtures/{coco,core,qc,qc-serve,detect,captions}
#                                           #   -> $KESTREL_GPU_HIDDEN (default /tmp/kestrel-gpu-hidden)
#   bash native/cuda/gpu/stage.sh restore   # moves them back; fails if a tracked file under them is missing
#   bash native/cuda/gpu/stage.sh status | list
# Both directions are idempotent (a second hide or restore does nothing). While hidden, anything that needs
# datasets/ (its tests, tsc -b of the datasets package) fails: keep the window short.
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=$PWD
HIDDEN="${KESTREL_GPU_HIDDEN:-/tmp/kestrel-gpu-hidden}"
PATHS=(datasets test/fixtures/coco test/fixtures/core test/fixtures/qc test/fixtures/qc-serve test/fixtures/detect test/fixtures/captions)

missing_tracked() { # tracked files under PATHS that are not on disk
  git -C "$ROOT" ls-files --deleted -- "${PATHS[@]}"
}

case "${1:-}" in
  list)
    printf '%s\n' "${PATHS[@]}" ;;
  status)
    for p in "${PATHS[@]}"; do
      t=no; h=no; [ -e "$ROOT/$p" ] && t=yes; [ -e "$HIDDEN/$p" ] && h=yes
      echo "$p: in tree $t, hidden $h"
    done ;;
  hide)
    if [ -f "$HIDDEN/.origin" ] && [ "$(cat "$HIDDEN/.origin")" != "$ROOT" ]; then
      echo "stage: $HIDDEN holds paths hidden from $(cat "$HIDDEN/.origin"); restore those first" >&2; exit 1
    fi
    mkdir -p "$HIDDEN"; echo "$ROOT" > "$HIDDEN/.origin"
    for p in "${PATHS[@]}"; do
      if [ -e "$HIDDEN/$p" ]; then
        if [ -e "$ROOT/$p" ]; then echo "stage: $p is both in the tree and in $HIDDEN; run restore first" >&2; exit 1; fi
        echo "stage: $p already hidden"
      elif [ -e "$ROOT/$p" ]; then
        mkdir -p "$HIDDEN/$(dirname "$p")"
        mv "$ROOT/$p" "$HIDDEN/$p"
        echo "stage: hid $p"
      else
        echo "stage: $p is not in the tree (nothing to hide)"
      fi
    done ;;
  restore)
    for p in "${PATHS[@]}"; do
      [ -e "$HIDDEN/$p" ] || continue
      if [ -e "$ROOT/$p" ]; then
        # something (e.g. tsc -b) re-created part of it meanwhile: put the originals back over it
        cp -a "$HIDDEN/$p/." "$ROOT/$p/"
        rm -rf "${HIDDEN:?}/$p"
        echo "stage: restored $p (merged over what was re-created in the tree)"
      else
        mkdir -p "$ROOT/$(dirname "$p")"
        mv "$HIDDEN/$p" "$ROOT/$p"
        echo "stage: restored $p"
      fi
    done
    gone=$(missing_tracked)
    if [ -n "$gone" ]; then
      echo "stage: FAIL: $(echo "$gone" | wc -l) tracked files are missing, e.g.:" >&2; echo "$gone" | head -5 >&2; exit 1
    fi
    # nothing left to restore: drop the (empty) staging folder
    if [ -d "$HIDDEN" ] && [ -z "$(find "$HIDDEN" -mindepth 1 -not -name .origin -not -type d -print -quit)" ]; then rm -rf "$HIDDEN"; fi
    echo "stage: OK, every tracked file under $(printf '%s ' "${PATHS[@]}")is in place" ;;
  *)
    echo "usage: stage.sh hide|restore|status|list" >&2; exit 2 ;;
esac
