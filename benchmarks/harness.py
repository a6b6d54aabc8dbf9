"""Helpers shared by the benchmark drivers: where things are, running one measurement.

Each measurement is a script that prints one JSON line; it runs in its own subprocess (its
own virtual environment for the peers), so memory, JIT and compile caches do not leak from
one measurement into the next.  A failure is returned as a record with an ``error`` key
rather than raised, so one broken simulator does not stop a whole benchmark run.
"""

import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from time import monotonic, perf_counter, sleep

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / "peers"
BRIAN2_PYTHON = BENCH_DIR / ".venv-brian2" / "bin" / "python"
NEST_PYTHON = BENCH_DIR / ".venv-nest" / "bin" / "python"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: The ranvier side runs with the interpreter that runs the driver (the ranvier venv).
RANVIER_PYTHON = Path(sys.executable)


def ranvier_env(cache_dir):
    """Environment additions for a ranvier process whose compile caches live in ``cache_dir``.

    The working tree's ``ranvier`` is made importable whether or not it is installed, and
    both ranvier's generated-kernel cache and numba's cache go under ``cache_dir``, so a
    fresh directory means a cold start and stale caches elsewhere play no part.
    """
    cache = Path(cache_dir)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "RANVIER_CACHE_DIR": str(cache / "ranvier"), "NUMBA_CACHE_DIR": str(cache / "numba")}


def run_timed(cmd, timeout, env=None, cwd=REPO):
    """Run ``cmd`` in ``cwd`` (default: the repository root); return ``{"wall_s", "stdout"}``.

    On a non-zero exit or a timeout, return ``{"error": ...}`` instead, with the last line
    of stderr (normally the exception) in the message and the last lines of stderr under
    ``stderr_tail``.  ``env`` entries are added to the current environment.
    """
    t0 = perf_counter()
    try:
        proc = subprocess.run(
            [str(c) for c in cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    except OSError as exc:
        return {"error": f"could not start {cmd[0]}: {exc}"}
    wall_s = perf_counter() - t0
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-20:] or [""]
        return {"error": f"exit {proc.returncode}: {tail[-1]}", "stderr_tail": tail}
    return {"wall_s": wall_s, "stdout": proc.stdout}


def run_json(cmd, timeout, env=None):
    """Run ``cmd`` like :func:`run_timed`; return the JSON record on its last stdout line."""
    result = run_timed(cmd, timeout, env)
    if "error" in result:
        return result
    lines = result["stdout"].strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"no JSON record on stdout: {lines[-1:]}"}


def _cpu_jiffies():
    """(busy, total) CPU time of the whole machine since boot, in clock ticks."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    total = sum(fields)
    return total - fields[3] - fields[4], total  # idle and iowait are not busy


def cpu_busy(interval=1.0):
    """Fraction of the machine's CPU capacity that was busy over the next ``interval`` s."""
    busy0, total0 = _cpu_jiffies()
    sleep(interval)
    busy1, total1 = _cpu_jiffies()
    return (busy1 - busy0) / max(total1 - total0, 1)


def wait_for_quiet(threshold=0.2, patience=300):
    """Wait until the CPUs are less than ``threshold`` busy, for up to ``patience`` s.

    The machine may be shared with other work, which distorts timings (NEST with 2 threads
    on 2 cores most of all).
    """
    deadline = monotonic() + patience
    while cpu_busy() > threshold and monotonic() < deadline:
        sleep(4.0)


def with_interference(run, *args):
    """``run(*args)`` and the share of the machine's CPU capacity that other processes used
    meanwhile: all busy time less that of this process's children (and their descendants).
    """
    busy0, total0 = _cpu_jiffies()
    ours0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run(*args)
    busy1, total1 = _cpu_jiffies()
    ours1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = (ours1.ru_utime + ours1.ru_stime - ours0.ru_utime - ours0.ru_stime) * CLOCK_TICKS
    return result, max(0.0, busy1 - busy0 - ours) / max(total1 - total0, 1)


def cuba_args(n, k, seed, duration):
    """Command-line arguments common to every CUBA script."""
    return ["--n", n, "--k", k, "--seed", seed, "--duration", duration]


def brian2_cmd(n, k, seed, duration, build_root):
    """Command running Brian 2 C++ standalone CUBA, compiling under ``build_root``."""
    return [
        BRIAN2_PYTHON,
        PEERS_DIR / "cuba_brian2.py",
        *cuba_args(n, k, seed, duration),
        "--target",
        "cpp_standalone",
        "--build-root",
        build_root,
    ]


def nest_cmd(n, k, seed, duration, threads):
    """Command running NEST CUBA with ``threads`` threads."""
    return [NEST_PYTHON, PEERS_DIR / "cuba_nest.py", *cuba_args(n, k, seed, duration), "--threads", threads]


def tool_version(python, module):
    """``module.__version__`` as seen by interpreter ``python``, or None if it fails."""
    code = f"import {module}; print({module}.__version__)"
    try:
        proc = subprocess.run(
            [str(python), "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYNEST_QUIET": "1"},
            cwd=REPO,
            check=False,
        )
    except OSError:
        return None
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if proc.returncode == 0 and lines else None


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info():
    """CPU model, core count, RAM and the Python/library versions of all participants."""
    cpu = cpu_name()
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
            break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kib / 2**20, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": tool_version(RANVIER_PYTHON, "numpy"),
        "numba": tool_version(RANVIER_PYTHON, "numba"),
        "ranvier": tool_version(RANVIER_PYTHON, "ranvier"),
        "brian2": tool_version(BRIAN2_PYTHON, "brian2"),
        "brian2_numpy": tool_version(BRIAN2_PYTHON, "numpy"),
        "nest": tool_version(NEST_PYTHON, "nest"),
    }


def write_section(heading: str, section: str, report: Path = BENCH_DIR / "BENCHMARKS.md") -> None:
    """Replace the section of ``report`` that starts with ``heading`` (up to the next ``## `` heading)
    with ``section``, or append it; the other sections stay as they are."""
    text = report.read_text() if report.exists() else "# Benchmarks\n"
    start = text.find(heading)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        following = text.find("\n## ", start + len(heading))
        text = text[:start] + section.rstrip("\n") + "\n" + ("" if following < 0 else text[following:])
    report.write_text(text)
