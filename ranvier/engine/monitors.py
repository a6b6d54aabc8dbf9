"""Monitors: what a run records (``Network.record``)."""

from __future__ import annotations

import numpy as np


class SpikeMonitor:
    """Spikes of a population: ``times`` (s) and ``ids`` (neuron index), in time order.

    A spike produced by the step from ``k * dt`` to ``(k + 1) * dt`` is stamped ``(k + 1) * dt``
    (NEST's convention), so a threshold crossing at time T is reported at the first grid time
    at or after T.
    """

    def __init__(self, population, ids: np.ndarray | None):
        self.population = population
        self.ids_recorded = ids
        self._steps: list[np.ndarray] = []
        self._ids: list[np.ndarray] = []
        self._dt = population.network.dt
        self._written = None  # the first spikes, when a checkpointed run wrote them to a file (storage)

    def _append(self, steps: np.ndarray, ids: np.ndarray) -> None:
        if self.ids_recorded is not None:
            keep = np.isin(ids, self.ids_recorded)
            steps, ids = steps[keep], ids[keep]
        if len(ids):
            self._steps.append(steps.copy())
            self._ids.append(ids.astype(np.int64))

    def _merge(self) -> None:
        if len(self._steps) > 1:
            self._steps = [np.concatenate(self._steps)]
            self._ids = [np.concatenate(self._ids)]

    def _with_written(self, memory: list[np.ndarray], read) -> np.ndarray:
        self._merge()
        parts = ([read()] if self._written is not None else []) + memory
        return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros(0, dtype=np.int64))

    def _count_memory(self) -> int:
        return int(sum(len(chunk) for chunk in self._ids))

    @property
    def steps(self) -> np.ndarray:
        """Index k of the step that produced each spike."""
        return self._with_written(self._steps, lambda: self._written.steps())

    @property
    def times(self) -> np.ndarray:
        """Spike times in seconds, ``(k + 1) * dt``."""
        return (self.steps + 1) * self._dt

    @property
    def ids(self) -> np.ndarray:
        """Neuron index of each spike."""
        return self._with_written(self._ids, lambda: self._written.ids())

    @property
    def num_spikes(self) -> int:
        return self._count_memory() + (self._written.count if self._written is not None else 0)

    def counts(self) -> np.ndarray:
        """Number of spikes of each neuron of the population."""
        return np.bincount(self.ids, minlength=self.population.n)

    def spike_trains(self) -> dict[int, np.ndarray]:
        """Neuron index -> its spike times (s), for every neuron that spiked."""
        ids, times = self.ids, self.times
        order = np.argsort(ids, kind="stable")
        split = np.flatnonzero(np.diff(ids[order])) + 1
        pieces = zip(np.split(ids[order], split), np.split(times[order], split), strict=True)
        return {int(chunk_ids[0]): chunk_times for chunk_ids, chunk_times in pieces if len(chunk_ids)}

    def to_sonata(self, path, sorting: str = "by_time", name: str | None = None):
        """Write these spikes to a SONATA spike file (``/spikes/<population>``, times in ms), which
        libsonata and bmtk read; ``name`` replaces the population's name. See
        :func:`ranvier.sonata.write_spikes` (a network's monitors go in one file with it)."""
        from .. import sonata

        return sonata.write_spikes(path, self, sorting=sorting, names=None if name is None else [name])

    def to_neo(self, t_stop: float | None = None, segment: bool = False):
        """The spikes as a list of ``neo.SpikeTrain`` (one per recorded neuron, in s, ``t_stop`` the
        network's time), or a ``neo.Segment`` holding them with ``segment=True``; see
        :mod:`ranvier.neo_io` (needs ``ranvier[neo]``)."""
        from .. import neo_io

        return neo_io.segment([self], t_stop=t_stop) if segment else neo_io.spike_trains(self, t_stop=t_stop)

    def __repr__(self) -> str:
        return f"SpikeMonitor({self.population.name!r}, {self.num_spikes} spikes)"


def variable_unit(population, variable: str) -> str:
    """The SI unit of ``population``'s state ``variable``, as text: the declared unit of an
    ``Equations`` variable (``"volt"``, ``"volt/second"``), ``"volt"`` for a LIF's ``v`` and its
    voltage-equivalent currents ``I_<receptor>``, ``""`` when unknown or dimensionless."""
    model = population.model
    for declaration in getattr(model, "_declarations", None) or ():
        if declaration.name == variable:
            unit = declaration.unit.strip()
            return "" if unit in ("1", "dimensionless") else unit
    from ..neurons.lif import LIF

    if isinstance(model, LIF) and (variable == "v" or variable.startswith("I_")):
        return "volt"
    return ""


class StateMonitor:
    """A state variable of chosen neurons, sampled every ``every`` seconds.

    ``t`` holds the sample times (s); ``values`` is ``(len(t), len(ids))``, or
    ``(len(t), channels, len(ids))`` when the variable has several channels (the ``"output"``
    of a multi-channel value population). Samples are taken at the end of every step whose end
    time is a multiple of ``every``.
    """

    def __init__(self, population, variable: str, rows: tuple[int, ...], ids: np.ndarray, every_steps: int):
        self.population = population
        self.variable = variable
        self.rows = rows
        self.ids = ids
        self.every_steps = every_steps
        self._steps: list[np.ndarray] = []
        self._values: list[list[np.ndarray]] = [[] for _ in rows]
        self._dt = population.network.dt
        self._written = None  # the first samples, when a checkpointed run wrote them to a file (storage)

    def _append(self, channel: int, steps: np.ndarray, values: np.ndarray) -> None:
        if len(steps):
            if channel == 0:
                self._steps.append(steps.copy())
            self._values[channel].append(values.copy())

    def _samples(self) -> tuple[np.ndarray, np.ndarray]:
        """Steps (int64) and values ``(samples, channels, ids)`` in the network's precision, those written to a
        file first."""
        steps = [np.concatenate(self._steps)] if self._steps else []
        values = [np.stack([np.concatenate(chunks) for chunks in self._values], axis=1)] if self._steps else []
        if self._written is not None:
            steps.insert(0, self._written.steps())
            values.insert(0, self._written.values())
        if not steps:
            empty = np.zeros((0, len(self.rows), len(self.ids)), dtype=self.population.network.dtype)
            return np.zeros(0, dtype=np.int64), empty
        return np.concatenate(steps), np.concatenate(values)

    @property
    def t(self) -> np.ndarray:
        """Sample times (s)."""
        return (self._samples()[0] + 1) * self._dt

    @property
    def values(self) -> np.ndarray:
        """Samples, one row per time, one column per recorded neuron (float64)."""
        values = self._samples()[1].astype(np.float64)
        return values[:, 0] if len(self.rows) == 1 else values

    def to_sonata(self, path, name: str | None = None):
        """Write these samples to a SONATA report (``/report/<population>``, times in ms, voltages
        in mV), which libsonata reads; ``name`` replaces the population's name. See
        :func:`ranvier.sonata.write_report` (several monitors go in one file with it)."""
        from .. import sonata

        return sonata.write_report(path, self, names=None if name is None else [name])

    def to_neo(self, unit: str | None = None):
        """The samples as a ``neo.AnalogSignal`` with the variable's units (volts for ``v``); see
        :mod:`ranvier.neo_io` (needs ``ranvier[neo]``)."""
        from .. import neo_io

        return neo_io.analog_signal(self, unit=unit)

    def __repr__(self) -> str:
        return f"StateMonitor({self.population.name!r}, {self.variable!r}, {len(self.t)} samples)"
