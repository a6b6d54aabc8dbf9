"""Brunel (2000) model A with its external input as spikes or drawn inside the targets.

    .venv/bin/python benchmarks/brunel_background.py [--n 12500] [--duration 0.5] [--repeats 3]

``networks.brunel(background="sources")`` (the default) sends the external Poisson input as the
spikes of one ``PoissonSource`` per neuron through one-to-one projections;
``background="drive"`` draws each neuron's input count per step inside its population
(``PoissonInput``). Both run on numba in one process, alternating, each repetition on a fresh
network of the same seed after an untimed 10 ms that compiles or loads the kernel; reported: run
time (median, range), the excitatory rate and ISI CV after 0.1 s (``peers/cuba_common.spike_statistics``),
synaptic events per simulated second, and the ratio drive / sources of the run times. The section
goes to ``BENCHMARKS.md``.
"""

import argparse
import platform
import time
from datetime import datetime, timezone

import numba
import numpy as np
from harness import machine_info, write_section
from peers.cuba_common import spike_statistics

import ranvier as rv

HEADING = "## Brunel model A: external input as spikes or drawn in the targets (`benchmarks/brunel_background.py`)"


def measure(n: int, duration: float, background: str) -> dict:
    """One fresh network of ``background``: run time of ``duration`` after 10 ms, its activity and events."""
    net = rv.networks.brunel(n=n, seed=2, background=background)
    spikes = net.record(net["exc"], "spikes")
    net.run(0.01, backend="numba")
    before = sum(net.stats.synaptic_events_by_projection.values())
    started = time.perf_counter()
    net.run(duration, backend="numba")
    elapsed = time.perf_counter() - started
    events = sum(net.stats.synaptic_events_by_projection.values()) - before
    late = spikes.times > 0.1
    statistics = spike_statistics(spikes.times[late] - 0.1, spikes.ids[late], net["exc"].n, net.t - 0.1)
    return {"run_s": elapsed, "rate_hz": statistics["rate_hz"], "isi_cv": statistics["isi_cv"],
            "events_per_s": events / duration}


def spread(values: list[float]) -> str:
    return f"{np.median(values):.3g} ({min(values):.3g}-{max(values):.3g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12500)
    parser.add_argument("--duration", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS.md")
    args = parser.parse_args()
    started = datetime.now(timezone.utc)
    records = {"sources": [], "drive": []}
    for repeat in range(args.repeats):
        for background in ("sources", "drive") if repeat % 2 == 0 else ("drive", "sources"):
            records[background].append(measure(args.n, args.duration, background))
            print(background, records[background][-1], flush=True)
    ratios = [d["run_s"] / s["run_s"] for d, s in zip(records["drive"], records["sources"], strict=True)]
    info = machine_info()
    lines = [HEADING, "",
             f"Run {started:%Y-%m-%d %H:%M} UTC on {info['cpu']}, {info['cores']} cores, Python "
             f"{platform.python_version()}, numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads); "
             f"`networks.brunel(n={args.n}, seed=2)`, {args.duration} s after an untimed 10 ms, {args.repeats} "
             "alternating repetitions on fresh networks (median, range). Rate and ISI CV of the excitatory "
             "neurons after 0.1 s.", "",
             "| background | run (s) | rate (Hz) | ISI CV | synaptic events per simulated s |",
             "|---|---|---|---|---|"]
    for background, rows in records.items():
        lines.append(f"| `{background}` | {spread([r['run_s'] for r in rows])} | "
                     f"{spread([r['rate_hz'] for r in rows])} | {spread([r['isi_cv'] for r in rows])} | "
                     f"{np.median([r['events_per_s'] for r in rows]):.3g} |")
    lines += ["", f"Run time drive / sources: **{spread(ratios)}**. The same seed gives other synapses and "
              "inputs in the two modes (the drive's counts are their own draws), so the activity agrees in "
              "distribution, not spike for spike. NEST 3.10 at these parameters: 38 Hz, ISI CV 0.39 "
              "(`networks.brunel`'s docstring).", ""]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        write_section(HEADING, section)


if __name__ == "__main__":
    main()
