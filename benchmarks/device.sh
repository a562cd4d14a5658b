#!/usr/bin/env bash
# Aggregate training images/s against the number of vmapped seeds on one accelerator (sized for < 5 min
# on one H200-class GPU: each case compiles once and times a few short calls).
# Usage: bash benchmarks/device.sh            (needs jax with the accelerator's plugin installed)
# Note: written without access to a GPU; the CPU numbers in docs/performance.md come from benchmarks/run.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
$PY -c "import jax; print('# backend', jax.default_backend(), jax.devices())"
for case in "dc15 100" "dc15 400" "thesis 30"; do
  set -- $case
  for seeds in 1 32 128 512; do
    timeout 120 $PY benchmarks/run.py _worker --net "$1" --n "$2" --seeds "$seeds" --chunk 2 --chunks 2 \
      || echo "{\"net\": \"$1\", \"n_exc\": $2, \"seeds\": $seeds, \"error\": \"failed or timed out\"}"
  done
done | $PY -c '
import json, sys
print(f"{\"net\":<8}{\"N\":>5}{\"seeds\":>7}{\"img/s/seed\":>12}{\"img/s all\":>11}{\"compile s\":>10}")
for line in sys.stdin:
    if not line.startswith("{"):
        print(line, end=""); continue
    r = json.loads(line)
    if "error" in r:
        print(f"{r[\"net\"]:<8}{r[\"n_exc\"]:>5}{r[\"seeds\"]:>7}  {r[\"error\"]}"); continue
    print(f"{r[\"net\"]:<8}{r[\"n_exc\"]:>5}{r[\"seeds\"]:>7}{r[\"images_per_sec_per_seed\"]:>12.1f}"
          f"{r[\"images_per_sec_aggregate\"]:>11.1f}{r[\"compile_s\"]:>10.1f}", flush=True)
'
