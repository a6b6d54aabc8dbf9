"""Thread-parallel spike delivery (``deliver_all_parallel``): the same result as numpy on any number of threads."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ranvier as rv
from ranvier.engine.backends import numba_kernels
from ranvier.neurons import LIF
from ranvier.plasticity import STDP

RECEPTORS = {"e": 2e-3, "i": 4e-3}


def build(seed=3):
    """Every kind of delivery into overlapping targets, with rates that make many events per chunk.

    Per-synapse and shared delays, FixedInDegree (rows ascending) and FromArrays with rows
    out of order and multapses, implicit all-to-all with and without autapses, a plastic
    projection, and a Poisson drive; target sizes not multiples of the block alignment.
    """
    net = rv.Network(dt=1e-4, seed=seed)
    a = net.population(LIF(tau_syn=RECEPTORS), 203, name="a")
    b = net.population(LIF(tau_syn=RECEPTORS), 77, name="b")
    net.connect(rv.connect.PoissonInput(20.0, 1000), a, weight=0.004, receptor="e")
    net.connect(rv.connect.PoissonInput(20.0, 900), b, weight=0.004, receptor="e")
    net.connect(a, a, rv.connect.FixedInDegree(30), weight=rv.init.Normal(1e-3, 2e-4), receptor="e",
                delay=rv.init.Uniform(1e-4, 2e-3))
    net.connect(a, b, rv.connect.FixedInDegree(40), weight=-2e-3, receptor="i", delay=5e-4)
    rng = np.random.default_rng(0)
    pre, post = rng.integers(0, 77, 3000), rng.integers(0, 203, 3000)
    net.connect(b, a, rv.connect.FromArrays(pre, post), weight=rv.init.Normal(-1e-3, 1e-4), receptor="i",
                delay=rv.init.Uniform(1e-4, 1e-3))
    net.connect(b, b, rv.connect.AllToAll(autapses=False), weight=1e-4, receptor="e", delay=2e-4)
    net.connect(b, a, rv.connect.AllToAll(), weight=-1e-4, receptor="i", delay=1e-4)
    net.connect(a, b, rv.connect.FixedInDegree(10), weight=5e-4, receptor="e", delay=rv.init.Uniform(1e-4, 1e-3),
                plasticity=STDP(a_plus=1e-5, a_minus=1.05e-5, w_max=2e-3))
    return net


def build_small_target(seed=3):
    """A population of one neuron, fewer targets than threads (the first thread's block of every projection
    into it is empty), receiving CSR with per-synapse delays and all-to-all from a busy one."""
    net = rv.Network(dt=1e-4, seed=seed)
    a = net.population(LIF(tau_syn=RECEPTORS), 203, name="a")
    one = net.population(LIF(tau_syn=RECEPTORS), 1, name="one")
    net.connect(rv.connect.PoissonInput(20.0, 1000), a, weight=0.004, receptor="e")
    net.connect(a, a, rv.connect.FixedInDegree(30), weight=1e-3, receptor="e")
    net.connect(a, one, rv.connect.FromArrays(np.arange(203), np.zeros(203, dtype=np.int64)), weight=1e-4,
                receptor="e", delay=rv.init.Uniform(1e-4, 1e-3))
    net.connect(a, one, rv.connect.AllToAll(), weight=-1e-4, receptor="i")
    return net


def build_delay_groups(seed=3):
    """Targets that receive only projections in delay groups (per-synapse delays, no plasticity), so
    that two threads split their rings by slot: rows ascending in each group (FixedInDegree) and
    out of order with multapses (FromArrays), delays over a few dozen steps."""
    net = rv.Network(dt=1e-4, seed=seed)
    a = net.population(LIF(tau_syn=RECEPTORS), 203, name="a")
    c = net.population(LIF(tau_syn=RECEPTORS), 150, name="c")
    net.connect(rv.connect.PoissonInput(20.0, 1000), a, weight=0.004, receptor="e")
    net.connect(rv.connect.PoissonInput(20.0, 900), c, weight=0.004, receptor="e")
    net.connect(a, a, rv.connect.FixedInDegree(20), weight=rv.init.Normal(1e-3, 2e-4), receptor="e",
                delay=rv.init.Uniform(1e-4, 3e-3))
    net.connect(a, c, rv.connect.FixedInDegree(30), weight=rv.init.Normal(1e-3, 2e-4), receptor="e",
                delay=rv.init.Uniform(2e-4, 2e-3))
    rng = np.random.default_rng(1)
    pre, post = rng.integers(0, 150, 3000), rng.integers(0, 150, 3000)
    net.connect(c, c, rv.connect.FromArrays(pre, post), weight=rv.init.Normal(-1e-3, 1e-4), receptor="i",
                delay=rv.init.Uniform(1e-4, 1.5e-3))
    # delays over 5 steps: 2 slot classes at most, so 4 threads make 2 classes of 2 target blocks
    d = net.population(LIF(tau_syn=RECEPTORS), 90, name="d")
    net.connect(a, d, rv.connect.FixedInDegree(40), weight=rv.init.Normal(2e-3, 2e-4), receptor="e",
                delay=rv.init.Uniform(1e-4, 5e-4))
    return net


def fingerprint(net) -> dict:
    """Spikes, state, weights and event counts, as a digest and the counts."""
    digest = hashlib.sha256()
    for monitor in net.spike_monitors:
        digest.update(monitor.ids.tobytes())
        digest.update(monitor.times.tobytes())
    for population in net.populations.values():
        digest.update(population.state.tobytes())
    for projection in net.projections:
        digest.update(np.ascontiguousarray(projection.weights).tobytes())
    return {"digest": digest.hexdigest(), "events": net.stats.synaptic_events_by_projection,
            "spikes": net.stats.spikes}


SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
import numba
from ranvier.engine.backends import numba_backend
numba_backend.PARALLEL_MIN_SYNAPSES = 0
numba_backend.PARALLEL_MIN_EVENTS = {min_events}
numba_backend.PARALLEL_MIN_STDP_UPDATES = {min_events}
numba_backend.PARALLEL_MIN_TOGETHER = {min_together}
from test_parallel_delivery import {builder} as build, fingerprint
net = build()
for name in net.populations:
    net.record(net[name], "spikes")
net.run(0.05, backend="numba")
result = fingerprint(net)
result["threads"] = numba.get_num_threads()
result["parallel"] = numba_backend._parallel_delivery(net._simulation.lowered)
result["together"] = numba_backend._updated_together(net._simulation.lowered)
result["ring_spans"] = numba_backend._projection_lists(net._simulation.lowered, False)["ring_spans"].tolist()
print(json.dumps(result))
"""


def run_with_threads(threads: int, min_events: int = 0, min_together: int = 0, builder: str = "build") -> dict:
    script = SCRIPT.format(tests=str(Path(__file__).parent), min_events=min_events, min_together=min_together,
                           builder=builder)
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, "NUMBA_NUM_THREADS": str(threads)},
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_delivery_on_one_and_two_threads_equals_numpy():
    reference = build()
    for name in ("a", "b"):
        reference.record(reference[name], "spikes")
    reference.run(0.05, backend="numpy")
    expected = fingerprint(reference)
    assert expected["spikes"] > 500  # busy enough that chunks deliver thousands of events
    one, two = run_with_threads(1), run_with_threads(2)
    # the populations update together (one parallel loop, a block of each per thread) or one by one
    apart = run_with_threads(2, min_together=10**9)
    assert (one["threads"], one["parallel"], one["together"]) == (1, False, [])
    assert (two["threads"], two["parallel"], two["together"]) == (2, True, [0, 1])
    assert (apart["parallel"], apart["together"]) == (True, [])
    for result in (one, two, apart):
        assert result["digest"] == expected["digest"]
        assert result["events"] == expected["events"]


def test_a_population_smaller_than_the_thread_count_has_its_events_counted():
    """Each projection's events are counted by the block that starts at its first target: with one target
    and two threads the first thread's block is empty, and the second delivers and counts."""
    reference = build_small_target()
    for name in reference.populations:
        reference.record(reference[name], "spikes")
    reference.run(0.05, backend="numpy")
    expected = fingerprint(reference)
    assert expected["events"]["a->one:e"] > 0 and expected["events"]["a->one:i"] > 0
    two = run_with_threads(2, builder="build_small_target")
    assert two["parallel"]
    assert two["events"] == expected["events"] and two["digest"] == expected["digest"]


def test_rings_split_by_slot_equal_numpy_on_any_number_of_threads():
    """Rings whose projections are all in delay groups: one thread delivers the groups; more split each
    ring into slot classes (as many as the delays' span allows), each class into target blocks: 2 threads
    make 2 classes of every ring, 3 make 3 of the two wide rings and 3 target blocks of d, 4 make 4
    classes of the wide rings and 2 classes of 2 blocks of d. All give numpy's bits and event counts."""
    reference = build_delay_groups()
    for name in reference.populations:
        reference.record(reference[name], "spikes")
    reference.run(0.05, backend="numpy")
    expected = fingerprint(reference)
    assert expected["spikes"] > 500 and expected["events"]["a->d:e"] > 10_000
    results = [run_with_threads(threads, builder="build_delay_groups") for threads in (1, 2, 3, 4)]
    assert [numba_kernels._slot_classes.py_func(span, threads) for threads in (2, 3, 4)
            for span in results[0]["ring_spans"]] == [2, 2, 2, 3, 3, 1, 4, 4, 2]
    for threads, result in enumerate(results, start=1):
        # the delay steps each ring's projections span
        assert result["ring_spans"] == [30, 15, 5]
        assert (result["threads"], result["parallel"]) == (threads, threads > 1)
        assert result["digest"] == expected["digest"]
        assert result["events"] == expected["events"]


def test_rows_ascending_tells_sorted_rows_from_others():
    row_ptr = np.array([0, 3, 3, 5], dtype=np.int64)
    assert numba_kernels.rows_ascending(row_ptr, np.array([0, 2, 2, 1, 4], dtype=np.uint32))
    assert not numba_kernels.rows_ascending(row_ptr, np.array([0, 2, 1, 1, 4], dtype=np.uint32))


@pytest.mark.parametrize("blocks", [1, 2, 3, 7])
def test_blocks_cover_every_target_once_on_cache_line_boundaries(blocks):
    for n in (1, 15, 16, 17, 203, 1000):
        starts = [numba_kernels._block_start.py_func(b, blocks, n) for b in range(blocks + 1)]
        assert starts[0] == 0 and starts[-1] == n and starts == sorted(starts)
        assert all(s % 16 == 0 or s == n for s in starts)


def test_block_delivery_equals_serial_delivery_for_any_partition():
    """Per-synapse delays sorted by arrival (whole rows, or rows cut across batches of any size), delivered in
    blocks one after another, give numpy's order of additions exactly."""
    rng = np.random.default_rng(1)
    n_pre, n_post, slots = 50, 203, 7
    counts = rng.integers(0, 40, n_pre)
    row_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    for ascending in (True, False):
        # few targets: rows hold the same target more than once, at the same arrival too
        post_ids = rng.integers(0, n_post, row_ptr[-1]).astype(np.uint32)
        if ascending:
            for i in range(n_pre):
                post_ids[row_ptr[i]:row_ptr[i + 1]].sort()
        weights = rng.normal(size=row_ptr[-1]).astype(np.float32)
        delays = rng.integers(1, slots, row_ptr[-1]).astype(np.uint16)
        spikes = rng.integers(0, n_pre, 60).astype(np.int32)
        # a chunk of three steps: an entry receives from spikes of different steps and delays
        steps = np.sort(rng.integers(0, 3, 60)).astype(np.int64)
        # numpy's order of additions; arrivals wrap around the ring (step + delay >= slots)
        expected = np.zeros((slots, 2, n_post), dtype=np.float32)
        for spike, step in zip(spikes, steps, strict=True):
            synapses = np.arange(row_ptr[spike], row_ptr[spike + 1])
            np.add.at(expected, ((step + delays[synapses]) % slots, 1, post_ids[synapses]), weights[synapses])
        assert np.any(steps[:, None] + delays[None, :] >= slots)
        events = int(counts[spikes].sum())
        for capacity in (numba_kernels.ARRIVAL_BATCH, 1, 7, 39, 40, 41, 500):
            buckets = (np.zeros(capacity, np.uint32), np.zeros(capacity, np.float32), np.zeros(slots + 1, np.int64))
            for blocks in (1, 2, 5):
                blocked = np.zeros_like(expected)
                for block in range(blocks):
                    low = numba_kernels._block_start.py_func(block, blocks, n_post)
                    high = numba_kernels._block_start.py_func(block + 1, blocks, n_post)
                    made = numba_kernels.deliver_by_arrival(spikes, steps, 0, 60, row_ptr, post_ids, weights, 1,
                                                            delays, blocked, 1, low, high, ascending, *buckets)
                    assert made == events
                np.testing.assert_array_equal(blocked, expected)
        # and the one-delay kernel, in blocks
        one = np.zeros_like(expected)
        for block in range(3):
            low = numba_kernels._block_start.py_func(block, 3, n_post)
            high = numba_kernels._block_start.py_func(block + 1, 3, n_post)
            numba_kernels.deliver_block(spikes, steps, 0, 60, row_ptr, post_ids, weights, 1, delays[:1], one, 1, low,
                                        high, ascending)
        reference = np.zeros_like(expected)
        numba_kernels.deliver(spikes, steps, 0, 60, row_ptr, post_ids, weights, 1, delays[0], reference, 1)
        np.testing.assert_array_equal(one, reference)


def test_search_from_the_estimate_finds_the_first_target_at_least_low():
    """Rows of random, clustered and repeated targets: the galloping search agrees with a bisection everywhere."""
    rng = np.random.default_rng(4)
    width = 1000
    rows = [np.sort(rng.integers(0, width, 300)), np.sort(rng.integers(0, 30, 200)),
            np.sort(rng.integers(width - 20, width, 50)), np.full(40, 500), np.array([0]), np.array([width - 1]),
            np.array([], dtype=np.int64)]
    for row in rows:
        post_ids = np.concatenate([[7, 3], row, [9]]).astype(np.uint32)  # the row sits inside a longer array
        begin, end = 2, 2 + len(row)
        for low in range(width):
            found = numba_kernels._first_at_least(post_ids, begin, end, low, width)
            assert found == begin + np.searchsorted(row, low, side="left"), (row[:5], low)


@pytest.mark.parametrize("ascending", [True, False])
def test_delay_groups_deliver_every_slot_class_and_block_once_in_the_serial_order(ascending):
    """``deliver_delay_groups`` over every (slot class, target block) of a split, in batches of 3 spikes
    (spikes of several steps, each entry reached by many): the serial loop's float32 sums, exactly."""
    rng = np.random.default_rng(5)
    n_pre, n_post, slots, first_delay = 7, 50, 12, 2
    lengths = rng.integers(0, 60, n_pre)
    row_ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    delays = np.concatenate([np.sort(rng.integers(first_delay, 9, k)) for k in lengths]).astype(np.uint16)
    targets = rng.integers(0, n_post, row_ptr[-1]).astype(np.uint32)
    if ascending:  # ascending within each delay's run
        targets = targets[np.lexsort((targets, delays, np.repeat(np.arange(n_pre), lengths)))]
    weights = rng.normal(0.0, 1.0, row_ptr[-1]).astype(np.float32)
    spike_ids = rng.integers(0, n_pre, 40).astype(np.uint32)
    spike_steps = np.sort(rng.integers(0, 3, 40)).astype(np.int64)
    expected = np.zeros((slots, 1, n_post), dtype=np.float32)
    for s in range(40):
        for synapse in range(row_ptr[spike_ids[s]], row_ptr[spike_ids[s] + 1]):
            expected[(spike_steps[s] + delays[synapse]) % slots, 0, targets[synapse]] += weights[synapse]
    offsets = np.zeros((n_pre, 9 - first_delay + 1), dtype=np.uint16)
    assert numba_kernels.delay_group_offsets(row_ptr, delays, targets, first_delay, offsets) == int(ascending)
    begins, ends, counts = (np.zeros((slots, 3), dtype=np.int64), np.zeros((slots, 3), dtype=np.int64),
                            np.zeros(slots, dtype=np.int64))
    for classes, blocks in [(1, 1), (2, 1), (3, 2), (1, 3)]:
        ring = np.zeros_like(expected)
        made = 0
        for slot_class in range(classes):
            for block in range(blocks):
                low, high = n_post * block // blocks, n_post * (block + 1) // blocks
                made += numba_kernels.deliver_delay_groups(
                    spike_ids, spike_steps, 0, 40, row_ptr, targets, weights, 1, offsets, first_delay, ring, 0,
                    slot_class, classes, low, high, ascending, begins, ends, counts)
        assert made == classes * blocks * int(lengths[spike_ids].sum())
        np.testing.assert_array_equal(ring, expected)
