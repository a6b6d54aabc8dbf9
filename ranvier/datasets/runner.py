"""Running a dataset through one network, sample by sample, collecting readout features."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..engine import Network, Population
from ..engine.kinds import Kind
from ..errors import DatasetError
from ..neurons.sources import SpikeSource
from .events import DEFAULT_START, MICROSECOND, event_ids, source_size


@dataclass
class SampleResults:
    """What :func:`run_samples` collected.

    ``features[r]`` holds the spike count of every readout neuron (readout populations in the
    order given, neurons in index order) during sample ``indices[r]``, whose label is
    ``labels[r]``. ``errors`` maps the index of every sample that could not be run to the
    reason; those samples have no row.
    """

    features: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.indices)


def replace_source(population: Population, source: SpikeSource) -> None:
    """Give the scheduled source ``population`` the spikes of ``source`` for the coming runs.

    The population keeps its name, size, projections and monitors; state elsewhere is left as
    it is. The next ``run`` lowers the network again (cheap next to building it; compiled
    kernels are reused) and emits the spikes of ``source`` at or after the network's time.
    """
    if population.model.kind != Kind.SCHEDULED:
        raise DatasetError(f"population {population.name!r}: only a SpikeSource population takes new events, "
                           f"it is a {type(population.model).__name__}")
    if source.size != population.n:
        raise DatasetError(f"population {population.name!r}: the new source has {source.size} neurons, "
                           f"the population {population.n}")
    source.schedule(population.network.dt, population.name)
    population.model = source
    population.network._changed()


def _population(net: Network, population: Population | str, role: str) -> Population:
    if isinstance(population, str):
        return net[population]
    if not isinstance(population, Population) or population.network is not net:
        raise DatasetError(f"run_samples: {role} {population!r} is not a population of this network")
    return population


class _Resetter:
    """Puts every population's state back as it was, and empties delay rings and pending window counts.

    A callback scheduled for one batch checks it still belongs to the running batch, so the
    callbacks a failed batch leaves in the event queue do nothing later.
    """

    def __init__(self, net: Network):
        self.net = net
        self.initial = {name: population.state.copy() for name, population in net.populations.items()}
        self.batch = 0

    def __call__(self) -> None:
        for name, population in self.net.populations.items():
            population.state[...] = self.initial[name]
        # spikes in flight and counts still waiting for a value population's window belong to the previous sample
        self.net.run_state.clear_inputs()

    def callback(self, batch: int):
        return lambda net: self() if batch == self.batch else None


def run_samples(net: Network, dataset, duration: float, readout: Population | str | Sequence[Population | str], *,
                input: Population | str = "input", indices: Iterable[int] | None = None, batch: int = 8,
                backend: str = "numba", progress: bool = True, polarity: str = "keep", start: float = DEFAULT_START,
                sensor_size: Sequence[int] | None = None, on_unsorted: str = "sort") -> SampleResults:
    """Run each sample of ``dataset`` through ``net`` for ``duration`` s and count readout spikes.

    ``dataset`` is a tonic dataset, a :func:`~ranvier.datasets.digits_events` set or any
    sequence of ``(events, label)`` pairs; ``sensor_size`` defaults to ``dataset.sensor_size``.
    Sample events replace the spikes of the ``input`` source population (built, e.g., from
    ``from_tonic`` on one sample), mapped to neurons and times as :func:`from_tonic` does: an
    event at ``t`` us is sent ``start + t * 1e-6`` s after its sample begins. Events after
    ``duration`` are dropped (with a warning saying how many).

    Before each sample every population's state is restored to what it was when
    ``run_samples`` was called and spikes still in flight are discarded; weights are not
    touched. ``batch`` samples run back to back in one ``net.run`` call, the resets done by
    callbacks between them, so lowering and Python overhead are paid once per batch on every
    backend; in a network with value populations each sample has its own run (a value
    population's window and its published output start again only with a run). A population
    with its own ``dt`` must find each sample starting a window of it (a duration that is a whole
    number of its ``dt``, from a network time that is), else a :class:`DatasetError`. A readout
    must spike. ``progress`` shows a bar over samples.

    A sample that cannot be read or converted, or whose run fails (its batch is then re-run
    sample by sample), is reported in ``errors`` by its index; the other samples' results are
    kept. Afterwards the network holds its initial state and its original input again (its
    time has advanced).
    """
    dt = net.dt
    source = _population(net, input, "input")
    readouts = [_population(net, pop, "readout")
                for pop in ([readout] if isinstance(readout, str | Population) else readout)]
    sensor_size = getattr(dataset, "sensor_size", None) if sensor_size is None else sensor_size
    if sensor_size is None:
        raise DatasetError("run_samples: the dataset has no sensor_size; pass sensor_size=(W, H, P)")
    n = source_size(sensor_size, polarity)
    if n != source.n:
        raise DatasetError(f"run_samples: sensor_size {tuple(sensor_size)} ({polarity} polarity) gives {n} neurons, "
                           f"input population {source.name!r} has {source.n}")
    steps = int(round(duration / dt)) if np.isfinite(duration) else 0
    if steps < 1:
        raise DatasetError(f"run_samples: duration must be at least dt = {dt:g} s, got {duration!r}")
    if not np.isfinite(start) or start < dt * (1 - 1e-6) or start >= steps * dt:
        raise DatasetError(f"run_samples: start must be in [dt, duration) = [{dt:g}, {steps * dt:g}) s, got {start!r}")
    if isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1:
        raise DatasetError(f"run_samples: batch must be a positive integer, got {batch!r}")
    for pop in readouts:
        if pop.model.kind not in (Kind.SPIKING, Kind.SCHEDULED) and not getattr(pop.model, "pulses", False):
            raise DatasetError(f"run_samples: readout {pop.name!r} does not spike ({type(pop.model).__name__}); "
                               "the features are readout spike counts")
    indices = list(range(len(dataset)) if indices is None else indices)
    _check_windows(net, steps, len(indices))
    if any(pop.model.kind == Kind.VALUE for pop in net.populations.values()):
        # a value population's window and published output start again only with a run: one sample each
        batch = 1
    run = _SampleRun(net, dataset, source, readouts, steps, backend, polarity, start, sensor_size, on_unsorted)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(indices), desc="samples", unit="sample", disable=not progress)
    original = source.model
    try:
        for first in range(0, len(indices), batch):
            run.batch(indices[first:first + batch])
            bar.update(min(batch, len(indices) - first))
    finally:
        bar.close()
        run.reset()
        replace_source(source, original)
    if run.dropped:
        warnings.warn(f"run_samples: {run.dropped} events after duration = {duration:g} s were dropped "
                      f"(from {run.dropped_samples} samples)", stacklevel=2)
    width = sum(pop.n for pop in readouts)
    return SampleResults(
        features=np.array([row for _, row, _ in run.rows]).reshape(len(run.rows), width),
        labels=np.array([label for _, _, label in run.rows]),
        indices=np.array([index for index, _, _ in run.rows], dtype=np.int64), errors=run.errors,
    )


def _check_windows(net: Network, steps: int, samples: int) -> None:
    """Refuse samples that would not start with the windows of a population with its own ``dt``:
    that population would update in the middle of a sample where a fresh network would not."""
    base, end = net.step, net.step + samples * steps
    for pop in net.populations.values():
        period = pop.period
        if period == 1 or (base // period + 1) * period >= end:
            continue  # updates every step, or not once during the samples
        if base % period or (samples > 1 and steps % period):
            raise DatasetError(f"run_samples: population {pop.name!r} updates every {period} steps (dt = "
                               f"{pop.dt:g} s), but the samples start every {steps} steps from step {base}; give "
                               "a duration that is a whole number of its dt, starting at a multiple of it")


class _SampleRun:
    """The state of one :func:`run_samples` call."""

    def __init__(self, net, dataset, source, readouts, steps, backend, polarity, start, sensor_size, on_unsorted):
        self.net, self.dataset, self.source, self.readouts = net, dataset, source, readouts
        self.steps, self.backend, self.polarity, self.start = steps, backend, polarity, start
        self.sensor_size, self.on_unsorted = sensor_size, on_unsorted
        self.reset = _Resetter(net)
        #: (sample index, features, label) of every sample run, in order
        self.rows: list[tuple[int, np.ndarray, object]] = []
        self.errors: dict[int, str] = {}
        self.dropped = 0
        self.dropped_samples = 0

    def _read(self, index: int):
        events, label = self.dataset[index]
        times, ids = event_ids(events, self.sensor_size, self.polarity, self.on_unsorted, f"sample {index}")
        return times, ids, label

    def batch(self, indices: list[int]) -> None:
        read = []
        for index in indices:
            try:
                read.append((index, self._read(index)))
            except Exception as error:  # a corrupt file raises whatever its reader raises
                self.errors[index] = f"{type(error).__name__}: {error}"
        if not read:
            return
        try:
            self._run(read)
        except Exception as error:
            if len(read) == 1:
                self.errors[read[0][0]] = f"{type(error).__name__}: {error}"
                return
            for sample in read:
                try:
                    self._run([sample])
                except Exception as single_error:
                    self.errors[sample[0]] = f"{type(single_error).__name__}: {single_error}"

    def _run(self, read: list) -> None:
        net, dt, steps = self.net, self.net.dt, self.steps
        base = net.step
        all_times, all_ids = [], []
        for j, (_, (times, ids, _)) in enumerate(read):
            # rounded within the sample, as a fresh network rounds them: a tie (an event half a step
            # from a grid time) goes the same way in every sample
            sample_steps = np.rint((self.start + times * MICROSECOND) / dt)
            keep = sample_steps <= steps
            if not np.all(keep):
                self.dropped += int(np.count_nonzero(~keep))
                self.dropped_samples += 1
            all_times.append((base + j * steps + sample_steps[keep]) * dt)
            all_ids.append(ids[keep])
        replace_source(self.source, SpikeSource(np.concatenate(all_times), np.concatenate(all_ids), n=self.source.n))
        monitors = [net.record(pop, "spikes") for pop in self.readouts]
        self.reset.batch += 1
        self.reset()
        for j in range(1, len(read)):
            net.at((base + j * steps) * dt, self.reset.callback(self.reset.batch))
        try:
            net.run(len(read) * steps * dt, backend=self.backend)
        finally:
            for monitor in monitors:
                net.spike_monitors.remove(monitor)
        counts = []
        for monitor in monitors:
            n = monitor.population.n
            window = (monitor.steps - base) // steps
            counts.append(np.bincount(window * n + monitor.ids, minlength=len(read) * n).reshape(len(read), n))
        features = np.concatenate(counts, axis=1)
        self.rows += [(index, features[j], label) for j, (index, (_, _, label)) in enumerate(read)]
