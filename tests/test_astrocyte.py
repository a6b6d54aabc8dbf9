"""Astrocyte: integration of watched spikes with its own time constant, and excitability modulation."""

import numpy as np
import pytest

import ranvier as rv
from ranvier.errors import ModelError
from ranvier.units import ms, mV


def test_output_relaxes_to_baseline_and_jumps_by_weighted_spike_counts():
    net = rv.Network(dt=1 * ms, seed=1)
    liquid = net.population(rv.neurons.SpikeSource(np.array([2, 3, 3, 11]) * ms, [0, 0, 1, 1]), name="liquid")
    drive = net.population(rv.neurons.SpikeSource([6 * ms], [0]), name="drive")
    astro = net.population(rv.neurons.Astrocyte(tau=20 * ms, baseline=0.5), n=1, name="astro", dt=2 * ms)
    net.connect(liquid, astro, rv.connect.AllToAll(), weight=0.1, delay=1 * ms)
    net.connect(drive, astro, rv.connect.AllToAll(), weight=-0.3, delay=1 * ms)
    output = net.record(astro, "output")
    net.run(16 * ms, backend="numpy")
    # a spike at t emitted in step t/dt - 1 arrives one step later, at step t/dt: windows of 2 steps
    counts = np.zeros(8)
    for step, weight in ((2, 0.1), (3, 0.1), (3, 0.1), (11, 0.1), (6, -0.3)):
        counts[step // 2] += weight
    expected, value = [], 0.5
    for window in range(8):
        value = 0.5 + (value - 0.5) * np.exp(-2 * ms / (20 * ms)) + counts[window]
        expected.append(value)
    np.testing.assert_allclose(output.values[:, 0], expected, rtol=1e-6)


def test_astrocyte_output_shifts_neuron_excitability():
    """A value projection from the astrocyte into a delta receptor adds ``w A`` to v in every step."""
    net = rv.Network(dt=1 * ms, seed=2)
    astro = net.population(rv.neurons.Astrocyte(tau=1.0, baseline=2.0), n=1, name="astro")
    lif = rv.neurons.LIF(tau_m=10 * ms, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=0.0, tau_syn={"astro": 0.0})
    cells = net.population(lif, n=3, name="cells")
    net.connect(astro, cells, rv.connect.AllToAll(), weight=0.5 * mV, receptor="astro")
    v = net.record(cells, "v")
    net.run(50 * ms, backend="numpy")
    decay = np.exp(-0.1)  # a kick of 2 * 0.5 mV in each of the 50 steps, decaying by e^-dt/tau_m
    np.testing.assert_allclose(v.values[-1], 2.0 * 0.5 * mV * (1 - decay**50) / (1 - decay), rtol=1e-5)


def test_bad_parameters_are_named():
    with pytest.raises(ModelError, match="tau"):
        rv.neurons.Astrocyte(tau=0.0)
    with pytest.raises(ModelError, match="baseline"):
        rv.neurons.Astrocyte(baseline=np.inf)
