"""Declaring, connecting, recording, running again and callbacks."""

import numpy as np
import pytest

import ranvier as rv
from ranvier.engine.connectivity import _group_fixed_in_degree as group_fixed_in_degree
from ranvier.units import ms, mV


def test_population_lookup_and_projection_arrays():
    net = rv.networks.cuba(n=500, seed=1)
    assert net["exc"] is net.populations["exc"] and net["exc"].n == 400 and net["inh"].n == 100
    projection = net.projections[0]
    assert projection.pre is net["exc"] and projection.post is net["exc"]
    assert len(projection.pre_ids) == len(projection.post_ids) == len(projection.weights) == len(projection)
    assert np.all(np.diff(projection.pre_ids) >= 0)
    np.testing.assert_allclose(projection.weights, 1.62 * mV, rtol=1e-6)
    np.testing.assert_allclose(projection.delays, 0.1 * ms)
    with pytest.raises(ValueError):
        projection.weights[0] = 1.0


def test_connection_rules_build_the_promised_structure():
    net = rv.Network(seed=3)
    a = net.population(rv.neurons.LIF(), 300, name="a")
    b = net.population(rv.neurons.LIF(), 200, name="b")
    dense = net.connect(a, b, rv.connect.AllToAll(), weight=1e-4, receptor="exc")
    assert len(dense) == 300 * 200
    no_self = net.connect(a, a, rv.connect.AllToAll(autapses=False), weight=1e-4, receptor="exc")
    assert len(no_self) == 300 * 299 and not np.any(no_self.pre_ids == no_self.post_ids)
    pairs = net.connect(b, b, rv.connect.OneToOne(), weight=1e-4, receptor="exc")
    np.testing.assert_array_equal(pairs.pre_ids, pairs.post_ids)
    random = net.connect(a, b, rv.connect.Bernoulli(p=0.1), weight=1e-4, receptor="exc")
    assert abs(len(random) - 6000) < 5 * np.sqrt(6000 * 0.9)
    assert len(set(zip(random.pre_ids.tolist(), random.post_ids.tolist(), strict=True))) == len(random)
    fixed = net.connect(a, b, rv.connect.FixedInDegree(k=17), weight=1e-4, receptor="exc")
    np.testing.assert_array_equal(np.bincount(fixed.post_ids, minlength=200), 17)
    explicit = net.connect(a, b, rv.connect.FromArrays([5, 1, 5], [0, 2, 3], weight=[1e-3, 2e-3, 3e-3],
                                                       delay=[1 * ms, 2 * ms, 3 * ms]), receptor="inh")
    np.testing.assert_array_equal(explicit.pre_ids, [1, 5, 5])
    np.testing.assert_allclose(explicit.weights, [2e-3, 1e-3, 3e-3], rtol=1e-6)
    np.testing.assert_allclose(explicit.delays, [2 * ms, 1 * ms, 3 * ms])


def test_weights_and_delays_from_distributions_are_seeded():
    def build():
        net = rv.Network(seed=9)
        a = net.population(rv.neurons.LIF(), 100, name="a")
        return net.connect(a, a, rv.connect.Bernoulli(0.1), weight=rv.init.Normal(1 * mV, 0.1 * mV),
                           delay=rv.init.Uniform(0.1 * ms, 5 * ms), receptor="exc")

    first, second = build(), build()
    np.testing.assert_array_equal(first.weights, second.weights)
    np.testing.assert_array_equal(first.delays, second.delays)
    assert first.delays.min() >= 0.1 * ms and first.delays.max() <= 5 * ms and len(np.unique(first.delays)) > 10


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_run_continues_where_it_stopped(backend):
    whole = rv.networks.cuba(n=600, seed=4)
    whole_spikes = whole.record(whole["exc"], "spikes")
    whole.run(60 * ms, backend=backend)
    parts = rv.networks.cuba(n=600, seed=4)
    parts_spikes = parts.record(parts["exc"], "spikes")
    parts.run(25 * ms, backend=backend)
    parts.run(35 * ms, backend=backend)
    assert parts.t == pytest.approx(60 * ms)
    np.testing.assert_array_equal(parts_spikes.steps, whole_spikes.steps)
    np.testing.assert_array_equal(parts_spikes.ids, whole_spikes.ids)
    assert parts.stats.spikes == whole.stats.spikes and parts.stats.steps == 600


def test_switching_backend_between_runs_keeps_the_trajectory():
    whole = rv.networks.cuba(n=600, seed=4)
    whole_spikes = whole.record(whole["exc"], "spikes")
    whole.run(40 * ms, backend="numpy")
    mixed = rv.networks.cuba(n=600, seed=4)
    mixed_spikes = mixed.record(mixed["exc"], "spikes")
    mixed.run(20 * ms, backend="numba")
    mixed.run(20 * ms, backend="numpy")
    np.testing.assert_array_equal(mixed_spikes.steps, whole_spikes.steps)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_callbacks_run_at_their_time_and_can_change_state(backend):
    net = rv.networks.cuba(n=400, seed=2)
    spikes = net.record(net["exc"], "spikes")
    seen = []

    def silence(network):
        seen.append(network.t)
        network["exc"].set("v", -80 * mV)
        network["inh"].set("v", -80 * mV)

    net.at(20 * ms, silence)
    net.run(30 * ms, backend=backend)
    assert seen == [pytest.approx(20 * ms)]
    after = spikes.times[(spikes.times > 20 * ms) & (spikes.times < 22 * ms)]
    assert len(after) == 0 and np.any(spikes.times < 20 * ms)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_state_monitor_every_and_ids(backend):
    net = rv.networks.cuba(n=400, seed=2)
    v = net.record(net["exc"], "v", ids=[3, 1, 2], every=1 * ms)
    net.run(10 * ms, backend=backend)
    np.testing.assert_allclose(v.t, np.arange(1, 11) * ms)
    assert v.values.shape == (10, 3)
    np.testing.assert_allclose(v.values[-1], net["exc"].get("v")[[1, 2, 3]])


def test_stats_count_spikes_updates_and_synaptic_events_exactly():
    net = rv.networks.cuba(n=800, seed=6, delay=rv.init.Uniform(0.1 * ms, 2 * ms))
    monitors = {name: net.record(p, "spikes") for name, p in net.populations.items()}
    net.run(0.1, backend="numba")
    stats = net.stats
    for name, monitor in monitors.items():
        assert stats.spikes_by_population[name] == monitor.num_spikes
        assert stats.neuron_updates_by_population[name] == net[name].n * 1000
    for projection in net.projections:
        spikes = monitors[projection.pre.name]
        # spikes still in flight at the end have been delivered to the ring buffers: all count
        expected = int(projection.out_degrees()[spikes.ids].sum())
        assert stats.synaptic_events_by_projection[projection.name] == expected
    assert stats.synaptic_events == sum(stats.synaptic_events_by_projection.values()) > 10_000
    assert stats.dense_macs == 0
    assert stats.duration == pytest.approx(0.1)


def test_progress_bar_runs(capsys):
    net = rv.networks.cuba(n=200, seed=1)
    net.run(20 * ms, backend="numpy", progress=True)
    assert "simulating" in capsys.readouterr().err


def test_synapse_storage_per_synapse():
    """4 bytes (target) with a shared weight and delay; + 4 per weight and + 2 per delay when given per synapse."""
    net = rv.Network(seed=1)
    a = net.population(rv.neurons.LIF(), 2000, name="a")
    shared = net.connect(a, a, rv.connect.Bernoulli(0.05), weight=1 * mV, delay=1 * ms, receptor="exc")
    own = net.connect(a, a, rv.connect.Bernoulli(0.05), weight=rv.init.Normal(1 * mV, 0.1 * mV),
                      delay=rv.init.Uniform(0.1 * ms, 2 * ms), receptor="exc")
    row_pointers = 8 * 2001
    assert shared.nbytes == 4 * len(shared) + row_pointers + 4
    assert own.nbytes == 10 * len(own) + row_pointers
    np.testing.assert_allclose(shared.weights, 1 * mV, rtol=1e-6)
    assert shared.weights.shape == (len(shared),)


def test_truncated_normal_redraws_outside_its_bounds():
    values = rv.init.Normal(1.0, 2.0, low=0.5, high=3.0).sample(np.random.default_rng(0), 10_000)
    assert values.min() >= 0.5 and values.max() <= 3.0 and len(np.unique(values)) == 10_000
    with pytest.raises(ValueError, match="low < high"):
        rv.init.Normal(0.0, 1.0, low=2.0, high=1.0)


@pytest.mark.parametrize("low, high", [(0.5, 3.0), (0.5, np.inf), (-np.inf, 0.0), (-np.inf, np.inf)])
def test_truncated_normal_draws_nests_redraw_sequence(low, high):
    """Each round redraws, in index order, the values still outside: the same numbers as testing the
    whole array every round (NEST's ``redraw``), whichever bounds are infinite."""
    rng = np.random.default_rng(7)
    expected = rng.normal(1.0, 2.0, 5000)
    outside = (expected < low) | (expected > high)
    while np.any(outside):
        expected[outside] = rng.normal(1.0, 2.0, int(outside.sum()))
        outside = (expected < low) | (expected > high)
    values = rv.init.Normal(1.0, 2.0, low=low, high=high).sample(np.random.default_rng(7), 5000)
    np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize("autapses", [True, False])
def test_fixed_in_degree_draws_one_source_stream_grouped_stably(autapses):
    """Source ``s`` is drawn in block ``b = s // DRAW_BLOCK`` from ``default_rng([seed, b])`` (``seed`` from
    the network's generator; two blocks here), its target is ``s // k``, each row's targets are in
    draw order; without autapses a draw at or above its target moves up one."""
    n, k = 3000, 400
    seed = int(np.random.default_rng(11).integers(0, 2**63))
    block = rv.engine.distributions.DRAW_BLOCK
    drawn = np.concatenate([np.random.default_rng([seed, b]).integers(0, n - (0 if autapses else 1),
                                                                      size=min(block, n * k - b * block))
                            for b in range(-(-n * k // block))])
    targets = np.repeat(np.arange(n), k)
    if not autapses:
        drawn = drawn + (drawn >= targets)
    order = np.argsort(drawn, kind="stable")
    synapses = rv.connect.FixedInDegree(k, autapses=autapses).build(n, n, np.random.default_rng(11), True, "self")
    np.testing.assert_array_equal(synapses.row_ptr, np.concatenate([[0], np.cumsum(np.bincount(drawn, minlength=n))]))
    np.testing.assert_array_equal(synapses.post_ids, targets[order])
    assert synapses.post_ids.dtype == np.int32
    assert autapses or not np.any(drawn == targets)
    raw = drawn - (drawn > targets) if not autapses else drawn
    for threads in (1, 3):  # the grouping is the same whichever number of threads places it
        row_ptr, post_ids = group_fixed_in_degree(raw.astype(np.int32), k, n, not autapses, threads)
        np.testing.assert_array_equal(row_ptr, synapses.row_ptr)
        np.testing.assert_array_equal(post_ids, synapses.post_ids)


def test_synapses_drawn_in_blocks_are_the_same_on_any_number_of_threads(monkeypatch):
    import numba

    def build(threads: int) -> rv.Projection:
        monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", threads)
        net = rv.Network(dt=0.1 * ms, seed=5)
        cells = net.population(rv.neurons.LIF(), 2500, name="cells")
        return net.connect(cells, cells, rv.connect.FixedInDegree(1000, autapses=False),
                           weight=rv.init.Normal(1 * mV, 0.5 * mV, low=0.0),
                           delay=rv.init.Normal(1.5 * ms, 0.75 * ms, low=0.1 * ms), receptor="exc")

    one, three = build(1), build(3)
    assert len(one) == 2_500_000  # three blocks of draws
    for name in ("row_ptr", "post_ids", "weights", "delay_steps"):
        np.testing.assert_array_equal(getattr(one, name), getattr(three, name))
    assert one.weights.min() >= 0 and len(np.unique(one.weights)) > 100_000


def test_stats_print_every_population_and_the_dense_multiply_adds():
    net = rv.Network(dt=0.1 * ms, seed=1)
    oscillators = net.population(rv.neurons.Kuramoto(omega=10.0), n=4, name="osc")
    net.connect(oscillators, oscillators, rv.connect.AllToAll(), weight=0.5, receptor="coupling")
    net.population(rv.neurons.LIF(), n=3, name="lif")
    net.run(1 * ms, backend="numpy")
    assert str(net.stats).splitlines() == [
        "0.001 s simulated in 10 steps: 0 spikes, 0 synaptic events, 70 neuron updates, 320 dense multiply-adds",
        "  osc: 0 spikes, 40 updates", "  lif: 0 spikes, 30 updates", "  osc->osc:coupling: 320 dense multiply-adds"]
