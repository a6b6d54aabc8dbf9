"""Damaged and edited files: every one loads and runs correctly or is a named RanvierError.

A small network (LIF, Poisson and spike-time sources, per-synapse delays, STDP gated by an
astrocyte, spike and state recordings) runs a few steps on numba and is saved. Each case then
damages a copy of the file and loads it, runs it on and reads every recording:

* **bit flips** (1 to 3 random bits anywhere in the file): the outcome must be a RanvierError
  or exactly the run of the unmodified file (a flip in unused bytes changes nothing);
* **edits** made with h5py as an adversary would (random values, types, shapes, deleted
  datasets, attributes and groups), after which the file's digest is written again so that
  only the checks of the declaration stand between the file and the kernel: the outcome must
  be a RanvierError or a clean run (an edit may change the network into another valid one).

Cases run in this process (the checks make that safe) and, once, in a subprocess batch that
reports a crash or a hang as a failure instead of killing pytest. Run this file as a script
(``python tests/test_storage_fuzz.py flips,edits 0 300``) to see the outcome counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve()
NASTY = (-1, 0, 1, 7, 2**15, 2**31 - 1, 2**31, 2**32, 2**62, -(2**31), 1e300, -1e300, float("nan"), float("inf"),
         0.5, -0.5)


def build():
    import ranvier as rv
    from ranvier.plasticity import STDP
    from ranvier.units import Hz, ms, mV

    net = rv.Network(dt=0.5 * ms, seed=5)
    lif = rv.neurons.LIF(tau_m=rv.init.Uniform(15 * ms, 25 * ms), v_rest=-65 * mV, v_th=-50 * mV, v_reset=-65 * mV,
                         t_ref=2 * ms, tau_syn={"exc": 5 * ms, "inh": 10 * ms})
    cells = net.population(lif, n=30, name="cells", init={"v": rv.init.Uniform(-65 * mV, -50 * mV)})
    noise = net.population(rv.neurons.PoissonSource(rate=rv.init.Uniform(200 * Hz, 400 * Hz)), n=20, name="noise")
    cue = net.population(rv.neurons.SpikeSource(np.array([1.0, 2.5, 4.0, 9.0]) * ms, [0, 1, 2, 0], n=3), name="cue")
    astro = net.population(rv.neurons.Astrocyte(tau=50 * ms, baseline=1.0), n=1, name="astro", dt=2 * ms)
    net.connect(cells, astro, rv.connect.AllToAll(), weight=0.01)
    stdp = STDP(tau_plus=15 * ms, tau_minus=30 * ms, a_plus=0.05, a_minus=0.06, w_min=0.0, w_max=10 * mV,
                modulator=astro)
    net.connect(noise, cells, rv.connect.Bernoulli(p=0.3), weight=rv.init.Uniform(2 * mV, 8 * mV), receptor="exc",
                delay=rv.init.Uniform(0.5 * ms, 3 * ms), plasticity=stdp)
    net.connect(cells, cells, rv.connect.Bernoulli(p=0.1), weight=-1 * mV, delay=1 * ms, receptor="inh")
    net.connect(cue, cells, rv.connect.AllToAll(), weight=5 * mV, receptor="exc")
    net.record(cells, "spikes")
    net.record(noise, "spikes", ids=[0, 3, 5])
    net.record(cells, "v", ids=[0, 7, 29], every=1 * ms)
    net.record(astro, "output", every=2 * ms)
    return net


def outcome_of(path: Path) -> tuple[str, object]:
    """("error", message) for a RanvierError, else ("run", what the run recorded and ended with)."""
    import ranvier as rv
    from ranvier.errors import RanvierError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = rv.load(path)
            net.run(10e-3, backend="numba")
            spikes = [(m.steps, m.ids) for m in net.spike_monitors]
            samples = [(m.t, m.values) for m in net.state_monitors]
            state = {name: p.state.copy() for name, p in net.populations.items()}
            weights = [p.weights.copy() for p in net.projections]
    except RanvierError as error:
        return "error", f"{type(error).__name__}: {error}"
    return "run", (net.step, spikes, samples, state, weights, net.stats)


def same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    return a == b


def write_original(directory: Path) -> Path:
    path = directory / "original.h5"
    if not path.exists():
        net = build()
        net.run(10e-3, backend="numba")
        net.save(path)
    return path


def flip(data: bytes, rng: np.random.Generator) -> bytes:
    damaged = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        position = int(rng.integers(len(damaged)))
        damaged[position] ^= 1 << int(rng.integers(8))
    return bytes(damaged)


def edit(path: Path, rng: np.random.Generator) -> str:
    """One random edit of the file at ``path`` with h5py, the digest written again; what it did."""
    import h5py

    from ranvier.engine import storage

    with h5py.File(path, "r+") as file:
        datasets, groups, owners = [], [], [("/", file)]
        file.visititems(lambda name, item: (datasets if isinstance(item, h5py.Dataset) else groups).append(name)
                        or owners.append((name, item)))
        choice = rng.random()
        if choice < 0.55 and datasets:
            name = datasets[int(rng.integers(len(datasets)))]
            described = _edit_dataset(file, name, rng)
        elif choice < 0.9:
            owner, item = owners[int(rng.integers(len(owners)))]
            keys = [key for key in item.attrs if key != "integrity"]
            if not keys:
                return "nothing"
            key = keys[int(rng.integers(len(keys)))]
            old = item.attrs[key]
            what = rng.random()
            if what < 0.2:
                del item.attrs[key]
                described = f"deleted attribute {owner}@{key}"
            elif what < 0.35:
                item.attrs[key] = "x" if not isinstance(old, str) else old[:-1] + "?"
                described = f"text in attribute {owner}@{key}"
            else:
                value = NASTY[int(rng.integers(len(NASTY)))]
                item.attrs[key] = value
                described = f"attribute {owner}@{key} = {value!r} (was {old!r})"
        else:
            if not groups:
                return "nothing"
            name = groups[int(rng.integers(len(groups)))]
            del file[name]
            described = f"deleted group {name}"
        storage._seal(file)
    return described


def _edit_dataset(file, name: str, rng: np.random.Generator) -> str:
    dataset = file[name]
    values = dataset[()]
    attrs = dict(dataset.attrs)
    what = rng.random()

    def replace(data):
        del file[name]
        new = file.create_dataset(name, data=data)
        new.attrs.update(attrs)

    if what < 0.4 and values.size:
        flat = values.astype(np.float64).ravel() if values.dtype.kind in "iuf" else None
        if flat is None:
            return "nothing"
        index = int(rng.integers(flat.size))
        value = NASTY[int(rng.integers(len(NASTY)))]
        flat[index] = value
        data = flat.reshape(values.shape)
        if values.dtype.kind in "iu" and np.isfinite(value) and float(value).is_integer() and -(2**63) <= value < 2**63:
            replace(data.astype(np.int64))
        else:
            replace(data)
        return f"{name}[{index}] = {value!r}"
    if what < 0.55:
        replace(values.astype(np.float64) if values.dtype.kind in "iu" else np.rint(values).astype(np.int64))
        return f"{name} retyped"
    if what < 0.7 and values.ndim:
        replace(values[:-1] if rng.random() < 0.5 else np.concatenate([values, values[-1:]]) if len(values) else
                values)
        return f"{name} resized"
    if what < 0.8 and values.ndim:
        replace(values.reshape(-1) if values.ndim > 1 else values[:, None])
        return f"{name} reshaped"
    del file[name]
    return f"deleted dataset {name}"


def cases(directory: Path, kind: str, start: int, count: int):
    """Yield (case, outcome class, detail) for ``count`` cases from seed ``start``."""
    original = write_original(directory)
    reference = outcome_of(original)
    assert reference[0] == "run", reference
    data = original.read_bytes()
    for case in range(start, start + count):
        rng = np.random.default_rng([case, 0 if kind == "flips" else 1])
        damaged = directory / f"{kind}-{case}.h5"
        if kind == "flips":
            damaged.write_bytes(flip(data, rng))
            detail = "bit flips"
        else:
            damaged.write_bytes(data)
            detail = edit(damaged, rng)
        try:
            status, result = outcome_of(damaged)
        except Exception as error:  # noqa: BLE001 - a raw exception is the failure being looked for
            yield case, "raw", f"{detail}: {type(error).__name__}: {error}"
            continue
        finally:
            damaged.unlink()
        if status == "error":
            yield case, "error", f"{detail}: {result}"
        else:
            yield case, "same" if same(result, reference[1]) else "different", detail


def check(kind: str, results) -> Counter:
    """The outcome counts of ``results`` ((case, status, detail)); fails on a raw error, or a
    flipped file that ran differently."""
    counts = Counter(status for _, status, _ in results)
    bad = [(case, status, detail) for case, status, detail in results
           if status == "raw" or (kind == "flips" and status == "different")]
    assert not bad, bad[:5]
    return counts


@pytest.mark.parametrize("kind", ["flips", "edits"])
def test_damaged_files_are_named_errors_or_correct_runs(tmp_path, kind):
    counts = check(kind, list(cases(tmp_path, kind, 0, 10)))
    assert counts["error"] >= 1


def _batch(directory: Path, kind: str, start: int, count: int, timeout: float) -> list:
    """Cases run in a child process: a crash or a hang is reported with the case that caused it."""
    command = [sys.executable, str(HERE), kind, str(start), str(count), str(directory)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent.parent)
        output, code = result.stdout, result.returncode
    except subprocess.TimeoutExpired as expired:
        output, code = expired.stdout or "", "timeout"
        output = output.decode() if isinstance(output, bytes) else output
    rows = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    done = {(row["kind"], row["case"]) for row in rows}
    if code != 0:
        kind, missing = next((k, case) for k in kind.split(",") for case in range(start, start + count)
                             if (k, case) not in done)
        rows.append({"kind": kind, "case": missing, "status": "raw",
                     "detail": f"the process ended with {code} (crash or hang) in this case; "
                               f"stderr: {result.stderr[-500:] if code != 'timeout' else ''}"})
    return [(row["kind"], row["case"], row["status"], row["detail"]) for row in rows]


def test_a_batch_of_damaged_files_in_a_subprocess_neither_crashes_nor_hangs(tmp_path):
    results = _batch(tmp_path, "flips,edits", 100, 10, 240)
    for kind in ("flips", "edits"):
        counts = check(kind, [row[1:] for row in results if row[0] == kind])
        assert sum(counts.values()) == 10


@pytest.mark.slow
@pytest.mark.parametrize("kind,count", [("flips", 300), ("edits", 200)])
def test_hundreds_of_damaged_files(tmp_path, kind, count):
    results = []
    for start in range(1000, 1000 + count, 50):
        results += [row[1:] for row in _batch(tmp_path, kind, start, 50, 600)]
    counts = check(kind, results)
    print(kind, dict(counts))
    assert sum(counts.values()) == count


if __name__ == "__main__":
    kind, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    directory = Path(sys.argv[4]) if len(sys.argv) > 4 else Path(os.environ.get("TMPDIR", "/tmp")) / "ranvier-fuzz"
    directory.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE.parent.parent))
    for each in kind.split(","):
        totals: Counter = Counter()
        for case, status, detail in cases(directory, each, start, count):
            totals[status] += 1
            print(json.dumps({"kind": each, "case": case, "status": status, "detail": detail}), flush=True)
        print(f"# {each}: {dict(totals)}", file=sys.stderr)
