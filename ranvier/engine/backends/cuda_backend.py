"""The CUDA backend (numba.cuda): the same model step functions as device functions.

Each model's ``step`` is compiled with ``cuda.jit(device=True)`` and called by one thread per
neuron. A step of a population is three small kernels after the update: spike counts per
range of neurons, their prefix sum, and the spike writes, so the spike list comes out in
neuron order exactly as on the CPU. Deliveries launch one block per spike of the chunk, its threads
striding over the spike's synapses (or, for an implicit all-to-all projection, its targets) with
atomic adds into the target's delay ring buffer.

Determinism: the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) runs blocks one after another,
so spikes are delivered in the reference order and results equal the numpy backend's. On a
GPU, blocks run concurrently: inputs reaching one neuron in the same step are summed in a
varying order, which can change float32 rounding and, in chaotic networks, spike times.

State and ring buffers (and a plastic projection's weights and traces) stay on the device for
the whole run: they come to the host at the end of a run, around callbacks (which may read or
change them) and around value-population updates. Learning (STDP) runs the CPU backends'
``apply_stdp`` on one GPU thread per plastic projection and chunk, which keeps its order of
events, and the numpy backend's result, exactly. Each stretch copies back only
what the host collects: the new spikes, synaptic-event counts and monitor samples.
"""

from __future__ import annotations

import math
import types
import warnings

import numpy as np
from numba import config, cuda

from ..kinds import Kind
from ..lowering import LoweredNetwork, Status
from ..model import register_target
from . import Runner, numba_kernels
from .value_updates import deliver_counts, update_values

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
#: neurons whose spikes one thread collects: the spike list is built by a prefix sum over
#: ranges, deterministic and free of shared memory and barriers
_RANGE = 64

_DEVICE_FUNCTIONS: dict[object, object] = {}
_UPDATE_KERNELS: dict[object, object] = {}


def _update_kernel(step_function):
    """The kernel that advances every neuron of a population by one step with ``step_function``."""
    if step_function not in _UPDATE_KERNELS:
        step = _DEVICE_FUNCTIONS.setdefault(step_function, cuda.jit(device=True)(step_function))

        @cuda.jit
        def update(state, consts, arriving, k, key, shared, flags):
            for i in range(cuda.grid(1), state.shape[1], cuda.gridsize(1)):
                flags[i] = step(state, consts, arriving, i, 0 if shared else i, k, key)
                for r in range(len(arriving)):
                    arriving[r][i] = 0.0

        _UPDATE_KERNELS[step_function] = update
    return _UPDATE_KERNELS[step_function]


@cuda.jit
def _range_totals(flags, totals, status, population, k):
    """Thread t counts the spikes of neurons ``t * _RANGE .. (t + 1) * _RANGE - 1``.

    A negative count (a state that is not finite) records ``(1, population, k)`` in ``status``
    unless an earlier kernel already did: kernels run in launch order, so the first failure in
    the reference order is kept.
    """
    for t in range(cuda.grid(1), totals.shape[0], cuda.gridsize(1)):
        total = 0
        for i in range(t * _RANGE, min((t + 1) * _RANGE, flags.shape[0])):
            if flags[i] < 0:
                if status[0] == 0:
                    status[1] = population
                    status[2] = k
                    status[0] = 1
            else:
                total += flags[i]
        totals[t] = total


@cuda.jit
def _range_offsets(totals, spike_count, offsets, overflow, capacity):
    """Exclusive prefix sum of the range totals, starting at the buffer's fill; one thread."""
    if cuda.grid(1) == 0:
        position = spike_count[0]
        for t in range(totals.shape[0]):
            offsets[t] = position
            position += totals[t]
        if position > capacity:
            overflow[0] = 1
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


def _device_version(kernel, helpers: tuple[str, ...]):
    """A CPU backend's loop compiled as a device function, its calls to ``helpers`` (functions of
    :mod:`.numba_kernels`) resolved to device versions of them: one definition for both targets."""
    source = kernel.py_func
    device_helpers = {name: cuda.jit(device=True)(getattr(numba_kernels, name).py_func) for name in helpers}
    function = types.FunctionType(source.__code__, {**source.__globals__, **device_helpers}, source.__name__)
    return cuda.jit(device=True)(function)


_apply_stdp_device = _device_version(numba_kernels.apply_stdp, ("_decayed", "_bounded"))


@cuda.jit
def _apply_stdp(pre_ids, pre_steps, pre_first, pre_last, post_ids, post_steps, post_first, post_last, row_ptr,
                targets, weights, col_ptr, col_synapses, col_sources, pre_trace, pre_seen, post_trace, post_seen,
                decay_plus, decay_minus, params, modulation):
    """The CPU backends' ``apply_stdp`` on one GPU thread: the spikes of a chunk, in time order."""
    if cuda.grid(1) == 0:
        _apply_stdp_device(pre_ids, pre_steps, pre_first, pre_last, post_ids, post_steps, post_first, post_last,
                           row_ptr, targets, weights, col_ptr, col_synapses, col_sources, pre_trace, pre_seen,
                           post_trace, post_seen, decay_plus, decay_minus, params, modulation)


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
        self.flags = cuda.device_array(population.n, dtype=np.int32)
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
        self.update = _update_kernel(population.step_function) if population.kind == Kind.SPIKING else None


class _DeviceProjection:
    def __init__(self, projection):
        self.host = projection
        # an implicit all-to-all projection has no synapse arrays to copy
        self.row_ptr = None if projection.all_to_all else cuda.to_device(projection.row_ptr)
        self.post_ids = None if projection.all_to_all else cuda.to_device(projection.post_ids)
        self.weights = cuda.to_device(projection.weights)
        delays = projection.delay_steps
        self.delays = cuda.to_device(delays if isinstance(delays, np.ndarray) else np.array([delays], np.uint16))
        self.delay_stride = 1 if isinstance(delays, np.ndarray) else 0


class _DevicePlasticity:
    #: the arrays of ``LoweredPlasticity`` that learning changes: copied back with the state
    LEARNED = ("pre_trace", "pre_seen", "post_trace", "post_seen")

    def __init__(self, plastic, projection: _DeviceProjection):
        self.host = plastic
        self.projection = projection
        for name in ("col_ptr", "col_synapses", "col_sources", "decay_plus", "decay_minus", "params", "modulation",
                     *self.LEARNED):
            setattr(self, name, cuda.to_device(getattr(plastic, name)))

    def to_host(self) -> None:
        for name in self.LEARNED:
            getattr(self, name).copy_to_host(getattr(self.host, name))
        self.projection.weights.copy_to_host(self.projection.host.weights)

    def to_device(self) -> None:
        for name in self.LEARNED:
            getattr(self, name).copy_to_device(getattr(self.host, name))
        self.projection.weights.copy_to_device(self.projection.host.weights)


class CudaRunner(Runner):
    """Advances a lowered network on the GPU (or the CUDA simulator)."""

    def __init__(self, lowered: LoweredNetwork):
        self.lowered = lowered
        self.populations = [_DevicePopulation(p) for p in lowered.populations]
        self.projections = [_DeviceProjection(p) for p in lowered.projections]
        self.plastic = [_DevicePlasticity(p, self.projections[p.projection]) for p in lowered.plastic]
        self.events = cuda.to_device(np.zeros(len(lowered.projections), dtype=np.int64))
        self.status = cuda.to_device(np.zeros(3, dtype=np.int64))
        self.overflow = cuda.to_device(np.zeros(1, dtype=np.int64))
        self.monitor_ids = [cuda.to_device(m.ids) for m in lowered.state_monitors]

    def advance(self, start: int, stop: int) -> int:
        """Run on the GPU up to ``stop`` or the next update of an elementwise value population.

        Those update on the host, with the numpy reference's code, between the GPU's stretches.
        """
        lowered = self.lowered
        boundary = lowered.next_value_boundary(start)
        reached = self._advance_on_device(start, stop if boundary is None else min(stop, boundary))
        if lowered.status[0] == Status.OK:
            deliver_counts(lowered, [0] * len(lowered.populations))
            if reached == boundary:
                self.to_host()
                update_values(lowered, reached)
                self.to_device()
        return reached

    def _advance_on_device(self, start: int, stop: int) -> int:
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
            if status[0]:
                lowered.status[:] = (Status.NOT_FINITE, status[1], status[2])
                break
            if self.overflow.copy_to_host()[0]:
                lowered.status[:] = (Status.SPIKE_OVERFLOW, 0, step)
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
                else:
                    _deliver[spikes, _DELIVERY_THREADS](
                        source.spike_ids, source.spike_steps, first[pre], projection.row_ptr, projection.post_ids,
                        projection.weights, projection.host.weight_stride, projection.delays,
                        projection.delay_stride, target.ring, projection.host.receptor, self.events, j)
            for plastic in self.plastic:  # after delivery: a spike carries its synapse's weight of the chunk start
                pre, post = self.populations[plastic.host.pre], self.populations[plastic.host.post]
                learned = plastic.projection
                _apply_stdp[1, 1](pre.spike_ids, pre.spike_steps, first[plastic.host.pre], counts[plastic.host.pre],
                                  post.spike_ids, post.spike_steps, first[plastic.host.post],
                                  counts[plastic.host.post], learned.row_ptr, learned.post_ids, learned.weights,
                                  plastic.col_ptr, plastic.col_synapses, plastic.col_sources, plastic.pre_trace,
                                  plastic.pre_seen, plastic.post_trace, plastic.post_seen, plastic.decay_plus,
                                  plastic.decay_minus, plastic.params, plastic.modulation)
            step += length
        self._download(monitors)
        return step if lowered.status[0] == Status.OK else int(lowered.status[2])

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
        slot = device.ring[k % host.ring.shape[0]]
        arriving = tuple(slot[r] for r in range(host.ring.shape[1]))
        device.update[device.blocks, _THREADS](device.state, device.consts, arriving, k, host.key, device.shared,
                                               device.flags)
        _range_totals[device.range_blocks, _THREADS](device.flags, device.totals, self.status, index, k)
        _range_offsets[1, 1](device.totals, device.spike_count, device.offsets, self.overflow, len(host.spike_ids))
        _write_spikes[device.range_blocks, _THREADS](device.flags, device.offsets, k, device.spike_ids,
                                                     device.spike_steps, self.overflow)

    def to_host(self) -> None:
        for device in self.populations:
            if not device.host.on_host:  # a value population's state lives on the host
                device.state.copy_to_host(device.host.state)
            device.ring.copy_to_host(device.host.ring)
            device.source_next.copy_to_host(device.host.source_next)
        for plastic in self.plastic:
            plastic.to_host()

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

    def _download(self, monitors) -> None:
        """Copy what the host collects after every stretch: spikes, event counts, samples."""
        for device in self.populations:
            host = device.host
            host.spike_count[...] = device.spike_count.copy_to_host()
            count = int(host.spike_count[0])
            host.spike_ids[:count] = device.spike_ids[:count].copy_to_host()
            host.spike_steps[:count] = device.spike_steps[:count].copy_to_host()
        self.lowered.synaptic_events += self.events.copy_to_host()
        self.events.copy_to_device(np.zeros(len(self.projections), dtype=np.int64))
        for monitor, _, values in monitors:
            monitor.values[...] = values.copy_to_host()


def prepare(lowered: LoweredNetwork) -> CudaRunner:
    return CudaRunner(lowered)
