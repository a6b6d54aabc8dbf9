"""ranvier's ``neurons.Equations`` against Brian 2: Izhikevich and AdEx neurons, spike step for spike step.

Run from the repository root with the ranvier venv, after ``bash benchmarks/setup_peers.sh``
(which creates ``benchmarks/.venv-brian2``; Brian 2 runs there as a subprocess,
``benchmarks/peers/equations_brian2.py``)::

    .venv/bin/python benchmarks/validate_equations_brian2.py            # 1 s; writes the report section
    .venv/bin/python benchmarks/validate_equations_brian2.py --quick    # 0.2 s, numba only; no report
    .venv/bin/python benchmarks/validate_equations_brian2.py --brian-target cython --precision double

Both simulators get the same equation strings (Brian 2 syntax), threshold, reset, integration
method and the same parameter and initial values as SI floats (Brian 2 takes them without units,
``group.a_ = value``), for these models, a few neurons each with different constant inputs,
``dt`` = 0.1 ms:

- Izhikevich regular spiking (Izhikevich 2003): ``a`` = 0.02 / ms, ``b`` = 0.2 / ms, ``c`` = -65 mV,
  ``d`` = 8 mV / ms, ``I`` = 10, 5 and 15 mV / ms, threshold ``v >= 30*mV``, reset ``v = c; u += d``,
  ``v`` = -65 mV and ``u = b v`` at the start;
- AdEx (Brette & Gerstner 2005): C = 281 pF, g_L = 30 nS, E_L = -70.6 mV, V_T = -50.4 mV,
  Delta_T = 2 mV, tau_w = 144 ms, a = 4 nS, b = 0.0805 nA, V_r = -70.6 mV, I = 1, 0.8 and 1.5 nA,
  threshold ``v > V_T + 5*Delta_T``, reset ``v = V_r; w += b``, ``v = E_L`` and ``w = 0`` at the start;

each with ``method='euler'`` and ``method='rk4'``.  Brian 2 computes in float64 (numpy target by
default; ``--brian-target cython`` compiles); ranvier runs on the chosen backends and
precisions (``rv.Network(precision=...)``; a ranvier without that argument runs in its default
float32, and the row says so).

Step convention: both simulators advance from ``k dt`` to ``(k + 1) dt``, then test the threshold
and reset.  Brian 2 stamps such a spike with the time at the start of the step, ``k dt``; ranvier
with the time at its end, ``(k + 1) dt``.  So the same spike has ``ranvier time = Brian time + dt``
exactly, and spikes are compared as integer steps: ``round(t / dt) - 1`` for ranvier,
``round(t / dt)`` for Brian 2.  Per model the script reports both spike counts, how many leading
spikes of the two ``(step, id)`` sequences are equal, the first mismatch, and PASS when all are
equal (FAIL otherwise; single precision rows are for information, their verdict is ``info``).
The voltage traces, sampled every millisecond, are compared too (largest difference in V).

Both sides round differently (ranvier folds the constant parts of an expression once per run,
Brian 2 evaluates them as sympy writes them), so agreement is to roundings, and a spike whose
crossing lands within roundings of the threshold can move by one step.  With 1 s in double
precision no spike moves; run for longer and one eventually does: over 5 s the Izhikevich rk4
neuron with I = 5 mV / ms moves by one step after about 290 spikes, and Brian 2 and a plain
float64 numpy loop of the same scheme also part there (after 330 spikes; after 324 when ``I`` is
changed by one rounding), so that is the model's sensitivity, not a difference of schemes.

Results go to ``benchmarks/results/validate_equations_brian2.json``; unless ``--quick`` or
``--no-report``, the section ``## Equations vs Brian 2`` of ``benchmarks/BENCHMARKS.md`` is
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
from harness import BRIAN2_PYTHON, PEERS_DIR, cpu_name, tool_version, write_section

import ranvier as rv
from ranvier.neurons.equations.library import ADEX, IZHIKEVICH
from ranvier.units import ms, mV, nA, nS, pF

BENCH_DIR = Path(__file__).resolve().parent
REPORT = BENCH_DIR / "BENCHMARKS.md"
RESULTS = BENCH_DIR / "results" / "validate_equations_brian2.json"
SECTION = "## Equations vs Brian 2"
DT = 0.1 * ms
#: sampling interval of the voltage traces compared besides the spikes
RECORD_EVERY = 1 * ms


def models():
    """name -> equations, threshold, reset, n, parameters and initial values (SI floats)."""
    izh_b = 0.2 / ms
    izh_v0 = -65 * mV
    izh = {
        "equations": IZHIKEVICH, "threshold": "v >= 30*mV", "reset": "v = c; u += d",
        "parameters": {"a": 0.02 / ms, "b": izh_b, "c": -65 * mV, "d": 8 * mV / ms,
                       "I": [10 * mV / ms, 5 * mV / ms, 15 * mV / ms]},
        "init": {"v": izh_v0, "u": izh_b * izh_v0},
    }
    adex_el = -70.6 * mV
    adex = {
        "equations": ADEX, "threshold": "v > V_T + 5*Delta_T", "reset": "v = V_r; w += b",
        "parameters": {"C": 281 * pF, "g_L": 30 * nS, "E_L": adex_el, "V_T": -50.4 * mV, "Delta_T": 2 * mV,
                       "tau_w": 144 * ms, "a": 4 * nS, "b": 0.0805 * nA, "V_r": -70.6 * mV,
                       "I": [1.0 * nA, 0.8 * nA, 1.5 * nA]},
        "init": {"v": adex_el, "w": 0.0},
    }
    return {"izhikevich": izh, "adex": adex}


def runs(methods):
    """The spec of every (model, method) run: name, n and the model's fields."""
    out = []
    for name, model in models().items():
        n = max(len(v) if isinstance(v, list) else 1 for v in model["parameters"].values())
        for method in methods:
            out.append({"name": f"{name}-{method}", "model": name, "method": method, "n": n,
                        "record_every": RECORD_EVERY, **model})
    return out


def run_brian2(specs, duration, target, folder):
    """Run every model in Brian 2 (its own venv); return its record."""
    path = folder / "spec.json"
    path.write_text(json.dumps({"dt": DT, "duration": duration, "runs": specs}))
    cmd = [str(BRIAN2_PYTHON), str(PEERS_DIR / "equations_brian2.py"), "--spec", str(path), "--target", target]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=PEERS_DIR, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"Brian 2 failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-5:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ranvier_network(precision):
    """``rv.Network`` at ``DT`` with ``precision``; without that argument, the default (float32)."""
    try:
        return rv.Network(dt=DT, precision=precision), precision
    except TypeError:
        return rv.Network(dt=DT), "default"


def run_ranvier(spec, duration, backend, precision):
    """Run one model in ranvier; return its record (``error`` when it cannot)."""
    equations = getattr(rv.neurons, "Equations", None)
    if equations is None:
        return {"error": "ranvier.neurons.Equations does not exist yet"}
    parameters = {k: np.asarray(v, dtype=np.float64) if isinstance(v, list) else v
                  for k, v in spec["parameters"].items()}
    try:
        model = equations(spec["equations"], threshold=spec["threshold"], reset=spec["reset"],
                          method=spec["method"], parameters=parameters)
        net, asked = ranvier_network(precision)
        pop = net.population(model, spec["n"], name=spec["model"], init=spec["init"])
        monitor = net.record(pop, "spikes")
        trace = net.record(pop, "v", every=RECORD_EVERY)
        t0 = perf_counter()
        net.run(duration, backend=backend)
        run_s = perf_counter() - t0
    except Exception as error:  # reported as a row; the other runs go on
        return {"error": f"{type(error).__name__}: {error}"}
    steps = np.rint(np.asarray(monitor.times) / DT).astype(np.int64) - 1
    # a ranvier sample at t = (k + 1) dt is the state at the end of step k, after its reset
    v_steps = np.rint(np.asarray(trace.t) / DT).astype(np.int64)
    return {"steps": steps, "ids": np.asarray(monitor.ids, dtype=np.int64), "run_s": run_s,
            "precision": asked, "state_dtype": str(pop.state.dtype), "v_steps": v_steps,
            "v": np.asarray(trace.values, dtype=np.float64)}


def max_v_difference(ours, theirs):
    """Largest |v_ranvier - v_brian2| (V) over the samples both have of the state at the same time."""
    common, i, j = np.intersect1d(ours["v_steps"], np.asarray(theirs["v_steps"]), return_indices=True)
    if not common.size:
        return None
    return float(np.max(np.abs(ours["v"][i] - np.asarray(theirs["v"])[j])))


def compare(ours, theirs):
    """Leading equal spikes of two ``(steps, ids)`` lists, each sorted by (step, id)."""
    seqs = []
    for steps, ids in (ours, theirs):
        steps, ids = np.asarray(steps, dtype=np.int64), np.asarray(ids, dtype=np.int64)
        order = np.lexsort((ids, steps))
        seqs.append(np.stack([steps[order], ids[order]], axis=1).reshape(-1, 2))
    x, y = seqs
    m = min(len(x), len(y))
    differ = np.flatnonzero(np.any(x[:m] != y[:m], axis=1))
    leading = int(differ[0]) if differ.size else m
    out = {"equal": leading, "identical": bool(leading == len(x) == len(y))}
    if not out["identical"]:
        out["first_mismatch"] = {side: [int(v) for v in s[leading]] if leading < len(s) else None
                                 for side, s in (("ranvier", x), ("brian2", y))}
    return out


def markdown(result):
    """The section of BENCHMARKS.md: machine and versions, then one row per model, backend and precision."""
    v, a = result["versions"], result["args"]
    lines = [
        SECTION, "",
        f"Run {result['date']} by `benchmarks/validate_equations_brian2.py` on {result['machine']}; Python "
        f"{v['python']}, numpy {v['numpy']}, numba {v['numba']}, ranvier {v['ranvier']}, Brian 2 {v['brian2']} "
        f"(`{result['brian2_target']}` target, float64, numpy {v['brian2_numpy']}).",
        "",
        f"The same equation strings, threshold, reset, method and SI values on both sides (three neurons per model "
        f"with different constant inputs), dt = {DT * 1e3:g} ms, {a['duration']:g} s. Brian 2 stamps a spike of the "
        "step from k dt at k dt, ranvier at (k + 1) dt: spikes are compared as steps k (ranvier round(t / dt) - 1, "
        "Brian 2 round(t / dt)), sorted by (step, neuron); the voltage traces, sampled every "
        f"{RECORD_EVERY * 1e3:g} ms, are compared at equal times. Times are the wall time of one `run` (ranvier: the "
        "first run of the model, compilation included on numba; Brian 2: code generation included).",
        "",
        "| model | method | ranvier backend | precision | ranvier spikes | Brian 2 spikes | equal spike steps | "
        "first mismatch [step, id] | max abs v difference (V) | ranvier run (s) | Brian 2 run (s) | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        model, method = row["name"].rsplit("-", 1)
        if "error" in row:
            lines.append(f"| {model} | {method} | {row['backend']} | {row['precision']} | - | {row['brian2_spikes']} "
                         f"| - | - | - | - | {row['brian2_run_s']:.3g} | not run: {row['error']} |")
            continue
        mismatch = row.get("first_mismatch")
        mismatch = "-" if mismatch is None else f"ranvier {mismatch['ranvier']}, Brian 2 {mismatch['brian2']}"
        precision = f"{row['precision']} ({row['state_dtype']})"
        dv = "-" if row["max_dv"] is None else f"{row['max_dv']:.2g}"
        lines.append(f"| {model} | {method} | {row['backend']} | {precision} | {row['ranvier_spikes']} | "
                     f"{row['brian2_spikes']} | {row['equal']} | {mismatch} | {dv} | {row['run_s']:.3g} | "
                     f"{row['brian2_run_s']:.3g} | {row['result']} |")
    return "\n".join(lines) + "\n"


def main():
    """Parse arguments, run Brian 2 and ranvier on the same models, compare, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=1.0, help="biological time in s")
    parser.add_argument("--methods", nargs="+", choices=["euler", "rk4"], default=["euler", "rk4"])
    parser.add_argument("--backend", nargs="+", choices=["numba", "numpy"], default=["numba", "numpy"],
                        help="ranvier backends")
    parser.add_argument("--precision", nargs="+", choices=["double", "single"], default=["double", "single"],
                        help="ranvier precisions (PASS or FAIL for double; single is for information)")
    parser.add_argument("--brian-target", choices=["numpy", "cython"], default="numpy", help="Brian 2 code generation")
    parser.add_argument("--quick", action="store_true", help="0.2 s, numba only, no report")
    parser.add_argument("--no-report", action="store_true", help="do not write benchmarks/BENCHMARKS.md")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.backend = min(args.duration, 0.2), ["numba"]
    if not BRIAN2_PYTHON.exists():
        sys.exit(f"{BRIAN2_PYTHON} is missing: run bash benchmarks/setup_peers.sh first")

    specs = runs(args.methods)
    with tempfile.TemporaryDirectory(prefix="ranvier-brian2-") as folder:
        brian = run_brian2(specs, args.duration, args.brian_target, Path(folder))
    peer = {r["name"]: r for r in brian["runs"]}
    rows = []
    for spec in specs:
        theirs = peer[spec["name"]]
        for backend in args.backend:
            for precision in args.precision:
                got = run_ranvier(spec, args.duration, backend, precision)
                row = {"name": spec["name"], "backend": backend, "precision": got.get("precision", precision),
                       "brian2_spikes": len(theirs["steps"]), "brian2_run_s": theirs["run_s"]}
                if "error" in got:
                    row["error"] = got["error"]
                else:
                    c = compare((got["steps"], got["ids"]), (theirs["steps"], theirs["ids"]))
                    row.update(ranvier_spikes=int(got["steps"].size), run_s=got["run_s"],
                               state_dtype=got["state_dtype"], equal=c["equal"],
                               first_mismatch=c.get("first_mismatch"), max_dv=max_v_difference(got, theirs))
                    row["result"] = ("PASS" if c["identical"] else "FAIL") if precision == "double" else (
                        "info: " + ("equal" if c["identical"] else "differs"))
                rows.append(row)
                what = row.get("error") or (f"{row['ranvier_spikes']} vs {row['brian2_spikes']} spikes, "
                                            f"{row['equal']} equal, max |dv| {row['max_dv']:.2g} V, {row['result']}")
                print(f"{spec['name']:>16} {backend:>5} {precision:>6}: {what}", flush=True)

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {platform.platform()}",
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "numba": tool_version(sys.executable, "numba"), "ranvier": getattr(rv, "__version__", None),
                     "brian2": brian["versions"]["brian2"], "brian2_numpy": brian["versions"]["numpy"]},
        "brian2_target": brian["target"], "args": vars(args), "rows": rows,
    }
    section = markdown(result)
    print()
    print(section)
    if not args.quick:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if not (args.quick or args.no_report):
        write_section(SECTION, section, REPORT)
        print(f"wrote {RESULTS} and the section of {REPORT}")
    failed = [r for r in rows if r.get("result") == "FAIL"]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
