"""Brian 2's CUBA network, timed; prints one JSON line.

Run with the Brian 2 venv (see ``benchmarks/setup_peers.sh``)::

    benchmarks/.venv-brian2/bin/python benchmarks/peers/cuba_brian2.py --n 4000 --seed 1

With ``--target cpp_standalone`` (the default) the network is generated as C++ in its own
directory per (n, k, seed) under ``--build-root``, so concurrent or successive runs do not
collide and a rerun of the same configuration reuses the compiled objects.  ``run_s`` is
then the simulation loop alone as measured by the generated program
(``results/last_run_info.txt``); ``compile_s`` is the wall time of code generation and
compilation, ``exec_s`` the wall time of the whole program (synapse creation included),
and ``peak_rss_mb`` the largest peak of this process and its children (the compiler and the
generated program).
With the runtime targets (``cython``, ``numpy``) ``run_s`` is the wall time of ``run()``,
code generation included.
"""

import tempfile
from pathlib import Path
from time import perf_counter

import brian2 as b2
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

EQUATIONS = """
dv/dt  = (ge + gi - (v - El)) / taum : volt (unless refractory)
dge/dt = -ge / taue : volt
dgi/dt = -gi / taui : volt
"""


def build(n, k):
    """Create the CUBA network in the current Brian 2 device; return (network, monitor, synapses)."""
    we, wi = weights(k)
    namespace = {
        "taum": TAU_M * b2.second,
        "taue": TAU_E * b2.second,
        "taui": TAU_I * b2.second,
        "Vt": V_T * b2.volt,
        "Vr": V_R * b2.volt,
        "El": E_L * b2.volt,
        "we": we * b2.volt,
        "wi": wi * b2.volt,
    }
    group = b2.NeuronGroup(
        n,
        EQUATIONS,
        threshold="v > Vt",
        reset="v = Vr",
        refractory=T_REF * b2.second,
        method="exact",
        namespace=namespace,
    )
    group.v = "Vr + rand() * (Vt - Vr)"
    ne = n_exc(n)
    delay = DELAY * b2.second
    exc = b2.Synapses(group[:ne], group, on_pre="ge += we", delay=delay, namespace=namespace)
    inh = b2.Synapses(group[ne:], group, on_pre="gi += wi", delay=delay, namespace=namespace)
    exc.connect(p=k / n)
    inh.connect(p=k / n)
    monitor = b2.SpikeMonitor(group)
    return b2.Network(group, exc, inh, monitor), monitor, (exc, inh)


def main():
    """Parse arguments, build and run the network, print the JSON record."""
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--target", choices=["cpp_standalone", "cython", "numpy"], default="cpp_standalone")
    parser.add_argument(
        "--build-root",
        type=Path,
        default=Path(tempfile.gettempdir()) / "ranvier-bench-brian2",
        help="parent of the per-configuration C++ standalone directories",
    )
    args = parser.parse_args()

    outdir = args.build_root / f"cuba_n{args.n}_k{args.k:g}_s{args.seed}"
    if args.target == "cpp_standalone":
        b2.set_device("cpp_standalone", directory=str(outdir), build_on_run=False)
    else:
        b2.prefs.codegen.target = args.target
    b2.defaultclock.dt = DT * b2.second
    b2.seed(args.seed)

    t0 = perf_counter()
    net, monitor, synapses = build(args.n, args.k)
    record = {}
    if args.target == "cpp_standalone":
        net.run(args.duration * b2.second)
        t1 = perf_counter()
        b2.device.build(directory=str(outdir), compile=True, run=False)
        t2 = perf_counter()
        b2.device.run(directory=str(outdir), with_output=False)
        t3 = perf_counter()
        info = (outdir / "results" / "last_run_info.txt").read_text().split()
        record.update(compile_s=t2 - t1, exec_s=t3 - t2, run_s=float(info[0]))
    else:
        t1 = perf_counter()
        net.run(args.duration * b2.second)
        record.update(run_s=perf_counter() - t1)
    build_s = t1 - t0

    stats = spike_statistics(monitor.t[:] / b2.second, monitor.i[:], args.n, args.duration)
    emit(
        {
            "peer": "brian2",
            "target": args.target,
            "n": args.n,
            "k": args.k,
            "seed": args.seed,
            "threads": 1,
            "duration": args.duration,
            "synapses": int(sum(len(s) for s in synapses)),
            **stats,
            "build_s": build_s,
            **record,
            "peak_rss_mb": max(peak_rss_mb(), peak_rss_mb(children=True)),
            "versions": {"brian2": b2.__version__, "numpy": np.__version__},
        }
    )


if __name__ == "__main__":
    main()
