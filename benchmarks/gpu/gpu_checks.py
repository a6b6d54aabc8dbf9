"""The prepared GPU check of issue 17: equality with numpy, speed against the targets, launches per chunk.

    bash benchmarks/gpu/run.sh                                          # one H100/H200: at most 8 minutes
    NUMBA_ENABLE_CUDASIM=1 .venv/bin/python benchmarks/gpu/gpu_checks.py --small   # tiny sizes, anywhere

Sections, each written to ``--json`` as soon as it is done (a run cut short keeps what it measured),
skipped once ``--budget`` seconds have passed; ``--only`` runs some of them again, and ``--previous``
takes the others from an earlier run's JSON (the report names them):

1. ``equality``: a small mixed network (CUBA, Kuramoto oscillators pulsing into it, an astrocyte
   counting its spikes through a count projection, an STDP projection) on numpy and on cuda:
   spikes, synaptic events, recorded values and learned weights. It delivers by target, in the
   reference order, so a GPU should give numpy's bits (where a GPU contracts a multiply and an add
   into one, values may still differ): differences are counted, not raised.
2. ``cuba``, ``cuba_dense``, ``mixed`` (the equality network with 10^4 oscillators and a CfC of 64
   units between the excitatory spikes and the excitatory neurons): seconds per simulated second
   on cuda and on numba (all cores), alternating, after a 10 ms warm-up run that compiles, each run
   1 s simulated (less where a 20 ms probe says it would take over ``TIMED_RUN_S``); and whether
   the spikes equal numba's.
   ``chunk_costs``: CUBA's and CUBA-dense's wall time per chunk on cuda, split into the host's waits
   for the device and the host's own work: which of the two bounds a chunk.
3. ``microcircuit``: the full-scale Potjans-Diesmann microcircuit on cuda: build, upload and
   compile (the first 10 ms), the real-time factor of the following run.
4. ``launches``: kernel launches per min-delay chunk, counted over a short run of each network
   above, and device-to-host copies: those of a run and those per chunk (issue 14 asks for none
   per window of the mixed network's value populations). A stretch's chunks run in cooperative
   launches of ``chunks`` (``cuda_backend.COOPERATIVE``), so a run of a few hundred chunks is one launch.
   ``launch_modes``: each network above with its chunks in cooperative launches and as two launches
   each (``update``, ``deliver``), alternating: seconds per simulated second, and the same spikes.
5. ``delivery``: CUBA and CUBA-dense with each of the cuda backend's deliveries (by target: a thread per
   target neuron in the reference order; by spike: a block per spike, atomic adds), alternating: seconds
   per simulated second and whether the spikes equal numba's (by target they must, on any GPU). The
   faster of the two per network places the crossover (``cuda_chunk.TARGET_DELIVERY_MAX_SYNAPSES``).
6. ``training``: one ``ranvier.train`` BPTT step (forward, backward, Adam) of a 700-256-20 LIF
   network, T = 100, batch 64, on torch's GPU when there is one (else on the CPU, and it says so),
   and snnTorch's same network beside it where snnTorch is installed.
7. ``shapes``: the other shapes the backend generates code for (per-synapse delays, a convolution,
   Poisson drives and an LTC, Equations models beside AKOrN) on numpy and on cuda, by target and by
   spike: spikes identical or not, and the largest difference of a recorded value.
8. ``rate``: a torch ``Rate`` (an MLP, ``dt`` 2 ms) between CUBA's excitatory spikes and its excitatory
   neurons, on torch's GPU when there is one: the cuda backend against numpy (spikes, and the largest
   difference of the Rate's outputs: a GPU's float32 products may round otherwise), seconds per
   simulated second on cuda and numba, and per window of the Rate on cuda its copies to the host and
   the time of its handover to the host and back beside the module's own time: what keeping a Rate's
   tensors on the device would save (it still updates on the host, see ``benchmarks/gpu/NOTES.md``).

Timings under the simulator are not GPU timings: the report says so.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numba import config, cuda

import ranvier as rv
from ranvier.errors import RecordingError
from ranvier.plasticity import STDP
from ranvier.units import ms, mV

BENCH_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH_DIR))
from harness import write_section  # noqa: E402  (benchmarks/ is not a package)

if not hasattr(np, "row_stack"):
    # numba-cuda 0.30.4 registers np.row_stack, which numpy 2.5 removed: its first kernel compile then raises
    # AttributeError (seen on the lent H200's image, numpy 2.5.2); np.row_stack was np.vstack by another name
    np.row_stack = np.vstack  # noqa: NPY201
SIMULATED = bool(config.ENABLE_CUDASIM)
HEADING = "## GPU (`benchmarks/gpu/run.sh`)"
#: the issue's targets: (section, key, bound)
TARGETS = [("cuba", "cuda_s_per_simulated_s", 0.02), ("cuba_dense", "cuda_s_per_simulated_s", 0.05),
           ("microcircuit", "real_time_factor", 0.25), ("microcircuit", "build_s", 10.0),
           ("launches", "most_per_chunk", 2.0)]


@dataclass
class Sizes:
    cuba: int
    dense: tuple[int, int]
    mixed: tuple[int, int, int]
    equality: tuple[int, int]
    microcircuit_scale: float
    duration: float
    microcircuit_duration: float
    equality_duration: float
    count_steps: int
    repeats: int
    training: tuple[int, int, int]
    shape_duration: float
    #: the networks ``launch_modes`` times
    launch_networks: tuple[str, ...]
    #: ``rate``'s CUBA and the hidden units of its MLP
    rate: tuple[int, int]


FULL = Sizes(cuba=4000, dense=(10_000, 1000), mixed=(4000, 10_000, 64), equality=(400, 50), microcircuit_scale=1.0,
             duration=1.0, microcircuit_duration=1.0, equality_duration=0.05, count_steps=200, repeats=3,
             training=(256, 100, 64), shape_duration=50 * ms, launch_networks=("cuba", "cuba_dense", "mixed"),
             rate=(4000, 64))
SMALL = Sizes(cuba=200, dense=(300, 60), mixed=(200, 20, 8), equality=(200, 20), microcircuit_scale=0.002,
              duration=2 * ms, microcircuit_duration=1 * ms, equality_duration=10 * ms, count_steps=10, repeats=1,
              training=(16, 10, 4), shape_duration=3 * ms, launch_networks=("cuba",),
              rate=(100, 8))


def mixed_network(n_cuba: int, n_oscillators: int, cfc_units: int = 0, seed: int = 1) -> rv.Network:
    """CUBA, Kuramoto oscillators pulsing into it, an astrocyte counting its spikes, an STDP projection;
    with ``cfc_units``, a CfC (``dt`` 1 ms) counting excitatory spikes and driving the excitatory neurons."""
    net = rv.networks.cuba(n=n_cuba, seed=seed)
    if cfc_units:
        import torch
        from ncps.torch import CfC

        torch.manual_seed(seed)
        cfc = net.population(rv.neurons.CfC.from_ncps(CfC(8, cfc_units)), name="cfc", dt=1 * ms)
        net.connect(net["exc"], cfc, rv.connect.FixedInDegree(4), weight=0.5, receptor="input")
        net.connect(cfc, net["exc"], rv.connect.FixedInDegree(2), weight=0.5 * mV, receptor="exc")
    oscillators = net.population(rv.neurons.Kuramoto(omega=rv.init.Normal(60.0, 10.0), pulses=True),
                                 n=n_oscillators, name="osc", dt=1 * ms)
    net.connect(oscillators, oscillators, rv.connect.AllToAll(), weight=2.0 / n_oscillators, receptor="coupling")
    net.connect(oscillators, net["exc"], rv.connect.FixedInDegree(2), weight=2e-3, receptor="exc")
    astro = net.population(rv.neurons.Astrocyte(), n=1, name="astro")
    net.connect(net["exc"], astro, rv.connect.AllToAll(), weight=1e-3)  # a count projection
    net.connect(net["exc"], net["inh"], rv.connect.FixedInDegree(10), weight=0.5 * mV, receptor="exc",
                delay=1 * ms, plasticity=STDP(a_plus=0.05 * mV, a_minus=0.06 * mV, w_max=2 * mV))
    return net


#: a ``rate`` network's Rate window
RATE_DT = 2 * ms


def rate_network(n_cuba: int, hidden: int, device: str, seed: int = 1) -> rv.Network:
    """CUBA with a torch ``Rate`` on ``device`` (an MLP of ``hidden`` units, :data:`RATE_DT`) counting the
    excitatory spikes one to one and driving the excitatory neurons through two inputs each."""
    import torch

    net = rv.networks.cuba(n=n_cuba, seed=seed)
    n_exc = net["exc"].n
    torch.manual_seed(seed)
    mlp = torch.nn.Sequential(torch.nn.Linear(n_exc, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                              torch.nn.Sigmoid())
    ann = net.population(rv.neurons.Rate(mlp, dt=RATE_DT, device=device), name="ann")
    net.connect(net["exc"], ann, rv.connect.OneToOne(), weight=1.0, receptor="input")
    net.connect(ann, net["exc"], rv.connect.FixedInDegree(2), weight=2 * mV, receptor="exc")
    return net


def shape_networks() -> dict:
    """Networks beside the timed ones, as builders: per-synapse delays, a convolution, Poisson drives, an LTC,
    monitors, Equations models (AdEx's ``exp``, a ``sqrt``) beside AKOrN."""
    def delays():
        net = rv.networks.cuba(n=200, seed=1, delay=rv.init.Uniform(0.1 * ms, 2 * ms))
        net.record("exc", "v", ids=[0, 3], every=1 * ms)
        return net

    def convolution():
        net = rv.Network(seed=1)
        pixels = net.population(rv.neurons.PoissonSource(rate=200.0), 64, name="pixels")
        maps = net.population(rv.neurons.LIF(), 2 * 49, name="maps")
        net.connect(pixels, maps, rv.connect.Conv2d(np.ones((2, 1, 2, 2)) * 1e-3, (1, 8, 8)), receptor="exc")
        return net

    def drives_and_ltc():
        import torch
        from ncps.torch import LTC

        torch.manual_seed(0)
        net = rv.networks.cuba(n=200, seed=2)
        net.connect(rv.connect.PoissonInput(2000.0, 20), net["exc"], weight=1.0 * mV, receptor="exc")
        ltc = net.population(rv.neurons.LTC.from_ncps(LTC(8, 16)), name="ltc", dt=1 * ms)
        net.connect(net["exc"], ltc, rv.connect.FixedInDegree(4), weight=0.5, receptor="input")
        net.record("ltc", "output")
        return net

    def equations():
        from ranvier.neurons import Equations
        from ranvier.neurons.equations.library import ADEX

        net = rv.Network(dt=0.1 * ms, seed=1)
        adex = Equations(ADEX, threshold="v > V_T + 5*Delta_T", reset="v = V_r; w += b", method="euler",
                         parameters=dict(C=281e-12, g_L=30e-9, E_L=-70.6 * mV, V_T=-50.4 * mV, Delta_T=2 * mV,
                                         tau_w=144 * ms, a=4e-9, b=0.0805e-9, V_r=-70.6 * mV, I=1e-9))
        rooted = Equations("dv/dt = (sqrt(v0**2 + v**2) - v0) / tau : volt\n v0 : volt\n tau : second",
                           threshold="v >= 10*mV", reset="v = 1*mV", method="euler",
                           parameters={"v0": 5 * mV, "tau": 2 * ms}, receptors={"in": "v"})
        net.connect(net.population(adex, 20, name="adex"), net.population(rooted, 20, name="rooted"),
                    rv.connect.FixedInDegree(5), weight=1 * mV, receptor="in")
        units = net.population(rv.neurons.AKOrN(dim=4, omega=2.0), n=30, name="akorn", dt=1 * ms)
        net.connect(units, units, rv.connect.FixedInDegree(5), weight=0.1, receptor="coupling")
        net.record("akorn", "order")
        return net

    return {"per_synapse_delays": delays, "convolution": convolution, "drives_and_ltc": drives_and_ltc,
            "equations": equations}


def equality(sizes: Sizes) -> dict:
    runs = {}
    for backend in ("numpy", "cuda"):
        net = mixed_network(*sizes.equality)
        monitors = {name: net.record(name, "spikes") for name in ("exc", "inh", "osc")}
        values = {"order": net.record("osc", "order"), "astro": net.record("astro", "output")}
        with delivering(by_target=True):  # every input summed in the reference order, on any device
            net.run(sizes.equality_duration, backend=backend)
        runs[backend] = (monitors, values, dict(net.stats.synaptic_events_by_projection),
                         net.projections[-1].weights.copy())
    (spikes, values, events, weights), (gpu_spikes, gpu_values, gpu_events, gpu_weights) = runs["numpy"], runs["cuda"]
    record = {name: {"spikes": int(m.num_spikes), "cuda_spikes": int(gpu_spikes[name].num_spikes),
                     "identical": bool(np.array_equal(m.steps, gpu_spikes[name].steps)
                                       and np.array_equal(m.ids, gpu_spikes[name].ids))}
              for name, m in spikes.items()}
    record.update({name: {"max_difference": float(np.abs(m.values - gpu_values[name].values).max())}
                   for name, m in values.items()})
    record["synaptic_events_identical"] = events == gpu_events
    record["learned_weights_identical"] = bool(np.array_equal(weights, gpu_weights))
    record["learned"] = bool(np.any(weights != np.float32(0.5 * mV)))
    record["identical"] = (all(record[name]["identical"] for name in spikes) and record["synaptic_events_identical"]
                           and record["learned_weights_identical"]
                           and all(record[name]["max_difference"] == 0.0 for name in values))
    return record


def shapes(sizes: Sizes) -> dict:
    """Each network of :func:`shape_networks` on numpy and on cuda, delivering by target and by spike: whether
    every spike monitor equals numpy's, and the largest difference of a recorded value. By target must be
    identical on any GPU (up to contracted multiply-adds); by spike sums with atomics, in any order."""
    record = {}
    for name, build in shape_networks().items():
        try:
            runs = {}
            for mode in ("numpy", "by_target", "by_spike"):
                net = build()
                for population in list(net.populations):
                    with contextlib.suppress(RecordingError):  # a value population has no spikes to record
                        net.record(population, "spikes")
                with delivering(mode == "by_target"):
                    net.run(sizes.shape_duration, backend="numpy" if mode == "numpy" else "cuda")
                runs[mode] = net
            reference = runs.pop("numpy")
            entry: dict = {"spikes": int(sum(m.num_spikes for m in reference.spike_monitors))}
            for mode, net in runs.items():
                entry[mode] = {
                    "spikes_identical": all(np.array_equal(a.steps, b.steps) and np.array_equal(a.ids, b.ids)
                                            for a, b in zip(reference.spike_monitors, net.spike_monitors,
                                                            strict=True)),
                    "values_max_difference": max((float(np.abs(a.values - b.values).max()) for a, b in zip(
                        reference.state_monitors, net.state_monitors, strict=True) if a.values.size), default=0.0)}
        except Exception as error:  # noqa: BLE001  (one failing network must not lose the others)
            entry = {"error": f"{type(error).__name__}: {error}"}
        record[name] = entry
    return record


#: the longest one timed run should take: a slow backend is timed over fewer simulated seconds
TIMED_RUN_S = 4.0


def timed_duration(runs: list[tuple[rv.Network, str]], sizes: Sizes) -> float:
    """The simulated seconds of each timed run: ``sizes.duration``, or less where a probe run (20 ms, of every
    network of ``runs`` on its backend, so that all stay at one step) says it would take over ``TIMED_RUN_S``."""
    probe = min(sizes.duration, 20 * ms)
    slowest = 0.0
    for net, backend in runs:
        start = time.perf_counter()
        net.run(probe, backend=backend)
        slowest = max(slowest, (time.perf_counter() - start) / probe)
    return max(probe, min(sizes.duration, round(TIMED_RUN_S / max(slowest, 1e-9), 3)))


def timing(build, sizes: Sizes) -> dict:
    """Seconds per simulated second on cuda and numba, alternating, after a compiling warm-up run of each."""
    nets, monitors = {}, {}
    for backend in ("cuda", "numba"):
        nets[backend] = build()
        monitors[backend] = [nets[backend].record(name, "spikes") for name in ("exc", "inh")]
        nets[backend].run(10 * ms, backend=backend)
    duration = timed_duration([(net, backend) for backend, net in nets.items()], sizes)
    times: dict[str, list[float]] = {"cuda": [], "numba": []}
    for repeat in range(sizes.repeats):
        for backend in ("cuda", "numba") if repeat % 2 == 0 else ("numba", "cuda"):
            start = time.perf_counter()
            nets[backend].run(duration, backend=backend)
            times[backend].append((time.perf_counter() - start) / duration)
    same = all(np.array_equal(a.steps, b.steps) and np.array_equal(a.ids, b.ids)
               for a, b in zip(monitors["cuda"], monitors["numba"], strict=True))
    return {"cuda_s_per_simulated_s": statistics.median(times["cuda"]), "cuda_range": [min(times["cuda"]),
            max(times["cuda"])], "numba_s_per_simulated_s": statistics.median(times["numba"]),
            "numba_range": [min(times["numba"]), max(times["numba"])], "spikes_identical_to_numba": same,
            "timed_simulated_s": duration, "spikes": int(sum(m.num_spikes for m in monitors["numba"])),
            "synapses": int(sum(len(p) for p in nets["numba"].projections))}


def chunk_costs(build, sizes: Sizes) -> dict:
    """Whether the host or the device bounds a cuda chunk: a run's wall time split into the host's waits
    for the device (every copy to the host waits for the kernels launched before it: the spike buffers'
    room checks in the loop, the status read after it) and the rest, the host's own work (its loop,
    the launches, the stretch's download). Waits near zero: the device idles between launches."""
    from ranvier.engine.backends.cuda_backend import CudaRunner

    net = build()
    net.run(10 * ms, backend="cuda")  # lowers and compiles
    device_array = type(cuda.to_device(np.zeros(1)))
    copy, download = device_array.copy_to_host, CudaRunner._download
    waits, downloading = [], []

    def timed_copy(self, *args, **kwargs):
        began = time.perf_counter()
        result = copy(self, *args, **kwargs)
        if not downloading:
            waits.append(time.perf_counter() - began)
        return result

    def timed_download(self, *args, **kwargs):
        downloading.append(time.perf_counter())
        try:
            return download(self, *args, **kwargs)
        finally:
            downloading.append(time.perf_counter())

    device_array.copy_to_host, CudaRunner._download = timed_copy, timed_download
    try:
        # 200 chunks of 0.1 ms: one cooperative launch, or 400 launches (fewer than a GPU's launch queue
        # holds), so a device that is the bottleneck shows as the last wait (the host never blocks in a
        # launch on a full queue)
        duration = min(sizes.duration, 20 * ms)
        start = time.perf_counter()
        net.run(duration, backend="cuda")
        wall = time.perf_counter() - start
    finally:
        device_array.copy_to_host, CudaRunner._download = copy, download
    chunks = max(1, round(duration / net.dt) // net._simulation.lowered.chunk)
    waited = sum(waits)
    return {"chunks": chunks, "wall_us_per_chunk": wall / chunks * 1e6, "waits_us_per_chunk": waited / chunks * 1e6,
            "host_us_per_chunk": (wall - waited) / chunks * 1e6, "copies_waited_on": len(waits),
            "download_s": downloading[-1] - downloading[0] if downloading else 0.0}


@contextlib.contextmanager
def delivering(by_target: bool):
    """Networks that first run while active deliver by target (``by_target``) or by spike, whatever their size."""
    from ranvier.engine.backends import cuda_chunk

    bound = cuda_chunk.TARGET_DELIVERY_MAX_SYNAPSES
    cuda_chunk.TARGET_DELIVERY_MAX_SYNAPSES = 1 << 62 if by_target else -1
    try:
        yield
    finally:
        cuda_chunk.TARGET_DELIVERY_MAX_SYNAPSES = bound


@contextlib.contextmanager
def launching(cooperative: bool):
    """Networks that first run while active run their chunks in cooperative launches of ``chunks`` (``cooperative``)
    or as two launches each (``update``, ``deliver``)."""
    from ranvier.engine.backends import cuda_backend

    saved = cuda_backend.COOPERATIVE
    cuda_backend.COOPERATIVE = cooperative
    try:
        yield
    finally:
        cuda_backend.COOPERATIVE = saved


def launch_modes(builds: dict, sizes: Sizes) -> dict:
    """``sizes.launch_networks`` on cuda with their chunks in cooperative launches and as two launches each,
    alternating, after a compiling warm-up run: seconds per simulated second, the ratio, and whether the spikes
    are the same."""
    record = {}
    modes = ("cooperative", "two_launches")
    for name in sizes.launch_networks:
        nets, monitors = {}, {}
        for mode in modes:
            with launching(mode == "cooperative"):
                nets[mode] = builds[name]()
                monitors[mode] = [nets[mode].record(population, "spikes") for population in ("exc", "inh")]
                nets[mode].run(min(10 * ms, sizes.duration), backend="cuda")
        duration = timed_duration([(net, "cuda") for net in nets.values()], sizes)
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for repeat in range(sizes.repeats):
            for mode in modes if repeat % 2 == 0 else modes[::-1]:
                start = time.perf_counter()
                nets[mode].run(duration, backend="cuda")
                times[mode].append((time.perf_counter() - start) / duration)
        record[name] = {**{f"{mode}_s_per_simulated_s": statistics.median(times[mode]) for mode in modes},
                        **{f"{mode}_range": [min(times[mode]), max(times[mode])] for mode in modes},
                        "cooperative_over_two_launches": statistics.median(times["cooperative"])
                        / statistics.median(times["two_launches"]),
                        "spikes_identical": all(np.array_equal(a.steps, b.steps) and np.array_equal(a.ids, b.ids)
                                                for a, b in zip(*monitors.values(), strict=True)),
                        # False where the device runs no cooperative launches or the kernel did not build
                        "cooperative_used": nets["cooperative"]._simulation.runner._cooperative,
                        "spikes": int(sum(m.num_spikes for m in monitors["cooperative"])),
                        "timed_simulated_s": duration}
    return record


def deliveries(builds: dict, sizes: Sizes) -> dict:
    """Each network on cuda delivering by target and by spike, alternating, after a compiling warm-up run,
    and on numba over the same steps: seconds per simulated second and whether the spikes equal numba's."""
    record = {}
    for name in ("cuba", "cuba_dense"):
        nets, monitors = {}, {}
        for mode in ("by_target", "by_spike", "numba"):
            nets[mode] = builds[name]()
            monitors[mode] = [nets[mode].record(population, "spikes") for population in ("exc", "inh")]
            with delivering(mode == "by_target"):
                nets[mode].run(10 * ms, backend="numba" if mode == "numba" else "cuda")
        duration = timed_duration([(nets[mode], "cuda") for mode in ("by_target", "by_spike")], sizes)
        times: dict[str, list[float]] = {"by_target": [], "by_spike": []}
        for repeat in range(sizes.repeats):
            for mode in ("by_target", "by_spike") if repeat % 2 == 0 else ("by_spike", "by_target"):
                start = time.perf_counter()
                nets[mode].run(duration, backend="cuda")
                times[mode].append((time.perf_counter() - start) / duration)
        nets["numba"].run(min(sizes.duration, 20 * ms) + sizes.repeats * duration, backend="numba")
        entry = {"synapses": int(sum(len(p) for p in nets["numba"].projections)), "timed_simulated_s": duration,
                 "spikes": int(sum(m.num_spikes for m in monitors["numba"]))}
        for mode, measured in times.items():
            entry[mode] = {"cuda_s_per_simulated_s": statistics.median(measured),
                           "range": [min(measured), max(measured)],
                           "spikes_identical_to_numba": all(
                               np.array_equal(a.steps, b.steps) and np.array_equal(a.ids, b.ids)
                               for a, b in zip(monitors[mode], monitors["numba"], strict=True))}
        entry["faster"] = min(times, key=lambda mode: statistics.median(times[mode]))
        record[name] = entry
    return record


def microcircuit(sizes: Sizes) -> dict:
    started = time.perf_counter()
    net = rv.networks.microcircuit(scale=sizes.microcircuit_scale, seed=1)
    built = time.perf_counter()
    net.run(10 * ms, backend="cuda")  # lowering, upload, compilation
    warmed = time.perf_counter()
    net.run(sizes.microcircuit_duration, backend="cuda")
    finished = time.perf_counter()
    return {"scale": sizes.microcircuit_scale, "neurons": sum(p.n for p in net.populations.values()),
            "synapses": int(sum(len(p) for p in net.projections)), "build_s": built - started,
            "upload_compile_first_10ms_s": warmed - built, "run_s": finished - warmed,
            "real_time_factor": (finished - warmed) / sizes.microcircuit_duration,
            "spikes": int(sum(net.stats.spikes_by_population.values()))}


@contextlib.contextmanager
def counting_launches():
    """Counts kernel launches (``launches``: through numba, and the cuda backend's own launches of kernels
    whose arguments it marshalled once) and device-to-host copies (``copies``) while active."""
    from ranvier.engine.backends.cuda_backend import _Launch

    counted = {"launches": 0, "copies": 0}
    if SIMULATED:
        from numba.cuda.simulator.kernel import FakeCUDAKernel as launcher
        name = "__call__"
    else:
        from numba.cuda.dispatcher import _Kernel as launcher
        name = "launch"
    device_array = type(cuda.to_device(np.zeros(1)))
    launch, prepared, copy = getattr(launcher, name), _Launch._launch_prepared, device_array.copy_to_host

    def counted_launch(self, *args, **kwargs):
        if not getattr(self, "_device", False):  # the simulator calls device functions through it too
            counted["launches"] += 1
        return launch(self, *args, **kwargs)

    def counted_prepared(self, *args, **kwargs):
        counted["launches"] += 1
        return prepared(self, *args, **kwargs)

    def counted_copy(self, *args, **kwargs):
        counted["copies"] += 1
        return copy(self, *args, **kwargs)

    setattr(launcher, name, counted_launch)
    _Launch._launch_prepared = counted_prepared
    device_array.copy_to_host = counted_copy
    try:
        yield counted
    finally:
        setattr(launcher, name, launch)
        _Launch._launch_prepared = prepared
        device_array.copy_to_host = copy


def counting_chunks(lowered) -> dict:
    """Counts the min-delay chunks the runners of ``lowered`` take from now on (``["n"]``): they ask for the
    next value boundary once per chunk."""
    chunks = {"n": 0}
    boundary = lowered.next_value_boundary

    def counted_boundary(step):
        chunks["n"] += 1
        return boundary(step)

    lowered.next_value_boundary = counted_boundary
    return chunks


def launches(builds: dict, sizes: Sizes) -> dict:
    """Kernel launches per min-delay chunk of the cuda backend over ``count_steps`` steps, and its copies to the
    host: those of a run (its end) and those per chunk (what a run of twice the steps adds, per added chunk:
    the spikes of populations that spike in one run and not the other count there too)."""
    record = {}
    for name, build in builds.items():
        net = build()
        net.run(2 * net.dt, backend="cuda")  # lowers and compiles
        lowered = net._simulation.lowered
        runs = []
        for steps in (sizes.count_steps, 2 * sizes.count_steps):
            chunks = counting_chunks(lowered)
            with counting_launches() as counted:
                net.run(steps * net.dt, backend="cuda")
            runs.append((chunks["n"], counted["launches"], counted["copies"]))
        (short_chunks, _, short_copies), (long_chunks, long_launches, long_copies) = runs
        record[name] = {"chunks": long_chunks, "chunk_steps": lowered.chunk, "launches": long_launches,
                        "launches_per_chunk": long_launches / max(1, long_chunks),
                        "copies_to_host_per_run": short_copies,
                        "copies_to_host_per_chunk": (long_copies - short_copies) / max(1, long_chunks - short_chunks)}
    record["most_per_chunk"] = max(r["launches_per_chunk"] for r in record.values())
    return record


def training(sizes: Sizes) -> dict:
    try:
        import torch
        from train_vs_snntorch import ranvier_network, snntorch_network, snntorch_step

        from ranvier.train import SpikingModule
    except ImportError as error:
        return {"error": f"not measured: {error}"}
    hidden, steps, batch = sizes.training
    device = "cuda" if torch.cuda.is_available() else "cpu"
    record = {"hidden": hidden, "steps": steps, "batch": batch, "device": device}
    if device == "cpu":
        record["note"] = "torch sees no GPU: the step ran on the CPU"

    def step_time(on: str, peer: bool = False) -> float:
        """The median of three timed steps (after one that compiles and warms the allocator) of ranvier's
        module, or with ``peer`` of snnTorch's same network (``train_vs_snntorch.snntorch_network``)."""
        torch.manual_seed(0)
        module = (snntorch_network(hidden) if peer else SpikingModule(ranvier_network(hidden=hidden), "input")).to(on)
        optimiser = torch.optim.Adam(module.parameters(), lr=1e-3)
        x = (torch.rand(steps, batch, 700) < 0.05).float().to(on)
        y = torch.randint(0, 20, (batch,)).to(on)
        times = []
        for _ in range(4):
            start = time.perf_counter()
            if peer:
                snntorch_step(module, optimiser, x, y)
            else:
                optimiser.zero_grad()
                loss, _ = module.loss(x, y, "out")
                loss.backward()
                optimiser.step()
            if on == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return statistics.median(times[1:])

    try:
        record["step_s"] = step_time(device)
    except Exception as error:  # noqa: BLE001  (a training path that does not run on the GPU is a finding)
        record["error"] = f"{type(error).__name__}: {error}"
        record["cpu_step_s"] = step_time("cpu")
    try:
        record["snntorch_step_s"] = step_time(device, peer=True)
        if "step_s" in record:
            record["ratio_to_snntorch"] = record["step_s"] / record["snntorch_step_s"]
    except ImportError as error:  # snnTorch is not installed (carry its wheel to the GPU machine)
        record["snntorch"] = f"not measured: {error}"
    return record


@contextlib.contextmanager
def timing_rate_windows(counted: dict):
    """Times the cuda backend's handovers of a host value population's window (``to_host`` and
    ``to_device`` of some populations, not a run's start and end) and the ``Rate`` modules' updates
    while active, into ``handover_s`` and ``module_s`` of the returned dict, with the copies to the
    host of the handovers (``handover_copies``, read from ``counted``, a :func:`counting_launches`)."""
    from ranvier.engine.backends.cuda_backend import CudaRunner
    from ranvier.neurons import Rate

    spent = {"handover_s": 0.0, "module_s": 0.0, "handover_copies": 0, "windows": 0}
    to_host, to_device, advance = CudaRunner.to_host, CudaRunner.to_device, Rate.advance

    def timed(method, counts_window: bool):
        def handover(self, rings=None, states=()):
            if rings is None:  # a run's start or end, or a callback's: not a window
                return method(self)
            copies, start = counted["copies"], time.perf_counter()
            method(self, rings, states)
            spent["handover_s"] += time.perf_counter() - start
            spent["handover_copies"] += counted["copies"] - copies
            spent["windows"] += counts_window
        return handover

    def timed_advance(self, *args, **kwargs):
        start = time.perf_counter()
        emitted = advance(self, *args, **kwargs)  # its output comes back to a host array: the device is done
        spent["module_s"] += time.perf_counter() - start
        return emitted

    CudaRunner.to_host, CudaRunner.to_device = timed(to_host, True), timed(to_device, False)
    Rate.advance = timed_advance
    try:
        yield spent
    finally:
        CudaRunner.to_host, CudaRunner.to_device, Rate.advance = to_host, to_device, advance


def rate(sizes: Sizes) -> dict:
    import torch

    n_cuba, hidden = sizes.rate
    device = "cuda" if torch.cuda.is_available() else "cpu"
    record: dict = {"n_cuba": n_cuba, "hidden": hidden, "rate_dt_s": RATE_DT, "torch_device": device}
    if device == "cpu":
        record["note"] = "torch sees no GPU: the Rate ran on the CPU"
    runs = {}
    for backend in ("numpy", "cuda"):
        net = rate_network(n_cuba, hidden, device if backend == "cuda" else "cpu")
        monitors = [net.record(name, "spikes") for name in ("exc", "inh")]
        output = net.record("ann", "output")
        with delivering(by_target=True):  # every input summed in the reference order, on any device
            net.run(2 * net.dt, backend=backend)  # lowers and compiles: the windows counted below are the run's
        with counting_launches() as counted, timing_rate_windows(counted) as spent:
            start = time.perf_counter()
            net.run(sizes.equality_duration, backend=backend)
            wall = time.perf_counter() - start
        runs[backend] = (monitors, output.values, wall, spent)
    (spikes, outputs, _, _), (gpu_spikes, gpu_outputs, wall, spent) = runs["numpy"], runs["cuda"]
    record["spikes"] = int(sum(m.num_spikes for m in spikes))
    record["spikes_identical"] = all(np.array_equal(a.steps, b.steps) and np.array_equal(a.ids, b.ids)
                                     for a, b in zip(spikes, gpu_spikes, strict=True))
    record["output_max_difference"] = float(np.abs(outputs - gpu_outputs).max())
    windows = max(1, spent["windows"])
    record["window"] = {"windows": spent["windows"], "wall_ms": 1e3 * wall / windows,
                        "handover_ms": 1e3 * spent["handover_s"] / windows,
                        "module_ms": 1e3 * spent["module_s"] / windows,
                        "copies_to_host": spent["handover_copies"] / windows}
    record.update(timing(lambda: rate_network(n_cuba, hidden, device), sizes))
    return record


def machine() -> dict:
    record = {"simulator": SIMULATED, "python": platform.python_version(), "numpy": np.__version__,
              "numba": __import__("numba").__version__, "processor": platform.processor() or platform.machine(),
              "cores": os.cpu_count()}
    if not SIMULATED:
        device = cuda.get_current_device()
        record["gpu"] = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
    return record


def _value(results: dict, section: str, key: str):
    entry = results.get(section)
    return entry.get(key) if isinstance(entry, dict) else None


def report(results: dict) -> str:
    """The GPU section of BENCHMARKS.md."""
    info = results["machine"]
    lines = [HEADING, ""]
    if info["simulator"]:
        lines += ["Run under numba's CUDA simulator with `--small` (tiny sizes): **these are not GPU timings**;",
                  "only the equality and the launch counts mean anything. The GPU timings are owed.", ""]
    else:
        lines += [f"Machine: {info.get('gpu')}, {info['cores']} cores; Python {info['python']}, numpy "
                  f"{info['numpy']}, numba {info['numba']}.", ""]
    if results.get("earlier_run"):
        lines += [f"Sections from an earlier run (`--previous`), not measured again: "
                  f"{', '.join(results['earlier_run'])}.", ""]
    lines += ["| target | measured | result |", "|---|---|---|"]
    for section, key, bound in TARGETS:
        measured = _value(results, section, key)
        verdict = "-" if measured is None else ("not a GPU timing" if info["simulator"] and key != "most_per_chunk"
                                                else ("PASS" if measured <= bound else "FAIL"))
        shown = "not measured" if measured is None else f"{measured:.4g}"
        lines.append(f"| {section} {key} <= {bound} | {shown} | {verdict} |")
    equal = results.get("equality", {})
    lines += ["", f"Equality with numpy (mixed network): identical = {equal.get('identical')}; "
              f"`{json.dumps(equal)}`", ""]
    for section in ("cuba", "cuba_dense", "mixed", "chunk_costs", "microcircuit", "launches", "launch_modes",
                    "delivery", "training", "shapes", "rate"):
        lines.append(f"- {section}: `{json.dumps(results.get(section, 'not run'))}`")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes (for numba's CUDA simulator)")
    parser.add_argument("--json", type=Path, help="write the results here, after every section")
    parser.add_argument("--section", type=Path, help="write the GPU section of BENCHMARKS.md here too")
    parser.add_argument("--report", type=Path, help="the BENCHMARKS.md whose GPU section this replaces")
    parser.add_argument("--budget", type=float, default=420.0, help="skip the sections that start after this (s)")
    parser.add_argument("--only", help="run only these sections (comma-separated), to rerun what failed")
    parser.add_argument("--previous", type=Path, help="an earlier run's --json: the sections not run now come from it")
    args = parser.parse_args()
    sizes = SMALL if args.small else FULL
    started = time.perf_counter()
    results: dict = {"machine": machine(), "sizes": asdict(sizes)}
    earlier = json.loads(args.previous.read_text()) if args.previous else {}
    builds = {"cuba": lambda: rv.networks.cuba(n=sizes.cuba, seed=1),
              "cuba_dense": lambda: rv.networks.cuba(n=sizes.dense[0], mean_in_degree=sizes.dense[1], seed=1),
              "mixed": lambda: mixed_network(*sizes.mixed)}
    sections = [("equality", lambda: equality(sizes)),
                *((name, lambda build=build: timing(build, sizes)) for name, build in builds.items()),
                ("chunk_costs", lambda: {name: chunk_costs(builds[name], sizes) for name in ("cuba", "cuba_dense")}),
                ("microcircuit", lambda: microcircuit(sizes)),
                ("launches", lambda: launches(builds, sizes)),
                ("launch_modes", lambda: launch_modes(builds, sizes)),
                ("delivery", lambda: deliveries(builds, sizes)),
                ("training", lambda: training(sizes)),
                ("shapes", lambda: shapes(sizes)),
                ("rate", lambda: rate(sizes))]
    chosen = None if args.only is None else set(args.only.split(","))
    for name, measure in sections:
        elapsed = time.perf_counter() - started
        if chosen is not None and name not in chosen:
            results[name] = earlier.get(name, {"skipped": "not asked for (--only)"})
            if name in earlier:
                results.setdefault("earlier_run", []).append(name)
        elif elapsed > args.budget:
            results[name] = {"skipped": f"time budget: {elapsed:.0f} s had passed"}
        else:
            try:
                results[name] = measure()
            except Exception as error:  # noqa: BLE001  (one failing section must not lose the others)
                results[name] = {"error": f"{type(error).__name__}: {error}"}
        results["elapsed_s"] = time.perf_counter() - started
        print(name, json.dumps(results[name]), flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2))
    section = report(results)
    if args.section:
        args.section.parent.mkdir(parents=True, exist_ok=True)
        args.section.write_text(section)
    if args.report:
        write_section(HEADING, section, args.report)
    print(json.dumps({"elapsed_s": results["elapsed_s"], "sections": [name for name, _ in sections],
                      "errors": [name for name, _ in sections if "error" in results[name]]}))


if __name__ == "__main__":
    main()
