"""The CUDA backend (numba.cuda): the same model step functions as device functions.

Each model's ``step`` is compiled with ``cuda.jit(device=True)`` and called by one thread per
neuron. A step of a population is three small kernels after the update: spike counts per
range of neurons, their prefix sum, and the spike writes, so the spike list comes out in
neuron order exactly as on the CPU. Deliveries launch one block per spike of the chunk, its threads
striding over the spike's synapses (for an implicit all-to-all projection its targets, for a
convolution its output channels and kernel taps) with atomic adds into the target's delay ring buffer.

Determinism: the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) runs blocks one after another,
so spikes are delivered in the reference order and results equal the numpy backend's. On a
GPU, blocks run concurrently: inputs reaching one neuron in the same step are summed in a
varying order, which can change the rounding and, in chaotic networks, spike times.

State and ring buffers (and a plastic projection's weights and traces) stay on the device for
the whole run: they come to the host at the end of a run, around callbacks (which may read or
change them) and around the updates of value populations that update on the host (CfC, LTC,
ELM, ``Rate``). Elementwise value populations (Kuramoto, AKOrN, Astrocyte) update on the
device at the end of the chunks their windows end, in the numpy reference's order: their step
on a thread per unit, sparse value maps on a thread per row, and the CPU backends' loops for
sums, counts, holds and pulses on one thread each (so their additions keep the reference's
order). Learning (STDP) runs a thread per synapse whose source or target spiked in the chunk,
each replaying its own pre and post spikes in the CPU backends' order, which gives the numpy
backend's weights and traces exactly (see ``_learn_synapse``). Each stretch copies back only
what the host collects: the new spikes, synaptic-event counts and monitor samples.
"""

from __future__ import annotations

import math
import types
import warnings

import numpy as np
from numba import config, cuda

from ..kinds import Kind
from ..lowering import Consumer, LoweredNetwork, Operator, Status
from ..model import NOT_FINITE, poisson_count, register_target, uniform01
from . import Runner, numba_kernels

if config.ENABLE_CUDASIM:
    # The simulator runs step functions as Python on numpy scalars, where the counter-based
    # random numbers' intended 64-bit wrap-around raises overflow warnings.
    warnings.filterwarnings("ignore", "overflow encountered in scalar", RuntimeWarning, r"ranvier\.engine\.model")
else:
    register_target("cuda")

# Kernels loop over their work with a grid stride, so any launch size computes the same thing.
# The simulator runs every CUDA thread as a Python thread, so it gets few of them.
_SIMULATED = bool(config.ENABLE_CUDASIM)
_THREADS = 8 if _SIMULATED else 128
_MAX_BLOCKS = 1 if _SIMULATED else 1 << 16
_DELIVERY_THREADS = 4 if _SIMULATED else 64
#: the codes kernels record in the runner's ``status`` (see ``Status``); ints, so kernels read them as constants
_NOT_FINITE = int(Status.NOT_FINITE)
_SPIKE_OVERFLOW = int(Status.SPIKE_OVERFLOW)
#: neurons whose spikes one thread collects: the spike list is built by a prefix sum over
#: ranges, deterministic and free of shared memory and barriers
_RANGE = 64

_DEVICE_FUNCTIONS: dict[object, object] = {}
_UPDATE_KERNELS: dict[object, object] = {}


def _update_kernel(step_function, checks_finite: bool):
    """The kernel that advances every neuron of a population by one step with ``step_function``.

    For a model that does not report a state that stops being finite (``checks_finite`` false)
    each thread tests its neuron's column of the state after the step and flags ``NOT_FINITE``:
    a step writes only its own neuron's column, so the threads together test the whole state,
    as the CPU backends do after every step, at no extra launch.
    """
    if (step_function, checks_finite) not in _UPDATE_KERNELS:
        step = _DEVICE_FUNCTIONS.setdefault(step_function, cuda.jit(device=True)(step_function))

        @cuda.jit
        def update(state, consts, arriving, k, key, shared, flags):
            for i in range(cuda.grid(1), state.shape[1], cuda.gridsize(1)):
                count = step(state, consts, arriving, i, 0 if shared else i, k, key)
                if not checks_finite:
                    for row in range(state.shape[0]):
                        if not math.isfinite(state[row, i]):
                            count = NOT_FINITE
                flags[i] = count
                for r in range(len(arriving)):
                    arriving[r][i] = 0.0

        _UPDATE_KERNELS[step_function, checks_finite] = update
    return _UPDATE_KERNELS[step_function, checks_finite]


@cuda.jit
def _drive(ring, k, receptors, params, weights, keys, events):
    """The population's Poisson drives of step ``k``, a thread per neuron (as the numpy backend's ``_drive``).

    Drive by drive, each thread adds its neurons' counts times the weight to their receptor's
    input (no other thread writes them) and its share of the counts, an integer sum, to ``events``.
    """
    slot = k % ring.shape[0]
    for m in range(receptors.shape[0]):
        total = 0
        for i in range(cuda.grid(1), ring.shape[2], cuda.gridsize(1)):
            count = poisson_count(uniform01(keys[m], k, i), params[m, 0], params[m, 1])
            if count != 0:
                ring[slot, receptors[m], i] += ring.dtype.type(count) * weights[m]
                total += count
        if total != 0:
            cuda.atomic.add(events, m, total)


@cuda.jit
def _range_totals(flags, totals, status, population, k):
    """Thread t counts the spikes of neurons ``t * _RANGE .. (t + 1) * _RANGE - 1``.

    A negative count (a state that is not finite) records ``(NOT_FINITE, population, k)`` in
    ``status`` unless an earlier kernel already recorded a failure: kernels run in launch order,
    so the first failure in the reference order is kept.
    """
    for t in range(cuda.grid(1), totals.shape[0], cuda.gridsize(1)):
        total = 0
        for i in range(t * _RANGE, min((t + 1) * _RANGE, flags.shape[0])):
            if flags[i] < 0:
                if status[0] == 0:
                    status[1] = population
                    status[2] = k
                    status[0] = _NOT_FINITE
            else:
                total += flags[i]
        totals[t] = total


@cuda.jit
def _range_offsets(totals, spike_count, offsets, overflow, capacity, status, population, k):
    """Exclusive prefix sum of the range totals, starting at the buffer's fill; one thread.

    Spikes past the buffer's ``capacity`` set ``overflow`` (which stops every later spike
    write) and record ``(SPIKE_OVERFLOW, population, k)`` in ``status`` unless a failure came first.
    """
    if cuda.grid(1) == 0:
        position = spike_count[0]
        for t in range(totals.shape[0]):
            offsets[t] = position
            position += totals[t]
        if position > capacity:
            overflow[0] = 1
            if status[0] == 0:
                status[1] = population
                status[2] = k
                status[0] = _SPIKE_OVERFLOW
        else:
            spike_count[0] = position


@cuda.jit
def _write_spikes(flags, offsets, k, spike_ids, spike_steps, overflow):
    """Thread t writes the spikes of its range of neurons, in neuron order, from its offset."""
    for t in range(cuda.grid(1), offsets.shape[0] if overflow[0] == 0 else 0, cuda.gridsize(1)):
        position = offsets[t]
        for i in range(t * _RANGE, min((t + 1) * _RANGE, flags.shape[0])):
            for _ in range(flags[i]):
                spike_ids[position] = i
                spike_steps[position] = k
                position += 1


_emit_scheduled_device = cuda.jit(device=True)(numba_kernels.emit_scheduled.py_func)


@cuda.jit
def _emit_scheduled(source_steps, source_ids, source_next, k, spike_ids, spike_steps, spike_count):
    """The CPU backend's ``emit_scheduled`` on one GPU thread."""
    if cuda.grid(1) == 0:
        spike_count[0] = _emit_scheduled_device(source_steps, source_ids, source_next, k, spike_ids, spike_steps,
                                                spike_count[0])


@cuda.jit
def _deliver(spike_ids, spike_steps, first, row_ptr, post_ids, weights, weight_stride, delays, delay_stride, ring,
             receptor, events, projection):
    """Block b delivers spike ``first + b`` through all its synapses."""
    s = first + cuda.blockIdx.x
    neuron = spike_ids[s]
    begin = row_ptr[neuron]
    end = row_ptr[neuron + 1]
    if cuda.threadIdx.x == 0:
        cuda.atomic.add(events, projection, end - begin)
    slots = ring.shape[0]
    sent = spike_steps[s]
    for synapse in range(begin + cuda.threadIdx.x, end, cuda.blockDim.x):
        slot = (sent + delays[synapse * delay_stride]) % slots
        cuda.atomic.add(ring, (slot, receptor, post_ids[synapse]), weights[synapse * weight_stride])


@cuda.jit
def _deliver_all_to_all(spike_ids, spike_steps, first, width, autapses, weights, delays, ring, receptor, events,
                        projection):
    """Block b adds the one weight of an all-to-all projection to every target of spike ``first + b``
    (``0 .. width - 1``; without ``autapses`` a spike of neuron j skips target j)."""
    s = first + cuda.blockIdx.x
    neuron = spike_ids[s]
    if cuda.threadIdx.x == 0:
        cuda.atomic.add(events, projection, width if autapses else width - 1)
    slot = (spike_steps[s] + delays[0]) % ring.shape[0]
    for target in range(cuda.threadIdx.x, width, cuda.blockDim.x):
        if autapses or target != neuron:
            cuda.atomic.add(ring, (slot, receptor, target), weights[0])


@cuda.jit
def _deliver_convolution(spike_ids, spike_steps, first, row_ptr, geometry, kernel, delays, ring, receptor, events,
                         projection):
    """Block b adds the kernel entries of spike ``first + b`` to its targets, its threads striding over
    (output channel of the group, tap) pairs (the geometry as in ``numba_kernels.deliver_convolution``)."""
    s = first + cuda.blockIdx.x
    neuron = spike_ids[s]
    if cuda.threadIdx.x == 0:
        cuda.atomic.add(events, projection, row_ptr[neuron + 1] - row_ptr[neuron])
    height, width = geometry[1], geometry[2]
    out_height, out_width = geometry[4], geometry[5]
    kernel_height, kernel_width = geometry[6], geometry[7]
    in_group = geometry[0] // geometry[14]
    out_group = geometry[3] // geometry[14]
    slot = (spike_steps[s] + delays[0]) % ring.shape[0]
    channel = neuron // (height * width)
    y = (neuron // width) % height
    x = neuron % width
    group = channel // in_group
    taps = kernel_height * kernel_width
    for pair in range(cuda.threadIdx.x, out_group * taps, cuda.blockDim.x):
        out_channel = group * out_group + pair // taps
        i = (pair % taps) // kernel_width
        j = pair % kernel_width
        shifted_y = y + geometry[10] - i * geometry[12]
        shifted_x = x + geometry[11] - j * geometry[13]
        u = shifted_y // geometry[8]
        v = shifted_x // geometry[9]
        if (shifted_y >= 0 and shifted_x >= 0 and shifted_y - u * geometry[8] == 0
                and shifted_x - v * geometry[9] == 0 and u < out_height and v < out_width):
            entry = ((out_channel * in_group + channel - group * in_group) * kernel_height + i) * kernel_width + j
            cuda.atomic.add(ring, (slot, receptor, (out_channel * out_height + u) * out_width + v), kernel[entry])


def _device_version(kernel, helpers: tuple[str, ...]):
    """A CPU backend's loop compiled as a device function, its calls to ``helpers`` (functions of
    :mod:`.numba_kernels`) resolved to device versions of them: one definition for both targets."""
    source = kernel.py_func
    device_helpers = {name: cuda.jit(device=True)(getattr(numba_kernels, name).py_func) for name in helpers}
    function = types.FunctionType(source.__code__, {**source.__globals__, **device_helpers}, source.__name__)
    return cuda.jit(device=True)(function)


# Elementwise value populations, in ``value_updates``' order: the CPU backends' loops each on
# one GPU thread where their order of additions is the reference's, the units' steps and the
# sparse products on a thread per unit or row.
_deliver_count_device = _device_version(numba_kernels.deliver_count, ())
_add_all_to_all_device = _device_version(numba_kernels.add_all_to_all, ())
_take_pending_device = _device_version(numba_kernels.take_pending, ())
_publish_device = _device_version(numba_kernels.publish, ("_copy",))
_schedule_pulses_device = _device_version(numba_kernels.schedule_pulses, ())
_hold_values_device = _device_version(numba_kernels.hold_values, ())
_set_state_row_device = _device_version(numba_kernels.set_state_row, ())
_set_modulation_device = _device_version(numba_kernels.set_modulation, ())
_VALUE_STEP_KERNELS: dict[object, object] = {}
_FINISH_KERNELS: dict[object, object] = {}


@cuda.jit
def _deliver_count(spike_ids, spike_steps, first, last, row_ptr, post_ids, weights, weight_stride, delay_steps,
                   per_synapse_delays, all_to_all, autapses, pending, period, events, index):
    if cuda.grid(1) == 0:
        events[index] += _deliver_count_device(spike_ids, spike_steps, first, last, row_ptr, post_ids, weights,
                                               weight_stride, delay_steps, per_synapse_delays, all_to_all, autapses,
                                               pending, period)


@cuda.jit
def _clear_rows(rows):
    for entry in range(cuda.grid(1), rows.shape[0] * rows.shape[1], cuda.gridsize(1)):
        rows[entry // rows.shape[1], entry % rows.shape[1]] = 0.0


@cuda.jit
def _add_all_to_all(rows, first_row, published, channels, weight, autapses):
    if cuda.grid(1) == 0:
        _add_all_to_all_device(rows, first_row, published, channels, weight, autapses)


@cuda.jit
def _add_sparse(rows, first_row, published, channels, row_ptr, columns, values, weight, uniform):
    """``rows[first_row + c, i] += sum_e w_e x_c[j_e]`` (``w sum_e x_c[j_e]`` when ``uniform``), a thread per row."""
    for i in range(cuda.grid(1), row_ptr.shape[0] - 1, cuda.gridsize(1)):
        for c in range(channels):
            total = 0.0
            for entry in range(row_ptr[i], row_ptr[i + 1]):
                if uniform:
                    total += published[c, columns[entry]]
                else:
                    total += values[entry] * published[c, columns[entry]]
            if uniform:
                rows[first_row + c, i] += weight * total
            else:
                rows[first_row + c, i] += total


@cuda.jit
def _take_pending(rows, row, pending, window):
    if cuda.grid(1) == 0:
        _take_pending_device(rows, row, pending, window)


@cuda.jit
def _check_finite(state, status, population, k):
    for entry in range(cuda.grid(1), state.shape[0] * state.shape[1], cuda.gridsize(1)):
        if not math.isfinite(state[entry // state.shape[1], entry % state.shape[1]]) and status[0] == 0:
            status[1] = population
            status[2] = k
            status[0] = _NOT_FINITE


@cuda.jit
def _publish(state, published, output_rows, previous, keep_previous):
    if cuda.grid(1) == 0:
        _publish_device(state, published, published, output_rows, previous, keep_previous, False)


@cuda.jit
def _schedule_pulses(flags, n, k, source_steps, source_ids, source_next):
    if cuda.grid(1) == 0:
        _schedule_pulses_device(flags, n, k, source_steps, source_ids, source_next)


@cuda.jit
def _hold_values(ring, receptor, scratch, start, stop):
    if cuda.grid(1) == 0:
        _hold_values_device(ring, receptor, scratch, start, stop)


@cuda.jit
def _set_state_row(state, row, targets, scratch):
    if cuda.grid(1) == 0:
        _set_state_row_device(state, row, targets, scratch)


@cuda.jit
def _set_modulation(modulation, row, published):
    if cuda.grid(1) == 0:
        _set_modulation_device(modulation, row, published)


def _value_step_kernel(step_function):
    """The kernel that updates every unit of an elementwise value population with its ``step``."""
    if step_function not in _VALUE_STEP_KERNELS:
        step = _DEVICE_FUNCTIONS.setdefault(step_function, cuda.jit(device=True)(step_function))

        @cuda.jit
        def update(state, consts, inputs, k, key, shared, flags, pulses):
            for i in range(cuda.grid(1), state.shape[1], cuda.gridsize(1)):
                if step(state, consts, inputs, i, 0 if shared else i, k, key) != 0 and pulses:
                    flags[i] = 1

        _VALUE_STEP_KERNELS[step_function] = update
    return _VALUE_STEP_KERNELS[step_function]


def _finish_kernel(finish_function):
    """One thread running an elementwise value population's ``finish`` (its sums keep the reference's order)."""
    if finish_function not in _FINISH_KERNELS:
        finish = _DEVICE_FUNCTIONS.setdefault(finish_function, cuda.jit(device=True)(finish_function))

        @cuda.jit
        def run(state, consts):
            if cuda.grid(1) == 0:
                finish(state, consts)

        _FINISH_KERNELS[finish_function] = run
    return _FINISH_KERNELS[finish_function]


# Learning (STDP) in parallel. The CPU backends' ``apply_stdp`` takes a chunk's spikes in time
# order, pre before post within a step. The weight of synapse p -> q changes only at the spikes
# of p (depression by q's trace) and of q (potentiation by p's trace), and p's trace changes
# only at p's spikes, q's only at q's: so the synapse sees, step by step, p's spikes and then
# q's, whatever the other neurons do. A thread per synapse replays exactly that sequence, with
# its own copies of the two traces, and computes what the serial loop computes, to the bit.
# Three launches per plastic projection and chunk: count each neuron's spikes per step of the
# chunk (and elect, for each neuron that spiked, its first spike of the chunk as owner); learn,
# a block per owner, over the synapses of its row (pre) or of its column whose source did not
# spike (post); then advance the owners' traces and clear the counts.

_decayed_device = cuda.jit(device=True)(numba_kernels._decayed.py_func)
_bounded_device = cuda.jit(device=True)(numba_kernels._bounded.py_func)
#: the owner of a neuron that did not spike in the chunk
_NO_OWNER = np.iinfo(np.int64).max


@cuda.jit
def _count_chunk_spikes(pre_ids, pre_steps, pre_first, pre_last, post_ids, post_steps, post_first, post_last, start,
                        pre_counts, post_counts, pre_owner, post_owner):
    """``counts[k - start, i]``: neuron i's spikes in step k of the chunk; ``owner[i]``: its first spike's index."""
    pre_spikes = pre_last - pre_first
    for entry in range(cuda.grid(1), pre_spikes + post_last - post_first, cuda.gridsize(1)):
        if entry < pre_spikes:
            s = pre_first + entry
            cuda.atomic.add(pre_counts, (pre_steps[s] - start, pre_ids[s]), 1)
            cuda.atomic.min(pre_owner, pre_ids[s], s)
        else:
            s = post_first + entry - pre_spikes
            cuda.atomic.add(post_counts, (post_steps[s] - start, post_ids[s]), 1)
            cuda.atomic.min(post_owner, post_ids[s], s)


@cuda.jit(device=True)
def _learn_synapse(s, p, q, start, length, pre_counts, post_counts, weights, pre_trace, pre_seen, post_trace,
                   post_seen, decay_plus, decay_minus, params, modulation):
    """Synapse s (p -> q) through the chunk's steps ``start .. start + length - 1``, as ``apply_stdp``.

    In each step: every spike of p sets ``w -= a_minus m_minus x_post`` (times ``w - w_min`` when
    multiplicative) and then ``x_pre = x_pre decay + 1``; every spike of q sets
    ``w += a_plus m_plus x_pre`` (times ``w_max - w``) and then ``x_post = x_post decay + 1``;
    ``w`` in float64, stored in the weights' precision after each spike and clipped to
    ``[w_min, w_max]``. The traces are this thread's copies: the owners advance the real ones after.
    """
    a_plus = params[0]
    a_minus = params[1]
    w_min = params[2]
    w_max = params[3]
    multiplicative = params[4] != 0.0
    stride = 1 if modulation.shape[1] > 1 else 0
    depression = a_minus * modulation[1, q * stride]
    potentiation = a_plus * modulation[0, q * stride]
    x_pre = pre_trace[p]
    pre_step = pre_seen[p]
    x_post = post_trace[q]
    post_step = post_seen[q]
    for t in range(length):
        k = start + t
        for _ in range(pre_counts[t, p]):
            x = _decayed_device(x_post, post_step, k, decay_minus)
            w = np.float64(weights[s])
            change = depression * (w - w_min) * x if multiplicative else depression * x
            weights[s] = _bounded_device(w - change, w_min, w_max)
            x_pre = _decayed_device(x_pre, pre_step, k, decay_plus) + 1.0
            pre_step = k
        for _ in range(post_counts[t, q]):
            x = _decayed_device(x_pre, pre_step, k, decay_plus)
            w = np.float64(weights[s])
            change = potentiation * (w_max - w) * x if multiplicative else potentiation * x
            weights[s] = _bounded_device(w + change, w_min, w_max)
            x_post = _decayed_device(x_post, post_step, k, decay_minus) + 1.0
            post_step = k


@cuda.jit
def _learn(pre_ids, pre_first, pre_last, post_ids, post_first, start, length, pre_counts, post_counts, pre_owner,
           post_owner, row_ptr, targets, weights, col_ptr, col_synapses, col_sources, pre_trace, pre_seen, post_trace,
           post_seen, decay_plus, decay_minus, params, modulation):
    """Block b takes the chunk's spike b (pre spikes, then post spikes) if it owns its neuron.

    A pre owner p: its threads learn every synapse of p's row. A post owner q: every synapse
    into q whose source did not spike in the chunk (the others belong to their source's row),
    so each synapse that learns has exactly one thread.
    """
    b = cuda.blockIdx.x
    pre_spikes = pre_last - pre_first
    if b < pre_spikes:
        p = pre_ids[pre_first + b]
        if pre_owner[p] != pre_first + b:
            return
        for s in range(row_ptr[p] + cuda.threadIdx.x, row_ptr[p + 1], cuda.blockDim.x):
            _learn_synapse(s, p, targets[s], start, length, pre_counts, post_counts, weights, pre_trace, pre_seen,
                           post_trace, post_seen, decay_plus, decay_minus, params, modulation)
    else:
        spike = post_first + b - pre_spikes
        q = post_ids[spike]
        if post_owner[q] != spike:
            return
        for entry in range(col_ptr[q] + cuda.threadIdx.x, col_ptr[q + 1], cuda.blockDim.x):
            p = col_sources[entry]
            if pre_owner[p] == _NO_OWNER:
                _learn_synapse(col_synapses[entry], p, q, start, length, pre_counts, post_counts, weights,
                               pre_trace, pre_seen, post_trace, post_seen, decay_plus, decay_minus, params,
                               modulation)


@cuda.jit(device=True)
def _advance_trace(trace, seen, neuron, counts, start, length, table):
    """``x = x decay + 1`` at each of the neuron's spikes of the chunk (as ``apply_stdp``); clears its counts."""
    for t in range(length):
        for _ in range(counts[t, neuron]):
            trace[neuron] = _decayed_device(trace[neuron], seen[neuron], start + t, table) + 1.0
            seen[neuron] = start + t
        counts[t, neuron] = 0


@cuda.jit
def _advance_traces(pre_ids, pre_first, pre_last, post_ids, post_first, post_last, start, length, pre_counts,
                    post_counts, pre_owner, post_owner, pre_trace, pre_seen, post_trace, post_seen, decay_plus,
                    decay_minus):
    """Each owner (a thread per spike of the chunk) advances its neuron's trace and gives up ownership."""
    pre_spikes = pre_last - pre_first
    for entry in range(cuda.grid(1), pre_spikes + post_last - post_first, cuda.gridsize(1)):
        if entry < pre_spikes:
            s = pre_first + entry
            p = pre_ids[s]
            if pre_owner[p] == s:  # another spike of p reads the owner, or _NO_OWNER: never its own index
                _advance_trace(pre_trace, pre_seen, p, pre_counts, start, length, decay_plus)
                pre_owner[p] = _NO_OWNER
        else:
            s = post_first + entry - pre_spikes
            q = post_ids[s]
            if post_owner[q] == s:
                _advance_trace(post_trace, post_seen, q, post_counts, start, length, decay_minus)
                post_owner[q] = _NO_OWNER


@cuda.jit
def _gather_window(ring, k, period):
    """The CPU backends' ``gather_window``: add the input of steps ``k - period + 1 .. k - 1`` into
    step ``k``'s slot, in that order, and clear them; a thread per (receptor, neuron) entry."""
    slots, receptors, n = ring.shape
    for entry in range(cuda.grid(1), receptors * n, cuda.gridsize(1)):
        receptor = entry // n
        i = entry - receptor * n
        total = ring[k % slots, receptor, i]
        for back in range(period - 1, 0, -1):
            total += ring[(k - back) % slots, receptor, i]
            ring[(k - back) % slots, receptor, i] = 0.0
        ring[k % slots, receptor, i] = total


@cuda.jit
def _sample(state, row, ids, values, sample):
    for column in range(cuda.grid(1), ids.shape[0], cuda.gridsize(1)):
        values[sample, column] = state[row, ids[column]]


class _DevicePopulation:
    def __init__(self, population):
        self.host = population
        self.state = cuda.to_device(population.state)
        self.consts = cuda.to_device(population.consts)
        self.ring = cuda.to_device(population.ring)
        # zeroed: a value population's step flags only its pulses
        self.flags = cuda.to_device(np.zeros(population.n, dtype=np.int32))
        self.spike_ids = cuda.to_device(population.spike_ids)
        self.spike_steps = cuda.to_device(population.spike_steps)
        self.spike_count = cuda.to_device(population.spike_count)
        self.source_steps = cuda.to_device(population.source_steps)
        self.source_ids = cuda.to_device(population.source_ids)
        self.source_next = cuda.to_device(population.source_next)
        self.blocks = min(_MAX_BLOCKS, max(1, math.ceil(population.n / _THREADS)))
        self.ranges = max(1, math.ceil(population.n / _RANGE))
        self.range_blocks = min(_MAX_BLOCKS, max(1, math.ceil(self.ranges / _THREADS)))
        self.totals = cuda.device_array(self.ranges, dtype=np.int64)
        self.offsets = cuda.device_array(self.ranges, dtype=np.int64)
        self.shared = population.consts.shape[1] == 1
        self.update = (_update_kernel(population.step_function, population.checks_finite)
                       if population.kind == Kind.SPIKING else None)
        self.drives = len(population.drive_names)
        if self.drives:
            for name in ("drive_receptors", "drive_params", "drive_weights", "drive_keys", "drive_events"):
                setattr(self, name, cuda.to_device(getattr(population, name)))


class _DeviceProjection:
    def __init__(self, projection):
        self.host = projection
        # an implicit all-to-all projection has no synapse arrays to copy
        self.row_ptr = None if projection.all_to_all else cuda.to_device(projection.row_ptr)
        self.post_ids = None if projection.post_ids is None else cuda.to_device(projection.post_ids)
        self.geometry = None if projection.geometry is None else cuda.to_device(projection.geometry)
        self.weights = cuda.to_device(projection.weights)
        delays = projection.delay_steps
        self.delays = cuda.to_device(delays if isinstance(delays, np.ndarray) else np.array([delays], np.uint16))
        self.delay_stride = 1 if isinstance(delays, np.ndarray) else 0


class _DevicePlasticity:
    #: the arrays of ``LoweredPlasticity`` that learning changes: copied back with the state
    LEARNED = ("pre_trace", "pre_seen", "post_trace", "post_seen")

    def __init__(self, plastic, projection: _DeviceProjection, chunk: int, n_pre: int, n_post: int):
        self.host = plastic
        self.projection = projection
        for name in ("col_ptr", "col_synapses", "col_sources", "decay_plus", "decay_minus", "params", "modulation",
                     *self.LEARNED):
            setattr(self, name, cuda.to_device(getattr(plastic, name)))
        # a chunk's spikes by step and neuron, and each neuron's owner: left cleared after every chunk
        self.pre_counts = cuda.to_device(np.zeros((chunk, n_pre), dtype=np.int32))
        self.post_counts = cuda.to_device(np.zeros((chunk, n_post), dtype=np.int32))
        self.pre_owner = cuda.to_device(np.full(n_pre, _NO_OWNER, dtype=np.int64))
        self.post_owner = cuda.to_device(np.full(n_post, _NO_OWNER, dtype=np.int64))

    def to_host(self) -> None:
        for name in self.LEARNED:
            getattr(self, name).copy_to_host(getattr(self.host, name))
        self.projection.weights.copy_to_host(self.projection.host.weights)

    def to_device(self) -> None:
        for name in self.LEARNED:
            getattr(self, name).copy_to_device(getattr(self.host, name))
        self.projection.weights.copy_to_device(self.projection.host.weights)


class _DeviceValues:
    """An elementwise value population's arrays on the device (its state is its population's)."""

    def __init__(self, value, device: _DevicePopulation):
        self.host = value
        self.population = device
        self.consts = cuda.to_device(value.consts)
        self.inputs = cuda.to_device(value.inputs)
        self.published = cuda.to_device(value.published)
        self.previous = cuda.to_device(value.previous if value.previous is not None else value.published)
        self.output_rows = cuda.to_device(value.output_rows)
        self.step = _value_step_kernel(value.step_function)
        self.finish = None if value.finish_function is None else _finish_kernel(value.finish_function)
        self.blocks = min(_MAX_BLOCKS, max(1, math.ceil(value.n / _THREADS)))


class _DeviceArrays:
    """Device copies of the named arrays of a lowered value map or count projection."""

    def __init__(self, host, names: tuple[str, ...]):
        self.host = host
        for name in names:
            setattr(self, name, cuda.to_device(getattr(host, name)))


_MAP_ARRAYS = ("row_ptr", "columns", "values", "targets", "scratch")
_COUNT_ARRAYS = ("row_ptr", "post_ids", "weights", "delay_steps", "pending")


class CudaRunner(Runner):

    """Advances a lowered network on the GPU (or the CUDA simulator)."""

    def __init__(self, lowered: LoweredNetwork):
        self.lowered = lowered
        self.populations = [_DevicePopulation(p) for p in lowered.populations]
        self.projections = [_DeviceProjection(p) for p in lowered.projections]
        self.plastic = [_DevicePlasticity(p, self.projections[p.projection], lowered.chunk,
                                          lowered.populations[p.pre].n, lowered.populations[p.post].n)
                        for p in lowered.plastic]
        self.events = cuda.to_device(np.zeros(len(lowered.projections), dtype=np.int64))
        self.status = cuda.to_device(np.zeros(3, dtype=np.int64))
        self.overflow = cuda.to_device(np.zeros(1, dtype=np.int64))
        self.monitor_ids = [cuda.to_device(m.ids) for m in lowered.state_monitors]
        self.values = [_DeviceValues(v, self.populations[v.population]) for v in lowered.values]
        self.maps = {g: _DeviceArrays(m, _MAP_ARRAYS) for g, m in enumerate(lowered.value_maps) if m.compiled}
        self.counts = [_DeviceArrays(c, _COUNT_ARRAYS) for c in lowered.counts]
        self.count_events = cuda.to_device(np.zeros(len(lowered.counts), dtype=np.int64))
        # the published output of every value population the device maps read; a host one's is
        # uploaded with its update
        on_device = {v.host.population: v.published for v in self.values}
        self.published = {index: on_device[index] if index in on_device else cuda.to_device(published)
                          for index, published in lowered.published.items()}

    def advance(self, start: int, stop: int) -> int:
        lowered = self.lowered

        lowered.status[0] = Status.OK
        for device in self.populations:  # the host emptied the spike buffers after the last stretch
            device.spike_count.copy_to_device(device.host.spike_count)
        for plastic in self.plastic:  # the host refreshed the modulators' factors
            plastic.modulation.copy_to_device(plastic.host.modulation)
        monitors = [(m, ids, cuda.to_device(m.values))
                    for m, ids in zip(lowered.state_monitors, self.monitor_ids, strict=True)]
        counts = [int(p.spike_count[0]) for p in lowered.populations]
        step = start
        while step < stop:
            length = min(lowered.chunk, stop - step)
            boundary = lowered.next_value_boundary(step)
            if boundary is not None:
                # a chunk ends where an elementwise value population updates
                length = min(length, boundary - step)
            if any(count + p.spike_bound * length > len(p.spike_ids)
                   for count, p in zip(counts, lowered.populations, strict=True)):
                break
            first = list(counts)
            for index, device in enumerate(self.populations):
                for k in range(step, step + length):
                    self._step_population(index, device, k)
                    for monitor, ids, values in monitors:
                        if monitor.population == index and not monitor.at_updates and (k + 1) % monitor.every == 0:
                            sample = int(monitor.count[0])
                            _sample[min(_MAX_BLOCKS, max(1, math.ceil(len(monitor.ids) / _THREADS))), _THREADS](
                                device.state, monitor.row, ids, values, sample)
                            monitor.steps[sample] = k
                            monitor.count[0] = sample + 1
            status = self.status.copy_to_host()
            if status[0]:  # a state that is not finite, or a full spike buffer: the first in the reference order
                lowered.status[:] = status
                break
            counts = [int(d.spike_count.copy_to_host()[0]) for d in self.populations]
            for j, projection in enumerate(self.projections):
                pre = projection.host.pre
                spikes = counts[pre] - first[pre]
                if not spikes:
                    continue
                source, target = self.populations[pre], self.populations[projection.host.post]
                if projection.host.all_to_all:
                    _deliver_all_to_all[spikes, _DELIVERY_THREADS](
                        source.spike_ids, source.spike_steps, first[pre], projection.host.width,
                        projection.host.autapses, projection.weights, projection.delays, target.ring,
                        projection.host.receptor, self.events, j)
                elif projection.geometry is not None:
                    _deliver_convolution[spikes, _DELIVERY_THREADS](
                        source.spike_ids, source.spike_steps, first[pre], projection.row_ptr, projection.geometry,
                        projection.weights, projection.delays, target.ring, projection.host.receptor, self.events, j)
                else:
                    _deliver[spikes, _DELIVERY_THREADS](
                        source.spike_ids, source.spike_steps, first[pre], projection.row_ptr, projection.post_ids,
                        projection.weights, projection.host.weight_stride, projection.delays,
                        projection.delay_stride, target.ring, projection.host.receptor, self.events, j)
            for plastic in self.plastic:  # after delivery: a spike carries its synapse's weight of the chunk start
                self._learn(plastic, first, counts, step, length)
            for c, count in enumerate(self.counts):
                host = count.host
                source = self.populations[host.pre]
                if counts[host.pre] > first[host.pre]:
                    _deliver_count[1, 1](source.spike_ids, source.spike_steps, first[host.pre], counts[host.pre],
                                         count.row_ptr, count.post_ids, count.weights, host.weight_stride,
                                         count.delay_steps, host.per_synapse_delays, host.all_to_all, host.autapses,
                                         count.pending, host.period, self.count_events, c)
            step += length
            if self.values:
                self._update_values(step, monitors)
        if self.values and lowered.status[0] == Status.OK:
            status = self.status.copy_to_host()
            if status[0]:
                lowered.status[:] = status
        self._download(monitors)
        return step if lowered.status[0] == Status.OK else int(lowered.status[2])

    def _learn(self, plastic, first: list[int], counts: list[int], start: int, length: int) -> None:
        """STDP of the chunk ``start .. start + length - 1`` of one plastic projection (see ``_learn_synapse``)."""
        pre, post = plastic.host.pre, plastic.host.post
        spikes = counts[pre] - first[pre] + counts[post] - first[post]
        if not spikes:
            return
        source, target, learned = self.populations[pre], self.populations[post], plastic.projection
        blocks = min(_MAX_BLOCKS, max(1, math.ceil(spikes / _THREADS)))
        _count_chunk_spikes[blocks, _THREADS](source.spike_ids, source.spike_steps, first[pre], counts[pre],
                                              target.spike_ids, target.spike_steps, first[post], counts[post], start,
                                              plastic.pre_counts, plastic.post_counts, plastic.pre_owner,
                                              plastic.post_owner)
        _learn[spikes, _DELIVERY_THREADS](source.spike_ids, first[pre], counts[pre], target.spike_ids, first[post],
                                          start, length, plastic.pre_counts, plastic.post_counts, plastic.pre_owner,
                                          plastic.post_owner, learned.row_ptr, learned.post_ids, learned.weights,
                                          plastic.col_ptr, plastic.col_synapses, plastic.col_sources,
                                          plastic.pre_trace, plastic.pre_seen, plastic.post_trace, plastic.post_seen,
                                          plastic.decay_plus, plastic.decay_minus, plastic.params, plastic.modulation)
        _advance_traces[blocks, _THREADS](source.spike_ids, first[pre], counts[pre], target.spike_ids, first[post],
                                          counts[post], start, length, plastic.pre_counts, plastic.post_counts,
                                          plastic.pre_owner, plastic.post_owner, plastic.pre_trace, plastic.pre_seen,
                                          plastic.post_trace, plastic.post_seen, plastic.decay_plus,
                                          plastic.decay_minus)

    def _update_values(self, k: int, monitors) -> None:
        """Update on the device the elementwise value populations due at ``k``."""
        lowered = self.lowered
        due = [v for v in self.values if k % v.host.period == 0]
        for value in due:
            _clear_rows[value.blocks, _THREADS](value.inputs)
            for kind, index in value.host.sources:
                if kind == "count":
                    count = self.counts[index]
                    window = (k // count.host.period - 1) % count.host.pending.shape[0]
                    _take_pending[1, 1](value.inputs, count.host.row, count.pending, window)
                else:
                    self._apply_map(index, value.inputs, lowered.value_maps[index].destination,
                                    lowered.value_maps[index].channels)
        for value in due:
            host, device = value.host, value.population
            value.step[value.blocks, _THREADS](device.state, value.consts, value.inputs, k, host.key,
                                               host.consts.shape[1] == 1, device.flags, host.pulses)
            if value.finish is not None:
                value.finish[1, 1](device.state, value.consts)
            # read with the spiking populations' status after the next chunk, or at the end of the stretch
            _check_finite[value.blocks, _THREADS](device.state, self.status, host.population, k)
            _publish[1, 1](device.state, value.published, value.output_rows, value.previous,
                           host.previous is not None)
            if host.pulses:
                _schedule_pulses[1, 1](device.flags, host.n, k, device.source_steps, device.source_ids,
                                       device.source_next)
            for monitor, ids, values in monitors:
                if monitor.population == host.population and k % monitor.every == 0:
                    sample = int(monitor.count[0])
                    _sample[min(_MAX_BLOCKS, max(1, math.ceil(len(monitor.ids) / _THREADS))), _THREADS](
                        device.state, monitor.row, ids, values, sample)
                    monitor.steps[sample] = k - 1
                    monitor.count[0] = sample + 1
            for g in host.feeds:
                value_map = lowered.value_maps[g]
                scratch = self.maps[g].scratch
                _clear_rows[value.blocks, _THREADS](scratch)
                self._apply_map(g, scratch, 0, 1)
                target = self.populations[value_map.post]
                if value_map.consumer is Consumer.HOLD:
                    _hold_values[1, 1](target.ring, value_map.destination, scratch, k, k + host.period)
                else:
                    _set_state_row[1, 1](target.state, value_map.destination, self.maps[g].targets, scratch)
            for q, row in host.modulates:
                _set_modulation[1, 1](self.plastic[q].modulation, row, value.published)

    def _apply_map(self, g: int, rows, first_row: int, channels: int) -> None:
        """Add value map ``g`` of its source's published output into ``rows[first_row ...]`` on the device."""
        value_map, arrays = self.lowered.value_maps[g], self.maps[g]
        published = self.published[value_map.pre]
        if value_map.operator is Operator.ALL_TO_ALL:
            _add_all_to_all[1, 1](rows, first_row, published, channels, value_map.weight, value_map.autapses)
        else:
            blocks = min(_MAX_BLOCKS, max(1, math.ceil((len(value_map.row_ptr) - 1) / _THREADS)))
            uniform = value_map.operator is Operator.UNIFORM_SPARSE
            _add_sparse[blocks, _THREADS](rows, first_row, published, channels, arrays.row_ptr, arrays.columns,
                                          arrays.values, value_map.weight, uniform)

    def _step_population(self, index: int, device, k: int) -> None:
        host = device.host
        if host.kind == Kind.SCHEDULED:
            _emit_scheduled[1, 1](device.source_steps, device.source_ids, device.source_next, k, device.spike_ids,
                                  device.spike_steps, device.spike_count)
            return
        if host.period > 1:
            # a population with its own dt updates once per window, on the window's summed input
            if (k + 1) % host.period:
                return
            _gather_window[device.blocks, _THREADS](device.ring, k, host.period)
        if device.drives:
            _drive[device.blocks, _THREADS](device.ring, k, device.drive_receptors, device.drive_params,
                                            device.drive_weights, device.drive_keys, device.drive_events)
        slot = device.ring[k % host.ring.shape[0]]
        arriving = tuple(slot[r] for r in range(host.ring.shape[1]))
        device.update[device.blocks, _THREADS](device.state, device.consts, arriving, k, host.key, device.shared,
                                               device.flags)
        _range_totals[device.range_blocks, _THREADS](device.flags, device.totals, self.status, index, k)
        _range_offsets[1, 1](device.totals, device.spike_count, device.offsets, self.overflow, len(host.spike_ids),
                             self.status, index, k)
        _write_spikes[device.range_blocks, _THREADS](device.flags, device.offsets, k, device.spike_ids,
                                                     device.spike_steps, self.overflow)

    def to_host(self) -> None:
        for device in self.populations:
            if not device.host.on_host:  # a host value population's state lives on the host
                device.state.copy_to_host(device.host.state)
            device.ring.copy_to_host(device.host.ring)
            device.source_next.copy_to_host(device.host.source_next)
        for plastic in self.plastic:
            plastic.to_host()
        for value in self.values:
            value.published.copy_to_host(value.host.published)
            value.population.source_steps.copy_to_host(value.population.host.source_steps)
            value.population.source_ids.copy_to_host(value.population.host.source_ids)
            if value.host.previous is not None:
                value.previous.copy_to_host(value.host.previous)
        for count in self.counts:
            count.pending.copy_to_host(count.host.pending)

    def to_device(self) -> None:
        for device in self.populations:
            host = device.host
            device.ring.copy_to_device(host.ring)
            if host.on_host:
                device.source_steps.copy_to_device(host.source_steps)
                device.source_ids.copy_to_device(host.source_ids)
                device.source_next.copy_to_device(host.source_next)
            else:
                device.state.copy_to_device(host.state)
        for plastic in self.plastic:
            plastic.to_device()
        for index, published in self.published.items():
            # the host publishes every value population at the start of a run, and its own at their updates
            published.copy_to_device(self.lowered.published[index])
        for count in self.counts:
            count.pending.copy_to_device(count.host.pending)

    def _download(self, monitors) -> None:
        """Copy what the host collects after every stretch: spikes, event counts, samples."""
        for device in self.populations:
            host = device.host
            host.spike_count[...] = device.spike_count.copy_to_host()
            count = int(host.spike_count[0])
            host.spike_ids[:count] = device.spike_ids[:count].copy_to_host()
            host.spike_steps[:count] = device.spike_steps[:count].copy_to_host()
        for device in self.populations:
            if device.drives:
                device.host.drive_events += device.drive_events.copy_to_host()
                device.drive_events.copy_to_device(np.zeros(device.drives, dtype=np.int64))
        self.lowered.synaptic_events += self.events.copy_to_host()
        self.events.copy_to_device(np.zeros(len(self.projections), dtype=np.int64))
        if self.counts:
            self.lowered.count_events += self.count_events.copy_to_host()
            self.count_events.copy_to_device(np.zeros(len(self.counts), dtype=np.int64))
        for monitor, _, values in monitors:
            monitor.values[...] = values.copy_to_host()


def prepare(lowered: LoweredNetwork) -> CudaRunner:
    return CudaRunner(lowered)
