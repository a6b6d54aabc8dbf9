"""The CUDA backend (numba.cuda): the same model step functions as device functions.

A stretch's min-delay chunks run in cooperative launches of one kernel generated for the network's
structure (:mod:`.cuda_chunk`), up to :data:`CHUNKS_PER_LAUNCH` chunks a launch whatever the network
holds; the host writes a plan (a row per chunk: its first step and length, its monitors' sample
indices) and uploads it before each launch. Each chunk is two parts with a grid-wide barrier
after each (on a device without cooperative launches, two launches): ``update`` takes every
neuron of every spiking population through all the chunk's steps (a thread per neuron: drives,
step, finite test, spike flags, state monitor samples), and its last block to finish writes the
spike lists in the reference order (per population by step, then neuron) and emits the
scheduled populations' spikes; ``deliver`` sends every spike of the chunk through every projection (CSR with one or
per-synapse delays, implicit all-to-all, convolution) into the targets' delay ring buffers, by
target (a thread per target neuron gathering its input in the reference order) or by spike (a
block per spike, atomic adds), and its last block to finish runs the chunk's STDP and the value
populations whose windows end with the chunk (:mod:`.cuda_window`). Spike counts stay on the
device: the kernels read them there.

The host reads nothing per chunk. It plans a batch of chunks while the device runs the one before,
and reads ``status`` before launching the next: the kernels stop themselves before a chunk that
could overflow a spike buffer (``Status.PAUSED``: the host takes back the monitor samples it
recorded for the chunks not run and returns their first step, and the simulation empties the
buffers and goes on) and after a failure (a state that is not finite, a full spike buffer: the
first in the reference order). Each part returns at once while ``status`` is set, so the run ends
as if it had stopped there.

Determinism: delivered by target (networks up to ``cuda_chunk.TARGET_DELIVERY_MAX_SYNAPSES``
synapses without convolutions or rows in arbitrary order), every input is summed in the reference
order on any device. Delivered by spike, the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) still runs
blocks one after another and matches the numpy backend, but a GPU runs them concurrently: inputs
reaching one neuron in the same step are summed in a varying order, which can change the rounding
and, in chaotic networks, spike times.

State and ring buffers (and a plastic projection's weights and traces) stay on the device for
the whole run: they come to the host at the end of a run, around callbacks (which may read or
change them) and, around the updates of value populations that update on the host (``Rate``, a
user's ``advance``), the rings of the populations such an update holds its output in and the
state of those it sets, with the value populations' outputs and what the host populations read
and reschedule (:meth:`CudaRunner.to_host`; the learned weights and the other populations stay
on the device). The other value populations (Kuramoto, AKOrN, Astrocyte;
CfC, LTC and ELM as their traced array steps) and learning (STDP, bit-identical to the numpy
backend's weights and traces) update on the device, in ``deliver``'s last block
(:mod:`.cuda_window` says how).
Each stretch copies back only what the host collects: the new spikes, synaptic-event counts and
monitor samples.
"""

from __future__ import annotations

import contextlib
import ctypes
import warnings
from collections.abc import Collection

import numpy as np
from numba import config, cuda, types

from ...errors import BackendError
from ..lowering import LoweredNetwork, Status
from ..model import floor, register_target, sqrt
from . import Runner, array_program, cuda_chunk, cuda_window


def _floor_on_device(x):
    """CUDA's floor (exact) in ``x``'s precision, as numpy's on a float32 or float64 scalar."""
    if x == types.float32:
        return lambda x: libdevice.floorf(x)
    return lambda x: libdevice.floor(x)


def _sqrt_on_device(x):
    """CUDA's square root in ``x``'s precision, correctly rounded, as numpy's."""
    if x == types.float32:
        return lambda x: libdevice.sqrtf(x)
    return lambda x: libdevice.sqrt(x)


if config.ENABLE_CUDASIM:
    # The simulator runs step functions as Python on numpy scalars, where the counter-based
    # random numbers' intended 64-bit wrap-around raises overflow warnings.
    warnings.filterwarnings("ignore", "overflow encountered in scalar", RuntimeWarning, r"ranvier\.engine\.model")
else:
    from numba.cuda import libdevice

    # numba.cuda compiles no numpy function: CUDA's own floor (exact) and square root (correctly
    # rounded, as numpy's), so the device gets the CPU's bits
    register_target("cuda", {floor: _floor_on_device, sqrt: _sqrt_on_device})

# Kernels loop over their work with a grid stride, so any launch size computes the same thing.
# The simulator runs every CUDA thread as a Python thread, so it gets few of them.
_SIMULATED = bool(config.ENABLE_CUDASIM)
_THREADS = 8 if _SIMULATED else 128
_MAX_BLOCKS = 1 if _SIMULATED else 1 << 16
_DELIVERY_THREADS = 4 if _SIMULATED else 64
#: the most blocks the delivery kernel runs: they stride over the chunk's spikes
_MAX_DELIVERY_BLOCKS = 1 if _SIMULATED else 1 << 12
#: whether a stretch's chunks run as cooperative launches of ``chunks``, up to :data:`CHUNKS_PER_LAUNCH` in
#: each (else as two launches each, ``update`` then ``deliver``): set False before a network's first cuda run
COOPERATIVE = True
#: the most chunks one cooperative launch runs (the rows of its plan)
CHUNKS_PER_LAUNCH = 1024


def _launches_cooperatively() -> bool:
    """Whether the device runs cooperative launches (a grid whose blocks synchronise; the simulator does, with one
    block)."""
    if _SIMULATED:
        return True
    try:
        return bool(cuda.get_current_device().COOPERATIVE_LAUNCH)
    except AttributeError:  # a numba.cuda that does not read the attribute
        return False


class _Launch:
    """A configured chunk kernel (``kernel[grid, block]``), launched with its arguments marshalled once.

    numba's dispatcher types and converts every argument at every launch: about 2 µs an array, 0.45 ms
    a chunk of CUBA's hundred-odd arrays on an H200, where the kernels themselves take microseconds. A
    chunk's arguments are the same device arrays every time but for a few integers (``changing``), so
    the first launch after :meth:`reset` goes through numba (compiling the kernel the first time) and
    keeps the kernel's parameters as numba converted them; later launches replace only the changing
    integers and hand that list to ``cuda.core``'s launch, as numba's own launch does. Where numba
    keeps no such kernel (the simulator, a numba.cuda without ``cuda.core``) or an argument is a host
    array (numba copies those to the device at every launch), every launch goes through numba.
    """

    def __init__(self, configured, names: tuple[str, ...], changing: Collection[str]):
        self.configured, self.names = configured, names
        self.changing = [name for name in names if name in changing]
        #: (launch function, launch configuration, kernel, parameters, {name: (index, ctypes type)}), None
        #: before the first launch since :meth:`reset`, False where every launch goes through numba
        self._prepared = None

    def reset(self) -> None:
        """The arguments other than the changing ones may have changed: marshal them again."""
        if self._prepared is not False:
            self._prepared = None

    def __call__(self, arguments: dict) -> None:
        if self._prepared:
            self._launch_prepared(arguments)
            return
        values = [arguments[name] for name in self.names]
        # numba compiles the kernel at its first launch: later launches through numba need no patched NVVM
        compiling = cuda_chunk.unfused() if self._prepared is None else contextlib.nullcontext()
        try:
            with compiling:
                self.configured(*values)
        except AttributeError as error:
            if "row_stack" not in str(error):
                raise
            raise BackendError("cuda: this numba.cuda compiles kernels with np.row_stack, which numpy 2.5 removed "
                               f"(numpy {np.__version__} here): install numpy < 2.5 or a numba-cuda that has "
                               "caught up, or run np.row_stack = np.vstack before the first cuda run") from error
        if self._prepared is None:
            self._prepared = self._prepare(values)

    def _launch_prepared(self, arguments: dict) -> None:
        launch, launch_config, kernel, parameters, slots = self._prepared
        for name, (index, ctype) in slots.items():
            parameters[index] = ctype(arguments[name])
        launch(self.configured.stream, launch_config, kernel, *parameters)

    def _prepare(self, values: list):
        """The launch's parts for ``values``, as numba's ``_Kernel.launch`` makes them, or False."""
        try:
            from numba.cuda import dispatcher

            overloads = self.configured.dispatcher.overloads
            if _SIMULATED or len(overloads) != 1:
                return False
            compiled = next(iter(overloads.values()))
            written_back: list = []
            parameters: list = []
            slots = {}
            for name, argument_type, value in zip(self.names, compiled.argument_types, values, strict=True):
                if name in self.changing:
                    if not isinstance(argument_type, types.Integer):
                        return False
                    slots[name] = (len(parameters), getattr(ctypes, f"c_{argument_type}"))
                compiled._prepare_args(argument_type, value, self.configured.stream, written_back, parameters)
            if written_back:
                return False
            options = {"grid": self.configured.griddim, "block": self.configured.blockdim,
                       "shmem_size": self.configured.sharedmem}
            options["is_cooperative" if dispatcher.CUDA_CORE_GE_1_0 else "cooperative_launch"] = compiled.cooperative
            return (dispatcher.launch, dispatcher.LaunchConfig(**options),
                    compiled._codelibrary.get_cufunc().kernel, parameters, slots)
        except (AttributeError, ImportError, TypeError):  # another numba.cuda: launch through numba
            return False


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
        self.pre_owner = cuda.to_device(np.full(n_pre, cuda_window.NO_OWNER, dtype=np.int64))
        self.post_owner = cuda.to_device(np.full(n_post, cuda_window.NO_OWNER, dtype=np.int64))

    def to_host(self) -> None:
        for name in self.LEARNED:
            getattr(self, name).copy_to_host(getattr(self.host, name))
        self.projection.weights.copy_to_host(self.projection.host.weights)

    def to_device(self) -> None:
        for name in self.LEARNED:
            getattr(self, name).copy_to_device(getattr(self.host, name))
        self.projection.weights.copy_to_device(self.projection.host.weights)


class _DeviceValues:
    """A value population's arrays on the device (its state is its population's; an array step's state and
    inputs also as flat views, which its traced step addresses)."""

    def __init__(self, value, device: _DevicePopulation):
        self.host = value
        self.population = device
        self.consts = cuda.to_device(value.consts)
        self.inputs = cuda.to_device(value.inputs)
        self.published = cuda.to_device(value.published)
        self.previous = cuda.to_device(value.previous if value.previous is not None else value.published)
        self.output_rows = cuda.to_device(value.output_rows)
        if value.trace is not None:
            self.flat_state = device.state.reshape(value.state.size)
            self.flat_inputs = self.inputs.reshape(value.inputs.size)
            self.scratch = cuda.device_array(max(1, array_program.scratch_size(value.trace)))


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
        #: the count windows a host value population's window hands over: those counted into host populations
        #: (the device's own value populations take theirs on the device)
        self._window_counts = [c for c in self.counts if lowered.populations[c.host.post].on_host]
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
        arguments = {
            "status": self.status, "failure": cuda.to_device(np.full(1, cuda_chunk.NO_FAILURE, dtype=np.int64)),
            "done": cuda.to_device(np.zeros(1, dtype=np.int64)), "tiles": layout.tiles,
            "tile_population": cuda.to_device(np.resize(layout.population, tiles)),
            "tile_first": cuda.to_device(np.resize(layout.first, tiles)), "tile_ranges": cuda.to_device(layout.ranges),
            "spike_counts": self.spike_counts,
            "chunk_first": cuda.to_device(np.zeros(len(lowered.populations), dtype=np.int64)),
            "capacities": cuda.to_device(np.array([len(p.spike_ids) for p in lowered.populations], dtype=np.int64)),
            "spike_bounds": cuda.to_device(np.array([p.spike_bound for p in lowered.populations], dtype=np.int64)),
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
        self._window_arguments(arguments)
        self._chunk_arguments = arguments
        # configured once: the launches of a chunk
        #: the arguments that change from chunk to chunk: the columns of the ``chunks`` kernel's plan
        self._plan_columns = cuda_chunk.plan_columns(lowered)
        changing = self._plan_columns
        update_blocks = min(_MAX_BLOCKS, max(1, layout.tiles))
        self._update = _Launch(self.kernels.update[update_blocks, _THREADS], tuple(self.kernels.update_arguments),
                               changing)
        if self.kernels.by_target:
            # a thread per target neuron, grid-stride over each target population
            most = -(-max(lowered.populations[j.post].n for j in lowered.projections) // _DELIVERY_THREADS)
        else:
            # a block per spike, grid-stride over the chunk's spikes (at most the populations' bounds)
            most = sum(lowered.populations[j.pre].spike_bound for j in lowered.projections) * chunk
        deliver_blocks = min(_MAX_DELIVERY_BLOCKS, max(1, most))
        self._deliver = (None if self.kernels.deliver is None else _Launch(
            self.kernels.deliver[deliver_blocks, _DELIVERY_THREADS], tuple(self.kernels.deliver_arguments), changing))
        # ``chunks``: a row of the plan per chunk, uploaded before each launch; its grid is made at its first
        # launch (it is bounded by how many blocks of the compiled kernel the device holds at once)
        arguments["plan"] = cuda.to_device(np.zeros((CHUNKS_PER_LAUNCH, len(self._plan_columns)), dtype=np.int64))
        arguments["batch"] = 0
        self._chunk_blocks = max(update_blocks, -(-deliver_blocks * _DELIVERY_THREADS // _THREADS))
        self._chunks: _Launch | None = None
        self._cooperative = COOPERATIVE and _launches_cooperatively()

    def _window_arguments(self, arguments: dict) -> None:
        """The arguments of the end of a chunk (:mod:`.cuda_window`): learning and value populations."""
        arguments["deliver_done"] = cuda.to_device(np.zeros(1, dtype=np.int64))
        for q, plastic in enumerate(self.plastic):
            arguments.update({f"s{q}_{name}": getattr(plastic, name) for name in cuda_window.PLASTIC_ARGUMENTS})
        for v, value in enumerate(self.values):
            a = f"v{v}_"
            arguments.update({f"{a}state": value.population.state, f"{a}consts": value.consts,
                              f"{a}inputs": value.inputs, f"{a}output_rows": value.output_rows,
                              f"{a}previous": value.previous, f"{a}flags": value.population.flags,
                              f"{a}key": value.host.key})
            if value.host.trace is not None:
                arguments.update({f"{a}flat_state": value.flat_state, f"{a}flat_inputs": value.flat_inputs,
                                  f"{a}scratch": value.scratch})
        for g, arrays in self.maps.items():
            arguments.update({f"g{g}_{name}": getattr(arrays, name) for name in _MAP_ARRAYS})
            arguments[f"g{g}_weight"] = arrays.host.weight
        arguments.update({f"published{index}": published for index, published in self.published.items()})
        for m, _ in cuda_window.value_monitors(self.lowered):
            arguments[f"m{m}_ids"] = self.monitor_ids[m]
            arguments[f"m{m}_sample"] = -1

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
        for m in range(len(monitors)):
            arguments[f"m{m}_values"] = monitors[m][2]
        value_monitors = [(m, lowered.state_monitors[m], self.values[v].host.period)
                          for m, v in cuda_window.value_monitors(lowered)]
        for launch in (self._update, self._deliver, self._chunks):
            if launch is not None:  # this stretch's monitor buffers, say
                launch.reset()
        # The host plans a batch of chunks while the device runs the one before, and reads ``status`` (which
        # waits for it) before it launches the next: the kernels stop themselves before a chunk that could
        # overflow a spike buffer (Status.PAUSED) or after a failure.
        changing = [monitor for _, monitor in self.sampled] + [monitor for _, monitor, _ in value_monitors]
        rows: list[tuple] = []
        counts_before: list[tuple] = []
        launched = None
        stopped = False
        step = start
        while step < stop:
            if len(rows) == CHUNKS_PER_LAUNCH:
                if launched is not None and self._stopped():
                    stopped = True
                    break
                self._launch_planned(rows)
                launched, rows, counts_before = (rows, counts_before), [], []
            length = min(lowered.chunk, stop - step)
            boundary = lowered.next_value_boundary(step)
            if boundary is not None:
                # a chunk ends where an elementwise value population updates
                length = min(length, boundary - step)
            if changing:
                # the monitors' sample indices, recorded on the host now (with the counts before them, to take
                # back the samples of chunks not run)
                counts_before.append(tuple(int(monitor.count[0]) for monitor in changing))
                rows.append((step, length, *(self._sample_steps(monitor, step, length) for _, monitor in self.sampled),
                             *(self._value_sample(monitor, period, step + length)
                               for _, monitor, period in value_monitors)))
            else:
                rows.append((step, length))
            step += length
        if rows and not stopped and not (launched is not None and self._stopped()):
            self._launch_planned(rows)
            launched = (rows, counts_before)
        status = self.status.copy_to_host()
        if status[0] == Status.PAUSED:
            step = self._paused(int(status[2]), launched, changing, start, counts)
            status[:] = Status.OK
        elif status[0]:  # a state that is not finite, or a full spike buffer: the first in the reference order
            lowered.status[:] = status
        self._download(monitors, first_samples, counts)
        if status[0]:
            # the host counted the samples of the chunks it launched: keep those before the failure
            for monitor in lowered.state_monitors:
                kept = self._kept_before(monitor, status)
                monitor.count[0] = np.searchsorted(monitor.steps[:int(monitor.count[0])], kept)
        return step if lowered.status[0] == Status.OK else int(lowered.status[2])

    def _stopped(self) -> bool:
        """Whether the kernels stopped (a pause or a failure in ``status``): waits for the chunks launched."""
        return bool(self.status.copy_to_host()[0])

    def _paused(self, step: int, launched: tuple[list, list], changing: list, start: int, counts: np.ndarray) -> int:
        """The kernels paused before the chunk at ``step``, one of those ``launched`` (their plan's rows and the
        ``changing`` monitors' sample counts before each): clear the pause, take back the samples the host
        recorded for it and the chunks after it, and return ``step``. ``counts``: the spikes the buffers held
        at ``start``; empty buffers that cannot take one chunk would pause for ever."""
        if step == start and not counts.any():
            raise BackendError(f"cuda: the chunk at step {step} could overflow an empty spike buffer; please report "
                               "this")
        self.status.copy_to_device(np.zeros(3, dtype=np.int64))
        rows, counts_before = launched
        if changing:
            row = next(index for index, planned in enumerate(rows) if planned[0] == step)
            for monitor, count in zip(changing, counts_before[row], strict=True):
                monitor.count[0] = count
        return step

    def _launch_planned(self, rows: list[tuple]) -> None:
        """Run the planned chunks (``rows`` of the plan's columns): in one cooperative launch of ``chunks`` (the rows
        uploaded first: the copy waits for the chunks launched before), or (without :data:`COOPERATIVE`, or on a
        device without cooperative launches) two launches each."""
        arguments = self._chunk_arguments
        launch = self._chunks_launch(arguments) if self._cooperative else None
        if launch is not None:
            arguments["plan"][:len(rows)].copy_to_device(np.array(rows, dtype=np.int64))
            arguments["batch"] = len(rows)
            launch(arguments)
            return
        for row in rows:
            arguments.update(zip(self._plan_columns, row, strict=True))
            self._update(arguments)
            if self._deliver is not None:  # its last block learns and updates the value populations
                self._deliver(arguments)

    def _chunks_launch(self, arguments: dict) -> _Launch | None:
        """The configured ``chunks`` kernel: as many blocks as the chunk's two launches use, at most as many as
        the device runs at once (a cooperative grid must be resident), which needs the kernel compiled. None,
        with a warning, where it does not compile (a grid-wide barrier links CUDA's device runtime,
        ``libcudadevrt``, which a machine may lack): chunks then take two launches each."""
        if self._chunks is None:
            kernel, names = self.kernels.chunks, tuple(self.kernels.chunks_arguments)
            blocks = self._chunk_blocks
            if not _SIMULATED:
                try:
                    with cuda_chunk.unfused():
                        compiled = kernel.compile(tuple(kernel.typeof_pyval(arguments[name]) for name in names))
                except Exception as error:  # noqa: BLE001  (any failure to build it leaves the two launches)
                    warnings.warn(f"cuda: the cooperative kernel did not compile ({type(error).__name__}: {error}); "
                                  "each chunk runs as two launches", RuntimeWarning, stacklevel=4)
                    self._cooperative = False
                    return None
                blocks = max(1, min(blocks, compiled.max_cooperative_grid_blocks(_THREADS)))
            self._chunks = _Launch(kernel[blocks, _THREADS], names, ("batch",))
        return self._chunks

    def _kept_before(self, monitor, status: np.ndarray) -> int:
        """The first step of ``monitor``'s samples that a failure (``status``) leaves unrecorded.

        A run that fails at step ``F`` keeps the samples of the steps before ``F``, except that a value
        population's sample at ``F - 1`` is of its update at ``F``: the reference updates the populations due
        at ``F`` in order and stops at the one whose state is not finite, so that one and those after it
        record none.
        """
        order = [value.population for value in self.lowered.values]
        failed, step = int(status[1]), int(status[2])
        if (status[0] == Status.NOT_FINITE and monitor.at_updates and failed in order
                and order.index(monitor.population) >= order.index(failed)):
            return step - 1
        return step

    @staticmethod
    def _sample_steps(monitor, start: int, length: int) -> int:
        """Record on the host the steps ``update`` samples ``monitor`` at in the chunk (``k`` with
        ``(k + 1) % every == 0``); returns the index of the chunk's first sample."""
        base = int(monitor.count[0])
        every = monitor.every
        first = (start // every + 1) * every - 1
        samples = max(0, (start + length - 1 - first) // every + 1)
        if samples == 1:  # the common case (a chunk of one step, or a period of a chunk or more): no array
            monitor.steps[base] = first
        elif samples:
            monitor.steps[base:base + samples] = np.arange(first, first + samples * every, every)
        monitor.count[0] = base + samples
        return base

    @staticmethod
    def _value_sample(monitor, period: int, k: int) -> int:
        """The sample row a value population's monitor gets at step ``k`` (recorded on the host as the state
        after step ``k - 1``), or -1 when the population does not update or the monitor does not sample there."""
        if k % period or k % monitor.every:
            return -1
        sample = int(monitor.count[0])
        monitor.steps[sample] = k - 1
        monitor.count[0] = sample + 1
        return sample

    def to_host(self, rings: Collection[int] | None = None, states: Collection[int] = ()) -> None:
        """Copy the run's state to the host: all of it, or for a host value population's window the rings of
        ``rings``, the state of ``states`` and what the window's update reads and reschedules (the value
        populations' outputs, the host populations' count windows and, of those that pulse, pulse
        schedules); :meth:`to_device` takes the same back."""
        whole = rings is None
        for index, device in enumerate(self.populations):
            # a host value population's state lives on the host
            if (whole or index in states) and not device.host.on_host:
                device.state.copy_to_host(device.host.state)
            if whole or index in rings:
                device.ring.copy_to_host(device.host.ring)
            if whole or _pulses_on_host(device.host):
                device.source_next.copy_to_host(device.host.source_next)
        for plastic in self.plastic if whole else ():
            plastic.to_host()
        for value in self.values:
            value.published.copy_to_host(value.host.published)
            if whole:  # their pulse schedules stay on the device
                value.population.source_steps.copy_to_host(value.population.host.source_steps)
                value.population.source_ids.copy_to_host(value.population.host.source_ids)
            if value.host.previous is not None:
                value.previous.copy_to_host(value.host.previous)
        for count in self.counts if whole else self._window_counts:
            count.pending.copy_to_host(count.host.pending)

    def to_device(self, rings: Collection[int] | None = None, states: Collection[int] = ()) -> None:
        whole = rings is None
        for index, device in enumerate(self.populations):
            host = device.host
            if whole or index in rings:
                device.ring.copy_to_device(host.ring)
            if host.on_host:
                if whole or _pulses_on_host(host):
                    device.source_steps.copy_to_device(host.source_steps)
                    device.source_ids.copy_to_device(host.source_ids)
                    device.source_next.copy_to_device(host.source_next)
            elif whole or index in states:
                device.state.copy_to_device(host.state)
        for plastic in self.plastic if whole else ():
            plastic.to_device()
        for index, published in self.published.items():
            # the host publishes every value population at the start of a run, and its own at their updates
            published.copy_to_device(self.lowered.published[index])
        for count in self.counts if whole else self._window_counts:
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


def _pulses_on_host(population) -> bool:
    """Whether ``population`` is a host value population that pulses: the host reschedules its pulses at its
    updates, so its schedule moves at every handover (a value population's spike bound is 0 without pulses)."""
    return population.on_host and population.spike_bound > 0


def prepare(lowered: LoweredNetwork) -> CudaRunner:
    return CudaRunner(lowered)
