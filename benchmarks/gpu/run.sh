#!/usr/bin/env bash
# The prepared GPU check of issue 17 (benchmarks/gpu/gpu_checks.py): at most 8 minutes on one H100/H200.
#
#   bash benchmarks/gpu/run.sh                                  # on the GPU machine
#   NUMBA_ENABLE_CUDASIM=1 bash benchmarks/gpu/run.sh --small   # tiny sizes on numba's CUDA simulator
#
# On a lent machine whose image lacks ncps (the mixed network's CfC) and snnTorch (the training peer), carry
# their wheels: `pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl ncps==1.0.1
# snntorch==1.0.0` here, then there `pip install --no-index --no-deps --target /tmp/site .whl/*.whl` and
# PYTHONPATH=/tmp/site. It took 325 s on an H200 (2026-12-04) with every section; `--only` reruns some
# sections, `--previous` fills the others from an earlier gpu_checks.json.
#
# Results: $OUT/gpu_checks.json and $OUT/gpu_section.md (OUT defaults to benchmarks/results), and the
# GPU section of $REPORT (default benchmarks/BENCHMARKS.md). PYTHON picks the interpreter (default:
# .venv/bin/python where it exists, else python3); the working tree's ranvier is imported, installed or not.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-}
if [ -z "$python" ]; then
    if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
out=${OUT:-benchmarks/results}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# the sections stop starting after 420 s (--budget); the timeout is the 8-minute bound (TIMEOUT_S: the
# simulator's runs, which time nothing, may take longer), and the JSON written so far stays
exec timeout "${TIMEOUT_S:-480}" "$python" benchmarks/gpu/gpu_checks.py --json "$out/gpu_checks.json" \
    --section "$out/gpu_section.md" --report "${REPORT:-benchmarks/BENCHMARKS.md}" "$@"
