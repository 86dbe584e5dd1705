#!/usr/bin/env bash
# The big measurements, one stage per call on a machine with many cores (and a GPU for
# `gpu`). BENCH is a benchmark-layout folder (CUDA/ HIP/ MLU/ CPP/ and TransEval/); on the
# lent device it is a carried copy of ../shared/xpilerbench. Results go to $OUT (or ./out).
#
#   bench/device_sweep.sh selfcheck BENCH       # selfcheck of all four platforms
#   bench/device_sweep.sh bench BENCH cuda hip  # xpiler bench from these platforms to all
#   bench/device_sweep.sh gpu BENCH             # CUDA kernels on the GPU vs the emulator
set -u
stage=$1; bench=$2; shift 2
out=${OUT:-out}; mkdir -p "$out"
jobs=${JOBS:-$(nproc)}
export PYTHONUNBUFFERED=1 XPILER_BENCH_MAX_ELEMENTS=${XPILER_BENCH_MAX_ELEMENTS:-268435456}
py=${PYTHON:-python3}
case $stage in
selfcheck)
  for p in CUDA HIP MLU CPP; do
    $py -m xpiler.cli selfcheck "$bench/$p" --jobs $((jobs / 4)) --timeout 150 --json "$out/selfcheck_$p.json" \
      > "$out/selfcheck_$p.log" 2>&1 &
  done
  wait
  tail -n 3 "$out"/selfcheck_*.log
  $py - "$out" <<'PY'
import json, sys, glob, os
rows = [r for f in sorted(glob.glob(os.path.join(sys.argv[1], "selfcheck_*.json"))) for r in json.load(open(f))]
json.dump(rows, open(os.path.join(sys.argv[1], "selfcheck.json"), "w"))
PY
  ;;
bench)
  n=$#; per=$((jobs / n))
  sc=${SELFCHECK:+--selfcheck $SELFCHECK}
  for p in "$@"; do
    $py -m xpiler.cli bench "$bench" --from "$p" --to all --jobs $per --no-compile --seeds 2 --timeout 100 \
      $sc --json "$out/bench_$p.json" --report "$out/bench_$p.md" > "$out/bench_$p.log" 2>&1 &
  done
  wait
  for p in "$@"; do grep -A20 '^| direction' "$out/bench_$p.log"; done
  ;;
gpu)
  $py bench/gpu_vs_emu.py "$bench/CUDA" --jobs "$jobs" --max-mb 1200 --json "$out/gpu_vs_emu.json" \
    > "$out/gpu_vs_emu.log" 2>&1
  tail -n 15 "$out/gpu_vs_emu.log"
  ;;
*) echo "unknown stage $stage" >&2; exit 2 ;;
esac
