"""The numba backend: one compiled loop per network structure.

Numba cannot call a list of different model functions in a loop, so this backend writes the
loop out: for a given structure (models, projections, monitors) it generates the Python source
of an ``advance`` function that steps every population through a min-delay chunk, delivers the
chunk's spikes and repeats. Each model's step function gets a compiled loop over its neurons
(into which LLVM inlines it); spike collection, delivery and sampling are the shared loops of
:mod:`.numba_kernels`. The source goes to a file in the kernel cache (``$RANVIER_CACHE_DIR``, default
``~/.cache/ranvier``) named by its hash, and is compiled with ``cache=True``, so a second
process with the same structure loads machine code instead of compiling. Sizes and parameter
values are arguments, not part of the source: a network of another size reuses the kernel
(except for a value population with an array step, whose traced step has its shapes in its own
source, :mod:`.array_program`; the kernel calls it at the population's windows).

With more than one numba thread, populations of :data:`PARALLEL_MIN_NEURONS` or more update on all
threads; where every chunk is one step, the spiking populations (:data:`PARALLEL_MIN_TOGETHER`
neurons or more in all) update in one parallel loop a step instead, each thread over its block of
every population (``_update_together``); a thread updating a block also collects the block's spikes
(``numba_kernels.collect_block``), joined in the serial order after; and networks of
:data:`PARALLEL_MIN_SYNAPSES` or more deliver each busy chunk's spikes on all threads
(``numba_kernels.deliver_all_parallel``): every thread owns a block of each target population and
adds only the synapses onto it, in the serial order, so results are the same to the bit as numpy's
on any number of threads. A population's Poisson drives (``PoissonInput``) are drawn in its update,
from tables of their counts' CDF.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numba
import numpy as np
from numba.typed import List as TypedList

from ..array_trace import Trace
from ..connectivity import GEOMETRY_FIELDS
from ..kinds import Kind
from ..lowering import Consumer, LoweredNetwork, LoweredProjection, Operator, Status
from ..poisson_input import count_tables
from . import Runner, array_program, kernel_cache, numba_kernels
from .fingerprint import kernel_fingerprint
from .numba_kernels import (
    DELIVER_ALL_TO_ALL,
    DELIVER_ALL_TO_ALL_NO_AUTAPSES,
    DELIVER_CONVOLUTION,
    DELIVER_CSR,
    DELIVER_CSR_DELAY_GROUPS,
    DELIVER_CSR_PER_SYNAPSE_DELAYS,
)
from .source_writer import SourceWriter


def cache_dir() -> Path | None:
    """Where generated kernels are written: a directory only this user can write (see
    :mod:`.kernel_cache`), or None when kernels compile without a cache."""
    return kernel_cache.cache_dir()


#: populations at least this large update their neurons on all threads: below it, starting
#: the threads every step costs more than it saves
PARALLEL_MIN_NEURONS = 20_000


#: networks whose chunks are one step long and whose spiking populations of one ``dt`` have at least
#: this many neurons together update them all in one loop on all threads (``_update_together``)
PARALLEL_MIN_TOGETHER = 10_000


def _updated_together(lowered: LoweredNetwork) -> list[int]:
    """The populations that update in one parallel loop, each thread over its block of every one.

    Only where every chunk is one step: the serial loop then updates population after
    population at that step, the order the blocks keep (a longer chunk takes each population
    through all its steps first, and reports the first failing one in that order).
    """
    if numba.config.NUMBA_NUM_THREADS < 2 or lowered.chunk != 1:
        return []
    together = [index for index, population in enumerate(lowered.populations)
                if population.kind == Kind.SPIKING and population.period == 1]
    return together if sum(lowered.populations[i].n for i in together) >= PARALLEL_MIN_TOGETHER else []


def _variant(population, alias: str, together: bool = False) -> tuple[str, bool, bool, int, bool, tuple[int, ...]]:
    """What the compiled code of a population depends on: (step function, shares one column of
    constants, updates on all threads, number of receptors, model reports non-finite state, the
    receptor of each Poisson drive). A population updated ``together`` with others runs serially
    over each thread's block."""
    parallel = population.n >= PARALLEL_MIN_NEURONS and numba.config.NUMBA_NUM_THREADS > 1 and not together
    return (alias, population.consts.shape[1] == 1, parallel, population.ring.shape[1], population.checks_finite,
            tuple(int(r) for r in population.drive_receptors))


def _variant_name(alias: str, shared: bool, parallel: bool, receptors: int, checks_finite: bool,
                  drives: tuple[int, ...] = ()) -> str:
    return (f"{alias}{'_shared' if shared else ''}{'_parallel' if parallel else ''}_r{receptors}"
            f"{'' if checks_finite else '_checked'}{''.join(f'_d{r}' for r in drives)}")


def _finite_test(array: str, dtype: np.dtype) -> str:
    """Generated code that tests whether every entry of the 2-D float ``array`` of ``dtype`` is finite."""
    if dtype == np.float64:
        return f"all_finite_double({array}.reshape(-1).view(np.uint64))"
    return f"all_finite({array}.reshape(-1).view(np.uint32))"


def _neuron_loop(w: SourceWriter) -> None:
    """The loop over neurons ``low .. high - 1``: ``offset`` from 0 and ``i = low + offset``.

    With ``low`` tested not to be negative before, ``i`` indexes without numba's wrap-around test,
    and the loops vectorise (``for i in range(low, high)`` ran 5x slower at 20000 neurons; a
    ``prange`` over the neurons, 10x slower at 77000, so all threads share a population in blocks).
    """
    w("for offset in range(high - low):")
    with w.indent():
        w("i = low + offset")


#: a population's update and spike collection are inlined by numba into ``_population<name>``, so that
#: their loops are compiled inside the function whose machine code is cached. Called instead, the
#: cached kernel ran its own linked-in copy of the update, in which the vectorised loop tested its
#: conditional stores lane by lane through the stack (most likely because numba optimises a linked-in
#: function a second time), while the compiling process ran the callee's own library: CUBA 4000 from
#: the cache 2.9 us a step, the same source in the compiling process 2.3 us, inlined 1.8 us.
#: ``_population<name>`` itself stays a call: inlined into ``advance`` as well, the microcircuit at
#: scale 0.5 on one thread ran 1.1 s for 0.2 s, not 0.6 s.
_INLINED = ", inline='always'"


def _write_variant(w: SourceWriter, alias: str, shared: bool, parallel: bool, receptors: int, checks_finite: bool,
                   drives: tuple[int, ...], dtype: np.dtype, finishes: bool = False) -> None:
    """The compiled step of one population: update every neuron, then collect the spikes.

    It returns 0, -1 when the spike buffer is full or -2 when the state (of ``dtype``) is not finite.
    Each Poisson drive ``m`` (into receptor ``drives[m]``) adds its count times its weight to the
    neuron's input before the step, as the numpy backend's ``_drive``; the count is
    ``poisson_count``'s, read from the drive's table (``numba_kernels.drawn_count``).
    A ``parallel`` variant updates on all threads, each over its block of the neurons with the
    serial variant (written before it), whose drive counts go to ``block_events[block]`` and are
    summed after the loop, in integers (the same on any number of threads), and whose spikes each thread
    collects from its block (``_finish<name>``); so do the populations updated together
    (``finishes``).
    """
    name = _variant_name(alias, shared, parallel, receptors, checks_finite, drives)
    drive_arguments = "".join(f", {name}" for name in _DRIVE_ARGUMENTS) if drives else ""
    if parallel:
        _write_blocks_update(w, name, _variant_name(alias, shared, False, receptors, checks_finite, drives),
                             len(drives), checks_finite, dtype)
    else:
        _write_serial_update(w, name, alias, shared, receptors, drives, dtype)
    threads = ", threads, block_events" if parallel else ""
    collected = ", spike_ids, spike_steps, spike_count, block_spikes" if parallel else ""
    w()
    w()
    # the parallel update's caller keeps numba's runtime, as the parallel update does
    w(f"@njit(cache=True, nogil=True{'' if parallel else ', _nrt=False'})")
    w(f"def _population{name}(state, consts, ring, k, key, flags, spike_ids, spike_steps, spike_count"
      f"{drive_arguments}{threads}{', block_spikes' if parallel else ''}):")
    with w.indent():
        w("slot = ring[k % ring.shape[0]]")
        slots = "".join(f"slot[{r}], " for r in range(receptors))
        bounds = "" if parallel else ", 0, state.shape[1]"
        w(f"_update{name}(state, consts, ({slots}), k, key, flags{bounds}{drive_arguments}{threads}{collected})")
        if parallel:
            w(f"return _finish{name}(state, flags, k, spike_ids, spike_steps, spike_count, block_spikes, threads)")
        else:
            w(f"return _collect{name}(state, flags, k, spike_ids, spike_steps, spike_count)")
    if parallel or finishes:
        _write_finish(w, name, checks_finite)
    if not parallel:
        _write_collect(w, name, checks_finite, dtype)


def _write_collect(w: SourceWriter, name: str, checks_finite: bool, dtype: np.dtype) -> None:
    """``_collect<name>``: the serial collection of a population's spikes, then its finite test."""
    w()
    w()
    w(f"@njit(cache=True, nogil=True, _nrt=False{_INLINED})")
    w(f"def _collect{name}(state, flags, k, spike_ids, spike_steps, spike_count):")
    with w.indent():
        w("count = collect_spikes(flags, flags.view(np.uint64), k, spike_ids, spike_steps, spike_count[0])")
        w("if count < 0:")
        with w.indent():
            w("return count")
        if not checks_finite:
            w(f"if not {_finite_test('state', dtype)}:")
            with w.indent():
                w("return -2")
        w("spike_count[0] = count")
        w("return 0")


def _write_finish(w: SourceWriter, name: str, checks_finite: bool) -> None:
    """``_finish<name>``: ``_collect<name>`` after each block collected its own spikes (``block_spikes[b]``,
    see :func:`_write_block_collection`): the blocks' spikes joined in the serial order
    (``numba_kernels.finish_collection``), then the blocks' finite tests."""
    w()
    w()
    w(f"@njit(cache=True, nogil=True, _nrt=False{_INLINED})")
    w(f"def _finish{name}(state, flags, k, spike_ids, spike_steps, spike_count, block_spikes, threads):")
    with w.indent():
        w("blocks = threads[0]")
        w("count = finish_collection(flags, flags.view(np.uint64), state.shape[1], k, spike_ids, spike_steps, "
          "spike_count[0], block_spikes[:, 0], blocks)")
        w("if count < 0:")
        with w.indent():
            w("return count")
        if not checks_finite:
            w("for block in range(blocks):")
            with w.indent():
                w("if block_spikes[block, 1] != 0:")
                with w.indent():
                    w("return -2")
        w("spike_count[0] = count")
        w("return 0")


def _write_serial_update(w: SourceWriter, name: str, alias: str, shared: bool, receptors: int,
                         drives: tuple[int, ...], dtype: np.dtype) -> None:
    """``_update<name>``: the drives and the step of neurons ``low .. high - 1``, on the calling thread."""
    cast = "np.float64" if dtype == np.float64 else "np.float32"
    drive_arguments = "".join(f", {name}" for name in _DRIVE_ARGUMENTS) if drives else ""
    w()
    w()
    w(f"@njit(cache=True, nogil=True, _nrt=False{_INLINED})")
    w(f"def _update{name}(state, consts, arriving, k, key, flags, low, high{drive_arguments}):")
    with w.indent():
        w("if low < 0:")
        with w.indent():
            w("return")
        for m, receptor in enumerate(drives):
            # each drive in a loop of its own, away from the neurons' loop below, which its table lookup
            # would keep from vectorising
            w(f"events{m} = 0")
            _neuron_loop(w)
            with w.indent():
                w(f"count{m} = drawn_count(random_bits(drive_keys[{m}], k, i), drive_cdf, drive_guide, {m})")
                # an integer sum: the same on any number of threads
                w(f"events{m} += count{m}")
                # added unconditionally (a count of 0 adds +-0.0, which leaves any ring value as it is):
                # at a few input spikes per step most counts are not 0, and a test would mispredict
                w(f"arriving[{receptor}][i] += {cast}(count{m}) * drive_weights[{m}]")
            w(f"drive_events[{m}] += events{m}")
        _neuron_loop(w)
        with w.indent():
            w(f"spikes = {alias}(state, consts, arriving, i, {'0' if shared else 'i'}, k, key)")
            # Writes only where something changed: most neurons neither spike nor receive input
            # in a step, and a cache line never written is never written back. collect_spikes
            # zeroes the flags it reads; the input of step k is consumed, so it is cleared here
            # while in cache (a ring slot never holds -0.0: it starts at 0.0 and only adds).
            w("if spikes != 0:")
            with w.indent():
                w("flags[i] = spikes")
            for receptor in range(receptors):
                w(f"if arriving[{receptor}][i] != 0.0:")
                with w.indent():
                    w(f"arriving[{receptor}][i] = 0.0")


def _write_blocks_update(w: SourceWriter, name: str, serial: str, drives: int, checks_finite: bool,
                         dtype: np.dtype) -> None:
    """``_update<name>``: ``_update<serial>`` on all threads, each over its block of the population's neurons
    (:func:`numba_kernels._block_start`), then collecting the block's spikes (:func:`_write_block_collection`)."""
    drive_arguments = "".join(f", {name}" for name in _DRIVE_ARGUMENTS) if drives else ""
    block_drives = drive_arguments.replace("drive_events", "block_events[block]")
    w()
    w()
    w("@njit(cache=True, nogil=True, parallel=True)")
    w(f"def _update{name}(state, consts, arriving, k, key, flags{drive_arguments}, threads, block_events, "
      "spike_ids, spike_steps, spike_count, block_spikes):")
    with w.indent():
        # the thread count comes as an argument: a kernel that calls get_num_threads() cannot be cached
        w("blocks = threads[0]")
        w("for block in prange(blocks):")
        with w.indent():
            w(f"_update{serial}(state, consts, arriving, k, key, flags, _block_start(block, blocks, state.shape[1]), "
              f"_block_start(block + 1, blocks, state.shape[1]){block_drives})")
            _write_block_collection(w, "", "block_spikes[block", checks_finite, dtype)
        if drives:
            w("for block in range(blocks):")
            with w.indent():
                w(f"for m in range({drives}):")
                with w.indent():
                    w("drive_events[m] += block_events[block, m]")
                    w("block_events[block, m] = 0")


#: networks with at most this many projections pass their arrays to the delivery loop as tuples
_TUPLE_PROJECTIONS = 8

#: spiking networks with at least this many synapses deliver on all threads (``deliver_all_parallel``):
#: each thread owns a block of every target population, so none needs atomics and each target sums its
#: input in the serial order (the same result on any number of threads)
PARALLEL_MIN_SYNAPSES = 1_000_000
#: ... in the chunks that make at least this many synaptic events (fewer are delivered on one thread:
#: starting the threads would cost more than it saves)
PARALLEL_MIN_EVENTS = 20_000
#: chunks with at least this many synapse updates of one plastic projection (of :data:`PARALLEL_MIN_SYNAPSES`
#: synapses or more) learn on all threads (``numba_kernels.apply_stdp_parallel``); an update reads a
#: scattered weight and trace (about 13 ns), so far fewer than :data:`PARALLEL_MIN_EVENTS` pay for
#: starting the threads (about 1 us)
PARALLEL_MIN_STDP_UPDATES = 2_000


def _parallel_delivery(lowered: LoweredNetwork) -> bool:
    """Whether ``lowered``'s spikes are delivered on all threads (see :data:`PARALLEL_MIN_SYNAPSES`)."""
    if numba.config.NUMBA_NUM_THREADS < 2 or not lowered.projections:
        return False
    synapses = sum(j.width * lowered.populations[j.pre].n if j.all_to_all else int(j.row_ptr[-1])
                   for j in lowered.projections)
    return synapses >= PARALLEL_MIN_SYNAPSES

def _parallel_learning(lowered: LoweredNetwork, plastic) -> bool:
    """Whether a plastic projection learns on all threads: one of :data:`PARALLEL_MIN_SYNAPSES` or more
    (below that, the parallel loop's second of compiling outweighs what it saves)."""
    synapses = int(lowered.projections[plastic.projection].row_ptr[-1])
    return numba.config.NUMBA_NUM_THREADS > 1 and synapses >= PARALLEL_MIN_SYNAPSES


#: the sequences (one entry per population or projection) the generic delivery loop reads
_PROJECTION_ARGUMENTS = ["spike_id_lists", "spike_step_lists", "rings", "projection_pre",
                         "projection_post", "projection_receptor", "row_ptrs", "post_id_lists", "weight_lists",
                         "weight_strides", "delay_lists", "delivery_modes", "projection_widths",
                         "projection_geometries", "bucket_posts", "bucket_weights", "slot_starts",
                         "group_offset_lists", "first_delays", "ring_spans", "segment_begins", "segment_ends",
                         "segment_counts"]


#: the arrays of a plastic projection q that ``apply_stdp`` reads, as arguments ``s{q}_<name>``
_PLASTIC_ARGUMENTS = ["row_ptr", "targets", "weights", "col_ptr", "col_synapses", "col_sources", "pre_trace",
                      "pre_seen", "post_trace", "post_seen", "decay_plus", "decay_minus", "params", "modulation",
                      "first_event", "next_event", "trace_after", "ascending"]


#: the arrays of a population's Poisson drives, as arguments ``p{index}_<name>``: the lowered ones,
#: and the tables of their counts (``poisson_input.count_tables``)
_DRIVE_ARGUMENTS = ["drive_weights", "drive_keys", "drive_events", "drive_cdf", "drive_guide"]


def _population_arguments(index: int, population) -> list[str]:
    p = f"p{index}_"
    names = [f"{p}bound", f"{p}spike_ids", f"{p}spike_steps", f"{p}spike_count"]
    if population.kind == Kind.SCHEDULED:
        return names + [f"{p}source_steps", f"{p}source_ids", f"{p}source_next"]
    drives = [f"{p}{name}" for name in _DRIVE_ARGUMENTS] if len(population.drive_names) else []
    return names + [f"{p}state", f"{p}consts", f"{p}ring", f"{p}key", f"{p}flags"] + drives


def spiking_steps(lowered: LoweredNetwork) -> dict[object, str]:
    """Each distinct step function of the spiking populations -> the name the kernel compiles it as."""
    functions: dict[object, str] = {}
    for population in lowered.populations:
        if population.kind == Kind.SPIKING:
            functions.setdefault(population.step_function, f"_step_{len(functions)}")
    return functions


def _generate(lowered: LoweredNetwork) -> tuple[str, list[str]]:
    """Source of the ``advance`` kernel for ``lowered``'s structure, and its argument names."""
    functions = spiking_steps(lowered)
    together = _updated_together(lowered)
    variants: list[tuple[str, bool, bool, int, bool]] = []
    for index, population in enumerate(lowered.populations):
        if population.kind != Kind.SPIKING:
            continue
        variant = _variant(population, functions[population.step_function], index in together)
        # a parallel variant runs the serial one over each thread's block
        for needed in ((*variant[:2], False, *variant[3:]), variant):
            if needed not in variants:
                variants.append(needed)
    blocks_update = any(variant[2] for variant in variants)
    arguments = ["start", "stop", "chunk", "status", "synaptic_events", "first", "last"]
    for index, population in enumerate(lowered.populations):
        arguments += _population_arguments(index, population)
    parallel_delivery = _parallel_delivery(lowered)
    if lowered.projections:
        arguments += _PROJECTION_ARGUMENTS
        if parallel_delivery:
            arguments += ["rows_ascending", "min_delivery_events", "delivery_threads"]
    learning_in_parallel = [_parallel_learning(lowered, plastic) for plastic in lowered.plastic]
    if together or blocks_update or any(learning_in_parallel):
        arguments += ["update_threads"]
    if together:
        arguments += ["together_events", "together_spikes"]
    if blocks_update:
        arguments += ["block_events", "block_spikes"]
    for m, _ in enumerate(lowered.state_monitors):
        arguments += [f"m{m}_row", f"m{m}_ids", f"m{m}_every", f"m{m}_values", f"m{m}_steps", f"m{m}_count"]
    for q, _ in enumerate(lowered.plastic):
        arguments += [f"s{q}_{name}" for name in _PLASTIC_ARGUMENTS]
    if lowered.plastic:
        arguments += ["min_stdp_events", "one_thread"]
    arguments += _value_arguments(lowered)

    w = SourceWriter()
    w("# Generated by ranvier.engine.backends.numba_backend; do not edit.")
    # the precision is part of the source, so kernels of either precision have their own fingerprint
    w(f"# {lowered.dtype.name} state, constants, rings and weights")
    w("import numpy as np")
    w("from numba import njit, prange")
    listed = len(lowered.projections) > _TUPLE_PROJECTIONS
    w("from ranvier.engine.backends.numba_kernels import (")
    w("    all_finite, all_finite_double, collect_spikes, emit_scheduled, gather_window, sample_state)")
    if together or blocks_update:
        w("from ranvier.engine.backends.numba_kernels import (")
        w("    _block_start, block_all_finite, block_all_finite_double, collect_block, finish_collection)")
    if any(len(p.drive_names) for p in lowered.populations):
        w("from ranvier.engine.model import random_bits")
        w("from ranvier.engine.backends.numba_kernels import drawn_count")
    w(f"from ranvier.engine.backends.numba_kernels import {'deliver_all_listed as ' if listed else ''}deliver_all")
    if parallel_delivery:
        w("from ranvier.engine.backends.numba_kernels import "
          f"{'deliver_all_parallel_listed as ' if listed else ''}deliver_all_parallel")
    if lowered.plastic:
        w("from ranvier.engine.backends.numba_kernels import apply_stdp, apply_stdp_parallel")
    if lowered.values or lowered.counts:
        w("from ranvier.engine.backends.numba_kernels import (")
        w("    _block_start, add_all_to_all, all_to_all_total, clear_rows, deliver_count, hold_values, publish,")
        w("    schedule_pulses, set_modulation, set_state_row, take_pending)")
    for alias in functions.values():
        # Plain njit: LLVM inlines the call; numba-level inlining defeats LLVM's optimisation here.
        # numpy's error model: a division by zero gives inf or NaN, which the finite test names, as
        # on the numpy backend (numba's default raises a bare ZeroDivisionError)
        w(f"{alias} = njit(_nrt=False, error_model='numpy')(_py{alias})")
    collected_together = {_variant(lowered.populations[i], functions[lowered.populations[i].step_function], True)
                          for i in together}
    for variant in variants:
        _write_variant(w, *variant, lowered.dtype, finishes=variant in collected_together)
    if together:
        _write_together(w, lowered, together, functions)
    _write_value_steps(w, lowered)
    _write_sparse_maps(w, lowered)
    w()
    w()
    # typed lists need numba's reference counting, and so does a parallel update's reduction (the
    # drives' event counts: its callers are compiled with the runtime too); tuples of arrays do not
    runtime = listed or bool(together) or blocks_update
    w(f"@njit(cache=True, nogil=True{'' if runtime else ', _nrt=False'})")
    w(f"def advance({', '.join(arguments)}):")
    with w.indent():
        w(f"status[0] = {int(Status.OK)}")
        w("step = start")
        w("while step < stop:")
        with w.indent():
            w("length = min(chunk, stop - step)")
            for period in sorted({value.period for value in lowered.values}):
                # a chunk ends where an elementwise value population updates
                w(f"length = min(length, (step // {period} + 1) * {period} - step)")
            for index, population in enumerate(lowered.populations):
                if _never_spikes(population):
                    continue
                p = f"p{index}_"
                w(f"if {p}spike_count[0] + {p}bound * length > {p}spike_ids.shape[0]:")
                with w.indent():
                    w("break")
            for index, _ in enumerate(lowered.populations):
                w(f"first[{index}] = p{index}_spike_count[0]")
            if together:
                w("for k in range(step, step + length):")
                with w.indent():
                    w(f"_update_together(k, update_threads, together_events, together_spikes, "
                      f"{', '.join(a for i in together for a in _together_arguments(i, lowered.populations[i]))})")
            for index, population in enumerate(lowered.populations):
                _write_population(w, lowered, index, population, functions, index in together)
            if lowered.projections or lowered.counts:
                for index, _ in enumerate(lowered.populations):
                    w(f"last[{index}] = p{index}_spike_count[0]")
            if lowered.projections and parallel_delivery:
                w(f"deliver_all_parallel(first, last, {', '.join(_PROJECTION_ARGUMENTS)}, rows_ascending, "
                  "synaptic_events, min_delivery_events, delivery_threads)")
            elif lowered.projections:
                w(f"deliver_all(first, last, {', '.join(_PROJECTION_ARGUMENTS)}, synaptic_events)")
            _write_count_delivery(w, lowered)
            for q, plastic in enumerate(lowered.plastic):
                a, b = f"p{plastic.pre}_", f"p{plastic.post}_"
                learn, threads = (("apply_stdp_parallel", "update_threads") if learning_in_parallel[q]
                                  else ("apply_stdp", "one_thread"))
                w(f"{learn}({a}spike_ids, {a}spike_steps, first[{plastic.pre}], last[{plastic.pre}], {b}spike_ids, "
                  f"{b}spike_steps, first[{plastic.post}], last[{plastic.post}], "
                  f"{', '.join(f's{q}_{name}' for name in _PLASTIC_ARGUMENTS)}, {threads}, min_stdp_events)")
            w("step += length")
            _write_value_updates(w, lowered)
        w("return step")
    return "\n".join(w.lines) + "\n", arguments


#: the arrays of elementwise value population v, as arguments ``v{v}_<name>`` (``nonfinite``: each
#: block's count of units whose state stopped being finite, see :func:`_write_value_steps`)
_VALUE_ARGUMENTS = ["state", "consts", "key", "inputs", "published", "published_by_unit", "previous", "output_rows",
                    "flags", "nonfinite"]
#: the arrays of compiled value map g (``g{g}_<name>``) and of count projection c (``c{c}_<name>``)
_MAP_ARGUMENTS = ["weight", "autapses", "row_ptr", "columns", "values", "targets", "scratch"]
_COUNT_ARGUMENTS = ["row_ptr", "post_ids", "weights", "weight_stride", "delay_steps", "per_synapse_delays",
                    "all_to_all", "autapses", "pending", "period"]


def _value_arguments(lowered: LoweredNetwork) -> list[str]:
    if not lowered.values and not lowered.counts:
        return []
    names = ["count_events"] + [f"published{index}" for index in lowered.published]
    for v, value in enumerate(lowered.values):
        names += [f"v{v}_{name}" for name in _VALUE_ARGUMENTS]
        if value.trace is not None:
            names.append(f"v{v}_scratch")
    for g, value_map in enumerate(lowered.value_maps):
        if value_map.compiled:
            names += [f"g{g}_{name}" for name in _MAP_ARGUMENTS]
    for c, _ in enumerate(lowered.counts):
        names += [f"c{c}_{name}" for name in _COUNT_ARGUMENTS]
    return names


def _value_values(lowered: LoweredNetwork) -> dict[str, object]:
    """The arguments :func:`_value_arguments` names: the lowered arrays themselves."""
    if not lowered.values and not lowered.counts:
        return {}
    values: dict[str, object] = {"count_events": lowered.count_events}
    values.update({f"published{index}": published for index, published in lowered.published.items()})
    for v, value in enumerate(lowered.values):
        blocks = numba.config.NUMBA_NUM_THREADS if _value_parallel(value.n) else 1
        arrays = {"previous": value.previous if value.previous is not None else value.published,
                  "flags": lowered.populations[value.population].flags,
                  "nonfinite": np.zeros(blocks, dtype=np.int64)}
        values.update({f"v{v}_{name}": arrays[name] if name in arrays else getattr(value, name)
                       for name in _VALUE_ARGUMENTS})
        if value.trace is not None:
            values[f"v{v}_scratch"] = np.zeros(_array_scratch(value.trace))
    for g, value_map in enumerate(lowered.value_maps):
        if value_map.compiled:
            values.update({f"g{g}_{name}": getattr(value_map, name) for name in _MAP_ARGUMENTS})
    for c, count in enumerate(lowered.counts):
        values.update({f"c{c}_{name}": getattr(count, name) for name in _COUNT_ARGUMENTS})
    return values


def _value_parallel(n: int) -> bool:
    return n >= PARALLEL_MIN_NEURONS and numba.config.NUMBA_NUM_THREADS > 1


@contextlib.contextmanager
def _unit_loop(w: SourceWriter, signature: str, count: str, parallel: bool):
    """A compiled function ``signature`` whose body is ``for i in range(count)``, on all threads when ``parallel``."""
    w()
    w()
    # prange needs numba's runtime; loops that large do not feel the per-call cost
    w(f"@njit(cache=True, nogil=True{', parallel=True' if parallel else ', _nrt=False'})")
    w(f"def {signature}:")
    with w.indent():
        w(f"for i in {'prange' if parallel else 'range'}({count}):")
        yield


def _gathered_sources(lowered: LoweredNetwork, v: int) -> list[tuple[str, int]] | None:
    """The sources of value population ``v`` when its update loop gathers its inputs unit by unit, else None.

    Every source must then be a count or a compiled all-to-all map: a count's pending window
    and an all-to-all's total (its sum over the sources, taken before the step's first update)
    reach each unit on their own. An all-to-all without autapses also reads the source's output
    at the unit; it maps a population onto itself (lowering keeps autapses between two
    populations), whose output the loop reads before it is published after the loop, as the
    window ending at the step reads the outputs published before it.
    """
    value = lowered.values[v]
    if value.trace is not None:
        return None  # an array step reads its inputs whole
    for kind, index in value.sources:
        if kind == "count":
            continue
        value_map = lowered.value_maps[index]
        if not value_map.compiled or value_map.operator is not Operator.ALL_TO_ALL:
            return None
        if not value_map.autapses and value_map.pre != value.population:
            return None
    return value.sources


def _gather_arguments(lowered: LoweredNetwork, v: int) -> list[tuple[str, str]]:
    """(parameter of ``_update_values{v}``, the argument ``advance`` passes) for each gathered source."""
    arguments: list[tuple[str, str]] = []
    for s, (kind, index) in enumerate(_gathered_sources(lowered, v) or ()):
        if kind == "count":
            count = lowered.counts[index]
            arguments += [(f"pending{s}", f"c{index}_pending"),
                          (f"window{s}", f"(step // {count.period} - 1) % c{index}_pending.shape[0]")]
            continue
        value_map = lowered.value_maps[index]
        arguments += [(f"total{s}_{c}", f"v{v}_total{s}_{c}") for c in range(value_map.channels)]
        if not value_map.autapses:
            arguments += [(f"weight{s}", f"g{index}_weight"), (f"x{s}", f"published{value_map.pre}")]
    return arguments


def _write_gather(w: SourceWriter, lowered: LoweredNetwork, v: int) -> None:
    """Unit ``i``'s inputs, entry by entry in the order of ``value_updates``: cleared, then each source's addition."""
    for row in range(lowered.values[v].inputs.shape[0]):
        w(f"inputs[{row}, i] = 0.0")
    for s, (kind, index) in enumerate(_gathered_sources(lowered, v)):
        if kind == "count":
            row = lowered.counts[index].row
            w(f"inputs[{row}, i] += pending{s}[window{s}, i]")
            w(f"pending{s}[window{s}, i] = 0.0")
            continue
        value_map = lowered.value_maps[index]
        for c in range(value_map.channels):
            row = value_map.destination + c
            w(f"inputs[{row}, i] += total{s}_{c}" if value_map.autapses else
              f"inputs[{row}, i] += total{s}_{c} - weight{s} * x{s}[{c}, i]")


def _write_unit(w: SourceWriter, lowered: LoweredNetwork, v: int, gathered: bool, checks: bool) -> None:
    """Unit ``i`` of value population ``v``: its inputs (``gathered``), its step, and (``checks``) its state's test."""
    value = lowered.values[v]
    if gathered:
        _write_gather(w, lowered, v)
    column = "0" if value.consts.shape[1] == 1 else "i"
    if value.pulses:
        w(f"if _value_step{v}(state, consts, inputs, i, {column}, k, key) != 0:")
        with w.indent():
            w("flags[i] = 1")
    else:
        w(f"_value_step{v}(state, consts, inputs, i, {column}, k, key)")
    if checks:
        differences = " + ".join(f"(state[{row}, i] - state[{row}, i])" for row in range(value.state.shape[0]))
        w(f"differences = {differences}")
        w("if differences != 0.0:")
        with w.indent():
            w("count += 1")


def _write_value_steps(w: SourceWriter, lowered: LoweredNetwork) -> None:
    """One compiled loop per elementwise value population: its step for every unit, flagging pulses.

    Populations of :data:`PARALLEL_MIN_NEURONS` units or more loop on all threads, each over its
    block of units (``numba_kernels._block_start``; as many blocks as ``nonfinite`` has entries):
    a unit's step reads and writes only its own column, so the result is the same on any number
    of threads. Where :func:`_gathered_sources` allows, the loop first gathers the unit's inputs,
    and where the model has no ``finish`` (which may write any entry), it tests the unit's state
    after its step (``x - x`` is 0 exactly when ``x`` is finite) and returns the number of units
    whose state is not finite: the state is final there, so this is ``value_updates``' test.
    """
    for v, value in enumerate(lowered.values):
        if value.trace is not None:
            _write_array_update(w, v, value.trace)
            continue
        # inlined by numba: left to LLVM, a step with two sin_cos stays a call and its loop does not vectorise
        w(f"_value_step{v} = njit(_nrt=False, inline='always', error_model='numpy')(_py_value_step{v})")
        if value.finish_function is not None:
            w(f"_finish{v} = njit(_nrt=False, error_model='numpy')(_py_finish{v})")
        parallel = _value_parallel(value.n)
        checks = value.finish_function is None
        gathered = _gathered_sources(lowered, v) is not None
        parameters = "".join(f", {name}" for name, _ in _gather_arguments(lowered, v))
        w()
        w()
        # prange needs numba's runtime; a population that large does not feel the per-call cost. A
        # serial one is inlined: a call with its arrays costs about 0.08 us, a step of CUBA's 2 us
        options = ", parallel=True" if parallel else ", _nrt=False, inline='always'"
        w(f"@njit(cache=True, nogil=True{options})")
        w(f"def _update_values{v}(state, consts, inputs, k, key, flags, nonfinite{parameters}):")
        with w.indent():
            w("blocks = nonfinite.shape[0]")
            w("for block in prange(blocks):")
            with w.indent():
                w("low = _block_start(block, blocks, state.shape[1])")
                w("high = _block_start(block + 1, blocks, state.shape[1])")
                if checks:
                    w("count = 0")
                # i counted from a low known to be >= 0, not range(low, high): LLVM then drops numba's
                # wrap-around test of negative indices, and the loop vectorises (ten times faster)
                w("if low >= 0:")
                with w.indent():
                    w("for offset in range(high - low):")
                    with w.indent():
                        w("i = low + offset")
                        _write_unit(w, lowered, v, gathered, checks)
                if checks:
                    w("nonfinite[block] = count")
            if checks:
                w("total = 0")
                w("for block in range(blocks):")
                with w.indent():
                    w("total += nonfinite[block]")
                w("return total")


def _array_scratch(trace: Trace) -> int:
    """Length of an array step's scratch vector: the trace's own, then arrays of its results' shapes."""
    return array_program.scratch_size(trace) + sum(math.prod(shape) for shape in trace.output_shapes)


def _write_array_update(w: SourceWriter, v: int, trace: Trace) -> None:
    """``_update_values{v}`` of a population with an array step: its model's ``gather``, the compiled trace
    (``_array_step{v}``, :mod:`.array_program`) writing into the views ``destinations`` gives (which it
    is handed arrays of the results' shapes for); returns how many state entries are not finite."""
    w(f"_gather{v} = njit(_nrt=False)(_py_gather{v})")
    w(f"_destinations{v} = njit(_nrt=False)(_py_destinations{v})")
    w()
    w()
    w("@njit(cache=True, nogil=True, _nrt=False)")
    w(f"def _update_values{v}(state, consts, inputs, scratch):")
    with w.indent():
        w(f"arrays = _gather{v}(state, inputs)")
        own = array_program.scratch_size(trace)
        offset, shaped = own, []
        for o, shape in enumerate(trace.output_shapes):
            w(f"shape{o} = scratch[{offset}:{offset + math.prod(shape)}].reshape({shape!r})")
            shaped.append(f"shape{o}")
            offset += math.prod(shape)
        w(f"views = _destinations{v}(state, {', '.join(shaped)})")
        arrays = [f"arrays[{a}]" for a in range(len(trace.input_shapes))]
        views = [f"views[{o}]" for o in range(len(trace.output_shapes))]
        w(f"_array_step{v}({', '.join(arrays)}, consts, scratch[:{max(1, own)}], {', '.join(views)})")
        w("count = 0")
        with w.block("for row in range(state.shape[0]):"), w.block("for i in range(state.shape[1]):"):
            with w.block("if state[row, i] - state[row, i] != 0.0:"):
                w("count += 1")
        w("return count")


def _write_count_delivery(w: SourceWriter, lowered: LoweredNetwork) -> None:
    for c, count in enumerate(lowered.counts):
        a = f"p{count.pre}_"
        w(f"count_events[{c}] += deliver_count({a}spike_ids, {a}spike_steps, first[{count.pre}], "
          f"last[{count.pre}], {', '.join(f'c{c}_{name}' for name in _COUNT_ARGUMENTS)})")


def _write_map(w: SourceWriter, lowered: LoweredNetwork, g: int, rows: str, first_row: int | str,
               channels: int) -> None:
    """Add value map ``g`` of its source's published output into ``rows[first_row ...]``."""
    value_map = lowered.value_maps[g]
    x = f"published{value_map.pre}"
    if value_map.operator is Operator.ALL_TO_ALL:
        w(f"add_all_to_all({rows}, {first_row}, {x}, {channels}, g{g}_weight, g{g}_autapses)")
    else:
        by_unit = [v for v, value in enumerate(lowered.values) if value.population == value_map.pre]
        x = f"v{by_unit[0]}_published_by_unit" if by_unit else x
        w(f"_sparse{g}({rows}, {first_row}, {x}, g{g}_row_ptr, g{g}_columns, g{g}_values, g{g}_weight)")


def _write_sparse_maps(w: SourceWriter, lowered: LoweredNetwork) -> None:
    """One compiled product per sparse value map: ``rows[first_row + c, i] += sum_e w_e x_c[j_e]``
    (``w sum_e x_c[j_e]`` with one weight for all).

    Its channels are unrolled (one accumulator each, so a synapse's column and weight are read
    once); it reads an elementwise source's output unit by unit, a host source's by channel.
    """
    elementwise = {value.population for value in lowered.values}
    for g, value_map in enumerate(lowered.value_maps):
        if not value_map.compiled or value_map.operator is Operator.ALL_TO_ALL:
            continue
        uniform = value_map.operator is Operator.UNIFORM_SPARSE
        channels = range(value_map.channels)
        with _unit_loop(w, f"_sparse{g}(rows, first_row, x, row_ptr, columns, values, weight)", "row_ptr.shape[0] - 1",
                        _value_parallel(value_map.scratch.shape[1])):
            with w.indent():
                w(" = ".join(f"total{c}" for c in channels) + " = 0.0")
                w("for entry in range(row_ptr[i], row_ptr[i + 1]):")
                with w.indent():
                    w("j = columns[entry]")
                    for c in channels:
                        x = f"x[j, {c}]" if value_map.pre in elementwise else f"x[{c}, j]"
                        w(f"total{c} += {x}" if uniform else f"total{c} += values[entry] * {x}")
                for c in channels:
                    w(f"rows[first_row + {c}, i] += {'weight * ' if uniform else ''}total{c}")


def _write_value_updates(w: SourceWriter, lowered: LoweredNetwork) -> None:
    """The updates of the elementwise value populations due at ``step`` (see ``value_updates``)."""
    if not lowered.values:
        return
    for v, value in enumerate(lowered.values):
        if _gathered_sources(lowered, v) is not None:
            totals = [(s, index, c) for s, (kind, index) in enumerate(value.sources) if kind == "map"
                      for c in range(lowered.value_maps[index].channels)]
            if not totals:
                continue
            w(f"# value population {value.name}: the all-to-all totals of the window ending at step "
              "(its update gathers the rest)")
            for s, _, c in totals:
                w(f"v{v}_total{s}_{c} = 0.0")
            w(f"if step % {value.period} == 0:")
            with w.indent():
                for s, index, c in totals:
                    w(f"v{v}_total{s}_{c} = all_to_all_total(published{lowered.value_maps[index].pre}, {c}, "
                      f"g{index}_weight)")
            continue
        w(f"# value population {value.name}: inputs of the window ending at step")
        w(f"if step % {value.period} == 0:")
        with w.indent():
            w(f"clear_rows(v{v}_inputs)")
            for kind, index in value.sources:
                if kind == "count":
                    count = lowered.counts[index]
                    w(f"take_pending(v{v}_inputs, {count.row}, c{index}_pending, "
                      f"(step // {count.period} - 1) % c{index}_pending.shape[0])")
                else:
                    value_map = lowered.value_maps[index]
                    _write_map(w, lowered, index, f"v{v}_inputs", value_map.destination, value_map.channels)
    for v, value in enumerate(lowered.values):
        index = value.population
        w(f"# value population {value.name}: update, publish, send")
        w(f"if step % {value.period} == 0:")
        with w.indent():
            if value.trace is not None:
                update = f"_update_values{v}(v{v}_state, v{v}_consts, v{v}_inputs, v{v}_scratch)"
            else:
                gather = "".join(f", {argument}" for _, argument in _gather_arguments(lowered, v))
                update = (f"_update_values{v}(v{v}_state, v{v}_consts, v{v}_inputs, step, v{v}_key, v{v}_flags, "
                          f"v{v}_nonfinite{gather})")
            if value.finish_function is None:
                # the update counted the units whose state is not finite
                w(f"if {update} != 0:")
            else:
                w(update)
                w(f"_finish{v}(v{v}_state, v{v}_consts)")
                w(f"if not {_finite_test(f'v{v}_state', lowered.dtype)}:")
            with w.indent():
                w(f"status[0] = {int(Status.NOT_FINITE)}; status[1] = {index}; status[2] = step")
                w("return step")
            by_unit = any(m.compiled and m.operator is not Operator.ALL_TO_ALL and m.pre == index
                          for m in lowered.value_maps)
            w(f"publish(v{v}_state, v{v}_published, v{v}_published_by_unit, v{v}_output_rows, v{v}_previous, "
              f"{value.previous is not None}, {by_unit})")
            p = f"p{index}_"
            if value.pulses:
                w(f"schedule_pulses(v{v}_flags, {value.n}, step, {p}source_steps, {p}source_ids, {p}source_next)")
            for m, monitor in enumerate(lowered.state_monitors):
                if monitor.population == index:
                    w(f"if step % m{m}_every == 0:")
                    with w.indent():
                        w(f"sample_state(v{v}_state, m{m}_row, m{m}_ids, m{m}_values, m{m}_steps, m{m}_count, "
                          "step - 1)")
            for g in value.feeds:
                value_map = lowered.value_maps[g]
                w(f"clear_rows(g{g}_scratch)")
                _write_map(w, lowered, g, f"g{g}_scratch", 0, 1)
                target = f"p{value_map.post}_"
                if value_map.consumer is Consumer.HOLD:
                    w(f"hold_values({target}ring, {value_map.destination}, g{g}_scratch, step, step + {value.period})")
                else:
                    w(f"set_state_row({target}state, {value_map.destination}, g{g}_targets, g{g}_scratch)")
            for q, row in value.modulates:
                w(f"set_modulation(s{q}_modulation, {row}, v{v}_published)")


def _together_arguments(index: int, population) -> list[str]:
    """The arguments of population ``index`` that ``_update_together`` reads."""
    p = f"p{index}_"
    drives = [f"{p}{name}" for name in _DRIVE_ARGUMENTS] if len(population.drive_names) else []
    return [f"{p}state", f"{p}consts", f"{p}ring", f"{p}key", f"{p}flags", f"{p}spike_ids", f"{p}spike_steps",
            f"{p}spike_count"] + drives


def _write_block_collection(w: SourceWriter, p: str, spikes: str, checks_finite: bool, dtype: np.dtype) -> None:
    """Generated code: the block's spikes of population ``p`` (the argument prefix) collected into its region
    of the spike buffer (``numba_kernels.collect_block``), the count written to ``spikes, 0`` (the indices of
    an entry before its last); for a model that does not check itself, whether the block's state stayed
    finite to ``spikes, 1`` (1: it did not)."""
    w(f"{spikes}, 0] = collect_block({p}flags, {p}flags.view(np.uint64), {p}state.shape[1], block, blocks, k, "
      f"{p}spike_ids, {p}spike_steps, {p}spike_count[0])")
    if not checks_finite:
        test = "block_all_finite_double" if dtype == np.float64 else "block_all_finite"
        bits = "np.uint64" if dtype == np.float64 else "np.uint32"
        w(f"{spikes}, 1] = 0 if {test}({p}state.reshape(-1).view({bits}), {p}state.shape[1], block, blocks) else 1")


def _write_together(w: SourceWriter, lowered: LoweredNetwork, together: list[int], functions) -> None:
    """``_update_together``: step ``k`` of the populations ``together``, each thread over its block of each.

    One parallel loop for all of them, where a loop per population would start the threads as
    many times a step. Blocks start on cache lines (``numba_kernels._block_start``). Block b's
    drive counts go to ``together_events[b, position]`` and are summed after the loop, in
    integers (the same on any number of threads). Each block then collects its spikes while its
    flags are in its cache (``together_spikes[b, position]``, :func:`_write_block_collection`), which
    ``_finish<name>`` joins in the serial order.
    """
    arguments = [a for i in together for a in _together_arguments(i, lowered.populations[i])]
    w()
    w()
    w("@njit(cache=True, nogil=True, parallel=True)")
    w(f"def _update_together(k, threads, together_events, together_spikes, {', '.join(arguments)}):")
    with w.indent():
        # the thread count comes as an argument: a kernel that calls get_num_threads() cannot be cached
        w("blocks = threads[0]")
        w("for block in prange(blocks):")
        with w.indent():
            for position, index in enumerate(together):
                population = lowered.populations[index]
                p = f"p{index}_"
                name = _variant_name(*_variant(population, functions[population.step_function], True))
                w(f"low = _block_start(block, blocks, {p}state.shape[1])")
                w(f"high = _block_start(block + 1, blocks, {p}state.shape[1])")
                w(f"slot = {p}ring[k % {p}ring.shape[0]]")
                slots = "".join(f"slot[{r}], " for r in range(population.ring.shape[1]))
                drives = (f", {p}drive_weights, {p}drive_keys, together_events[block, {position}], {p}drive_cdf, "
                          f"{p}drive_guide") if len(population.drive_names) else ""
                w(f"_update{name}({p}state, {p}consts, ({slots}), k, {p}key, {p}flags, low, high{drives})")
                _write_block_collection(w, p, f"together_spikes[block, {position}", population.checks_finite,
                                        lowered.dtype)
        for position, index in enumerate(together):
            drives = len(lowered.populations[index].drive_names)
            if drives:
                w("for block in range(blocks):")
                with w.indent():
                    w(f"for m in range({drives}):")
                    with w.indent():
                        w(f"p{index}_drive_events[m] += together_events[block, {position}, m]")
                        w(f"together_events[block, {position}, m] = 0")


def _never_spikes(population) -> bool:
    """Whether ``population`` emits nothing in any step: a value population without pulses, an empty source."""
    return population.kind == Kind.SCHEDULED and population.spike_bound == 0


def _write_population(w: SourceWriter, lowered, index: int, population, functions, together: bool = False) -> None:
    if _never_spikes(population) and not any(m.population == index for m in lowered.state_monitors):
        return
    p = f"p{index}_"
    w(f"# population {index}: {population.name} ({population.kind})")
    w("for k in range(step, step + length):")
    with w.indent():
        if population.kind == Kind.SCHEDULED:
            w(f"{p}spike_count[0] = emit_scheduled({p}source_steps, {p}source_ids, {p}source_next, k, "
              f"{p}spike_ids, {p}spike_steps, {p}spike_count[0])")
        else:
            variant = _variant(population, functions[population.step_function], together)
            name = _variant_name(*variant)
            period = population.period
            if period > 1:
                # a population with its own dt updates once per window, on the window's summed input
                w(f"if (k + 1) % {period} == 0:")
            with w.indent() if period > 1 else contextlib.nullcontext():
                if period > 1:
                    w(f"gather_window({p}ring, k, {period})")
                drives = "".join(f", {p}{name}" for name in _DRIVE_ARGUMENTS) if len(population.drive_names) else ""
                if together:
                    # updated, and its spikes collected in blocks, by _update_together
                    position = _updated_together(lowered).index(index)
                    w(f"outcome = _finish{name}({p}state, {p}flags, k, {p}spike_ids, {p}spike_steps, "
                      f"{p}spike_count, together_spikes[:, {position}], update_threads)")
                else:
                    threads = ", update_threads, block_events, block_spikes" if variant[2] else ""
                    w(f"outcome = _population{name}({p}state, {p}consts, {p}ring, k, {p}key, {p}flags, "
                      f"{p}spike_ids, {p}spike_steps, {p}spike_count{drives}{threads})")
                w("if outcome < 0:")
                with w.indent():
                    w(f"status[0] = {int(Status.SPIKE_OVERFLOW)} if outcome == -1 else {int(Status.NOT_FINITE)}; "
                      f"status[1] = {index}; status[2] = k")
                    w("return k")
        for m, monitor in enumerate(lowered.state_monitors):
            if monitor.population == index and not monitor.at_updates:
                w(f"if (k + 1) % m{m}_every == 0:")
                with w.indent():
                    w(f"sample_state({p}state, m{m}_row, m{m}_ids, m{m}_values, m{m}_steps, m{m}_count, k)")


def _model_functions(lowered: LoweredNetwork) -> dict[str, object]:
    """The models' own functions, by the names the generated source calls them.

    They are handed to the kernel module as globals rather than imported by name, so a step
    defined anywhere works: a static method, a function made in a REPL, ``python -c`` or a
    notebook, or one that :class:`~ranvier.neurons.Equations` generated.
    """
    functions = {f"_py{alias}": function for function, alias in spiking_steps(lowered).items()}
    for v, value in enumerate(lowered.values):
        if value.trace is not None:
            functions[f"_py_gather{v}"] = value.array_step.gather
            functions[f"_py_destinations{v}"] = value.array_step.destinations
            functions[f"_array_step{v}"] = array_program.load(value.trace)
            continue
        functions[f"_py_value_step{v}"] = value.step_function
        if value.finish_function is not None:
            functions[f"_py_finish{v}"] = value.finish_function
    return functions


_LOADED: dict[str, object] = {}


def _load_kernel(lowered: LoweredNetwork):
    source, arguments = _generate(lowered)
    model_functions = _model_functions(lowered)
    name = f"ranvier_kernel_{kernel_fingerprint(source, model_functions)}"
    if name not in _LOADED:
        _LOADED[name] = kernel_cache.load(name, source, model_functions)
    return _LOADED[name], arguments


def _projection_lists(lowered: LoweredNetwork, parallel: bool) -> dict[str, object]:
    """The arguments of ``deliver_all`` (and, ``parallel``, of ``deliver_all_parallel``): the lowered
    arrays themselves, gathered in typed lists."""
    populations, projections = lowered.populations, lowered.projections

    def listed(arrays):
        # A tuple is indexed without overhead but compiles to a switch over its entries; a typed
        # list costs a little per access and compiles the same for any length.
        arrays = tuple(arrays)
        if len(projections) <= _TUPLE_PROJECTIONS:
            return arrays
        if isinstance(numba.typeof(arrays), numba.types.UniTuple):
            return numba_kernels.typed_list(arrays)
        # arrays of mixed numba types (a read-only one among writable ones): numba's List casts them
        # to the first one's type, compiling its methods in this process
        return TypedList(arrays)

    def delays(projection):
        steps = projection.delay_steps
        return steps if projection.per_synapse_delays else np.array([steps], dtype=np.uint16)

    groups = [_delay_groups(j) for j in projections]

    def mode(j, projection):
        if projection.geometry is not None:
            return DELIVER_CONVOLUTION
        if projection.all_to_all:
            return DELIVER_ALL_TO_ALL if projection.autapses else DELIVER_ALL_TO_ALL_NO_AUTAPSES
        if groups[j] is not None:
            return DELIVER_CSR_DELAY_GROUPS
        return DELIVER_CSR_PER_SYNAPSE_DELAYS if projection.per_synapse_delays else DELIVER_CSR

    # a ring splits by slot only if every projection onto it is in delay groups: the span it may split
    ring_spans = np.zeros(len(populations), dtype=np.int64)
    for p in range(len(populations)):
        onto = [groups[j] for j, projection in enumerate(projections) if projection.post == p]
        if onto and all(g is not None for g in onto):
            ring_spans[p] = min(g[0].shape[1] - 1 for g in onto)
    slots = max(p.ring.shape[0] for p in populations)
    batch = max(16, min(_SEGMENT_BATCH, (1 << 18) // slots)) if any(g is not None for g in groups) else 1
    no_groups = np.zeros((0, 1), dtype=np.uint16)

    # an implicit all-to-all projection has no synapse arrays (a convolution no post_ids): empty ones
    # keep each sequence of one type
    no_row_ptr, no_post_ids = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint32)
    geometries = np.zeros((len(projections), len(GEOMETRY_FIELDS)), dtype=np.int64)
    for j, projection in enumerate(projections):
        if projection.geometry is not None:
            geometries[j] = projection.geometry

    lists = {
        "spike_id_lists": listed([p.spike_ids for p in populations]),
        "spike_step_lists": listed([p.spike_steps for p in populations]),
        "rings": listed([p.ring for p in populations]),
        "projection_pre": np.array([j.pre for j in projections], dtype=np.int64),
        "projection_post": np.array([j.post for j in projections], dtype=np.int64),
        "projection_receptor": np.array([j.receptor for j in projections], dtype=np.int64),
        "row_ptrs": listed([no_row_ptr if j.all_to_all else j.row_ptr for j in projections]),
        # unsigned indices spare numba's negative-index wrap-around test in the hot loop
        "post_id_lists": listed([no_post_ids if j.post_ids is None else j.post_ids.view(np.uint32)
                                 for j in projections]),
        "weight_lists": listed([j.weights for j in projections]),
        "weight_strides": np.array([j.weight_stride for j in projections], dtype=np.int64),
        "delay_lists": listed([delays(j) for j in projections]),
        "delivery_modes": np.array([mode(j, projection) for j, projection in enumerate(projections)],
                                   dtype=np.int64),
        "projection_widths": np.array([j.width for j in projections], dtype=np.int64),
        "projection_geometries": geometries,
        # each thread's buckets for the synapses of per-synapse delays (numba_kernels.deliver_by_arrival)
        "bucket_posts": np.zeros((numba.config.NUMBA_NUM_THREADS, numba_kernels.ARRIVAL_BATCH), dtype=np.uint32),
        "bucket_weights": np.zeros((numba.config.NUMBA_NUM_THREADS, numba_kernels.ARRIVAL_BATCH),
                                   dtype=lowered.dtype),
        "slot_starts": np.zeros((numba.config.NUMBA_NUM_THREADS, slots + 1), dtype=np.int64),
        # rows in delay groups (numba_kernels.deliver_delay_groups): each group's start in its row, the
        # first group's delay, and each thread's runs of synapses per slot
        "group_offset_lists": listed([no_groups if g is None else g[0] for g in groups]),
        "first_delays": np.array([0 if g is None else g[1] for g in groups], dtype=np.int64),
        "ring_spans": ring_spans,
        "segment_begins": np.zeros((numba.config.NUMBA_NUM_THREADS, slots, batch), dtype=np.int64),
        "segment_ends": np.zeros((numba.config.NUMBA_NUM_THREADS, slots, batch), dtype=np.int64),
        "segment_counts": np.zeros((numba.config.NUMBA_NUM_THREADS, slots), dtype=np.int64),
    }
    if parallel:
        # a block's synapses are contiguous in a row (or a delay group) whose targets ascend (every
        # rule but FromArrays)
        lists["rows_ascending"] = np.array(
            [g[2] if g is not None else
             j.post_ids is not None and numba_kernels.rows_ascending(j.row_ptr, j.post_ids.view(np.uint32))
             for j, g in zip(projections, groups, strict=True)], dtype=np.bool_)
    return lists


#: spikes whose runs of synapses one pass of ``numba_kernels.deliver_delay_groups`` lists at most
_SEGMENT_BATCH = 256


def _delay_groups(projection: LoweredProjection) -> tuple[np.ndarray, int, bool] | None:
    """The delay groups of a projection whose rows are in order of delay (what ``Network.connect``
    makes of per-synapse delays without plasticity): each group's start in its row (uint16), the
    first group's delay (steps) and whether each group's targets ascend; ``None`` for any other.

    Skipped where a row holds more synapses than uint16 counts, or where the offsets (2 bytes an
    entry) would take more than 16 bytes a synapse (which itself takes 10) plus a megabyte: a few
    synapses with delays spread wide.
    """
    if not projection.per_synapse_delays or projection.post_ids is None:
        return None
    row_ptr, delays = projection.row_ptr, projection.delay_steps
    rows = len(row_ptr) - 1
    if not len(delays) or int(np.diff(row_ptr).max()) > numba_kernels.MAX_GROUPED_ROW:
        return None
    first_delay, last_delay = int(delays.min()), int(delays.max())
    groups = last_delay - first_delay + 1
    if rows * (groups + 1) > 8 * len(delays) + (1 << 19):
        return None
    offsets = np.empty((rows, groups + 1), dtype=np.uint16)
    ascending = numba_kernels.delay_group_offsets(row_ptr, delays, projection.post_ids.view(np.uint32),
                                                  first_delay, offsets)
    if ascending < 0:
        return None
    return offsets, first_delay, bool(ascending)


class NumbaRunner(Runner):
    """Advances a lowered network with its generated, compiled kernel."""

    def __init__(self, lowered: LoweredNetwork):
        self.lowered = lowered
        self.kernel, names = _load_kernel(lowered)
        # each population's first and last spike of the current chunk (the kernel allocates nothing)
        spike_range = np.zeros((2, len(lowered.populations)), dtype=np.int64)
        values = {"chunk": lowered.chunk, "status": lowered.status, "synaptic_events": lowered.synaptic_events,
                  "first": spike_range[0], "last": spike_range[1]}
        for index, population in enumerate(lowered.populations):
            p = f"p{index}_"
            values.update({
                f"{p}bound": population.spike_bound, f"{p}spike_ids": population.spike_ids,
                f"{p}spike_steps": population.spike_steps, f"{p}spike_count": population.spike_count,
                f"{p}source_steps": population.source_steps, f"{p}source_ids": population.source_ids,
                f"{p}source_next": population.source_next, f"{p}state": population.state,
                f"{p}consts": population.consts, f"{p}ring": population.ring, f"{p}key": population.key,
                f"{p}flags": population.flags,
            })
            cdf, guide = count_tables(population.drive_params)
            values.update({f"{p}drive_weights": population.drive_weights, f"{p}drive_keys": population.drive_keys,
                           f"{p}drive_events": population.drive_events, f"{p}drive_cdf": cdf,
                           f"{p}drive_guide": guide})
        if lowered.projections:
            parallel = _parallel_delivery(lowered)
            values.update(_projection_lists(lowered, parallel))
            if parallel:
                values["min_delivery_events"] = PARALLEL_MIN_EVENTS
                values["delivery_threads"] = np.ones(1, dtype=np.int64)
        values["update_threads"] = np.ones(1, dtype=np.int64)
        values["block_events"] = np.zeros((numba.config.NUMBA_NUM_THREADS, max(
            [1] + [len(p.drive_names) for p in lowered.populations])), dtype=np.int64)
        # each block's spikes collected and whether its state stayed finite (_write_block_collection)
        values["block_spikes"] = np.zeros((numba.config.NUMBA_NUM_THREADS, 2), dtype=np.int64)
        if _updated_together(lowered):
            drives = max(len(p.drive_names) for p in lowered.populations)
            values["together_events"] = np.zeros((numba.config.NUMBA_NUM_THREADS, len(lowered.populations),
                                                  max(1, drives)), dtype=np.int64)
            values["together_spikes"] = np.zeros((numba.config.NUMBA_NUM_THREADS, len(lowered.populations), 2),
                                                 dtype=np.int64)
        for q, plastic in enumerate(lowered.plastic):
            projection = lowered.projections[plastic.projection]
            targets = projection.post_ids.view(np.uint32)
            capacity = len(lowered.populations[plastic.pre].spike_ids)
            arrays = {"row_ptr": projection.row_ptr, "targets": targets, "weights": projection.weights,
                      # scratch of apply_stdp: each pre neuron's spikes of a chunk, and its trace after each
                      "first_event": np.full(lowered.populations[plastic.pre].n, -1, dtype=np.int64),
                      "next_event": np.empty(capacity, dtype=np.int64), "trace_after": np.empty(capacity),
                      "ascending": numba_kernels.rows_ascending(projection.row_ptr, targets)}
            values.update({f"s{q}_{name}": arrays[name] if name in arrays else getattr(plastic, name)
                           for name in _PLASTIC_ARGUMENTS})
        values["min_stdp_events"] = PARALLEL_MIN_STDP_UPDATES
        values["one_thread"] = np.ones(1, dtype=np.int64)
        values.update(_value_values(lowered))
        self._names = names[2:]
        #: the thread counts the kernel takes, set before every advance (a kernel that takes none spares each
        #: host value population's window the call that reads numba's count, 0.6 us)
        self._thread_counts = [values[name] for name in ("delivery_threads", "update_threads") if name in self._names]
        self._values = values
        self._arguments: tuple = ()
        self._monitor_buffers: list = []
        #: whether the kernel's first call, which loads its machine code from the cache, succeeded
        self._cache_checked = False

    def advance(self, start: int, stop: int) -> int:
        if self._thread_counts:
            threads = numba.get_num_threads()  # numba.set_num_threads may have changed it
            for count in self._thread_counts:
                count[0] = threads
        monitors = self.lowered.state_monitors
        if not self._arguments or any(m.values is not b for m, b in zip(monitors, self._monitor_buffers, strict=True)):
            # a run allocates its monitors' buffers anew: the kernel's arguments are gathered once per run
            for m, monitor in enumerate(self.lowered.state_monitors):
                self._values.update({
                    f"m{m}_row": monitor.row, f"m{m}_ids": monitor.ids, f"m{m}_every": monitor.every,
                    f"m{m}_values": monitor.values, f"m{m}_steps": monitor.steps, f"m{m}_count": monitor.count,
                })
            self._arguments = tuple(self._values[name] for name in self._names)
            self._monitor_buffers = [monitor.values for monitor in monitors]
        if self._cache_checked:
            return int(self.kernel(start, stop, *self._arguments))
        try:
            result = int(self.kernel(start, stop, *self._arguments))
        except kernel_cache.CACHE_ERRORS as error:
            # the first call loads the machine code from the cache: a damaged entry is compiled again
            self.kernel = kernel_cache.without_cache(self.kernel, error)
            result = int(self.kernel(start, stop, *self._arguments))
        self._cache_checked = True
        return result


def prepare(lowered: LoweredNetwork) -> NumbaRunner:
    return NumbaRunner(lowered)
