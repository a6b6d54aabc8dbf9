"""Input sources: Poisson spike trains and spikes at given times."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..engine.distributions import Distribution
from ..engine.kinds import Kind
from ..engine.model import MAX_SPIKES_PER_STEP, Model, ParameterValue, poisson_count, uniform01
from ..engine.plausibility import warn_if_implausible
from ..errors import ModelError

# rows of the constants array of PoissonSource
EXPECTED_COUNT = 0  # rate * dt
P_ZERO = 1  # exp(-rate * dt)


def _poisson_step(state, consts, arriving, i, c, k, key):
    """Spike count of Poisson sources ``i`` in step ``k``: ``Poisson(rate * dt)``.

    Inverse-transform sampling of one counter-based uniform number ``u``: the count is the
    number of terms of the Poisson CDF that ``u`` exceeds, so every backend draws the same
    counts and a compiled neuron stops after about ``rate * dt + 1`` terms. The count is capped
    ten standard deviations above the mean: constants in single precision (float32) make the
    summed CDF stop a little short of 1, and a ``u`` above that limit must not run on forever.
    """
    return poisson_count(uniform01(key, k, i), np.float64(consts[EXPECTED_COUNT, c]), np.float64(consts[P_ZERO, c]))


class PoissonSource(Model):
    """Independent Poisson spike trains, one per neuron, at ``rate`` (Hz).

    In each step of ``dt`` a source emits ``Poisson(rate * dt)`` spikes (so rates above
    ``1 / dt`` are exact too, each spike delivered with its weight). ``rate`` may be a float, a
    per-neuron array or a ``ranvier.init`` distribution.
    """

    step = staticmethod(_poisson_step)

    def __init__(self, rate: ParameterValue) -> None:
        super().__init__()
        self._check_finite(rate=rate)
        if not isinstance(rate, Distribution) and np.any(np.asarray(rate, dtype=float) < 0):
            raise ModelError(f"PoissonSource: rate must be >= 0 Hz, got {rate!r}")
        warn_if_implausible(type(self).__name__, "rate", rate, "frequency")
        self.parameters = {"rate": rate}

    @property
    def state_names(self) -> tuple[str, ...]:
        return ()

    def constants(self, params: Mapping[str, np.ndarray], dt: float) -> np.ndarray:
        rate = params["rate"]
        if np.any(rate < 0):
            raise ModelError(f"PoissonSource: rate must be >= 0 Hz, got {rate.min()}")
        expected = rate * dt
        if np.any(expected + 10 * np.sqrt(expected) + 12 > MAX_SPIKES_PER_STEP):
            raise ModelError(f"PoissonSource: rate {rate.max():g} Hz gives more spikes per step of {dt:g} s "
                             f"than a neuron may emit ({MAX_SPIKES_PER_STEP}); use a smaller dt")
        return np.asarray([expected, np.exp(-expected)], dtype=np.float64)

    def spike_bound(self, params: Mapping[str, np.ndarray], dt: float, n: int) -> int:
        """A total count the population exceeds in one step with probability below 1e-20."""
        expected = float(np.sum(params["rate"])) * dt
        return int(np.ceil(expected + 10 * np.sqrt(expected) + 12))


class SpikeSource(Model):
    """Spikes at given times: neuron ``ids[j]`` spikes at ``times[j]`` (s).

    Times are rounded to the step grid; a spike at time t reaches its targets at t + delay, as
    NEST's ``spike_generator`` does, so times must be at least ``dt`` (a spike "at 0" would
    arrive before the run starts). Repeated (time, id) pairs deliver the weight once per copy.
    The population size defaults to ``max(ids) + 1``.
    """

    kind = Kind.SCHEDULED

    def __init__(self, times, ids, n: int | None = None) -> None:
        super().__init__()
        times = np.asarray(times, dtype=np.float64).ravel()
        ids = np.asarray(ids).ravel()
        if times.shape != ids.shape:
            raise ModelError(f"SpikeSource: times and ids need equal lengths, got {times.size} and {ids.size}")
        if not np.all(np.isfinite(times)):
            raise ModelError(f"SpikeSource: times must be finite, got {times[~np.isfinite(times)][:3]}")
        if ids.size and (not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0):
            raise ModelError(f"SpikeSource: ids must be non-negative integers, got {ids[:5]}")
        self.times = times
        self.ids = ids.astype(np.int64)
        self.size = int(n) if n is not None else (int(self.ids.max()) + 1 if ids.size else 0)
        if self.ids.size and self.ids.max() >= self.size:
            raise ModelError(f"SpikeSource: id {self.ids.max()} out of range for n={self.size}")

    @property
    def state_names(self) -> tuple[str, ...]:
        return ()

    def _config(self) -> dict[str, object]:
        return {"times": self.times, "ids": self.ids, "n": self.size}

    def constants(self, params: Mapping[str, np.ndarray], dt: float) -> np.ndarray:
        return np.zeros((0, self.size), dtype=np.float64)

    def spike_bound(self, params: Mapping[str, np.ndarray], dt: float, n: int) -> int:
        """The largest number of spikes scheduled in one step."""
        steps = np.rint(self.times / dt).astype(np.int64)
        return int(np.unique(steps, return_counts=True)[1].max()) if steps.size else 0

    def schedule(self, dt: float, owner: str) -> tuple[np.ndarray, np.ndarray]:
        """Emission steps and ids, sorted by step: a spike at t is emitted in step round(t/dt) - 1."""
        grid = np.rint(self.times / dt).astype(np.int64)
        if grid.size and grid.min() < 1:
            bad = self.times[grid < 1][0]
            raise ModelError(
                f"population {owner!r}: SpikeSource time {bad} s is below dt = {dt} s; the earliest "
                "spike a source can send is at t = dt (a spike sent at t arrives at t + delay)"
            )
        order = np.argsort(grid, kind="stable")
        return grid[order] - 1, self.ids[order].astype(np.int32)
