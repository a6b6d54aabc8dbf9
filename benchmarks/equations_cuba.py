"""CUBA with its LIF written as ``Equations`` against the built-in ``neurons.LIF``: same spikes, run time.

    python benchmarks/equations_cuba.py [--n 4000] [--duration 1.0] [--repeats 7] [--quick] [--no-report]

Both networks are ``rv.networks.cuba(n, seed=1)``; the Equations model is Brian 2's CUBA
neuron (``dv/dt = (v_rest - v + I_exc + I_inh) / tau_m`` with two exponential currents,
``method="exact"``). The script checks that both give the same spikes and the same final
state bit for bit, then times the run on numba (the JIT warmed by a first run of each; each
repetition builds fresh networks, and the two sides alternate, their order flipped every other
repetition). Compile time is measured in fresh processes with empty kernel caches (cold) and
again with the caches they left (warm). Target: Equations / LIF <= 1.1 (median of the
per-repetition ratios; the range is shown). The section ``## Equations`` of
``benchmarks/BENCHMARKS.md`` is replaced.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from harness import cpu_name, ranvier_env, write_section

import ranvier as rv
from ranvier.neurons.equations.library import CUBA_LIF
from ranvier.units import ms, mV

HEADING = "## Equations: CUBA with an Equations LIF (`benchmarks/equations_cuba.py`)"
TARGET = 1.1


def equations_lif() -> rv.neurons.Equations:
    return rv.neurons.Equations(
        CUBA_LIF, threshold="v >= v_th", reset="v = v_reset", refractory=5 * ms, method="exact",
        parameters={"tau_m": 20 * ms, "tau_exc": 5 * ms, "tau_inh": 10 * ms, "v_rest": -49 * mV, "v_th": -50 * mV,
                    "v_reset": -60 * mV},
        receptors={"exc": "I_exc", "inh": "I_inh"})


def build(side: str, n: int):
    return rv.networks.cuba(n=n, seed=1, model=equations_lif() if side == "Equations" else None)


def same_spikes(n: int, duration: float) -> tuple[bool, int]:
    recorded = []
    for side in ("LIF", "Equations"):
        net = build(side, n)
        monitors = [net.record(net[name], "spikes") for name in ("exc", "inh")]
        net.run(duration)
        # the two models order their state rows differently: compare the variables by name
        recorded.append([m.steps.copy() for m in monitors] + [m.ids.copy() for m in monitors]
                        + [net[name].get(variable).copy() for name in ("exc", "inh")
                           for variable in ("v", "I_exc", "I_inh", "refractory")])
    same = all(np.array_equal(a, b) for a, b in zip(*recorded, strict=True))
    return same, int(sum(len(steps) for steps in recorded[0][:2]))


def timed(side: str, n: int, duration: float) -> float:
    net = build(side, n)
    start = time.perf_counter()
    net.run(duration)
    return time.perf_counter() - start


_COMPILE = """
import sys, time
sys.path.insert(0, {bench!r})
from equations_cuba import build
start = time.perf_counter()
net = build({side!r}, 400)
net.run(0.001)
print(time.perf_counter() - start)
"""


def compile_seconds(side: str) -> tuple[float, float]:
    """First build and run of a small CUBA in a fresh process: with empty caches, then with theirs."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**__import__("os").environ, **ranvier_env(cache)}
        script = _COMPILE.format(bench=str(Path(__file__).resolve().parent), side=side)
        times = []
        for _ in range(2):
            result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                    check=True)
            times.append(float(result.stdout.strip().splitlines()[-1]))
        return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="n=1000, 0.2 s, 3 repetitions; no report")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.n, args.duration, args.repeats, args.no_report = 1000, 0.2, 3, True

    same, spikes = same_spikes(args.n, args.duration)
    for side in ("LIF", "Equations"):
        timed(side, args.n, 0.05)  # compile
    times = {"LIF": [], "Equations": []}
    for repetition in range(args.repeats):
        for side in ("LIF", "Equations") if repetition % 2 == 0 else ("Equations", "LIF"):
            times[side].append(timed(side, args.n, args.duration))
    ratios = [e / lif for e, lif in zip(times["Equations"], times["LIF"], strict=True)]
    compile_times = {side: compile_seconds(side) for side in ("LIF", "Equations")}
    ratio = statistics.median(ratios)
    record = {"same_spikes_and_state": same, "spikes": spikes, "times": times, "ratios": ratios, "ratio": ratio,
              "compile": compile_times}
    print(json.dumps(record, indent=1))
    verdict = "PASS" if ratio <= TARGET and same else "FAIL"
    lines = [
        HEADING, "",
        f"Finished {datetime.now(timezone.utc).isoformat(timespec='seconds')}. Machine: {cpu_name()}; "
        f"numba {__import__('numba').__version__}, sympy {__import__('sympy').__version__}. "
        f"`rv.networks.cuba(n={args.n}, seed=1)`, {args.duration:g} s on numba, {args.repeats} alternating "
        "repetitions (median, range in parentheses).", "",
        "| side | run (s) | compile, cold / warm cache (s) |", "|---|---|---|",
    ]
    for side in ("LIF", "Equations"):
        run = times[side]
        cold, warm = compile_times[side]
        lines.append(f"| `{'neurons.LIF' if side == 'LIF' else 'neurons.Equations'}` | {statistics.median(run):.4f} "
                     f"({min(run):.4f}-{max(run):.4f}) | {cold:.2f} / {warm:.2f} |")
    lines += ["", f"Same spikes ({spikes}) and the same final state, bit for bit: {same}. "
              f"Equations / LIF run time: **{ratio:.3f}** ({min(ratios):.3f}-{max(ratios):.3f}); target <= {TARGET}: "
              f"**{verdict}**.", ""]
    if not args.no_report:
        write_section(HEADING, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
