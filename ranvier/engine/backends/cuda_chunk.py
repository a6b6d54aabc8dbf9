"""The cuda backend's chunk kernels, generated per network structure: many min-delay chunks a launch.

A chunk has two parts, each a device function (``_update_chunk``, ``_deliver_chunk``) that the
grid runs together. The kernel ``chunks`` runs a stretch's chunks in one cooperative launch: for
each row of its plan (a chunk's first step and length, and the sample indices of its monitors,
written by the host), the update part, a grid-wide barrier (``cuda.cg.this_grid().sync()``), the
delivery part and another barrier, so every block sees every spike list before it delivers and
every delivery before the next chunk updates. A cooperative grid must fit on the device at once,
so it holds at most as many blocks as the device runs together; every loop below strides over
its work, so any grid computes the same. The kernels ``update`` and ``deliver`` run one part each,
two launches a chunk, where a device runs no cooperative launches (or ``cuda_backend.COOPERATIVE``
is off).

Every delay is at least the chunk length, so a neuron's inputs for the steps of a chunk were all
delivered by earlier chunks: its thread can take it through all of them without waiting for any
other thread. A chunk is therefore

1. the update part: one thread per neuron of every spiking population (the populations in tiles of
   ``blockDim`` neurons, a block per tile, grid-stride over tiles, thread ``x`` of tile ``b``
   on neuron ``tile_first[b] + x``: state column i read by thread i, coalesced). For each step
   it gathers a population's window of input (its own dt), adds its Poisson drives, calls the
   model's step function, tests its column of the state when the model does not check itself,
   clears its input, writes its spike count into ``flags[t, column]``, adds it to its tile's
   total of that step (``tile_totals[t, tile]``, an integer atomic) and writes its state monitor
   samples. The *last block to finish* (``cuda.threadfence`` and an atomic ticket, the CUDA
   threadFenceReduction pattern) then builds the spike lists: a thread per population takes the
   exclusive prefix sum of its tiles' totals, step by step then tile by tile (which is the
   reference order: by step, then neuron), so each (step, tile) knows where its spikes go; the
   block's threads then write the spikes of the tiles that have any, and a thread per scheduled
   population emits its spikes as the CPU backends' ``emit_scheduled`` does.
2. the delivery part: every spike of the chunk through every projection, the spike counts read on the
   device, in one of two ways (:func:`delivers_by_target` picks). *By target*: a thread per target
   neuron gathers its input, projection by projection, spike by spike, bisecting each spiking row
   (its targets ascend, whole or within each delay's run) for the synapses onto it, so every ring
   entry sums in the reference order with no atomics and a GPU gives the CPU backends' bits. *By
   spike*: a block per spike (grid-stride), its threads striding over the spike's synapses with
   atomic adds into the target's ring, which a GPU sums in a varying order. The first thread also
   adds the chunk's spikes into the count projections' windows, on its own, as the CPU backends'
   ``deliver_count`` does (so each window sums in the reference order).
   Its last block to finish then runs the chunk's STDP and the updates of the value populations
   whose windows end with the chunk (:mod:`.cuda_window`), so they take no launch of their own.

The spike lists are built at the end of ``update`` rather than at the start of ``deliver``
because delivery needs every list complete (a block may deliver any spike) and only the end of a
launch, or its last block, knows that every flag is written. The last block reads the chunk's
tile totals (steps x neurons / ``blockDim`` of them) and the flags of only the tiles that spiked,
so no thread loops over all neurons.

The parts find their last block with a counter of their own (``done``, ``deliver_done``), which
that block resets before the barrier: a part's blocks leave it by returning from its device
function, never from the kernel, so each reaches every barrier of ``chunks``.

Failures are recorded in reference order without the host looking: a neuron whose state is not
finite, or a step whose spikes would not fit its buffer, ``atomic.min``s the key
``(population * chunk + step) * 2 + (0 for NOT_FINITE, 1 for an overflow)`` into ``failure``;
the last block writes the smallest into ``status`` (as ``Status``, population, step), keeps the
spikes of the steps before it (in population order, as the CPU backends that stop there) and
clears ``failure``. Both parts return at once while ``status[0]`` is set (every block reads it
after a barrier, so all agree), so every later chunk leaves the state as it is and the run ends
as if it had stopped at the failure.

The kernels also keep the spike buffers from filling without the host looking: a chunk that could
overflow one, were its population to spike at its bound in every step, is not run. Its update
part writes ``Status.PAUSED`` and the chunk's first step into ``status`` instead, every later
chunk returns at once, and the host empties the buffers and goes on from that step. So the host
plans a stretch's chunks without reading the device's spike counts.

Kernels are compiled with ``cache=True`` from source written to the kernel cache (see
:mod:`.kernel_cache`), named by a fingerprint of the source, the models' code and the libraries.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from dataclasses import dataclass

import numpy as np
from numba import cuda

from ..kinds import Kind
from ..lowering import LoweredNetwork, LoweredProjection, Status
from . import cuda_window, kernel_cache, numba_backend, numba_kernels
from .fingerprint import kernel_fingerprint
from .source_writer import SourceWriter

#: the key of ``failure`` when nothing failed (above every real key)
NO_FAILURE = np.iinfo(np.int64).max


@contextlib.contextmanager
def unfused():
    """While active, NVVM compiles kernels without fused multiply-adds (``-fma=0``).

    NVVM contracts ``a * b + c`` into one fused operation by default, rounded once where the CPU
    backends round the product and the sum apiece; numba.cuda has no switch for it. On an H200, kernels
    compiled with it parted the membrane potentials of a per-synapse-delay CUBA from numpy's by
    1.1e-8 V in 50 ms, and CUBA's spikes from numba's within a second, even delivered by target; the
    fused operations are the likely cause. Kernels compiled while active hold none in their PTX
    (``benchmarks/gpu/ptx_check.py`` counts them); that they then give the CPU's bits on a GPU is
    still to be measured. A kernel compiled with ``fastmath`` keeps its fused operations.
    """
    try:
        from numba.cuda.cudadrv import nvvm
    except ImportError:  # the simulator: nothing is compiled
        yield
        return
    compile_ir = nvvm.compile_ir

    def compile_unfused(llvmir, **options):
        if not options.get("fastmath"):
            options.setdefault("fma", False)
        return compile_ir(llvmir, **options)

    nvvm.compile_ir = compile_unfused
    try:
        yield
    finally:
        nvvm.compile_ir = compile_ir


@dataclass
class TileLayout:
    """The spiking populations' neurons in tiles of ``width``: tile b holds neurons ``first[b] ..
    first[b] + width - 1`` of population ``population[b]``; population p owns tiles
    ``ranges[p, 0] .. ranges[p, 1] - 1`` (none for a scheduled population)."""

    width: int
    population: np.ndarray
    first: np.ndarray
    ranges: np.ndarray

    @property
    def tiles(self) -> int:
        return len(self.population)


def tile_layout(lowered: LoweredNetwork, width: int) -> TileLayout:
    population, first = [], []
    ranges = np.zeros((len(lowered.populations), 2), dtype=np.int64)
    for index, lowered_population in enumerate(lowered.populations):
        ranges[index, 0] = len(population)
        if lowered_population.kind == Kind.SPIKING:
            for start in range(0, lowered_population.n, width):
                population.append(index)
                first.append(start)
        ranges[index, 1] = len(population)
    return TileLayout(width, np.array(population, dtype=np.int64), np.array(first, dtype=np.int64), ranges)


#: the CPU backends' loops as device functions (they do not use ``cuda``), imported by the kernels
emit_scheduled = cuda.jit(device=True)(numba_kernels.emit_scheduled.py_func)
deliver_count = cuda.jit(device=True)(numba_kernels.deliver_count.py_func)
bisect = cuda.jit(device=True)(numba_kernels._bisect.py_func)


# The device functions below are written into each generated kernel module (``_DEVICE_FUNCTIONS``)
# and compiled there: numba's CUDA simulator swaps its fake ``cuda`` module into the globals of
# the kernel that runs, and a device function of another module that uses ``cuda`` would see
# the real one whenever another of the block's threads leaves it first.


def write_tile(flags, t, column, first, n, width, position, k, spike_ids, spike_steps):
    """Write the spikes of row ``t`` of one tile (columns ``column ..``, neurons ``first ..``) from ``position``."""
    # not min(width, n - first): numba.cuda cannot compile min of an int32 and an int64
    columns = n - first
    if width < columns:
        columns = width
    for x in range(columns):
        for _ in range(flags[t, column + x]):
            spike_ids[position] = first + x
            spike_steps[position] = k
            position += 1


def deliver_csr(s, spike_ids, spike_steps, row_ptr, post_ids, weights, weight_stride, delays, delay_stride, ring,
                receptor):
    """Spike s through its CSR row: ``ring[(sent + delay) % slots, receptor, post] += w`` per synapse,
    the block's threads striding over the row; returns the row's length (synaptic events)."""
    neuron = spike_ids[s]
    begin = row_ptr[neuron]
    end = row_ptr[neuron + 1]
    slots = ring.shape[0]
    sent = spike_steps[s]
    for synapse in range(begin + cuda.threadIdx.x, end, cuda.blockDim.x):
        slot = (sent + delays[synapse * delay_stride]) % slots
        cuda.atomic.add(ring, (slot, receptor, post_ids[synapse]), weights[synapse * weight_stride])
    return end - begin


def deliver_all_to_all(s, spike_ids, spike_steps, width, autapses, weights, delays, ring, receptor):
    """Spike s to targets ``0 .. width - 1`` (skipping its own neuron without ``autapses``) with the one weight."""
    neuron = spike_ids[s]
    slot = (spike_steps[s] + delays[0]) % ring.shape[0]
    for target in range(cuda.threadIdx.x, width, cuda.blockDim.x):
        if autapses or target != neuron:
            cuda.atomic.add(ring, (slot, receptor, target), weights[0])
    return width if autapses else width - 1


def deliver_convolution(s, spike_ids, spike_steps, row_ptr, geometry, kernel, delays, ring, receptor):
    """Spike s through a convolution, the threads striding over (output channel of its group, tap)
    pairs (the geometry as in ``numba_kernels.deliver_convolution``); returns its synapse count."""
    neuron = spike_ids[s]
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
    return row_ptr[neuron + 1] - row_ptr[neuron]


def gather_csr(target, first, last, spike_ids, spike_steps, row_ptr, post_ids, weights, weight_stride, delays,
               delay_stride, ring, receptor):
    """Spikes ``first .. last - 1`` through their CSR rows onto one ``target``, in the reference order.

    Each row's targets ascend, so its synapses onto ``target`` are the run that a bisection for
    it finds; each adds ``ring[(sent + delay) % slots, receptor, target] += w``, by the thread
    that owns the target (no atomics: spike by spike, synapse by synapse, as the CPU backends).
    """
    slots = ring.shape[0]
    for s in range(first, last):
        neuron = spike_ids[s]
        end = row_ptr[neuron + 1]
        synapse = bisect(post_ids, row_ptr[neuron], end, target)
        sent = spike_steps[s]
        while synapse < end and post_ids[synapse] == target:
            ring[(sent + delays[synapse * delay_stride]) % slots, receptor, target] += weights[synapse * weight_stride]
            synapse += 1


def gather_csr_by_delay(target, first, last, spike_ids, spike_steps, row_ptr, post_ids, weights, weight_stride,
                        delays, ring, receptor):
    """:func:`gather_csr` of rows in order of delay whose targets ascend within each delay's run (what
    ``Network.connect`` makes of per-synapse delays without plasticity).

    A run of one delay is found by bisecting the delays for the next one, and bisected for
    ``target``; a spike's synapses onto one entry stay in their row order, as in the CPU backends.
    """
    slots = ring.shape[0]
    for s in range(first, last):
        neuron = spike_ids[s]
        begin = row_ptr[neuron]
        end = row_ptr[neuron + 1]
        sent = spike_steps[s]
        while begin < end:
            delay = delays[begin]
            run_end = bisect(delays, begin, end, delay + 1)
            synapse = bisect(post_ids, begin, run_end, target)
            while synapse < run_end and post_ids[synapse] == target:
                ring[(sent + delay) % slots, receptor, target] += weights[synapse * weight_stride]
                synapse += 1
            begin = run_end


def gather_all_to_all(target, first, last, spike_ids, spike_steps, width, autapses, weights, delays, ring, receptor):
    """Spikes ``first .. last - 1`` onto one ``target`` of an all-to-all projection, in the reference order."""
    if target >= width:
        return
    slots = ring.shape[0]
    for s in range(first, last):
        if autapses or spike_ids[s] != target:
            ring[(spike_steps[s] + delays[0]) % slots, receptor, target] += weights[0]


def row_length(s, spike_ids, row_ptr):
    """The synapse count of spike ``s``'s CSR row (its synaptic events)."""
    return row_ptr[spike_ids[s] + 1] - row_ptr[spike_ids[s]]


_DEVICE_FUNCTIONS = (write_tile, deliver_csr, deliver_all_to_all, deliver_convolution, gather_csr,
                     gather_csr_by_delay, gather_all_to_all, row_length)

#: networks of at most this many synapses deliver by target (:func:`delivers_by_target`). On an H200
#: (``benchmarks/gpu/gpu_checks.py``, section ``delivery``) by target was the faster on both networks
#: timed: CUBA (0.32 M synapses; 3.50 against 5.26 s per simulated s) and CUBA-dense (10.0 M; 4.43 against
#: 4.85). Nothing larger was timed by target, so the bound sits just above CUBA-dense and the
#: microcircuit (0.3 G) delivers by spike, with atomic adds as GeNN and NEST GPU do
TARGET_DELIVERY_MAX_SYNAPSES = 12_000_000


def delivers_by_target(lowered: LoweredNetwork) -> bool:
    """Whether ``deliver`` gives each target neuron a thread that gathers its input (else a block per spike,
    atomic adds).

    By target, each ring entry sums its input in the reference order (projection by projection,
    spike by spike, synapse by synapse), so a GPU gives the CPU backends' bits; a target's thread
    bisects every spiking row of its projections for its synapses, which costs targets x spikes x
    log(row) where atomics cost the synaptic events. It needs rows whose targets ascend, whole or
    within each delay's run (:func:`_gather`: every connection rule but ``FromArrays`` in an
    arbitrary order) and no convolution, and is taken up to :data:`TARGET_DELIVERY_MAX_SYNAPSES`
    synapses.
    """
    projections = lowered.projections
    if not projections or any(projection.geometry is not None for projection in projections):
        return False
    synapses = sum(projection.width * lowered.populations[projection.pre].n if projection.all_to_all
                   else int(projection.row_ptr[-1]) for projection in projections)
    return synapses <= TARGET_DELIVERY_MAX_SYNAPSES and all(
        projection.all_to_all or _gather(projection) is not None for projection in projections)


def _gather(projection: LoweredProjection) -> str | None:
    """The device function that gathers a CSR projection's input by target: ``gather_csr`` for rows whose
    targets ascend, ``gather_csr_by_delay`` for rows in order of delay that ascend within each delay,
    None for others."""
    targets = projection.post_ids.view(np.uint32)
    if numba_kernels.rows_ascending(projection.row_ptr, targets):
        return "gather_csr"
    if projection.per_synapse_delays and numba_kernels.rows_by_delay_then_target(
            projection.row_ptr, projection.delay_steps, targets):
        return "gather_csr_by_delay"
    return None


#: the arguments of ``update`` every network has, before the populations' and monitors'
UPDATE_ARGUMENTS = ["start", "length", "status", "failure", "done", "tiles", "tile_population", "tile_first",
                    "tile_ranges", "spike_counts", "chunk_first", "capacities", "spike_bounds", "offsets", "step_ends",
                    "flags", "tile_totals"]
#: the arguments of ``deliver`` every network has, before the populations' and projections'
DELIVER_ARGUMENTS = ["status", "chunk_first", "spike_counts", "events"]
#: population p's arrays, as arguments ``p{p}_<name>``: of a spiking population, of its Poisson drives,
#: of a scheduled one
SPIKING_ARGUMENTS = ["state", "consts", "ring", "key"]
DRIVE_ARGUMENTS = ["drive_params", "drive_weights", "drive_keys", "drive_events"]
SCHEDULED_ARGUMENTS = ["source_steps", "source_ids", "source_next"]
#: state monitor m's arrays (``m{m}_<name>``): the sampled row and period, the samples, the sample
#: index at the chunk's start, and by neuron the CSR of the sample columns that read it
MONITOR_ARGUMENTS = ["row", "every", "values", "base", "neuron_ptr", "columns"]
#: projection j's arrays (``j{j}_<name>``), by how it delivers
CSR_ARGUMENTS = ["row_ptr", "post_ids", "weights", "weight_stride", "delays", "delay_stride"]
ALL_TO_ALL_ARGUMENTS = ["width", "autapses", "weights", "delays"]
CONVOLUTION_ARGUMENTS = ["row_ptr", "geometry", "weights", "delays"]
#: count projection c's arrays (``c{c}_<name>``), as ``numba_kernels.deliver_count`` reads them
COUNT_ARGUMENTS = ["row_ptr", "post_ids", "weights", "weight_stride", "delay_steps", "per_synapse_delays",
                   "all_to_all", "autapses", "pending", "period"]


def population_arguments(lowered: LoweredNetwork, index: int) -> list[str]:
    population = lowered.populations[index]
    p = f"p{index}_"
    names = [f"{p}spike_ids", f"{p}spike_steps"]
    if population.kind == Kind.SPIKING:
        names += [p + name for name in SPIKING_ARGUMENTS]
        if len(population.drive_names):
            names += [p + name for name in DRIVE_ARGUMENTS]
    else:
        names += [p + name for name in SCHEDULED_ARGUMENTS]
    return names


def sampled_monitors(lowered: LoweredNetwork) -> list[int]:
    """The state monitors ``update`` samples: those of spiking populations (an elementwise value
    population's are sampled at its updates)."""
    return [m for m, monitor in enumerate(lowered.state_monitors)
            if not monitor.at_updates and lowered.populations[monitor.population].kind == Kind.SPIKING]


def projection_arguments(lowered: LoweredNetwork, j: int) -> list[str]:
    projection = lowered.projections[j]
    if projection.all_to_all:
        names = ALL_TO_ALL_ARGUMENTS
    elif projection.geometry is not None:
        names = CONVOLUTION_ARGUMENTS
    else:
        names = CSR_ARGUMENTS
    return [f"j{j}_{name}" for name in names]


def _update_arguments(lowered: LoweredNetwork) -> list[str]:
    names = list(UPDATE_ARGUMENTS)
    for index in range(len(lowered.populations)):
        names += population_arguments(lowered, index)
    for m in sampled_monitors(lowered):
        names += [f"m{m}_{name}" for name in MONITOR_ARGUMENTS]
    return names


def _deliver_arguments(lowered: LoweredNetwork) -> list[str]:
    names = list(DELIVER_ARGUMENTS)
    sources = sorted({projection.pre for projection in lowered.projections + lowered.counts})
    names += [f"p{index}_{name}" for index in sources for name in ("spike_ids", "spike_steps")]
    names += [f"p{index}_ring" for index in sorted({projection.post for projection in lowered.projections})]
    for j in range(len(lowered.projections)):
        names += projection_arguments(lowered, j)
    if lowered.counts:
        names.append("count_events")
    for c in range(len(lowered.counts)):
        names += [f"c{c}_{name}" for name in COUNT_ARGUMENTS]
    return list(dict.fromkeys(names + cuda_window.arguments(lowered)))


def _write_neuron(w: SourceWriter, lowered: LoweredNetwork, index: int, alias: str) -> None:
    """``_neuron{index}``: neuron i of population ``index`` through the chunk's steps."""
    population = lowered.populations[index]
    p = f"p{index}_"
    drives = len(population.drive_names)
    monitors = [m for m in sampled_monitors(lowered) if lowered.state_monitors[m].population == index]
    cast = "np.float64" if lowered.dtype == np.float64 else "np.float32"
    arguments = ["i", "column", "tile", "start", "length", "failure", "flags", "tile_totals",
                 *(p + name for name in SPIKING_ARGUMENTS), *(p + name for name in DRIVE_ARGUMENTS if drives),
                 *(f"m{m}_{name}" for m in monitors for name in MONITOR_ARGUMENTS)]
    receptors = population.ring.shape[1]
    w()
    w()
    w("@cuda.jit(device=True)")
    with w.block(f"def _neuron{index}({', '.join(arguments)}):"):
        w(f"slots = {p}ring.shape[0]")
        for m in range(drives):
            w(f"events{m} = 0")
        with w.block("for t in range(length):"):
            w("k = start + t")
            w("count = 0")
            period = population.period
            with w.block(f"if (k + 1) % {period} == 0:"):
                w("slot = k % slots")
                if period > 1:
                    # a population with its own dt updates once per window, on the window's summed input,
                    # summed in the CPU backends' order
                    with w.block(f"for r in range({receptors}):"):
                        w(f"total = {p}ring[slot, r, i]")
                        with w.block(f"for back in range({period - 1}, 0, -1):"):
                            w(f"total += {p}ring[(k - back) % slots, r, i]")
                            w(f"{p}ring[(k - back) % slots, r, i] = 0.0")
                        w(f"{p}ring[slot, r, i] = total")
                for m in range(drives):
                    receptor = int(population.drive_receptors[m])
                    w(f"drawn = poisson_count(uniform01({p}drive_keys[{m}], k, i), {p}drive_params[{m}, 0], "
                      f"{p}drive_params[{m}, 1])")
                    with w.block("if drawn != 0:"):
                        w(f"{p}ring[slot, {receptor}, i] += {cast}(drawn) * {p}drive_weights[{m}]")
                        w(f"events{m} += drawn")
                arriving = "".join(f"{p}ring[slot, {r}], " for r in range(receptors))
                shared = population.consts.shape[1] == 1
                w(f"count = {alias}({p}state, {p}consts, ({arriving}), i, {'0' if shared else 'i'}, k, {p}key)")
                if not population.checks_finite:
                    # a step writes only its own neuron's column: the threads together test the whole state
                    with w.block(f"for row in range({p}state.shape[0]):"):
                        with w.block(f"if not math.isfinite({p}state[row, i]):"):
                            w("count = NOT_FINITE")
                for r in range(receptors):
                    w(f"{p}ring[slot, {r}, i] = 0.0")
                with w.block("if count < 0:"):
                    w(f"cuda.atomic.min(failure, 0, ({index} * {lowered.chunk} + t) * 2)")
                    w("count = 0")
                with w.block("elif count > 0:"):
                    w("cuda.atomic.add(tile_totals, (t, tile), count)")
            w("flags[t, column] = count")
            for m in monitors:
                q = f"m{m}_"
                with w.block(f"if (k + 1) % {q}every == 0:"):
                    w(f"sample = {q}base + (k + 1) // {q}every - start // {q}every - 1")
                    with w.block(f"for entry in range({q}neuron_ptr[i], {q}neuron_ptr[i + 1]):"):
                        w(f"{q}values[sample, {q}columns[entry]] = {p}state[{q}row, i]")
        for m in range(drives):
            with w.block(f"if events{m} != 0:"):
                w(f"cuda.atomic.add({p}drive_events, {m}, events{m})")


def _write_update(w: SourceWriter, lowered: LoweredNetwork) -> None:
    populations = lowered.populations
    chunk = lowered.chunk
    spiking = [index for index, population in enumerate(populations) if population.kind == Kind.SPIKING]
    w()
    w()
    w("@cuda.jit(device=True)")
    with w.block(f"def _update_chunk({', '.join(_update_arguments(lowered))}):"):
        with w.block("if status[0] != 0:"):
            w("return")
        w("# a chunk that could overflow a spike buffer, were its population to spike at its bound in every step,")
        w("# waits for the host to empty the buffers: every thread reads the same counts, so all return")
        with w.block(f"for p in range({len(populations)}):"):
            with w.block("if spike_counts[p] + spike_bounds[p] * length > capacities[p]:"):
                with w.block("if cuda.blockIdx.x == 0 and cuda.threadIdx.x == 0:"):
                    w("status[2] = start")
                    w(f"status[0] = {int(Status.PAUSED)}")
                w("return")
        w("x = cuda.threadIdx.x")
        w("width = cuda.blockDim.x")
        with w.block("for tile in range(cuda.blockIdx.x, tiles, cuda.gridDim.x):"):
            w("population = tile_population[tile]")
            w("i = tile_first[tile] + x")
            w("column = tile * width + x")
            for position, index in enumerate(spiking):
                p = f"p{index}_"
                monitors = [m for m in sampled_monitors(lowered) if lowered.state_monitors[m].population == index]
                drives = len(populations[index].drive_names)
                arguments = ["i", "column", "tile", "start", "length", "failure", "flags", "tile_totals",
                             *(p + name for name in SPIKING_ARGUMENTS),
                             *(p + name for name in DRIVE_ARGUMENTS if drives),
                             *(f"m{m}_{name}" for m in monitors for name in MONITOR_ARGUMENTS)]
                with w.block(f"{'if' if position == 0 else 'elif'} population == {index} and i < {p}state.shape[1]:"):
                    w(f"_neuron{index}({', '.join(arguments)})")
        w("# the last block to finish builds the chunk's spike lists (every other block's writes are visible)")
        cuda_window.write_last_block(w, "done")
        w("# each population's spike positions: by step, then tile (the reference order)")
        with w.block(f"for p in range(x, {len(populations)}, width):"):
            w("position = spike_counts[p]")
            w("chunk_first[p] = position")
            with w.block("if tile_ranges[p, 0] < tile_ranges[p, 1]:"):
                with w.block("for t in range(length):"):
                    with w.block("for tile in range(tile_ranges[p, 0], tile_ranges[p, 1]):"):
                        w("offsets[t, tile] = position")
                        w("position += tile_totals[t, tile]")
                    w("step_ends[t, p] = position")
                    with w.block("if position > capacities[p]:"):
                        w(f"cuda.atomic.min(failure, 0, (p * {chunk} + t) * 2 + 1)")
                        w("break")
        w("cuda.syncthreads()")
        w("failed = failure[0] // 2")
        if spiking:
            w("# the spikes of the tiles that spiked, before the first failure")
            with w.block("for entry in range(x, length * tiles, width):"):
                w("t = entry // tiles")
                w("tile = entry - t * tiles")
                with w.block("if tile_totals[t, tile] != 0:"):
                    w("tile_totals[t, tile] = 0")
                    w("population = tile_population[tile]")
                    with w.block(f"if population * {chunk} + t < failed:"):
                        for position, index in enumerate(spiking):
                            p = f"p{index}_"
                            with w.block(f"{'if' if position == 0 else 'elif'} population == {index}:"):
                                w(f"write_tile(flags, t, tile * width, tile_first[tile], {p}state.shape[1], width, "
                                  f"offsets[t, tile], start + t, {p}spike_ids, {p}spike_steps)")
        w("# the new spike counts; scheduled populations emit theirs")
        w(f"failed_population = failed // {chunk}")
        w(f"failed_step = failed - failed_population * {chunk}")
        with w.block(f"for p in range(x, {len(populations)}, width):"):
            for position, index in enumerate(range(len(populations))):
                p = f"p{index}_"
                with w.block(f"{'if' if position == 0 else 'elif'} p == {index}:"):
                    if populations[index].kind == Kind.SPIKING:
                        with w.block("if p < failed_population:"):
                            w("spike_counts[p] = step_ends[length - 1, p]")
                        with w.block("elif p == failed_population and failed_step > 0:"):
                            w("spike_counts[p] = step_ends[failed_step - 1, p]")
                    else:
                        w("count = spike_counts[p]")
                        with w.block("for t in range(length):"):
                            with w.block(f"if p * {chunk} + t >= failed:"):
                                w("break")
                            w(f"count = emit_scheduled({p}source_steps, {p}source_ids, {p}source_next, start + t, "
                              f"{p}spike_ids, {p}spike_steps, count)")
                        w("spike_counts[p] = count")
        w("cuda.syncthreads()")
        with w.block("if x == 0:"):
            with w.block("if failure[0] != NO_FAILURE:"):
                w("status[1] = failed_population")
                w("status[2] = start + failed_step")
                w(f"status[0] = {int(Status.NOT_FINITE)} if failure[0] % 2 == 0 else {int(Status.SPIKE_OVERFLOW)}")
                w("failure[0] = NO_FAILURE")
            w("done[0] = 0")


def _write_deliver(w: SourceWriter, lowered: LoweredNetwork, by_target: bool) -> None:
    projections = lowered.projections
    w()
    w()
    w("@cuda.jit(device=True)")
    with w.block(f"def _deliver_chunk({', '.join(_deliver_arguments(lowered))}):"):
        with w.block("if status[0] != 0:"):
            w("return")
        if lowered.counts:
            # count projections add into windows of their own, each in the reference order: on one thread
            with w.block("if cuda.blockIdx.x == 0 and cuda.threadIdx.x == 0:"):
                for c, count in enumerate(lowered.counts):
                    a = f"p{count.pre}_"
                    w(f"count_events[{c}] += deliver_count({a}spike_ids, {a}spike_steps, chunk_first[{count.pre}], "
                      f"spike_counts[{count.pre}], {', '.join(f'c{c}_{name}' for name in COUNT_ARGUMENTS)})")
        if projections:
            _write_spike_delivery(w, lowered, by_target)
        if cuda_window.needed(lowered):
            cuda_window.write_end(w, lowered)


def _write_spike_delivery(w: SourceWriter, lowered: LoweredNetwork, by_target: bool) -> None:
    """Every spike of the chunk through every projection: a block per spike, or a thread per target."""
    projections = lowered.projections
    for j, projection in enumerate(projections):
        w(f"end{j} = {f'end{j - 1} + ' if j else ''}spike_counts[{projection.pre}] - chunk_first[{projection.pre}]")
        w(f"events{j} = 0")
    if by_target:
        _write_target_delivery(w, lowered)
        return
    def deliver(j: int, projection) -> None:
        pre, post, q = f"p{projection.pre}_", f"p{projection.post}_", f"j{j}_"
        spikes = f"s, {pre}spike_ids, {pre}spike_steps"
        if projection.all_to_all:
            call = (f"deliver_all_to_all({spikes}, {q}width, {q}autapses, {q}weights, {q}delays, "
                    f"{post}ring, {projection.receptor})")
        elif projection.geometry is not None:
            call = (f"deliver_convolution({spikes}, {q}row_ptr, {q}geometry, {q}weights, {q}delays, "
                    f"{post}ring, {projection.receptor})")
        else:
            call = (f"deliver_csr({spikes}, {q}row_ptr, {q}post_ids, {q}weights, {q}weight_stride, "
                    f"{q}delays, {q}delay_stride, {post}ring, {projection.receptor})")
        w(f"events{j} += {call}")

    w("# a block per spike, projection after projection, each projection's spikes in their list's order")
    # the block's threads take one spike at a time: on the simulator, whose blocks run one
    # after another, every ring entry then receives its additions in the reference order
    _write_spike_entries(w, lowered, "cuda.blockIdx.x", "cuda.gridDim.x", deliver, then="cuda.syncthreads()")
    with w.block("if cuda.threadIdx.x == 0:"):
        for j in range(len(projections)):
            with w.block(f"if events{j} != 0:"):
                w(f"cuda.atomic.add(events, {j}, events{j})")


def _write_spike_entries(w: SourceWriter, lowered: LoweredNetwork, first: str, stride: str, body,
                         then: str | None = None) -> None:
    """``for entry in range(first, <the chunk's spikes of all projections>, stride)``: for projection j's
    entries, ``s`` (the spike) and ``body(j, projection)``; then the line ``then`` in every entry."""
    projections = lowered.projections
    with w.block(f"for entry in range({first}, end{len(projections) - 1}, {stride}):"):
        for j, projection in enumerate(projections):
            with w.block(f"{'if' if j == 0 else 'elif'} entry < end{j}:"):
                w(f"s = chunk_first[{projection.pre}] + entry{f' - end{j - 1}' if j else ''}")
                body(j, projection)
        if then is not None:
            w(then)


def _write_target_delivery(w: SourceWriter, lowered: LoweredNetwork) -> None:
    """A thread per spike counts the synaptic events; a thread per target neuron gathers its input."""
    projections = lowered.projections
    def count(j: int, projection) -> None:
        q = f"j{j}_"
        if projection.all_to_all:
            w(f"events{j} += {q}width if {q}autapses else {q}width - 1")
        else:
            w(f"events{j} += row_length(s, p{projection.pre}_spike_ids, {q}row_ptr)")

    w("thread = cuda.grid(1)")
    w("threads = cuda.gridsize(1)")
    _write_spike_entries(w, lowered, "thread", "threads", count)
    w("# each target's input projection by projection, spike by spike: the reference order")
    for post in sorted({projection.post for projection in projections}):
        with w.block(f"for target in range(thread, p{post}_ring.shape[2], threads):"):
            for j, projection in enumerate(projections):
                if projection.post != post:
                    continue
                pre, q = f"p{projection.pre}_", f"j{j}_"
                spikes = (f"target, chunk_first[{projection.pre}], spike_counts[{projection.pre}], {pre}spike_ids, "
                          f"{pre}spike_steps")
                if projection.all_to_all:
                    w(f"gather_all_to_all({spikes}, {q}width, {q}autapses, {q}weights, {q}delays, p{post}_ring, "
                      f"{projection.receptor})")
                elif _gather(projection) == "gather_csr":
                    w(f"gather_csr({spikes}, {q}row_ptr, {q}post_ids, {q}weights, {q}weight_stride, {q}delays, "
                      f"{q}delay_stride, p{post}_ring, {projection.receptor})")
                else:
                    w(f"gather_csr_by_delay({spikes}, {q}row_ptr, {q}post_ids, {q}weights, {q}weight_stride, "
                      f"{q}delays, p{post}_ring, {projection.receptor})")
    for j in range(len(projections)):
        with w.block(f"if events{j} != 0:"):
            w(f"cuda.atomic.add(events, {j}, events{j})")


def generate(lowered: LoweredNetwork, by_target: bool) -> str:
    """The source of the network's kernels (``advance = (update, deliver, chunks)``; ``deliver`` is None
    without spike and count projections, learning and value populations), delivering by target or by
    spike (:func:`delivers_by_target`)."""
    functions = numba_backend.spiking_steps(lowered)
    w = SourceWriter()
    w("# Generated by ranvier.engine.backends.cuda_chunk; do not edit.")
    w(f"# {lowered.dtype.name} state, constants, rings and weights; chunks of at most {lowered.chunk} steps")
    w("import math")
    w("import numpy as np")
    w("from numba import cuda")
    w("from ranvier.engine.model import NOT_FINITE, exp, poisson_count, tanh, uniform01")
    w("from ranvier.engine.backends.cuda_chunk import NO_FAILURE, bisect, deliver_count, emit_scheduled")
    w("from ranvier.engine.backends.cuda_window import (NO_OWNER, add_all_to_all, advance_trace, hold_values,")
    w("    learn_synapse, publish, schedule_pulses, set_modulation, set_state_row, take_pending)")
    for function in (*_DEVICE_FUNCTIONS, *cuda_window.DEVICE_FUNCTIONS):
        w()
        w()
        w("@cuda.jit(device=True)")
        w.lines += inspect.getsource(function).rstrip("\n").split("\n")
    for alias in functions.values():
        w(f"{alias} = cuda.jit(device=True)(_py{alias})")
    for index, population in enumerate(lowered.populations):
        if population.kind == Kind.SPIKING:
            _write_neuron(w, lowered, index, functions[population.step_function])
    cuda_window.write_functions(w, lowered)
    _write_update(w, lowered)
    delivers = _delivers(lowered)
    if delivers:
        _write_deliver(w, lowered, by_target)
    _write_kernels(w, lowered)
    w()
    w()
    w(f"advance = (update, {'deliver' if delivers else 'None'}, chunks)")
    return "\n".join(w.lines) + "\n"


def _delivers(lowered: LoweredNetwork) -> bool:
    """Whether a chunk has a delivery part: spike or count projections, learning or value populations."""
    return bool(lowered.projections or lowered.counts) or cuda_window.needed(lowered)


def plan_columns(lowered: LoweredNetwork) -> list[str]:
    """The columns of ``chunks``' plan, a row per chunk: the arguments that change from chunk to chunk (its
    first step and length, the first sample of each state monitor ``update`` samples, the sample row of
    each value population's monitor or -1)."""
    return ["start", "length", *(f"m{m}_base" for m in sampled_monitors(lowered)),
            *(f"m{m}_sample" for m, _ in cuda_window.value_monitors(lowered))]


def _chunks_arguments(lowered: LoweredNetwork) -> list[str]:
    changing = set(plan_columns(lowered))
    names = _update_arguments(lowered) + (_deliver_arguments(lowered) if _delivers(lowered) else [])
    return ["plan", "batch", *(name for name in dict.fromkeys(names) if name not in changing)]


def _write_kernels(w: SourceWriter, lowered: LoweredNetwork) -> None:
    """The kernels: ``update`` and ``deliver``, a chunk's two launches, and ``chunks``, which runs ``batch``
    chunks (the rows of ``plan``) in one cooperative launch, the whole grid synchronised after each part."""
    update = ", ".join(_update_arguments(lowered))
    deliver = ", ".join(_deliver_arguments(lowered)) if _delivers(lowered) else None
    for name, arguments in (("update", update), ("deliver", deliver)):
        if arguments is not None:
            w()
            w()
            w("@cuda.jit(cache=True)")
            with w.block(f"def {name}({arguments}):"):
                w(f"_{name}_chunk({arguments})")
    w()
    w()
    w("@cuda.jit(cache=True)")
    with w.block(f"def chunks({', '.join(_chunks_arguments(lowered))}):"):
        w("grid = cuda.cg.this_grid()")
        with w.block("for c in range(batch):"):
            for column, name in enumerate(plan_columns(lowered)):
                w(f"{name} = plan[c, {column}]")
            w(f"_update_chunk({update})")
            # every flag and spike list of the chunk is written before any block delivers, and every
            # delivery and value update before the next chunk's update reads the rings
            w("grid.sync()")
            if deliver is not None:
                w(f"_deliver_chunk({deliver})")
                w("grid.sync()")


@dataclass
class ChunkKernels:
    """A network's chunk kernels (a chunk's two, and ``chunks``, which runs several), the names of their
    arguments and whether ``deliver`` delivers by target."""

    update: object
    deliver: object | None
    chunks: object
    update_arguments: list[str]
    deliver_arguments: list[str]
    chunks_arguments: list[str]
    by_target: bool


_LOADED: dict[str, tuple] = {}


@functools.cache
def _own_source() -> str:
    """The source of this module and of :mod:`.cuda_window`, read once: the kernels call their device functions,
    so they are part of their fingerprint."""
    return inspect.getsource(sys.modules[__name__]) + inspect.getsource(cuda_window)


def load(lowered: LoweredNetwork) -> ChunkKernels:
    """The chunk kernels of ``lowered``'s structure, compiled once per process (and cached on disk)."""
    by_target = delivers_by_target(lowered)
    source = generate(lowered, by_target)
    functions = {f"_py{alias}": function for function, alias in numba_backend.spiking_steps(lowered).items()}
    functions.update(cuda_window.functions(lowered))
    name = f"ranvier_cuda_{kernel_fingerprint(source + _own_source(), functions)}"
    if name not in _LOADED:
        _LOADED[name] = kernel_cache.load(name, source, functions)
    update, deliver, chunks = _LOADED[name]
    return ChunkKernels(update, deliver, chunks, _update_arguments(lowered), _deliver_arguments(lowered),
                        _chunks_arguments(lowered), by_target)
