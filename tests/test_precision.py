"""Network(precision=...): float64 state, constants, rings and weights on every backend; float32 stays the default."""

import h5py
import numpy as np
import pytest

import ranvier as rv
from ranvier.engine.backends import numba_backend, numba_kernels
from ranvier.engine.lowering import lower
from ranvier.errors import ProjectionError, RunError, StorageError
from ranvier.units import Hz, ms, mV


def _cuba_like(precision: str, n: int = 400, seed: int = 1) -> rv.Network:
    """A small CUBA network (LIF neurons above threshold, exponential currents) with per-synapse delays and
    a Poisson drive; spikes of ``"exc"`` and ``v`` of a few neurons are recorded."""
    net = rv.Network(dt=0.1 * ms, seed=seed, precision=precision)
    lif = rv.neurons.LIF(tau_m=20 * ms, v_rest=-49 * mV, v_th=-50 * mV, v_reset=-60 * mV, t_ref=5 * ms,
                         tau_syn={"exc": 5 * ms, "inh": 10 * ms})
    start = {"v": rv.init.Uniform(-60 * mV, -50 * mV)}
    exc = net.population(lif, int(0.8 * n), name="exc", init=start)
    inh = net.population(lif, n - int(0.8 * n), name="inh", init=start)
    drive = net.population(rv.neurons.PoissonSource(rate=200 * Hz), 50, name="drive")
    rule = rv.connect.Bernoulli(p=min(1.0, 80 / n))
    delay = rv.init.Uniform(0.1 * ms, 2 * ms)
    net.connect(exc, [exc, inh], rule, weight=1.62 * mV, delay=delay, receptor="exc")
    net.connect(inh, [exc, inh], rule, weight=-9 * mV, delay=delay, receptor="inh")
    net.connect(drive, exc, rv.connect.Bernoulli(p=0.1), weight=rv.init.Normal(1 * mV, 0.2 * mV), delay=1 * ms,
                receptor="exc")
    net.record(exc, "spikes")
    net.record(inh, "spikes")
    net.record(exc, "v", ids=[0, 7, 30])
    return net


def _plastic(precision: str, seed: int = 3) -> rv.Network:
    """STDP on Poisson input and recurrent synapses, modulated by an astrocyte that also drives the cells."""
    net = rv.Network(dt=0.5 * ms, seed=seed, precision=precision)
    drive = net.population(rv.neurons.PoissonSource(rate=100.0), n=40, name="drive")
    lif = rv.neurons.LIF(tau_m=20 * ms, v_rest=-65 * mV, v_th=-50 * mV, v_reset=-65 * mV, t_ref=2 * ms,
                         tau_syn={"exc": 5 * ms, "astro": 0.0})
    cells = net.population(lif, n=50, name="cells", init={"v": rv.init.Uniform(-65 * mV, -50 * mV)})
    astro = net.population(rv.neurons.Astrocyte(tau=50 * ms, baseline=1.0), n=1, name="astro", dt=2 * ms)
    net.connect(cells, astro, rv.connect.AllToAll(), weight=0.01)
    net.connect(astro, cells, rv.connect.AllToAll(), weight=0.5 * mV, receptor="astro")
    stdp = rv.plasticity.STDP(tau_plus=15 * ms, tau_minus=30 * ms, a_plus=0.05, a_minus=0.06, w_min=0.0,
                              w_max=10 * mV, rule="multiplicative", modulator=astro)
    net.connect(drive, cells, rv.connect.Bernoulli(p=0.3), weight=rv.init.Uniform(0, 10 * mV), receptor="exc",
                delay=rv.init.Uniform(0.5 * ms, 3 * ms), plasticity=stdp)
    net.connect(cells, cells, rv.connect.Bernoulli(p=0.1), weight=3 * mV, receptor="exc", delay=1 * ms,
                plasticity=stdp)
    net.record(cells, "spikes")
    net.record(astro, "output")
    return net


def _outcome(net: rv.Network) -> list[np.ndarray]:
    """Everything a run leaves: spikes, samples, state, rings, weights and STDP traces."""
    arrays = []
    for monitor in net.spike_monitors:
        arrays += [monitor.steps, monitor.ids]
    arrays += [monitor.values for monitor in net.state_monitors]
    for population in net.populations.values():
        ring = net.run_state.population(population.name).ring
        arrays += [population.state, ring]
    for projection in net.projections:
        arrays.append(projection.weights)
        traces = net.run_state.projection(projection.name).traces
        if traces is not None:
            arrays += [traces.pre_trace, traces.post_trace]
    return arrays


def _assert_identical(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def _run(build, backend: str, duration: float) -> rv.Network:
    net = build()
    net.run(duration, backend=backend)
    return net


def test_double_is_identical_on_numpy_and_numba_and_in_float64():
    reference = _run(lambda: _cuba_like("double"), "numpy", 0.05)
    compiled = _run(lambda: _cuba_like("double"), "numba", 0.05)
    assert compiled.precision == "double" and compiled.dtype == np.float64
    assert reference.spike_monitors[0].num_spikes > 100
    _assert_identical(_outcome(reference), _outcome(compiled))
    for population in compiled.populations.values():
        assert population.state.dtype == np.float64
        assert compiled.run_state.population(population.name).ring.dtype == np.float64
    assert all(projection.weights.dtype == np.float64 for projection in compiled.projections)
    assert all(lowered.consts.dtype == np.float64 for lowered in compiled._simulation.lowered.populations)
    assert compiled.state_monitors[0]._samples()[1].dtype == np.float64
    assert compiled["exc"].get("v").dtype == np.float64


def test_double_differs_from_single_which_stays_float32():
    single = _run(lambda: _cuba_like("single"), "numba", 0.05)
    default = _run(lambda: _cuba_like(rv.Network().precision), "numba", 0.05)
    double = _run(lambda: _cuba_like("double"), "numba", 0.05)
    assert rv.Network().precision == "single"
    _assert_identical(_outcome(single), _outcome(default))
    for population in single.populations.values():
        assert population.state.dtype == np.float32
        assert single.run_state.population(population.name).ring.dtype == np.float32
    assert all(projection.weights.dtype == np.float32 for projection in single.projections)
    assert all(lowered.consts.dtype == np.float32 for lowered in single._simulation.lowered.populations)
    assert single.state_monitors[0]._samples()[1].dtype == np.float32
    # the same network from the same numbers: single and double part by their roundings
    assert not np.array_equal(single["exc"].get("v"), double["exc"].get("v"))


def test_each_precision_generates_its_own_kernel_source():
    single, double = lower(_cuba_like("single", n=100)), lower(_cuba_like("double", n=100))
    source_single, _ = numba_backend._generate(single)
    source_double, _ = numba_backend._generate(double)
    assert source_single != source_double  # so their fingerprints (kernel files) differ
    assert "float32" not in source_double and "uint32" not in source_double
    assert "all_finite_double(" in source_double and "all_finite(" in source_single


def test_finite_test_of_double_precision_reads_whole_float64_words():
    # the low 32 bits of this finite float64 are those of a float32 infinity
    tricky = np.array([0x3FF000007F800000], dtype=np.uint64).view(np.float64)
    assert np.isfinite(tricky).all()
    assert numba_kernels.all_finite_double(tricky.view(np.uint64))
    assert not numba_kernels.all_finite(tricky.view(np.uint32))
    for bad in (np.inf, -np.inf, np.nan):
        values = np.array([1.0, bad, 3.0])
        assert not numba_kernels.all_finite_double(values.view(np.uint64))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_double_state_that_stops_being_finite_is_named(backend):
    net = rv.Network(dt=1 * ms, seed=1, precision="double")
    cells = net.population(rv.neurons.SpikeSource([1 * ms, 1 * ms], [0, 1], n=2), name="cells")
    net.population(rv.neurons.Astrocyte(tau=10 * ms), n=1, name="astro")
    # two spikes of 1e308 sum to more than a float64 holds
    net.connect(cells, net["astro"], rv.connect.AllToAll(), weight=1e308)
    with pytest.raises(rv.NumericalError, match="'astro'.*step 2"):
        net.run(5 * ms, backend=backend)


def test_stdp_in_double_is_identical_on_numpy_and_numba():
    reference = _run(lambda: _plastic("double"), "numpy", 0.15)
    compiled = _run(lambda: _plastic("double"), "numba", 0.15)
    assert reference.spike_monitors[0].num_spikes > 100
    _assert_identical(_outcome(reference), _outcome(compiled))
    learned = compiled.projections[-1].weights
    assert learned.dtype == np.float64 and not np.all(learned == np.float64(3 * mV))


def test_save_and_load_keep_the_precision_and_continue_identically(tmp_path):
    net = _cuba_like("double")
    net.run(20 * ms)
    net.save(tmp_path / "net.h5")
    with h5py.File(tmp_path / "net.h5") as file:
        assert file.attrs["precision"] == "double"
        assert file["populations/0/state"].dtype == np.float64
        assert file["projections/0/weights"].dtype == np.float64
        assert file["recordings/state/0/values"].dtype == np.float64
    loaded = rv.load(tmp_path / "net.h5")
    assert loaded.precision == "double"
    _assert_identical(_outcome(net), _outcome(loaded))
    net.run(20 * ms)
    loaded.run(20 * ms)
    _assert_identical(_outcome(net), _outcome(loaded))


def test_a_checkpointed_double_run_resumes_bit_identically(tmp_path):
    path = tmp_path / "run.h5"
    first = _cuba_like("double")
    first.run(30 * ms, checkpoint=path, every=10 * ms)
    resumed = rv.load(path)
    resumed.run(20 * ms, checkpoint=path, every=10 * ms)
    reference = _cuba_like("double")
    reference.run(50 * ms)
    assert resumed.precision == "double" and resumed.step == reference.step
    _assert_identical(_outcome(reference), _outcome(resumed))
    _assert_identical(_outcome(reference), _outcome(rv.load(path)))


def test_files_without_a_precision_load_as_single_and_an_unknown_one_is_refused(tmp_path):
    net = _cuba_like("single", n=100)
    net.run(5 * ms)
    net.save(tmp_path / "net.h5")
    with h5py.File(tmp_path / "net.h5", "r+") as file:
        del file.attrs["precision"]  # as files written before precisions existed
        rv.engine.storage._seal(file)
    loaded = rv.load(tmp_path / "net.h5")
    assert loaded.precision == "single" and loaded["exc"].state.dtype == np.float32
    with h5py.File(tmp_path / "net.h5", "r+") as file:
        file.attrs["precision"] = "half"
        rv.engine.storage._seal(file)
    with pytest.raises(StorageError, match="unknown precision 'half'"):
        rv.load(tmp_path / "net.h5")


def test_bad_precision_is_a_run_error_naming_it():
    with pytest.raises(RunError) as error:
        rv.Network(precision="half")
    assert str(error.value) == "Network: precision must be 'single' or 'double', got 'half'"
    for precision in ("float64", "Double", 64, None):
        with pytest.raises(RunError, match=f"precision must be 'single' or 'double', got {precision!r}"):
            rv.Network(precision=precision)


def test_weights_beyond_float32_need_double():
    single = rv.Network(precision="single")
    cells = single.population(rv.neurons.LIF(), n=2)
    with pytest.raises(ProjectionError, match="overflows float32"):
        single.connect(cells, cells, rv.connect.AllToAll(), weight=1e39, receptor="exc")
    double = rv.Network(precision="double")
    cells = double.population(rv.neurons.LIF(), n=2)
    projection = double.connect(cells, cells, rv.connect.AllToAll(), weight=1e39, receptor="exc")
    assert projection.weights[0] == 1e39


_ON_CUDA_SIMULATOR = """
import json, sys
import numpy as np
sys.path.insert(0, TESTS)
from test_precision import _cuba_like, _outcome, _plastic

same = {}
for name, build, duration in (("cuba", lambda: _cuba_like("double", n=150), 0.02),
                              ("plastic", lambda: _plastic("double"), 0.05)):
    reference, simulated = build(), build()
    reference.run(duration, backend="numpy")
    simulated.run(duration, backend="cuda")
    a, b = _outcome(reference), _outcome(simulated)
    same[name] = {"identical": all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b)),
                  "float64": all(p.state.dtype == np.float64 for p in simulated.populations.values()),
                  "spikes": int(reference.spike_monitors[0].num_spikes)}
print(json.dumps(same))
"""


@pytest.mark.slow
def test_double_is_identical_on_the_cuda_simulator(on_cuda_simulator):
    result = on_cuda_simulator(_ON_CUDA_SIMULATOR)
    for name, outcome in result.items():
        assert outcome["spikes"] > 10, name
        assert outcome["identical"] and outcome["float64"], name
