"""ranvier's LIF against NEST's ``iaf_psc_exp``, spike for spike, in a chaotic recurrent network.

Run from the repository root with the ranvier venv, after ``bash benchmarks/setup_peers.sh``
(which creates ``benchmarks/.venv-nest``; NEST runs there as a subprocess,
``benchmarks/peers/chaotic_nest.py``)::

    .venv/bin/python benchmarks/validate_nest_double.py              # N = 4000, 1 s; writes the report section
    .venv/bin/python benchmarks/validate_nest_double.py --quick      # N = 1000, 0.3 s; no report
    .venv/bin/python benchmarks/validate_nest_double.py --precision double --backend numpy

The network is the CUBA network of ``benchmarks/peers/cuba_common.py`` (N neurons, 80 %
excitatory, ``tau_m`` = 20 ms, ``E_L`` = -49 mV above the -50 mV threshold, reset -60 mV, 5 ms
refractory, exponential currents of 5 and 10 ms, each ordered pair connected with
probability K / N, no autapses), which is chaotic: a difference of one rounding in one voltage
eventually changes a spike.  Nothing random is left to either simulator: the driver draws the
synapses and initial voltages with numpy and gives both sides the same arrays (an ``.npz`` in a
temporary folder).  The weights and initial voltages are rounded to float32 values first, so
single and double precision start from the same numbers and only the arithmetic differs.

Both simulators integrate the same linear subthreshold system exactly (Rotter & Diesmann 1999):
NEST keeps ``V_m - E_L`` in mV and currents in pA (a weight ``w`` in V becomes
``w * C_m / tau_m`` pA), ranvier keeps ``v`` in V and voltage-equivalent currents, so the two
agree to roundings, not bit for bit.

Step and delay conventions (a double-precision run identical to NEST's confirms them; on
2026-12-01 NEST delays of one step more, ``--nest-delay-offset 1``, parted after 3 spikes):

- spike stamps: both stamp a spike of the step from ``k * dt`` to ``(k + 1) * dt`` at
  ``(k + 1) * dt`` (NEST's ``set_spiketime(origin + lag + 1)``; ranvier's ``SpikeMonitor``), so
  spikes are compared as ``(step k, neuron)`` with ``k = round(t / dt) - 1`` on both sides;
- delays: NEST puts a spike stamped ``t`` with delay ``d`` into the ring-buffer slot of the
  step that starts at ``t + d - dt`` and adds it to the current after that step's voltage update,
  so it first moves ``V_m`` in the step that starts at ``t + d``, which is ranvier's rule for a
  delay ``d``; the same delay on both sides agrees, offset 0 (``--nest-delay-offset`` shifts
  NEST's delays by whole steps to see that any other offset does not);
- within a step both update ``v`` before adding the arriving input, then test the threshold,
  and count the refractory period ``t_ref / dt`` steps from the step after the spike.

Per ranvier precision (``rv.Network(precision=...)``; a ranvier without that argument runs in
its default float32 and the double row is marked unavailable) the script reports the spikes
of both sides, how many leading spikes of the two sorted ``(step, id)`` sequences are
identical, and the time of the first difference.  Results go to
``benchmarks/results/validate_nest_double.json``; unless ``--quick`` or ``--no-report``, the
section ``## LIF vs NEST iaf_psc_exp, spike for spike`` of ``benchmarks/BENCHMARKS.md`` is
replaced (or appended), the other sections are kept.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from time import perf_counter

import numpy as np
from harness import NEST_PYTHON, PEERS_DIR, cpu_name, tool_version, write_section
from peers.cuba_common import DT, E_L, T_REF, TAU_E, TAU_I, TAU_M, V_R, V_T, n_exc, weights

import ranvier as rv
from ranvier.connect import FromArrays

BENCH_DIR = Path(__file__).resolve().parent
REPORT = BENCH_DIR / "BENCHMARKS.md"
RESULTS = BENCH_DIR / "results" / "validate_nest_double.json"
SECTION = "## LIF vs NEST iaf_psc_exp, spike for spike"
#: NEST's membrane capacitance (F); it only converts the weights into pA.
C_M = 250e-12


def make_network(n, k, seed, delay_steps):
    """Synapses, weights and initial voltages of the CUBA network, drawn once with numpy."""
    rng = np.random.default_rng(seed)
    p = k / n
    pre, post = [], []
    rows = max(1, 2_000_000 // n)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        mask = rng.random((stop - start, n)) < p
        mask[np.arange(stop - start), np.arange(start, stop)] = False  # no autapses
        i, j = np.nonzero(mask)
        pre.append(i + start)
        post.append(j)
    pre = np.concatenate(pre).astype(np.int64)
    post = np.concatenate(post).astype(np.int64)
    we, wi = (float(np.float32(w)) for w in weights(k))
    weight = np.where(pre < n_exc(n), we, wi)
    v0 = rng.uniform(V_R, V_T, n).astype(np.float32).astype(np.float64)
    return {
        "n": n, "pre": pre, "post": post, "weight": weight,
        "delay_steps": np.full(pre.size, delay_steps, dtype=np.int64), "v0": v0,
        "dt": DT, "tau_m": TAU_M, "tau_exc": TAU_E, "tau_inh": TAU_I, "t_ref": T_REF,
        "e_l": E_L, "v_th": V_T, "v_reset": V_R, "c_m": C_M,
    }


def run_nest(net, duration, offset, threads, folder):
    """Run the network in NEST (its own venv); return (steps, ids, record)."""
    spec = dict(net, duration=duration, delay_steps=net["delay_steps"] + offset)
    network, out = folder / "network.npz", folder / "nest_spikes.npz"
    np.savez(network, **spec)
    cmd = [str(NEST_PYTHON), str(PEERS_DIR / "chaotic_nest.py"), "--network", str(network), "--out", str(out),
           "--threads", str(threads)]
    t0 = perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYNEST_QUIET": "1"},
                          cwd=PEERS_DIR, check=False)
    wall = perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"NEST failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-5:]}")
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    record["wall_s"] = wall
    spikes = np.load(out)
    steps = np.rint(spikes["times_ms"] / (net["dt"] * 1e3)).astype(np.int64) - 1
    return steps, spikes["senders"].astype(np.int64), record


def ranvier_network(dt, precision):
    """``rv.Network`` with ``precision``, or None if this ranvier cannot; and what was asked."""
    try:
        return rv.Network(dt=dt, seed=1, precision=precision)
    except TypeError:
        if precision == "single":
            return rv.Network(dt=dt, seed=1)  # the default is float32
        return None


def run_ranvier(net, duration, precision, backend):
    """Run the network in ranvier; return (steps, ids, record), or None without ``precision``."""
    t0 = perf_counter()
    sim = ranvier_network(net["dt"], precision)
    if sim is None:
        return None
    model = rv.neurons.LIF(tau_m=net["tau_m"], v_rest=net["e_l"], v_th=net["v_th"], v_reset=net["v_reset"],
                           t_ref=net["t_ref"], tau_syn={"exc": net["tau_exc"], "inh": net["tau_inh"]})
    pop = sim.population(model, net["n"], name="lif", init={"v": net["v0"]})
    for receptor, sign in (("exc", net["weight"] > 0), ("inh", net["weight"] < 0)):
        rule = FromArrays(net["pre"][sign], net["post"][sign])
        sim.connect(pop, pop, rule, weight=net["weight"][sign], delay=net["delay_steps"][sign] * net["dt"],
                    receptor=receptor)
    monitor = sim.record(pop, "spikes")
    t1 = perf_counter()
    sim.run(duration, backend=backend)
    t2 = perf_counter()
    steps = np.rint(monitor.times / net["dt"]).astype(np.int64) - 1
    assert np.array_equal(steps, monitor.steps), "SpikeMonitor.times is not (steps + 1) * dt"
    # the model's constants (propagators) as it computes them, before the engine casts them to the network's dtype
    consts_dtype = str(np.asarray(model.constants(pop.params, net["dt"])).dtype)
    record = {"precision": precision, "state_dtype": str(pop.state.dtype), "constants_dtype": consts_dtype,
              "backend": backend,
              "build_s": t1 - t0, "run_s": t2 - t1, "spikes": int(steps.size)}
    return steps, monitor.ids.astype(np.int64), record


def compare(a, b, dt):
    """Leading identical spikes of two ``(steps, ids)`` spike lists sorted by (step, id)."""
    seqs = []
    for steps, ids in (a, b):
        order = np.lexsort((ids, steps))
        seqs.append(np.stack([steps[order], ids[order]], axis=1))
    (x, y) = seqs
    m = min(len(x), len(y))
    differ = np.flatnonzero(np.any(x[:m] != y[:m], axis=1))
    leading = int(differ[0]) if differ.size else m
    out = {"leading_identical": leading, "identical": bool(leading == len(x) == len(y))}
    if not out["identical"]:
        ends = [s[leading] if leading < len(s) else None for s in (x, y)]
        step = min(int(e[0]) for e in ends if e is not None)
        out.update(first_difference_step=step, first_difference_s=(step + 1) * dt,
                   first_difference={"ranvier": None if ends[0] is None else [int(v) for v in ends[0]],
                                     "nest": None if ends[1] is None else [int(v) for v in ends[1]]},
                   ranvier_spikes_up_to_then=int(np.sum(x[:, 0] < step)),
                   nest_spikes_up_to_then=int(np.sum(y[:, 0] < step)))
    return out


def markdown(result):
    """The section of BENCHMARKS.md: machine and versions, the network, one row per precision."""
    a, v = result["args"], result["versions"]
    nest_rec = result["nest"]
    lines = [
        SECTION, "",
        f"Run {result['date']} by `benchmarks/validate_nest_double.py` on {result['machine']}; Python {v['python']}, "
        f"numpy {v['numpy']}, numba {v['numba']}, ranvier {v['ranvier']}, NEST {v['nest']}.",
        "",
        f"CUBA network of `iaf_psc_exp` / `LIF` neurons, N = {a['n']}, K = {a['k']:g}, {result['synapses']} synapses "
        f"drawn by numpy (seed {a['seed']}) and given to both sides, initial voltages fixed, dt = {DT * 1e3:g} ms, "
        f"delay = {a['delay_steps']} step(s) on both sides (NEST delay offset {a['nest_delay_offset']}), "
        f"{a['duration']:g} s, ranvier backend `{a['backend']}`, NEST {a['threads']} thread(s). Spikes of both "
        "sides sorted by (step, neuron) and compared as sequences; both stamp a spike of the step from k dt at "
        "(k + 1) dt.",
        "",
        "| ranvier precision | state dtype | ranvier spikes | NEST spikes | leading identical spikes | "
        "first difference | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["ranvier"]:
        if row.get("unavailable"):
            lines.append(f"| {row['precision']} | - | - | {nest_rec['spikes']} | - | - | "
                         "not run: `rv.Network` has no `precision` |")
            continue
        c = row["comparison"]
        first = "none" if c["identical"] else (
            f"t = {c['first_difference_s'] * 1e3:.1f} ms (ranvier {c['first_difference']['ranvier']}, "
            f"NEST {c['first_difference']['nest']} as [step, id])")
        verdict = "identical for the whole run" if c["identical"] else "diverges"
        lines.append(f"| {row['precision']} | {row['state_dtype']} | {row['spikes']} | {nest_rec['spikes']} | "
                     f"{c['leading_identical']} | {first} | {verdict} |")
    lines += ["", result["note"]]
    return "\n".join(lines) + "\n"


def note(result):
    """A sentence on what the rows show."""
    rows = {r["precision"]: r for r in result["ranvier"] if not r.get("unavailable")}
    parts = []
    for precision, row in rows.items():
        c = row["comparison"]
        if c["identical"]:
            parts.append(f"{precision}: all {row['spikes']} spikes identical to NEST's")
        else:
            parts.append(f"{precision}: the first {c['leading_identical']} spikes identical, then the sequences "
                         f"part at {c['first_difference_s'] * 1e3:.1f} ms")
    text = ("Result: " + "; ".join(parts) + ". Both sides differ only in rounding (NEST: V_m - E_L in mV and "
            "currents in pA, double; ranvier: v in V, in its precision); in a chaotic network one rounding that "
            "moves a voltage across the threshold in one step changes a spike and then all that follow.")
    low = [p for p, r in rows.items() if r["state_dtype"] == "float64" and r["constants_dtype"] != "float64"]
    if low:
        text += (f" In the {', '.join(low)} run the LIF's constants (propagators, `LIF.constants`) were computed "
                 f"as {rows[low[0]]['constants_dtype']} and only then widened to float64, so its propagators differ "
                 "from NEST's by a float32 rounding (about 1e-8 relative), not by a float64 one.")
    return text


def main():
    """Parse arguments, run NEST and ranvier on the same network, compare, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="number of neurons")
    parser.add_argument("--k", type=float, default=80.0, help="mean in-degree")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synapses and initial voltages")
    parser.add_argument("--duration", type=float, default=1.0, help="biological time in s")
    parser.add_argument("--delay-steps", type=int, default=1, help="synaptic delay in steps of dt (both sides)")
    parser.add_argument("--nest-delay-offset", type=int, default=0, help="steps added to NEST's delays")
    parser.add_argument("--precision", nargs="+", choices=["single", "double"], default=["single", "double"])
    parser.add_argument("--backend", choices=["numba", "numpy"], default="numba", help="ranvier backend")
    parser.add_argument("--threads", type=int, default=1, help="NEST threads")
    parser.add_argument("--quick", action="store_true", help="N = 1000, 0.3 s, no report")
    parser.add_argument("--no-report", action="store_true", help="do not write benchmarks/BENCHMARKS.md")
    args = parser.parse_args()
    if args.quick:
        args.n, args.duration = min(args.n, 1000), min(args.duration, 0.3)
    if not NEST_PYTHON.exists():
        sys.exit(f"{NEST_PYTHON} is missing: run bash benchmarks/setup_peers.sh first")

    net = make_network(args.n, args.k, args.seed, args.delay_steps)
    with tempfile.TemporaryDirectory(prefix="ranvier-nest-") as folder:
        nest_steps, nest_ids, nest_rec = run_nest(net, args.duration, args.nest_delay_offset, args.threads,
                                                  Path(folder))
    print(f"NEST: {nest_rec['spikes']} spikes, run {nest_rec['run_s']:.2f} s", flush=True)
    rows = []
    for precision in args.precision:
        got = run_ranvier(net, args.duration, precision, args.backend)
        if got is None:
            print(f"ranvier {precision}: rv.Network has no precision argument; not run", flush=True)
            rows.append({"precision": precision, "unavailable": True})
            continue
        steps, ids, record = got
        record["comparison"] = compare((steps, ids), (nest_steps, nest_ids), DT)
        rows.append(record)
        c = record["comparison"]
        where = "" if c["identical"] else f", first difference at {c['first_difference_s'] * 1e3:.1f} ms " \
                                          f"{c['first_difference']} ([step, id])"
        print(f"ranvier {precision} ({record['state_dtype']}, {args.backend}): {record['spikes']} spikes, "
              f"{c['leading_identical']} leading identical{where}; run {record['run_s']:.2f} s", flush=True)

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {platform.platform()}",
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "numba": tool_version(sys.executable, "numba"), "ranvier": getattr(rv, "__version__", None),
                     "nest": nest_rec["versions"]["nest"]},
        "args": vars(args), "synapses": int(net["pre"].size), "nest": nest_rec, "ranvier": rows,
    }
    result["note"] = note(result)
    section = markdown(result)
    print()
    print(section)
    if not args.quick:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if not (args.quick or args.no_report):
        write_section(SECTION, section, REPORT)
        print(f"wrote {RESULTS} and the section of {REPORT}")


if __name__ == "__main__":
    main()
