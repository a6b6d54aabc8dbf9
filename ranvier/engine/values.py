"""Value populations updated on the host, and the start of every value population's run.

Elementwise value populations (a model-language ``step``: Kuramoto, AKOrN, Astrocyte) update
inside the backends (:mod:`ranvier.engine.backends.value_updates` gives the order), and so do
those with an :class:`~ranvier.engine.model.ArrayStep` (CfC, LTC, ELM): in numpy on the numpy
backend, traced and compiled on numba and cuda
(:mod:`ranvier.engine.backends.array_program`). The others (torch ``Rate``, a user's
``advance``, an array step that cannot be traced) update here, on the host, once per window of
their own ``dt``, with their array code.

Timing, for a value population with a window of ``m`` steps (``dt_pop = m dt``):

* It updates at every step boundary ``k`` that is a multiple of ``m``, advancing its state over
  the window ``[k - m, k)``. All populations due at ``k`` update together from the outputs
  published before ``k`` (so a value projection acts with one window of lag, whatever the
  order of declaration), then publish their new outputs.
* Spikes reaching it through a projection with delay ``d`` count in the window that contains
  their arrival step ``s + d``: its input is ``sum_j w_ij n_j``, ``n_j`` the spikes of ``j`` that
  arrived in the window (spikes reaching a slower population are counted over its window).
* Its output reaches another value population as ``sum_j w_ij out_j`` per channel at that
  population's next update; it reaches a spiking population's receptor as that sum added to the
  receptor's input in every step of the source's window, ``[k, k + m)`` (values reaching a
  faster population are held).
* Pulses (a Kuramoto oscillator's phase crossings) emitted by the update at ``k`` are spikes of
  step ``k`` and travel through ordinary spiking projections with their delays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import NumericalError
from .backends.value_updates import apply_map, send
from .kinds import Kind, ProjectionKind
from .lowering import NO_PULSE, LoweredNetwork

if TYPE_CHECKING:
    from .network import Network, Population


class ValueStage:
    """Starts every value population's run; updates the host ones and moves what they send and receive."""

    def __init__(self, network: Network, lowered: LoweredNetwork):
        self.network = network
        self.lowered = lowered
        self._run = network.run_state
        values = [p for p in network.populations.values() if p.model.kind == Kind.VALUE]
        #: every value population: each run starts by publishing their outputs
        self.all_populations = values
        #: the value populations updated here
        self.populations = [p for p in values if p.index not in lowered.updated]
        #: the value populations the backend updates
        self.in_backend = [p for p in values if p.index in lowered.updated]
        self._periods = sorted({p.period for p in self.populations})
        self.projections = [p for p in network.projections if p.kind != ProjectionKind.SPIKE]
        self._maps = {m.name: m for m in lowered.value_maps}
        self._backend_periods = {p.index: p.period for p in self.in_backend}
        self._previous = {v.population: v.previous for v in lowered.values if v.previous is not None}
        #: each host population's ports and incoming value and count projections, in declaration order
        self._ports = {p.name: p.model.ports(p.n) for p in self.populations}
        self._incoming = {p.name: [j for j in self.projections if j.post is p] for p in self.populations}
        self._output_rows = {p.name: _rows_index(p.model.output_rows) for p in values}
        #: each host population's inputs by port, cleared before every update
        self._inputs = {name: _input_arrays(ports) for name, ports in self._ports.items()}
        #: each host population's state monitors, their ``(channel, row)`` pairs and their units as an index
        #: (recording lowers anew)
        self._monitors = {p.name: [(m, list(enumerate(m.rows)), _units_index(m.ids, p.n))
                                   for m in network.state_monitors if m.population is p] for p in self.populations}
        #: each value population's projections into spiking receptors (held) and state variables (set)
        self._holds = {p.name: [j for j in self.projections if j.pre is p and j.kind == ProjectionKind.VALUE
                                and j.post.model.kind != Kind.VALUE] for p in values}
        self._sets = {p.name: [j for j in self.projections if j.pre is p and j.kind == ProjectionKind.SET]
                      for p in values}

    def next_boundary(self, step: int) -> int | None:
        """The first step after ``step`` at which a host value population updates."""
        periods = self._periods
        if len(periods) == 1:
            return (step // periods[0] + 1) * periods[0]
        return min((step // period + 1) * period for period in periods) if periods else None

    def start(self, step: int) -> None:
        """Publish every value population's output as its state stands, held for the rest of its window.

        State set between runs (``Population.set``) is taken up here; a value already held in a
        spiking target's ring for this window stays as it was sent.
        """
        for population in self.all_populations:
            population.model.derive(population.state)
            self._publish(population)
            self._hold(population, step - step % population.period, step)
        for value in self.lowered.values:
            value.published_by_unit[...] = value.published.T

    def advanced(self, reached: int) -> None:
        """Note that the backend updated its value populations up to step ``reached``."""
        for population in self.in_backend:
            run = self._run.population(population.name)
            run.held_until = max(run.held_until, reached - reached % population.period + population.period)

    def written(self, step: int) -> tuple[set[int], set[int]]:
        """The populations (lowered indices) whose rings and whose state :meth:`update` at ``step`` writes:
        those the due host populations hold their outputs in (rings), and those they set the state of."""
        due = [p for p in self.populations if step % p.period == 0]
        return ({j.post.index for p in due for j in self._holds[p.name]},
                {j.post.index for p in due for j in self._sets[p.name]})

    def update(self, step: int) -> None:
        """Update every host value population whose window ends at ``step``, then publish and send."""
        due = [p for p in self.populations if step % p.period == 0]
        pulses = {population.name: self._advance(population, step) for population in due}
        for population in due:
            for monitor, rows, units in self._monitors[population.name]:
                if step % monitor.every_steps == 0:
                    sampled = np.array([step - 1])
                    for channel, row in rows:
                        monitor._append(channel, sampled, population.state[row, units][None])
        for population in due:
            self._publish(population)
            self._hold(population, step, step)
            self._set_states(population)
            if population.model.pulses:
                self._schedule_pulses(population, pulses[population.name], step)

    def _advance(self, population: Population, step: int) -> np.ndarray | None:
        model = population.model
        ports = self._ports[population.name]
        inputs = self._inputs[population.name]
        for array in inputs.values():
            array.fill(0.0)
        stats = self.network.stats
        for projection in self._incoming[population.name]:
            if projection.kind == ProjectionKind.COUNT:
                pending = self._run.projection(projection.name).pending
                window = (step // population.period - 1) % pending.shape[0]
                inputs[projection.receptor][0] += pending[window]
                pending[window] = 0.0
            else:
                published = self._output_before(projection.pre, step)
                for channel in range(ports[projection.receptor][1]):
                    inputs[projection.receptor][channel] += apply_map(self._maps[projection.name], published[channel])
                macs = stats.dense_macs_by_projection
                macs[projection.name] = macs.get(projection.name, 0) + len(projection) * model.channels
        emitted = model.advance(population.state, inputs, population.params, population.dt)
        updates = stats.neuron_updates_by_population
        updates[population.name] = updates.get(population.name, 0) + population.n
        if not np.isfinite(population.state).all():
            raise NumericalError(population.name, step, step * self.network.dt)
        return emitted

    def _output_before(self, population: Population, step: int) -> np.ndarray:
        """``population``'s output as published before step ``step`` (the backend may have updated it at ``step``)."""
        period = self._backend_periods.get(population.index)
        if period is not None and step % period == 0:
            return self._previous[population.index]
        return self.lowered.published[population.index]

    def _publish(self, population: Population) -> None:
        self.lowered.published[population.index][...] = population.state[self._output_rows[population.name]]

    def _hold(self, population: Population, window_start: int, step: int) -> None:
        """Add ``population``'s output to spiking targets' rings for the rest of its window, from ``step``."""
        run = self._run.population(population.name)
        for projection in self._holds[population.name]:
            first = max(step, run.held_until)
            if first < window_start + population.period:
                send(self.lowered, self._maps[projection.name], first, window_start + population.period)
                macs = self.network.stats.dense_macs_by_projection
                macs[projection.name] = macs.get(projection.name, 0) + len(projection)
        run.held_until = max(run.held_until, window_start + population.period)

    def _set_states(self, population: Population) -> None:
        """Write ``population``'s new output into the state variables its "set" projections target."""
        for projection in self._sets[population.name]:
            send(self.lowered, self._maps[projection.name], 0, 0)
            macs = self.network.stats.dense_macs_by_projection
            macs[projection.name] = macs.get(projection.name, 0) + len(projection)

    def _schedule_pulses(self, population: Population, pulses: np.ndarray | None, step: int) -> None:
        lowered = self.lowered.populations[population.index]
        fired = np.flatnonzero(pulses) if pulses is not None else np.zeros(0, dtype=np.int64)
        lowered.source_steps[:] = NO_PULSE
        lowered.source_steps[:len(fired)] = step
        lowered.source_ids[:len(fired)] = fired
        lowered.source_next[0] = 0


def _input_arrays(ports: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    """A host population's input arrays: each port's ``(channels, width)``."""
    return {port: np.zeros((channels, width)) for port, (width, channels) in ports.items()}


def _rows_index(rows: tuple[int, ...]) -> slice | list[int]:
    """State rows as an index: a slice (a view, no copy) when they are consecutive, else the list."""
    rows = list(rows)
    if rows and rows == list(range(rows[0], rows[0] + len(rows))):
        return slice(rows[0], rows[0] + len(rows))
    return rows


def _units_index(ids: np.ndarray, n: int) -> slice | np.ndarray:
    """A monitor's unit ids as an index: every unit in order is a slice (a view), else the ids."""
    return slice(None) if len(ids) == n and np.array_equal(ids, np.arange(n)) else ids
