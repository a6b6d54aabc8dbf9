"""ranvier's CUBA network (numba backend), timed; prints one JSON line.

Same arguments and statistics as the peer scripts in ``benchmarks/peers/``::

    PYTHONPATH=. .venv/bin/python benchmarks/ranvier_cuba.py --n 4000 --k 80 --seed 1

(``PYTHONPATH=.`` is only needed while ranvier is not installed in the venv.)

Default (steady) mode, in one process:

1. build the network (``build_s``) and run it once (``first_run_s``: lowering and JIT
   compilation, or loading it from numba's cache, included); the spike statistics come from
   this run;
2. build a second, identical network (``steady_build_s``) and run it (``run_s``: the
   steady-state run time); ``mem_delta_mb`` is the peak resident memory during this build
   and run above the resident memory before it, and ``bytes_per_synapse`` that divided by
   the synapse count; ``retained_mb`` and ``retained_bytes_per_synapse`` are the same for
   the resident memory left after the run (without the transient peak).

``--single`` (for very large networks) first compiles on a small network, then builds and
runs the requested one once, which gives ``build_s``, ``run_s`` and the memory figures.
``--hetero-delay`` gives every synapse its own delay, uniform in [0.1, 2] ms.
"""

import gc
from pathlib import Path
from time import perf_counter

import numba
import numpy as np
from peers.cuba_common import argument_parser, emit, peak_rss_mb, spike_statistics

import ranvier as rv
from ranvier.units import second

#: Size of the network that --single compiles on before the measured one.
WARMUP_N, WARMUP_K = 500, 50


def build(n, k, seed, hetero_delay):
    """Build a CUBA network with spike monitors on both populations."""
    extra = {"delay": rv.init.Uniform(0.1e-3, 2e-3)} if hetero_delay else {}
    net = rv.networks.cuba(n=n, seed=seed, mean_in_degree=k, **extra)
    monitors = (net.record(net["exc"], "spikes"), net.record(net["inh"], "spikes"))
    return net, monitors


def timed_run(net, duration):
    """Run ``net`` for ``duration`` seconds on the numba backend; return the wall time."""
    t0 = perf_counter()
    net.run(duration * second, backend="numba")
    return perf_counter() - t0


def synapse_count(net):
    """Total number of synapses of all projections."""
    return int(sum(len(p.pre_ids) for p in net.projections))


def rss_kib(field):
    """A memory field of this process from /proc/self/status (``VmRSS``, ``VmHWM``), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss():
    """Reset this process's peak resident memory (VmHWM) to its current resident memory."""
    Path("/proc/self/clear_refs").write_text("5")


def measured(n, k, seed, duration, hetero_delay):
    """Build and run one network, measuring time and the memory it adds to the process."""
    gc.collect()
    reset_peak_rss()
    rss0 = rss_kib("VmRSS")
    t0 = perf_counter()
    net, monitors = build(n, k, seed, hetero_delay)
    build_s = perf_counter() - t0
    run_s = timed_run(net, duration)
    peak_mb = (rss_kib("VmHWM") - rss0) / 1024.0
    gc.collect()
    retained_mb = (rss_kib("VmRSS") - rss0) / 1024.0
    synapses = synapse_count(net)
    return (
        net,
        monitors,
        {
            "build_s": build_s,
            "run_s": run_s,
            "mem_delta_mb": peak_mb,
            "bytes_per_synapse": peak_mb * 2**20 / synapses,
            "retained_mb": retained_mb,
            "retained_bytes_per_synapse": retained_mb * 2**20 / synapses,
        },
    )


def main():
    """Parse arguments, build and run the network(s), print the JSON record."""
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--hetero-delay", action="store_true", help="per-synapse delays, uniform in [0.1, 2] ms")
    parser.add_argument(
        "--single", action="store_true", help="compile on a small network, then build and run only once"
    )
    args = parser.parse_args()
    common = {"seed": args.seed, "hetero_delay": args.hetero_delay}

    record = {}
    if args.single:
        warm, _ = build(WARMUP_N, WARMUP_K, **common)
        timed_run(warm, args.duration)
        del warm
        net, monitors, record = measured(args.n, args.k, duration=args.duration, **common)
    else:
        t0 = perf_counter()
        net, monitors = build(args.n, args.k, **common)
        record["build_s"] = perf_counter() - t0
        record["first_run_s"] = timed_run(net, args.duration)
        _, _, steady = measured(args.n, args.k, duration=args.duration, **common)
        steady["steady_build_s"] = steady.pop("build_s")
        record.update(steady)

    exc, inh = monitors
    ids = np.concatenate([exc.ids, inh.ids + args.n])  # unique ids across populations
    times = np.concatenate([exc.times, inh.times])
    emit(
        {
            "peer": "ranvier",
            "backend": "numba",
            "n": args.n,
            "k": args.k,
            "seed": args.seed,
            "threads": numba.get_num_threads(),  # numba's thread pool, whether used or not
            "duration": args.duration,
            "hetero_delay": args.hetero_delay,
            "synapses": synapse_count(net),
            **spike_statistics(times, ids, args.n, args.duration),
            "stats_spikes": int(net.stats.spikes),
            "synaptic_events": int(net.stats.synaptic_events),
            **record,
            "peak_rss_mb": peak_rss_mb(),
            "versions": {
                "ranvier": getattr(rv, "__version__", None),
                "numba": numba.__version__,
                "numpy": np.__version__,
            },
        }
    )


if __name__ == "__main__":
    main()
