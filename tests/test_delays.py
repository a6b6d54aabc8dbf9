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
