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

    @property
    def steps(self) -> np.ndarray:
        """Index k of the step that produced each spike."""
        self._merge()
        return self._steps[0] if self._steps else np.zeros(0, dtype=np.int64)

    @property
    def times(self) -> np.ndarray:
        """Spike times in seconds, ``(k + 1) * dt``."""
        return (self.steps + 1) * self._dt

    @property
    def ids(self) -> np.ndarray:
        """Neuron index of each spike."""
        self._merge()
        return self._ids[0] if self._ids else np.zeros(0, dtype=np.int64)

    @property
    def num_spikes(self) -> int:
        return int(sum(len(chunk) for chunk in self._ids))

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

    def __repr__(self) -> str:
        return f"SpikeMonitor({self.population.name!r}, {self.num_spikes} spikes)"


class StateMonitor:
    """A state variable of chosen neurons, sampled every ``every`` seconds.

    ``t`` holds the sample times (s); ``values`` is ``(len(t), len(ids))``. Samples are taken at
    the end of every step whose end time is a multiple of ``every``.
    """

    def __init__(self, population, variable: str, row: int, ids: np.ndarray, every_steps: int):
        self.population = population
        self.variable = variable
        self.row = row
        self.ids = ids
        self.every_steps = every_steps
        self._steps: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._dt = population.network.dt

    def _append(self, steps: np.ndarray, values: np.ndarray) -> None:
        if len(steps):
            self._steps.append(steps.copy())
            self._values.append(values.copy())

    @property
    def t(self) -> np.ndarray:
        """Sample times (s)."""
        if not self._steps:
            return np.zeros(0)
        return (np.concatenate(self._steps) + 1) * self._dt

    @property
    def values(self) -> np.ndarray:
        """Samples, one row per time, one column per recorded neuron (float64)."""
        if not self._values:
            return np.zeros((0, len(self.ids)))
        return np.concatenate(self._values).astype(np.float64)

    def __repr__(self) -> str:
        return f"StateMonitor({self.population.name!r}, {self.variable!r}, {len(self.t)} samples)"
