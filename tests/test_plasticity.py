"""STDP: the analytic pair window, exact trace decay, bounds, modulation, backend agreement and bad input."""

import numpy as np
import pytest

import ranvier as rv
from ranvier.engine.model import ValueModel
from ranvier.errors import PlasticityError
from ranvier.plasticity import STDP, freeze
from ranvier.units import ms, mV

TAU_PLUS, TAU_MINUS = 17 * ms, 34 * ms  # Bi & Poo (1998) fits, as used by Song et al. (2000)
A_PLUS, A_MINUS = 0.01 * mV, 0.005 * mV
W0 = 0.5 * mV


def _pairs(pre_times, post_times, rule, backend="numba", w0=W0, modulator_baseline=None, modulates="depression"):
    """Neuron i of a pre source and LIF neuron i form a pair; LIF i is forced to spike at post_times[i].

    A delta receptor with a huge weight makes LIF i fire in the step its driver's spike arrives;
    the plastic synapses reach a second delta receptor, so they never change when the LIF fires.
    Returns the weight change of each pair and the spike steps of pre and post neurons.
    """
    dt = 0.1 * ms
    n = len(pre_times)
    net = rv.Network(dt=dt, seed=1)
    pre = net.population(rv.neurons.SpikeSource(pre_times, np.arange(n), n=n), name="pre")
    drive = net.population(rv.neurons.SpikeSource(np.asarray(post_times) - dt, np.arange(n), n=n), name="drive")
    lif = rv.neurons.LIF(tau_syn={"force": 0.0, "learn": 0.0}, t_ref=0.0)
    post = net.population(lif, n=n, name="post")
    net.connect(drive, post, rv.connect.OneToOne(), weight=100 * mV, receptor="force", delay=dt)
    modulator = None
    if modulator_baseline is not None:
        modulator = net.population(rv.neurons.Astrocyte(baseline=modulator_baseline), n=1, name="astro")
    stdp = STDP(tau_plus=TAU_PLUS, tau_minus=TAU_MINUS, a_plus=A_PLUS if rule == "additive" else 0.02,
                a_minus=A_MINUS if rule == "additive" else 0.01, w_min=0.0, w_max=1 * mV, rule=rule,
                modulator=modulator, modulates=modulates)
    projection = net.connect(pre, post, rv.connect.OneToOne(), weight=w0, receptor="learn", delay=dt,
                             plasticity=stdp)
    pre_spikes, post_spikes = net.record(pre, "spikes"), net.record(post, "spikes")
    net.run(float(max(np.max(pre_times), np.max(post_times))) + 5 * ms, backend=backend)
    return projection.weights.astype(np.float64) - np.float32(w0), pre_spikes, post_spikes


def test_weight_change_follows_the_analytic_window_from_minus_to_plus_50_ms():
    lags = np.arange(-50, 51, 5) * ms
    t_pre = 60 * ms
    change, pre_spikes, post_spikes = _pairs(np.full(len(lags), t_pre), t_pre + lags, "additive")
    # the spikes happened when intended, so delta t is what the test set
    np.testing.assert_allclose(post_spikes.times[np.argsort(post_spikes.ids)] - t_pre, lags, atol=1e-9)
    expected = np.where(lags >= 0, A_PLUS * np.exp(-lags / TAU_PLUS), -A_MINUS * np.exp(lags / TAU_MINUS))
    # weights are float32 near 0.5 mV: one ulp there is 6e-11 V
    np.testing.assert_allclose(change, expected, rtol=0, atol=1.5e-10)
    assert np.all(change[lags > 0] > 0) and np.all(change[lags < 0] < 0)


def test_multiplicative_rule_scales_with_the_distance_to_the_bounds():
    lags = np.array([-20, -5, 5, 20]) * ms
    w0 = 0.25 * mV
    change, _, _ = _pairs(np.full(4, 60 * ms), 60 * ms + lags, "multiplicative", w0=w0)
    w = np.float64(np.float32(w0))
    expected = np.where(lags >= 0, 0.02 * (1 * mV - w) * np.exp(-lags / TAU_PLUS),
                        -0.01 * (w - 0.0) * np.exp(lags / TAU_MINUS))
    np.testing.assert_allclose(change, expected, rtol=0, atol=1e-10)


def test_traces_add_over_spikes_and_decay_exactly_between_them():
    """Two pre spikes 10 ms and 4 ms before one post spike: both pairs count (all-to-all)."""
    dt = 0.1 * ms
    net = rv.Network(dt=dt, seed=2)
    pre = net.population(rv.neurons.SpikeSource([20 * ms, 26 * ms], [0, 0]), name="pre")
    drive = net.population(rv.neurons.SpikeSource([30 * ms - dt], [0]), name="drive")
    post = net.population(rv.neurons.LIF(tau_syn={"force": 0.0, "learn": 0.0}, t_ref=0.0), n=1, name="post")
    net.connect(drive, post, rv.connect.AllToAll(), weight=100 * mV, receptor="force", delay=dt)
    projection = net.connect(pre, post, rv.connect.AllToAll(), weight=W0, receptor="learn", delay=dt,
                             plasticity=STDP(tau_plus=TAU_PLUS, a_plus=A_PLUS, a_minus=0.0, w_max=1 * mV))
    net.run(40 * ms, backend="numpy")
    expected = A_PLUS * (np.exp(-10 * ms / TAU_PLUS) + np.exp(-4 * ms / TAU_PLUS))
    assert abs(projection.weights[0] - np.float32(W0) - expected) < 1.5e-10


def test_weights_stay_within_bounds():
    change, _, _ = _pairs(np.full(3, 60 * ms), 60 * ms + np.array([-1, 0, 1]) * ms, "additive", w0=0.0)
    rule_bounds = (0.0, 1 * mV)
    weights = change + 0.0
    assert weights[0] == rule_bounds[0]  # depression below w_min stops at w_min
    net = rv.Network(dt=1 * ms, seed=3)
    source = net.population(rv.neurons.PoissonSource(rate=200.0), n=50, name="src")
    target = net.population(rv.neurons.LIF(tau_syn={"exc": 5 * ms}), n=20, name="dst")
    projection = net.connect(source, target, rv.connect.AllToAll(), weight=rv.init.Uniform(0, 5 * mV),
                             plasticity=STDP(a_plus=2 * mV, a_minus=1 * mV, w_min=0.0, w_max=5 * mV))
    net.run(0.3)
    weights = projection.weights
    assert weights.min() >= 0.0 and weights.max() <= np.float32(5 * mV)
    assert np.any(weights == np.float32(5 * mV)) or np.any(weights == 0.0)


def test_modulator_scales_the_modulated_term_only():
    lags = np.array([-10, 10]) * ms
    plain, _, _ = _pairs(np.full(2, 60 * ms), 60 * ms + lags, "additive")
    doubled, _, _ = _pairs(np.full(2, 60 * ms), 60 * ms + lags, "additive", modulator_baseline=2.0)
    np.testing.assert_allclose(doubled[0], 2 * plain[0], rtol=1e-4)  # depression (post before pre) doubled
    assert doubled[1] == plain[1]  # potentiation untouched
    silenced, _, _ = _pairs(np.full(2, 60 * ms), 60 * ms + lags, "additive", modulator_baseline=0.0,
                            modulates="both")
    np.testing.assert_array_equal(silenced, 0.0)


def _recurrent(backend, rule, modulated, duration=0.25):
    net = rv.Network(dt=0.5 * ms, seed=11)
    drive = net.population(rv.neurons.PoissonSource(rate=100.0), n=60, name="drive")
    lif = rv.neurons.LIF(tau_m=20 * ms, v_rest=-65 * mV, v_th=-50 * mV, v_reset=-65 * mV, t_ref=2 * ms,
                         tau_syn={"exc": 5 * ms, "inh": 10 * ms})
    cells = net.population(lif, n=80, name="cells", init={"v": rv.init.Uniform(-65 * mV, -50 * mV)})
    astro = None
    if modulated:
        astro = net.population(rv.neurons.Astrocyte(tau=50 * ms, baseline=1.0), n=1, name="astro", dt=2 * ms)
        net.connect(cells, astro, rv.connect.AllToAll(), weight=0.01)
        net.connect(drive, astro, rv.connect.AllToAll(), weight=-0.005)
    stdp = STDP(tau_plus=15 * ms, tau_minus=30 * ms, a_plus=0.2 * mV if rule == "additive" else 0.05,
                a_minus=0.25 * mV if rule == "additive" else 0.06, w_min=0.0, w_max=10 * mV, rule=rule,
                modulator=astro)
    inputs = net.connect(drive, cells, rv.connect.Bernoulli(p=0.2), weight=rv.init.Uniform(0, 10 * mV),
                         receptor="exc",
                         delay=rv.init.Uniform(0.5 * ms, 3 * ms), plasticity=stdp)
    recurrent = net.connect(cells, cells, rv.connect.Bernoulli(p=0.1), weight=3 * mV, receptor="exc",
                            delay=1 * ms, plasticity=stdp)
    net.connect(cells, cells, rv.connect.Bernoulli(p=0.05), weight=-4 * mV, receptor="inh", delay=1 * ms)
    spikes = net.record(cells, "spikes")
    net.run(duration, backend=backend)
    return inputs.weights.copy(), recurrent.weights.copy(), spikes.steps, spikes.ids


@pytest.mark.parametrize("rule, modulated", [("additive", False), ("multiplicative", True)])
def test_numpy_and_numba_agree_to_the_bit(rule, modulated):
    reference = _recurrent("numpy", rule, modulated)
    compiled = _recurrent("numba", rule, modulated)
    for a, b in zip(reference, compiled, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(reference[2]) > 100
    assert not np.array_equal(reference[1], np.float32(3 * mV))  # the recurrent weights learned


def test_scalar_weight_becomes_one_weight_per_synapse_and_freeze_stops_learning():
    net = rv.Network(dt=1 * ms, seed=4)
    source = net.population(rv.neurons.PoissonSource(rate=100.0), n=20, name="src")
    target = net.population(rv.neurons.LIF(tau_syn={"exc": 5 * ms}), n=10, name="dst")
    projection = net.connect(source, target, rv.connect.AllToAll(), weight=8 * mV,
                             plasticity=STDP(a_plus=0.1 * mV, a_minus=0.1 * mV, w_max=10 * mV))
    assert projection.weight_stride == 1 and len(projection._weights) == 200
    net.run(0.2)
    learned = projection.weights.copy()
    assert len(np.unique(learned)) > 1
    freeze(projection)
    net.run(0.2)
    np.testing.assert_array_equal(projection.weights, learned)


class _Constant(ValueModel):
    @property
    def state_names(self):
        return ("output",)

    def advance(self, state, inputs, params, dt):
        return None


def test_bad_input_raises_named_errors():
    net = rv.Network(dt=1 * ms, seed=5)
    source = net.population(rv.neurons.PoissonSource(rate=10.0), n=5, name="src")
    target = net.population(rv.neurons.LIF(tau_syn={"exc": 5 * ms}), n=5, name="dst")
    values = net.population(_Constant(), n=5, name="values")
    with pytest.raises(PlasticityError, match="w_min.*w_max"):
        STDP(w_min=1e-3, w_max=0.0)
    with pytest.raises(PlasticityError, match="values->dst:exc.*value population"):
        net.connect(values, target, rv.connect.OneToOne(), weight=1 * mV, plasticity=STDP())
    other = rv.Network(dt=1 * ms)
    foreign = other.population(rv.neurons.Astrocyte(), n=1, name="astro")
    with pytest.raises(PlasticityError, match="src->dst:exc.*modulator.*not a population of this network"):
        net.connect(source, target, rv.connect.AllToAll(), weight=0.1 * mV, plasticity=STDP(modulator=foreign))
    with pytest.raises(PlasticityError, match="'src' must be a value population"):
        net.connect(source, target, rv.connect.AllToAll(), weight=0.1 * mV, plasticity=STDP(modulator=source))
    with pytest.raises(PlasticityError, match="weight .* of synapse .* outside"):
        net.connect(source, target, rv.connect.AllToAll(), weight=2 * mV, plasticity=STDP(w_max=1 * mV))
    with pytest.raises(PlasticityError, match="tau_plus"):
        STDP(tau_plus=-1.0)
    with pytest.raises(PlasticityError, match="rule"):
        STDP(rule="hebbian")
    assert isinstance(PlasticityError("x"), rv.ProjectionError)


_ON_CUDA_SIMULATOR = """
import json, sys
import numpy as np
sys.path.insert(0, TESTS)
from test_plasticity import _recurrent

same = {}
for rule, modulated in (("additive", False), ("multiplicative", True)):
    reference = _recurrent("numpy", rule, modulated, duration=0.08)
    simulated = _recurrent("cuda", rule, modulated, duration=0.08)
    same[rule] = [bool(np.array_equal(a, b)) for a, b in zip(reference, simulated)] + [
        int(len(reference[2])), bool(not np.array_equal(reference[1], np.float32(3e-3)))]
print(json.dumps(same))
"""


@pytest.mark.slow
def test_cuda_learns_exactly_as_numpy_on_the_simulator(on_cuda_simulator):
    """Input and recurrent weights, and spikes, after STDP (one run modulated by an astrocyte)."""
    for rule, (inputs, recurrent, steps, ids, spikes, learned) in on_cuda_simulator(_ON_CUDA_SIMULATOR).items():
        assert inputs and recurrent and steps and ids, rule
        assert spikes > 20 and learned, rule


def _bursting(backend):
    """Sources firing several times per chunk (delays of 3 ms make chunks of six steps) onto LIF neurons."""
    net = rv.Network(dt=0.5 * ms, seed=5)
    drive = net.population(rv.neurons.PoissonSource(rate=600.0), n=50, name="drive")
    cells = net.population(rv.neurons.LIF(t_ref=0.0, tau_syn={"exc": 2 * ms}), n=70, name="cells",
                           init={"v": rv.init.Uniform(-65 * mV, -50 * mV)})
    stdp = STDP(tau_plus=15 * ms, tau_minus=30 * ms, a_plus=0.05 * mV, a_minus=0.06 * mV, w_min=0.0, w_max=10 * mV)
    learned = net.connect(drive, cells, rv.connect.FixedInDegree(20), weight=rv.init.Uniform(0, 6 * mV),
                          receptor="exc", delay=3 * ms, plasticity=stdp)
    drive_spikes, spikes = net.record(drive, "spikes"), net.record(cells, "spikes")
    net.run(0.2, backend=backend)
    return learned.weights.copy(), spikes.steps, drive_spikes.steps, drive_spikes.ids


def test_learning_on_all_threads_with_several_spikes_a_chunk_equals_numpy(monkeypatch):
    from ranvier.engine.backends import numba_backend
    # every projection and chunk on all threads, however small and quiet
    monkeypatch.setattr(numba_backend, "PARALLEL_MIN_SYNAPSES", 0)
    monkeypatch.setattr(numba_backend, "PARALLEL_MIN_STDP_UPDATES", 0)
    weights, steps, drive_steps, drive_ids = _bursting("numpy")
    # a source fires more than once in some chunk (chunks are six steps), so traces chain within a chunk
    chunk = drive_steps // 6
    assert len(np.unique(chunk * 1000 + drive_ids)) < len(drive_ids)
    assert len(steps) > 200
    for a, b in zip((weights, steps), _bursting("numba")[:2], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("ascending", [True, False])
def test_stdp_in_blocks_of_targets_equals_one_block(ascending):
    """Any number of target blocks, on one thread or on all, gives the weights and traces of one block,
    on rows sorted or not."""
    from ranvier.engine.backends import numba_kernels
    rng = np.random.default_rng(2)
    n_pre, n_post = 40, 203
    counts = rng.integers(0, 30, n_pre)
    row_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    targets = rng.integers(0, n_post, row_ptr[-1]).astype(np.uint32)
    if ascending:
        for i in range(n_pre):
            targets[row_ptr[i]:row_ptr[i + 1]].sort()
    col_synapses = np.argsort(targets, kind="stable").astype(np.int64)
    col_ptr = np.concatenate([[0], np.cumsum(np.bincount(targets, minlength=n_post))]).astype(np.int64)
    col_sources = np.repeat(np.arange(n_pre), counts)[col_synapses].astype(np.int64)
    # a chunk of five steps: neurons spike several times, pre and post in the same step
    pre_steps = np.sort(rng.integers(100, 105, 90)).astype(np.int64)
    pre_ids = rng.integers(0, n_pre, 90).astype(np.int32)
    post_steps = np.sort(rng.integers(100, 105, 120)).astype(np.int64)
    post_ids = rng.integers(0, n_post, 120).astype(np.int32)
    decay = np.exp(-np.arange(200) / 30.0)
    params = np.array([0.01, 0.012, 0.0, 1.0, 1.0])
    modulation = np.ones((2, n_post))
    modulation[1] = rng.uniform(0.5, 1.5, n_post)
    results = []
    for blocks, learn in [(1, numba_kernels.apply_stdp)] + [(b, f) for b in (2, 3, 7) for f in (
            numba_kernels.apply_stdp, numba_kernels.apply_stdp_parallel)]:
        weights = rng.uniform(0, 1, row_ptr[-1]).astype(np.float32) if blocks == 1 else results[0][5].copy()
        start = weights.copy()
        traces = [np.random.default_rng(3).uniform(0, 2, n) for n in (n_pre, n_post)]
        seen = [np.random.default_rng(4).integers(0, 100, n).astype(np.int64) for n in (n_pre, n_post)]
        learn(pre_ids, pre_steps, 0, 90, post_ids, post_steps, 0, 120, row_ptr, targets, weights, col_ptr, col_synapses,
              col_sources, traces[0], seen[0], traces[1], seen[1], decay, decay, params, modulation,
              np.full(n_pre, -1, np.int64), np.empty(90, np.int64), np.empty(90), ascending, np.array([blocks]), 0)
        results.append((weights, *traces, *seen, start))
        assert not np.array_equal(weights, start)
    for result in results[1:]:
        for a, b in zip(results[0][:5], result[:5], strict=True):
            np.testing.assert_array_equal(a, b)
