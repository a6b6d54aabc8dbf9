"""Compiled building blocks of the numba backend, shared by every generated network kernel.

Each is a small loop over flat arrays. Keeping them out of the generated code means they are
compiled once (and cached on disk) for all network structures, and LLVM optimises each loop
on its own rather than as part of one large function.
"""

from __future__ import annotations

import types

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba import types as numba_types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.typed import List

from ..lowering import NO_PULSE
from ..model import NOT_FINITE_UINT16, bits_to_uniform01, row_sum
from ..poisson_input import GUIDE_BITS

#: Options of every compiled loop of the backend. They allocate nothing, so they run without
#: numba's reference counting (``_nrt=False``): otherwise each array passed to a call, or
#: viewed, costs an atomic increment and decrement (about 10 ns each on a 2-core VM), which
#: for CUBA's one-step chunks added up to a sixth of the run.
KERNEL = {"cache": True, "nogil": True, "_nrt": False}

#: the shift that leaves the top ``GUIDE_BITS`` of 64 random bits: their uniform number's guide cell
_GUIDE_SHIFT = np.uint64(64 - GUIDE_BITS)

_EXPONENT = np.uint32(0x7F800000)
_EXPONENT_UNIT = np.uint32(0x00800000)
_SIGN = np.uint32(0x80000000)
_EXPONENT_DOUBLE = np.uint64(0x7FF0000000000000)
_EXPONENT_UNIT_DOUBLE = np.uint64(0x0010000000000000)
_SIGN_DOUBLE = np.uint64(0x8000000000000000)


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask the cache for ``array[index]`` (LLVM's prefetch: for reading, into every cache level); never faults."""
    def codegen(context, builder, signature, arguments):
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, arguments[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, view, [arguments[1]], wraparound=False,
                                           boundscheck=False)
        pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())  # one declaration for every element type
        int32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [pointer.type, int32, int32, int32]), "llvm.prefetch.p0")
        builder.call(function, [pointer, int32(0), int32(3), int32(1)])
        return context.get_dummy_value()
    return numba_types.void(array, numba_types.intp), codegen


@njit(**KERNEL)
def _next_flagged(flag_words, block, end):
    """The first group of 16 neurons from ``block`` up to ``end`` whose flags (four uint64 words a
    group) are not all zero, else ``end``.

    A loop of its own: scanned inside the loop that appends the spikes, the test of the four
    words ran twice as slow (77 000 neurons, 31 spikes: 11 us a step against 5.9).
    """
    while block < end:
        word = 4 * block
        if (flag_words[word] | flag_words[word + 1] | flag_words[word + 2] | flag_words[word + 3]) != 0:
            return block
        block += 1
    return end


@njit(**KERNEL)
def collect_spikes(flags, flag_words, k, spike_ids, spike_steps, count):
    """Append the neurons with non-zero spike counts in ``flags`` (one entry per spike).

    Most counts are zero, so they are tested sixteen at a time (the OR of four uint64 words;
    ``flags`` is padded to a multiple of 16, :func:`_next_flagged`). Returns the new count, -1 when
    the buffer is full, or -2 when a neuron reported a state that is not finite. Leaves every
    count it read at zero, so the update loop need only write the neurons that spike. (Counting
    the flagged neurons in the update loop, to stop this scan early, made that loop twice as slow.)
    """
    capacity = spike_ids.shape[0]
    groups = flag_words.shape[0] // 4
    group = _next_flagged(flag_words, 0, groups)
    while group < groups:
        for i in range(16 * group, 16 * group + 16):
            spikes = flags[i]
            if spikes == 0:
                continue
            flags[i] = 0
            if spikes == NOT_FINITE_UINT16:
                flags[:] = 0
                return -2
            while spikes > 0:
                if count == capacity:
                    flags[:] = 0
                    return -1
                spike_ids[count] = i
                spike_steps[count] = k
                count += 1
                spikes -= 1
        group = _next_flagged(flag_words, group + 1, groups)
    return count


@njit(**KERNEL, inline="always")
def _collection_region(block, blocks, n, room):
    """Where ``block``'s spikes start in the ``room`` free entries of a spike buffer (from the first free
    one): the share of its neurons, ``room * low / n``; ``room`` for ``block == blocks``. A block of
    ``high - low`` neurons gets at least ``high - low`` entries when ``room >= n``."""
    if n == 0:
        return 0
    return room * _block_start(block, blocks, n) // n


@njit(**KERNEL)
def collect_block(flags, flag_words, n, block, blocks, k, spike_ids, spike_steps, count):
    """:func:`collect_spikes` of ``block``'s neurons (of ``blocks`` over ``n``, :func:`_block_start`), on its
    own thread.

    Its spikes go to its region of the free entries after ``count`` (:func:`_collection_region`), in
    the order of the serial scan, and their flags are cleared. Returns the number written, or -1 when
    they do not fit or a neuron reported a state that is not finite; the block's flags are then as
    the update left them (what it had written is counted back into them), for
    :func:`finish_collection`'s serial scan.

    Called, not inlined: numba's parallel passes grow faster than the parallel loop's body, and
    inlined into ``_update_together`` once per population the microcircuit's eight took that loop
    from 17 to 91 s to compile into an empty cache (24 s called, and runs as fast).
    """
    room = spike_ids.shape[0] - count
    begin = count + _collection_region(block, blocks, n, room)
    end = count + _collection_region(block + 1, blocks, n, room)
    written = begin
    low, high = _block_start(block, blocks, n), _block_start(block + 1, blocks, n)
    if low >= high:
        # an empty block may start at an n inside another block's last group of 16
        return 0
    # a block starts on a multiple of 16 neurons; the last ends at n, and its last group's padding is 0
    groups = (high + 15) // 16
    group = _next_flagged(flag_words, low // 16, groups)
    while group < groups:
        for i in range(16 * group, 16 * group + 16):
            spikes = flags[i]
            if spikes == 0:
                continue
            if spikes == NOT_FINITE_UINT16 or written + spikes > end:
                for entry in range(begin, written):
                    flags[spike_ids[entry]] += 1
                return -1
            flags[i] = 0
            while spikes > 0:
                spike_ids[written] = i
                spike_steps[written] = k
                written += 1
                spikes -= 1
        group = _next_flagged(flag_words, group + 1, groups)
    return written - begin


@njit(**KERNEL)
def finish_collection(flags, flag_words, n, k, spike_ids, spike_steps, count, written, blocks):
    """After every block's :func:`collect_block` (``written[b]``): the spike buffer's new count, as
    :func:`collect_spikes` returns it, with the spikes in the serial scan's order.

    Each block's spikes move down to follow the previous block's. Where a block could not collect,
    the other blocks' spikes are counted back into their flags and the whole population is scanned
    serially, which gives the serial scan's result and failure exactly.
    """
    room = spike_ids.shape[0] - count
    for block in range(blocks):
        if written[block] < 0:
            for other in range(blocks):
                begin = count + _collection_region(other, blocks, n, room)
                for entry in range(begin, begin + max(0, written[other])):
                    flags[spike_ids[entry]] += 1
            return collect_spikes(flags, flag_words, k, spike_ids, spike_steps, count)
    position = count
    for block in range(blocks):
        begin = count + _collection_region(block, blocks, n, room)
        if begin != position:
            for entry in range(written[block]):
                spike_ids[position + entry] = spike_ids[begin + entry]
                spike_steps[position + entry] = k
        position += written[block]
    return position


@njit(**KERNEL)
def block_all_finite(state_bits, n, block, blocks):
    """Whether ``block``'s columns (:func:`_block_start`) of a float32 state of ``n`` columns, given as
    the uint32 bits of its rows one after another, are all finite (:func:`all_finite`)."""
    return not (_block_carries(state_bits, n, block, blocks, _EXPONENT, _EXPONENT_UNIT) & _SIGN)


@njit(**KERNEL)
def block_all_finite_double(state_bits, n, block, blocks):
    """:func:`block_all_finite` of a float64 state, given as uint64 bits.

    Both are called, not inlined, for :func:`collect_block`'s reason: eight populations of a model that
    does not check itself, updated together, took 37 s to compile with them inlined and 17 s called.
    """
    return not (_block_carries(state_bits, n, block, blocks, _EXPONENT_DOUBLE, _EXPONENT_UNIT_DOUBLE) & _SIGN_DOUBLE)


@njit(**KERNEL, inline="always")
def _block_carries(state_bits, n, block, blocks, exponent, unit):
    """The OR over ``block``'s columns of each word's exponent bits plus one exponent ``unit``
    (:func:`all_finite`): its sign bit is set where one of them is not finite."""
    low, high = _block_start(block, blocks, n), _block_start(block + 1, blocks, n)
    carries = exponent & 0
    for row in range(state_bits.shape[0] // n if n else 0):
        for word in range(row * n + low, row * n + high):
            carries |= (state_bits[word] & exponent) + unit
    return carries


@njit(**KERNEL, inline="always")
def drawn_count(bits, cdf, guide, m):
    """``model.poisson_count`` of drive ``m`` for the uniform number of ``bits`` (``random_bits``), from its tables.

    The count is the number of entries of row ``m`` of ``cdf`` that are ``<= u``, ``u =
    bits_to_uniform01(bits)`` (``poisson_input.count_tables``). The top ``GUIDE_BITS`` bits are
    ``u``'s guide cell (``floor(u * GUIDE_ENTRIES)``, exactly), which gives the count itself
    where no entry lies inside the cell (all but a few cells), so the float ``u`` is made only
    in the others, where the entries are stepped through from the count below the cell. From
    the bits a draw took about 2.4 ns on the Intel machine, where reading ``u``'s cell and
    comparing ``u`` with the entry there took 3.5 (uint64 to float64 is slow in a scalar loop).
    """
    start = guide[m, bits >> _GUIDE_SHIFT]
    if start >= 0:
        return start
    u = bits_to_uniform01(bits)
    below = -1 - start
    while u >= cdf[m, below]:
        below += 1
    return below


@njit(**KERNEL)
def all_finite(state_bits):
    """Whether every float32 (given as its uint32 bits) is finite.

    A float32 is NaN or infinite exactly when its exponent bits are all ones; adding one
    exponent unit then carries into the sign bit. An OR over all words vectorises, unlike a
    loop of isfinite tests.
    """
    carries = np.uint32(0)
    for word in range(state_bits.shape[0]):
        carries |= (state_bits[word] & _EXPONENT) + _EXPONENT_UNIT
    return not (carries & _SIGN)


@njit(**KERNEL)
def all_finite_double(state_bits):
    """Whether every float64 (given as its uint64 bits) is finite: :func:`all_finite` for double precision."""
    carries = np.uint64(0)
    for word in range(state_bits.shape[0]):
        carries |= (state_bits[word] & _EXPONENT_DOUBLE) + _EXPONENT_UNIT_DOUBLE
    return not (carries & _SIGN_DOUBLE)


@njit(**KERNEL)
def gather_window(ring, k, period):
    """Add the input of steps ``k - period + 1 .. k - 1`` into step ``k``'s slot, in that order, and clear them."""
    slots = ring.shape[0]
    slot = ring[k % slots]
    for back in range(period - 1, 0, -1):
        earlier = ring[(k - back) % slots]
        for r in range(slot.shape[0]):
            for i in range(slot.shape[1]):
                slot[r, i] += earlier[r, i]
                earlier[r, i] = 0.0


@njit(**KERNEL)
def emit_scheduled(source_steps, source_ids, source_next, k, spike_ids, spike_steps, count):
    """Append the scheduled spikes of step ``k``; returns the new count."""
    following = source_next[0]
    while following < source_steps.shape[0] and source_steps[following] <= k:
        spike_ids[count] = source_ids[following]
        spike_steps[count] = k
        count += 1
        following += 1
    source_next[0] = following
    return count


@njit(**KERNEL)
def deliver(spike_ids, spike_steps, first, last, row_ptr, post_ids, weights, weight_stride, delay_steps, ring,
            receptor):
    """Add the weights of spikes ``first .. last - 1`` to the ring slots of their arrival step.

    One delay for the whole projection; synapse s has weight ``weights[s * weight_stride]``
    (stride 0: one shared weight). Returns the number of synaptic events.
    """
    slots = ring.shape[0]
    events = 0
    for s in range(first, last):
        neuron = spike_ids[s]
        begin = row_ptr[neuron]
        end = row_ptr[neuron + 1]
        events += end - begin
        target = ring[(spike_steps[s] + delay_steps) % slots, receptor]
        for synapse in range(begin, end):
            # unsigned: numba tests every signed index for a negative value (Python's wraparound)
            target[post_ids[np.uint64(synapse)]] += weights[np.uint64(synapse * weight_stride)]
    return events


@njit(**KERNEL, inline="always")
def _prefetch_row(b, last, spike_ids, row_ptr, post_ids, weights, weight_stride, delay_steps, low, width):
    """Ask for the next spike's part of its row at ``low`` (from the even-spread estimate), and for the row
    bounds of the one after: the loads that start a row wait on one another, and are otherwise not overlapped."""
    if b + 2 < last:
        _prefetch(row_ptr, spike_ids[b + 2])
    neuron = spike_ids[b + 1]
    begin = row_ptr[neuron]
    guess = begin + (row_ptr[neuron + 1] - begin) * np.int64(low) // width
    for line in range(4):
        _prefetch(post_ids, guess + 16 * line)
        _prefetch(weights, (guess + 16 * line) * weight_stride)
    _prefetch(delay_steps, guess)
    _prefetch(delay_steps, guess + 32)


#: synaptic events one pass of :func:`deliver_by_arrival` sorts at most (per thread: 8 bytes each, so
#: its buckets stay in the core's own cache)
ARRIVAL_BATCH = 32768


@njit(**KERNEL)
def deliver_by_arrival(spike_ids, spike_steps, first, last, row_ptr, post_ids, weights, weight_stride, delay_steps,
                       ring, receptor, low, high, ascending, bucket_post, bucket_weight, slot_start):
    """Add the weights of spikes ``first .. last - 1``, one delay (in steps) per synapse, onto targets
    ``low .. high - 1`` of the ring slots of their arrival.

    The synapses of a batch of spikes (at most ``bucket_post.shape[0]`` of them) are first sorted
    by arrival slot into the buckets (a count, then a fill, in the order of the spikes and their
    synapses), and each slot's bucket is then added into that slot. So one slot of the ring is
    written at a time: it stays in cache, where adding each synapse straight into its own
    slot spread the writes over the whole ring (delays from 0.1 to 6 ms: 58 slots of 77000
    neurons) and missed the cache at almost every one. Every ring entry still receives its
    additions in the order of the spikes and their synapses (the order of ``deliver``): all
    of an entry's additions from a batch are in one bucket, in that order, and batches follow
    one another. In a row in ascending order of target (``ascending``) the block's synapses are
    one run, found by two searches (:func:`_first_at_least`) and looped over without testing a
    target; other rows are scanned whole. While a spike's synapses are counted, the next one's
    part of its row is asked for (:func:`_prefetch_row`). Returns the number of synaptic events
    of the whole rows.
    """
    slots = ring.shape[0]
    width = ring.shape[2]
    capacity = bucket_post.shape[0]
    events = 0
    for b in range(first, last):
        events += row_ptr[spike_ids[b] + 1] - row_ptr[spike_ids[b]]
    s = first
    begin_at = row_ptr[spike_ids[first]] if first < last else 0
    while s < last:
        # the batch: spikes s .. end - 1 whole, then synapses up to stop of spike end (or none)
        batch_first, batch_begin = s, begin_at
        taken = 0
        end = s
        stop = begin_at
        while end < last:
            row_end = row_ptr[spike_ids[end] + 1]
            start = begin_at if end == s else row_ptr[spike_ids[end]]
            if taken + row_end - start > capacity:
                stop = start + capacity - taken
                break
            taken += row_end - start
            end += 1
        for slot in range(slots + 1):
            slot_start[slot] = 0
        for fill in range(2):
            for b in range(batch_first, min(end + 1, last)):
                if fill == 0 and b + 1 < last:
                    _prefetch_row(b, last, spike_ids, row_ptr, post_ids, weights, weight_stride, delay_steps, low,
                                  width)
                neuron = spike_ids[b]
                begin = batch_begin if b == batch_first else row_ptr[neuron]
                finish = stop if b == end else row_ptr[neuron + 1]
                sent = spike_steps[b] % slots
                if ascending:
                    # the block's synapses are one run: the loops over it test no target
                    first_in = _first_at_least(post_ids, begin, finish, low, width)
                    finish = _first_at_least(post_ids, begin, finish, high, width)
                    # unsigned indices: numba tests every signed index for a negative value (Python's
                    # wraparound), which took half the time of these loops
                    if fill == 0:
                        for synapse in range(first_in, finish):
                            slot = sent + np.int64(delay_steps[np.uint64(synapse)])
                            if slot >= slots:
                                slot -= slots
                            slot_start[np.uint64(slot + 1)] += 1
                    else:
                        for synapse in range(first_in, finish):
                            at_synapse = np.uint64(synapse)
                            slot = sent + np.int64(delay_steps[at_synapse])
                            if slot >= slots:
                                slot -= slots
                            at = slot_start[np.uint64(slot)]
                            bucket_post[np.uint64(at)] = post_ids[at_synapse]
                            bucket_weight[np.uint64(at)] = weights[np.uint64(synapse * weight_stride)]
                            slot_start[np.uint64(slot)] = at + 1
                    continue
                for synapse in range(begin, finish):
                    at_synapse = np.uint64(synapse)
                    post = post_ids[at_synapse]
                    if post >= high or post < low:
                        continue
                    slot = sent + np.int64(delay_steps[at_synapse])
                    if slot >= slots:
                        slot -= slots
                    if fill == 0:
                        slot_start[np.uint64(slot + 1)] += 1
                    else:
                        at = slot_start[np.uint64(slot)]
                        bucket_post[np.uint64(at)] = post
                        bucket_weight[np.uint64(at)] = weights[np.uint64(synapse * weight_stride)]
                        slot_start[np.uint64(slot)] = at + 1
            if fill == 0:
                for slot in range(slots):
                    slot_start[slot + 1] += slot_start[slot]
        # after the fill, slot_start[slot] is where the bucket of slot + 1 begins
        at = 0
        for slot in range(slots):
            target = ring[slot, receptor]
            for entry in range(at, slot_start[slot]):
                target[bucket_post[np.uint64(entry)]] += bucket_weight[np.uint64(entry)]
            at = slot_start[slot]
        s = end
        begin_at = stop
    return events



#: rows longer than this many synapses keep no delay groups (their offsets are uint16)
MAX_GROUPED_ROW = int(np.iinfo(np.uint16).max)


@njit(**KERNEL)
def delay_group_offsets(row_ptr, delay_steps, post_ids, first_delay, offsets):
    """Fill ``offsets[row, g]`` with where the synapses of delay ``first_delay + g`` start in each
    row (from the row's start; ``offsets[row, -1]`` is the row's length), for rows in ascending
    order of delay. Returns -1 if a row is not in that order, else 1 if every group's targets
    ascend and 0 if not.
    """
    groups = offsets.shape[1] - 1
    ascending = 1
    for row in range(row_ptr.shape[0] - 1):
        begin, end = row_ptr[row], row_ptr[row + 1]
        group = 0
        for synapse in range(begin, end):
            if synapse > begin and delay_steps[synapse] < delay_steps[synapse - 1]:
                return -1
            delay_group = np.int64(delay_steps[synapse]) - first_delay
            if synapse > begin and delay_steps[synapse] == delay_steps[synapse - 1] and \
                    post_ids[synapse] < post_ids[synapse - 1]:
                ascending = 0
            while group <= delay_group:
                offsets[row, group] = synapse - begin
                group += 1
        while group <= groups:
            offsets[row, group] = end - begin
            group += 1
    return ascending


@njit(**KERNEL)
def deliver_delay_groups(spike_ids, spike_steps, first, last, row_ptr, post_ids, weights, weight_stride,
                         group_offsets, first_delay, ring, receptor, part, parts, low, high, ascending,
                         segment_begins, segment_ends, segment_counts):
    """Add the weights of spikes ``first .. last - 1``, rows in order of delay, onto the ring slots
    ``slot % parts == part`` and targets ``low .. high - 1``.

    Row ``i``'s synapses of delay ``first_delay + g`` are ``row_ptr[i] + group_offsets[i, g]`` up
    to the next group's start, and all arrive in slot ``(sent + first_delay + g) % slots``. A batch
    of spikes (``segment_begins.shape[1]`` at most) is first listed as runs of synapses per slot,
    in the order of the spikes; each slot's runs are then added into it, so one slot is written at
    a time (it stays in cache) and every ring entry receives its additions in the order of
    :func:`deliver`: spike by spike, and a spike's synapses onto one entry in their row order.
    Nothing is sorted and no delay is read. With a block of targets (``low``, ``high``) a group
    whose targets ascend (``ascending``) is cut by two searches, another is filtered synapse by
    synapse. Returns the synaptic events of the whole rows.
    """
    slots = ring.shape[0]
    width = ring.shape[2]
    groups = group_offsets.shape[1] - 1
    capacity = segment_begins.shape[1]
    whole = low == 0 and high >= width
    events = 0
    s = first
    while s < last:
        end = min(last, s + capacity)
        for slot in range(slots):
            segment_counts[slot] = 0
        for b in range(s, end):
            neuron = spike_ids[b]
            start = row_ptr[neuron]
            events += row_ptr[neuron + 1] - start
            offsets = group_offsets[neuron]
            slot = (spike_steps[b] + first_delay) % slots
            owner = slot % parts  # kept up with the slot, not divided for at every group
            for group in range(groups):
                begin = start + np.int64(offsets[group])
                finish = start + np.int64(offsets[group + 1])
                if begin < finish and owner == part:
                    if ascending and not whole:
                        begin = _first_at_least(post_ids, begin, finish, low, width)
                        finish = _first_at_least(post_ids, begin, finish, high, width)
                    if begin < finish:
                        count = segment_counts[slot]
                        segment_begins[slot, count] = begin
                        segment_ends[slot, count] = finish
                        segment_counts[slot] = count + 1
                slot += 1
                owner += 1
                if owner == parts:
                    owner = 0
                if slot == slots:
                    slot = 0
                    owner = 0
        for slot in range(part, slots, parts):
            target = ring[slot, receptor]
            count = segment_counts[slot]
            for c in range(count):
                if c + 1 < count:
                    # the next run is elsewhere in memory: ask for its start while this one is added
                    following = segment_begins[slot, c + 1]
                    _prefetch(post_ids, following)
                    _prefetch(post_ids, following + 16)
                    _prefetch(weights, following * weight_stride)
                    _prefetch(weights, (following + 16) * weight_stride)
                if whole or ascending:
                    for synapse in range(segment_begins[slot, c], segment_ends[slot, c]):
                        # unsigned: numba tests every signed index for a negative value
                        target[post_ids[np.uint64(synapse)]] += weights[np.uint64(synapse * weight_stride)]
                else:
                    for synapse in range(segment_begins[slot, c], segment_ends[slot, c]):
                        post = post_ids[np.uint64(synapse)]
                        if post >= low and post < high:
                            target[post] += weights[np.uint64(synapse * weight_stride)]
        s = end
    return events

@njit(**KERNEL)
def deliver_all_to_all(spike_ids, spike_steps, first, last, width, autapses, weight, delay_steps, ring, receptor):
    """Add ``weight`` to targets ``0 .. width - 1`` of each spike ``first .. last - 1``, in that order.

    An implicit all-to-all projection: one weight, one delay, no synapse arrays; without
    ``autapses`` a spike of neuron j skips target j. Returns the number of synaptic events.
    """
    slots = ring.shape[0]
    events = 0
    for s in range(first, last):
        neuron = spike_ids[s]
        target = ring[(spike_steps[s] + delay_steps) % slots, receptor]
        skipped = width if autapses else neuron
        for i in range(skipped):
            target[i] += weight
        for i in range(skipped + 1, width):
            target[i] += weight
        events += width if autapses else width - 1
    return events


@njit(**KERNEL)
def deliver_convolution(spike_ids, spike_steps, first, last, row_ptr, geometry, kernel, delay_steps, ring, receptor,
                        low, high):
    """Add each spike's kernel entries to its targets ``low .. high - 1`` (``connectivity.Convolution``).

    ``geometry`` holds ``connectivity.GEOMETRY_FIELDS`` in order. A spike of source ``(c, y, x)``
    reaches, for each output channel ``o`` of its group and tap ``(i, j)``, the target ``(o, u, v)``
    with ``y + padding_y - i dilation_y = u stride_y`` (and the same for ``x``) inside the output map,
    adding ``kernel[o, c % (C / groups), i, j]``; no two taps of a spike reach one target, so
    the order of its additions does not matter. Returns the synaptic events of targets in any
    block (``row_ptr`` holds each source's synapse count, summed).
    """
    slots = ring.shape[0]
    height = geometry[1]
    width = geometry[2]
    out_height = geometry[4]
    out_width = geometry[5]
    kernel_height = geometry[6]
    kernel_width = geometry[7]
    in_group = geometry[0] // geometry[14]
    out_group = geometry[3] // geometry[14]
    out_plane = out_height * out_width
    events = 0
    for s in range(first, last):
        neuron = spike_ids[s]
        events += row_ptr[neuron + 1] - row_ptr[neuron]
        target = ring[(spike_steps[s] + delay_steps) % slots, receptor]
        channel = neuron // (height * width)
        y = (neuron // width) % height
        x = neuron % width
        group = channel // in_group
        # the output channels of the group that reach into the block, each over its taps: the
        # additions of one channel land close together in the ring
        first_channel = max(group * out_group, low // out_plane)
        last_channel = min((group + 1) * out_group, (high + out_plane - 1) // out_plane)
        for out_channel in range(first_channel, last_channel):
            taps = ((out_channel * in_group + channel - group * in_group) * kernel_height) * kernel_width
            for i in range(kernel_height):
                shifted_y = y + geometry[10] - i * geometry[12]
                if shifted_y < 0:
                    break  # the shift falls with i
                u = shifted_y // geometry[8]
                if shifted_y - u * geometry[8] != 0 or u >= out_height:
                    continue
                row = out_channel * out_plane + u * out_width
                for j in range(kernel_width):
                    shifted_x = x + geometry[11] - j * geometry[13]
                    if shifted_x < 0:
                        break
                    v = shifted_x // geometry[9]
                    if shifted_x - v * geometry[9] != 0 or v >= out_width:
                        continue
                    post = row + v
                    if post >= low and post < high:
                        target[post] += kernel[taps + i * kernel_width + j]
    return events


#: how ``_deliver_all`` delivers a projection's spikes (its ``modes`` entry)
DELIVER_CSR = 0
DELIVER_CSR_PER_SYNAPSE_DELAYS = 1
DELIVER_ALL_TO_ALL = 2
DELIVER_ALL_TO_ALL_NO_AUTAPSES = 3
DELIVER_CONVOLUTION = 4
DELIVER_CSR_DELAY_GROUPS = 5


def _deliver_all(first, last, spike_ids, spike_steps, rings, pre, post, receptor, row_ptr, post_ids, weights,
                 weight_stride, delays, modes, widths, geometries, bucket_posts, bucket_weights, slot_starts,
                 group_offsets, first_delays, ring_spans, segment_begins, segment_ends, segment_counts, events):
    """Deliver spikes ``first[p] .. last[p] - 1`` of each population p, projection by projection.

    One loop over tuples (:func:`deliver_all`) or typed lists (:func:`deliver_all_listed`) of the
    projections' arrays, so a network's number of projections does not grow its generated
    kernel. Projections from a population that did not spike are skipped before any list is
    touched. ``modes[j]`` (``DELIVER_*``) says whether projection j is CSR, with one delay or
    one per synapse, implicit all-to-all onto ``widths[j]`` targets (``row_ptr[j]`` and
    ``post_ids[j]`` then empty) or a convolution of geometry ``geometries[j]`` (``post_ids[j]`` empty).
    Per-synapse delays are delivered through the first row of the buckets (:func:`deliver_by_arrival`),
    or, in rows in order of delay (``DELIVER_CSR_DELAY_GROUPS``), as runs of one delay
    (:func:`deliver_delay_groups`, groups ``group_offsets[j]`` from delay ``first_delays[j]``).
    """
    for j in range(pre.shape[0]):
        source = pre[j]
        if last[source] == first[source]:
            continue
        mode = modes[j]
        if mode == DELIVER_CSR:
            events[j] += deliver(spike_ids[source], spike_steps[source], first[source], last[source],
                                 row_ptr[j], post_ids[j], weights[j], weight_stride[j], delays[j][0],
                                 rings[post[j]], receptor[j])
        elif mode == DELIVER_CSR_PER_SYNAPSE_DELAYS:
            events[j] += deliver_by_arrival(spike_ids[source], spike_steps[source], first[source], last[source],
                                            row_ptr[j], post_ids[j], weights[j], weight_stride[j], delays[j],
                                            rings[post[j]], receptor[j], 0, widths[j], False, bucket_posts[0],
                                            bucket_weights[0], slot_starts[0])
        elif mode == DELIVER_CSR_DELAY_GROUPS:
            events[j] += deliver_delay_groups(spike_ids[source], spike_steps[source], first[source], last[source],
                                              row_ptr[j], post_ids[j], weights[j], weight_stride[j], group_offsets[j],
                                              first_delays[j], rings[post[j]], receptor[j], 0, 1, 0, widths[j], True,
                                              segment_begins[0], segment_ends[0], segment_counts[0])
        elif mode == DELIVER_CONVOLUTION:
            events[j] += deliver_convolution(spike_ids[source], spike_steps[source], first[source], last[source],
                                             row_ptr[j], geometries[j], weights[j], delays[j][0], rings[post[j]],
                                             receptor[j], 0, widths[j])
        else:
            events[j] += deliver_all_to_all(spike_ids[source], spike_steps[source], first[source], last[source],
                                            widths[j], mode == DELIVER_ALL_TO_ALL, weights[j][0], delays[j][0],
                                            rings[post[j]], receptor[j])


@njit(cache=True)
def typed_list(arrays):
    """A typed list of the arrays of the tuple ``arrays`` (all of one numba type), built in compiled code.

    ``numba.typed.List``'s own constructor and ``append`` are compiled anew in every process (numba
    caches none of them): about 0.37 s per item type, 2.9 s of the 3.2 s that a process spent on
    the microcircuit's first run from a warm cache. Built here, they are compiled once per item type
    and tuple length into the cache.
    """
    items = List()
    for i in range(len(arrays)):
        items.append(arrays[i])
    return items


def _renamed(function, name: str):
    """A copy of ``function`` called ``name``: numba caches compiled code under a function's name."""
    copy = types.FunctionType(function.__code__, function.__globals__, name, function.__defaults__,
                              function.__closure__)
    copy.__qualname__ = name
    copy.__doc__ = function.__doc__
    return copy


deliver_all = njit(**KERNEL)(_renamed(_deliver_all, "deliver_all"))
#: the same loop over typed lists, whose items numba hands out with reference counting
deliver_all_listed = njit(cache=True, nogil=True)(_renamed(_deliver_all, "deliver_all_listed"))


# Thread-parallel delivery: each thread owns a block of every target population's neurons and
# delivers, projection by projection and spike by spike, only the synapses onto its block, so no
# two threads write one ring entry and every target's input is summed in the serial order. A ring
# whose projections all keep their rows in delay groups is split by slot as well: each thread
# owns one class of slots (every classes-th) of one block of targets and reads only its class's
# groups; with as many classes as threads (a wide enough span of delays) it searches no group.

#: a ring whose projections are all in delay groups is split between threads by slot into at most
#: one class per this many steps its projections' delays span (fewer would leave threads idle)
_SLOTS_PER_CLASS = 2


@njit(**KERNEL, inline="always")
def _slot_classes(span, threads):
    """Into how many slot classes ``threads`` split a ring whose delays span ``span`` steps: the largest
    divisor of ``threads`` of at most ``span // _SLOTS_PER_CLASS`` (1 for a ring not in delay groups,
    span 0), each class's threads then splitting the targets into blocks."""
    for classes in range(min(threads, span // _SLOTS_PER_CLASS), 1, -1):
        if threads % classes == 0:
            return classes
    return 1

#: target blocks start at multiples of this many neurons (a 64-byte cache line of float32), so
#: threads never write one cache line
_BLOCK_ALIGN = 16


@njit(**KERNEL, inline="always")
def _block_start(block, blocks, n):
    """First target of ``block`` of ``blocks`` over ``n`` targets (aligned; ``n`` for ``block == blocks``)."""
    if block >= blocks:
        return n
    return min(n, (n * block // blocks + _BLOCK_ALIGN - 1) // _BLOCK_ALIGN * _BLOCK_ALIGN)


@njit(**KERNEL, inline="always")
def _bisect(post_ids, begin, end, low):
    """The first synapse in ``begin .. end - 1`` (targets ascending) whose target is >= ``low``, else ``end``."""
    while begin < end:
        middle = (begin + end) >> 1
        if post_ids[middle] < low:
            begin = middle + 1
        else:
            end = middle
    return begin


@njit(**KERNEL, inline="always")
def _first_at_least(post_ids, begin, end, low, width):
    """:func:`_bisect`, searched from where ``low`` would sit in a row spread evenly over ``width`` targets.

    A fresh row is not in cache, and each step of a bisection waits for the last one's miss
    (a dozen per row of 4000); from the estimate, a gallop of a few steps, mostly within one or
    two cache lines, brackets the answer for random targets, and any row still gets the exact one.
    """
    if begin >= end:
        return begin
    guess = begin + (end - begin) * np.int64(low) // width
    if guess >= end:
        guess = end - 1
    step = 1
    if post_ids[guess] < low:
        start = guess + 1
        stop = start + step
        while stop < end and post_ids[stop - 1] < low:
            start = stop
            step *= 2
            stop = start + step
        return _bisect(post_ids, start, min(stop, end), low)
    stop = guess
    start = stop - step
    while start > begin and post_ids[start] >= low:
        stop = start
        step *= 2
        start = stop - step
    return _bisect(post_ids, max(start, begin), stop, low)


@njit(**KERNEL)
def rows_ascending(row_ptr, post_ids):
    """Whether every source's synapses are in ascending order of target (so a block's are contiguous)."""
    for neuron in range(row_ptr.shape[0] - 1):
        for synapse in range(row_ptr[neuron] + 1, row_ptr[neuron + 1]):
            if post_ids[synapse] < post_ids[synapse - 1]:
                return False
    return True


@njit(**KERNEL)
def rows_by_delay_then_target(row_ptr, delay_steps, post_ids):
    """Whether every source's synapses are in ascending order of delay, and of target within one delay."""
    for neuron in range(row_ptr.shape[0] - 1):
        for synapse in range(row_ptr[neuron] + 1, row_ptr[neuron + 1]):
            if delay_steps[synapse] < delay_steps[synapse - 1] or (
                    delay_steps[synapse] == delay_steps[synapse - 1] and post_ids[synapse] < post_ids[synapse - 1]):
                return False
    return True


@njit(**KERNEL)
def deliver_block(spike_ids, spike_steps, first, last, row_ptr, post_ids, weights, weight_stride, delay_steps, ring,
                  receptor, low, high, ascending):
    """:func:`deliver` of the synapses onto targets ``low .. high - 1`` only.

    Rows in ascending order of target (``ascending``) are entered by bisection and left at the
    first target past the block; other rows are scanned whole. Returns the synaptic events of
    the whole rows.
    """
    slots = ring.shape[0]
    events = 0
    for s in range(first, last):
        neuron = spike_ids[s]
        begin = row_ptr[neuron]
        end = row_ptr[neuron + 1]
        events += end - begin
        if ascending:
            begin = _first_at_least(post_ids, begin, end, low, ring.shape[2])
        target = ring[(spike_steps[s] + delay_steps[0]) % slots, receptor]
        for synapse in range(begin, end):
            post = post_ids[np.uint64(synapse)]
            if post >= high:
                if ascending:
                    break
                continue
            if post >= low:
                target[post] += weights[np.uint64(synapse * weight_stride)]
    return events


@njit(**KERNEL)
def deliver_all_to_all_block(spike_ids, spike_steps, first, last, autapses, weight, delay_steps, ring, receptor,
                             low, high):
    """:func:`deliver_all_to_all` onto targets ``low .. high - 1`` only."""
    slots = ring.shape[0]
    for s in range(first, last):
        neuron = spike_ids[s]
        target = ring[(spike_steps[s] + delay_steps) % slots, receptor]
        if autapses or neuron < low or neuron >= high:
            for i in range(low, high):
                target[i] += weight
        else:
            for i in range(low, neuron):
                target[i] += weight
            for i in range(neuron + 1, high):
                target[i] += weight


@njit(**KERNEL)
def _all_to_all_events(spikes, mode, width):
    """The synaptic events of ``spikes`` through an implicit all-to-all projection onto ``width`` targets."""
    return spikes * (width if mode == DELIVER_ALL_TO_ALL else width - 1)


def _deliver_all_parallel(first, last, spike_ids, spike_steps, rings, pre, post, receptor, row_ptr, post_ids,
                          weights, weight_stride, delays, modes, widths, geometries, bucket_posts, bucket_weights,
                          slot_starts, group_offsets, first_delays, ring_spans, segment_begins, segment_ends,
                          segment_counts, ascending, events, min_events, threads):
    """:func:`deliver_all` on ``threads[0]`` threads, each over its own block of every target population.

    Below ``min_events`` synaptic events in the chunk (estimated from the spike counts and each
    projection's mean out-degree, without reading a row) starting the threads costs more than
    it saves, and the serial loop delivers. Either way every ring entry receives its additions
    in the order of the serial loop, so the result is the same to the bit on any number of
    threads. Thread ``block`` sorts per-synapse delays in its own buckets; the thread whose
    block starts at a projection's first target counts its exact events as it delivers (the rows
    it reads anyway).
    """
    estimate = 0
    for j in range(pre.shape[0]):
        source = pre[j]
        spikes = last[source] - first[source]
        if spikes == 0:
            continue
        mode = modes[j]
        if mode == DELIVER_ALL_TO_ALL or mode == DELIVER_ALL_TO_ALL_NO_AUTAPSES:
            estimate += _all_to_all_events(spikes, mode, widths[j])
        else:
            rows = row_ptr[j].shape[0] - 1
            estimate += spikes * row_ptr[j][rows] // max(rows, 1)
    if estimate < min_events:
        # the serial loop, compiled with reference counting: it takes tuples and typed lists
        deliver_all_listed(first, last, spike_ids, spike_steps, rings, pre, post, receptor, row_ptr, post_ids,
                           weights, weight_stride, delays, modes, widths, geometries, bucket_posts, bucket_weights,
                           slot_starts, group_offsets, first_delays, ring_spans, segment_begins, segment_ends,
                           segment_counts, events)
        return
    # the thread count comes as an argument: a kernel that calls get_num_threads() cannot be cached
    blocks = threads[0]
    for block in prange(blocks):
        for j in range(pre.shape[0]):
            source = pre[j]
            if last[source] == first[source]:
                continue
            mode = modes[j]
            # thread `block` owns slot class block % classes (slots slot % classes == class) of target
            # block block // classes; a ring not wholly in delay groups has one class
            classes = _slot_classes(ring_spans[post[j]], blocks)
            slot_class = block % classes
            low = _block_start(block // classes, blocks // classes, widths[j])
            high = _block_start(block // classes + 1, blocks // classes, widths[j])
            if low == high:
                continue
            made = 0
            if mode == DELIVER_ALL_TO_ALL or mode == DELIVER_ALL_TO_ALL_NO_AUTAPSES:
                deliver_all_to_all_block(spike_ids[source], spike_steps[source], first[source], last[source],
                                         mode == DELIVER_ALL_TO_ALL, weights[j][0], delays[j][0], rings[post[j]],
                                         receptor[j], low, high)
                made = _all_to_all_events(last[source] - first[source], mode, widths[j])
            elif mode == DELIVER_CONVOLUTION:
                made = deliver_convolution(spike_ids[source], spike_steps[source], first[source], last[source],
                                           row_ptr[j], geometries[j], weights[j], delays[j][0], rings[post[j]],
                                           receptor[j], low, high)
            elif mode == DELIVER_CSR_DELAY_GROUPS:
                made = deliver_delay_groups(spike_ids[source], spike_steps[source], first[source], last[source],
                                            row_ptr[j], post_ids[j], weights[j], weight_stride[j], group_offsets[j],
                                            first_delays[j], rings[post[j]], receptor[j], slot_class, classes, low,
                                            high, ascending[j], segment_begins[block], segment_ends[block],
                                            segment_counts[block])
            elif mode == DELIVER_CSR_PER_SYNAPSE_DELAYS:
                made = deliver_by_arrival(spike_ids[source], spike_steps[source], first[source], last[source],
                                          row_ptr[j], post_ids[j], weights[j], weight_stride[j], delays[j],
                                          rings[post[j]], receptor[j], low, high, ascending[j], bucket_posts[block],
                                          bucket_weights[block], slot_starts[block])
            else:
                made = deliver_block(spike_ids[source], spike_steps[source], first[source], last[source], row_ptr[j],
                                     post_ids[j], weights[j], weight_stride[j], delays[j], rings[post[j]],
                                     receptor[j], low, high, ascending[j])
            if low == 0 and slot_class == 0:  # the one block of its first targets (a block can be empty)
                events[j] += made


#: the parallel delivery over tuples and over typed lists of the projections' arrays
deliver_all_parallel = njit(cache=True, nogil=True, parallel=True)(
    _renamed(_deliver_all_parallel, "deliver_all_parallel"))
deliver_all_parallel_listed = njit(cache=True, nogil=True, parallel=True)(
    _renamed(_deliver_all_parallel, "deliver_all_parallel_listed"))


@njit(**KERNEL)
def sample_state(state, row, ids, values, steps, count, k):
    """Store ``state[row, ids]`` as sample ``count[0]`` taken after step ``k``."""
    sample = count[0]
    for column in range(ids.shape[0]):
        values[sample, column] = state[row, ids[column]]
    steps[sample] = k
    count[0] = sample + 1


@njit(**KERNEL, inline="always")
def _decayed(trace, seen, k, table):
    """A trace last set at step ``seen``, decayed to step ``k`` (0 past the end of the table)."""
    elapsed = k - seen
    return trace * table[elapsed] if elapsed < table.shape[0] else 0.0


@njit(**KERNEL, inline="always")
def _bounded(w, w_min, w_max):
    """``min(max(w, w_min), w_max)``, bit for bit (NaN and signed zeros included), in comparisons:
    numba.cuda does not compile ``min`` and ``max`` of floats."""
    w = w_min if w_min > w else w
    return w_max if w_max < w else w


@njit(**KERNEL, inline="always")
def _stdp_parameters(params):
    """``(a_plus, a_minus, w_min, w_max, multiplicative)`` from a plastic projection's ``params`` row."""
    return params[0], params[1], params[2], params[3], params[4] != 0.0


@njit(**KERNEL, inline="always")
def _depressed(w, scale, x, w_min, w_max, multiplicative):
    """``w`` (float64) after a presynaptic spike: ``w - scale x``, times ``w - w_min`` when multiplicative,
    clipped to ``[w_min, w_max]``."""
    change = scale * (w - w_min) * x if multiplicative else scale * x
    return _bounded(w - change, w_min, w_max)


@njit(**KERNEL, inline="always")
def _potentiated(w, scale, x, w_min, w_max, multiplicative):
    """``w`` (float64) after a postsynaptic spike: ``w + scale x``, times ``w_max - w`` when multiplicative,
    clipped to ``[w_min, w_max]``."""
    change = scale * (w_max - w) * x if multiplicative else scale * x
    return _bounded(w + change, w_min, w_max)


@njit(**KERNEL)
def _pre_trace_at(neuron, k, pre_trace, pre_seen, pre_steps, first_event, next_event, trace_after, table):
    """The trace of ``neuron`` at step ``k``, with its spikes of the chunk up to ``k`` (``_link_pre_spikes``)."""
    event = first_event[neuron]
    if event < 0 or pre_steps[event] > k:
        return _decayed(pre_trace[neuron], pre_seen[neuron], k, table)
    while next_event[event] >= 0 and pre_steps[next_event[event]] <= k:
        event = next_event[event]
    return _decayed(trace_after[event], pre_steps[event], k, table)


@njit(**KERNEL, inline="always")
def _link_pre_spikes(pre_ids, pre_steps, pre_first, pre_last, pre_trace, pre_seen, first_event, next_event,
                     trace_after, table):
    """Each pre spike's trace after it, and each neuron's spikes of the chunk as a chain in time order.

    ``first_event[p]`` is p's first spike of the chunk (-1 for none) and ``next_event[i]`` the
    next spike of spike i's neuron: a thread reads any neuron's trace at any step of the chunk
    from these and the traces at the chunk's start, which stay untouched until
    :func:`_store_pre_traces`, so no thread waits for another.
    """
    for i in range(pre_first, pre_last):
        neuron = pre_ids[i]
        k = pre_steps[i]
        next_event[i] = -1
        event = first_event[neuron]
        if event < 0:
            first_event[neuron] = i
            trace_after[i] = _decayed(pre_trace[neuron], pre_seen[neuron], k, table) + 1.0
        else:
            while next_event[event] >= 0:
                event = next_event[event]
            next_event[event] = i
            trace_after[i] = _decayed(trace_after[event], pre_steps[event], k, table) + 1.0


@njit(**KERNEL, inline="always")
def _store_pre_traces(pre_ids, pre_steps, pre_first, pre_last, pre_trace, pre_seen, first_event, next_event,
                      trace_after):
    """Write each spiking neuron's trace after its last spike of the chunk, and clear the chains."""
    for i in range(pre_first, pre_last):
        neuron = pre_ids[i]
        first_event[neuron] = -1
        if next_event[i] < 0:
            pre_trace[neuron] = trace_after[i]
            pre_seen[neuron] = pre_steps[i]


@njit(**KERNEL)
def _stdp_block(low, high, ascending, pre_ids, pre_steps, pre_first, pre_last, post_ids, post_steps, post_first,
                post_last, row_ptr, targets, weights, col_ptr, col_synapses, col_sources, pre_trace, pre_seen,
                post_trace, post_seen, decay_plus, decay_minus, params, modulation, first_event, next_event,
                trace_after):
    """The chunk's STDP on the synapses onto targets ``low .. high - 1``, event by event in time order."""
    a_plus, a_minus, w_min, w_max, multiplicative = _stdp_parameters(params)
    stride = 1 if modulation.shape[1] > 1 else 0
    width = post_trace.shape[0]
    i = pre_first
    j = post_first
    while i < pre_last or j < post_last:
        if i < pre_last and (j >= post_last or pre_steps[i] <= post_steps[j]):
            neuron = pre_ids[i]
            k = pre_steps[i]
            begin = row_ptr[neuron]
            end = row_ptr[neuron + 1]
            if ascending:
                begin = _first_at_least(targets, begin, end, low, width)
            for synapse in range(begin, end):
                s = np.uint64(synapse)  # unsigned: no test for Python's negative-index wraparound
                q = targets[s]
                if q >= high:
                    if ascending:
                        break
                    continue
                if q < low:
                    continue
                x = _decayed(post_trace[q], post_seen[q], k, decay_minus)
                weights[s] = _depressed(np.float64(weights[s]), a_minus * modulation[1, q * stride], x, w_min, w_max,
                                        multiplicative)
            i += 1
        else:
            neuron = post_ids[j]
            k = post_steps[j]
            j += 1
            if neuron < low or neuron >= high:
                continue
            scale = a_plus * modulation[0, neuron * stride]
            for entry in range(col_ptr[neuron], col_ptr[neuron + 1]):
                s = np.uint64(col_synapses[np.uint64(entry)])
                x = _pre_trace_at(col_sources[np.uint64(entry)], k, pre_trace, pre_seen, pre_steps, first_event,
                                  next_event, trace_after, decay_plus)
                weights[s] = _potentiated(np.float64(weights[s]), scale, x, w_min, w_max, multiplicative)
            post_trace[neuron] = _decayed(post_trace[neuron], post_seen[neuron], k, decay_minus) + 1.0
            post_seen[neuron] = k


def _apply_stdp(pre_ids, pre_steps, pre_first, pre_last, post_ids, post_steps, post_first, post_last, row_ptr,
               targets, weights, col_ptr, col_synapses, col_sources, pre_trace, pre_seen, post_trace, post_seen,
               decay_plus, decay_minus, params, modulation, first_event, next_event, trace_after, ascending, threads,
               min_events):
    """Pair-based STDP over the spikes of one chunk, in time order (pre before post within a step).

    A pre spike of neuron p at step k depresses each synapse s of p by ``a_minus m_minus x_post``
    (times ``w - w_min`` when multiplicative), then adds 1 to p's trace; a post spike of q
    potentiates each synapse into q by ``a_plus m_plus x_pre`` (times ``w_max - w``), then adds
    1 to q's trace. Traces decay from their last spike by the ``decay_*`` tables. Weights are
    computed in float64 and stored in the network's precision (rounded to nearest), clipped to
    ``[w_min, w_max]``.

    Chunks of ``min_events`` synapse updates or more run in ``threads[0]`` blocks (on as many
    threads in ``apply_stdp_parallel``, one after another in ``apply_stdp``), each over the
    synapses onto its own block of targets (rows whose targets ascend, ``ascending``, are entered
    where the block starts): a synapse's updates depend only on its pre and post neurons' spikes,
    so each sees the serial order of events, and the weights are the same to the bit on any
    number of threads. ``first_event``, ``next_event`` and ``trace_after`` are scratch (see
    :func:`_link_pre_spikes`).
    """
    if pre_first == pre_last and post_first == post_last:
        return
    _link_pre_spikes(pre_ids, pre_steps, pre_first, pre_last, pre_trace, pre_seen, first_event, next_event,
                     trace_after, decay_plus)
    events = 0
    for i in range(pre_first, pre_last):
        events += row_ptr[pre_ids[i] + 1] - row_ptr[pre_ids[i]]
    for j in range(post_first, post_last):
        events += col_ptr[post_ids[j] + 1] - col_ptr[post_ids[j]]
    blocks = threads[0] if events >= min_events else 1
    if blocks == 1:
        # the bounds as _block_start gives them, so both calls compile to one specialisation
        n_post = post_trace.shape[0]
        _stdp_block(_block_start(0, 1, n_post), _block_start(1, 1, n_post), ascending, pre_ids, pre_steps, pre_first,
                    pre_last, post_ids, post_steps, post_first, post_last, row_ptr, targets, weights, col_ptr,
                    col_synapses, col_sources, pre_trace, pre_seen, post_trace, post_seen, decay_plus, decay_minus,
                    params, modulation, first_event, next_event, trace_after)
    else:
        for block in prange(blocks):
            _stdp_block(_block_start(block, blocks, post_trace.shape[0]),
                        _block_start(block + 1, blocks, post_trace.shape[0]), ascending, pre_ids, pre_steps,
                        pre_first, pre_last, post_ids, post_steps, post_first, post_last, row_ptr, targets, weights,
                        col_ptr, col_synapses, col_sources, pre_trace, pre_seen, post_trace, post_seen, decay_plus,
                        decay_minus, params, modulation, first_event, next_event, trace_after)
    _store_pre_traces(pre_ids, pre_steps, pre_first, pre_last, pre_trace, pre_seen, first_event, next_event,
                      trace_after)


#: STDP over a chunk on one thread, and on ``threads[0]`` (the parallel loop costs a second of compiling)
apply_stdp = njit(**KERNEL)(_renamed(_apply_stdp, "apply_stdp"))
apply_stdp_parallel = njit(cache=True, nogil=True, parallel=True)(_renamed(_apply_stdp, "apply_stdp_parallel"))


# Elementwise value populations (the order of ``value_updates``, operation for operation).
# The helpers a small population calls at every update are inlined into the kernel (inline="always"):
# a call that passes its arrays costs about 0.08 us, 4 % of a step of CUBA 4000.


@njit(**KERNEL)
def clear_rows(rows):
    """Set every entry of a 2-D float64 array to 0."""
    for r in range(rows.shape[0]):
        for i in range(rows.shape[1]):
            rows[r, i] = 0.0


@njit(**KERNEL)
def all_to_all_total(published, channel, weight):
    """``w sum_j x_cj``: what an all-to-all value map adds to every target's input of ``channel``
    (each target then less ``w x_ci`` without autapses), summed as ``row_sum`` does."""
    return weight * row_sum(published, channel)


@njit(**KERNEL)
def add_all_to_all(rows, first_row, published, channels, weight, autapses):
    """``rows[first_row + c] += w sum_j x_cj`` (minus ``w x_ci`` without autapses), summed as ``row_sum`` does."""
    for c in range(channels):
        total = all_to_all_total(published, c, weight)
        target = rows[first_row + c]
        if autapses:
            for i in range(target.shape[0]):
                target[i] += total
        else:
            for i in range(target.shape[0]):
                target[i] += total - weight * published[c, i]


@njit(**KERNEL)
def take_pending(rows, row, pending, window):
    """Add a count projection's pending window to input row ``row`` and clear it."""
    for i in range(rows.shape[1]):
        rows[row, i] += pending[window, i]
        pending[window, i] = 0.0


@njit(**KERNEL, inline="always")
def deliver_count(spike_ids, spike_steps, first, last, row_ptr, post_ids, weights, weight_stride, delay_steps,
                  per_synapse_delays, all_to_all, autapses, pending, period):
    """Add spikes ``first .. last - 1`` to the pending window of their arrival; returns the synaptic events."""
    windows = pending.shape[0]
    width = pending.shape[1]
    events = 0
    for s in range(first, last):
        neuron = spike_ids[s]
        sent = spike_steps[s]
        if all_to_all:
            window = ((sent + delay_steps[0]) // period) % windows
            weight = np.float64(weights[0])
            for i in range(width):
                if autapses or i != neuron:
                    pending[window, i] += weight
                    events += 1
        else:
            for synapse in range(row_ptr[neuron], row_ptr[neuron + 1]):
                delay = delay_steps[synapse] if per_synapse_delays else delay_steps[0]
                pending[((sent + delay) // period) % windows, post_ids[synapse]] += np.float64(
                    weights[synapse * weight_stride])
                events += 1
    return events


@njit(**KERNEL, inline="always")
def publish(state, published, published_by_unit, output_rows, previous, keep_previous, by_unit):
    """Copy the output rows of ``state`` into ``published`` (the old values into ``previous`` first).

    With ``by_unit``, ``published_by_unit`` gets the same values unit by unit (``(n, channels)``),
    so a sparse product gathers one cache line per synapse rather than one per channel.
    """
    for c in range(output_rows.shape[0]):
        channel = published[c]
        if keep_previous:
            _copy(previous[c], channel)
        _copy(channel, state[output_rows[c]])
        if by_unit:
            for i in range(state.shape[1]):
                published_by_unit[i, c] = channel[i]


@njit(**KERNEL, inline="always")
def _copy(target, source):
    # one row at a time: LLVM checks once that the rows do not overlap and vectorises the copy
    for i in range(target.shape[0]):
        target[i] = source[i]


@njit(**KERNEL, inline="always")
def schedule_pulses(flags, n, k, source_steps, source_ids, source_next):
    """Schedule the units flagged in ``flags`` as spikes of step ``k`` (and clear the flags)."""
    fired = 0
    for i in range(n):
        if flags[i] != 0:
            flags[i] = 0
            source_ids[fired] = i
            fired += 1
    for slot in range(source_steps.shape[0]):
        source_steps[slot] = k if slot < fired else NO_PULSE
    source_next[0] = 0


@njit(**KERNEL, inline="always")
def hold_values(ring, receptor, scratch, start, stop):
    """Add ``y``, rounded to the ring's precision, to ``ring``'s receptor in the steps ``start .. stop - 1``."""
    slots = ring.shape[0]
    for step in range(start, stop):
        target = ring[step % slots, receptor]
        for i in range(target.shape[0]):
            target[i] += ring.dtype.type(scratch[0, i])


@njit(**KERNEL)
def set_state_row(state, row, targets, scratch):
    """``state[row, t] = y[t]`` for the targets of a set projection."""
    for t in range(targets.shape[0]):
        state[row, targets[t]] = scratch[0, targets[t]]


@njit(**KERNEL, inline="always")
def set_modulation(modulation, row, published):
    """The factors of a modulated STDP term: the modulator's first output channel."""
    for column in range(modulation.shape[1]):
        modulation[row, column] = published[0, column]
