"""Value populations in the engine: astrocyte, Kuramoto, AKOrN, CfC and LTC against their targets.

    python benchmarks/value_populations.py [--quick] [--json out.json] [--report PATH] [--repeats 7]
                                           [--retries 1] [--only CASE,...] [--note TEXT]

Each measurement runs in its own subprocess (this script with ``--case NAME``), under a timeout
and a resident-memory cap, so one that dies (MemoryError, killed, too slow) becomes a FAIL row
instead of stopping the run. Timed runs exclude building and compiling: the JIT is warmed by a
first, untimed run of the same network shape in the same process, and compared variants
alternate, repetition by repetition (their order flipped every other repetition), so load from
other processes hits both alike. Ratios are medians of the per-repetition ratios, with their
range in parentheses. A case during which other processes used more than 20 % of the CPUs is
measured again (``--retries`` times, while the run is within ``--budget`` seconds) and the least
disturbed record kept.

1. ``cuba``: ``rv.networks.cuba(n=4000)`` run 0.5 s on numba, alone and with one
   ``Astrocyte`` (n=1, dt = the network's dt) fed by the excitatory population; each repetition
   builds a fresh network. Target: with / alone <= 1.2.
2. ``kuramoto``: ``rv.networks.kuramoto(n=20000)``: build time (after a build of n/4 in the
   same process, which also gives the coupling memory at two sizes: O(n) means the memory grows
   at most like n^1.1), time per step on numba (1000 steps at dt = 1 ms per repetition), and
   hand-written numba kernels of the same mean-field Euler step (libm or polynomial sine and
   cosine, serial or prange loop; the fastest is the reference), checked against ranvier's
   phases. Targets: build <= 0.2 s, <= 0.15 ms per step, ranvier <= 1.5x the kernel.
3. ``kuramoto_1e6``, ``akorn_all``: Kuramoto all-to-all with n = 10^6, and AKOrN (dim 4) with
   10^5 units all-to-all, 1000 steps each: build and run, peak resident memory of the process
   (VmHWM). Target: <= 4 GiB each.
4. ``akorn_fixed``: AKOrN (dim 4), 10^5 units, ``FixedInDegree(50)`` coupling: time per update
   (100 updates per repetition). Target: <= 15 ms.
5. ``liquid``: a CfC and an LTC (ncps' default ``CfC(20, 64)``, ``LTC(20, 64)``) as engine
   populations updated 100 times (batch 1), against the same model's torch module's forward
   (``ranvier.train.to_torch(model)``; under
   ``torch.no_grad()``, one torch thread) on the same input sequence; the engine's input arrives
   as weighted spikes of a ``SpikeSource`` (one source per input value, ``FromArrays`` weights),
   and its outputs are checked against torch's. Target: engine <= 1.2x torch.

``--quick`` runs every case at reduced sizes and step counts (a smoke run; the section says so).
The Markdown section replaces ``## Value populations`` in ``--report`` (default
``benchmarks/BENCHMARKS.md``; the other sections are kept); ``--only`` runs some cases and
writes no report.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from harness import cpu_name, wait_for_quiet, with_interference

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
REPORT = BENCH_DIR / "BENCHMARKS.md"
SECTION = "## Value populations (`benchmarks/value_populations.py`)"
SECTION_PREFIX = "## Value populations"
#: a measurement during which other processes used more of the CPUs than this is taken again (--retries)
DISTURBED = 0.2

#: case -> (timeout s, resident-memory cap GiB), full run / quick run
LIMITS = {
    "cuba": ((300, 4), (120, 4)),
    "kuramoto": ((400, 10), (120, 4)),
    "kuramoto_1e6": ((300, 6), (120, 4)),
    "akorn_all": ((300, 6), (120, 4)),
    "akorn_fixed": ((300, 4), (120, 4)),
    "liquid": ((300, 4), (120, 4)),
}
CASES = tuple(LIMITS)
#: targets: upper bounds
TARGETS = {"astrocyte_ratio": 1.2, "kuramoto_build_s": 0.2, "kuramoto_step_ms": 0.15, "kuramoto_memory_exponent": 1.1,
           "kuramoto_vs_kernel": 1.5, "peak_rss_gib": 4.0, "akorn_fixed_update_ms": 15.0, "liquid_vs_torch": 1.2}


# ------------------------------------------------------------------------------------------ helpers


def _rss_kib(field: str, pid: int | str = "self") -> int | None:
    """A memory field (``VmRSS``, ``VmHWM``) of a process from /proc, in KiB; None once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def _alternate(repeats: int, sides: dict) -> dict[str, list[float]]:
    """Call each side once per repetition, their order flipped every other repetition; times per side."""
    names = list(sides)
    times = {name: [] for name in names}
    for rep in range(repeats):
        for name in names if rep % 2 == 0 else names[::-1]:
            gc.collect()
            times[name].append(sides[name]())
    return times


def _ratios(numerator: list[float], denominator: list[float]) -> dict:
    """Per-repetition ratios (median, range) and the ratio of the two sides' fastest repetitions, which
    on a loaded machine is the steadier estimate of the uncontended ratio (the verdicts use the median)."""
    return {**_spread([a / b for a, b in zip(numerator, denominator, strict=True)]),
            "fastest": min(numerator) / min(denominator)}


# ------------------------------------------------------------------------------------------ cases
# Each runs in the child process and returns a JSON-able record.


def case_cuba(quick: bool, repeats: int) -> dict:
    import numpy as np

    import ranvier as rv

    duration = 0.1 if quick else 0.5

    def build(astro: bool):
        net = rv.networks.cuba(n=4000, seed=1)
        if astro:
            cell = net.population(rv.neurons.Astrocyte(), n=1, name="astro", dt=net.dt)
            net.connect(net["exc"], cell, rv.connect.AllToAll(), weight=1e-3, receptor="input")
        return net

    spikes, outputs = {}, {}

    def timed(astro: bool) -> float:
        net = build(astro)
        start = time.perf_counter()
        net.run(duration, backend="numba")
        elapsed = time.perf_counter() - start
        spikes[astro] = (net.stats.spikes_by_population["exc"], net.stats.spikes_by_population["inh"])
        if astro:
            outputs[astro] = float(net["astro"].get("output")[0])
        return elapsed

    first = {"alone": timed(False), "astrocyte": timed(True)}  # compiles (or loads) both kernels
    times = _alternate(repeats, {"alone": lambda: timed(False), "astrocyte": lambda: timed(True)})
    return {"duration_s": duration, "n": 4000, "first_run_s": first, "alone_s": _spread(times["alone"]),
            "astrocyte_s": _spread(times["astrocyte"]), "ratio": _ratios(times["astrocyte"], times["alone"]),
            "spikes_exc_inh": list(spikes[False]), "same_spikes": spikes[False] == spikes[True],
            "astrocyte_output": outputs[True], "finite": bool(np.isfinite(outputs[True]))}


def _kuramoto_kernels():
    """Hand-written mean-field Kuramoto steps in numba: {libm, polynomial} sine and cosine x {serial, prange}.

    Per step, as ``ranvier.neurons.Kuramoto`` with ``networks.kuramoto``'s uniform all-to-all
    coupling ``w = float32(K / n)``: ``C = w sum_j cos_j``, ``S = w sum_j sin_j`` over the outputs
    of the previous step (float32, summed in float64); per oscillator, in float64 from its float32
    phase: ``theta += dt (omega + S cos(theta + lag) - C sin(theta + lag))``, wrapped to
    ``[0, 2 pi)`` as ``theta - 2 pi floor(theta / 2 pi)``, stored as float32, with ``cos``/``sin``
    of the wrapped float64 phase as the new float32 outputs; the order parameter is
    ``hypot(C, S) / (w n)`` of the last outputs. ``libm`` calls the C library's sine and cosine
    (a call per value: the loop does not vectorise); ``poly`` uses fdlibm's Cody-Waite reduction by
    pi/2 and its minimax polynomials (``__kernel_sin``/``__kernel_cos`` coefficients, about 1 ulp),
    branch-free, so LLVM can vectorise the loop. The faster variant is the reference.
    """
    import numba
    import numpy as np
    from numba import prange

    two_pi = 2.0 * np.pi
    two_over_pi = 6.36619772367581382433e-01
    pio2_hi, pio2_lo = 1.57079632673412561417e+00, 6.07710050650619224932e-11
    s1, s2, s3 = -1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04
    s4, s5, s6 = 2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10
    c1, c2, c3 = 4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05
    c4, c5, c6 = -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11
    jit = {"error_model": "numpy"}

    @numba.njit(inline="always", **jit)
    def libm_sin_cos(x):
        return np.sin(x), np.cos(x)

    @numba.njit(inline="always", **jit)
    def poly_sin_cos(x):
        quadrant = np.floor(x * two_over_pi + 0.5)
        r = (x - quadrant * pio2_hi) - quadrant * pio2_lo
        z = r * r
        sine = r + z * r * (s1 + z * (s2 + z * (s3 + z * (s4 + z * (s5 + z * s6)))))
        cosine = 1.0 - (0.5 * z - z * z * (c1 + z * (c2 + z * (c3 + z * (c4 + z * (c5 + z * c6))))))
        turn = quadrant - 4.0 * np.floor(quadrant * 0.25)
        sin_x = sine if turn == 0.0 else (cosine if turn == 1.0 else (-sine if turn == 2.0 else -cosine))
        cos_x = cosine if turn == 0.0 else (-sine if turn == 1.0 else (-cosine if turn == 2.0 else sine))
        return sin_x, cos_x

    def make(sin_cos, parallel):
        @numba.njit(parallel=parallel, **jit)
        def sums(cos_theta, sin_theta):
            c = 0.0
            s = 0.0
            for i in prange(cos_theta.shape[0]):  # a reduction: split between threads with parallel=True
                c += np.float64(cos_theta[i])
                s += np.float64(sin_theta[i])
            return c, s

        @numba.njit(parallel=parallel, **jit)
        def kernel(theta, cos_theta, sin_theta, omega, lag, weight, dt, steps):
            n = theta.shape[0]
            c, s = sums(cos_theta, sin_theta)
            for _ in range(steps):
                coupling_cos = weight * c
                coupling_sin = weight * s
                for i in prange(n):  # without parallel=True numba runs prange as range
                    phase = np.float64(theta[i])
                    sin_shifted, cos_shifted = sin_cos(phase + lag[i])
                    velocity = omega[i] + coupling_sin * cos_shifted - coupling_cos * sin_shifted
                    advanced = phase + dt * velocity
                    wrapped = advanced - two_pi * np.floor(advanced / two_pi)
                    theta[i] = wrapped
                    sin_new, cos_new = sin_cos(wrapped)
                    cos_theta[i] = cos_new
                    sin_theta[i] = sin_new
                c, s = sums(cos_theta, sin_theta)
            return math.hypot(c, s) / n

        return kernel

    return {f"{trig} {loop}": make(sin_cos, loop == "prange")
            for trig, sin_cos in (("libm", libm_sin_cos), ("poly", poly_sin_cos)) for loop in ("serial", "prange")}


def _phase_difference(a, b) -> float:
    import numpy as np

    return float(np.max(np.abs(np.angle(np.exp(1j * (np.asarray(a) - np.asarray(b)))))))


def case_kuramoto(quick: bool, repeats: int) -> dict:
    import numba
    import numpy as np

    import ranvier as rv

    n = 2000 if quick else 20000
    steps = 100 if quick else 1000
    coupling, dt = 2.0, 1e-3

    start = time.perf_counter()
    small = rv.networks.kuramoto(n=n // 4, coupling=coupling, seed=1, dt=dt)
    small_build = time.perf_counter() - start
    small_bytes = int(sum(p.nbytes for p in small.projections))
    del small
    gc.collect()
    start = time.perf_counter()
    net = rv.networks.kuramoto(n=n, coupling=coupling, seed=1, dt=dt)
    build_s = time.perf_counter() - start
    coupling_bytes = int(sum(p.nbytes for p in net.projections))
    if coupling_bytes and small_bytes:
        exponent = math.log(coupling_bytes / small_bytes) / math.log(4)
    else:
        exponent = 0.0  # no memory held at either size
    population = net["osc"]
    theta0 = population.get("theta").astype(np.float32)
    omega = np.ascontiguousarray(population.params["omega"], dtype=np.float64)
    lag = np.ascontiguousarray(population.params["lag"], dtype=np.float64)
    weight = float(np.float32(coupling / n))  # stored as a float32 weight, as every projection's

    def fresh_state():
        theta = np.mod(theta0.astype(np.float64), 2 * np.pi)  # what the run's start (derive) does
        return [theta.astype(np.float32), np.cos(theta).astype(np.float32), np.sin(theta).astype(np.float32)]

    warm_steps = 10
    start = time.perf_counter()
    net.run(warm_steps * dt, backend="numba")
    first_run_s = time.perf_counter() - start

    kernels = _kuramoto_kernels()
    states = {}
    parity = {}
    for name, kernel in kernels.items():
        state = fresh_state()
        kernel(*state, omega, lag, weight, dt, warm_steps)  # compiles
        parity[f"{name}, after {warm_steps} steps"] = _phase_difference(state[0], population.get("theta"))
        states[name] = state

    def ranvier_side():
        start = time.perf_counter()
        net.run(steps * dt, backend="numba")
        return time.perf_counter() - start

    def kernel_side(name):
        def run():
            start = time.perf_counter()
            kernels[name](*states[name], omega, lag, weight, dt, steps)
            return time.perf_counter() - start
        return run

    times = _alternate(repeats, {"ranvier": ranvier_side, **{name: kernel_side(name) for name in kernels}})
    total = warm_steps + repeats * steps
    for name in kernels:
        parity[f"{name}, after {total} steps"] = _phase_difference(states[name][0], population.get("theta"))
    best = min(kernels, key=lambda name: statistics.median(times[name]))
    per_step = {name: _spread([1e3 * t / steps for t in values]) for name, values in times.items()}
    return {"n": n, "steps_per_repeat": steps, "dt": dt, "coupling": coupling, "build_s": build_s,
            "small_n": n // 4, "small_build_s": small_build, "coupling_bytes": coupling_bytes,
            "small_coupling_bytes": small_bytes, "memory_exponent": exponent,
            "bytes_per_oscillator": coupling_bytes / n, "first_run_s": first_run_s,
            "step_ms": per_step, "reference": best, "vs_kernel": _ratios(times["ranvier"], times[best]),
            "vs_each_kernel": {name: _ratios(times["ranvier"], times[name]) for name in kernels},
            "max_phase_difference": parity, "order": float(population.get("order")[0]),
            "numba_threads": numba.get_num_threads()}


def case_all_to_all(quick: bool, repeats: int, kind: str) -> dict:
    import ranvier as rv

    steps, dt, coupling = (100 if quick else 1000), 1e-3, 2.0

    def build(n):
        if kind == "kuramoto":
            net = rv.networks.kuramoto(n=n, coupling=coupling, seed=1, dt=dt)
            return net, net["osc"]
        net = rv.Network(dt=dt, seed=1)
        population = net.population(rv.neurons.AKOrN(dim=4, omega=rv.init.Normal(0.0, 1.0)), n=n, name="units")
        net.connect(population, population, rv.connect.AllToAll(), weight=coupling / n, receptor="coupling")
        return net, population

    warm, _ = build(100)
    warm.run(2 * dt, backend="numba")  # compiles on a small network of the same shape
    del warm
    gc.collect()
    n = (3000 if quick else 10**6) if kind == "kuramoto" else (2000 if quick else 10**5)
    record = {"kind": kind, "steps": steps}
    start = time.perf_counter()
    net, population = build(n)
    record.update(n=n, build_s=time.perf_counter() - start,
                  coupling_bytes=int(sum(p.nbytes for p in net.projections)))
    start = time.perf_counter()
    net.run(steps * dt, backend="numba")
    record.update(run_s=time.perf_counter() - start, order=float(population.get("order")[0]))
    record["step_ms"] = 1e3 * record["run_s"] / steps
    return record


def case_akorn_fixed(quick: bool, repeats: int) -> dict:
    import ranvier as rv

    n, k = (10000 if quick else 10**5), 50
    updates, dt = (20 if quick else 100), 1e-3
    start = time.perf_counter()
    net = rv.Network(dt=dt, seed=1)
    population = net.population(rv.neurons.AKOrN(dim=4, omega=rv.init.Normal(0.0, 1.0)), n=n, name="units")
    net.connect(population, population, rv.connect.FixedInDegree(k), weight=2.0 / k, receptor="coupling")
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    net.run(5 * dt, backend="numba")
    first_run_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        net.run(updates * dt, backend="numba")
        times.append(1e3 * (time.perf_counter() - start) / updates)
    return {"n": n, "in_degree": k, "updates_per_repeat": updates, "build_s": build_s, "first_run_s": first_run_s,
            "coupling_bytes": int(sum(p.nbytes for p in net.projections)), "update_ms": _spread(times),
            "order": float(population.get("order")[0])}


def _liquid_compare(name: str, model, x, repeats: int, dt: float) -> dict:
    """One liquid model: the engine population's 100 updates against its torch module's forward, alternated."""
    import numpy as np
    import torch

    import ranvier as rv

    steps, n_in = x.shape
    sources = steps * n_in
    from ranvier.train import to_torch

    module = to_torch(model)
    x_torch = torch.as_tensor(x, dtype=torch.float32)[None]
    outputs = {}

    def build():
        # source t * n_in + k spikes once, at step t - 1, and reaches input k of the update that
        # closes step t with weight x[t, k]
        net = rv.Network(dt=dt, seed=1)
        feed = net.population(rv.neurons.SpikeSource(np.repeat(np.arange(1, steps) * dt, n_in),
                                                     np.arange(n_in, sources), n=sources), name="feed")
        liquid = net.population(model, name="liquid", dt=dt)
        rule = rv.connect.FromArrays(np.arange(sources), np.arange(sources) % n_in, weight=x.ravel())
        net.connect(feed, liquid, rule, receptor="input")
        return net, net.record(liquid, "output")

    def engine_side():
        net, monitor = build()
        start = time.perf_counter()
        net.run(steps * dt, backend="numba")
        elapsed = time.perf_counter() - start
        outputs["engine"] = monitor.values[:, :model.output_size]
        return elapsed

    def torch_side():
        with torch.no_grad():
            start = time.perf_counter()
            result = module(x_torch)[0]
            elapsed = time.perf_counter() - start
        outputs["torch"] = result[0].numpy()
        return elapsed

    first = {"engine": engine_side(), "torch": torch_side()}  # compile, allocator, threads
    engine, reference = outputs["engine"], outputs["torch"]
    difference = float(np.abs(engine - reference).max()) if engine.shape == reference.shape else float("inf")
    times = _alternate(repeats, {"engine": engine_side, "torch": torch_side})
    return {"model": name, "units": model.state_size, "n_in": n_in, "updates": steps, "first_s": first,
            "engine_ms": _spread([1e3 * t for t in times["engine"]]),
            "torch_ms": _spread([1e3 * t for t in times["torch"]]),
            "ratio": _ratios(times["engine"], times["torch"]), "max_output_difference": difference,
            "output_shape": list(engine.shape)}


def case_liquid(quick: bool, repeats: int) -> dict:
    import numpy as np
    import torch
    from ncps.torch import LTC as NcpsLTC
    from ncps.torch import CfC as NcpsCfC

    import ranvier as rv

    torch.set_num_threads(1)
    torch.manual_seed(0)
    steps, n_in, units, dt = 100, 20, 64, 1e-3
    # the engine's first update sees no spikes (none can arrive before the run's first step), so the
    # sequence both sides compute starts with a zero input
    x = np.random.default_rng(0).normal(size=(steps, n_in))
    x[0] = 0.0
    cfc = _liquid_compare("CfC", rv.neurons.CfC.from_ncps(NcpsCfC(n_in, units)), x, repeats, dt)
    ltc = _liquid_compare("LTC", rv.neurons.LTC.from_ncps(NcpsLTC(n_in, units)), x, max(2, (repeats + 1) // 2), dt)
    return {"models": [cfc, ltc], "torch_threads": torch.get_num_threads()}


def run_case(name: str, quick: bool, repeats: int) -> dict:
    if name == "cuba":
        return case_cuba(quick, repeats)
    if name == "kuramoto":
        return case_kuramoto(quick, repeats)
    if name == "kuramoto_1e6":
        return case_all_to_all(quick, repeats, "kuramoto")
    if name == "akorn_all":
        return case_all_to_all(quick, repeats, "akorn")
    if name == "akorn_fixed":
        return case_akorn_fixed(quick, repeats)
    if name == "liquid":
        return case_liquid(quick, repeats)
    raise SystemExit(f"unknown case {name!r}; one of {', '.join(CASES)}")


def child_main(name: str, quick: bool, repeats: int) -> None:
    """Run one case and print its record (or its error) as the last stdout line, with the peak RSS."""
    try:
        record = run_case(name, quick, repeats)
    except BaseException as error:  # noqa: B036 - MemoryError, KeyboardInterrupt: report, then fail
        import traceback

        tail = traceback.format_exc().strip().splitlines()[-6:]
        record = {"error": f"{type(error).__name__}: {str(error)[:300]}", "traceback_tail": tail}
    record["peak_rss_kib"] = _rss_kib("VmHWM")
    print(json.dumps(record, default=float), flush=True)
    sys.exit(1 if "error" in record else 0)


# ------------------------------------------------------------------------------------------ parent


def run_child(name: str, quick: bool, repeats: int) -> dict:
    """Run case ``name`` in a subprocess under its timeout and memory cap; return its record.

    The parent samples the child's resident memory every 50 ms and kills it above the cap; a
    killed, timed-out or crashed child gives a record with ``error``.
    """
    timeout, cap_gib = LIMITS[name][1 if quick else 0]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case", name, "--repeats", str(repeats)]
    if quick:
        cmd.append("--quick")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=REPO, env=env)
        seen_kib, killed = 0, None
        while proc.poll() is None:
            rss = max(_rss_kib("VmRSS", proc.pid) or 0, _rss_kib("VmHWM", proc.pid) or 0)
            seen_kib = max(seen_kib, rss)
            if rss > cap_gib * 2**20:
                killed = f"killed: resident memory above the {cap_gib} GiB cap"
            elif time.perf_counter() - start > timeout:
                killed = f"killed: timed out after {timeout} s"
            if killed:
                proc.kill()
                proc.wait()
                break
            time.sleep(0.05)
        wall_s = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    record = None
    for line in reversed(stdout.strip().splitlines()):
        try:
            record = json.loads(line)
            break
        except json.JSONDecodeError:
            continue
    if record is None:
        tail = stderr.strip().splitlines()[-8:] or [""]
        record = {"error": killed or f"exit {proc.returncode}: {tail[-1]}", "stderr_tail": tail}
    elif killed:
        record["error"] = killed
    record["wall_s"] = wall_s
    peak = max(seen_kib, record.get("peak_rss_kib") or 0)
    record["peak_rss_gib"] = peak / 2**20
    record["peak_rss_killed"] = bool(killed and "memory" in killed)
    return record


def measure(name: str, quick: bool, repeats: int, retries: int, deadline: float) -> dict:
    """Run case ``name``; while other processes used more than ``DISTURBED`` of the CPUs meanwhile, run it
    again (up to ``retries`` more times, while a repeat of it fits before ``deadline``, a
    ``time.monotonic()``) and keep the least disturbed record. Failures are not retried."""
    kept = None
    for attempt in range(1 + retries):
        if not quick:
            wait_for_quiet(threshold=0.3, patience=10)
        load = os.getloadavg()[0]
        record, others = with_interference(run_child, name, quick, repeats)
        record.update(others_cpu_share=others, load_average_at_start=load, attempt=attempt + 1)
        if kept is None or ("error" not in record and others < kept["others_cpu_share"]):
            kept = record
        if "error" in record or others <= DISTURBED or attempt == retries \
                or time.monotonic() + 1.5 * record["wall_s"] + 10 > deadline:
            break
        print(f"    other processes used {others:.0%} of the CPUs; measuring again", flush=True)
    return kept


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def machine_info() -> dict:
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    git = {}
    for key, args in (("commit", ["rev-parse", "--short", "HEAD"]),
                      ("changed_under_ranvier", ["status", "--porcelain", "--", "ranvier"])):
        try:
            result = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO, timeout=30, check=False)
            git[key] = result.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            git[key] = ""
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "ram_gib": round(mem_kib / 2**20, 1),
            "os": platform.platform(), "python": platform.python_version(),
            **{package: _version(package) for package in ("numpy", "numba", "scipy", "torch", "ncps", "ranvier")},
            "commit": git["commit"], "uncommitted_engine_changes": len(git["changed_under_ranvier"].splitlines())}


# ------------------------------------------------------------------------------------------ report


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}"


def _range(spread: dict, scale: float = 1.0, digits: int = 3) -> str:
    text = (f"{_fmt(spread['median'] * scale, digits)} ({_fmt(spread['min'] * scale, digits)}-"
            f"{_fmt(spread['max'] * scale, digits)})")
    if "fastest" in spread:
        text += f", fastest {_fmt(spread['fastest'], digits)}"
    return text


def _size(nbytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes:.0f} B"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _failed(record: dict) -> str:
    return f"FAIL ({record['error']})"


def targets(records: dict, quick: bool) -> list[tuple[str, str, str]]:
    """(target, measured, result) rows; a case that failed gives FAIL rows naming why."""
    rows = []
    t = TARGETS
    r = records.get("cuba")
    if r is not None:
        label = f"CUBA 4000, {r.get('duration_s', 0.5):g} s: run with one astrocyte / alone <= {t['astrocyte_ratio']}"
        if "error" in r:
            rows.append((label, "-", _failed(r)))
        else:
            ok = r["ratio"]["median"] <= t["astrocyte_ratio"] and r["same_spikes"]
            note = "" if r["same_spikes"] else " (spikes differ with the astrocyte)"
            rows.append((label, _range(r["ratio"]) + note, _verdict(ok)))
    r = records.get("kuramoto")
    if r is not None:
        n = r.get("n", 20000)
        labels = [f"Kuramoto n = {n}: build <= {t['kuramoto_build_s']} s",
                  f"Kuramoto n = {n}: time per step (numba) <= {t['kuramoto_step_ms']} ms",
                  f"Kuramoto n = {n}: coupling memory O(n) (grows like n^k, k <= {t['kuramoto_memory_exponent']})",
                  f"Kuramoto n = {n}: ranvier / hand-written numba kernel <= {t['kuramoto_vs_kernel']}"]
        if "error" in r:
            rows += [(label, "-", _failed(r)) for label in labels]
        else:
            phase_ok = max(r["max_phase_difference"].values()) < 1e-3
            rows.append((labels[0], f"{_fmt(r['build_s'])} s", _verdict(r["build_s"] <= t["kuramoto_build_s"])))
            step = r["step_ms"]["ranvier"]
            rows.append((labels[1], f"{_range(step)} ms", _verdict(step["median"] <= t["kuramoto_step_ms"])))
            rows.append((labels[2], f"k = {r['memory_exponent']:.2f} ({_size(r['coupling_bytes'])}, "
                         f"{r['bytes_per_oscillator']:,.0f} B per oscillator)",
                         _verdict(r["memory_exponent"] <= t["kuramoto_memory_exponent"])))
            note = "" if phase_ok else " (phases differ from the kernel's)"
            rows.append((labels[3], f"{_range(r['vs_kernel'])} (kernel: {r['reference']}){note}",
                         _verdict(r["vs_kernel"]["median"] <= t["kuramoto_vs_kernel"] and phase_ok)))
    for key, what in (("kuramoto_1e6", "Kuramoto all-to-all"), ("akorn_all", "AKOrN dim 4 all-to-all")):
        r = records.get(key)
        if r is None:
            continue
        n = r.get("n", 10**6 if key == "kuramoto_1e6" else 10**5)
        steps = r.get("steps", 1000)
        label = f"{what}, n = {n:,}, {steps} steps: peak RSS <= {t['peak_rss_gib']:g} GiB"
        peak = f"{r['peak_rss_gib']:.2f} GiB"
        if "error" in r:
            rows.append((label, f"{'>' if r['peak_rss_killed'] else ''}{peak} at failure", _failed(r)))
        else:
            rows.append((label, f"{peak} (run {_fmt(r['run_s'])} s)", _verdict(r["peak_rss_gib"] <= t["peak_rss_gib"])))
    r = records.get("akorn_fixed")
    if r is not None:
        label = (f"AKOrN dim 4, n = {r.get('n', 10**5):,}, FixedInDegree({r.get('in_degree', 50)}): time per update "
                 f"<= {t['akorn_fixed_update_ms']:g} ms")
        if "error" in r:
            rows.append((label, "-", _failed(r)))
        else:
            rows.append((label, f"{_range(r['update_ms'])} ms",
                         _verdict(r["update_ms"]["median"] <= t["akorn_fixed_update_ms"])))
    r = records.get("liquid")
    if r is not None:
        for model in ("CfC", "LTC"):
            label = (f"{model} 64 units, input 20, 100 updates, batch 1: engine / torch forward "
                     f"<= {t['liquid_vs_torch']}")
            if "error" in r:
                rows.append((label, "-", _failed(r)))
                continue
            m = next(x for x in r["models"] if x["model"] == model)
            same = m["max_output_difference"] < 1e-4
            note = "" if same else f" (outputs differ by {m['max_output_difference']:.2g})"
            rows.append((label, _range(m["ratio"]) + note, _verdict(m["ratio"]["median"] <= t["liquid_vs_torch"]
                                                                       and same)))
    if quick:
        rows = [(label, measured, f"{result} (quick)") for label, measured, result in rows]
    return rows


def markdown(result: dict) -> str:
    m, records, quick = result["machine"], result["records"], result["quick"]
    if m["commit"]:
        engine = f"commit {m['commit']}" + (f" with uncommitted changes in {m['uncommitted_engine_changes']} files "
                                            "under ranvier/" if m["uncommitted_engine_changes"] else "")
    else:
        engine = "not a git checkout"
    run = (f"Run {result['date']} on {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}; Python "
           f"{m['python']}, numpy {m['numpy']}, numba {m['numba']}, scipy {m['scipy']}, torch {m['torch']}, ncps "
           f"{m['ncps']}, ranvier {m['ranvier']} ({engine}). Load average {result['load_average'][0]:.2f} at the "
           f"start, {result['load_average'][1]:.2f} at the end; other processes used at most "
           f"{max(r.get('others_cpu_share', 0) for r in records.values()):.0%} of the CPUs during a measurement. "
           f"Each case ran in its own process (timeout and memory cap); times exclude building and compiling "
           f"unless named; repetitions of compared variants alternate; ratios are medians of the per-repetition "
           f"ratios, ranges in parentheses, then the ratio of the fastest repetitions of each side (verdicts use "
           f"the medians)." + (f" {result['note']}" if result.get("note") else ""))
    lines = [SECTION, ""]
    if quick:
        lines += ["**Quick smoke run (`--quick`): reduced sizes and step counts; these are not the targets' "
                  "measurements.**", ""]
    lines += [textwrap.fill(run, width=110), "", "| target | measured | result |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in targets(records, quick)]
    lines += _details(records)
    return "\n".join(lines) + "\n"


def _details(records: dict) -> list[str]:
    lines = []
    r = records.get("cuba")
    if r and "error" not in r:
        lines += ["", f"CUBA (n = 4000, numba, {r['duration_s']:g} s simulated; each repetition a fresh network; "
                  f"{r['alone_s']['n']} repetitions): alone {_range(r['alone_s'], 1e3)} ms, with one astrocyte "
                  f"{_range(r['astrocyte_s'], 1e3)} ms; first runs (compile) {r['first_run_s']['alone']:.2f} s and "
                  f"{r['first_run_s']['astrocyte']:.2f} s; spikes (exc, inh) {tuple(r['spikes_exc_inh'])}, "
                  f"{'identical' if r['same_spikes'] else 'different'} with the astrocyte; its output "
                  f"{r['astrocyte_output']:.3g}."]
    r = records.get("kuramoto")
    if r and "error" not in r:
        s = r["step_ms"]
        kernels = [k for k in s if k != "ranvier"]
        total = 10 + s["ranvier"]["n"] * r["steps_per_repeat"]
        lines += ["", f"Kuramoto (`rv.networks.kuramoto`, K = {r['coupling']:g}, dt = {r['dt'] * 1e3:g} ms, "
                  f"{r['steps_per_repeat']} steps per repetition, {s['ranvier']['n']} repetitions, numba with "
                  f"{r['numba_threads']} threads):", "",
                  "| n | build (s) | coupling memory (bytes) | first run, 10 steps (s) |", "|---|---|---|---|",
                  f"| {r['small_n']} | {_fmt(r['small_build_s'])} | {r['small_coupling_bytes']:,} | - |",
                  f"| {r['n']} | {_fmt(r['build_s'])} | {r['coupling_bytes']:,} | {_fmt(r['first_run_s'])} |", "",
                  "| n = " + f"{r['n']} | ranvier | " + " | ".join(f"kernel, {k}" for k in kernels) + " |",
                  "|---|---|" + "---|" * len(kernels),
                  f"| per step (ms) | {_range(s['ranvier'])} | " + " | ".join(_range(s[k]) for k in kernels) + " |",
                  "| ranvier / kernel | - | " + " | ".join(_range(r["vs_each_kernel"][k]) for k in kernels) + " |",
                  "", "Hand-written kernels: libm or polynomial (fdlibm) sine and cosine, serial or prange loop "
                  "(`_kuramoto_kernels` in the script); the fastest by median is the target's reference. Largest "
                  f"phase difference between ranvier and each kernel from the same start, after {total} steps: "
                  + ", ".join(f"{k} {r['max_phase_difference'][f'{k}, after {total} steps']:.2g} rad" for k in kernels)
                  + f"; order parameter at the end {r['order']:.3f}."]
    rows = []
    for key in ("kuramoto_1e6", "akorn_all"):
        r = records.get(key)
        if r is None:
            continue
        what = "Kuramoto" if key == "kuramoto_1e6" else "AKOrN, dim 4"
        if "error" in r:
            rows.append(f"| {what} | {r.get('n', '-')} | - | - | {r['peak_rss_gib']:.2f} | {r['error']} |")
        else:
            rows.append(f"| {what} | {r['n']:,} | {_fmt(r['build_s'])} | {_fmt(r['run_s'])} "
                        f"({_fmt(r['step_ms'])} ms/step) | {r['peak_rss_gib']:.2f} | order {r['order']:.3f} |")
    if rows:
        lines += ["", "All-to-all coupling (K = 2), 1000 steps (fewer with `--quick`) at dt = 1 ms on numba, each "
                  "in a fresh process that first compiled on a network of 100 units; peak RSS: VmHWM of the whole "
                  "process, or the most the parent saw before killing it:", "",
                  "| model | n | build (s) | run (s) | peak RSS (GiB) | note |", "|---|---|---|---|---|---|", *rows]
    r = records.get("akorn_fixed")
    if r and "error" not in r:
        lines += ["", f"AKOrN FixedInDegree({r['in_degree']}), n = {r['n']:,}: build {_fmt(r['build_s'])} s, first "
                  f"5 updates (compile) {_fmt(r['first_run_s'])} s, coupling {r['coupling_bytes']:,} bytes, "
                  f"{r['updates_per_repeat']} updates per repetition, {r['update_ms']['n']} repetitions."]
    r = records.get("liquid")
    if r and "error" not in r:
        lines += ["", f"CfC and LTC (ncps defaults, 64 units, input 20), 100 updates of batch 1; engine: a fresh "
                  f"network per repetition, `net.run` (numba backend) timed; torch: the model's torch module "
                  f"(`to_torch`) forward under `no_grad`, {r['torch_threads']} thread:", "",
                  "| model | engine (ms) | torch forward (ms) | engine / torch | max output difference |",
                  "|---|---|---|---|---|"]
        lines += [f"| {m['model']} | {_range(m['engine_ms'])} | {_range(m['torch_ms'])} | {_range(m['ratio'])} | "
                  f"{m['max_output_difference']:.1e} |" for m in r["models"]]
    return lines


def write_section(path: Path, section: str) -> None:
    """Replace this script's section of ``path`` (up to the next ``## `` heading), or append it."""
    text = path.read_text() if path.exists() else ""
    found = re.search("^" + re.escape(SECTION_PREFIX), text, re.MULTILINE)
    if found:
        start = found.start()
        end = text.find("\n## ", start + len(SECTION_PREFIX))
        text = text[:start] + section + (text[end:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes: a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="repetitions per timed comparison (7; quick 2)")
    parser.add_argument("--json", help="also write the records here")
    parser.add_argument("--report", default=str(REPORT), help="the Markdown report whose section is replaced")
    parser.add_argument("--only", help=f"comma-separated cases ({', '.join(CASES)}); writes no report")
    parser.add_argument("--retries", type=int, default=1,
                        help=f"measure a case again when other processes used > {DISTURBED * 100:.0f}%% "
                             "of the CPUs (1)")
    parser.add_argument("--budget", type=float, default=780,
                        help="seconds after which no case is measured again (780; the run itself is not cut)")
    parser.add_argument("--note", help="a sentence added to the section's description (what code ran, ...)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 7)
    if args.case:
        child_main(args.case, args.quick, repeats)
        return
    cases = CASES if not args.only else tuple(c.strip() for c in args.only.split(","))
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; choose from {', '.join(CASES)}")
    load_start = os.getloadavg()[0]
    deadline = time.monotonic() + args.budget
    records = {}
    for name in cases:
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        records[name] = measure(name, args.quick, repeats, 0 if args.quick else args.retries, deadline)
        r = records[name]
        status = r.get("error", "ok")
        print(f"    {status}; {r['wall_s']:.1f} s, peak RSS {r['peak_rss_gib']:.2f} GiB", flush=True)
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": args.quick, "repeats": repeats, "note": args.note,
              "load_average": [load_start, os.getloadavg()[0]], "machine": machine_info(), "records": records,
              "targets": [dict(zip(("target", "measured", "result"), row, strict=True))
                          for row in targets(records, args.quick)]}
    section = markdown(result)
    print()
    print(section)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float) + "\n")
        print(f"saved {args.json}")
    if not args.only:
        write_section(Path(args.report), section)
        print(f"wrote the value-populations section of {args.report}")


if __name__ == "__main__":
    main()
