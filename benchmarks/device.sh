#!/usr/bin/env bash
# snnjax training images/s on one accelerator, against N and against the number of vmapped seeds.
# Sized to finish in about 5 minutes on one H200-class GPU: first the conv network (64 images per
# phase, 1 and 8 seeds, conv_impl dot, nhwc and events; each case killed after 120 s), then the DC15 / thesis
# cases, each one process (start-up + compile + 1 warm-up call + 2 timed calls of 1 image per seed),
# killed after 60 s; no DC15 case is started after 170 s, and they run most important first (the
# rest are listed as skipped).
#
# Usage: bash benchmarks/device.sh [--tiny] [OUT_DIR]
#   needs jax with the accelerator's plugin (e.g. pip install "jax[cuda12]"); writes
#   OUT_DIR/device_conv.json, OUT_DIR/device_conv.md (the conv network), OUT_DIR/device.json,
#   OUT_DIR/device_scaling.png and prints the tables (OUT_DIR default: ./device-out).
#   --tiny: a 4-image conv run and three small cases, for checking the script on a CPU (≈ 3–8 min).
# Not yet run on a GPU: the figures in docs/performance.md are CPU figures from benchmarks/run.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
TINY=0
if [[ "${1:-}" == "--tiny" ]]; then TINY=1; shift; fi
OUT=${1:-device-out}
mkdir -p "$OUT"
$PY -c "import jax; print('# backend', jax.default_backend(), jax.devices())"
# the conv network first (Mozafari et al. 2019 layout, per phase, 1 and 8 vmapped seeds, both conv
# implementations; no SpykeTorch): its own JSON and table
if [[ $TINY == 1 ]]; then CONV=(--conv-images 4 --conv-seeds 1,2); else CONV=(--conv-images 64 --conv-seeds 1,8); fi
$PY benchmarks/run.py --conv-only --no-spyketorch --conv-impl dot,nhwc,events --conv-repeats 1 --case-timeout 120 "${CONV[@]}" \
  --json "$OUT/device_conv.json" --markdown "$OUT/device_conv.md"
if [[ $TINY == 1 ]]; then
  CASES="dc15:100:1,dc15:100:4,thesis:30:2"
  EXTRA=(--budget-s 150)
else
  # most important first: single seed and many seeds at N=100/400 and the thesis network, then
  # growth with N, then the intermediate seed counts
  CASES="dc15:100:1,dc15:100:1024,dc15:100:4096,dc15:400:1,dc15:400:1024,thesis:30:1,thesis:30:1024,"
  CASES+="dc15:1600:1,dc15:6400:1,dc15:1600:128,dc15:100:128,dc15:400:128,thesis:30:128,dc15:6400:16"
  EXTRA=(--budget-s 170)
fi
$PY benchmarks/run.py --cases "$CASES" --chunk 1 --chunks 2 --case-timeout 60 --no-first100 --no-conv \
  --no-numpy --no-brian2 --no-bindsnet "${EXTRA[@]}" --json "$OUT/device.json" --plot "$OUT/device_scaling.png"
