"""Recordings as Neo objects, and Elephant's statistics on them."""

import numpy as np
import pytest

neo = pytest.importorskip("neo", reason="needs neo (pip install 'ranvier[neo]')")
pq = pytest.importorskip("quantities")

import ranvier as rv  # noqa: E402
from ranvier.units import ms, mV  # noqa: E402


@pytest.fixture(scope="module")
def cuba():
    net = rv.networks.cuba(n=400, seed=3)
    spikes = net.record(net["exc"], "spikes")
    some = net.record(net["inh"], "spikes", ids=[1, 5, 7])
    v = net.record(net["exc"], "v", ids=[0, 4], every=0.5 * ms)
    current = net.record(net["exc"], "I_exc", ids=[0], every=1 * ms)
    net.run(0.2, backend="numpy")
    return net, spikes, some, v, current


def test_spike_monitor_gives_one_spike_train_per_neuron_in_seconds(cuba):
    net, spikes, some, _, _ = cuba
    trains = spikes.to_neo()
    assert len(trains) == net["exc"].n and all(isinstance(t, neo.SpikeTrain) for t in trains)
    assert all(t.units == pq.s and float(t.t_stop) == pytest.approx(net.t) and float(t.t_start) == 0 for t in trains)
    assert sum(len(t) for t in trains) == spikes.num_spikes
    for neuron, times in spikes.spike_trains().items():
        np.testing.assert_array_equal(trains[neuron].magnitude, times)
        assert trains[neuron].annotations == {"population": "exc", "id": neuron}
    assert [t.annotations["id"] for t in some.to_neo()] == [1, 5, 7]
    segment = spikes.to_neo(segment=True)
    assert isinstance(segment, neo.Segment) and len(segment.spiketrains) == net["exc"].n


def test_state_monitor_gives_an_analog_signal_with_the_variable_units(cuba):
    net, _, _, v, current = cuba
    signal = v.to_neo()
    assert isinstance(signal, neo.AnalogSignal) and signal.units == pq.V and signal.shape == (len(v.t), 2)
    assert float(signal.sampling_period.rescale("ms")) == pytest.approx(0.5)
    np.testing.assert_allclose(signal.times.rescale("s").magnitude, v.t)
    np.testing.assert_array_equal(signal.magnitude, v.values)
    assert list(signal.array_annotations["id"]) == [0, 4]
    assert float(signal.rescale("mV").magnitude.max()) <= -50 + 1e-3  # below the threshold, in mV
    assert current.to_neo().units == pq.V  # a voltage-equivalent current
    assert v.to_neo(unit="mV").units == pq.mV
    both = rv.neo_io.segment([v, current])
    assert len(both.analogsignals) == 2


def test_equations_variables_carry_their_declared_unit():
    pytest.importorskip("sympy")
    net = rv.Network(dt=0.1 * ms, seed=1)
    model = rv.neurons.Equations("dv/dt = (-v + I) / tau : volt\nI : volt\ntau : second\nv_r : volt",
                                 threshold="v > 0.01*volt", reset="v = v_r",
                                 parameters={"tau": 10 * ms, "I": 20 * mV, "v_r": 0.0})
    pop = net.population(model, n=2, name="p")
    v = net.record(pop, "v", every=1 * ms)
    net.run(0.01, backend="numpy")
    assert v.to_neo().units == pq.V


def test_elephant_statistics_run_on_ranvier_recordings(cuba):
    statistics = pytest.importorskip("elephant.statistics", reason="needs elephant (pip install 'ranvier[neo]')")
    net, spikes, _, _, _ = cuba
    trains = spikes.to_neo()
    busiest = max(trains, key=len)
    rate = statistics.mean_firing_rate(busiest).rescale("Hz").magnitude
    assert rate == pytest.approx(len(busiest) / net.t)
    intervals = statistics.isi(busiest)
    np.testing.assert_allclose(intervals.magnitude, np.diff(busiest.magnitude))
    assert 0 <= statistics.cv(intervals) < 2


def test_t_stop_before_the_last_spike_is_a_recording_error(cuba):
    _, spikes, _, _, _ = cuba
    with pytest.raises(rv.RecordingError, match="before the last spike"):
        spikes.to_neo(t_stop=0.01)
