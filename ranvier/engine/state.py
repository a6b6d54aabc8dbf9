"""The run state: what runs keep between steps besides the state variables and the weights.

A declaration (``Network``, ``Population``, ``Projection``) says what the network is; a run
also keeps, per population, its delay ring and, for a value population, its published output
and how far that output already stands in its targets' rings; per projection, the spike counts
still pending for a value population and a plastic projection's STDP traces. They live here,
in the network's :class:`RunState`, keyed by population and projection name: lowering hands
them to a backend, storage saves and restores them with the declaration, and a declaration is
never changed by a run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PopulationRun:
    """A population's run state.

    ``ring`` ``(slots, receptors, n)``, in the network's precision: slot ``k % slots`` holds
    the input arriving in step ``k`` (made by lowering). ``published`` ``(channels, n)``
    float64: a value population's output as last published. ``held_until``: the steps before this one already
    hold that output in its spiking targets' rings.
    """

    ring: np.ndarray | None = None
    published: np.ndarray | None = None
    held_until: int = 0


@dataclass
class Traces:
    """STDP traces of a plastic projection: each neuron's trace and the step it was last set."""

    pre_trace: np.ndarray
    pre_seen: np.ndarray
    post_trace: np.ndarray
    post_seen: np.ndarray

    @classmethod
    def zeros(cls, n_pre: int, n_post: int) -> Traces:
        return cls(np.zeros(n_pre, dtype=np.float64), np.zeros(n_pre, dtype=np.int64),
                   np.zeros(n_post, dtype=np.float64), np.zeros(n_post, dtype=np.int64))


@dataclass
class ProjectionRun:
    """A projection's run state: ``pending`` (float64 ``(windows, width)``) spike counts still to
    reach a value population, and a plastic projection's ``traces``."""

    pending: np.ndarray | None = None
    traces: Traces | None = None


class RunState:
    """The run state of every population and projection of a network, by name."""

    def __init__(self) -> None:
        self._populations: dict[str, PopulationRun] = {}
        self._projections: dict[str, ProjectionRun] = {}

    def population(self, name: str) -> PopulationRun:
        """The run state of population ``name`` (empty before its first run)."""
        run = self._populations.get(name)
        if run is None:
            run = self._populations[name] = PopulationRun()
        return run

    def projection(self, name: str) -> ProjectionRun:
        """The run state of projection ``name`` (empty before its first run)."""
        run = self._projections.get(name)
        if run is None:
            run = self._projections[name] = ProjectionRun()
        return run

    def clear_inputs(self) -> None:
        """Drop every input in flight: spikes and values in the rings, counts not yet taken up."""
        for run in self._populations.values():
            if run.ring is not None:
                run.ring[...] = 0.0
        for run in self._projections.values():
            if run.pending is not None:
                run.pending[...] = 0.0
