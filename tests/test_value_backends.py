"""Elementwise value populations inside the backends: one model-language definition, the same bits everywhere."""

import numba
import numpy as np
import pytest

import ranvier as rv
from ranvier.engine.model import row_sum, sin_cos
from ranvier.units import ms, mV


def test_sin_cos_is_accurate_and_the_same_in_numpy_and_numba():
    x = np.random.default_rng(0).uniform(-50.0, 50.0, 100_000)
    sine, cosine = sin_cos(x)
    assert np.abs(sine - np.sin(x)).max() < 4e-16 and np.abs(cosine - np.cos(x)).max() < 4e-16

    @numba.njit
    def compiled(x, out):
        for i in range(x.shape[0]):
            out[0, i], out[1, i] = sin_cos(x[i])

    out = np.empty((2, len(x)))
    compiled(x, out)
    np.testing.assert_array_equal(out[0], sine)
    np.testing.assert_array_equal(out[1], cosine)


def test_floor_and_sqrt_are_numpys_in_numpy_and_numba():
    """The model language's floor and sqrt (numba.cuda compiles no numpy function; the cuda backend gives
    them CUDA's exact floor and correctly rounded square root): numpy's bits, specials included."""
    from ranvier.language import floor, sqrt

    x = np.concatenate([np.random.default_rng(2).uniform(-1e6, 1e6, 10_000),
                        [np.nan, np.inf, -np.inf, -0.0, 0.0, -0.5, 0.5, 2.0**52 + 0.5, -(2.0**60), 1e-300]])

    @numba.njit
    def compiled(x, out):
        for i in range(x.shape[0]):
            out[0, i], out[1, i] = floor(x[i]), sqrt(x[i])

    out = np.empty((2, len(x)))
    with np.errstate(invalid="ignore"):
        compiled(x, out)
        expected = np.floor(x), np.sqrt(x)
    np.testing.assert_array_equal(floor(x), expected[0])
    np.testing.assert_array_equal(out[0], expected[0])
    np.testing.assert_array_equal(out[1], expected[1])
    assert np.array_equal(np.signbit(out[0]), np.signbit(expected[0]))


def test_row_sum_has_one_order_in_numpy_and_numba():
    compiled = numba.njit(lambda a: row_sum(a, 0))
    # fewer than eight entries add left to right: (1e16 + 1) rounds to 1e16, - 1e16 -> 0, + 1 -> 1
    few = np.array([[1e16, 1.0, -1e16, 1.0]])
    assert row_sum(few, 0) == compiled(few) == 1.0
    # entries 0, 8, 16 share lane 0 ((1e16 + 1) - 1e16 = 0), entry 1 is lane 1, entry 24 is past the lanes
    lanes = np.zeros((1, 25))
    lanes[0, [0, 8, 16, 1, 24]] = [1e16, 1.0, -1e16, 3.0, 5.0]
    assert row_sum(lanes, 0) == compiled(lanes) == 8.0
    values = np.random.default_rng(1).standard_normal((2, 100_003)).astype(np.float32)
    assert row_sum(values, 1) == numba.njit(lambda a: row_sum(a, 1))(values)
    assert abs(row_sum(values, 1) - values[1].astype(np.float64).sum()) < 1e-9


def test_row_sum_by_vector_lanes_on_the_cpu_gives_the_scalar_lanes_bits():
    """numba sums a C-contiguous row with vector adds of eight lanes; the portable scalar lanes (cuda's,
    and numba's for other layouts) must give the same bits, at every length and in both precisions."""
    from ranvier.engine.model import _row_sum_scalar

    compiled, scalar = numba.njit(lambda a, r: row_sum(a, r)), numba.njit(_row_sum_scalar)
    rng = np.random.default_rng(3)
    for n in (0, 1, 7, 8, 9, 15, 16, 1000, 20003):
        for dtype in (np.float32, np.float64):
            # magnitudes from 1e-20 to 1e20: every change of order shows in the rounding
            values = (rng.standard_normal((3, n)) * 10.0 ** rng.integers(-20, 20, (3, n))).astype(dtype)
            for row in range(3):
                assert compiled(values, row) == scalar(values, row) == row_sum(values, row)
    strided = rng.standard_normal((4, 101)).astype(np.float32)[:, ::2]
    assert compiled(strided, 1) == row_sum(strided, 1) == scalar(np.ascontiguousarray(strided), 1)


def _every_value_model(seed: int) -> tuple[rv.Network, dict]:
    """LIF beside Kuramoto, AKOrN and an astrocyte: count, value and set projections, pulses, own dts, STDP."""
    net = rv.Network(dt=0.5 * ms, seed=seed)
    drive = net.population(rv.neurons.PoissonSource(rate=300.0), n=40, name="drive")
    lif = rv.neurons.LIF(tau_m=10 * ms, v_rest=-65 * mV, v_th=-55 * mV, v_reset=-65 * mV, t_ref=2 * ms,
                         tau_syn={"exc": 5 * ms, "astro": 0.0})
    cells = net.population(lif, n=30, name="cells")
    oscillators = net.population(rv.neurons.Kuramoto(omega=rv.init.Normal(120.0, 20.0), lag=0.3, pulses=True),
                                 n=25, name="osc", dt=1 * ms)
    units = net.population(rv.neurons.AKOrN(dim=3, omega=rv.init.Normal(5.0, 1.0)), n=20, name="akorn")
    astro = net.population(rv.neurons.Astrocyte(tau=20 * ms, baseline=0.2), n=1, name="astro")
    plastic = net.connect(drive, cells, rv.connect.Bernoulli(0.3), weight=4 * mV, delay=1 * ms, receptor="exc",
                          plasticity=rv.plasticity.STDP(a_plus=0.01, a_minus=0.012, w_max=8 * mV,
                                                        modulator=astro))
    net.connect(oscillators, oscillators, rv.connect.AllToAll(), weight=4.0 / 25, receptor="coupling")
    net.connect(drive, oscillators, rv.connect.Bernoulli(0.2), weight=2.0, delay=rv.init.Uniform(0.5 * ms, 2 * ms),
                receptor="drive")
    net.connect(oscillators, cells, rv.connect.Bernoulli(0.4), weight=6 * mV, delay=1.5 * ms, receptor="exc")
    net.connect(units, units, rv.connect.FixedInDegree(6), weight=rv.init.Normal(0.5, 0.2), receptor="coupling")
    net.connect(cells, astro, rv.connect.AllToAll(), weight=0.05, delay=0.5 * ms)
    net.connect(astro, cells, rv.connect.AllToAll(), weight=2 * mV, receptor="astro")
    clamped = net.population(lif, n=5, name="clamped")
    net.connect(astro, clamped, rv.connect.AllToAll(), weight=-0.3, receptor="v")
    monitors = {name: net.record(name, "spikes") for name in ("osc", "cells")}
    monitors["order"] = net.record("osc", "order")
    monitors["akorn"] = net.record("akorn", "x0")
    monitors["astro"] = net.record("astro", "output")
    monitors["clamped"] = net.record("clamped", "v")
    monitors["weights"] = plastic
    return net, monitors


def _run(backend: str) -> tuple[rv.Network, dict]:
    net, monitors = _every_value_model(seed=7)
    net.run(40 * ms, backend=backend)
    net.run(25.5 * ms, backend=backend)  # a second run continues mid-window of the 1 ms oscillators
    return net, monitors


def test_every_value_model_beside_lif_is_identical_on_numpy_and_numba():
    numpy_net, numpy_run = _run("numpy")
    numba_net, numba_run = _run("numba")
    for name in ("osc", "cells"):
        assert numpy_run[name].num_spikes > 0
        np.testing.assert_array_equal(numpy_run[name].steps, numba_run[name].steps)
        np.testing.assert_array_equal(numpy_run[name].ids, numba_run[name].ids)
    for name in ("order", "akorn", "astro", "clamped"):
        assert len(numpy_run[name].values) > 10
        np.testing.assert_array_equal(numpy_run[name].values, numba_run[name].values)
        np.testing.assert_array_equal(numpy_run[name].t, numba_run[name].t)
    assert numpy_run["astro"].values.max() > 0.2
    np.testing.assert_array_equal(numpy_run["weights"].weights, numba_run["weights"].weights)
    for population in numpy_net.populations.values():
        np.testing.assert_array_equal(population.state, numba_net[population.name].state)
    assert numpy_net.stats.neuron_updates_by_population == numba_net.stats.neuron_updates_by_population
    assert numpy_net.stats.dense_macs_by_projection == numba_net.stats.dense_macs_by_projection
    assert numpy_net.stats.synaptic_events_by_projection == numba_net.stats.synaptic_events_by_projection
    # 65.5 ms of 1 ms windows: 65 updates of 25 oscillators; the astrocyte at the network's dt: 131
    assert numpy_net.stats.neuron_updates_by_population["osc"] == 65 * 25
    assert numpy_net.stats.neuron_updates_by_population["astro"] == 131
    assert numpy_net.stats.dense_macs_by_projection["osc->osc:coupling"] == 65 * 25 * 25 * 2


def test_oscillators_in_a_slower_window_update_only_there():
    net = rv.Network(dt=1 * ms, seed=1)
    net.population(rv.neurons.Kuramoto(omega=10.0), n=3, name="osc", dt=4 * ms, init={"theta": 0.0})
    theta = net.record("osc", "theta")
    net.run(10 * ms, backend="numba")
    # updates at 4 and 8 ms, each an Euler step of 4 ms at 10 rad/s
    np.testing.assert_allclose(theta.values[:, 0], [0.04, 0.08], rtol=1e-6)
    np.testing.assert_allclose(theta.t, [4 * ms, 8 * ms])


def test_a_value_population_without_pulses_gets_no_spike_buffer_and_no_emission_in_the_kernel():
    from ranvier.engine.backends.numba_backend import _generate
    from ranvier.engine.lowering import lower

    net = rv.networks.cuba(n=400, seed=1)
    astro = net.population(rv.neurons.Astrocyte(), n=1, name="astro", dt=net.dt)
    net.connect(net["exc"], astro, rv.connect.AllToAll(), weight=1e-3, receptor="input")
    lowered = lower(net)
    index = [p.name for p in lowered.populations].index("astro")
    assert lowered.populations[index].spike_bound == 0
    assert lowered.populations[index].spike_ids.size == 0 and lowered.populations[index].spike_steps.size == 0
    source, _ = _generate(lowered)
    assert f"p{index}_spike_count[0] = emit_scheduled" not in source
    assert f"p{index}_bound * length" not in source
    # a value population that pulses still emits
    net.population(rv.neurons.Kuramoto(pulses=True), n=3, name="osc", dt=net.dt)
    lowered = lower(net)
    index = [p.name for p in lowered.populations].index("osc")
    assert lowered.populations[index].spike_ids.size > 0
    assert f"p{index}_spike_count[0] = emit_scheduled" in _generate(lowered)[0]
    net.run(5 * ms, backend="numba")
    assert net.stats.spikes_by_population["astro"] == 0 and np.isfinite(net["astro"].get("output")[0])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_state_that_stops_being_finite_names_the_value_population(backend):
    net = rv.Network(dt=1 * ms, seed=1)
    cells = net.population(rv.neurons.SpikeSource([1 * ms, 1 * ms], [0, 1], n=2), name="cells")
    astro = net.population(rv.neurons.Astrocyte(tau=10 * ms), n=1, name="astro")
    # two spikes of 3e38 sum to more than a float32 holds
    net.connect(cells, astro, rv.connect.AllToAll(), weight=3e38)
    with pytest.raises(rv.NumericalError, match="'astro'.*step 2"):
        net.run(5 * ms, backend=backend)


_PARALLEL_TEST_THRESHOLD = 256


def _above_the_parallel_threshold(backend: str, threads: int) -> tuple[rv.Network, dict, str]:
    """Kuramoto and astrocytes of more units than the (lowered) parallel threshold, run on ``threads`` threads.

    The oscillators' and the first astrocytes' updates gather their inputs (all-to-all totals,
    counts, an all-to-all without autapses from themselves) unit by unit; the second astrocytes
    read the first ones' output through sparse synapses, so theirs are gathered before the
    updates. Returns the network, its monitors and the numba kernel's source ("" on numpy).
    """
    from ranvier.engine.backends import numba_backend

    net = rv.Network(dt=1 * ms, seed=5)
    source = net.population(rv.neurons.PoissonSource(rate=200.0), n=50, name="source")
    oscillators = net.population(rv.neurons.Kuramoto(omega=rv.init.Normal(30.0, 5.0), lag=0.2, pulses=True),
                                 n=300, name="osc")
    astro = net.population(rv.neurons.Astrocyte(tau=rv.init.Uniform(5 * ms, 20 * ms)), n=257, name="astro",
                           dt=2 * ms)
    followers = net.population(rv.neurons.Astrocyte(tau=10 * ms), n=260, name="followers", dt=2 * ms)
    net.connect(oscillators, oscillators, rv.connect.AllToAll(), weight=2.0 / 300, receptor="coupling")
    net.connect(source, oscillators, rv.connect.Bernoulli(0.1), weight=1.0, receptor="drive")
    net.connect(source, astro, rv.connect.Bernoulli(0.2), weight=0.1)
    net.connect(astro, astro, rv.connect.AllToAll(autapses=False), weight=-0.01)
    net.connect(astro, followers, rv.connect.FixedInDegree(5), weight=rv.init.Normal(0.3, 0.1))
    monitors = {"spikes": net.record("osc", "spikes"), "order": net.record("osc", "order"),
                "astro": net.record("astro", "output"), "followers": net.record("followers", "output")}
    numba.set_num_threads(threads)
    try:
        net.run(30 * ms, backend=backend)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    source_code = numba_backend._generate(net._simulation.lowered)[0] if backend == "numba" else ""
    return net, monitors, source_code


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two numba threads")
def test_value_populations_above_the_parallel_threshold_match_numpy_on_one_and_two_threads(monkeypatch):
    from ranvier.engine.backends import numba_backend

    monkeypatch.setattr(numba_backend, "PARALLEL_MIN_NEURONS", _PARALLEL_TEST_THRESHOLD)
    numpy_net, numpy_run, _ = _above_the_parallel_threshold("numpy", 1)
    assert numpy_run["spikes"].num_spikes > 0 and numpy_run["followers"].values.max() > 0
    for threads in (1, 2):
        numba_net, numba_run, source = _above_the_parallel_threshold("numba", threads)
        # every update loops on all threads; only the second astrocytes' inputs are gathered before it
        assert all(f"parallel=True)\ndef _update_values{v}(" in source for v in range(3))
        assert "clear_rows(v2_inputs)" in source and "clear_rows(v0_inputs)" not in source
        assert "clear_rows(v1_inputs)" not in source
        np.testing.assert_array_equal(numpy_run["spikes"].steps, numba_run["spikes"].steps)
        np.testing.assert_array_equal(numpy_run["spikes"].ids, numba_run["spikes"].ids)
        for name in ("order", "astro", "followers"):
            np.testing.assert_array_equal(numpy_run[name].values, numba_run[name].values)
        for population in numpy_net.populations.values():
            np.testing.assert_array_equal(population.state, numba_net[population.name].state)
        assert numpy_net.stats.synaptic_events_by_projection == numba_net.stats.synaptic_events_by_projection


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two numba threads")
def test_a_state_above_the_parallel_threshold_that_stops_being_finite_is_reported_as_numpy_does(monkeypatch):
    from ranvier.engine.backends import numba_backend

    monkeypatch.setattr(numba_backend, "PARALLEL_MIN_NEURONS", _PARALLEL_TEST_THRESHOLD)
    outcomes = []
    for backend, threads in (("numpy", 1), ("numba", 1), ("numba", 2)):
        net = rv.Network(dt=1 * ms, seed=1)
        cells = net.population(rv.neurons.SpikeSource([3 * ms, 3 * ms], [0, 1], n=2), name="cells")
        astro = net.population(rv.neurons.Astrocyte(tau=10 * ms, baseline=0.5), n=300, name="astro")
        # two spikes of 3e38 onto unit 290 alone (in the second thread's block) sum to more than a float32 holds
        net.connect(cells, astro, rv.connect.FromArrays([0, 1], [290, 290]), weight=3e38)
        numba.set_num_threads(threads)
        try:
            with pytest.raises(rv.NumericalError, match="'astro'.*step 4"):
                net.run(10 * ms, backend=backend)
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        if backend == "numba":
            assert "parallel=True)\ndef _update_values0(" in numba_backend._generate(net._simulation.lowered)[0]
        # the update that failed published nothing
        outcomes.append((astro.state.copy(), net.run_state.population("astro").published.copy()))
    assert np.isinf(outcomes[0][0][0, 290]) and np.isfinite(np.delete(outcomes[0][0][0], 290)).all()
    assert np.isfinite(outcomes[0][1]).all()
    for state, published in outcomes[1:]:
        np.testing.assert_array_equal(state, outcomes[0][0])
        np.testing.assert_array_equal(published, outcomes[0][1])


def test_akorn_with_sparse_coupling_is_identical_on_numpy_and_numba():
    results = []
    for backend in ("numpy", "numba"):
        net = rv.Network(dt=1 * ms, seed=3)
        units = net.population(rv.neurons.AKOrN(dim=4, omega=2.0), n=300, name="akorn")
        net.connect(units, units, rv.connect.FixedInDegree(20), weight=rv.init.Normal(0.1, 0.05),
                    receptor="coupling")
        order = net.record(units, "order")
        net.run(30 * ms, backend=backend)
        results.append((order.values.copy(), units.state.copy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    norms = np.linalg.norm(results[0][1][:4].astype(np.float64), axis=0)
    np.testing.assert_allclose(norms, 1.0, atol=1e-6)


_ON_CUDA_SIMULATOR = """
import json, sys
import numpy as np
sys.path.insert(0, TESTS)
from test_value_backends import _run, _values_between_kinds

numpy_net, numpy_run = _run("numpy")
cuda_net, cuda_run = _run("cuda")
same = {name: bool(np.array_equal(numpy_run[name].steps, cuda_run[name].steps)
                   and np.array_equal(numpy_run[name].ids, cuda_run[name].ids)) for name in ("osc", "cells")}
same.update({name: bool(np.array_equal(numpy_run[name].values, cuda_run[name].values))
             for name in ("order", "akorn", "astro")})
same["weights"] = bool(np.array_equal(numpy_run["weights"].weights, cuda_run["weights"].weights))
between = _values_between_kinds("numpy"), _values_between_kinds("cuda")
same.update({f"between {name}": bool(np.array_equal(between[0][name], between[1][name])) for name in between[0]})

# elementwise populations update on the device: state and rings cross only at the start and end of a run
import ranvier as rv
from ranvier.engine.backends import cuda_backend
from ranvier.units import ms
transfers = []
for name in ("to_host", "to_device"):
    original = getattr(cuda_backend.CudaRunner, name)
    def counted(self, *handed, original=original, name=name):
        transfers.append(name)
        return original(self, *handed)
    setattr(cuda_backend.CudaRunner, name, counted)
net = rv.networks.cuba(n=200, seed=1)
oscillators = net.population(rv.neurons.Kuramoto(omega=100.0, pulses=True), n=50, name="osc")
net.connect(oscillators, oscillators, rv.connect.AllToAll(), weight=0.02, receptor="coupling")
net.connect(oscillators, net["exc"], rv.connect.Bernoulli(0.2), weight=1e-3, receptor="exc")
net.run(5 * ms, backend="cuda")
windows = net.stats.neuron_updates_by_population["osc"] // 50
run_transfers = list(transfers)

bad = rv.Network(dt=1e-3, seed=1)
source = bad.population(rv.neurons.SpikeSource([1e-3, 1e-3], [0, 1], n=2), name="cells")
astro = bad.population(rv.neurons.Astrocyte(tau=1e-2), n=1, name="astro")
bad.connect(source, astro, rv.connect.AllToAll(), weight=3e38)
try:
    bad.run(5e-3, backend="cuda")
    error = ""
except rv.NumericalError as raised:
    error = str(raised)
print(json.dumps({"same": same, "spikes": int(numpy_run["cells"].num_spikes), "windows": int(windows),
                  "transfers": run_transfers, "error": error}))
"""


@pytest.fixture(scope="module")
def cuda_simulator_values(on_cuda_simulator):
    return on_cuda_simulator(_ON_CUDA_SIMULATOR)


@pytest.mark.slow
def test_every_value_model_beside_lif_is_identical_on_the_cuda_simulator(cuda_simulator_values):
    assert cuda_simulator_values["spikes"] > 0
    assert all(cuda_simulator_values["same"].values()), cuda_simulator_values["same"]


@pytest.mark.slow
def test_elementwise_populations_stay_on_the_device(cuda_simulator_values):
    """50 windows of oscillators beside CUBA: state and rings cross only around the run's start
    (the host publishes every value population's output) and at its end."""
    assert cuda_simulator_values["windows"] == 50
    assert cuda_simulator_values["transfers"] == ["to_host", "to_device", "to_host"]


@pytest.mark.slow
def test_a_value_population_that_stops_being_finite_is_named_on_the_cuda_simulator(cuda_simulator_values):
    assert "'astro'" in cuda_simulator_values["error"] and "step 2" in cuda_simulator_values["error"]


def leaky_step(state, consts, inputs, i, c, k, key):
    """x <- x exp(-dt / tau) + (input of the window): the example of docs/values.md."""
    state[0, i] = np.float64(state[0, i]) * consts[0, c] + inputs[0, i]
    return 0


class Leaky(rv.ValueModel):
    step = staticmethod(leaky_step)

    def __init__(self, tau=0.02):
        super().__init__()
        self.parameters = {"tau": tau}

    @property
    def state_names(self):
        return ("output",)

    def constants(self, params, dt):
        return np.exp(-dt / np.asarray(params["tau"], dtype=np.float64))[None]


def test_a_users_elementwise_model_runs_in_every_cpu_backend():
    outputs = {}
    for backend in ("numpy", "numba"):
        net = rv.Network(dt=1 * ms, seed=2)
        source = net.population(rv.neurons.SpikeSource([1 * ms, 3 * ms], [0, 1], n=2), name="src")
        leaky = net.population(Leaky(tau=rv.init.Uniform(5 * ms, 20 * ms)), n=4, name="leaky", dt=2 * ms)
        net.connect(source, leaky, rv.connect.AllToAll(), weight=1.0)
        outputs[backend] = net.record(leaky, "output")
        net.run(10 * ms, backend=backend)
    np.testing.assert_array_equal(outputs["numpy"].values, outputs["numba"].values)
    # spikes arrive at steps 1 and 3: windows [0, 2) and [2, 4) each count one
    decay = np.exp(-2 * ms / leaky.params["tau"])
    expected = [np.ones(4), decay + 1]
    for _ in range(3):
        expected.append(expected[-1] * decay)
    np.testing.assert_allclose(outputs["numpy"].values, np.array(expected), rtol=1e-6)


class _Accumulator(rv.ValueModel):
    """A host value population (``advance``): ``output <- 0.5 output + input``."""

    @property
    def state_names(self):
        return ("output",)

    def advance(self, state, inputs, params, dt):
        state[0] = 0.5 * state[0] + inputs["input"][0]


class _Pulser(rv.ValueModel):
    """A host value population that pulses: ``output <- 0.5 output + input``, a pulse and a reset above 1."""

    @property
    def state_names(self):
        return ("output",)

    @property
    def pulses(self):
        return True

    def advance(self, state, inputs, params, dt):
        state[0] = 0.5 * state[0] + inputs["input"][0]
        fired = state[0] > 1.0
        state[0][fired] = 0.0
        return fired


_HOST_PULSES = """
import json, sys
sys.path.insert(0, TESTS)
import ranvier as rv
from ranvier.units import ms, mV
from test_value_backends import _Pulser

def run(backend):
    net = rv.Network(dt=0.5 * ms, seed=3)
    source = net.population(rv.neurons.PoissonSource(rate=800.0), n=20, name="source")
    host = net.population(_Pulser(), n=10, name="host", dt=2 * ms)
    cells = net.population(rv.neurons.LIF(tau_syn={"exc": 5 * ms}, v_rest=-60e-3, v_th=-50e-3), n=15, name="cells")
    net.connect(source, host, rv.connect.Bernoulli(0.3), weight=0.4, receptor="input")
    net.connect(host, cells, rv.connect.Bernoulli(0.5), weight=6 * mV, delay=1 * ms)
    monitors = {name: net.record(name, "spikes") for name in ("host", "cells")}
    output = net.record("host", "output")
    net.run(30 * ms, backend=backend)
    net.run(14 * ms, backend=backend)  # the second run starts mid-window
    spikes = {name: [m.steps.tolist(), m.ids.tolist()] for name, m in monitors.items()}
    return {**spikes, "output": output.values.tolist()}

reference, on_cuda = run("numpy"), run("cuda")
print(json.dumps({"same": {name: reference[name] == on_cuda[name] for name in reference},
                  "pulses": len(reference["host"][0]), "spikes": len(reference["cells"][0])}))
"""


@pytest.mark.slow
def test_a_host_population_that_pulses_gives_numpys_pulses_and_spikes_on_the_cuda_simulator(on_cuda_simulator):
    """Each window hands the host population's pulse schedule over and back (where the device stopped in it,
    and the pulses its update schedules); those of a host population without pulses stay on the device."""
    result = on_cuda_simulator(_HOST_PULSES)
    assert result["same"] == {"host": True, "cells": True, "output": True}
    assert result["pulses"] > 50 and result["spikes"] > 20


def _values_between_kinds(backend: str) -> dict:
    """Values between elementwise and host populations of different windows, both ways."""
    net = rv.Network(dt=1 * ms, seed=4)
    source = net.population(rv.neurons.PoissonSource(rate=400.0), n=10, name="source")
    astro = net.population(rv.neurons.Astrocyte(tau=5 * ms), n=3, name="astro", dt=2 * ms)
    host = net.population(_Accumulator(), n=3, name="host", dt=4 * ms)
    oscillators = net.population(rv.neurons.Kuramoto(omega=30.0), n=3, name="osc")
    net.connect(source, astro, rv.connect.Bernoulli(0.5), weight=0.1)
    net.connect(astro, host, rv.connect.OneToOne(), weight=1.0)  # elementwise -> host, both due every 4 ms
    net.connect(host, oscillators, rv.connect.AllToAll(), weight=2.0, receptor="drive")  # host -> elementwise
    net.connect(astro, oscillators, rv.connect.FromArrays([0, 1, 2], [2, 1, 0], weight=[1.0, -1.0, 3.0]),
                receptor="drive")  # elementwise -> elementwise, sparse
    monitors = {name: net.record(name, variable) for name, variable in
                (("astro", "output"), ("host", "output"), ("osc", "theta"))}
    net.run(30 * ms, backend=backend)
    return {name: monitor.values.copy() for name, monitor in monitors.items()}


def test_values_between_host_and_elementwise_populations_are_identical_on_numpy_and_numba():
    numpy_run, numba_run = _values_between_kinds("numpy"), _values_between_kinds("numba")
    for name in ("astro", "host", "osc"):
        np.testing.assert_array_equal(numpy_run[name], numba_run[name])
    assert numpy_run["host"].max() > 0 and len(numpy_run["host"]) == 7
    # both update at 4 ms: the host population reads the astrocyte's output published at 2 ms, not the new one
    assert not np.array_equal(numpy_run["astro"][0], numpy_run["astro"][1])
    np.testing.assert_array_equal(numpy_run["host"][0], numpy_run["astro"][0])


_FAILING_WINDOW = """
import json
import numpy as np
import ranvier as rv

def run(backend):
    net = rv.Network(dt=1e-3, seed=1)
    source = net.population(rv.neurons.SpikeSource([3e-3, 3e-3], [0, 1], n=2), name="cells")
    for name, weight in (("before", 1.0), ("astro", 3e38), ("after", 1.0)):
        net.connect(source, net.population(rv.neurons.Astrocyte(tau=1e-2), n=1, name=name), rv.connect.AllToAll(),
                    weight=weight)
    monitors = {name: net.record(name, "output") for name in ("before", "astro", "after")}
    try:
        net.run(8e-3, backend=backend)
    except rv.NumericalError as raised:
        error = str(raised)
    return {"error": error, **{name: [m.t.tolist(), m.values.tolist()] for name, m in monitors.items()}}

print(json.dumps({backend: run(backend) for backend in ("numpy", "cuda")}))
"""


@pytest.mark.slow
def test_the_window_that_fails_is_sampled_as_numpy_does_on_the_cuda_simulator(on_cuda_simulator):
    """Three populations due at one step, the second's state overflowing: the first keeps that window's
    sample, the failing one and the one after it record none, on numpy and on cuda alike."""
    result = on_cuda_simulator(_FAILING_WINDOW)
    numpy_run = result["numpy"]
    assert "'astro'" in numpy_run["error"] and "step 4" in numpy_run["error"]
    assert numpy_run["before"][0] == pytest.approx([1e-3, 2e-3, 3e-3, 4e-3])
    assert numpy_run["astro"][0] == numpy_run["after"][0] == pytest.approx([1e-3, 2e-3, 3e-3])
    assert result["cuda"] == numpy_run
