"""Value populations: graded projections, spike counts over windows, held values, multi-rate updates."""

import numpy as np
import pytest

import ranvier as rv
from ranvier.engine import lowering, simulation
from ranvier.engine.model import ValueModel
from ranvier.units import ms, mV


class Integrator(ValueModel):
    """``output <- decay * output + input``: a leaky accumulator whose output shows what reached it."""

    def __init__(self, decay: float = 0.0):
        super().__init__()
        self.parameters = {"decay": decay}

    @property
    def state_names(self):
        return ("output",)

    def advance(self, state, inputs, params, dt):
        state[0] = params["decay"] * state[0] + inputs["input"][0]
        return None


def test_spikes_are_counted_over_the_window_of_their_arrival():
    net = rv.Network(dt=1 * ms, seed=1)
    times = np.array([1, 2, 3, 4, 5, 9, 10]) * ms
    source = net.population(rv.neurons.SpikeSource(times, np.zeros(7, dtype=int), n=1), name="src")
    counter = net.population(Integrator(), n=2, name="counter", dt=5 * ms)
    net.connect(source, counter, rv.connect.AllToAll(), weight=np.array([1.0, 10.0]), delay=2 * ms)
    out = net.record(counter, "output")
    net.run(20 * ms, backend="numpy")
    # a spike at time t is emitted in step t/dt - 1 and arrives 2 steps later, at step t/dt + 1
    arrivals = np.round(times / ms).astype(int) + 1
    expected = np.bincount(arrivals // 5, minlength=4)[:4]
    np.testing.assert_array_equal(out.values[:, 0], expected)
    np.testing.assert_array_equal(out.values[:, 1], 10 * expected)
    np.testing.assert_allclose(out.t, np.arange(1, 5) * 5 * ms)
    assert net.stats.synaptic_events_by_projection["src->counter:input"] == 14
    assert net.stats.neuron_updates_by_population["counter"] == 2 * 4


def test_values_reach_a_spiking_population_held_over_the_source_window():
    net = rv.Network(dt=1 * ms, seed=1)
    constant = net.population(Integrator(decay=1.0), n=1, name="constant", dt=4 * ms, init={"output": 2.0})
    lif = rv.neurons.LIF(tau_m=10 * ms, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=0.0, tau_syn={"in": 0.0})
    target = net.population(lif, n=1, name="target")
    net.connect(constant, target, rv.connect.AllToAll(), weight=0.5 * mV)
    v = net.record(target, "v")
    net.run(8 * ms, backend="numpy")
    # a delta receptor adds 0.5 mV * 2 = 1 mV in every step; v then decays with exp(-dt / tau_m)
    decay = np.exp(-0.1)
    expected, value = [], 0.0
    for _ in range(8):
        value = value * decay + 1e-3
        expected.append(value)
    np.testing.assert_allclose(v.values[:, 0], expected, rtol=1e-5)


def test_value_projections_act_with_one_window_of_lag():
    net = rv.Network(dt=1 * ms, seed=1)
    first = net.population(Integrator(decay=1.0), n=1, name="first", init={"output": 1.0})
    chain = net.population(Integrator(), n=1, name="chain")
    net.connect(first, chain, rv.connect.OneToOne(), weight=3.0)
    out = net.record(chain, "output")
    net.run(3 * ms, backend="numpy")
    np.testing.assert_array_equal(out.values[:, 0], [3.0, 3.0, 3.0])
    assert net.stats.dense_macs_by_projection["first->chain:input"] == 3


def _mixed_network(seed):
    net = rv.Network(dt=0.5 * ms, seed=seed)
    drive = net.population(rv.neurons.PoissonSource(rate=200.0), n=50, name="drive")
    oscillators = net.population(rv.neurons.Kuramoto(omega=rv.init.Normal(150.0, 20.0), pulses=True), n=40,
                                 name="osc", dt=2 * ms)
    net.connect(oscillators, oscillators, rv.connect.AllToAll(), weight=5.0 / 40, receptor="coupling")
    net.connect(drive, oscillators, rv.connect.Bernoulli(0.2), weight=0.5, delay=1 * ms, receptor="drive")
    lif = rv.neurons.LIF(tau_m=10 * ms, v_rest=-65 * mV, v_th=-55 * mV, v_reset=-65 * mV, t_ref=2 * ms,
                         tau_syn={"exc": 5 * ms})
    cells = net.population(lif, n=30, name="cells")
    net.connect(oscillators, cells, rv.connect.Bernoulli(0.5), weight=8 * mV, delay=1.5 * ms)
    rates = net.population(Integrator(decay=0.5), n=10, name="rates", dt=5 * ms)
    net.connect(cells, rates, rv.connect.Bernoulli(0.5), weight=1.0, delay=rv.init.Uniform(0.5 * ms, 3 * ms))
    net.connect(rates, cells, rv.connect.Bernoulli(0.3), weight=0.2 * mV)
    monitors = {name: net.record(name, "spikes") for name in ("osc", "cells")}
    monitors["order"] = net.record("osc", "order")
    monitors["rates"] = net.record("rates", "output")
    return net, monitors


def test_mixed_network_gives_identical_results_on_numpy_and_numba():
    results = {}
    for backend in ("numpy", "numba"):
        net, monitors = _mixed_network(seed=5)
        net.run(60 * ms, backend=backend)
        net.run(40 * ms, backend=backend)  # a second run continues mid-window
        results[backend] = monitors
    numpy_run, numba_run = results["numpy"], results["numba"]
    for name in ("osc", "cells"):
        assert numpy_run[name].num_spikes > 0
        np.testing.assert_array_equal(numpy_run[name].steps, numba_run[name].steps)
        np.testing.assert_array_equal(numpy_run[name].ids, numba_run[name].ids)
    np.testing.assert_array_equal(numpy_run["order"].values, numba_run["order"].values)
    np.testing.assert_array_equal(numpy_run["rates"].values, numba_run["rates"].values)
    assert numpy_run["rates"].values.max() > 0


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_results_do_not_depend_on_when_the_host_empties_the_backend_buffers(backend, monkeypatch):
    """The host collects spikes and samples only when a buffer could overflow, before callbacks and at the
    end: tiny buffers (collected every few steps) give the same recordings, stats and callback views."""

    def run():
        net, monitors = _mixed_network(seed=5)
        seen = {}

        def look(net):
            seen["cells"] = (monitors["cells"].steps.copy(), dict(net.stats.spikes_by_population), net.stats.steps)

        net.at(37 * ms, look)
        net.run(100 * ms, backend=backend)
        return net, monitors, seen

    whole, whole_monitors, whole_seen = run()
    monkeypatch.setattr(lowering, "_MIN_SPIKE_CAPACITY", 1)
    monkeypatch.setattr(simulation, "MONITOR_BUFFER_BYTES", 64)
    pieces, piece_monitors, piece_seen = run()
    assert len(pieces._simulation.lowered.populations[2].spike_ids) < whole_monitors["cells"].num_spikes
    for name in ("osc", "cells"):
        np.testing.assert_array_equal(whole_monitors[name].steps, piece_monitors[name].steps)
        np.testing.assert_array_equal(whole_monitors[name].ids, piece_monitors[name].ids)
    for name in ("order", "rates"):
        np.testing.assert_array_equal(whole_monitors[name].t, piece_monitors[name].t)
        np.testing.assert_array_equal(whole_monitors[name].values, piece_monitors[name].values)
    assert whole.stats.spikes_by_population == pieces.stats.spikes_by_population
    assert whole.stats.synaptic_events_by_projection == pieces.stats.synaptic_events_by_projection
    assert whole.stats.neuron_updates_by_population == pieces.stats.neuron_updates_by_population
    # the callback at 37 ms saw every spike before it and the stats up to it, with either buffer size
    steps, spikes, step_count = whole_seen["cells"]
    assert step_count == 74 and spikes["cells"] == len(steps) > 0
    assert np.array_equal(steps, whole_monitors["cells"].steps[whole_monitors["cells"].steps < 74])
    np.testing.assert_array_equal(steps, piece_seen["cells"][0])
    assert piece_seen["cells"][1:] == whole_seen["cells"][1:]


def test_run_can_stop_and_continue_mid_window():
    whole, _ = _mixed_network(seed=3)
    split, _ = _mixed_network(seed=3)
    whole_spikes = whole.record("cells", "spikes")
    split_spikes = split.record("cells", "spikes")
    whole.run(50 * ms, backend="numpy")
    for _ in range(8):
        split.run(5.5 * ms, backend="numpy")
    split.run(-split.t + 50 * ms, backend="numpy")
    np.testing.assert_array_equal(whole_spikes.steps, split_spikes.steps)
    np.testing.assert_array_equal(whole_spikes.ids, split_spikes.ids)


def test_own_dt_must_be_a_whole_multiple_and_not_for_scheduled_sources():
    net = rv.Network(dt=1 * ms)
    with pytest.raises(rv.PopulationError, match="whole multiple.*0.0025"):
        net.population(Integrator(), n=2, name="bad", dt=2.5 * ms)
    with pytest.raises(rv.PopulationError, match="'times'.*no dt of its own"):
        net.population(rv.neurons.SpikeSource([1e-3], [0], n=1), name="times", dt=2 * ms)


def _slow_lif_network(fine_dt, lif_dt, backend):
    """LIF neurons at ``lif_dt`` driven by Poisson input at the network's ``fine_dt``."""
    net = rv.Network(dt=fine_dt, seed=4)
    drive = net.population(rv.neurons.SpikeSource(np.arange(1, 200) * 0.5 * ms, np.arange(199) % 20, n=20),
                           name="drive")
    lif = rv.neurons.LIF(tau_m=10 * ms, v_rest=-65 * mV, v_th=-55 * mV, v_reset=-65 * mV, t_ref=2 * ms,
                         tau_syn={"exc": 2 * ms, "direct": 0.0})
    cells = net.population(lif, n=10, name="cells", dt=lif_dt)
    net.connect(drive, cells, rv.connect.Bernoulli(0.5), weight=6 * mV, delay=1 * ms, receptor="exc")
    net.connect(cells, cells, rv.connect.Bernoulli(0.3), weight=2 * mV, delay=1 * ms, receptor="direct")
    spikes = net.record(cells, "spikes")
    v = net.record(cells, "v", every=lif_dt)
    net.run(100 * ms, backend=backend)
    return net, spikes, v


def test_a_spiking_population_with_its_own_dt_equals_one_in_a_network_of_that_dt():
    # inputs arrive on the 0.5 ms grid, so a 0.5 ms population in a 0.1 ms network sees what it would see
    # in a 0.5 ms network; its window sum adds the same weights
    fine, fine_spikes, fine_v = _slow_lif_network(0.1 * ms, 0.5 * ms, "numpy")
    coarse, coarse_spikes, coarse_v = _slow_lif_network(0.5 * ms, 0.5 * ms, "numpy")
    assert coarse_spikes.num_spikes > 10
    np.testing.assert_allclose(fine_spikes.times, coarse_spikes.times, atol=1e-9)
    np.testing.assert_array_equal(fine_spikes.ids, coarse_spikes.ids)
    np.testing.assert_allclose(fine_v.values, coarse_v.values, atol=1e-7)
    assert fine.stats.neuron_updates_by_population["cells"] == coarse.stats.neuron_updates_by_population["cells"]


def test_a_spiking_population_with_its_own_dt_is_identical_on_numpy_and_numba():
    _, numpy_spikes, numpy_v = _slow_lif_network(0.1 * ms, 0.3 * ms, "numpy")
    _, numba_spikes, numba_v = _slow_lif_network(0.1 * ms, 0.3 * ms, "numba")
    assert numpy_spikes.num_spikes > 10
    np.testing.assert_array_equal(numpy_spikes.steps, numba_spikes.steps)
    np.testing.assert_array_equal(numpy_spikes.ids, numba_spikes.ids)
    np.testing.assert_array_equal(numpy_v.values, numba_v.values)
    assert np.all((numpy_spikes.steps + 1) % 3 == 0)


def test_channels_must_match_the_port():
    net = rv.Network(dt=1 * ms)
    oscillators = net.population(rv.neurons.Kuramoto(), n=4, name="osc")
    cells = net.population(rv.neurons.LIF(), n=4, name="cells")
    with pytest.raises(rv.ProjectionError, match="'osc->cells:exc'.*2 channels"):
        net.connect(oscillators, cells, rv.connect.AllToAll(), weight=1.0, receptor="exc")
    with pytest.raises(rv.ProjectionError, match="port 'coupling' of 'osc' takes 2 channel.*'cells' sends 1"):
        net.connect(cells, oscillators, rv.connect.AllToAll(), weight=1.0, receptor="coupling")
    with pytest.raises(rv.ProjectionError, match="delay cannot be set"):
        net.connect(oscillators, oscillators, rv.connect.AllToAll(), weight=1.0, delay=2 * ms, receptor="coupling")


def test_value_monitors_sample_at_the_population_updates():
    net = rv.Network(dt=1 * ms)
    net.population(Integrator(), n=2, name="slow", dt=4 * ms)
    with pytest.raises(rv.RecordingError, match="'slow'.*multiple of the population's dt"):
        net.record("slow", "output", every=2 * ms)


_ON_CUDA_SIMULATOR = """
import json, sys
import numpy as np
sys.path.insert(0, TESTS)
from test_values import _mixed_network, _slow_lif_network
from ranvier.units import ms

def same_spikes(a, b):
    return bool(np.array_equal(a.steps, b.steps) and np.array_equal(a.ids, b.ids))

runs = {}
for backend in ("numpy", "cuda"):
    net, monitors = _mixed_network(seed=5)
    net.run(30 * ms, backend=backend)
    net.run(20 * ms, backend=backend)
    runs[backend] = monitors
mixed = {name: same_spikes(runs["numpy"][name], runs["cuda"][name]) for name in ("osc", "cells")}
mixed.update({name: bool(np.array_equal(runs["numpy"][name].values, runs["cuda"][name].values))
              for name in ("order", "rates")})
_, numpy_spikes, numpy_v = _slow_lif_network(0.1 * ms, 0.3 * ms, "numpy")
_, cuda_spikes, cuda_v = _slow_lif_network(0.1 * ms, 0.3 * ms, "cuda")
print(json.dumps({
    "mixed": mixed, "mixed_spikes": int(runs["numpy"]["cells"].num_spikes + runs["numpy"]["osc"].num_spikes),
    "rates_max": float(runs["numpy"]["rates"].values.max()),
    "own_dt": same_spikes(numpy_spikes, cuda_spikes) and bool(np.array_equal(numpy_v.values, cuda_v.values)),
    "own_dt_spikes": int(numpy_spikes.num_spikes)}))
"""


@pytest.fixture(scope="module")
def cuda_simulator_runs(on_cuda_simulator):
    """The mixed and the own-dt networks on numpy and on numba's CUDA simulator."""
    return on_cuda_simulator(_ON_CUDA_SIMULATOR)


@pytest.mark.slow
def test_mixed_network_is_identical_on_the_cuda_simulator(cuda_simulator_runs):
    """Value populations update on the host between the GPU's stretches."""
    assert cuda_simulator_runs["mixed_spikes"] > 0 and cuda_simulator_runs["rates_max"] > 0
    assert all(cuda_simulator_runs["mixed"].values()), cuda_simulator_runs["mixed"]


@pytest.mark.slow
def test_a_spiking_population_with_its_own_dt_is_identical_on_the_cuda_simulator(cuda_simulator_runs):
    assert cuda_simulator_runs["own_dt_spikes"] > 10
    assert cuda_simulator_runs["own_dt"]
