"""The Potjans & Diesmann (2014) microcircuit in NEST, as ranvier builds it; timed, prints one JSON line.

Run with the NEST venv; the network's numbers come from a JSON file that
``benchmarks/microcircuit_scaling.py`` writes from ``ranvier.networks.microcircuit``::

    benchmarks/.venv-nest/bin/python benchmarks/peers/microcircuit_nest.py --spec spec.json --threads 2

``iaf_psc_exp`` with C_m = 250 pF (a ranvier weight of w volts is a current jump of
``w * C_m / tau_m``), ``fixed_indegree`` with multapses and autapses, weights
``Normal(w, 0.1 w)`` redrawn to keep their sign, delays ``Normal(d, d / 2)`` redrawn below dt,
one ``poisson_generator`` per population at ``K_ext * 8 Hz`` (independent trains per target),
V_m from ``Normal(-58, 10) mV``. ``build_s`` covers creating, connecting and ``nest.Prepare``;
``run_s`` the simulation loop (``nest.Run``) of ``--duration`` after a 10 ms warm-up run.
"""

import argparse
import importlib
import json
import os
import resource
import sys
from time import perf_counter

os.environ.setdefault("PYNEST_QUIET", "1")
nest = importlib.import_module("nest")

C_M = 250.0  # pF


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--duration", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    spec = json.load(open(args.spec))
    dt_ms = spec["dt"] * 1e3
    to_pa = C_M / spec["tau_m"]  # V -> pA: V * pF / s

    nest.verbosity = nest.VerbosityLevel.ERROR
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": dt_ms, "local_num_threads": args.threads, "rng_seed": args.seed})
    started = perf_counter()
    params = {"C_m": C_M, "tau_m": spec["tau_m"] * 1e3, "tau_syn_ex": spec["tau_syn"] * 1e3,
              "tau_syn_in": spec["tau_syn"] * 1e3, "t_ref": spec["t_ref"] * 1e3, "E_L": spec["v_rest"] * 1e3,
              "V_th": spec["v_th"] * 1e3, "V_reset": spec["v_reset"] * 1e3, "I_e": 0.0}
    populations = []
    for n in spec["sizes"]:
        population = nest.Create("iaf_psc_exp", n, params=params)
        population.V_m = nest.random.normal(spec["v0_mean"] * 1e3, spec["v0_std"] * 1e3)
        populations.append(population)
    # one synapse model per source population: NEST holds at most 2**27 connections per thread and model
    for s in range(len(populations)):
        nest.CopyModel("static_synapse", f"static_from_{s}")
    for t, target in enumerate(populations):
        for s, source in enumerate(populations):
            k = spec["in_degrees"][t][s]
            if k == 0:
                continue
            mean = spec["weights"][t][s] * to_pa
            std = 0.1 * abs(mean)
            low, high = (0.0, 1e12) if mean > 0 else (-1e12, 0.0)
            delay = spec["delays"][s] * 1e3
            nest.Connect(source, target,
                         {"rule": "fixed_indegree", "indegree": k, "allow_autapses": True, "allow_multapses": True},
                         {"synapse_model": f"static_from_{s}",
                          "weight": nest.math.redraw(nest.random.normal(mean, std), min=low, max=high),
                          "delay": nest.math.redraw(nest.random.normal(delay, 0.5 * delay), min=dt_ms, max=1e9)})
        generator = nest.Create("poisson_generator", params={"rate": spec["background_rates"][t]})
        nest.Connect(generator, target, "all_to_all", {"weight": spec["background_weight"] * to_pa, "delay": dt_ms})
    recorder = nest.Create("spike_recorder")
    for population in populations:
        nest.Connect(population, recorder)
    synapses = nest.num_connections
    nest.Prepare()
    built = perf_counter()
    nest.Run(10.0)
    warmed = perf_counter()
    nest.Run(args.duration * 1e3)
    finished = perf_counter()
    nest.Cleanup()
    events = recorder.get("events")
    senders, times = events["senders"], events["times"]
    spikes = []
    for population in populations:
        ids = population.tolist()
        first, last = ids[0], ids[-1]
        inside = (senders >= first) & (senders <= last) & (times > 10.0)
        spikes.append(int(inside.sum()))
    record = {"peer": "nest", "threads": args.threads, "duration": args.duration, "synapses": synapses,
              "build_s": built - started, "first_10ms_s": warmed - built, "run_s": finished - warmed,
              "spikes_by_population": spikes,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
              "nest": nest.__version__}
    sys.stdout.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
