"""Checks for models: does a model give the same bits on every backend, and after a save and load?

A model's ``step`` is written once and run by every backend (:mod:`ranvier.engine.model`). The
static checks at ``net.population(...)`` (:mod:`ranvier.engine.model_checks`) catch code that
would run differently; :func:`check_model` runs the model and compares::

    >>> import ranvier as rv
    >>> from ranvier.testing import check_model
    >>> result = check_model(lambda: rv.neurons.LIF(), backends=["numpy"])
    >>> result.ok, result.backends
    (True, ('numpy',))
    >>> result.raise_if_failed()   # a ModelError with the report when a backend differs

In a test suite: ``check_model(MyModel).raise_if_failed()``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BackendError, ModelError

__all__ = ["ModelCheck", "check_model"]

#: weight scale of the default drive of a spiking model: volts, like LIF's voltage-equivalent currents
_SPIKE_WEIGHT = 4e-3
#: weight scale of the default drive of an elementwise value model's ports
_VALUE_WEIGHT = 1.0
#: rate (Hz) of each Poisson source of the default drive
_RATE = 2000.0
#: inputs each neuron (or port entry) receives from its drive
_IN_DEGREE = 4
#: the population under test, in the networks check_model builds
_NAME = "model"


@dataclass(frozen=True)
class ModelCheck:
    """What :func:`check_model` found.

    ``ok`` is True when every backend gave numpy's spikes and state bit for bit, and a network
    saved and loaded mid-run continued exactly as the original. ``backends`` lists the
    backends run (numpy, the reference, first); ``first_difference`` describes the earliest
    difference found, e.g. ``"numba differs from numpy: variable 'v' neuron 3 after 40 steps:
    -0.0651 (numpy) vs -0.0652 (numba)"``, or is None; ``differences`` holds one line per
    comparison that failed. ``spikes`` counts the spikes the model emitted in the numpy run
    (0 for a model that does not spike), ``notes`` says what was not checked.

    >>> check = ModelCheck("LIF", ok=False, backends=("numpy", "numba"),
    ...                    first_difference="numba differs from numpy: spike 3 of 'model': ...")
    >>> print(check)
    check_model(LIF): FAILED on numpy, numba
      numba differs from numpy: spike 3 of 'model': ...
    """

    model: str
    ok: bool
    backends: tuple[str, ...]
    first_difference: str | None = None
    differences: tuple[str, ...] = ()
    neurons: int = 0
    steps: int = 0
    spikes: int = 0
    round_trip: bool = False
    notes: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        shown = ", ".join(self.backends)
        facts = []
        if self.steps:
            facts.append(f"{self.neurons} neurons, {self.steps} steps, {self.spikes} spikes")
        if self.round_trip:
            facts.append("save/load round trip")
        detail = f" ({'; '.join(facts)})" if facts else ""
        if self.ok and len(self.backends) == 1:
            lines = [f"check_model({self.model}): ok on {shown} alone{detail}"]
        elif self.ok:
            lines = [f"check_model({self.model}): ok: {shown} agree bit for bit{detail}"]
        else:
            lines = [f"check_model({self.model}): FAILED on {shown}{detail}"]
            differences = self.differences or ((self.first_difference,) if self.first_difference else ())
            lines += [f"  {difference}" for difference in differences]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise :class:`~ranvier.errors.ModelError` with the report unless the check passed."""
        if not self.ok:
            raise ModelError(str(self))


@dataclass
class _Result:
    """What one run left: spikes and traces of every monitor, final state, event count."""

    backend: str
    spikes: list[tuple[str, np.ndarray, np.ndarray]]
    traces: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]
    states: dict[str, np.ndarray]
    state_names: dict[str, tuple[str, ...]]
    events: int
    dtype: np.dtype
    error: str | None = None


def check_model(model_factory: Callable[[], object], n: int = 8, duration: float = 0.02, dt: float = 1e-4,
                backends: Iterable[str] | None = None, inputs: bool | float | Mapping[str, object] = True,
                seed: int = 0, round_trip: bool = True) -> ModelCheck:
    """Run a model on every backend and compare the results bit for bit with numpy's.

    ``model_factory()`` returns a fresh model: a spiking model (``rv.Model`` with a ``step``)
    or an elementwise value model (``rv.ValueModel`` with a ``step``). ``check_model`` builds a
    small network with ``n`` of them (population ``"model"``) and drives it (``inputs``):

    * each receptor of a spiking model gets spikes from ``n`` Poisson sources at 2 kHz, each
      neuron from 4 of them, through weights drawn uniformly from ``[-w/2, 3w/2]`` (positive
      and negative) and delays of 1 to 5 steps; ``w`` is 4 mV, right for models in volts;
    * each one-channel port of an elementwise value model gets Poisson spike counts the same
      way (``w = 1``), and a port that takes the model's own output (Kuramoto's
      ``"coupling"``) gets it from the population itself; other ports stay undriven.

    ``inputs`` may instead be False (no drive), a number (the weight scale ``w``) or a mapping
    receptor or port -> weight (a number or a ``ranvier.init`` distribution) for the receptors
    to drive.

    The network runs for ``duration`` s of steps of ``dt`` on numpy, then on every other
    backend (``backends``; default: every one available here, so ``"numba"``, and ``"cuda"``
    with a GPU or numba's CUDA simulator). Every state variable is recorded in every update,
    and spike steps and ids, traces and final state are compared bit for bit. With
    ``round_trip``, each run stops halfway, the network is saved (``net.save``), loaded
    (``rv.load``), and the original and the loaded copy run on to the end: both must agree (the
    model's class is registered for loading (``rv.register_model``) during the check;
    ``round_trip=False`` skips this).

    Returns a :class:`ModelCheck`; ``check_model(...).raise_if_failed()`` makes it an
    assertion. A model whose step breaks the model language's static rules raises
    :class:`~ranvier.errors.ModelError` at once, from ``net.population``.

    >>> import ranvier as rv
    >>> check = check_model(lambda: rv.neurons.LIF(), backends=["numpy"], duration=0.005)
    >>> check.ok, check.steps
    (True, 50)
    """
    from .engine import backends as available_backends
    from .engine.kinds import Kind
    from .engine.model import Model

    probe = model_factory()
    if not isinstance(probe, Model):
        raise ModelError(f"check_model: model_factory() must return a ranvier model, got {probe!r}")
    kind = probe.kind
    if kind not in (Kind.SPIKING, Kind.VALUE) or getattr(probe, "step", None) is None:
        raise ModelError(f"check_model: {type(probe).__name__} is not a spiking or elementwise value model (it "
                         "has no model-language step), so it runs on the host the same way on every backend")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ModelError(f"check_model: n must be a positive integer, got {n!r}")
    total = int(round(duration / dt))
    if total < 2:
        raise ModelError(f"check_model: duration must cover at least two steps of dt = {dt} s, got {duration!r}")
    names, notes = _backends(backends, available_backends.available())
    first = total // 2 if round_trip else total

    results: dict[str, _Result] = {}
    loaded: dict[str, _Result] = {}
    differences: list[tuple[int, str]] = []
    saving_failed = False
    from .engine.storage import registered

    # the round trip loads the factory's class by its path: let it (for this check only)
    with tempfile.TemporaryDirectory(prefix="ranvier-check-") as directory, registered(type(probe)):
        for backend in names:
            build_notes: list[str] = []
            net = _build(model_factory, n, dt, seed, inputs, build_notes)
            if backend == "numpy":
                notes += build_notes
            error = _run(net, first * dt, backend)
            if error is None and first < total:
                copy = None
                if not saving_failed:
                    copy, failure = _save_and_load(net, Path(directory) / f"{backend}.h5")
                    if failure is not None:
                        saving_failed = True
                        differences.append((-1, f"on {backend}, {failure}"))
                error = _run(net, (total - first) * dt, backend)
                if copy is not None:
                    loaded[backend] = _collect(copy, backend, _run(copy, (total - first) * dt, backend))
            results[backend] = _collect(net, backend, error)
            if error is not None:
                differences.append((-1, f"{backend} failed: {error}"))
                if backend == "numpy":
                    break
                continue
            if backend != "numpy" and results["numpy"].error is None:
                found = _compare(results["numpy"], results[backend], f"{backend} differs from numpy")
                if found:
                    differences.append(found)
            if backend in loaded:
                found = _compare(results[backend], loaded[backend],
                                 f"on {backend}, the network saved after {first} steps and loaded differs from the "
                                 "original", (f"{backend}", "loaded"))
                if found:
                    differences.append(found)
    reference = results.get("numpy")
    spikes = 0
    if reference is not None:
        spikes = sum(len(ids) for name, _, ids in reference.spikes if name == _NAME)
        emits = probe.kind == Kind.SPIKING or getattr(probe, "pulses", False)
        if emits and spikes == 0 and reference.error is None:
            notes.append("the model did not spike in the numpy run, so its spikes were not compared; drive it "
                         "harder with inputs=<weight scale>")
    ordered = [text for _, text in sorted(differences, key=lambda item: item[0])]
    # failures to run come first (step -1); otherwise the earliest difference in simulated time
    return ModelCheck(model=type(probe).__name__, ok=not differences, backends=tuple(results),
                      first_difference=ordered[0] if ordered else None, differences=tuple(ordered),
                      neurons=int(n), steps=total, spikes=spikes, round_trip=round_trip, notes=tuple(notes))


def _backends(requested: Iterable[str] | None, status: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The backends to run, numpy first, and notes on those left out."""
    notes: list[str] = []
    if requested is None:
        names = ["numpy"] + [name for name, reason in status.items() if name != "numpy" and reason == "yes"]
        notes += [f"{name} not checked: {reason}" for name, reason in status.items() if reason != "yes"]
        return names, notes
    requested = [requested] if isinstance(requested, str) else list(requested)
    for name in requested:
        if name not in status:
            raise BackendError(f"check_model: unknown backend {name!r}; choose from {', '.join(status)}")
        if status[name] != "yes":
            raise BackendError(f"check_model: backend {name!r} cannot run here: {status[name]}")
    return ["numpy"] + [name for name in dict.fromkeys(requested) if name != "numpy"], notes


def _build(model_factory, n: int, dt: float, seed: int, inputs, notes: list[str]):
    """The network check_model runs: the model, its drive, and monitors on everything."""
    import ranvier as rv

    from .engine.kinds import Kind
    from .engine.model import ValueModel

    net = rv.Network(dt=dt, seed=seed)
    model = model_factory()
    population = net.population(model, n, name=_NAME)
    value = isinstance(model, ValueModel)
    scale = _VALUE_WEIGHT if value else _SPIKE_WEIGHT
    if isinstance(inputs, int | float) and not isinstance(inputs, bool):
        scale, inputs = float(inputs), True
    targets = model.ports(n) if value else {receptor: (n, 1) for receptor in model.receptors}
    chosen = dict(inputs) if isinstance(inputs, Mapping) else ({} if not inputs else None)
    if chosen is not None:
        unknown = set(chosen) - set(targets)
        if unknown:
            raise ModelError(f"check_model: {type(model).__name__} has no receptor or port {sorted(unknown)}; it has "
                             f"{list(targets) or 'none'}")
    for receptor, (width, channels) in targets.items():
        if chosen is not None and receptor not in chosen:
            continue
        weight = chosen[receptor] if chosen is not None else rv.init.Uniform(-0.5 * scale, 1.5 * scale)
        if channels == 1:
            sources = net.population(rv.neurons.PoissonSource(rate=_RATE), max(n, _IN_DEGREE),
                                     name=f"drive_{receptor}")
            net.connect(sources, population, rv.connect.FixedInDegree(min(_IN_DEGREE, sources.n)), weight=weight,
                        delay=rv.init.Uniform(dt, 5 * dt), receptor=receptor)
        elif value and channels == model.channels and width == n:
            net.connect(population, population, rv.connect.FixedInDegree(min(_IN_DEGREE, n)),
                        weight=weight if chosen is not None else rv.init.Uniform(-0.5 * scale / n, 1.5 * scale / n),
                        receptor=receptor)
        else:
            notes.append(f"port {receptor!r} ({channels} channels of {width}) left undriven")
    for name, other in net.populations.items():
        if other.model.kind in (Kind.SPIKING, Kind.SCHEDULED) or getattr(other.model, "pulses", False):
            net.record(name, "spikes")
    for variable in model.state_names:
        net.record(population, variable)
    return net


def _run(net, duration: float, backend: str) -> str | None:
    """Run on; the error, in a line or two, if the run failed."""
    try:
        net.run(duration, backend=backend)
    except Exception as error:  # noqa: BLE001 - any failure of a backend is a finding
        text = " ".join(f"{type(error).__name__}: {error}".split())
        return text if len(text) <= 400 else text[:397] + "..."
    return None


def _save_and_load(net, path: Path):
    """A copy of ``net`` through a file; the error if saving or loading failed."""
    import ranvier as rv

    try:
        net.save(os.fspath(path))
        return rv.load(os.fspath(path)), None
    except Exception as error:  # noqa: BLE001 - a model that cannot be saved is a finding
        return None, f"save/load failed: {type(error).__name__}: {error}"


def _collect(net, backend: str, error: str | None) -> _Result:
    spikes = [(m.population.name, np.asarray(m.steps), np.asarray(m.ids)) for m in net.spike_monitors]
    traces = [(m.variable, np.rint(np.asarray(m.t) / net.dt).astype(np.int64), np.asarray(m.ids),
               np.asarray(m.values, dtype=np.float64)) for m in net.state_monitors]
    states = {name: population.state.copy() for name, population in net.populations.items()}
    names = {name: tuple(population.model.state_names) for name, population in net.populations.items()}
    dtype = np.dtype(getattr(net, "dtype", np.float32))
    return _Result(backend, spikes, traces, states, names, net.stats.synaptic_events, dtype, error)


def _bits(values: np.ndarray) -> np.ndarray:
    """The bit patterns of float values (so NaN equals NaN and -0.0 differs from 0.0)."""
    values = np.ascontiguousarray(values)
    return values.view(np.uint64 if values.dtype.itemsize == 8 else np.uint32)


def _spike(steps: np.ndarray, ids: np.ndarray, j: int, label: str) -> str:
    if j < len(ids):
        return f"{label} (step {int(steps[j])}, id {int(ids[j])})"
    return f"{label} (none: {len(ids)} spikes in all)"


def _compare(a: _Result, b: _Result, prefix: str, labels: tuple[str, str] | None = None) -> tuple[int, str] | None:
    """The earliest difference between two runs, as (step, description), or None."""
    first, second = labels or (a.backend, b.backend)
    shown = a.dtype.type
    found: list[tuple[int, str]] = []
    for (name, steps_a, ids_a), (_, steps_b, ids_b) in zip(a.spikes, b.spikes, strict=True):
        common = min(len(ids_a), len(ids_b))
        unequal = np.flatnonzero((steps_a[:common] != steps_b[:common]) | (ids_a[:common] != ids_b[:common]))
        if len(unequal) or len(ids_a) != len(ids_b):
            j = int(unequal[0]) if len(unequal) else common
            step = min(int(s[j]) for s in (steps_a, steps_b) if j < len(s))
            found.append((step + 1, f"{prefix}: spike {j} of {name!r}: {_spike(steps_a, ids_a, j, first)} vs "
                                    f"{_spike(steps_b, ids_b, j, second)}"))
    for (variable, done_a, ids, values_a), (_, done_b, _, values_b) in zip(a.traces, b.traces, strict=True):
        if values_a.shape != values_b.shape or not np.array_equal(done_a, done_b):
            found.append((int(done_a[0]) if len(done_a) else 0,
                          f"{prefix}: variable {variable!r}: {len(done_a)} samples ({first}) vs {len(done_b)} "
                          f"({second})"))
            continue
        unequal = np.argwhere(_bits(values_a) != _bits(values_b))
        if len(unequal):
            sample, column = (int(x) for x in unequal[0])
            found.append((int(done_a[sample]),
                          f"{prefix}: variable {variable!r} neuron {int(ids[column])} after {int(done_a[sample])} "
                          f"steps: {str(shown(values_a[sample, column]))} ({first}) vs "
                          f"{str(shown(values_b[sample, column]))} ({second})"))
    end = 1 << 62
    for name, state_a in a.states.items():
        state_b = b.states.get(name)
        if state_b is None or state_a.shape != state_b.shape:
            found.append((end, f"{prefix}: population {name!r} has state of shape {state_a.shape} ({first}) vs "
                               f"{None if state_b is None else state_b.shape} ({second})"))
            continue
        unequal = np.argwhere(_bits(state_a) != _bits(state_b))
        if len(unequal):
            row, column = (int(x) for x in unequal[0])
            variable = a.state_names[name][row] if row < len(a.state_names[name]) else f"row {row}"
            found.append((end, f"{prefix}: final state of {name!r}: variable {variable!r} neuron {column}: "
                               f"{str(state_a[row, column])} ({first}) vs {str(state_b[row, column])} ({second})"))
    if a.events != b.events:
        found.append((end + 1, f"{prefix}: {a.events} synaptic events ({first}) vs {b.events} ({second})"))
    if b.error is not None:
        found.append((-1, f"{prefix}: the run failed: {b.error}"))
    return min(found, key=lambda item: item[0]) if found else None
