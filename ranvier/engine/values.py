"""Value populations in a run: their updates, and the projections that carry values or counts.

Spiking populations advance inside the compiled core; value populations (architecture
principle 4) update here, on the host, once per window of their own ``dt``, with array code
shared by every backend, so a mixed network gives the same results on numpy, numba and cuda
(which copies the spiking state, rings and pulse schedules over at each update and back).

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

import numpy as np

from ..errors import NumericalError
from .connectivity import outgoing_synapses
from .lowering import NO_PULSE, LoweredNetwork
from .network import Network, Population, Projection

#: a value projection denser than this is applied as a dense matrix, sparser ones as CSR
_DENSE_ABOVE = 0.1
_DENSE_MAX_ENTRIES = 1 << 25


class _UniformAllToAll:
    """Every source to every target with one weight ``w``: ``W x = w sum_j x_j`` (minus ``w x_i``
    without autapses), in O(n) instead of a dense O(n^2) product."""

    def __init__(self, weight: float, width: int, autapses: bool):
        self.weight = weight
        self.width = width
        self.autapses = autapses

    def __matmul__(self, values: np.ndarray) -> np.ndarray:
        total = self.weight * values.sum(axis=0)
        summed = np.broadcast_to(total, (self.width, *values.shape[1:])).copy()
        if not self.autapses:
            summed -= self.weight * values
        return summed


def _matrix(projection: Projection, width: int):
    """The projection as a ``(width, n_pre)`` operator: uniform all-to-all, dense or scipy CSR."""
    n_pre = projection.pre.n
    if projection.weight_stride == 0 and len(projection) in (n_pre * width, n_pre * (width - 1)):
        autapses = len(projection) == n_pre * width
        targets = projection.post_ids
        expected = np.tile(np.arange(width), n_pre) if autapses else None
        if autapses and np.array_equal(targets, expected):
            return _UniformAllToAll(float(projection._weights[0]), width, True)
        if not autapses and n_pre == width and projection.pre is projection.post:
            sources = projection.pre_ids
            if not np.any(sources == targets):
                return _UniformAllToAll(float(projection._weights[0]), width, False)
    weights = np.asarray(projection.weights, dtype=np.float64)
    pre_ids, post_ids = projection.pre_ids, projection.post_ids
    entries = width * projection.pre.n
    if entries <= _DENSE_MAX_ENTRIES and len(weights) >= _DENSE_ABOVE * entries:
        matrix = np.zeros((width, projection.pre.n))
        np.add.at(matrix, (post_ids, pre_ids), weights)
        return matrix
    from scipy.sparse import csr_matrix

    return csr_matrix((weights, (post_ids, pre_ids)), shape=(width, projection.pre.n))


class ValueStage:
    """Updates the value populations of a lowered network and moves what they send and receive."""

    def __init__(self, network: Network, lowered: LoweredNetwork):
        self.network = network
        self.lowered = lowered
        self.populations = [p for p in network.populations.values() if p.model.kind == "value"]
        self.projections = [p for p in network.projections if p.kind != "spike"]
        self._matrices = {}
        for projection in self.projections:
            post = projection.post
            width = post.model.ports(post.n)[projection.receptor][0] if post.model.kind == "value" else post.n
            self._matrices[projection.name] = _matrix(projection, width)
            if projection.kind == "count" and projection._pending is None:
                windows = -(-projection.max_delay_steps // post.period) + 2
                projection._pending = np.zeros((windows, width), dtype=np.float64)

    @property
    def active(self) -> bool:
        return bool(self.populations)

    def next_boundary(self, step: int) -> int | None:
        """The first step after ``step`` at which a value population updates."""
        return min((step // p.period + 1) * p.period for p in self.populations) if self.populations else None

    def start(self, step: int) -> None:
        """Publish every value population's output as its state stands, held for the rest of its window.

        State set between runs (``Population.set``) is taken up here; a value already held in a
        spiking target's ring for this window stays as it was sent.
        """
        for population in self.populations:
            population.model.derive(population.state)
            population._published = self._output(population)
            self._hold(population, step - step % population.period, step)

    def count_spikes(self, population_index: int, steps: np.ndarray, ids: np.ndarray) -> None:
        """Add the spikes of a stretch to the windows of the count projections they reach."""
        for projection in self.projections:
            if projection.kind != "count" or projection.pre.index != population_index or not len(ids):
                continue
            synapses, lengths = outgoing_synapses(projection.row_ptr, ids)
            stats = self.network.stats.synaptic_events_by_projection
            stats[projection.name] = stats.get(projection.name, 0) + len(synapses)
            if not len(synapses):
                continue
            delays = projection.delay_steps[synapses] if isinstance(projection.delay_steps, np.ndarray) \
                else projection.delay_steps
            arrival = np.repeat(steps, lengths) + delays
            windows = (arrival // projection.post.period) % projection._pending.shape[0]
            weights = projection._weights[synapses * projection.weight_stride].astype(np.float64)
            np.add.at(projection._pending, (windows, projection._post_ids[synapses]), weights)

    def update(self, step: int) -> None:
        """Update every value population whose window ends at ``step``, then publish and send."""
        due = [p for p in self.populations if step % p.period == 0]
        pulses = {}
        for population in due:
            pulses[population.name] = self._advance(population, step)
        for monitor in self.network.state_monitors:
            if monitor.population in due and step % monitor.every_steps == 0:
                for channel, row in enumerate(monitor.rows):
                    monitor._append(channel, np.array([step - 1]), monitor.population.state[row, monitor.ids][None])
        for population in due:
            population._published = self._output(population)
            self._hold(population, step, step)
            self._set_states(population)
            if population.model.pulses:
                self._schedule_pulses(population, pulses[population.name], step)

    def _advance(self, population: Population, step: int) -> np.ndarray | None:
        model = population.model
        inputs = {port: np.zeros((channels, width)) for port, (width, channels) in model.ports(population.n).items()}
        stats = self.network.stats
        for projection in self.projections:
            if projection.post is not population:
                continue
            matrix = self._matrices[projection.name]
            if projection.kind == "count":
                window = (step // population.period - 1) % projection._pending.shape[0]
                inputs[projection.receptor][0] += projection._pending[window]
                projection._pending[window] = 0.0
            else:
                inputs[projection.receptor] += (matrix @ projection.pre._published.T).T
                macs = stats.dense_macs_by_projection
                macs[projection.name] = macs.get(projection.name, 0) + len(projection) * model.channels
        emitted = model.advance(population.state, inputs, population.params, population.dt)
        updates = stats.neuron_updates_by_population
        updates[population.name] = updates.get(population.name, 0) + population.n
        if not np.isfinite(population.state).all():
            raise NumericalError(population.name, step, step * self.network.dt)
        return emitted

    @staticmethod
    def _output(population: Population) -> np.ndarray:
        return population.state[list(population.model.output_rows)].astype(np.float64)

    def _hold(self, population: Population, window_start: int, step: int) -> None:
        """Add ``population``'s output to spiking targets' rings for the rest of its window, from ``step``."""
        for projection in self.projections:
            if projection.pre is not population or projection.kind != "value" or projection.post.model.kind == "value":
                continue
            drive = (self._matrices[projection.name] @ population._published[0]).astype(np.float32)
            macs = self.network.stats.dense_macs_by_projection
            macs[projection.name] = macs.get(projection.name, 0) + len(projection)
            ring = projection.post.ring
            for k in range(max(step, population._held_until), window_start + population.period):
                ring[k % ring.shape[0], projection.receptor_index] += drive
        population._held_until = max(population._held_until, window_start + population.period)

    def _set_states(self, population: Population) -> None:
        """Write ``population``'s new output into the state variables its "set" projections target."""
        for projection in self.projections:
            if projection.pre is not population or projection.kind != "set":
                continue
            values = self._matrices[projection.name] @ population._published[0]
            targets = np.unique(projection.post_ids)
            post = projection.post
            post.state[post.model.state_names.index(projection.receptor), targets] = values[targets]
            macs = self.network.stats.dense_macs_by_projection
            macs[projection.name] = macs.get(projection.name, 0) + len(projection)

    def _schedule_pulses(self, population: Population, pulses: np.ndarray | None, step: int) -> None:
        lowered = self.lowered.populations[population.index]
        fired = np.flatnonzero(pulses) if pulses is not None else np.zeros(0, dtype=np.int64)
        lowered.source_steps[:] = NO_PULSE
        lowered.source_steps[:len(fired)] = step
        lowered.source_ids[:len(fired)] = fired
        lowered.source_next[0] = 0
