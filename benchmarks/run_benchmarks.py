"""Side-by-side benchmarks of ranvier against Brian 2 and NEST; writes ``BENCHMARKS.md``.

Run from the repository root with the ranvier venv, after ``benchmarks/setup_peers.sh``::

    .venv/bin/python benchmarks/run_benchmarks.py            # cuba, dense, example
    .venv/bin/python benchmarks/run_benchmarks.py --scale    # ... and the 100 M synapse run
    .venv/bin/python benchmarks/run_benchmarks.py --quick    # 1 repetition, cuba and example
    .venv/bin/python benchmarks/run_benchmarks.py --only dense

Sections:

- ``cuba`` (N=4000, K=80) and ``dense`` (N=10000, K=1000), 1 s at dt = 0.1 ms: Brian 2 C++
  standalone (after an untimed warm-up run that fills its compile cache), NEST with 1 and 2
  threads, and ranvier's numba backend (with and without per-synapse delays); the median of
  five repetitions is reported, with the ratio ranvier / peer of the run times. Brian 2's
  and ranvier's repetitions alternate, so a drift in the machine's speed touches both.
- ``example``: wall time of ``python examples/cuba.py`` in a fresh process, with an empty
  numba cache (cold) and again with the cache it left (warm).
- ``scale`` (only with ``--scale`` or ``--only scale``): ranvier alone, N=100000, K=1000
  (100 M synapses), 1 s: build and run time, peak memory.

Every measurement runs in its own subprocess.  Raw records go to ``benchmarks/results/``
(one JSON file per section); ``BENCHMARKS.md`` is rendered from all the section files there,
so a section run on its own updates the report without discarding the others.  A simulator
that fails shows as an error row; the driver itself goes on.
"""

import argparse
import datetime
import json
import statistics
import sys
import tempfile

from harness import (
    BENCH_DIR,
    RANVIER_PYTHON,
    REPO,
    brian2_cmd,
    cuba_args,
    machine_info,
    nest_cmd,
    ranvier_env,
    run_json,
    run_timed,
    wait_for_quiet,
    with_interference,
)

RESULTS_DIR = BENCH_DIR / "results"
REPORT = BENCH_DIR / "BENCHMARKS.md"
RANVIER_SCRIPT = BENCH_DIR / "ranvier_cuba.py"
EXAMPLE = REPO / "examples" / "cuba.py"

SEED, DURATION = 1, 1.0
#: Network sections: name -> (title, N, mean in-degree K, subprocess timeout in s).
WORKLOADS = {"cuba": ("CUBA", 4000, 80, 900), "dense": ("CUBA-dense", 10000, 1000, 1800)}
SCALE_N, SCALE_K, SCALE_TIMEOUT = 100_000, 1000, 7200
EXAMPLE_TIMEOUT = 600
SECTIONS = ("cuba", "dense", "example", "scale", "microcircuit")

#: Rows of a network section: key in the section's runs -> label.
PEERS = {"brian2": "Brian 2 C++ standalone", "nest_1": "NEST, 1 thread", "nest_2": "NEST, 2 threads"}
RANVIER_VARIANTS = {"ranvier": "ranvier numba", "ranvier_hetero": "ranvier numba, per-synapse delays"}

#: Targets: upper bounds.
RUN_RATIO_TARGETS = {"cuba": 0.5, "dense": 1.0}
BYTES_PER_SYNAPSE_TARGETS = {"ranvier": 8.0, "ranvier_hetero": 10.0}
EXAMPLE_TARGETS = {"cold": 10.0, "warm": 3.0}
SCALE_RSS_LIMIT_MB = 24 * 1024

#: A measurement during which other processes used more than this share of the CPUs is
#: taken again, up to ATTEMPTS times in all.
INTERFERENCE_LIMIT, ATTEMPTS = 0.1, 4


def log(message):
    """Progress message on stderr."""
    print(message, file=sys.stderr, flush=True)


def measure(run, *args, attempts=ATTEMPTS):
    """``run(*args)`` once the machine is quiet; its record, with ``cpu_others`` added.

    ``cpu_others`` is the share of the CPUs that other processes used during the run; while
    it is above ``INTERFERENCE_LIMIT`` the measurement is taken again, up to ``attempts``
    times in all.
    """
    for attempt in range(1, attempts + 1):
        wait_for_quiet()
        record, others = with_interference(run, *args)
        record["cpu_others"] = round(others, 3)
        if others <= INTERFERENCE_LIMIT or "error" in record or attempt == attempts:
            return record
        log(f"    other processes used {others:.0%} of the CPUs meanwhile; measuring again")


def run_once(label, cmd, timeout, env=None, attempts=ATTEMPTS):
    """Run ``cmd`` once (see :func:`measure` for ``attempts``), log it under ``label``; its record."""
    record = measure(run_json, cmd, timeout, env, attempts=attempts)
    summary = record.get("error") or f"run_s={record.get('run_s')}"
    log(f"  {label}: {summary} (others: {record['cpu_others']:.0%})")
    return record


def repeat(label, cmd, reps, timeout, env=None, attempts=ATTEMPTS):
    """Run ``cmd`` ``reps`` times (see :func:`measure` for ``attempts``); return the records."""
    return [run_once(f"{label} [{i + 1}/{reps}]", cmd, timeout, env, attempts) for i in range(reps)]


def now():
    """Current UTC time, ISO 8601, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def bench_network(name, reps, cache_dir):
    """Run one network section on every simulator; return its result dict.

    ranvier's compile caches are in ``cache_dir``, shared by all its runs of this invocation.
    """
    title, n, k, timeout = WORKLOADS[name]
    log(f"{title}: N={n}, K={k}, {reps} repetition(s)")
    args = (n, k, SEED, DURATION)
    ranvier = [RANVIER_PYTHON, RANVIER_SCRIPT, *cuba_args(*args)]
    runs = {"brian2": [], "ranvier": []}
    with tempfile.TemporaryDirectory(prefix="ranvier-bench-brian2-") as build_root:
        # One attempt only: a second one would find the compile cache warm.
        warmup = brian2_cmd(*args, build_root)
        runs["brian2_warmup"] = repeat("brian2 warm-up", warmup, 1, timeout, attempts=1)
        # Brian 2 and ranvier take turns, so a shared machine whose speed drifts over the
        # minutes of a section slows both alike and the ratio stays fair.
        for i in range(reps):
            runs["brian2"].append(run_once(f"brian2 [{i + 1}/{reps}]", brian2_cmd(*args, build_root), timeout))
            runs["ranvier"].append(run_once(f"ranvier [{i + 1}/{reps}]", ranvier, timeout, ranvier_env(cache_dir)))
    for threads in (1, 2):
        runs[f"nest_{threads}"] = repeat(f"nest {threads} thread(s)", nest_cmd(*args, threads), reps, timeout)
    runs["ranvier_hetero"] = repeat("ranvier hetero", [*ranvier, "--hetero-delay"], 1, timeout, ranvier_env(cache_dir))
    return {"title": title, "n": n, "k": k, "seed": SEED, "duration": DURATION, "runs": runs}


def example_cold_warm():
    """Wall times of ``examples/cuba.py`` run twice in fresh processes sharing a new cache
    directory: first with empty compile caches (cold), then with what the first run left (warm).
    """
    runs = {}
    with tempfile.TemporaryDirectory(prefix="ranvier-cache-") as cache_dir:
        for state in ("cold", "warm"):
            # Run in the cache directory, so that the figure it saves does not land in the repository.
            runs[state] = run_timed([RANVIER_PYTHON, EXAMPLE], EXAMPLE_TIMEOUT, ranvier_env(cache_dir), cache_dir)
            runs[state].pop("stdout", None)
    return runs


def bench_example(reps):
    """Time ``examples/cuba.py``, cold and warm, ``reps`` times."""
    log(f"example: {EXAMPLE.relative_to(REPO)}, {reps} repetition(s)")
    runs = {"cold": [], "warm": []}
    for _ in range(reps):
        pair = measure(example_cold_warm)
        for state in runs:
            runs[state].append({**pair[state], "cpu_others": pair["cpu_others"]})
        log(f"  {pair}")
    return {"runs": runs}


def bench_scale(cache_dir):
    """Build and run ranvier's CUBA with 100 M synapses once, compile caches in ``cache_dir``."""
    log(f"scale: N={SCALE_N}, K={SCALE_K}")
    cmd = [RANVIER_PYTHON, RANVIER_SCRIPT, *cuba_args(SCALE_N, SCALE_K, SEED, DURATION), "--single"]
    return {
        "n": SCALE_N,
        "k": SCALE_K,
        "runs": {"ranvier": repeat("ranvier", cmd, 1, SCALE_TIMEOUT, ranvier_env(cache_dir), attempts=1)},
    }


def bench_microcircuit(cache_dir):
    """The full-scale Potjans & Diesmann microcircuit, 1 s, on the numba backend (CPU) once."""
    log("microcircuit: full scale")
    cmd = [RANVIER_PYTHON, str(BENCH_DIR / "microcircuit.py"), "--scale", "1.0", "--duration", str(DURATION)]
    return {"runs": {"ranvier": repeat("ranvier", cmd, 1, SCALE_TIMEOUT, ranvier_env(cache_dir), attempts=1)}}


# --- report ---------------------------------------------------------------------------------


def ok(records):
    """The records without an error."""
    return [r for r in records if "error" not in r]


def median(records, key):
    """Median of ``key`` over the successful records that have it, or None."""
    values = [r[key] for r in ok(records) if r.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=3):
    """A number to ``digits`` significant digits (whole numbers from 10**digits on), or a dash for None."""
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 10**digits else f"{value:.{digits}g}"


def fmt_time(records, key="run_s"):
    """Median of ``key`` with its min-max range when there are several values."""
    values = [r[key] for r in ok(records) if r.get(key) is not None]
    if not values:
        return "-"
    text = fmt(statistics.median(values))
    if len(values) > 1:
        text += f" ({fmt(min(values))}-{fmt(max(values))})"
    return text


def error_of(records):
    """The first error message among ``records``, or None."""
    return next((r["error"] for r in records if "error" in r), None)


def table(headers, rows):
    """Markdown table lines."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def verdict(value, limit):
    """PASS/FAIL of ``value <= limit``; ERROR when there is no value."""
    if value is None:
        return "ERROR"
    return "PASS" if value <= limit else "FAIL"


def heading(title, result):
    """Section heading with when the section ran and how much other work disturbed it."""
    others = max(record["cpu_others"] for records in result["runs"].values() for record in records)
    return (
        f"## {title}\n\nFinished {result['date']}; other processes used at most {others:.0%} of the "
        "CPUs during a measurement."
    )


def network_section(result):
    """Markdown lines of a network section: timings, activity and memory."""
    runs = result["runs"]
    ranvier_run = median(runs.get("ranvier", []), "run_s")
    headers = [
        "simulator",
        "build (s)",
        "compile / first run (s)",
        "run (s)",
        "ranvier / peer (run)",
        "rate (Hz)",
        "ISI CV",
        "synapses",
        "peak RSS (MB)",
    ]
    rows = []
    for key, label in {**PEERS, **RANVIER_VARIANTS}.items():
        records = runs.get(key, [])
        if not ok(records):
            rows.append([label, f"error: {error_of(records) or 'not run'}", *["-"] * 7])
            continue
        if key == "brian2":
            compile_ = (
                f"{fmt(median(runs['brian2_warmup'], 'compile_s'))} cold, {fmt(median(records, 'compile_s'))} cached"
            )
        else:
            compile_ = fmt_time(records, "first_run_s")
        peer_run = median(records, "run_s")
        ratio = fmt(ranvier_run / peer_run) if key in PEERS and ranvier_run else "-"
        rows.append(
            [
                label,
                fmt_time(records, "build_s"),
                compile_,
                fmt_time(records),
                ratio,
                fmt(median(records, "rate_hz")),
                fmt(median(records, "isi_cv")),
                ok(records)[0]["synapses"],
                fmt(median(records, "peak_rss_mb")),
            ]
        )
    title = f"{result['title']}: N = {result['n']}, K = {result['k']}, {result['duration']:g} s, seed {result['seed']}"
    lines = [heading(title, result), ""]
    lines += table(headers, rows)
    memory_rows = [
        [
            label,
            ok(runs[key])[0]["synapses"],
            fmt(median(runs[key], "mem_delta_mb")),
            fmt(median(runs[key], "bytes_per_synapse")),
            fmt(median(runs[key], "retained_mb")),
            fmt(median(runs[key], "retained_bytes_per_synapse")),
        ]
        for key, label in RANVIER_VARIANTS.items()
        if ok(runs.get(key, []))
    ]
    if memory_rows:
        lines += [
            "",
            "ranvier memory: growth of the resident memory over building and running the second",
            "network, at its peak (the targets) and what stays resident after the run.",
            "",
        ]
        headers = [
            "variant",
            "synapses",
            "peak growth (MB)",
            "bytes / synapse",
            "retained (MB)",
            "retained bytes / synapse",
        ]
        lines += table(headers, memory_rows)
    return lines


def example_section(result):
    """Markdown lines of the example section."""
    rows = []
    for state in ("cold", "warm"):
        records = result["runs"][state]
        error = error_of(records)
        rows.append([state, f"error: {error}" if error else fmt_time(records, "wall_s")])
    return [
        heading("`python examples/cuba.py`, fresh process", result),
        "",
        *table(["numba cache", "wall time (s)"], rows),
    ]


def single_run(title, result):
    """The heading of a section measured by one ranvier run, and that run (None if it failed)."""
    records = result["runs"]["ranvier"]
    header = heading(title, result)
    if not ok(records):
        return [header, "", f"error: {error_of(records)}"], None
    return [header, ""], ok(records)[0]


def scale_section(result):
    """Markdown lines of the scale section."""
    lines, record = single_run(f"Scale: ranvier, N = {result['n']}, K = {result['k']}, {DURATION:g} s", result)
    if record is None:
        return lines
    headers = [
        "synapses",
        "build (s)",
        "run (s)",
        "rate (Hz)",
        "bytes / synapse",
        "retained bytes / synapse",
        "peak RSS (MB)",
    ]
    keys = ["build_s", "run_s", "rate_hz", "bytes_per_synapse", "retained_bytes_per_synapse", "peak_rss_mb"]
    row = [record["synapses"], *(fmt(record.get(key)) for key in keys)]
    return [*lines, *table(headers, [row])]


def microcircuit_section(result):
    """Markdown lines of the microcircuit section."""
    lines, record = single_run(f"Potjans & Diesmann microcircuit, full scale, {DURATION:g} s", result)
    if record is None:
        return lines
    headers = ["backend", "neurons", "synapses", "build (s)", "compile + first 10 ms (s)", "run (s)",
               "real-time factor", "peak RSS (MB)"]
    keys = ["build_s", "compile_and_first_10ms_s", "run_s", "real_time_factor", "peak_rss_mb"]
    row = [f"{record['backend']} ({record['threads']} threads)", record["neurons"], record["synapses"],
           *(fmt(record.get(key)) for key in keys)]
    rates = record["rates_hz"]
    return [*lines, *table(headers, [row]), "",
            "Layer rates after the first 0.2 s (Hz): "
            + ", ".join(f"{name} {rate:g}" for name, rate in rates.items())
            + ". GPU timings (the issue's real-time target on an H100) are owed: no GPU was available."]


def target_rows(results):
    """Rows (target, measured, verdict) for the sections present in ``results``."""
    rows = []
    for name, limit in RUN_RATIO_TARGETS.items():
        if name in results:
            runs = results[name]["runs"]
            ranvier, brian2 = (median(runs["ranvier"], "run_s"), median(runs["brian2"], "run_s"))
            ratio = ranvier / brian2 if ranvier and brian2 else None
            rows.append(
                [
                    f"{results[name]['title']}: ranvier run <= {limit}x Brian 2 standalone",
                    fmt(ratio),
                    verdict(ratio, limit),
                ]
            )
    if "dense" in results:
        for key, limit in BYTES_PER_SYNAPSE_TARGETS.items():
            value = median(results["dense"]["runs"].get(key, []), "bytes_per_synapse")
            rows.append(
                [f"CUBA-dense: {RANVIER_VARIANTS[key]} <= {limit:g} bytes / synapse", fmt(value), verdict(value, limit)]
            )
    if "example" in results:
        for state, limit in EXAMPLE_TARGETS.items():
            value = median(results["example"]["runs"][state], "wall_s")
            rows.append([f"examples/cuba.py {state} <= {limit:g} s", fmt(value), verdict(value, limit)])
    if "scale" in results:
        runs = results["scale"]["runs"]["ranvier"]
        per_synapse = BYTES_PER_SYNAPSE_TARGETS["ranvier"]
        for label, key, limit in (
            (f"scale: bytes / synapse <= {per_synapse:g}", "bytes_per_synapse", per_synapse),
            (f"scale: peak RSS <= {SCALE_RSS_LIMIT_MB} MB", "peak_rss_mb", SCALE_RSS_LIMIT_MB),
        ):
            value = median(runs, key)
            rows.append([label, fmt(value), verdict(value, limit)])
    return rows


def render_report(results, machine, kept=None):
    """The whole of BENCHMARKS.md for the section results present; ``kept`` (:func:`kept_sections`) gives
    the report's current text of the sections and target rows whose records are absent."""
    kept = kept or {"rows": [], "sections": {}}
    versions = ", ".join(
        f"{name} {machine[key]}"
        for name, key in (
            ("Python", "python"),
            ("numpy", "numpy"),
            ("numba", "numba"),
            ("ranvier", "ranvier"),
            ("Brian 2", "brian2"),
            ("NEST", "nest"),
        )
    )
    lines = [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/run_benchmarks.py`; raw records in `benchmarks/results/`.",
        "Each measurement ran in its own process; times are medians of the repetitions, with",
        "their range in parentheses (Brian 2's and ranvier's repetitions alternate). Run",
        "times exclude building the network and compiling:",
        "Brian 2's is the C++ simulation loop (`last_run_info.txt`; compile shown for the",
        "first, uncached build and for the cached rebuild), NEST's is `nest.Run` (build",
        "includes `nest.Prepare`), ranvier's is the run of a second identical network in the",
        "same process (JIT already compiled; compile / first run is the first network's run).",
        "Rates and ISI CVs are the activity each simulator produced (definitions in",
        "`benchmarks/peers/cuba_common.py`). The machine may be shared: each measurement waits",
        "for idle CPUs and is taken again (up to 4 times in all) when other processes used more",
        "than 10 % of the CPUs while it ran; each section says the most they used in the end.",
        "",
        (
            f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB "
            f"RAM, {machine['os']}. Versions: {versions} (Brian 2 with numpy "
            f"{machine['brian2_numpy']}). Report written {now()}."
        ),
        "",
        "## Targets",
        "",
        *table(["target", "measured", "result"], target_rows(results)),
        *kept["rows"],
    ]
    renderers = {"cuba": network_section, "dense": network_section, "example": example_section,
                 "scale": scale_section, "microcircuit": microcircuit_section}
    for name in SECTIONS:
        if name in results:
            lines += ["", *renderers[name](results[name])]
        elif name in kept["sections"]:
            lines += ["", *kept["sections"][name]]
    return "\n".join(lines) + "\n"


#: each section's heading in the report, and how its rows of the targets table begin
SECTION_HEADINGS = {"cuba": "## CUBA:", "dense": "## CUBA-dense:", "example": "## `python examples/cuba.py`",
                    "scale": "## Scale:", "microcircuit": "## Potjans & Diesmann"}
TARGET_ROW_STARTS = {"cuba": "| CUBA: ", "dense": "| CUBA-dense: ", "example": "| examples/cuba.py ",
                     "scale": "| scale: "}
#: headings of the sections this script writes; the report's other sections come from other scripts
OWN_HEADINGS = ("## Targets", *SECTION_HEADINGS.values())


def report_blocks():
    """The current report cut before each ``## `` heading: a list of blocks, each a list of lines (the
    first block is the text before the first heading); empty when there is no report."""
    blocks = []
    for line in REPORT.read_text().splitlines() if REPORT.exists() else []:
        if line.startswith("## ") or not blocks:
            blocks.append([])
        blocks[-1].append(line)
    return blocks


def kept_sections(results):
    """The current report's text of this script's sections whose records are not in ``results``, and
    their rows of the targets table: ``benchmarks/results/`` is not versioned, so a section run on
    its own on a fresh checkout would otherwise drop every section measured elsewhere."""
    absent = [name for name in SECTIONS if name not in results]
    kept = {"rows": [], "sections": {}}
    for block in report_blocks():
        if block[0].startswith("## Targets"):
            kept["rows"] = [line for line in block
                            if any(line.startswith(TARGET_ROW_STARTS.get(name, "\0")) for name in absent)]
        for name in absent:
            if block[0].startswith(SECTION_HEADINGS[name]):
                kept["sections"][name] = "\n".join(block).rstrip().splitlines()
    return kept


def other_sections():
    """The sections of the current report written by other benchmark scripts, kept as they are."""
    kept = [line for block in report_blocks() if block[0].startswith("## ")
            and not block[0].startswith(OWN_HEADINGS) for line in block]
    return "\n" + "\n".join(kept).rstrip() + "\n" if kept else ""


def load_results():
    """Section name -> result dict, for every section file in the results folder."""
    return {
        name: json.loads((RESULTS_DIR / f"{name}.json").read_text())
        for name in SECTIONS
        if (RESULTS_DIR / f"{name}.json").exists()
    }


def main():
    """Run the chosen sections, save their records, and rewrite the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repetition; skip the dense and scale sections")
    parser.add_argument("--only", choices=SECTIONS, help="run this section only")
    parser.add_argument("--scale", action="store_true", help="also run the scale section")
    args = parser.parse_args()

    if args.only:
        sections = [args.only]
    else:
        sections = ["cuba", "example"] if args.quick else ["cuba", "dense", "example"]
        if args.scale and not args.quick:
            sections.append("scale")
    reps = 1 if args.quick else 5

    machine = machine_info()
    RESULTS_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ranvier-bench-cache-") as cache_dir:
        for name in sections:
            if name in WORKLOADS:
                result = bench_network(name, reps, cache_dir)
            elif name == "example":
                result = bench_example(reps)
            elif name == "microcircuit":
                result = bench_microcircuit(cache_dir)
            else:
                result = bench_scale(cache_dir)
            result.update(date=now(), machine=machine, repetitions=reps)
            (RESULTS_DIR / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
            results = load_results()
            REPORT.write_text(render_report(results, machine, kept_sections(results)) + other_sections())
    log(f"wrote {REPORT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
