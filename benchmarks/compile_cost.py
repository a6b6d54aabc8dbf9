"""Compile cost: a first run with empty caches and with warm ones, and where numba's compile time goes.

    .venv/bin/python benchmarks/compile_cost.py [--repeats 2] [--baseline PATH] [--no-write]

Workloads, each in fresh processes on 2 numba threads: CUBA 4000 (``rv.networks.cuba``, the kind of
network ``ranvier demo`` runs) and the Potjans-Diesmann microcircuit at scale 0.2 (15 434 neurons:
enough that its eight populations update together in one parallel loop, and a per-synapse-delay
delivery on all threads, as at full scale). The first process of a repetition starts with empty numba
and kernel caches (cold), the second reads what the first wrote (warm). Reported: the build, the first
run (10 ms of simulated time, compiling or loading the kernel) and, cold, the numba functions whose
compiles took longest (numba's compile events; a function's time includes what it compiled inside).

``--baseline PATH`` measures another checkout (a ``git worktree``) beside the working tree, the
two sides alternating. Writes the section "Compile cost" of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from harness import REPO, machine_info, ranvier_env, write_section

HEADING = "## Compile cost: first runs with empty and warm caches (`benchmarks/compile_cost.py`)"
WORKLOADS = {"cuba": "rv.networks.cuba(n=4000, seed=1)", "microcircuit": "rv.networks.microcircuit(scale=0.2, seed=1)"}

_CHILD = """
import collections, json, time
from numba.core import event
import ranvier as rv

compiles = collections.defaultdict(float)


class Compiles(event.Listener):
    def __init__(self):
        self.started = {{}}

    def on_start(self, ev):
        self.started[id(ev.data["dispatcher"]), ev.data["args"]] = time.perf_counter()

    def on_end(self, ev):
        started = self.started.pop((id(ev.data["dispatcher"]), ev.data["args"]), None)
        function = ev.data["dispatcher"].py_func
        if started is not None:
            # a generated kernel's module is named by its fingerprint
            module = function.__module__.split(".")[-1]
            module = "kernel" if module.startswith("ranvier_kernel_") else module
            compiles[module + "." + function.__qualname__] += time.perf_counter() - started


event.register("numba:compile", Compiles())
started = time.perf_counter()
net = {network}
built = time.perf_counter()
net.run(0.01)
ran = time.perf_counter()
top = sorted(compiles.items(), key=lambda item: -item[1])[:4]
print(json.dumps({{"build_s": built - started, "first_run_s": ran - built, "spikes": net.stats.spikes,
                  "top": [[name, round(seconds, 2)] for name, seconds in top]}}))
"""


def measure(source: Path, workload: str, cache: Path) -> dict:
    """One fresh process of ``workload`` importing ranvier from ``source``, its caches in ``cache``."""
    env = {**ranvier_env(cache), "PYTHONPATH": str(source), "NUMBA_NUM_THREADS": "2"}
    finished = subprocess.run([sys.executable, "-c", _CHILD.format(network=WORKLOADS[workload])],
                              env={**os.environ, **env}, capture_output=True, text=True, timeout=1800,
                              cwd=tempfile.gettempdir())
    if finished.returncode != 0:
        raise RuntimeError(f"{workload} from {source}: {finished.stderr.strip().splitlines()[-1:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="another checkout, measured beside the working tree")
    parser.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS.md")
    args = parser.parse_args()
    sides = [("working tree", REPO)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    records: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.repeats):
        for workload in WORKLOADS:
            for side, source in sides:
                with tempfile.TemporaryDirectory() as cache:
                    cold = measure(source, workload, Path(cache))
                    warm = measure(source, workload, Path(cache))
                records.setdefault((side, workload), []).append({"cold": cold, "warm": warm})
                print(side, workload, json.dumps(records[side, workload][-1]), flush=True)

    def span(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    machine = machine_info()
    lines = [HEADING, "",
             f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {machine['cpu']}, {machine['cores']} cores, "
             f"Python {machine['python']}, numba {machine['numba']}, 2 numba threads; {args.repeats} repetitions, "
             "medians (ranges). Cold: empty numba and kernel caches; warm: a second process on the caches the "
             "first wrote. First run: `net.run(0.01)` after the build, compiling (cold) or loading the kernel.",
             "", "| side | workload | build, cold (s) | first run, cold (s) | build, warm (s) | first run, warm (s) "
             "| spikes | longest compiles, cold (s, the last repetition) |", "|---|---|---|---|---|---|---|---|"]
    for (side, workload), runs in records.items():
        top = ", ".join(f"`{name}` {seconds}" for name, seconds in runs[-1]["cold"]["top"])
        cells = [span([r[cache][measured] for r in runs])
                 for cache in ("cold", "warm") for measured in ("build_s", "first_run_s")]
        lines.append(f"| {side} | {workload} | {' | '.join(cells)} | {runs[-1]['cold']['spikes']} | {top} |")
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        write_section(HEADING, section)


if __name__ == "__main__":
    main()
