"""Parallel efficiency of ``ranvier.sweep`` on a local Dask cluster of 2 workers.

The same points (CUBA networks over a grid of excitatory weights) run twice, side by side in
one script: one after another in this process (the serial peer), and as a sweep on a
2-worker ``LocalCluster`` (one single-threaded process per worker). Both are warm: a first,
untimed pass compiles the numba kernels (and fills the on-disk kernel cache the workers load).

    efficiency = serial time / (workers * sweep time)

1.0 is perfect; the scheduler's round trips, pickling of results and worker start-up of
numba's cached kernels pull it down. Prints a JSON record and, with ``--report``, rewrites
the ``## Dask sweep`` section of ``benchmarks/BENCHMARKS.md``.

    .venv/bin/python benchmarks/sweep_efficiency.py [--points 8] [--n 4000] [--duration 5] [--repeats 3] [--report]
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from importlib import metadata
from pathlib import Path

import numpy as np
from harness import cpu_name, write_section

import ranvier as rv

REPORT = Path(__file__).resolve().parent / "BENCHMARKS.md"
TITLE = "## Dask sweep: parallel efficiency on a 2-worker local cluster"
WORKERS = 2


def cuba_point(w_exc: float, n: int, duration: float) -> dict:
    """One sweep point: CUBA (Brian 2's example) with excitatory weight ``w_exc`` (V); also the
    CPU time its process spent on it (all threads), which tells overhead from competition for cores."""
    started = time.process_time()
    net = rv.networks.cuba(n=n, seed=1)
    # the builder's own excitatory projections keep their weight; an extra sparse one varies it
    net.connect(net["exc"], net["exc"], rv.connect.Bernoulli(p=20 / n), weight=w_exc, receptor="exc")
    net.run(duration)
    return {"rate": net.stats.rate("exc", net["exc"].n), "spikes": net.stats.spikes,
            "cpu_s": time.process_time() - started}


def serial(points: list[dict]) -> tuple[float, float]:
    """Wall time of the points run here one after another, and their mean CPU time."""
    start = time.perf_counter()
    cpu = [cuba_point(**point)["cpu_s"] for point in points]
    return time.perf_counter() - start, statistics.mean(cpu)


def parallel(points: list[dict], client) -> tuple[float, float]:
    """Wall time of the points as a sweep, and their mean CPU time in the workers."""
    start = time.perf_counter()
    results = rv.sweep(cuba_point, points, client=client)
    elapsed = time.perf_counter() - start
    if results.failed:
        raise RuntimeError(f"sweep points failed: {results.failed}")
    return elapsed, float(np.mean(results.column("cpu_s")))




def _section(record: dict) -> str:
    runs = ", ".join(f"{e:.2f}" for e in record["efficiencies"])
    return "\n".join([
        TITLE,
        "",
        f"Measured {record['date']} by `benchmarks/sweep_efficiency.py`: {record['points']} points, each a "
        f"CUBA network of {record['n']} neurons run for {record['duration']:g} s (numba backend), run one "
        f"after another in one process (serial) and as `ranvier.sweep` on a `LocalCluster` of {WORKERS} "
        f"single-threaded worker processes; both warm (kernels compiled and cached by an untimed first pass); "
        f"median of {record['repeats']} repeats.",
        "",
        "| serial (s) | sweep on 2 workers (s) | speed-up = serial / sweep | parallel efficiency = speed-up / 2 |",
        "|---|---|---|---|",
        f"| {record['serial_s']:.2f} | {record['sweep_s']:.2f} | {WORKERS * record['efficiency']:.2f} | "
        f"{record['efficiency']:.2f} (repeats: {runs}) |",
        "",
        "Times are medians; the speed-up and efficiency are medians of the per-repeat ratios (each repeat "
        "runs its serial pass and its sweep back to back, so both see similar load). CPU time per point "
        f"(all threads of the process that ran it): {record['serial_cpu_s']:.3f} s serial, "
        f"{record['sweep_cpu_s']:.3f} s in a worker; the worker's extra is probably Dask's own threads (heartbeats, "
        "its sampling profiler; not measured apart). Wall time well above CPU time means the cores were "
        "busy with other work: "
        f"here the serial pass took {record['serial_s'] / (record['points'] * record['serial_cpu_s']):.1f}x "
        "its CPU time. On otherwise idle cores the efficiency would approach the CPU-time ratio serial / "
        f"worker = {record['serial_cpu_s'] / record['sweep_cpu_s']:.2f} (less the scheduler's round trips).",
        "",
        f"Machine: {record['cpu']}, {record['cores']} cores, shared with other work (load average "
        f"{record['load']:.1f} at the start, so both sides compete for the cores). Versions: Python "
        f"{record['python']}, ranvier {record['ranvier']}, numba {record['numba']}, dask {record['dask']}, "
        f"distributed {record['distributed']}.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--report", action="store_true", help="rewrite this section of benchmarks/BENCHMARKS.md")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    weights = np.linspace(0.0, 1.0, args.points) * 1e-3
    points = [{"w_exc": float(w), "n": args.n, "duration": args.duration} for w in weights]
    load = os.getloadavg()[0]
    with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        serial(points[:1])
        parallel(points[:WORKERS], client)
        serial_runs, sweep_runs = [], []
        for _ in range(args.repeats):
            serial_runs.append(serial(points))
            sweep_runs.append(parallel(points, client))
    serial_times, serial_cpu = zip(*serial_runs, strict=True)
    sweep_times, sweep_cpu = zip(*sweep_runs, strict=True)
    efficiencies = [s / (WORKERS * p) for s, p in zip(serial_times, sweep_times, strict=True)]
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "points": args.points, "n": args.n, "duration": args.duration, "repeats": args.repeats,
        "serial_s": statistics.median(serial_times), "sweep_s": statistics.median(sweep_times),
        "efficiency": statistics.median(efficiencies), "efficiencies": efficiencies,
        "serial_runs": serial_times, "sweep_runs": sweep_times,
        "serial_cpu_s": statistics.median(serial_cpu), "sweep_cpu_s": statistics.median(sweep_cpu),
        "cpu": cpu_name(), "cores": os.cpu_count(), "load": load, "python": platform.python_version(),
        **{name: metadata.version(name) for name in ("ranvier", "numba", "dask", "distributed")},
    }
    print(json.dumps(record))
    if args.report:
        write_section(TITLE, _section(record), REPORT)
        print(f"wrote {REPORT}")


if __name__ == "__main__":
    main()
