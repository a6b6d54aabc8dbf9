"""Value populations on the cuda backend: equality with numpy, copies to the host per window, cost beside CUBA.

    python benchmarks/gpu_values.py [--quick] [--json out.json]

Prepared for a session that is lent a GPU (one short run); ``--quick`` runs it at small sizes on
numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), which is how it is tested here.

1. ``equality``: CUBA beside Kuramoto oscillators (pulses into the excitatory population) and an
   astrocyte counting its spikes, on numpy and on cuda: spikes and recorded values. On a GPU,
   inputs reaching one neuron in the same step are summed in a varying order, so the check reports
   how many spikes differ rather than failing.
2. ``copies``: the same network with Kuramoto 10 000 (and with ``--cfc`` ncps' ``CfC(20, 64)``, a
   host population fed by the excitatory spikes):
   full state hand-overs (``to_host`` / ``to_device``) and device-to-host array copies per window of
   the oscillators.
3. ``timing``: CUBA alone against CUBA with the value populations, on cuda, alternating, 1 s each
   (0.05 s with ``--quick``): the ratio of run times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from numba import cuda

import ranvier as rv
from ranvier.engine.backends import cuda_backend
from ranvier.units import ms


def mixed_network(n_cuba: int, n_oscillators: int, cfc: bool, seed: int = 1) -> rv.Network:
    """CUBA with ``n_oscillators`` Kuramoto oscillators driving it and an astrocyte watching it."""
    net = rv.networks.cuba(n=n_cuba, seed=seed)
    oscillators = net.population(rv.neurons.Kuramoto(omega=rv.init.Normal(60.0, 10.0), pulses=True),
                                 n=n_oscillators, name="osc", dt=1 * ms)
    net.connect(oscillators, oscillators, rv.connect.AllToAll(), weight=2.0 / n_oscillators, receptor="coupling")
    net.connect(oscillators, net["exc"], rv.connect.FixedInDegree(2), weight=2e-3, receptor="exc")
    astro = net.population(rv.neurons.Astrocyte(), n=1, name="astro")
    net.connect(net["exc"], astro, rv.connect.AllToAll(), weight=1e-3)
    if cfc:
        import torch
        from ncps.torch import CfC as NcpsCfC

        torch.manual_seed(seed)
        inputs = 20
        liquid = net.population(rv.neurons.CfC.from_ncps(NcpsCfC(inputs, 64)), name="cfc", dt=1 * ms)
        net.connect(net["exc"], liquid, rv.connect.FixedInDegree(10), weight=1.0, receptor="input")
    return net


def equality(n_cuba: int, n_oscillators: int, duration: float) -> dict:
    runs = {}
    for backend in ("numpy", "cuda"):
        net = mixed_network(n_cuba, n_oscillators, cfc=False)
        monitors = {"exc": net.record("exc", "spikes"), "osc": net.record("osc", "spikes"),
                    "order": net.record("osc", "order"), "astro": net.record("astro", "output")}
        net.run(duration, backend=backend)
        runs[backend] = monitors
    reference, gpu = runs["numpy"], runs["cuda"]
    record = {}
    for name in ("exc", "osc"):
        same = np.array_equal(reference[name].steps, gpu[name].steps) and np.array_equal(reference[name].ids,
                                                                                        gpu[name].ids)
        record[name] = {"spikes": int(reference[name].num_spikes), "cuda_spikes": int(gpu[name].num_spikes),
                        "identical": bool(same)}
    for name in ("order", "astro"):
        record[name] = {"max_difference": float(np.abs(reference[name].values - gpu[name].values).max())}
    return record


def copies(n_cuba: int, n_oscillators: int, duration: float, cfc: bool) -> dict:
    """Hand-overs and device-to-host copies during one run, per window of the oscillators."""
    counted = {"to_host": 0, "to_device": 0, "copy_to_host": 0}
    device_array = type(cuda.to_device(np.zeros(1)))
    originals = {"to_host": cuda_backend.CudaRunner.to_host, "to_device": cuda_backend.CudaRunner.to_device,
                 "copy_to_host": device_array.copy_to_host}

    def counting(name):
        def call(*args, **kwargs):
            counted[name] += 1
            return originals[name](*args, **kwargs)
        return call

    net = mixed_network(n_cuba, n_oscillators, cfc)
    net.run(2 * ms, backend="cuda")  # compiles; not counted
    try:
        cuda_backend.CudaRunner.to_host = counting("to_host")
        cuda_backend.CudaRunner.to_device = counting("to_device")
        device_array.copy_to_host = counting("copy_to_host")
        updates_before = net.stats.neuron_updates_by_population["osc"]
        net.run(duration, backend="cuda")
    finally:
        cuda_backend.CudaRunner.to_host = originals["to_host"]
        cuda_backend.CudaRunner.to_device = originals["to_device"]
        device_array.copy_to_host = originals["copy_to_host"]
    windows = (net.stats.neuron_updates_by_population["osc"] - updates_before) // n_oscillators
    steps = int(round(duration / net.dt))
    return {**counted, "windows": int(windows), "steps": steps, "cfc": cfc,
            "copies_to_host_per_step": counted["copy_to_host"] / steps}


def timing(n_cuba: int, n_oscillators: int, duration: float, repeats: int) -> dict:
    def run(with_values: bool) -> float:
        net = mixed_network(n_cuba, n_oscillators, cfc=False) if with_values else rv.networks.cuba(n=n_cuba, seed=1)
        start = time.perf_counter()
        net.run(duration, backend="cuda")
        return time.perf_counter() - start

    run(False), run(True)  # compile both
    alone, mixed = [], []
    for repeat in range(repeats):
        for with_values in ((False, True) if repeat % 2 == 0 else (True, False)):
            (mixed if with_values else alone).append(run(with_values))
    return {"alone_s": statistics.median(alone), "with_values_s": statistics.median(mixed),
            "ratio": statistics.median(m / a for m, a in zip(mixed, alone, strict=True)),
            "alone_range": [min(alone), max(alone)], "with_values_range": [min(mixed), max(mixed)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for numba's CUDA simulator")
    parser.add_argument("--cfc", action="store_true", help="add a CfC of 64 units (a host population) to 'copies'")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.quick:
        n_cuba, n_oscillators, duration, repeats = 200, 50, 5 * ms, 1
    else:
        n_cuba, n_oscillators, duration, repeats = 4000, 10_000, 1.0, 5
    results = {
        "simulator": bool(cuda_backend.config.ENABLE_CUDASIM),
        "equality": equality(n_cuba, n_oscillators, duration if args.quick else 0.2),
        "copies": copies(n_cuba, n_oscillators, duration if args.quick else 0.1, args.cfc),
        "timing": timing(n_cuba, n_oscillators, duration, repeats),
    }
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
