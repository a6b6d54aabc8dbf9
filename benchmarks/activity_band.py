"""Measure the CUBA activity band of the peers; write ``benchmarks/cuba_activity_band.json``.

Runs Brian 2 (C++ standalone) and NEST (2 threads) on CUBA with N = 4000, K = 80 for 1 s of
biological time, once per seed, and records per-seed results and the min/max of the mean
rate and the mean ISI CV of each peer (definitions in ``peers/cuba_common.py``).  Run from
the repository root after ``benchmarks/setup_peers.sh``::

    .venv/bin/python benchmarks/activity_band.py
"""

import argparse
import datetime
import json
import tempfile
from pathlib import Path

from harness import BENCH_DIR, brian2_cmd, machine_info, nest_cmd, run_json

N, K, DURATION, NEST_THREADS = 4000, 80, 1.0, 2
TIMEOUT_S = 600
KEPT = ("seed", "synapses", "spikes", "rate_hz", "isi_cv", "run_s")


def band(records):
    """Min/max of rate and ISI CV over the successful records."""
    ok = [r for r in records if "error" not in r]
    return {
        "seeds": sorted({r["seed"] for r in ok}),
        "rate_hz": [min(r["rate_hz"] for r in ok), max(r["rate_hz"] for r in ok)],
        "isi_cv": [min(r["isi_cv"] for r in ok), max(r["isi_cv"] for r in ok)],
    }


def main():
    """Run every seed on both peers and write the band file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="run seeds 1..SEEDS")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "cuba_activity_band.json")
    args = parser.parse_args()

    seeds = range(1, args.seeds + 1)
    peers = {"brian2_cpp_standalone": [], f"nest_{NEST_THREADS}threads": []}
    with tempfile.TemporaryDirectory(prefix="ranvier-band-") as build_root:
        for seed in seeds:
            for name, cmd in (
                ("brian2_cpp_standalone", brian2_cmd(N, K, seed, DURATION, build_root)),
                (f"nest_{NEST_THREADS}threads", nest_cmd(N, K, seed, DURATION, NEST_THREADS)),
            ):
                record = run_json(cmd, TIMEOUT_S)
                print(name, json.dumps(record), flush=True)
                kept = {key: record[key] for key in KEPT} if "error" not in record else record
                peers[name].append({"seed": seed, **kept})

    info = machine_info()
    result = {
        "description": (
            "Brian 2 CUBA: N=4000, mean in-degree K=80 (Bernoulli p=K/N), 1 s, dt=0.1 ms, "
            "delay 0.1 ms. rate_hz = spikes / N / duration; isi_cv = mean over neurons with "
            ">= 3 spikes of std(ISI)/mean(ISI) (ddof=0), all spikes from t=0."
        ),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "n": N,
        "k": K,
        "duration_s": DURATION,
        "versions": {key: info[key] for key in ("python", "brian2", "brian2_numpy", "nest")},
        "band": {name: band(records) for name, records in peers.items()},
        "overall": band([r for records in peers.values() for r in records]),
        "runs": peers,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["band"], indent=2))


if __name__ == "__main__":
    main()
