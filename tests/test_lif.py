"""The LIF model against closed-form solutions."""

import numpy as np
import pytest

import ranvier as rv
from ranvier.units import ms, mV

BACKENDS = ["numpy", "numba"]


def _expected_spike_steps(tau_m, v_rest, i_bias, v_th, v_reset, t_ref, dt, duration):
    """Steps of the spikes of a LIF under constant drive, from the closed-form crossing time.

    Starting from v_reset, v(t) = v_eq + (v_reset - v_eq) exp(-t / tau_m) with v_eq = v_rest + i_bias
    crosses v_th at T = tau_m ln((v_eq - v_reset) / (v_eq - v_th)). On the grid the crossing is seen
    at the end of the first step at or after T; v is then held for t_ref before integrating again.
    """
    v_eq = v_rest + i_bias
    crossing = tau_m * np.log((v_eq - v_reset) / (v_eq - v_th))
    steps_to_cross = int(np.ceil(crossing / dt))
    hold = int(round(t_ref / dt))
    steps, step = [], steps_to_cross
    while step * dt <= duration:
        steps.append(step - 1)  # the step that ends at `step * dt`
        step += hold + steps_to_cross
    return np.array(steps), crossing


@pytest.mark.parametrize("backend", BACKENDS)
def test_constant_drive_fires_at_analytic_times(backend):
    params = dict(tau_m=10 * ms, v_rest=-70 * mV, i_bias=25 * mV, v_th=-50 * mV, v_reset=-70 * mV, t_ref=2 * ms)
    dt, duration = 0.1 * ms, 200 * ms
    net = rv.Network(dt=dt, seed=0)
    neuron = net.population(rv.neurons.LIF(**params, tau_syn={"exc": 5 * ms}), 1, name="cell",
                            init={"v": -70 * mV})
    spikes = net.record(neuron, "spikes")
    net.run(duration, backend=backend)
    expected, crossing = _expected_spike_steps(dt=dt, duration=duration - dt, **params)
    np.testing.assert_array_equal(spikes.steps, expected)
    # and within one step of the continuous-time answer: t_n = n T + (n - 1) t_ref
    n = np.arange(1, len(expected) + 1)
    continuous = n * crossing + (n - 1) * params["t_ref"]
    assert np.all(np.abs(spikes.times - continuous) <= n * dt + 1e-12)
    assert len(expected) == 11


@pytest.mark.parametrize("backend", BACKENDS)
def test_subthreshold_trace_matches_exact_solution(backend):
    """v(t) under an exponentially decaying current equals the closed form at every sample."""
    tau_m, tau_s, w = 20 * ms, 5 * ms, 2 * mV
    net = rv.Network(dt=0.1 * ms, seed=0)
    cell = net.population(rv.neurons.LIF(tau_m=tau_m, v_rest=-65 * mV, v_th=0.0, v_reset=-65 * mV,
                                         tau_syn={"exc": tau_s}), 1, name="cell")
    source = net.population(rv.neurons.SpikeSource(times=[1 * ms], ids=[0]), name="input")
    net.connect(source, cell, rv.connect.AllToAll(), weight=w, delay=1 * ms)
    v = net.record(cell, "v")
    net.run(30 * ms, backend=backend)
    # The current I = w exp(-(t - t0)/tau_s) starts at t0 = 2 ms (spike at 1 ms + 1 ms delay).
    t = v.t - 2 * ms
    response = np.where(t > 0, w * tau_s / (tau_s - tau_m) * (np.exp(-t / tau_s) - np.exp(-t / tau_m)), 0.0)
    np.testing.assert_allclose(v.values[:, 0], -65 * mV + response, atol=2e-7)
    assert v.values[:, 0].max() > -65 * mV + 0.2 * mV


@pytest.mark.parametrize("backend", BACKENDS)
def test_refractory_neuron_holds_reset_voltage(backend):
    net = rv.Network(dt=0.1 * ms, seed=0)
    cell = net.population(rv.neurons.LIF(tau_m=10 * ms, v_rest=-40 * mV, v_th=-50 * mV, v_reset=-60 * mV,
                                         t_ref=3 * ms), 1, name="cell", init={"v": -50.5 * mV})
    v = net.record(cell, "v")
    spikes = net.record(cell, "spikes")
    net.run(10 * ms, backend=backend)
    first = spikes.steps[0]
    held = v.values[first:first + 31, 0]
    np.testing.assert_allclose(held, -60 * mV, atol=1e-9)
    assert v.values[first + 31, 0] > -60 * mV + 1e-6


def test_delta_receptor_jumps_voltage_by_weight():
    net = rv.Network(dt=0.1 * ms, seed=0)
    cell = net.population(rv.neurons.LIF(v_rest=-65 * mV, v_th=-50 * mV, tau_syn={"d": 0.0}), 1, name="cell")
    source = net.population(rv.neurons.SpikeSource(times=[1 * ms], ids=[0]), name="input")
    net.connect(source, cell, rv.connect.OneToOne(), weight=3 * mV, delay=0.5 * ms)
    v = net.record(cell, "v")
    net.run(2 * ms, backend="numpy")
    # the spike at 1 ms arrives at 1.5 ms: the sample at 1.5 ms already holds the jump
    at = {round(t / (0.1 * ms)): value for t, value in zip(v.t, v.values[:, 0], strict=True)}
    assert at[14] == pytest.approx(-65 * mV, abs=1e-7)  # float32 state
    assert at[15] == pytest.approx(-62 * mV, abs=1e-7)
    assert at[16] < at[15]
