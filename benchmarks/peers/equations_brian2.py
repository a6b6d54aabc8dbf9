"""Neuron models given as equation strings, run in Brian 2; prints one JSON line with their spikes.

The peer side of ``benchmarks/validate_equations_brian2.py``, which writes the models to a JSON
file and runs this script with the Brian 2 venv (see ``benchmarks/setup_peers.sh``)::

    benchmarks/.venv-brian2/bin/python benchmarks/peers/equations_brian2.py --spec spec.json --target numpy

The spec holds ``dt`` and ``duration`` (s) and a list ``runs``; each run has a ``name``, ``n``
neurons, Brian 2 ``equations`` (parameters declared in them as ``name : unit``), ``threshold``,
``reset``, ``method``, and ``parameters`` and ``init`` mapping names to SI values (a number or
one per neuron), which are written without units (``group.name_ = value``) so both simulators
start from the same floats; optionally ``record_every`` (s), the sampling interval of ``v``.
Each run is its own ``NeuronGroup`` and ``Network`` with the default clock at ``dt``, float64
throughout.

The record has, per run, ``steps`` and ``ids`` of the spikes: Brian 2 stamps a spike of the step
from ``k * dt`` to ``(k + 1) * dt`` with the clock time at its start, ``k * dt``, so
``step = round(t / dt)`` is that ``k``; and ``run_s``, the wall time of ``Network.run``
(code generation, and for ``cython`` compilation or loading the cached module, included).
With ``record_every``, ``v_steps`` and ``v`` (V, one row per sample, one column per neuron): Brian
2 samples at the start of a step, so the sample of step ``s`` is the state at ``s * dt``, after
the reset of the step before.
"""

import argparse
import json
from time import perf_counter

import brian2 as b2
import numpy as np
from cuba_common import emit


def run_one(spec, dt, duration):
    """Build and run one model; return its record."""
    group = b2.NeuronGroup(
        spec["n"],
        spec["equations"],
        threshold=spec["threshold"],
        reset=spec["reset"],
        method=spec["method"],
        name=spec["name"].replace("-", "_"),
    )
    for name, value in {**spec["parameters"], **spec["init"]}.items():
        setattr(group, name + "_", np.asarray(value, dtype=np.float64))
    monitor = b2.SpikeMonitor(group)
    every = spec.get("record_every")
    trace = b2.StateMonitor(group, "v", record=True, dt=every * b2.second) if every else None
    net = b2.Network(group, monitor, *([] if trace is None else [trace]))
    t0 = perf_counter()
    net.run(duration * b2.second)
    run_s = perf_counter() - t0
    t = np.asarray(monitor.t_, dtype=np.float64)
    return {
        "name": spec["name"],
        "steps": np.rint(t / dt).astype(np.int64).tolist(),
        "ids": np.asarray(monitor.i[:], dtype=np.int64).tolist(),
        "run_s": run_s,
        "state_dtype": str(np.asarray(group.v_).dtype),
        **({"v_steps": np.rint(np.asarray(trace.t_) / dt).astype(np.int64).tolist(),
            "v": np.asarray(trace.v_, dtype=np.float64).T.tolist()} if trace is not None else {}),
    }


def main():
    """Parse arguments, run every model of the spec, print the JSON record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="JSON file with the models (see the module docstring)")
    parser.add_argument("--target", choices=["numpy", "cython"], default="numpy", help="Brian 2 code generation")
    args = parser.parse_args()
    with open(args.spec) as handle:
        spec = json.load(handle)

    b2.prefs.codegen.target = args.target
    b2.prefs.core.default_float_dtype = np.float64
    b2.defaultclock.dt = spec["dt"] * b2.second
    runs = [run_one(run, spec["dt"], spec["duration"]) for run in spec["runs"]]
    emit(
        {
            "peer": "brian2",
            "target": args.target,
            "dt": float(b2.defaultclock.dt_),
            "duration": spec["duration"],
            "runs": runs,
            "versions": {"brian2": b2.__version__, "numpy": np.__version__},
        }
    )


if __name__ == "__main__":
    main()
