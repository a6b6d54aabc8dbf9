"""Random distributions for initial state, weights, delays and parameters (``ranvier.init``).

Each distribution draws ``size`` values from a ``numpy.random.Generator`` that the network
derives from its seed, so the same seed gives the same values. Draws for many synapses go
through :func:`draw_in_blocks`, which draws their blocks on all threads.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

from ..errors import ModelError

#: per-synapse draws are made this many at a time, each block from its own generator
DRAW_BLOCK = 1 << 20


class Distribution:
    """Base class: a recipe for drawing values."""

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draw ``size`` float64 values."""
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Distribution):
    """Every value equals ``value``."""

    value: float

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.full(size, float(self.value))


@dataclass(frozen=True)
class Uniform(Distribution):
    """Uniform on ``[low, high)``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.low) and np.isfinite(self.high)) or self.high < self.low:
            raise ModelError(f"Uniform: need finite low <= high, got low={self.low!r}, high={self.high!r}")

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, size)


@dataclass(frozen=True)
class Normal(Distribution):
    """Gaussian with ``mean`` and standard deviation ``std``.

    ``low`` and ``high`` truncate it: values outside are drawn again (NEST's ``redraw``), so
    weights keep their sign and delays stay at least ``dt``.
    """

    mean: float
    std: float
    low: float = -np.inf
    high: float = np.inf

    def __post_init__(self) -> None:
        if not (np.isfinite(self.mean) and np.isfinite(self.std)) or self.std < 0:
            raise ModelError(f"Normal: need finite mean and std >= 0, got mean={self.mean!r}, std={self.std!r}")
        if not self.low < self.high or (self.std == 0 and not self.low <= self.mean <= self.high):
            raise ModelError(f"Normal: need low < high around the mean, got low={self.low!r}, high={self.high!r}")

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        values = rng.normal(self.mean, self.std, size)
        redraw = np.flatnonzero(self._outside(values))
        # each round draws again only the values still outside, in index order, and tests only those
        # (the whole array tested every round took most of a microcircuit's weight and delay draws)
        while redraw.size:
            values[redraw] = rng.normal(self.mean, self.std, redraw.size)
            redraw = redraw[self._outside(values[redraw])]
        return values

    def _outside(self, values: np.ndarray) -> np.ndarray:
        """Whether each value lies outside ``[low, high]`` (an infinite bound tests nothing)."""
        if self.low == -np.inf:
            return values > self.high
        if self.high == np.inf:
            return values < self.low
        return (values < self.low) | (values > self.high)


@dataclass(frozen=True)
class Cauchy(Distribution):
    """Cauchy (Lorentzian) with location ``loc`` and half-width ``scale``:
    ``p(x) = scale / (pi * ((x - loc)^2 + scale^2))``."""

    loc: float
    scale: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.loc) and np.isfinite(self.scale)) or self.scale <= 0:
            raise ModelError(f"Cauchy: need finite loc and scale > 0, got loc={self.loc!r}, scale={self.scale!r}")

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return self.loc + self.scale * rng.standard_cauchy(size)


def materialise(value, rng: np.random.Generator, size: int, what: str, owner: str) -> np.ndarray:
    """Turn a scalar, array or :class:`Distribution` into a float64 array of ``size`` values.

    Raises ``ValueError`` naming ``owner`` and ``what`` for a wrong length or a non-finite value;
    callers wrap it in their own :class:`~ranvier.RanvierError` subclass.
    """
    if isinstance(value, Distribution):
        values = value.sample(rng, size)
    else:
        if isinstance(value, str | bytes):
            raise ValueError(f"{owner}: {what} must be a number in SI units (ranvier.units), an array or a "
                             f"ranvier.init distribution, got {value!r}")
        try:
            values = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{owner}: {what} must be a number, an array or a ranvier.init distribution, "
                             f"got {value!r}") from None
        if values.ndim == 0:
            values = np.full(size, float(values))
        elif values.shape != (size,):
            raise ValueError(f"{owner}: {what} has shape {values.shape}, expected ({size},)")
    if not np.all(np.isfinite(values)):
        bad = values[~np.isfinite(values)][0]
        raise ValueError(f"{owner}: {what} contains a non-finite value ({bad})")
    return values


def draw_in_blocks(rng: np.random.Generator, size: int, draw: Callable[[np.random.Generator, int, int], None]) -> None:
    """Call ``draw(generator, start, count)`` for each block of ``DRAW_BLOCK`` of ``size`` values.

    Block ``b`` draws from ``numpy.random.default_rng([seed, b])``, where ``seed`` is one 63-bit
    integer drawn from ``rng``; so the values depend on the network's seed and never on how many
    threads draw them. The blocks are drawn on ``NUMBA_NUM_THREADS`` threads (numpy's generators
    release the GIL while they fill an array): a microcircuit draws 600 million weights and delays,
    most of its build. The first block, in order, that raises gives the error.
    """
    seed = int(rng.integers(0, 2**63))
    starts = range(0, size, DRAW_BLOCK)

    def block(index: int) -> None:
        start = starts[index]
        draw(np.random.default_rng([seed, index]), start, min(DRAW_BLOCK, size - start))

    workers = min(numba.config.NUMBA_NUM_THREADS, len(starts))
    if workers <= 1:
        for index in range(len(starts)):
            block(index)
        return
    with ThreadPoolExecutor(workers) as pool:
        for finished in [pool.submit(block, index) for index in range(len(starts))]:
            finished.result()
