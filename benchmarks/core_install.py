"""The core install and import: ``pip install ranvier`` in a fresh venv, and ``import ranvier``.

Targets (issue 19): the core (numpy, numba, h5py, matplotlib, tqdm; no torch, tonic, dask, nir,
snntorch or sympy) installs in a fresh virtual environment in <= 60 s on this machine, and
``import ranvier`` takes <= 0.5 s warm. Each repetition makes a new venv and runs
``pip install --no-cache-dir <repo>`` (pip's wheel cache off, so every wheel is fetched from the
package index again), then checks that the core simulates (CUBA 400 neurons, 0.1 s) and that
none of the extras came with it. The import is timed in a fresh process after one warm-up
import (the bytecode written). Writes the section "Core install" of BENCHMARKS.md.

    python benchmarks/core_install.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

from harness import REPO, machine_info, write_section

EXTRAS = ("torch", "tonic", "dask", "nir", "snntorch", "sympy")
CHECK = ("import importlib.util, ranvier as rv; net = rv.networks.cuba(n=400, seed=1); "
         "net.record(net['exc'], 'spikes'); net.run(0.1); "
         f"print(net.spike_monitors[0].num_spikes, [m for m in {EXTRAS!r} if importlib.util.find_spec(m)])")
IMPORT = "import time; t = time.perf_counter(); import ranvier; print(time.perf_counter() - t)"


def install_once(directory: Path) -> dict:
    """A fresh venv in ``directory``, the core installed into it: seconds, and what the check printed."""
    venv.create(directory, with_pip=True)
    python = directory / "bin" / "python"
    start = time.perf_counter()
    subprocess.run([str(python), "-m", "pip", "install", "--no-cache-dir", "-q", str(REPO)], check=True,
                   capture_output=True)
    seconds = time.perf_counter() - start
    check = subprocess.run([str(python), "-c", CHECK], capture_output=True, text=True, cwd=directory)
    if check.returncode:
        raise RuntimeError(f"the core venv could not simulate: {check.stderr}")
    subprocess.run([str(python), "-c", IMPORT], check=True, capture_output=True, cwd=directory)  # bytecode
    imports = [float(subprocess.run([str(python), "-c", IMPORT], check=True, capture_output=True, text=True,
                                    cwd=directory).stdout) for _ in range(5)]
    return {"install_s": seconds, "check": check.stdout.strip(), "import_s": statistics.median(imports)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh venvs to install into (3)")
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="ranvier-core-") as directory:
            runs.append(install_once(Path(directory)))
            print(runs[-1], flush=True)
    installs = [run["install_s"] for run in runs]
    imports = [run["import_s"] for run in runs]
    info = machine_info()
    spikes, extras = runs[-1]["check"].split(" ", 1)
    median_install, median_import = statistics.median(installs), statistics.median(imports)
    section = "\n".join([
        "## Core install",
        "",
        f"Run {time.strftime('%Y-%m-%d')} by `benchmarks/core_install.py` on {info['cpu']}, {info['cores']} cores, "
        f"{info['os']}; Python {info['python']}; the package index of this machine.",
        "",
        "| measure | target | median (range) | result |",
        "|---|---|---|---|",
        f"| `pip install --no-cache-dir ranvier` (core) in a fresh venv | <= 60 s | {median_install:.1f} s "
        f"({min(installs):.1f}-{max(installs):.1f}), {len(runs)} venvs | "
        f"{'PASS' if median_install <= 60 else 'FAIL'} |",
        f"| `import ranvier`, warm, fresh process | <= 0.5 s | {median_import:.3f} s "
        f"({min(imports):.3f}-{max(imports):.3f}) | {'PASS' if median_import <= 0.5 else 'FAIL'} |",
        "",
        f"The core venv simulated CUBA (400 neurons, 0.1 s: {spikes} excitatory spikes) and held none of "
        f"{', '.join(EXTRAS)} (found: {extras}).",
        "",
    ])
    write_section("## Core install", section)
    print(section)


if __name__ == "__main__":
    sys.exit(main())
