#!/usr/bin/env bash
# Create the peer-simulator virtual environments used by the benchmarks.
#
#   benchmarks/.venv-brian2  Brian 2 2.9.0 (needs numpy < 2.3: newer numpy breaks its import)
#   benchmarks/.venv-nest    NEST simulator from PyPI, plus numpy
#
# Idempotent: a venv whose packages already import is left alone; a broken or
# missing one is (re)created.  Set PYTHON to choose the interpreter (default python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"

# ensure_venv DIR IMPORT_CHECK PIP_ARGS...
#   Create DIR with PIP_ARGS installed unless `DIR/bin/python -c IMPORT_CHECK` already succeeds.
ensure_venv() {
    local dir="$1" check="$2"
    shift 2
    if [[ -x "$dir/bin/python" ]] && "$dir/bin/python" -c "$check" >/dev/null 2>&1; then
        echo "ok: $dir already works"
        return
    fi
    echo "creating $dir"
    rm -rf "$dir"
    "$python" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --upgrade pip
    "$dir/bin/python" -m pip install --quiet "$@"
    "$dir/bin/python" -c "$check"
    echo "ok: $dir created"
}

ensure_venv "$here/.venv-brian2" \
    "import brian2, numpy; assert brian2.__version__ == '2.9.0'" \
    "numpy<2.3" "brian2==2.9.0"

ensure_venv "$here/.venv-nest" \
    "import nest, numpy" \
    nest-simulator numpy
