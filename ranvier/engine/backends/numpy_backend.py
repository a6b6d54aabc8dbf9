"""The numpy reference backend: the lowered network stepped with vectorised array code.

It calls each model's step function with ``i = np.arange(n)`` and follows exactly the order of
operations of the compiled backends (population by population through a min-delay chunk, then
deliveries projection by projection, spike by spike), so they agree to the bit.
"""

from __future__ import annotations

import numpy as np

from ..connectivity import outgoing_synapses
from ..kinds import Kind
from ..lowering import LoweredNetwork, Status
from ..model import poisson_count, uniform01
from . import Runner
from .value_updates import deliver_counts, update_values

#: synapses an all-to-all delivery indexes at once (bounds its temporary memory)
_DELIVERY_BLOCK = 1 << 20

class NumpyRunner(Runner):
    """Advances a lowered network with numpy."""

    def __init__(self, lowered: LoweredNetwork):
        self.lowered = lowered
        self._indices = [np.arange(p.n) for p in lowered.populations]

    def advance(self, start: int, stop: int) -> int:
        lowered = self.lowered
        lowered.status[0] = Status.OK
        step = start
        while step < stop:
            length = min(lowered.chunk, stop - step)
            boundary = lowered.next_value_boundary(step)
            if boundary is not None:
                # a chunk ends where an elementwise value population updates
                length = min(length, boundary - step)
            if any(p.spike_count[0] + p.spike_bound * length > len(p.spike_ids) for p in lowered.populations):
                break
            first = [int(p.spike_count[0]) for p in lowered.populations]
            for index, population in enumerate(lowered.populations):
                for k in range(step, step + length):
                    if population.kind == Kind.SCHEDULED:
                        self._emit_scheduled(population, k)
                    elif (k + 1) % population.period == 0 and not self._update(index, population, k):
                        return k
                    self._sample(index, population, k)
            for j, projection in enumerate(lowered.projections):
                self._deliver(j, projection, first[projection.pre])
            deliver_counts(lowered, first)
            for plastic in lowered.plastic:
                self._learn(plastic, first)
            step += length
            if lowered.values and not update_values(lowered, step):
                return step
        return step

    def _update(self, index: int, population, k: int) -> bool:
        ring = population.ring
        slot = ring[k % ring.shape[0]]
        # a population with its own dt consumes the input of its whole window (as numba's gather_window)
        for back in range(population.period - 1, 0, -1):
            slot += ring[(k - back) % ring.shape[0]]
            ring[(k - back) % ring.shape[0]] = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            indices = self._indices[index]
            self._drive(population, slot, indices, k)
            columns = 0 if population.consts.shape[1] == 1 else indices
            counts = population.step_function(population.state, population.consts, tuple(slot), indices, columns, k,
                                              population.key)
        slot[...] = 0.0
        counts = np.broadcast_to(np.asarray(counts, dtype=np.int64), (population.n,))
        finite = not np.any(counts < 0) if population.checks_finite else np.isfinite(population.state).all()
        if not finite:
            self.lowered.status[:] = (Status.NOT_FINITE, index, k)
            return False
        fired = np.flatnonzero(counts)
        ids = np.repeat(fired, counts[fired]).astype(np.int32)
        if int(population.spike_count[0]) + len(ids) > len(population.spike_ids):
            # more spikes than the model's spike_bound sized the buffer for, as the compiled backends report it
            self.lowered.status[:] = (Status.SPIKE_OVERFLOW, index, k)
            return False
        self._append(population, ids, k)
        return True

    @staticmethod
    def _drive(population, slot: np.ndarray, indices: np.ndarray, k: int) -> None:
        """The population's Poisson drives: each neuron's count of step ``k`` times the weight, into its receptor.

        Drive by drive, where the count is not zero, as the compiled backends add them after
        the spikes that arrived (so every neuron's input is summed in the same order).
        """
        for m in range(len(population.drive_names)):
            expected, p_zero = population.drive_params[m]
            counts = np.asarray(poisson_count(uniform01(population.drive_keys[m], k, indices), expected, p_zero))
            drawn = np.flatnonzero(counts)
            if len(drawn):
                slot[population.drive_receptors[m], drawn] += (counts[drawn].astype(slot.dtype)
                                                               * population.drive_weights[m])
                population.drive_events[m] += int(counts.sum())

    @staticmethod
    def _append(population, ids: np.ndarray, k: int) -> None:
        count = int(population.spike_count[0])
        population.spike_ids[count:count + len(ids)] = ids
        population.spike_steps[count:count + len(ids)] = k
        population.spike_count[0] = count + len(ids)

    def _emit_scheduled(self, population, k: int) -> None:
        begin = int(population.source_next[0])
        end = int(np.searchsorted(population.source_steps, k, side="right"))
        self._append(population, population.source_ids[begin:end], k)
        population.source_next[0] = end

    def _sample(self, index: int, population, k: int) -> None:
        for monitor in self.lowered.state_monitors:
            if monitor.population == index and not monitor.at_updates and (k + 1) % monitor.every == 0:
                sample = int(monitor.count[0])
                monitor.values[sample] = population.state[monitor.row, monitor.ids]
                monitor.steps[sample] = k
                monitor.count[0] = sample + 1

    def _deliver(self, j: int, projection, first: int) -> None:
        pre = self.lowered.populations[projection.pre]
        post = self.lowered.populations[projection.post]
        ids = pre.spike_ids[first:pre.spike_count[0]]
        if not len(ids):
            return
        if projection.all_to_all:
            self._deliver_all_to_all(j, projection, ids, pre.spike_steps[first:pre.spike_count[0]], post.ring)
            return
        if projection.geometry is not None:
            self._deliver_convolution(j, projection, ids, pre.spike_steps[first:pre.spike_count[0]], post.ring)
            return
        synapses, lengths = outgoing_synapses(projection.row_ptr, ids)
        self.lowered.synaptic_events[j] += len(synapses)
        if not len(synapses):
            return
        spike_steps = np.repeat(pre.spike_steps[first:pre.spike_count[0]], lengths)
        delays = projection.delay_steps[synapses] if projection.per_synapse_delays else projection.delay_steps
        slots = (spike_steps + delays) % post.ring.shape[0]
        np.add.at(post.ring, (slots, projection.receptor, projection.post_ids[synapses]),
                  projection.weights[synapses * projection.weight_stride])

    def _deliver_all_to_all(self, j: int, projection, ids: np.ndarray, steps: np.ndarray, ring: np.ndarray) -> None:
        """Add the one weight of an all-to-all projection to targets ``0 .. width - 1`` of each spike.

        Spike by spike, targets in ascending order (source ``j`` skips target ``j`` without
        autapses: its targets are ``t + (t >= j)``), as numba's ``deliver_all_to_all``; spikes
        go in blocks of about ``_DELIVERY_BLOCK`` synapses, so no block holds all their indices.
        """
        degree = projection.width if projection.autapses else projection.width - 1
        self.lowered.synaptic_events[j] += len(ids) * degree
        if not degree:
            return
        targets = np.arange(degree)
        slots = (steps + projection.delay_steps) % ring.shape[0]
        block = max(1, _DELIVERY_BLOCK // degree)
        for start in range(0, len(ids), block):
            chosen = slice(start, start + block)
            posts = np.broadcast_to(targets, (len(ids[chosen]), degree))
            if not projection.autapses:
                posts = posts + (targets >= ids[chosen, None])
            np.add.at(ring, (slots[chosen, None], projection.receptor, posts), projection.weights[0])

    def _deliver_convolution(self, j: int, projection, ids: np.ndarray, steps: np.ndarray, ring: np.ndarray) -> None:
        """Add the kernel entries of each spike to its targets, as numba's ``deliver_convolution``.

        A spike of ``(c, y, x)`` reaches ``(o, u, v)`` for the output channels ``o`` of its group and
        the taps ``(i, j)`` with ``y + padding_y - i dilation_y = u stride_y`` (and for ``x``) inside
        the output map (``connectivity.Convolution``). Spikes go in order, in blocks of about
        ``_DELIVERY_BLOCK`` candidate targets; a spike's targets are distinct, so each ring entry
        receives its additions in the compiled backends' order.
        """
        (channels, height, width, out_channels, out_height, out_width, kernel_height, kernel_width, stride_y,
         stride_x, padding_y, padding_x, dilation_y, dilation_x, groups) = (int(g) for g in projection.geometry)
        self.lowered.synaptic_events[j] += int(np.sum(np.diff(projection.row_ptr)[ids]))
        in_group, out_group = channels // groups, out_channels // groups
        slots = (steps + projection.delay_steps) % ring.shape[0]
        block = max(1, _DELIVERY_BLOCK // (out_group * kernel_height * kernel_width))
        for start in range(0, len(ids), block):
            chosen = ids[start:start + block].astype(np.int64)
            channel, y, x = chosen // (height * width), (chosen // width) % height, chosen % width
            group = channel // in_group
            out_channel = (group * out_group)[:, None] + np.arange(out_group)  # (spikes, out_group)
            shifted_y = y[:, None] + padding_y - np.arange(kernel_height) * dilation_y  # (spikes, kernel_height)
            shifted_x = x[:, None] + padding_x - np.arange(kernel_width) * dilation_x
            u, v = shifted_y // stride_y, shifted_x // stride_x
            valid_y = (shifted_y >= 0) & (shifted_y % stride_y == 0) & (u < out_height)
            valid_x = (shifted_x >= 0) & (shifted_x % stride_x == 0) & (v < out_width)
            shape = (len(chosen), out_group, kernel_height, kernel_width)
            valid = np.broadcast_to(valid_y[:, None, :, None] & valid_x[:, None, None, :], shape)
            posts = (out_channel[:, :, None, None] * out_height + u[:, None, :, None]) * out_width + v[:, None, None, :]
            taps = (((out_channel * in_group + (channel - group * in_group)[:, None])[:, :, None, None] * kernel_height
                     + np.arange(kernel_height)[:, None]) * kernel_width + np.arange(kernel_width))
            np.add.at(ring, (np.broadcast_to(slots[start:start + block, None, None, None], shape)[valid],
                             projection.receptor, np.broadcast_to(posts, shape)[valid]),
                      projection.weights[np.broadcast_to(taps, shape)[valid]])


    def _learn(self, plastic, first: list[int]) -> None:
        """STDP over the chunk's spikes, event by event in the order of ``numba_kernels.apply_stdp``.

        Each event updates its synapses together (they are distinct), with the kernel's
        arithmetic in the kernel's order, so the weights agree to the bit.
        """
        pre = self.lowered.populations[plastic.pre]
        post = self.lowered.populations[plastic.post]
        projection = self.lowered.projections[plastic.projection]
        pre_steps = pre.spike_steps[first[plastic.pre]:pre.spike_count[0]]
        post_steps = post.spike_steps[first[plastic.post]:post.spike_count[0]]
        if not len(pre_steps) and not len(post_steps):
            return
        pre_ids = pre.spike_ids[first[plastic.pre]:pre.spike_count[0]]
        post_ids = post.spike_ids[first[plastic.post]:post.spike_count[0]]
        is_post = np.concatenate([np.zeros(len(pre_steps), dtype=np.int64), np.ones(len(post_steps), dtype=np.int64)])
        steps = np.concatenate([pre_steps, post_steps])
        ids = np.concatenate([pre_ids, post_ids])
        a_plus, a_minus, w_min, w_max, multiplicative = plastic.params
        stride = 1 if plastic.modulation.shape[1] > 1 else 0
        weights = projection.weights
        for event in np.lexsort((is_post, steps)):
            neuron, k = int(ids[event]), int(steps[event])
            if is_post[event]:
                entries = slice(plastic.col_ptr[neuron], plastic.col_ptr[neuron + 1])
                synapses = plastic.col_synapses[entries]
                x = _decayed(plastic.pre_trace, plastic.pre_seen, plastic.col_sources[entries], k, plastic.decay_plus)
                w = weights[synapses].astype(np.float64)
                scale = a_plus * plastic.modulation[0, neuron * stride]
                change = scale * (w_max - w) * x if multiplicative else scale * x
                weights[synapses] = np.minimum(np.maximum(w + change, w_min), w_max).astype(weights.dtype)
                plastic.post_trace[neuron] = _decayed(plastic.post_trace, plastic.post_seen, neuron, k,
                                                      plastic.decay_minus) + 1.0
                plastic.post_seen[neuron] = k
            else:
                synapses = slice(projection.row_ptr[neuron], projection.row_ptr[neuron + 1])
                targets = projection.post_ids[synapses]
                x = _decayed(plastic.post_trace, plastic.post_seen, targets, k, plastic.decay_minus)
                w = weights[synapses].astype(np.float64)
                scale = a_minus * plastic.modulation[1, targets * stride]
                change = scale * (w - w_min) * x if multiplicative else scale * x
                weights[synapses] = np.minimum(np.maximum(w - change, w_min), w_max).astype(weights.dtype)
                plastic.pre_trace[neuron] = _decayed(plastic.pre_trace, plastic.pre_seen, neuron, k,
                                                     plastic.decay_plus) + 1.0
                plastic.pre_seen[neuron] = k


def _decayed(trace: np.ndarray, seen: np.ndarray, neurons, k: int, table: np.ndarray):
    """Traces of ``neurons`` decayed from their last spikes to step ``k`` (0 past the table's end)."""
    elapsed = k - seen[neurons]
    inside = elapsed < len(table)
    return np.where(inside, trace[neurons] * table[np.where(inside, elapsed, 0)], 0.0)


def prepare(lowered: LoweredNetwork) -> NumpyRunner:
    return NumpyRunner(lowered)
