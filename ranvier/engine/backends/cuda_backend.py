"""The CUDA backend (numba.cuda): the same model step functions as device functions.

A min-delay chunk is two launches of kernels generated for the network's structure
(:mod:`.cuda_chunk`): ``update`` takes every neuron of every spiking population through all the
chunk's steps (a thread per neuron: drives, step, finite test, spike flags, state monitor samples),
and its last block to finish writes the spike lists in the reference order (per population by
step, then neuron) and emits the scheduled populations' spikes; ``deliver`` sends every spike of
the chunk through every projection (CSR with one or per-synapse delays, implicit all-to-all,
convolution), a block per spike with its threads striding over the synapses, atomic adds into the
target's delay ring buffer. Spike counts stay on the device: the kernels read them there.

The host reads nothing per chunk. It keeps an upper bound of each spike buffer's fill (the
populations' spike bounds times the steps run) and reads the device's counts only when a buffer
could overflow; it reads ``status`` (a state that is not finite, a full spike buffer: the first in
the reference order, recorded by the kernels) then and at the end of every stretch. Every kernel
(of the chunks, of learning, of the value populations) returns at once while ``status`` holds a
failure, so the run ends as if it had stopped there.

Determinism: the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) runs blocks one after another,
so spikes are delivered in the reference order and results equal the numpy backend's. On a
GPU, blocks run concurrently: inputs reaching one neuron in the same step are summed in a
varying order, which can change the rounding and, in chaotic networks, spike times.

State and ring buffers (and a plastic projection's weights and traces) stay on the device for
the whole run: they come to the host at the end of a run, around callbacks (which may read or
change them) and around the updates of value populations that update on the host (``Rate``, a
user's ``advance``). The other value populations update on the device at the end of the chunks
their windows end, in the numpy reference's order: an elementwise one's step (Kuramoto, AKOrN,
Astrocyte) on a thread per unit, an array step (CfC, LTC, ELM) as its traced kernel of one
block (:func:`.array_program.load_cuda`: its matrix products and loops, the copy into the
state and the finite test in one launch), sparse value maps on a thread per row, and the CPU
backends' loops for sums, counts, holds and pulses on one thread each (so their additions keep
the reference's order); they, count projections (one thread a chunk) and learning keep launches
of their own.
Learning (STDP) runs a thread per synapse whose source or target spiked in the chunk,
each replaying its own pre and post spikes in the CPU backends' order, which gives the numpy
backend's weights and traces exactly (see ``_learn_synapse``), three launches per plastic
projection and chunk that read the chunk's spikes on the device. Each stretch copies back only
what the host collects: the new spikes, synaptic-event counts and monitor samples.
"""

from __future__ import annotations

import math
import types
import warnings

import numpy as np
from numba import config, cuda

from ..lowering import Consumer, LoweredNetwork, Operator, Status
from ..model import register_target
from . import Runner, array_program, cuda_chunk, numba_kernels

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
#: the most blocks the delivery kernel runs: they stride over the chunk's spikes
_MAX_DELIVERY_BLOCKS = 1 if _SIMULATED else 1 << 12
#: the threads of an array step's block (one block: its loops are separated by barriers)
_ARRAY_THREADS = 8 if _SIMULATED else 256
#: the code the value populations' finite test records in ``status`` (see ``Status``); an int, which kernels
#: read as a constant
_NOT_FINITE = int(Status.NOT_FINITE)

_DEVICE_FUNCTIONS: dict[object, object] = {}


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
_add_all_to_all_device = _device_version(numba_kernels.add_all_to_all, ("all_to_all_total",))
_take_pending_device = _device_version(numba_kernels.take_pending, ())
_publish_device = _device_version(numba_kernels.publish, ("_copy",))
_schedule_pulses_device = _device_version(numba_kernels.schedule_pulses, ())
_hold_values_device = _device_version(numba_kernels.hold_values, ())
_set_state_row_device = _device_version(numba_kernels.set_state_row, ())
_set_modulation_device = _device_version(numba_kernels.set_modulation, ())
_VALUE_STEP_KERNELS: dict[object, object] = {}
_FINISH_KERNELS: dict[object, object] = {}


@cuda.jit
def _clear_rows(status, rows):
    for entry in range(cuda.grid(1), rows.shape[0] * rows.shape[1] if status[0] == 0 else 0, cuda.gridsize(1)):
        rows[entry // rows.shape[1], entry % rows.shape[1]] = 0.0


@cuda.jit
def _add_all_to_all(status, rows, first_row, published, channels, weight, autapses):
    if cuda.grid(1) == 0 and status[0] == 0:
        _add_all_to_all_device(rows, first_row, published, channels, weight, autapses)


@cuda.jit
def _add_sparse(status, rows, first_row, published, channels, row_ptr, columns, values, weight, uniform):
    """``rows[first_row + c, i] += sum_e w_e x_c[j_e]`` (``w sum_e x_c[j_e]`` when ``uniform``), a thread per row."""
    for i in range(cuda.grid(1), row_ptr.shape[0] - 1 if status[0] == 0 else 0, cuda.gridsize(1)):
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
def _take_pending(status, rows, row, pending, window):
    if cuda.grid(1) == 0 and status[0] == 0:
        _take_pending_device(rows, row, pending, window)


@cuda.jit
def _check_finite(state, status, population, k):
    for entry in range(cuda.grid(1), state.shape[0] * state.shape[1], cuda.gridsize(1)):
        if not math.isfinite(state[entry // state.shape[1], entry % state.shape[1]]) and status[0] == 0:
            status[1] = population
            status[2] = k
            status[0] = _NOT_FINITE


@cuda.jit
def _publish(status, state, published, output_rows, previous, keep_previous):
    if cuda.grid(1) == 0 and status[0] == 0:
        _publish_device(state, published, published, output_rows, previous, keep_previous, False)


@cuda.jit
def _schedule_pulses(status, flags, n, k, source_steps, source_ids, source_next):
    if cuda.grid(1) == 0 and status[0] == 0:
        _schedule_pulses_device(flags, n, k, source_steps, source_ids, source_next)


@cuda.jit
def _hold_values(status, ring, receptor, scratch, start, stop):
    if cuda.grid(1) == 0 and status[0] == 0:
        _hold_values_device(ring, receptor, scratch, start, stop)


@cuda.jit
def _set_state_row(status, state, row, targets, scratch):
    if cuda.grid(1) == 0 and status[0] == 0:
        _set_state_row_device(state, row, targets, scratch)


@cuda.jit
def _set_modulation(status, modulation, row, published):
    if cuda.grid(1) == 0 and status[0] == 0:
        _set_modulation_device(modulation, row, published)


def _value_step_kernel(step_function):
    """The kernel that updates every unit of an elementwise value population with its ``step``."""
    if step_function not in _VALUE_STEP_KERNELS:
        step = _DEVICE_FUNCTIONS.setdefault(step_function, cuda.jit(device=True)(step_function))

        @cuda.jit
        def update(status, state, consts, inputs, k, key, shared, flags, pulses):
            for i in range(cuda.grid(1), state.shape[1] if status[0] == 0 else 0, cuda.gridsize(1)):
                if step(state, consts, inputs, i, 0 if shared else i, k, key) != 0 and pulses:
                    flags[i] = 1

        _VALUE_STEP_KERNELS[step_function] = update
    return _VALUE_STEP_KERNELS[step_function]


def _finish_kernel(finish_function):
    """One thread running an elementwise value population's ``finish`` (its sums keep the reference's order)."""
    if finish_function not in _FINISH_KERNELS:
        finish = _DEVICE_FUNCTIONS.setdefault(finish_function, cuda.jit(device=True)(finish_function))

        @cuda.jit
        def run(status, state, consts):
            if cuda.grid(1) == 0 and status[0] == 0:
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
def _count_chunk_spikes(status, chunk_first, spike_counts, pre, post, pre_ids, pre_steps, post_ids, post_steps, start,
                        pre_counts, post_counts, pre_owner, post_owner):
    """``counts[k - start, i]``: neuron i's spikes in step k of the chunk; ``owner[i]``: its first spike's index.

    The chunk's spikes of populations ``pre`` and ``post`` are ``chunk_first .. spike_counts - 1``, read
    on the device; nothing is done once ``status`` holds a failure (as in the kernels below).
    """
    if status[0] != 0:
        return
    pre_first, pre_last = chunk_first[pre], spike_counts[pre]
    post_first, post_last = chunk_first[post], spike_counts[post]
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
def _learn(status, chunk_first, spike_counts, pre, post, pre_ids, post_ids, start, length, pre_counts, post_counts,
           pre_owner, post_owner, row_ptr, targets, weights, col_ptr, col_synapses, col_sources, pre_trace, pre_seen,
           post_trace, post_seen, decay_plus, decay_minus, params, modulation):
    """Block b takes the chunk's spikes b, b + gridDim, ... (pre spikes, then post spikes) whose neurons they own.

    A pre owner p: its threads learn every synapse of p's row. A post owner q: every synapse
    into q whose source did not spike in the chunk (the others belong to their source's row),
    so each synapse that learns has exactly one thread.
    """
    if status[0] != 0:
        return
    pre_first, post_first = chunk_first[pre], chunk_first[post]
    pre_spikes = spike_counts[pre] - pre_first
    for b in range(cuda.blockIdx.x, pre_spikes + spike_counts[post] - post_first, cuda.gridDim.x):
        if b < pre_spikes:
            p = pre_ids[pre_first + b]
            if pre_owner[p] == pre_first + b:
                for s in range(row_ptr[p] + cuda.threadIdx.x, row_ptr[p + 1], cuda.blockDim.x):
                    _learn_synapse(s, p, targets[s], start, length, pre_counts, post_counts, weights, pre_trace,
                                   pre_seen, post_trace, post_seen, decay_plus, decay_minus, params, modulation)
        else:
            _learn_column(post_ids[post_first + b - pre_spikes], post_first + b - pre_spikes, start, length,
                          pre_counts, post_counts, pre_owner, post_owner, weights, col_ptr, col_synapses, col_sources,
                          pre_trace, pre_seen, post_trace, post_seen, decay_plus, decay_minus, params, modulation)


@cuda.jit(device=True)
def _learn_column(q, spike, start, length, pre_counts, post_counts, pre_owner, post_owner, weights, col_ptr,
                  col_synapses, col_sources, pre_trace, pre_seen, post_trace, post_seen, decay_plus, decay_minus,
                  params, modulation):
    """The synapses into q whose source did not spike, if ``spike`` is q's owner: a thread each."""
    if post_owner[q] == spike:
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
def _advance_traces(status, chunk_first, spike_counts, pre, post, pre_ids, post_ids, start, length, pre_counts,
                    post_counts, pre_owner, post_owner, pre_trace, pre_seen, post_trace, post_seen, decay_plus,
                    decay_minus):
    """Each owner (a thread per spike of the chunk) advances its neuron's trace and gives up ownership."""
    if status[0] != 0:
        return
    pre_first, pre_last = chunk_first[pre], spike_counts[pre]
    post_first, post_last = chunk_first[post], spike_counts[post]
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
def _sample(status, state, row, ids, values, sample):
    for column in range(cuda.grid(1), ids.shape[0] if status[0] == 0 else 0, cuda.gridsize(1)):
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
        self.source_steps = cuda.to_device(population.source_steps)
        self.source_ids = cuda.to_device(population.source_ids)
        self.source_next = cuda.to_device(population.source_next)
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
    """A value population's arrays on the device (its state is its population's), and its kernels: an
    elementwise one's step and finish, or the kernel of its traced array step."""

    def __init__(self, value, device: _DevicePopulation):
        self.host = value
        self.population = device
        self.consts = cuda.to_device(value.consts)
        self.inputs = cuda.to_device(value.inputs)
        self.published = cuda.to_device(value.published)
        self.previous = cuda.to_device(value.previous if value.previous is not None else value.published)
        self.output_rows = cuda.to_device(value.output_rows)
        self.blocks = min(_MAX_BLOCKS, max(1, math.ceil(value.n / _THREADS)))
        self.array_step = None if value.trace is None else _array_step_kernel(value)
        if self.array_step is None:
            self.step = _value_step_kernel(value.step_function)
            self.finish = None if value.finish_function is None else _finish_kernel(value.finish_function)
        else:
            # the kernel addresses the state and inputs as flat vectors (views of the same memory)
            self.flat_state = device.state.reshape(value.state.size)
            self.flat_inputs = self.inputs.reshape(value.inputs.size)
            self.scratch = cuda.device_array(max(1, array_program.scratch_size(value.trace)))


def _array_step_kernel(value):
    """The CUDA kernel of a value population's traced array step, the views its model's ``gather`` and
    ``destinations`` give resolved to places in its state and inputs."""
    bases = {"state": value.state, "inputs": value.inputs}

    def place(view: np.ndarray, names: tuple[str, ...]) -> tuple[str, int, tuple[int, ...]]:
        for name in names:
            if np.shares_memory(view, bases[name]):
                return (name, *array_program.view_address(view, bases[name]))
        raise ValueError(f"population {value.name!r}: its array step's gather and destinations must give views "
                         f"of its {' or '.join(names)}; got an array of shape {view.shape} that is not one")

    inputs = [place(view, ("state", "inputs")) for view in value.array_step.gather(value.state, value.inputs)]
    results = [np.empty(shape) for shape in value.trace.output_shapes]
    outputs = [place(view, ("state",))[1:] for view in value.array_step.destinations(value.state, *results)]
    return array_program.load_cuda(value.trace, inputs, outputs, value.state.size)


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
        self.monitor_ids = [cuda.to_device(m.ids) for m in lowered.state_monitors]
        #: the host's sample buffers the device's (``_device_buffers``) were allocated for
        self._monitor_buffers: list = [None] * len(lowered.state_monitors)
        self._device_buffers: list = []
        self.values = [_DeviceValues(v, self.populations[v.population]) for v in lowered.values]
        self.maps = {g: _DeviceArrays(m, _MAP_ARRAYS) for g, m in enumerate(lowered.value_maps) if m.compiled}
        self.counts = [_DeviceArrays(c, _COUNT_ARRAYS) for c in lowered.counts]
        self.count_events = cuda.to_device(np.zeros(len(lowered.counts), dtype=np.int64))
        # the published output of every value population the device maps read; a host one's is
        # uploaded with its update
        on_device = {v.host.population: v.published for v in self.values}
        self.published = {index: on_device[index] if index in on_device else cuda.to_device(published)
                          for index, published in lowered.published.items()}
        self._prepare_chunks()

    def _prepare_chunks(self) -> None:
        """The chunk kernels (``cuda_chunk``), their work arrays and their arguments."""
        lowered, chunk = self.lowered, self.lowered.chunk
        layout = cuda_chunk.tile_layout(lowered, _THREADS)
        self.kernels = cuda_chunk.load(lowered)
        tiles = max(1, layout.tiles)  # device arrays of at least one entry
        self.spike_counts = cuda.to_device(np.zeros(len(lowered.populations), dtype=np.int64))
        self.capacities = np.array([len(p.spike_ids) for p in lowered.populations], dtype=np.int64)
        self.spike_bounds = np.array([p.spike_bound for p in lowered.populations], dtype=np.int64)
        arguments = {
            "status": self.status, "failure": cuda.to_device(np.full(1, cuda_chunk.NO_FAILURE, dtype=np.int64)),
            "done": cuda.to_device(np.zeros(1, dtype=np.int64)), "tiles": layout.tiles,
            "tile_population": cuda.to_device(np.resize(layout.population, tiles)),
            "tile_first": cuda.to_device(np.resize(layout.first, tiles)), "tile_ranges": cuda.to_device(layout.ranges),
            "spike_counts": self.spike_counts,
            "chunk_first": cuda.to_device(np.zeros(len(lowered.populations), dtype=np.int64)),
            "capacities": cuda.to_device(self.capacities),
            "offsets": cuda.device_array((chunk, tiles), dtype=np.int64),
            "step_ends": cuda.device_array((chunk, len(lowered.populations)), dtype=np.int64),
            "flags": cuda.device_array((chunk, tiles * _THREADS), dtype=np.int32),
            "tile_totals": cuda.to_device(np.zeros((chunk, tiles), dtype=np.int64)), "events": self.events,
        }
        for index, device in enumerate(self.populations):
            p, host = f"p{index}_", device.host
            arguments.update({f"{p}{name}": getattr(device, name) for name in (
                "spike_ids", "spike_steps", "state", "consts", "ring", "source_steps", "source_ids", "source_next")})
            arguments[f"{p}key"] = host.key
            if device.drives:
                arguments.update({f"{p}{name}": getattr(device, name) for name in cuda_chunk.DRIVE_ARGUMENTS})
        for j, device in enumerate(self.projections):
            q, host = f"j{j}_", device.host
            arguments.update({f"{q}row_ptr": device.row_ptr, f"{q}post_ids": device.post_ids,
                              f"{q}weights": device.weights, f"{q}weight_stride": host.weight_stride,
                              f"{q}delays": device.delays, f"{q}delay_stride": device.delay_stride,
                              f"{q}width": host.width, f"{q}autapses": host.autapses, f"{q}geometry": device.geometry})
        #: the state monitors ``update`` samples: (monitor index, the host's monitor)
        self.sampled = [(m, lowered.state_monitors[m]) for m in cuda_chunk.sampled_monitors(lowered)]
        for m, monitor in self.sampled:
            n = lowered.populations[monitor.population].n
            # by neuron, the sample columns that read it: each neuron's thread writes its own samples
            arguments.update({f"m{m}_row": monitor.row, f"m{m}_every": monitor.every,
                              f"m{m}_neuron_ptr": cuda.to_device(np.concatenate(
                                  [[0], np.cumsum(np.bincount(monitor.ids, minlength=n))]).astype(np.int64)),
                              f"m{m}_columns": cuda.to_device(np.argsort(monitor.ids, kind="stable"))})
        for c, count in enumerate(self.counts):
            # the arrays on the device, the scalars as lowered
            arguments.update({f"c{c}_{name}": getattr(count if name in _COUNT_ARRAYS else count.host, name)
                              for name in cuda_chunk.COUNT_ARGUMENTS})
        arguments["count_events"] = self.count_events
        self._chunk_arguments = arguments
        # configured once: the launches of a chunk
        self._update = self.kernels.update[min(_MAX_BLOCKS, max(1, layout.tiles)), _THREADS]
        # grid-stride over the chunk's spikes, of which there are at most the populations' bounds
        most = sum(lowered.populations[j.pre].spike_bound for j in lowered.projections) * chunk
        self._deliver = (None if self.kernels.deliver is None
                         else self.kernels.deliver[min(_MAX_DELIVERY_BLOCKS, max(1, most)), _DELIVERY_THREADS])

    def advance(self, start: int, stop: int) -> int:
        lowered = self.lowered
        lowered.status[0] = Status.OK
        # the spike buffers as the host left them (it empties them when it collects, not after every stretch)
        counts = np.array([p.spike_count[0] for p in lowered.populations], dtype=np.int64)
        self.spike_counts.copy_to_device(counts)
        for plastic in self.plastic:  # the host refreshed the modulators' factors
            plastic.modulation.copy_to_device(plastic.host.modulation)
        buffers = [m.values for m in lowered.state_monitors]
        if any(a is not b for a, b in zip(buffers, self._monitor_buffers, strict=True)):
            # a run allocates its monitors' buffers anew: the device's are allocated with them, and
            # never uploaded (the kernels write every sample before the host reads it)
            self._device_buffers = [cuda.device_array_like(b) for b in buffers]
            self._monitor_buffers = buffers
        monitors = list(zip(lowered.state_monitors, self.monitor_ids, self._device_buffers, strict=True))
        first_samples = [int(m.count[0]) for m in lowered.state_monitors]
        arguments = self._chunk_arguments
        for m, _ in self.sampled:
            arguments[f"m{m}_values"] = monitors[m][2]
        update_names, deliver_names = self.kernels.update_arguments, self.kernels.deliver_arguments
        # an upper bound of each spike buffer's fill: the device's counts are read only when one could overflow
        bound = counts.copy()
        step = start
        while step < stop:
            length = min(lowered.chunk, stop - step)
            boundary = lowered.next_value_boundary(step)
            if boundary is not None:
                # a chunk ends where an elementwise value population updates
                length = min(length, boundary - step)
            growth = self.spike_bounds * length
            if np.any(bound + growth > self.capacities):
                if self._failed():
                    break
                bound = self.spike_counts.copy_to_host()
                if np.any(bound + growth > self.capacities):
                    break
            arguments["start"], arguments["length"] = step, length
            for m, monitor in self.sampled:
                arguments[f"m{m}_base"] = self._sample_steps(monitor, step, length)
            self._update(*[arguments[name] for name in update_names])
            if self._deliver is not None:
                self._deliver(*[arguments[name] for name in deliver_names])
            for plastic in self.plastic:  # after delivery: a spike carries its synapse's weight of the chunk start
                self._learn(plastic, step, length)
            bound += growth
            step += length
            if self.values:
                self._update_values(step, monitors)
        status = self.status.copy_to_host()
        if status[0]:  # a state that is not finite, or a full spike buffer: the first in the reference order
            lowered.status[:] = status
        self._download(monitors, first_samples, counts)
        if status[0]:
            # the host counted the samples of the chunks it launched: keep those before the failure
            for monitor in lowered.state_monitors:
                monitor.count[0] = np.searchsorted(monitor.steps[:int(monitor.count[0])], status[2])
        return step if lowered.status[0] == Status.OK else int(lowered.status[2])

    def _failed(self) -> bool:
        """Whether a kernel recorded a failure in ``status`` (which then holds it on the host too)."""
        status = self.status.copy_to_host()
        if status[0]:
            self.lowered.status[:] = status
        return bool(status[0])

    @staticmethod
    def _sample_steps(monitor, start: int, length: int) -> int:
        """Record on the host the steps ``update`` samples ``monitor`` at in the chunk (``k`` with
        ``(k + 1) % every == 0``); returns the index of the chunk's first sample."""
        base = int(monitor.count[0])
        every = monitor.every
        steps = np.arange((start // every + 1) * every - 1, start + length, every)
        monitor.steps[base:base + len(steps)] = steps
        monitor.count[0] = base + len(steps)
        return base

    def _learn(self, plastic, start: int, length: int) -> None:
        """STDP of the chunk ``start .. start + length - 1`` of one plastic projection (see ``_learn_synapse``),
        over the chunk's spikes as the device counted them."""
        pre, post = plastic.host.pre, plastic.host.post
        source, target, learned = self.populations[pre], self.populations[post], plastic.projection
        arguments = self._chunk_arguments
        ranges = (self.status, arguments["chunk_first"], self.spike_counts, pre, post)
        most = (self.spike_bounds[pre] + self.spike_bounds[post]) * length
        blocks = min(_MAX_BLOCKS, max(1, math.ceil(most / _THREADS)))
        _count_chunk_spikes[blocks, _THREADS](*ranges, source.spike_ids, source.spike_steps, target.spike_ids,
                                              target.spike_steps, start, plastic.pre_counts, plastic.post_counts,
                                              plastic.pre_owner, plastic.post_owner)
        _learn[min(_MAX_DELIVERY_BLOCKS, max(1, most)), _DELIVERY_THREADS](
            *ranges, source.spike_ids, target.spike_ids, start, length, plastic.pre_counts, plastic.post_counts,
            plastic.pre_owner, plastic.post_owner, learned.row_ptr, learned.post_ids, learned.weights,
            plastic.col_ptr, plastic.col_synapses, plastic.col_sources, plastic.pre_trace, plastic.pre_seen,
            plastic.post_trace, plastic.post_seen, plastic.decay_plus, plastic.decay_minus, plastic.params,
            plastic.modulation)
        _advance_traces[blocks, _THREADS](*ranges, source.spike_ids, target.spike_ids, start, length,
                                          plastic.pre_counts, plastic.post_counts, plastic.pre_owner,
                                          plastic.post_owner, plastic.pre_trace, plastic.pre_seen, plastic.post_trace,
                                          plastic.post_seen, plastic.decay_plus, plastic.decay_minus)

    def _update_values(self, k: int, monitors) -> None:
        """Update on the device the elementwise value populations due at ``k``."""
        lowered = self.lowered
        due = [v for v in self.values if k % v.host.period == 0]
        for value in due:
            _clear_rows[value.blocks, _THREADS](self.status, value.inputs)
            for kind, index in value.host.sources:
                if kind == "count":
                    count = self.counts[index]
                    window = (k // count.host.period - 1) % count.host.pending.shape[0]
                    _take_pending[1, 1](self.status, value.inputs, count.host.row, count.pending, window)
                else:
                    self._apply_map(index, value.inputs, lowered.value_maps[index].destination,
                                    lowered.value_maps[index].channels)
        for value in due:
            host, device = value.host, value.population
            if value.array_step is not None:  # it checks the state itself
                value.array_step[1, _ARRAY_THREADS](self.status, value.flat_state, value.flat_inputs, value.consts,
                                                    value.scratch, host.population, k)
            else:
                value.step[value.blocks, _THREADS](self.status, device.state, value.consts, value.inputs, k,
                                                   host.key, host.consts.shape[1] == 1, device.flags, host.pulses)
                if value.finish is not None:
                    value.finish[1, 1](self.status, device.state, value.consts)
                # a failure it records stops every later kernel (they check ``status`` first)
                _check_finite[value.blocks, _THREADS](device.state, self.status, host.population, k)
            _publish[1, 1](self.status, device.state, value.published, value.output_rows, value.previous,
                           host.previous is not None)
            if host.pulses:
                _schedule_pulses[1, 1](self.status, device.flags, host.n, k, device.source_steps, device.source_ids,
                                       device.source_next)
            for monitor, ids, values in monitors:
                if monitor.population == host.population and k % monitor.every == 0:
                    sample = int(monitor.count[0])
                    _sample[min(_MAX_BLOCKS, max(1, math.ceil(len(monitor.ids) / _THREADS))), _THREADS](
                        self.status, device.state, monitor.row, ids, values, sample)
                    monitor.steps[sample] = k - 1
                    monitor.count[0] = sample + 1
            for g in host.feeds:
                value_map = lowered.value_maps[g]
                scratch = self.maps[g].scratch
                _clear_rows[value.blocks, _THREADS](self.status, scratch)
                self._apply_map(g, scratch, 0, 1)
                target = self.populations[value_map.post]
                if value_map.consumer is Consumer.HOLD:
                    _hold_values[1, 1](self.status, target.ring, value_map.destination, scratch, k, k + host.period)
                else:
                    _set_state_row[1, 1](self.status, target.state, value_map.destination, self.maps[g].targets,
                                         scratch)
            for q, row in host.modulates:
                _set_modulation[1, 1](self.status, self.plastic[q].modulation, row, value.published)

    def _apply_map(self, g: int, rows, first_row: int, channels: int) -> None:
        """Add value map ``g`` of its source's published output into ``rows[first_row ...]`` on the device."""
        value_map, arrays = self.lowered.value_maps[g], self.maps[g]
        published = self.published[value_map.pre]
        if value_map.operator is Operator.ALL_TO_ALL:
            _add_all_to_all[1, 1](self.status, rows, first_row, published, channels, value_map.weight,
                                  value_map.autapses)
        else:
            blocks = min(_MAX_BLOCKS, max(1, math.ceil((len(value_map.row_ptr) - 1) / _THREADS)))
            uniform = value_map.operator is Operator.UNIFORM_SPARSE
            _add_sparse[blocks, _THREADS](self.status, rows, first_row, published, channels, arrays.row_ptr,
                                          arrays.columns, arrays.values, value_map.weight, uniform)

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

    def _download(self, monitors, first_samples: list[int], first_spikes: np.ndarray) -> None:
        """Copy what the stretch added for the host: its spikes (past ``first_spikes``), event counts and samples."""
        counts = self.spike_counts.copy_to_host()
        for device, first, count in zip(self.populations, first_spikes, counts, strict=True):
            host = device.host
            host.spike_count[0] = count
            if count > first:
                host.spike_ids[first:count] = device.spike_ids[first:count].copy_to_host()
                host.spike_steps[first:count] = device.spike_steps[first:count].copy_to_host()
        for device in self.populations:
            if device.drives:
                device.host.drive_events += device.drive_events.copy_to_host()
                device.drive_events.copy_to_device(np.zeros(device.drives, dtype=np.int64))
        self.lowered.synaptic_events += self.events.copy_to_host()
        self.events.copy_to_device(np.zeros(len(self.projections), dtype=np.int64))
        if self.counts:
            self.lowered.count_events += self.count_events.copy_to_host()
            self.count_events.copy_to_device(np.zeros(len(self.counts), dtype=np.int64))
        for (monitor, _, values), first in zip(monitors, first_samples, strict=True):
            count = int(monitor.count[0])
            if count > first:
                monitor.values[first:count] = values[first:count].copy_to_host()


def prepare(lowered: LoweredNetwork) -> CudaRunner:
    return CudaRunner(lowered)
