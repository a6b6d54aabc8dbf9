"""Brian 2's CUBA network in NEST, timed; prints one JSON line.

Run with the NEST venv (see ``benchmarks/setup_peers.sh``)::

    benchmarks/.venv-nest/bin/python benchmarks/peers/cuba_nest.py --n 4000 --threads 2

The neurons are ``iaf_psc_exp`` with C_m = 250 pF: Brian's ``dv/dt = (ge + gi - (v - El)) /
taum`` with a jump of w volts in ``ge`` is a current jump of ``w * C_m / tau_m`` in NEST.
``build_s`` covers creating and connecting the network and NEST's preparation for simulation
(``nest.Prepare``), ``run_s`` the simulation loop alone (``nest.Run``).
"""

import importlib
import os
from time import perf_counter

import numpy as np
from cuba_common import (
    DELAY,
    DT,
    E_L,
    T_REF,
    TAU_E,
    TAU_I,
    TAU_M,
    V_R,
    V_T,
    argument_parser,
    emit,
    n_exc,
    peak_rss_mb,
    spike_statistics,
    weights,
)

os.environ.setdefault("PYNEST_QUIET", "1")  # no banner: stdout is the one JSON line
nest = importlib.import_module("nest")

#: Membrane capacitance in pF; NEST works in ms, mV, pA and pF.
C_M = 250.0


def build(n, k):
    """Create and connect the CUBA network in a reset NEST kernel; return (recorder, synapses)."""
    pop = nest.Create(
        "iaf_psc_exp",
        n,
        params={
            "C_m": C_M,
            "tau_m": TAU_M * 1e3,
            "tau_syn_ex": TAU_E * 1e3,
            "tau_syn_in": TAU_I * 1e3,
            "t_ref": T_REF * 1e3,
            "E_L": E_L * 1e3,
            "V_th": V_T * 1e3,
            "V_reset": V_R * 1e3,
            "I_e": 0.0,
        },
    )
    pop.V_m = nest.random.uniform(V_R * 1e3, V_T * 1e3)
    ne = n_exc(n)
    conn = {"rule": "pairwise_bernoulli", "p": k / n}
    to_pa = C_M / TAU_M  # Brian weight in V -> NEST current in pA (V * pF / s = pA)
    we, wi = weights(k)
    nest.Connect(pop[:ne], pop, conn, {"weight": we * to_pa, "delay": DELAY * 1e3})
    nest.Connect(pop[ne:], pop, conn, {"weight": wi * to_pa, "delay": DELAY * 1e3})
    synapses = nest.num_connections
    recorder = nest.Create("spike_recorder")
    nest.Connect(pop, recorder)
    return recorder, synapses


def main():
    """Parse arguments, build and run the network, print the JSON record."""
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="NEST threads")
    args = parser.parse_args()

    nest.verbosity = nest.VerbosityLevel.ERROR
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": DT * 1e3, "local_num_threads": args.threads, "rng_seed": args.seed})
    t0 = perf_counter()
    recorder, synapses = build(args.n, args.k)
    nest.Prepare()
    t1 = perf_counter()
    nest.Run(args.duration * 1e3)
    t2 = perf_counter()
    nest.Cleanup()

    events = recorder.get("events")
    stats = spike_statistics(events["times"] * 1e-3, events["senders"], args.n, args.duration)
    emit(
        {
            "peer": "nest",
            "n": args.n,
            "k": args.k,
            "seed": args.seed,
            "threads": args.threads,
            "duration": args.duration,
            "synapses": synapses,
            **stats,
            "build_s": t1 - t0,
            "run_s": t2 - t1,
            "peak_rss_mb": peak_rss_mb(),
            "versions": {"nest": nest.__version__, "numpy": np.__version__},
        }
    )


if __name__ == "__main__":
    main()
