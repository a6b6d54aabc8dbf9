"""Training any model and learned delays: step times against their references, side by side.

    python benchmarks/train_models.py [--repeats 7] [--threads 2] [--part all|generic|delays] [--no-report]

1. The generic route (``SpikingModule(..., generic=True)``: the LIF's own model-language step run
   in torch) against the fused ``LIFRecurrence`` on the same 700-256-20 LIF network (T = 100,
   batch 64, 5 % input density): forward + backward + Adam. Target: generic <= 1.5x fused.
2. A 700-128-20 network with learnable per-synapse delays (``learn_delays=True``, max delay 25
   steps, kernel width 12.5 steps, the start of training), by each ``delay_method`` (``"dcls"``:
   the Gaussian kernels forward; ``"shift"``: the rounded delays forward, the smoothed gradient
   back), against snnTorch's 700-128-20 ``Leaky`` network without delays, same input. Target:
   ranvier with delays <= 1.0x snnTorch without.

Sides alternate, their order flipped every other repetition; the medians and ranges of the
per-repetition ratios are reported, and (``--part all``) the section ``## Training: any model,
learned delays`` of ``benchmarks/BENCHMARKS.md`` is replaced. ``--part`` runs one comparison
alone and only prints it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import datetime, timezone

import torch
from harness import cpu_name, write_section
from train_vs_snntorch import N_IN, N_OUT, ranvier_network, snntorch_network

from ranvier.train import SpikingModule
from ranvier.train.spiking import DELAY_METHODS
from ranvier.units import ms

HEADING = "## Training: any model, learned delays (`benchmarks/train_models.py`)"
STEPS, BATCH = 100, 64


def ranvier_side(module: SpikingModule, x, y):
    optimiser = torch.optim.Adam(module.parameters(), 1e-3)

    def step() -> None:
        optimiser.zero_grad()
        loss, _ = module.loss(x, y, "out")
        loss.backward()
        optimiser.step()
        if module.delays:
            module.clamp_delays()

    return step


def snntorch_side(model: torch.nn.Module, x, y):
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)

    def step() -> None:
        optimiser.zero_grad()
        mem = model(x)
        loss = torch.nn.functional.cross_entropy(mem.reshape(-1, N_OUT), y.repeat(x.shape[0]))
        loss.backward()
        optimiser.step()

    return step


def alternate(sides: dict, repeats: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and CPU times (``time.process_time``, all threads) of each side, repetitions alternating."""
    for step in sides.values():
        step()  # warm: numba compiles, torch allocates
    wall = {name: [] for name in sides}
    cpu = {name: [] for name in sides}
    names = list(sides)
    for repetition in range(repeats):
        for name in names if repetition % 2 == 0 else names[::-1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            sides[name]()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def ratio(times, numerator: str, denominator: str) -> tuple[float, float, float]:
    ratios = [a / b for a, b in zip(times[numerator], times[denominator], strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def table_rows(wall: dict[str, list[float]], cpu: dict[str, list[float]]) -> list[str]:
    return [f"| {name} | {statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f}) | "
            f"{statistics.median(cpu[name]):.3f} ({min(cpu[name]):.3f}-{max(cpu[name]):.3f}) |"
            for name, values in wall.items()]


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument("--part", choices=("all", "generic", "delays"), default="all")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = (torch.rand(STEPS, BATCH, N_IN) < args.density).float()
    y = torch.randint(0, N_OUT, (BATCH,))

    rows, results = [], []
    start_load = os.getloadavg()[0]
    if args.part in ("all", "generic"):
        fused = SpikingModule(ranvier_network(hidden=256), "input")
        generic_route = SpikingModule(ranvier_network(hidden=256), "input", generic=True)
        generic, generic_cpu = alternate({"fused": ranvier_side(fused, x, y),
                                          "generic": ranvier_side(generic_route, x, y)}, args.repeats)
        rows += table_rows(generic, generic_cpu)
        median, low, high = ratio(generic, "generic", "fused")
        results.append(f"- Generic route (LIF's own step, traced, in torch) / fused `LIFRecurrence`, 700-256-20: "
                       f"**{median:.2f}** ({low:.2f}-{high:.2f}); target <= 1.5: **{verdict(median <= 1.5)}**.")
    if args.part in ("all", "delays"):
        sides = {f"ranvier, learned delays ({method})": ranvier_side(
            SpikingModule(ranvier_network(hidden=128), "input", learn_delays=True, max_delay=25 * ms,
                          delay_method=method), x, y) for method in DELAY_METHODS}
        sides["snnTorch, no delays"] = snntorch_side(snntorch_network(128), x, y)
        delays, delays_cpu = alternate(sides, args.repeats)
        rows += table_rows(delays, delays_cpu)
        for method in DELAY_METHODS:
            name = f"ranvier, learned delays ({method})"
            median, low, high = ratio(delays, name, "snnTorch, no delays")
            cpu_median, cpu_low, cpu_high = ratio(delays_cpu, name, "snnTorch, no delays")
            results.append(f"- Learned delays (`delay_method=\"{method}\"`, max 25 steps) / snnTorch without delays, "
                           f"700-128-20: **{median:.2f}** ({low:.2f}-{high:.2f}); CPU time {cpu_median:.2f} "
                           f"({cpu_low:.2f}-{cpu_high:.2f}); target <= 1.0: **{verdict(median <= 1.0)}**.")
    lines = [
        HEADING, "",
        f"Finished {datetime.now(timezone.utc).isoformat(timespec='seconds')}. Machine: {cpu_name()}, "
        f"{args.threads} torch threads; torch {torch.__version__}. T = {STEPS}, batch {BATCH}, {args.density:.0%} "
        f"input density, forward + backward + Adam, {args.repeats} alternating repetitions (median, range).", "",
        f"Load average at the start {start_load:.2f}, at the end {os.getloadavg()[0]:.2f}.", "",
        "| training step | wall time (s) | CPU time, all threads (s) |", "|---|---|---|", *rows, "", *results, "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.part == "all" and not args.no_report:
        write_section(HEADING, text)


if __name__ == "__main__":
    main()
