"""Spikes arrive exactly `round(delay / dt)` steps after they are sent."""

import numpy as np
import pytest

import ranvier as rv
from ranvier.units import ms, mV

BACKENDS = ["numpy", "numba"]


def _relay(delays, per_synapse, backend, send_at=1 * ms):
    """One source spike relayed through delta synapses strong enough to fire each target."""
    n = len(delays)
    net = rv.Network(dt=0.1 * ms, seed=0)
    source = net.population(rv.neurons.SpikeSource(times=[send_at], ids=[0]), name="source")
    targets = net.population(rv.neurons.LIF(v_rest=-65 * mV, v_th=-50 * mV, tau_syn={"d": 0.0}), n, name="targets")
    per_synapse_delays = np.asarray(delays) if per_synapse else None
    rule = rv.connect.FromArrays(np.zeros(n, dtype=int), np.arange(n), delay=per_synapse_delays)
    net.connect(source, targets, rule, weight=20 * mV, delay=None if per_synapse else delays[0])
    spikes = net.record(targets, "spikes")
    net.run(10 * ms, backend=backend)
    return spikes


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("delay", [0.1 * ms, 0.3 * ms, 1.5 * ms, 2.34 * ms])
def test_scalar_delay_honoured_to_the_step(backend, delay):
    spikes = _relay([delay], per_synapse=False, backend=backend)
    assert spikes.ids.tolist() == [0]
    assert spikes.times[0] == pytest.approx(1 * ms + round(delay / (0.1 * ms)) * 0.1 * ms, abs=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_synapse_delays_honoured_to_the_step(backend):
    delays = np.array([0.1, 0.5, 1.7, 2.3, 4.0, 0.26]) * ms
    spikes = _relay(delays, per_synapse=True, backend=backend)
    order = np.argsort(spikes.ids)
    np.testing.assert_array_equal(spikes.ids[order], np.arange(len(delays)))
    expected_steps = 10 + np.rint(delays / (0.1 * ms)).astype(int) - 1
    np.testing.assert_array_equal(spikes.steps[order], expected_steps)


@pytest.mark.parametrize("backend", BACKENDS)
def test_delays_longer_than_a_run_carry_over_to_the_next(backend):
    net = rv.Network(dt=0.1 * ms, seed=0)
    source = net.population(rv.neurons.SpikeSource(times=[1 * ms], ids=[0]), name="source")
    target = net.population(rv.neurons.LIF(v_th=-50 * mV, tau_syn={"d": 0.0}), 1, name="target")
    net.connect(source, target, rv.connect.OneToOne(), weight=30 * mV, delay=5 * ms)
    spikes = net.record(target, "spikes")
    net.run(3 * ms, backend=backend)
    assert spikes.num_spikes == 0
    net.run(5 * ms, backend=backend)
    assert spikes.times.tolist() == pytest.approx([6 * ms])


def test_rows_are_put_in_order_of_delay_with_ties_in_their_order():
    from ranvier.engine.connectivity import sort_rows_by_delay

    row_ptr = np.array([0, 4, 4, 7, 8], dtype=np.int64)
    delays = np.array([3, 1, 3, 2, 5, 5, 1, 9], dtype=np.uint16)
    post_ids = np.arange(10, 18, dtype=np.int32)
    weights = np.arange(8, dtype=np.float32)
    sort_rows_by_delay(row_ptr, delays, post_ids, weights)
    assert delays.tolist() == [1, 2, 3, 3, 1, 5, 5, 9]
    assert post_ids.tolist() == [11, 13, 10, 12, 16, 14, 15, 17]
    assert weights.tolist() == [1, 3, 0, 2, 6, 4, 5, 7]
    # one shared weight stays; a row over a span of 256 steps or more takes two radix passes
    delays, post_ids, shared = np.array([900, 2, 900], np.uint16), np.array([0, 1, 2], np.int32), np.ones(1)
    sort_rows_by_delay(np.array([0, 3], dtype=np.int64), delays, post_ids, shared)
    assert (delays.tolist(), post_ids.tolist(), shared.tolist()) == ([2, 900, 900], [1, 0, 2], [1.0])


@pytest.mark.parametrize("span", [3, 255, 256, 257, 1000, 65535])
def test_the_row_sort_is_numpys_stable_sort_of_each_row_for_any_span_of_delays(span):
    """One radix pass up to a span of 255 steps above the row's lowest delay, two beyond: each row as
    ``np.argsort(kind="stable")`` orders it, per-synapse weights with it, a shared weight kept."""
    from ranvier.engine.connectivity import sort_rows_by_delay

    rng = np.random.default_rng(span)
    for weighted in (True, False):
        row_ptr = np.concatenate([[0], np.cumsum(rng.integers(0, 60, 40))]).astype(np.int64)
        synapses = int(row_ptr[-1])
        delays = (rng.integers(0, 65536 - span) + rng.integers(0, span + 1, synapses)).astype(np.uint16)
        post_ids = rng.integers(0, 1000, synapses).astype(np.int32)
        weights = rng.random(synapses).astype(np.float32) if weighted else np.ones(1, dtype=np.float32)
        orders = [row_ptr[r] + np.argsort(delays[row_ptr[r]:row_ptr[r + 1]], kind="stable")
                  for r in range(len(row_ptr) - 1)]
        order = np.concatenate(orders)
        expected = (delays[order], post_ids[order], weights[order] if weighted else weights.copy())
        sort_rows_by_delay(row_ptr, delays, post_ids, weights)
        assert np.array_equal(delays, expected[0]) and np.array_equal(post_ids, expected[1])
        assert np.array_equal(weights, expected[2])


def test_connect_stores_per_synapse_delays_in_order_of_delay_and_keeps_every_synapse():
    net = rv.Network(dt=0.1 * ms, seed=0)
    a = net.population(rv.neurons.LIF(), 5, name="a")
    b = net.population(rv.neurons.LIF(), 6, name="b")
    rng = np.random.default_rng(2)
    pre, post = rng.integers(0, 5, 200), rng.integers(0, 6, 200)
    weight, delay = rng.normal(1e-3, 1e-4, 200), rng.integers(1, 9, 200) * 0.1 * ms
    given = (pre.copy(), post.copy(), weight.copy(), delay.copy())
    projection = net.connect(a, b, rv.connect.FromArrays(pre, post, weight=weight, delay=delay), receptor="exc")
    assert all(np.array_equal(x, y) for x, y in zip(given, (pre, post, weight, delay), strict=True))
    stored_delays = np.asarray(projection.delays)
    # within each source, delays ascend, and synapses of one delay keep the order they were given in
    for source in range(5):
        given = np.flatnonzero(pre == source)
        given = given[np.argsort(delay[given], kind="stable")]
        rows = projection.pre_ids == source
        np.testing.assert_array_equal(projection.post_ids[rows], post[given])
        np.testing.assert_array_equal(np.rint(stored_delays[rows] / (0.1 * ms)), np.rint(delay[given] / (0.1 * ms)))
        np.testing.assert_array_equal(projection.weights[rows], weight[given].astype(projection.weights.dtype))
    # a plastic projection keeps the rule's order (targets ascending for its learning rule)
    plastic = net.connect(a, b, rv.connect.FixedInDegree(3), weight=1e-3, delay=rv.init.Uniform(0.1 * ms, 1 * ms),
                          receptor="exc", plasticity=rv.plasticity.STDP())
    for source in range(5):
        targets = plastic.post_ids[plastic.pre_ids == source]
        assert np.all(np.diff(targets) >= 0)


def test_delay_groups_give_each_delays_start_in_its_row():
    from ranvier.engine.backends import numba_kernels

    row_ptr = np.array([0, 4, 4, 7], dtype=np.int64)
    delays = np.array([1, 1, 3, 4, 2, 2, 4], dtype=np.uint16)
    offsets = np.zeros((3, 5), dtype=np.uint16)
    assert numba_kernels.delay_group_offsets(row_ptr, delays, np.array([0, 2, 1, 0, 5, 6, 1], np.uint32), 1,
                                             offsets) == 1
    assert offsets.tolist() == [[0, 2, 2, 3, 4], [0, 0, 0, 0, 0], [0, 0, 2, 2, 3]]
    # a delay's targets out of order, and a row out of order of delay
    assert numba_kernels.delay_group_offsets(row_ptr, delays, np.array([2, 0, 1, 0, 5, 6, 1], np.uint32), 1,
                                             offsets) == 0
    assert numba_kernels.delay_group_offsets(row_ptr, delays[::-1].copy(), np.zeros(7, np.uint32), 1,
                                             offsets) == -1
