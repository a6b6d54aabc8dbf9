"""A given network of ``iaf_psc_exp`` neurons in NEST; writes its spikes, prints one JSON line.

The peer side of ``benchmarks/validate_nest_double.py``, which generates the network and
runs this script with the NEST venv (see ``benchmarks/setup_peers.sh``)::

    benchmarks/.venv-nest/bin/python benchmarks/peers/chaotic_nest.py --network net.npz --out spikes.npz

``--network`` is an ``.npz`` file in SI units, as ranvier takes them:

- ``n`` neurons; ``pre``, ``post`` (0-based neuron indices), ``weight`` (V, voltage-equivalent
  current jump, as ranvier's LIF and Brian 2's CUBA take it) and ``delay_steps`` (whole steps of
  ``dt``), one entry per synapse; a positive weight is excitatory (``tau_syn_ex``), a negative
  one inhibitory (``tau_syn_in``), which is how ``iaf_psc_exp`` sorts its input;
- ``v0`` (V), the initial membrane potential of every neuron;
- the scalars ``dt``, ``duration`` (s), ``tau_m``, ``tau_exc``, ``tau_inh``, ``t_ref`` (s),
  ``e_l``, ``v_th``, ``v_reset`` (V) and ``c_m`` (F, only used to convert the weights).

NEST works in ms, mV, pA and pF: a jump of ``w`` volts in a voltage-equivalent current is a jump
of ``w * C_m / tau_m`` in NEST's current (``benchmarks/peers/cuba_nest.py``).  ``--out`` receives
``times_ms`` (NEST's stamps, ``(k + 1) * dt`` for a spike of the step from ``k * dt``) and
``senders`` (0-based), in NEST's order.
"""

import argparse
import importlib
import os
from time import perf_counter

import numpy as np
from cuba_common import emit, peak_rss_mb

os.environ.setdefault("PYNEST_QUIET", "1")  # no banner: stdout is the one JSON line
nest = importlib.import_module("nest")


def build(net):
    """Create and connect the network in a reset NEST kernel; return (population, recorder)."""
    ms, mv = 1e3, 1e3  # s -> ms, V -> mV
    c_m = float(net["c_m"]) * 1e12  # F -> pF
    tau_m = float(net["tau_m"])
    pop = nest.Create(
        "iaf_psc_exp",
        int(net["n"]),
        params={
            "C_m": c_m,
            "tau_m": tau_m * ms,
            "tau_syn_ex": float(net["tau_exc"]) * ms,
            "tau_syn_in": float(net["tau_inh"]) * ms,
            "t_ref": float(net["t_ref"]) * ms,
            "E_L": float(net["e_l"]) * mv,
            "V_th": float(net["v_th"]) * mv,
            "V_reset": float(net["v_reset"]) * mv,
            "I_e": 0.0,
        },
    )
    pop.V_m = list(np.asarray(net["v0"], dtype=np.float64) * mv)
    first = pop.tolist()[0]  # node IDs of a fresh kernel are consecutive, starting at 1
    to_pa = c_m / tau_m  # V * pF / s = pA
    syn_spec = {
        "synapse_model": "static_synapse",
        "weight": np.asarray(net["weight"], dtype=np.float64) * to_pa,
        "delay": np.asarray(net["delay_steps"], dtype=np.float64) * float(net["dt"]) * ms,
    }
    nest.Connect(
        np.asarray(net["pre"], dtype=np.uint64) + first,
        np.asarray(net["post"], dtype=np.uint64) + first,
        conn_spec="one_to_one",
        syn_spec=syn_spec,
    )
    recorder = nest.Create("spike_recorder")
    nest.Connect(pop, recorder)
    return pop, recorder, first


def main():
    """Parse arguments, build and run the network, write the spikes, print the JSON record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", required=True, help=".npz file describing the network")
    parser.add_argument("--out", required=True, help=".npz file that receives the spikes")
    parser.add_argument("--threads", type=int, default=1, help="NEST threads")
    args = parser.parse_args()

    net = dict(np.load(args.network))
    nest.verbosity = nest.VerbosityLevel.ERROR
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": float(net["dt"]) * 1e3, "local_num_threads": args.threads})
    t0 = perf_counter()
    _, recorder, first = build(net)
    nest.Prepare()
    t1 = perf_counter()
    nest.Run(float(net["duration"]) * 1e3)
    t2 = perf_counter()
    nest.Cleanup()

    events = recorder.get("events")
    times = np.asarray(events["times"], dtype=np.float64)
    senders = np.asarray(events["senders"], dtype=np.int64) - first
    np.savez(args.out, times_ms=times, senders=senders)
    emit(
        {
            "peer": "nest",
            "model": "iaf_psc_exp",
            "n": int(net["n"]),
            "threads": args.threads,
            "synapses": int(nest.num_connections) - int(net["n"]),  # less the recorder's
            "spikes": int(times.size),
            "resolution_ms": nest.resolution,
            "build_s": t1 - t0,
            "run_s": t2 - t1,
            "peak_rss_mb": peak_rss_mb(),
            "versions": {"nest": nest.__version__, "numpy": np.__version__},
        }
    )


if __name__ == "__main__":
    main()
