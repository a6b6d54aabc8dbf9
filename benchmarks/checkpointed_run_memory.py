"""Resident memory of a long checkpointed run with a state monitor, over its first seconds.

Brian 2's CUBA (``--n`` neurons, 0.8 n excitatory) records ``v`` of every excitatory neuron in
every step and starts ``net.run(--duration, checkpoint=..., every=--every)``; at every second of
biological time the process's resident memory (``VmRSS``) and its peak (``VmHWM``, from
``/proc/self/status``) are noted, and after ``--seconds`` the run is stopped. State monitor
buffers are sized by the stretch a backend advances (``ranvier.engine.simulation.MONITOR_BUFFER_BYTES``)
and the recordings leave memory at each checkpoint, so the peak must not grow with
``--duration`` (before, a 10000 s run asked for a 119 GiB buffer at t = 0).

    python benchmarks/checkpointed_run_memory.py [--n 4000] [--duration 10000] [--every 1.0] [--seconds 5]

Prints one JSON object: the samples (t, VmRSS and VmHWM in MiB, wall seconds) and the peak.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import ranvier as rv


class _Stop(Exception):
    pass


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--duration", type=float, default=10000.0)
    parser.add_argument("--every", type=float, default=1.0)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--backend", default="numba")
    args = parser.parse_args(argv)

    net = rv.networks.cuba(n=args.n, seed=1)
    net.record(net["exc"], "v")
    samples = []
    started = time.perf_counter()

    def sample(net):
        samples.append({"t": round(net.t, 6), "rss_mib": round(_status_mib("VmRSS"), 1),
                        "hwm_mib": round(_status_mib("VmHWM"), 1), "wall_s": round(time.perf_counter() - started, 2)})
        if len(samples) > args.seconds:
            raise _Stop

    for second in range(args.seconds + 1):
        net.at(float(second), sample)
    with tempfile.TemporaryDirectory() as directory:
        try:
            net.run(args.duration, backend=args.backend, checkpoint=Path(directory) / "run.h5", every=args.every)
        except _Stop:
            pass
        size = (Path(directory) / "run.h5").stat().st_size / 2**20
    report = {"n": args.n, "recorded": net["exc"].n, "duration": args.duration, "every": args.every,
              "backend": args.backend, "samples": samples, "checkpoint_mib": round(size, 1),
              "peak_hwm_mib": max(s["hwm_mib"] for s in samples)}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
