"""Cost of each checkpoint of a long run: appended in place against the whole file copied.

Brian 2's CUBA (``--n`` neurons, 0.8 n excitatory) records the spikes of its excitatory
population and ``v`` of all of them every ``--sample`` seconds, and runs ``--duration`` s with
``checkpoint=..., every=--every``. Each checkpoint's wall time and the process's CPU time
(user + system, which leaves out waiting for the disk) are taken around ``Checkpointer.write``.
Two ways alternate, ``--repeats`` times each:

- ``append``: ranvier's checkpoint. The first writes the whole network; each later one appends
  the recordings made since and the changed state to the file and commits them.
- ``copy``: what a checkpoint did before (and still does while another process has the file
  open): copy the file, update the copy, rename it over the file, so each costs the whole file.

Target: the 10th checkpoint of an 80 s run costs at most 1.2x the first, for ``append``. The
summary gives, per way, the median and the minimum over the repeats of each checkpoint's time
and the ratio of the 10th's to the first's (a whole network written) and to the second's (the
first append), of wall and of CPU time (on a shared machine a single checkpoint's time is noisy,
and other processes only add to it: the minimum is the least disturbed).

    python benchmarks/checkpoint_cost.py [--n 4000] [--duration 80] [--every 8] [--sample 0.001] [--repeats 2]

Prints one JSON object per run and a summary line (JSON) last.
"""

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import ranvier as rv
from ranvier.engine import storage

MODES = ("append", "copy")


def _run(args, mode: str, directory: Path) -> dict:
    net = rv.networks.cuba(n=args.n, seed=1)
    net.record(net["exc"], "spikes")
    net.record(net["exc"], "v", every=args.sample)
    path = directory / f"{mode}.h5"
    times, cpu, sizes = [], [], []
    write = storage.Checkpointer.write
    append = storage._append_checkpoint

    def timed(self):
        started, started_cpu = time.perf_counter(), time.process_time()
        write(self)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        sizes.append(path.stat().st_size / 2**20)

    storage.Checkpointer.write = timed
    if mode == "copy":  # as when another process holds the file: the copy-and-rename checkpoint
        storage._append_checkpoint = lambda path, write_id, update: None
    started = time.perf_counter()
    try:
        net.run(args.duration, backend=args.backend, checkpoint=path, every=args.every)
    finally:
        storage.Checkpointer.write, storage._append_checkpoint = write, append
    wall = time.perf_counter() - started
    path.unlink()
    return {"mode": mode, "checkpoint_s": [round(t, 3) for t in times], "checkpoint_cpu_s": [round(t, 3) for t in cpu],
            "file_mib": [round(s, 1) for s in sizes], "run_wall_s": round(wall, 2)}


def _over_runs(runs: list[dict], key: str, statistic) -> list[float]:
    """``statistic`` (np.median, np.min) over ``runs`` of each checkpoint's ``key`` time."""
    return [round(float(statistic(times)), 3) for times in zip(*(run[key] for run in runs), strict=True)]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--duration", type=float, default=80.0)
    parser.add_argument("--every", type=float, default=8.0)
    parser.add_argument("--sample", type=float, default=0.001, help="s between samples of v")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backend", default="numba")
    parser.add_argument("--dir", default=None, help="directory of the checkpoint files (default: a temporary one)")
    args = parser.parse_args(argv)

    warm = rv.networks.cuba(n=args.n, seed=1)
    warm.record(warm["exc"], "spikes")
    warm.record(warm["exc"], "v", every=args.sample)
    warm.run(0.01, backend=args.backend)  # compile before timing
    runs = []
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        for _ in range(args.repeats):
            for mode in MODES:
                runs.append(_run(args, mode, Path(directory)))
                print(json.dumps(runs[-1]), flush=True)
    summary = {"n": args.n, "duration": args.duration, "every": args.every, "sample": args.sample,
               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
    for mode in MODES:
        of_mode = [run for run in runs if run["mode"] == mode]
        for key, name in (("checkpoint_s", "wall"), ("checkpoint_cpu_s", "cpu")):
            summary[f"{mode}_{name}_each_s"] = [run[key] for run in of_mode]
            for statistic in (np.median, np.min):
                times = _over_runs(of_mode, key, statistic)
                label = f"{mode}_{name}_{statistic.__name__}"
                summary[f"{label}_s"] = times
                if len(times) >= 10:  # the first writes the whole network, the second is the first append
                    summary[f"{label}_tenth_over_first"] = round(times[9] / times[0], 3)
                    summary[f"{label}_tenth_over_second"] = round(times[9] / times[1], 3)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
