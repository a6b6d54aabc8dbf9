"""Training any model and learned delays: step times against their references, side by side.

    python benchmarks/train_models.py [--repeats 7] [--threads 2] [--no-report]

1. The generic route (``SpikingModule(..., generic=True)``: the LIF's own model-language step run
   in torch) against the fused ``LIFRecurrence`` on the same 700-256-20 LIF network (T = 100,
   batch 64, 5 % input density): forward + backward + Adam. Target: generic <= 1.5x fused.
2. A 700-128-20 network with learnable per-synapse delays (``learn_delays=True``, max delay 25
   steps, DCLS kernel of width 12.5 steps) against snnTorch's 700-128-20 ``Leaky`` network
   without delays, same input. Target: ranvier with delays <= 1.0x snnTorch without.

Sides alternate, their order flipped every other repetition; the medians and ranges of the
per-repetition ratios are reported, and the section ``## Training: any model, learned delays``
of ``benchmarks/BENCHMARKS.md`` is replaced.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone

import numpy as np
import torch
from harness import cpu_name, write_section

import ranvier as rv
from ranvier.train import SpikingModule
from ranvier.units import ms, mV

HEADING = "## Training: any model, learned delays (`benchmarks/train_models.py`)"
N_IN, N_OUT, STEPS, BATCH = 700, 20, 100, 64


def network(hidden: int, seed: int = 0) -> rv.Network:
    net = rv.Network(dt=1 * ms, seed=seed)
    source = net.population(rv.neurons.SpikeSource([], [], n=N_IN), name="input")
    lif = rv.neurons.LIF(tau_m=20 * ms, v_rest=0.0, v_th=10 * mV, v_reset=0.0, t_ref=0.0, tau_syn={"in": 0.0})
    cells = net.population(lif, n=hidden, name="hidden")
    readout = rv.neurons.LIF(tau_m=20 * ms, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=0.0, tau_syn={"in": 0.0})
    out = net.population(readout, n=N_OUT, name="out")
    net.connect(source, cells, rv.connect.AllToAll(), weight=rv.init.Normal(0.5 * mV, 1.5 * mV))
    net.connect(cells, out, rv.connect.AllToAll(), weight=rv.init.Normal(0.5 * mV, 3 * mV))
    return net


def snntorch_network(hidden: int) -> torch.nn.Module:
    import snntorch as snn

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            beta = float(np.exp(-1 / 20))
            self.fc1, self.lif1 = torch.nn.Linear(N_IN, hidden), snn.Leaky(beta=beta)
            self.fc2, self.lif2 = torch.nn.Linear(hidden, N_OUT), snn.Leaky(beta=beta)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
            out = []
            for step in x:
                spk1, mem1 = self.lif1(self.fc1(step), mem1)
                _, mem2 = self.lif2(self.fc2(spk1), mem2)
                out.append(mem2)
            return torch.stack(out)

    return Net()


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


def alternate(sides: dict, repeats: int) -> dict[str, list[float]]:
    for step in sides.values():
        step()  # warm: numba compiles, torch allocates
    times = {name: [] for name in sides}
    names = list(sides)
    for repetition in range(repeats):
        for name in names if repetition % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - start)
    return times


def ratio(times, numerator: str, denominator: str) -> tuple[float, float, float]:
    ratios = [a / b for a, b in zip(times[numerator], times[denominator], strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = (torch.rand(STEPS, BATCH, N_IN) < args.density).float()
    y = torch.randint(0, N_OUT, (BATCH,))

    generic = alternate({"fused": ranvier_side(SpikingModule(network(256), "input"), x, y),
                         "generic": ranvier_side(SpikingModule(network(256), "input", generic=True), x, y)},
                        args.repeats)
    delayed = SpikingModule(network(128), "input", learn_delays=True, max_delay=25 * ms)
    delays = alternate({"ranvier, learned delays": ranvier_side(delayed, x, y),
                        "snnTorch, no delays": snntorch_side(snntorch_network(128), x, y)}, args.repeats)
    generic_ratio = ratio(generic, "generic", "fused")
    delay_ratio = ratio(delays, "ranvier, learned delays", "snnTorch, no delays")
    rows = []
    for times in (generic, delays):
        for name, values in times.items():
            rows.append(f"| {name} | {statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f}) |")
    lines = [
        HEADING, "",
        f"Finished {datetime.now(timezone.utc).isoformat(timespec='seconds')}. Machine: {cpu_name()}, "
        f"{args.threads} torch threads; torch {torch.__version__}. T = {STEPS}, batch {BATCH}, {args.density:.0%} "
        f"input density, forward + backward + Adam, {args.repeats} alternating repetitions (median, range).", "",
        "| training step | time (s) |", "|---|---|", *rows, "",
        f"- Generic route (LIF's own step in torch) / fused `LIFRecurrence`, 700-256-20: **{generic_ratio[0]:.2f}** "
        f"({generic_ratio[1]:.2f}-{generic_ratio[2]:.2f}); target <= 1.5: "
        f"**{'PASS' if generic_ratio[0] <= 1.5 else 'FAIL'}**.",
        f"- Learned delays (DCLS, max 25 steps) / snnTorch without delays, 700-128-20: **{delay_ratio[0]:.2f}** "
        f"({delay_ratio[1]:.2f}-{delay_ratio[2]:.2f}); target <= 1.0: "
        f"**{'PASS' if delay_ratio[0] <= 1.0 else 'FAIL'}**.", "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_report:
        write_section(HEADING, text)


if __name__ == "__main__":
    main()
