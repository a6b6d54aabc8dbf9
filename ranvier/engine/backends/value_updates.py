"""Elementwise value populations on the host, in numpy: the reference the compiled backends follow.

At every step ``k`` that ends a window of an elementwise value population (``k`` a multiple of
its period), after the spikes of the chunk ending at ``k`` were delivered:

1. every population due at ``k`` gathers its inputs, in the order its projections were declared:
   value maps applied to the outputs published before ``k``, and the counts pending for the
   window ``[k - period, k)``;
2. each then runs its model-language ``step`` for every unit (``i = np.arange(n)``) and its
   ``finish`` (or its array step once, :meth:`~ranvier.engine.model.ArrayStep.run`), checks
   that its state is finite, publishes its output rows, schedules its pulses
   as spikes of step ``k``, is sampled by its monitors (as the state after step ``k - 1``),
   holds its output in spiking targets' rings for the steps ``[k, k + period)``, writes the
   state variables it sets and the modulation of the plastic projections it modulates.

The numba backend generates the same sequence, operation for operation, so both agree to the
bit; the cuda backend runs this module on the host at its populations' windows.
"""

from __future__ import annotations

import numpy as np

from ..connectivity import outgoing_synapses
from ..lowering import NO_PULSE, Consumer, LoweredCount, LoweredNetwork, LoweredValueMap, Operator, Status
from ..model import row_sum


def apply_map(value_map: LoweredValueMap, x: np.ndarray) -> np.ndarray:
    """``y = W x`` for one channel ``x`` (float64), summed in the order every backend uses."""
    if value_map.operator is Operator.ALL_TO_ALL:
        total = value_map.weight * row_sum(x[None], 0)
        return np.full(value_map.scratch.shape[1], total) if value_map.autapses else total - value_map.weight * x
    y = np.zeros(value_map.scratch.shape[1])
    row_ptr = value_map.row_ptr
    lengths = np.diff(row_ptr)
    uniform = value_map.operator is Operator.UNIFORM_SPARSE
    # entry s of every row at once, s = 0, 1, ...: each row still adds its entries in order
    for entry in range(int(lengths.max(initial=0))):
        rows = np.flatnonzero(lengths > entry)
        at = row_ptr[rows] + entry
        y[rows] += x[value_map.columns[at]] if uniform else value_map.values[at] * x[value_map.columns[at]]
    return value_map.weight * y if uniform else y


def deliver_counts(lowered: LoweredNetwork, first: list[int]) -> None:
    """Add the spikes since ``first`` to the pending windows of the count projections they reach."""
    for j, count in enumerate(lowered.counts):
        pre = lowered.populations[count.pre]
        ids = pre.spike_ids[first[count.pre]:pre.spike_count[0]]
        lowered.count_events[j] += count_into(count, ids, pre.spike_steps[first[count.pre]:pre.spike_count[0]])


def count_into(count: LoweredCount, ids: np.ndarray, steps: np.ndarray) -> int:
    """Add spikes of sources ``ids`` sent in ``steps`` to ``count``'s pending windows; the synaptic events."""
    if not len(ids):
        return 0
    width = count.pending.shape[1]
    if count.all_to_all:
        targets = np.tile(np.arange(width), len(ids))
        sent = np.repeat(steps, width)
        if not count.autapses:
            keep = targets != np.repeat(ids, width)
            targets, sent = targets[keep], sent[keep]
        arrival = sent + int(count.delay_steps[0])
        weights = np.full(len(targets), np.float64(count.weights[0]))
    else:
        synapses, lengths = outgoing_synapses(count.row_ptr, ids)
        targets = count.post_ids[synapses]
        delays = count.delay_steps[synapses] if count.per_synapse_delays else int(count.delay_steps[0])
        arrival = np.repeat(steps, lengths) + delays
        weights = count.weights[synapses * count.weight_stride].astype(np.float64)
    windows = (arrival // count.period) % count.pending.shape[0]
    np.add.at(count.pending, (windows, targets), weights)
    return len(targets)


def update_values(lowered: LoweredNetwork, k: int) -> bool:
    """Update the elementwise value populations due at step ``k``; False when a state stopped being finite."""
    due = [v for v in lowered.values if k % v.period == 0]
    for value in due:
        value.inputs[...] = 0.0
        for kind, index in value.sources:
            if kind == "count":
                count = lowered.counts[index]
                window = (k // count.period - 1) % count.pending.shape[0]
                value.inputs[count.row] += count.pending[window]
                count.pending[window] = 0.0
            else:
                value_map = lowered.value_maps[index]
                published = _published(lowered, value_map.pre)
                for channel in range(value_map.channels):
                    value.inputs[value_map.destination + channel] += apply_map(value_map, published[channel])
    for value in due:
        with np.errstate(over="ignore", invalid="ignore"):
            if value.array_step is not None:
                value.array_step.run(value.state, value.inputs)
                pulses = None
            else:
                units = np.arange(value.n)
                columns = 0 if value.consts.shape[1] == 1 else units
                pulses = value.step_function(value.state, value.consts, value.inputs, units, columns, k, value.key)
                if value.finish_function is not None:
                    value.finish_function(value.state, value.consts)
        if not np.isfinite(value.state).all():
            lowered.status[:] = (Status.NOT_FINITE, value.population, k)
            return False
        if value.previous is not None:
            value.previous[...] = value.published
        value.published[...] = value.state[value.output_rows]
        value.published_by_unit[...] = value.published.T
        if value.pulses:
            _schedule_pulses(lowered, value.population, np.broadcast_to(pulses, (value.n,)), k)
        for monitor in lowered.state_monitors:
            if monitor.population == value.population and k % monitor.every == 0:
                sample = int(monitor.count[0])
                monitor.values[sample] = value.state[monitor.row, monitor.ids]
                monitor.steps[sample] = k - 1
                monitor.count[0] = sample + 1
        for index in value.feeds:
            send(lowered, lowered.value_maps[index], k, k + value.period)
        for plastic_index, row in value.modulates:
            lowered.plastic[plastic_index].modulation[row] = value.published[0]
    return True


def send(lowered: LoweredNetwork, value_map: LoweredValueMap, start: int, stop: int) -> None:
    """Apply a hold or set map of the source's published output (a hold: into the steps ``start .. stop - 1``)."""
    y = apply_map(value_map, _published(lowered, value_map.pre)[0])
    post = lowered.populations[value_map.post]
    if value_map.consumer is Consumer.SET:
        post.state[value_map.destination, value_map.targets] = y[value_map.targets]
        return
    ring = post.ring
    drive = y.astype(ring.dtype)
    for step in range(start, stop):
        ring[step % ring.shape[0], value_map.destination] += drive


def _published(lowered: LoweredNetwork, population: int) -> np.ndarray:
    return lowered.published[population]


def _schedule_pulses(lowered: LoweredNetwork, population: int, pulses: np.ndarray, k: int) -> None:
    source = lowered.populations[population]
    fired = np.flatnonzero(pulses)
    source.source_steps[:] = NO_PULSE
    source.source_steps[:len(fired)] = k
    source.source_ids[:len(fired)] = fired
    source.source_next[0] = 0
