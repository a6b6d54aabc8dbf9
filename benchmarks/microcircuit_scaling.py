"""Microcircuit scaling: ranvier and NEST at several scales on 1 and 2 threads, ns per synaptic event,
and the machine's memory bandwidth (a STREAM-like triad) and core-bound arithmetic measured in the same run.

    .venv/bin/python benchmarks/microcircuit_scaling.py --scales 0.1 0.5 --duration 0.2 --repeats 2
    .venv/bin/python benchmarks/microcircuit_scaling.py --scales 1.0 --duration 1.0 --repeats 1

Every measurement is its own subprocess; repetitions alternate ranvier and NEST and 1 and 2
threads, so load from other work on a shared machine spreads over both sides, and ranges
(min-max) are reported. ranvier's synaptic events are ``net.stats``' exact counts (recurrent
spikes through synapses plus the input spikes its Poisson drives drew); NEST's are its recorded
spikes times each population's out-degree, plus the background's expected input spikes. The
section goes to ``benchmarks/BENCHMARKS.md`` (``harness.write_section``); ``--json`` keeps the records.
"""

import argparse
import importlib
import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from harness import BENCH_DIR, NEST_PYTHON, RANVIER_PYTHON, REPO, machine_info, run_json, write_section

HEADING = "## Microcircuit scaling: ranvier and NEST, 1 and 2 threads"


def triad(n: int = 1 << 25, repeats: int = 5) -> dict:
    """STREAM's triad ``a = b + s c`` over float64 arrays of ``n`` on numba's threads, in GB/s."""
    import numba

    @numba.njit(parallel=True, cache=False)
    def run(a, b, c, s):
        for i in numba.prange(a.shape[0]):
            a[i] = b[i] + s * c[i]

    a, b, c = np.zeros(n), np.ones(n), np.full(n, 2.0)
    run(a, b, c, 3.0)
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        run(a, b, c, 3.0)
        best = min(best, time.perf_counter() - started)
    # STREAM's count: 24 bytes per element (two reads, one write; the write-allocate read not counted)
    return {"threads": numba.get_num_threads(), "gb_per_s": round(24 * n / best / 1e9, 2),
            "array_mib": round(8 * n / 2**20)}


def arithmetic(per_thread: int = 2048, rounds: int = 2_000_000, repeats: int = 5) -> dict:
    """A core-bound reference: ``x = 0.999 x + 0.001`` over ``per_thread`` float64 values a thread
    (16 KiB, in its L1 cache), ``rounds`` times, on numba's threads; the same work per thread on any
    number of threads, so its time on n threads over its time on 1 is how well the cores
    themselves scale (shared physical cores or a clock that drops with load show as > 1)."""
    import numba

    @numba.njit(parallel=True, cache=False)
    def run(values, blocks, rounds):
        for block in numba.prange(blocks):
            part = values[block * per_thread:(block + 1) * per_thread]
            for _ in range(rounds):
                for i in range(part.shape[0]):
                    part[i] = 0.999 * part[i] + 0.001

    threads = numba.get_num_threads()
    values = np.ones(threads * per_thread)
    run(values, threads, 10)
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        run(values, threads, rounds)
        best = min(best, time.perf_counter() - started)
    return {"arithmetic_s": round(best, 4)}


def nest_spec(scale: float, path: Path) -> dict:
    """The microcircuit's numbers at ``scale`` for the NEST script, from ranvier's own builder."""
    module = importlib.import_module("ranvier.networks.microcircuit")  # the module, not the builder
    sizes = [max(1, int(round(size * scale))) for size in module.FULL_SIZES]
    degrees = np.rint(module.in_degrees()).astype(int)
    weight = module._psp_to_weight(module.PSP_AMPLITUDE)
    weights = [[(weight * (2.0 if (module.POPULATIONS[s], module.POPULATIONS[t]) == ("L4e", "L23e") else 1.0))
                * (1.0 if module.POPULATIONS[s].endswith("e") else -module.RELATIVE_INHIBITION)
                for s in range(8)] for t in range(8)]
    spec = {"dt": 1e-4, "tau_m": module.TAU_M, "tau_syn": module.TAU_SYN, "t_ref": 2e-3, "v_rest": -65e-3,
            "v_th": -50e-3, "v_reset": -65e-3, "v0_mean": -58e-3, "v0_std": 10e-3, "sizes": sizes,
            "in_degrees": degrees.tolist(), "weights": weights,
            "delays": [1.5e-3 if name.endswith("e") else 0.75e-3 for name in module.POPULATIONS],
            "background_rates": [k * module.BACKGROUND_RATE for k in module.EXTERNAL_IN_DEGREE],
            "background_weight": weight}
    path.write_text(json.dumps(spec))
    return spec


def nest_events(record: dict, spec: dict) -> float:
    """NEST's synaptic events: recorded spikes times out-degrees, plus the background's expected input spikes."""
    sizes = np.array(spec["sizes"], dtype=float)
    out_degree = (np.array(spec["in_degrees"]) * sizes[:, None]).sum(axis=0) / sizes  # per source neuron
    recurrent = float(np.dot(record["spikes_by_population"], out_degree))
    background = float(np.dot(spec["background_rates"], sizes)) * (record["duration"] + 0.01)
    return recurrent + background


def spread(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    low, high = min(values), max(values)
    digits = 3 if high < 10 else 1
    return f"{low:.{digits}f}" if abs(high - low) < 10 ** -digits else f"{low:.{digits}f}-{high:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1, 0.5])
    parser.add_argument("--duration", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-nest", action="store_true")
    parser.add_argument("--nest-repeats", type=int, default=None, help="repetitions of NEST (default: --repeats)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS.md")
    parser.add_argument("--triad", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.triad:
        print(json.dumps({**triad(), **arithmetic()}))
        return

    cache = Path(tempfile.mkdtemp(prefix="ranvier-scaling-"))
    # the default kernel cache: compilation is reported apart (the warm-up run), not timed
    env = {"PYTHONPATH": str(REPO)}
    records = {"triad": [], "ranvier": [], "nest": []}
    started = datetime.now(timezone.utc)
    for threads in args.threads:
        result = run_json([RANVIER_PYTHON, __file__, "--triad"], 600, {**env, "NUMBA_NUM_THREADS": str(threads)})
        records["triad"].append(result)
        print("triad", result, flush=True)
    for scale in args.scales:
        spec_path = cache / f"spec_{scale}.json"
        spec = nest_spec(scale, spec_path)
        for repeat in range(args.repeats):
            for threads in args.threads if repeat % 2 == 0 else reversed(args.threads):
                cmd = [RANVIER_PYTHON, BENCH_DIR / "microcircuit.py", "--scale", scale, "--duration", args.duration]
                result = run_json(cmd, 3600, {**env, "NUMBA_NUM_THREADS": str(threads)})
                result.update(scale=scale, threads=threads, repeat=repeat)
                records["ranvier"].append(result)
                print("ranvier", json.dumps(result), flush=True)
                nest_repeats = args.repeats if args.nest_repeats is None else args.nest_repeats
                if args.no_nest or not NEST_PYTHON.exists() or repeat >= nest_repeats:
                    continue
                cmd = [NEST_PYTHON, BENCH_DIR / "peers" / "microcircuit_nest.py", "--spec", spec_path,
                       "--threads", threads, "--duration", args.duration]
                result = run_json(cmd, 3600)
                result.update(scale=scale, threads=threads, repeat=repeat)
                if "error" not in result:
                    result["synaptic_events"] = nest_events(result, spec)
                    result["ns_per_event"] = result["run_s"] / result["synaptic_events"] * 1e9
                records["nest"].append(result)
                print("nest", json.dumps(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    section = report(records, args, started)
    print(section)
    if not args.no_write:
        write_section(HEADING, section)


def report(records: dict, args, started) -> str:
    info = machine_info()
    ok = {side: [r for r in rows if "error" not in r] for side, rows in records.items()}
    bandwidth = {r["threads"]: r["gb_per_s"] for r in ok["triad"]}
    lines = [HEADING, "",
             f"Run {started:%Y-%m-%d %H:%M} UTC on {info['cpu']}, {info['cores']} cores shared with other work, "
             f"Python {info['python']}, numba {info['numba']}, NEST {info['nest']}; "
             f"`benchmarks/microcircuit_scaling.py --scales {' '.join(map(str, args.scales))} "
             f"--duration {args.duration} --repeats {args.repeats}`. "
             f"{args.duration} s of biological time after a 10 ms warm-up; ranges over {args.repeats} alternating "
             "repetitions. ranvier draws the background inside the targets (`PoissonInput`, no spike traffic); its "
             "events are exact (`net.stats`: recurrent synapses plus the drawn input spikes). NEST's are its spikes "
             "times out-degrees plus the background's expected input spikes. STREAM-like triad (float64, 256 MiB "
             f"arrays, best of 5): {', '.join(f'{t} thread(s) {bw} GB/s' for t, bw in sorted(bandwidth.items()))}."
             + arithmetic_sentence(ok["triad"]),
             "",
             "| scale | threads | ranvier run (s) | real-time factor | ns / event | ns / recurrent event | "
             "2 threads / 1 thread | NEST run (s) | NEST ns / event | ranvier / NEST | events in run |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for scale in args.scales:
        ours = {t: [r for r in ok["ranvier"] if r["scale"] == scale and r["threads"] == t] for t in args.threads}
        theirs = {t: [r for r in ok["nest"] if r["scale"] == scale and r["threads"] == t] for t in args.threads}
        for threads in args.threads:
            runs = [r["run_s"] for r in ours[threads]]
            nest_runs = [r["run_s"] for r in theirs[threads]]
            ratio = "-"
            if threads != args.threads[0] and ours[args.threads[0]]:
                base = [r["run_s"] for r in ours[args.threads[0]]]
                ratio = spread([r / b for r in runs for b in base])
            versus = spread([r / n for r in runs for n in nest_runs]) if nest_runs else "-"
            events = spread([r["synaptic_events"] / 1e6 for r in ours[threads]]) + " M"
            lines.append(
                f"| {scale} | {threads} | {spread(runs)} | {spread([r / args.duration for r in runs])} | "
                f"{spread([r['ns_per_event'] for r in ours[threads]])} | "
                f"{spread([r['ns_per_recurrent_event'] for r in ours[threads]])} | {ratio} | {spread(nest_runs)} | "
                f"{spread([r['ns_per_event'] for r in theirs[threads]])} | {versus} | {events} |")
    lines += ["", "Peak RSS (MB), build (s): " + "; ".join(
        f"scale {r['scale']} ranvier {r['threads']}t {r['peak_rss_mb']} MB, {r['build_s']} s"
        for r in ok["ranvier"] if r["repeat"] == 0) + "; " + "; ".join(
        f"NEST {r['threads']}t scale {r['scale']} {r['peak_rss_mb']:.0f} MB, {r['build_s']:.1f} s"
        for r in ok["nest"] if r["repeat"] == 0) + "."]
    lines += targets(ok, args)
    errors = [r for rows in records.values() for r in rows if "error" in r]
    if errors:
        lines += ["", "Failed: " + "; ".join(str(r.get("error")) for r in errors)]
    return "\n".join(lines) + "\n"


def arithmetic_sentence(probes: list[dict]) -> str:
    """The core-bound reference (:func:`arithmetic`) on each thread count, and what it implies for a
    perfectly parallel core-bound loop: its time on n threads over its time on 1, for the same total work."""
    times = {r["threads"]: r["arithmetic_s"] for r in probes if "arithmetic_s" in r}
    if not times:
        return ""
    implied = ""
    if 1 in times and len(times) > 1:
        implied = (" (so a perfectly parallel core-bound loop on " + ", ".join(
            f"{t} threads takes {times[t] / (t * times[1]):.2f}" for t in sorted(times) if t != 1)
            + " of its 1-thread time)")
    return (" The same multiply-adds on each thread, in its L1 cache (a core-bound reference, best of 5): "
            f"{', '.join(f'{t} thread(s) {s} s' for t, s in sorted(times.items()))}{implied}.")


#: issue 21's targets (their bounds), checked on the medians
TARGET_BOUNDS = {"real-time factor": 15.0, "ns per synaptic event": 3.0, "peak RSS (GiB)": 3.5,
                 "2 threads / 1 thread": 0.55, "largest layer rate difference to NEST": 0.05}


def targets(ok: dict, args) -> list[str]:
    """The targets' verdicts (on medians) for the scales and threads this run measured."""
    def rows(side, scale, threads):
        return [r for r in ok[side] if r["scale"] == scale and r["threads"] == threads]

    checks = []
    if 1.0 in args.scales and 2 in args.threads and rows("ranvier", 1.0, 2):
        full = rows("ranvier", 1.0, 2)
        checks += [("real-time factor", 1.0, [r["run_s"] / args.duration for r in full]),
                   ("ns per synaptic event", 1.0, [r["ns_per_event"] for r in full]),
                   ("peak RSS (GiB)", 1.0, [r["peak_rss_mb"] / 1024 for r in full])]
        nest = rows("nest", 1.0, 2)
        if nest:
            ours = np.mean([r["spikes_by_population"] for r in full], axis=0)
            theirs = np.mean([r["spikes_by_population"] for r in nest], axis=0)
            checks.append(("largest layer rate difference to NEST", 1.0, [float(np.max(np.abs(ours / theirs - 1)))]))
    if 0.5 in args.scales and {1, 2} <= set(args.threads) and rows("ranvier", 0.5, 1) and rows("ranvier", 0.5, 2):
        one = [r["run_s"] for r in rows("ranvier", 0.5, 1)]
        checks.append(("2 threads / 1 thread", 0.5, [r["run_s"] / b for r in rows("ranvier", 0.5, 2) for b in one]))
    if not checks:
        return []
    lines = ["", "| target (2 threads) | scale | measured, median (range) | bound | result |", "|---|---|---|---|---|"]
    for what, scale, values in checks:
        median = float(np.median(values))
        lines.append(f"| {what} | {scale} | {median:.3g} ({spread(values)}) | <= {TARGET_BOUNDS[what]} | "
                     f"{'PASS' if median <= TARGET_BOUNDS[what] else 'FAIL'} |")
    lines.append("")
    lines.append(f"Layer rates compare the spikes of {args.duration} s after the warm-up, not the rates of a "
                 "1 s run: at 1-8 Hz that is a few thousand spikes per layer, whose chance spread alone is a few "
                 "percent.")
    return lines


if __name__ == "__main__":
    main()
