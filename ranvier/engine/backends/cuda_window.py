"""The end of a cuda chunk: STDP of the chunk's spikes, then the value populations whose windows end with it.

The chunk's ``deliver`` kernel (:mod:`.cuda_chunk`) finishes with them in its *last block* (the
same ``cuda.threadfence`` and atomic ticket as ``update``'s spike lists), so they take no launch
of their own: every block's deliveries are visible to it, and a spike has carried its synapse's
weight of the chunk start before learning changes it. The block's threads stride over each
piece of work, with a barrier between pieces; work whose additions must keep the numpy
reference's order runs on the block's first thread. In order:

1. STDP, each plastic projection in turn (:func:`learn_chunk`). The CPU backends' ``apply_stdp``
   takes a chunk's spikes in time order, pre before post within a step. The weight of synapse
   p -> q changes only at the spikes of p (depression by q's trace) and of q (potentiation by
   p's trace), and p's trace changes only at p's spikes, q's only at q's: so the synapse sees,
   step by step, p's spikes and then q's, whatever the other neurons do. One thread per synapse
   replays exactly that sequence with its own copies of the two traces (:func:`learn_synapse`),
   and computes what the serial loop computes, to the bit: the threads count each neuron's
   spikes per step of the chunk and elect each spiking neuron's first spike as its owner; then,
   owner by owner, they learn over the synapses of its row (pre) or those of its column whose
   source did not spike (post), so each synapse that learns has exactly one thread; then the
   owners advance the real traces and clear the counts.
2. At a step ``k`` that ends the windows of value populations, those updated on the device, in
   the order of :mod:`.value_updates`: every due population gathers its inputs (count windows
   and value maps, a thread per row of a sparse map, all-to-all sums on one thread); then each
   runs its step (a thread per unit, its ``finish`` on one thread) or its traced array step
   (:mod:`.array_program`, the block's threads over each loop), is tested for finite state (a
   failure recorded in ``status`` ends the window there, as the reference's does), publishes,
   schedules its pulses, writes its state monitors' samples (the host picks their rows) and
   sends its holds, sets and modulation.
"""

from __future__ import annotations

import types

import numpy as np
from numba import cuda

from ..lowering import Consumer, LoweredNetwork, Operator, Status
from . import array_program, numba_kernels
from .source_writer import SourceWriter

#: the owner of a neuron that did not spike in the chunk
NO_OWNER = np.iinfo(np.int64).max
NOT_FINITE = int(Status.NOT_FINITE)


def _device_version(kernel, helpers: tuple[str, ...]):
    """A CPU backend's loop compiled as a device function, its calls to ``helpers`` (functions of
    :mod:`.numba_kernels`) resolved to device versions of them: one definition for both targets."""
    source = kernel.py_func
    device_helpers = {name: cuda.jit(device=True)(getattr(numba_kernels, name).py_func) for name in helpers}
    function = types.FunctionType(source.__code__, {**source.__globals__, **device_helpers}, source.__name__)
    return cuda.jit(device=True)(function)


# The CPU backends' loops, on one thread where their order of additions is the reference's. They
# do not use ``cuda``, so the generated kernels import them (see ``cuda_chunk`` on why those that do
# are written into each kernel module).
add_all_to_all = _device_version(numba_kernels.add_all_to_all, ("all_to_all_total",))
take_pending = _device_version(numba_kernels.take_pending, ())
publish = _device_version(numba_kernels.publish, ("_copy",))
schedule_pulses = _device_version(numba_kernels.schedule_pulses, ())
hold_values = _device_version(numba_kernels.hold_values, ())
set_state_row = _device_version(numba_kernels.set_state_row, ())
set_modulation = _device_version(numba_kernels.set_modulation, ())
decayed = cuda.jit(device=True)(numba_kernels._decayed.py_func)
stdp_parameters = cuda.jit(device=True)(numba_kernels._stdp_parameters.py_func)
depressed = _device_version(numba_kernels._depressed, ("_bounded",))
potentiated = _device_version(numba_kernels._potentiated, ("_bounded",))


@cuda.jit(device=True)
def learn_synapse(s, p, q, start, length, pre_counts, post_counts, weights, pre_trace, pre_seen, post_trace,
                  post_seen, decay_plus, decay_minus, params, modulation):
    """Synapse s (p -> q) through the chunk's steps ``start .. start + length - 1``, as ``apply_stdp``.

    In each step: every spike of p sets ``w -= a_minus m_minus x_post`` (times ``w - w_min`` when
    multiplicative) and then ``x_pre = x_pre decay + 1``; every spike of q sets
    ``w += a_plus m_plus x_pre`` (times ``w_max - w``) and then ``x_post = x_post decay + 1``;
    ``w`` in float64, stored in the weights' precision after each spike and clipped to
    ``[w_min, w_max]``. The traces are this thread's copies: the owners advance the real ones after.
    """
    a_plus, a_minus, w_min, w_max, multiplicative = stdp_parameters(params)
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
            x = decayed(x_post, post_step, k, decay_minus)
            weights[s] = depressed(np.float64(weights[s]), depression, x, w_min, w_max, multiplicative)
            x_pre = decayed(x_pre, pre_step, k, decay_plus) + 1.0
            pre_step = k
        for _ in range(post_counts[t, q]):
            x = decayed(x_pre, pre_step, k, decay_plus)
            weights[s] = potentiated(np.float64(weights[s]), potentiation, x, w_min, w_max, multiplicative)
            x_post = decayed(x_post, post_step, k, decay_minus) + 1.0
            post_step = k


@cuda.jit(device=True)
def advance_trace(trace, seen, neuron, counts, start, length, table):
    """``x = x decay + 1`` at each of the neuron's spikes of the chunk (as ``apply_stdp``); clears its counts."""
    for t in range(length):
        for _ in range(counts[t, neuron]):
            trace[neuron] = decayed(trace[neuron], seen[neuron], start + t, table) + 1.0
            seen[neuron] = start + t
        counts[t, neuron] = 0


# Written into each kernel module (it uses ``cuda``).
def learn_chunk(chunk_first, spike_counts, pre, post, pre_ids, pre_steps, post_ids, post_steps, start, length,
                pre_counts, post_counts, pre_owner, post_owner, row_ptr, targets, weights, col_ptr, col_synapses,
                col_sources, pre_trace, pre_seen, post_trace, post_seen, decay_plus, decay_minus, params, modulation):
    """STDP of one plastic projection over the chunk's spikes, by the block's threads (the module's docstring)."""
    x = cuda.threadIdx.x
    width = cuda.blockDim.x
    pre_first = chunk_first[pre]
    post_first = chunk_first[post]
    pre_spikes = spike_counts[pre] - pre_first
    spikes = pre_spikes + spike_counts[post] - post_first
    for entry in range(x, spikes, width):
        if entry < pre_spikes:
            s = pre_first + entry
            cuda.atomic.add(pre_counts, (pre_steps[s] - start, pre_ids[s]), 1)
            cuda.atomic.min(pre_owner, pre_ids[s], s)
        else:
            s = post_first + entry - pre_spikes
            cuda.atomic.add(post_counts, (post_steps[s] - start, post_ids[s]), 1)
            cuda.atomic.min(post_owner, post_ids[s], s)
    cuda.syncthreads()
    for entry in range(spikes):
        if entry < pre_spikes:
            p = pre_ids[pre_first + entry]
            if pre_owner[p] == pre_first + entry:
                for s in range(row_ptr[p] + x, row_ptr[p + 1], width):
                    learn_synapse(s, p, targets[s], start, length, pre_counts, post_counts, weights, pre_trace,
                                  pre_seen, post_trace, post_seen, decay_plus, decay_minus, params, modulation)
        else:
            q = post_ids[post_first + entry - pre_spikes]
            if post_owner[q] == post_first + entry - pre_spikes:
                for column in range(col_ptr[q] + x, col_ptr[q + 1], width):
                    p = col_sources[column]
                    if pre_owner[p] == NO_OWNER:
                        learn_synapse(col_synapses[column], p, q, start, length, pre_counts, post_counts, weights,
                                      pre_trace, pre_seen, post_trace, post_seen, decay_plus, decay_minus, params,
                                      modulation)
    cuda.syncthreads()
    for entry in range(x, spikes, width):
        if entry < pre_spikes:
            s = pre_first + entry
            p = pre_ids[s]
            if pre_owner[p] == s:  # another spike of p reads the owner, or NO_OWNER: never its own index
                advance_trace(pre_trace, pre_seen, p, pre_counts, start, length, decay_plus)
                pre_owner[p] = NO_OWNER
        else:
            s = post_first + entry - pre_spikes
            q = post_ids[s]
            if post_owner[q] == s:
                advance_trace(post_trace, post_seen, q, post_counts, start, length, decay_minus)
                post_owner[q] = NO_OWNER
    cuda.syncthreads()


DEVICE_FUNCTIONS = (learn_chunk,)

#: plastic projection q's arrays (``s{q}_<name>``)
PLASTIC_ARGUMENTS = ["pre_counts", "post_counts", "pre_owner", "post_owner", "col_ptr", "col_synapses", "col_sources",
                     "pre_trace", "pre_seen", "post_trace", "post_seen", "decay_plus", "decay_minus", "params",
                     "modulation"]
#: value population v's arrays and scalars (``v{v}_<name>``): of every one, of an elementwise one, of an
#: array step (its state and inputs as flat views too)
VALUE_ARGUMENTS = ["state", "consts", "inputs", "output_rows", "previous"]
ELEMENTWISE_ARGUMENTS = ["flags", "key"]
ARRAY_STEP_ARGUMENTS = ["flat_state", "flat_inputs", "scratch"]
#: value map g's arrays (``g{g}_<name>``)
MAP_ARGUMENTS = ["row_ptr", "columns", "values", "targets", "scratch", "weight"]
#: a value population's state monitor m's (``m{m}_<name>``): the units sampled, the samples, and the row
#: of this chunk's sample (-1: none)
VALUE_MONITOR_ARGUMENTS = ["ids", "values", "sample"]


def value_monitors(lowered: LoweredNetwork) -> list[tuple[int, int]]:
    """``(monitor, value population)`` of the state monitors sampled at value updates on the device."""
    by_population = {value.population: v for v, value in enumerate(lowered.values)}
    return [(m, by_population[monitor.population]) for m, monitor in enumerate(lowered.state_monitors)
            if monitor.population in by_population]


def needed(lowered: LoweredNetwork) -> bool:
    """Whether chunks end with learning or value updates."""
    return bool(lowered.plastic or lowered.values)


def arguments(lowered: LoweredNetwork) -> list[str]:
    """The arguments the end of a chunk reads, beyond ``deliver``'s own."""
    names = ["start", "length", "deliver_done"] if needed(lowered) else []
    for q, plastic in enumerate(lowered.plastic):
        names += [f"s{q}_{name}" for name in PLASTIC_ARGUMENTS]
        names += [f"p{plastic.post}_spike_ids", f"p{plastic.post}_spike_steps"]
    for v, value in enumerate(lowered.values):
        names += [f"v{v}_{name}" for name in VALUE_ARGUMENTS]
        names += [f"v{v}_{name}" for name in (ELEMENTWISE_ARGUMENTS if value.trace is None else ARRAY_STEP_ARGUMENTS)]
        if value.pulses:
            names += [f"p{value.population}_{name}" for name in ("source_steps", "source_ids", "source_next")]
        for g in value.feeds:
            if lowered.value_maps[g].consumer is Consumer.HOLD:
                names.append(f"p{lowered.value_maps[g].post}_ring")
            else:
                names.append(f"p{lowered.value_maps[g].post}_state")
    for g, value_map in enumerate(lowered.value_maps):
        if value_map.compiled:
            names += [f"g{g}_{name}" for name in MAP_ARGUMENTS]
    names += [f"published{index}" for index in sorted(lowered.published)]
    if lowered.values:
        names += [f"c{c}_pending" for c in range(len(lowered.counts))]
    for m, _ in value_monitors(lowered):
        names += [f"m{m}_{name}" for name in VALUE_MONITOR_ARGUMENTS]
    return list(dict.fromkeys(names))


def write_functions(w: SourceWriter, lowered: LoweredNetwork) -> None:
    """The value populations' device functions: elementwise steps and finishes (``_py_value_step{v}``
    and ``_py_finish{v}``, handed to the module, :func:`functions`), and each traced array step."""
    for v, value in enumerate(lowered.values):
        if value.trace is None:
            w(f"_value_step{v} = cuda.jit(device=True)(_py_value_step{v})")
            if value.finish_function is not None:
                w(f"_finish{v} = cuda.jit(device=True)(_py_finish{v})")
        else:
            w()
            w()
            source = array_program.cuda_source(value.trace, placement(value), f"_array_step{v}")
            w.lines += source.rstrip("\n").split("\n")


def placement(value) -> array_program.Placement:
    """Where a value population's traced array step reads and writes: the views its model's ``gather`` and
    ``destinations`` give, resolved to places in its state and inputs."""
    bases = {"state": value.state, "inputs": value.inputs}

    def place(view: np.ndarray, names: tuple[str, ...]) -> tuple[str, int, tuple[int, ...]]:
        for name in names:
            if np.shares_memory(view, bases[name]):
                return (name, *array_program.view_address(view, bases[name]))
        raise ValueError(f"population {value.name!r}: its array step's gather and destinations must give views "
                         f"of its {' or '.join(names)}; got an array of shape {view.shape} that is not one")

    inputs = tuple(place(view, ("state", "inputs")) for view in value.array_step.gather(value.state, value.inputs))
    results = [np.empty(shape) for shape in value.trace.output_shapes]
    outputs = tuple(place(view, ("state",))[1:] for view in value.array_step.destinations(value.state, *results))
    return array_program.Placement(inputs, outputs, value.state.size)


def functions(lowered: LoweredNetwork) -> dict[str, object]:
    """The model functions the kernel module compiles: the elementwise value populations' steps and finishes."""
    handed = {}
    for v, value in enumerate(lowered.values):
        if value.trace is None:
            handed[f"_py_value_step{v}"] = value.step_function
            if value.finish_function is not None:
                handed[f"_py_finish{v}"] = value.finish_function
    return handed


def write_last_block(w: SourceWriter, ticket: str) -> None:
    """Return from every block but the last to get here (CUDA's threadFenceReduction pattern: each block
    fences its writes and takes a ticket from the counter ``ticket``, which the last block finds at
    ``gridDim - 1``; it resets the counter later)."""
    w("cuda.threadfence()")
    w("last = cuda.shared.array(1, np.int32)")
    with w.block("if cuda.threadIdx.x == 0:"):
        w(f"last[0] = 1 if cuda.atomic.add({ticket}, 0, 1) == cuda.gridDim.x - 1 else 0")
    w("cuda.syncthreads()")
    with w.block("if last[0] == 0:"):
        w("return")


def write_end(w: SourceWriter, lowered: LoweredNetwork) -> None:
    """The end of ``deliver``: its last block learns and updates the value populations due at the chunk's end."""
    w("# the last block to finish learns and updates the value populations (every block's deliveries are visible)")
    write_last_block(w, "deliver_done")
    with w.block("if cuda.threadIdx.x == 0:"):
        w("deliver_done[0] = 0")
    w("x = cuda.threadIdx.x")
    w("width = cuda.blockDim.x")
    for q, plastic in enumerate(lowered.plastic):
        j, s = f"j{plastic.projection}_", f"s{q}_"
        pre, post = f"p{plastic.pre}_", f"p{plastic.post}_"
        w(f"learn_chunk(chunk_first, spike_counts, {plastic.pre}, {plastic.post}, {pre}spike_ids, {pre}spike_steps, "
          f"{post}spike_ids, {post}spike_steps, start, length, {s}pre_counts, {s}post_counts, {s}pre_owner, "
          f"{s}post_owner, {j}row_ptr, {j}post_ids, {j}weights, {s}col_ptr, {s}col_synapses, {s}col_sources, "
          f"{s}pre_trace, {s}pre_seen, {s}post_trace, {s}post_seen, {s}decay_plus, {s}decay_minus, {s}params, "
          f"{s}modulation)")
    if lowered.values:
        _write_values(w, lowered)


def _write_values(w: SourceWriter, lowered: LoweredNetwork) -> None:
    w("k = start + length")
    for v, value in enumerate(lowered.values):
        w(f"due{v} = k % {value.period} == 0")
    for v, value in enumerate(lowered.values):
        # ``due`` is the same in every thread: the barriers inside are reached by all or none
        with w.block(f"if due{v}:"):
            _write_cleared(w, f"v{v}_inputs", value.inputs.shape)
            for kind, index in value.sources:
                if kind == "count":
                    count = lowered.counts[index]
                    with w.block("if x == 0:"):
                        w(f"take_pending(v{v}_inputs, {count.row}, c{index}_pending, "
                          f"(k // {count.period} - 1) % c{index}_pending.shape[0])")
                else:
                    value_map = lowered.value_maps[index]
                    _write_map(w, lowered, index, f"v{v}_inputs", value_map.destination, value_map.channels)
                w("cuda.syncthreads()")
    for v in range(len(lowered.values)):
        with w.block(f"if due{v}:"):
            _write_update(w, lowered, v)


def _write_cleared(w: SourceWriter, name: str, shape: tuple[int, int]) -> None:
    with w.block(f"for entry in range(x, {shape[0] * shape[1]}, width):"):
        w(f"{name}[entry // {shape[1]}, entry % {shape[1]}] = 0.0")
    w("cuda.syncthreads()")


def _write_map(w: SourceWriter, lowered: LoweredNetwork, g: int, rows: str, first_row: int, channels: int) -> None:
    """Add value map ``g`` of its source's published output into ``rows[first_row ...]`` (no barrier after)."""
    value_map = lowered.value_maps[g]
    published = f"published{value_map.pre}"
    if value_map.operator is Operator.ALL_TO_ALL:
        with w.block("if x == 0:"):
            w(f"add_all_to_all({rows}, {first_row}, {published}, {channels}, g{g}_weight, {value_map.autapses})")
        return
    uniform = value_map.operator is Operator.UNIFORM_SPARSE
    # a thread per row, its entries in order: the reference's sum
    with w.block(f"for i in range(x, {len(value_map.row_ptr) - 1}, width):"):
        for c in range(channels):
            w("total = 0.0")
            with w.block(f"for entry in range(g{g}_row_ptr[i], g{g}_row_ptr[i + 1]):"):
                term = f"{published}[{c}, g{g}_columns[entry]]"
                w(f"total += {term}" if uniform else f"total += g{g}_values[entry] * {term}")
            w(f"{rows}[{first_row + c}, i] += {'g' + str(g) + '_weight * ' if uniform else ''}total")


def _write_update(w: SourceWriter, lowered: LoweredNetwork, v: int) -> None:
    """Value population ``v``'s step, finite test, publication, pulses, samples and what it sends."""
    value = lowered.values[v]
    a = f"v{v}_"
    population = value.population
    if value.trace is None:
        shared = value.consts.shape[1] == 1
        with w.block(f"for i in range(x, {value.n}, width):"):
            w(f"pulsed = _value_step{v}({a}state, {a}consts, {a}inputs, i, {'0' if shared else 'i'}, k, {a}key)")
            if value.pulses:
                with w.block("if pulsed != 0:"):
                    w(f"{a}flags[i] = 1")
        w("cuda.syncthreads()")
        if value.finish_function is not None:
            with w.block("if x == 0:"):
                w(f"_finish{v}({a}state, {a}consts)")
            w("cuda.syncthreads()")
        rows, columns = value.state.shape
        with w.block(f"for entry in range(x, {rows * columns}, width):"):
            with w.block(f"if not math.isfinite({a}state[entry // {columns}, entry % {columns}]):"):
                w(f"status[1] = {population}")
                w("status[2] = k")
                w(f"status[0] = {NOT_FINITE}")
        w("cuda.syncthreads()")
    else:  # it tests the state itself, and ends with a barrier
        w(f"_array_step{v}(status, {a}flat_state, {a}flat_inputs, {a}consts, {a}scratch, {population}, k)")
    with w.block("if status[0] != 0:"):
        w("return")
    published = f"published{population}"
    with w.block("if x == 0:"):
        w(f"publish({a}state, {published}, {published}, {a}output_rows, {a}previous, {value.previous is not None}, "
          "False)")
        if value.pulses:
            p = f"p{population}_"
            w(f"schedule_pulses({a}flags, {value.n}, k, {p}source_steps, {p}source_ids, {p}source_next)")
    for m, owner in value_monitors(lowered):
        if owner == v:
            monitor = lowered.state_monitors[m]
            with w.block(f"if m{m}_sample >= 0:"):
                with w.block(f"for column in range(x, {len(monitor.ids)}, width):"):
                    w(f"m{m}_values[m{m}_sample, column] = {a}state[{monitor.row}, m{m}_ids[column]]")
    w("cuda.syncthreads()")
    for g in value.feeds:
        value_map = lowered.value_maps[g]
        scratch = f"g{g}_scratch"
        _write_cleared(w, scratch, value_map.scratch.shape)
        _write_map(w, lowered, g, scratch, 0, 1)
        w("cuda.syncthreads()")
        with w.block("if x == 0:"):
            if value_map.consumer is Consumer.HOLD:
                w(f"hold_values(p{value_map.post}_ring, {value_map.destination}, {scratch}, k, k + {value.period})")
            else:
                w(f"set_state_row(p{value_map.post}_state, {value_map.destination}, g{g}_targets, {scratch})")
        w("cuda.syncthreads()")
    for q, row in value.modulates:
        with w.block("if x == 0:"):
            w(f"set_modulation(s{q}_modulation, {row}, {published})")
    if value.modulates:
        w("cuda.syncthreads()")
