"""Potjans & Diesmann (2014) microcircuit: build and run time, real-time factor, layer rates.

    .venv/bin/python benchmarks/microcircuit.py --scale 1.0 --duration 1.0 --backend numba
    .venv/bin/python benchmarks/microcircuit.py --backend cuda        # on a machine with a GPU

Prints one JSON line. The real-time factor is run time / simulated time (<= 1: faster than
real time). The run is preceded by a 10 ms warm-up run of the same network, so compilation
(or loading the compiled kernel from the cache) is reported apart from the run.
"""

import argparse
import json
import platform
import resource
import time

import numba
import numpy as np

import ranvier as rv
from ranvier.networks.microcircuit import POPULATIONS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--backend", default="numba", choices=["numba", "numpy", "cuda"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--background", default="drive", choices=["drive", "sources"],
                        help="Poisson background drawn inside the targets (drive) or sent as spikes (sources)")
    args = parser.parse_args()

    started = time.perf_counter()
    net = rv.networks.microcircuit(scale=args.scale, seed=args.seed, background=args.background)
    monitors = {name: net.record(net[name], "spikes") for name in POPULATIONS}
    built = time.perf_counter()
    net.run(0.01, backend=args.backend)
    warmed = time.perf_counter()
    before = dict(net.stats.synaptic_events_by_projection)
    net.run(args.duration, backend=args.backend)
    finished = time.perf_counter()
    events = {name: count - before.get(name, 0) for name, count in net.stats.synaptic_events_by_projection.items()}
    drawn = sum(count for name, count in events.items() if name.startswith("poisson->"))
    recurrent = sum(events.values()) - drawn
    total = args.duration + 0.01
    result = {
        "scale": args.scale, "backend": args.backend, "neurons": sum(net[name].n for name in POPULATIONS),
        "synapses": sum(len(p) for p in net.projections), "build_s": round(built - started, 3),
        "compile_and_first_10ms_s": round(warmed - built, 3), "run_s": round(finished - warmed, 3),
        "real_time_factor": round((finished - warmed) / args.duration, 3),
        "rates_hz": {name: round(float(np.sum(m.times > 0.2)) / net[name].n / (total - 0.2), 3)
                     for name, m in monitors.items()} if total > 0.3 else None,
        "spikes_by_population": [int(np.sum(m.times > 0.01)) for m in monitors.values()],
        "background": args.background, "synaptic_events": recurrent + drawn, "recurrent_events": recurrent,
        "drive_events": drawn, "ns_per_event": round((finished - warmed) / max(1, recurrent + drawn) * 1e9, 3),
        "ns_per_recurrent_event": round((finished - warmed) / max(1, recurrent) * 1e9, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "threads": numba.config.NUMBA_NUM_THREADS, "python": platform.python_version(),
        "numba": numba.__version__, "machine": platform.processor() or platform.machine(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
