"""Cost of event-driven STDP: the same recurrent network run with fixed and with plastic weights.

Brian 2's CUBA network (80 % excitatory LIF with ``v_rest`` above threshold, p = 0.02); STDP on the excitatory
recurrent synapses. Each configuration is built once, compiled by a first short run, then timed
over ``--duration`` seconds of simulated time, ``--repeats`` times in fresh networks; the report
gives the median run times and their ratio (plastic / fixed), for numba and for numpy.

    python benchmarks/stdp_cost.py [--n 4000] [--duration 1.0] [--repeats 3]
"""

import argparse
import json
import platform
import time

import numba
import numpy as np

import ranvier as rv
from ranvier.plasticity import STDP
from ranvier.units import ms, mV


def build(n: int, plastic: bool) -> rv.Network:
    net = rv.Network(dt=0.1 * ms, seed=1)
    lif = rv.neurons.LIF(tau_m=20 * ms, v_rest=-49 * mV, v_th=-50 * mV, v_reset=-60 * mV, t_ref=5 * ms,
                         tau_syn={"exc": 5 * ms, "inh": 10 * ms})
    n_exc = int(0.8 * n)
    exc = net.population(lif, n=n_exc, name="exc", init={"v": rv.init.Uniform(-60 * mV, -50 * mV)})
    inh = net.population(lif, n=n - n_exc, name="inh", init={"v": rv.init.Uniform(-60 * mV, -50 * mV)})
    stdp = STDP(tau_plus=17 * ms, tau_minus=34 * ms, a_plus=0.01 * mV, a_minus=0.006 * mV, w_min=0.0,
                w_max=3 * mV) if plastic else None
    net.connect(exc, exc, rv.connect.Bernoulli(p=0.02), weight=1.62 * mV, receptor="exc", plasticity=stdp)
    net.connect(exc, inh, rv.connect.Bernoulli(p=0.02), weight=1.62 * mV, receptor="exc")
    net.connect(inh, [exc, inh], rv.connect.Bernoulli(p=0.02), weight=-9 * mV, receptor="inh")
    return net


def timed(n: int, plastic: bool, backend: str, duration: float) -> tuple[float, int]:
    net = build(n, plastic)
    net.run(10 * ms, backend=backend)  # compiles (numba) and lowers
    start = time.perf_counter()
    net.run(duration, backend=backend)
    return time.perf_counter() - start, int(net.stats.spikes_by_population["exc"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="numba,numpy")
    args = parser.parse_args()
    report = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
              "numpy_version": np.__version__, "numba_version": numba.__version__, "ranvier": rv.__version__,
              "n": args.n, "duration_s": args.duration}
    for backend in args.backends.split(","):
        duration = args.duration if backend == "numba" else args.duration / 10
        fixed = [timed(args.n, False, backend, duration) for _ in range(args.repeats)]
        plastic = [timed(args.n, True, backend, duration) for _ in range(args.repeats)]
        report[backend] = {"simulated_s": duration, "fixed_s": float(np.median([t for t, _ in fixed])),
                           "plastic_s": float(np.median([t for t, _ in plastic])),
                           "exc_spikes_fixed": fixed[0][1], "exc_spikes_plastic": plastic[0][1]}
        report[backend]["ratio_plastic_to_fixed"] = report[backend]["plastic_s"] / report[backend]["fixed_s"]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
