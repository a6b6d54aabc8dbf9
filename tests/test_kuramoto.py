"""Kuramoto oscillators and AKOrN: mean-field order parameter, incoherence, pulses, the sphere."""

import numpy as np
import pytest

import ranvier as rv
from ranvier.neurons.kuramoto import order_parameter
from ranvier.units import ms


def _steady_order(coupling, n=1000, seed=2, duration=60.0):
    net = rv.networks.kuramoto(n=n, coupling=coupling, spread=0.5, seed=seed, dt=10 * ms)
    order = net.record("osc", "order", every=0.1)
    net.run(duration, backend="numpy")
    values = order.values[:, 0]
    return values[len(values) // 2:].mean(), net


@pytest.mark.parametrize("coupling", [2.0, 4.0])
def test_order_parameter_matches_kuramotos_mean_field_result(coupling):
    # Lorentzian natural frequencies of half-width gamma: K_c = 2 gamma, r = sqrt(1 - K_c / K)
    r, net = _steady_order(coupling)
    expected = np.sqrt(1 - 2 * 0.5 / coupling)
    assert abs(r - expected) < 0.05, (r, expected)
    assert order_parameter(net["osc"].get("theta")) == pytest.approx(net["osc"].get("order")[0], abs=1e-6)


def test_incoherent_below_the_critical_coupling():
    r, _ = _steady_order(0.5)
    assert r < 0.1  # finite-size fluctuations are of order 1 / sqrt(n) ~ 0.03


def test_phase_lag_and_drive_shift_the_frequency():
    net = rv.Network(dt=1 * ms, seed=1)
    osc = net.population(rv.neurons.Kuramoto(omega=10.0), n=1, name="osc", init={"theta": 0.0})
    net.run(0.1, backend="numpy")
    assert osc.get("theta")[0] == pytest.approx(1.0, rel=1e-5)
    # two oscillators with lag: sin(theta_j - theta_i - alpha) at equal phases is -sin(alpha)
    net = rv.Network(dt=1 * ms, seed=1)
    pair = net.population(rv.neurons.Kuramoto(lag=np.pi / 2), n=2, name="pair", init={"theta": 1.0})
    net.connect(pair, pair, rv.connect.AllToAll(autapses=False), weight=3.0, receptor="coupling")
    net.run(10 * ms, backend="numpy")
    np.testing.assert_allclose(pair.get("theta"), 1.0 - 3.0 * 0.01, rtol=1e-5)


def test_pulses_fire_once_per_cycle():
    net = rv.Network(dt=1 * ms, seed=1)
    net.population(rv.neurons.Kuramoto(omega=2 * np.pi * np.array([5.0, 10.0]), pulses=True), n=2, name="osc",
                   init={"theta": 0.0})
    spikes = net.record("osc", "spikes")
    net.run(1.0, backend="numba")
    counts = spikes.counts()
    assert counts[0] in (4, 5) and counts[1] in (9, 10)
    periods = np.diff(spikes.spike_trains()[1])
    np.testing.assert_allclose(periods, 0.1, atol=1.5e-3)


def test_output_is_cos_and_sin_of_the_phase():
    net = rv.Network(dt=1 * ms, seed=3)
    net.population(rv.neurons.Kuramoto(omega=rv.init.Normal(0.0, 1.0)), n=5, name="osc")
    output = net.record("osc", "output", every=2 * ms)
    theta = net.record("osc", "theta", every=2 * ms)
    net.run(10 * ms, backend="numpy")
    assert output.values.shape == (5, 2, 5)
    np.testing.assert_allclose(output.values[:, 0], np.cos(theta.values), atol=1e-6)
    np.testing.assert_allclose(output.values[:, 1], np.sin(theta.values), atol=1e-6)


def test_akorn_stays_on_the_sphere_and_synchronises():
    net = rv.Network(dt=10 * ms, seed=4)
    units = net.population(rv.neurons.AKOrN(dim=4, omega=rv.init.Normal(0.0, 0.2)), n=200, name="units")
    net.connect(units, units, rv.connect.AllToAll(), weight=5.0 / 200, receptor="coupling")
    order = net.record(units, "order")
    net.run(20.0, backend="numpy")
    vectors = np.stack([units.get(f"x{d}") for d in range(4)])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=0), 1.0, atol=1e-5)
    assert order.values[0, 0] < 0.3
    assert order.values[-1, 0] > 0.95


def test_akorn_in_two_dimensions_is_kuramoto():
    phases = np.linspace(0, 2 * np.pi, 50, endpoint=False) + 0.1
    omega = np.linspace(-0.5, 0.5, 50)
    orders = []
    for model, init in [(rv.neurons.Kuramoto(omega=omega), {"theta": phases}),
                        (rv.neurons.AKOrN(dim=2, omega=omega), {"x0": np.cos(phases), "x1": np.sin(phases)})]:
        net = rv.Network(dt=1 * ms, seed=1)
        pop = net.population(model, n=50, name="p", init=init)
        net.connect(pop, pop, rv.connect.AllToAll(), weight=3.0 / 50, receptor="coupling")
        order = net.record(pop, "order", every=0.5)
        net.run(5.0, backend="numpy")
        orders.append(order.values[:, 0])
    np.testing.assert_allclose(orders[0], orders[1], atol=0.02)
    assert orders[0][-1] > 0.9


@pytest.mark.parametrize("precision", ["single", "double"])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_an_akorn_run_cut_into_pieces_equals_one_run(backend, precision):
    # each run derives its value populations' outputs at its start: that must not move a unit
    def run(pieces: int) -> np.ndarray:
        net = rv.Network(dt=0.1 * ms, seed=7, precision=precision)
        units = net.population(rv.neurons.AKOrN(dim=4, omega=10.0), n=6, name="ak")
        net.connect(units, units, rv.connect.AllToAll(), weight=0.5, receptor="coupling")
        x0 = net.record(units, "x0")
        for _ in range(pieces):
            net.run(20 * ms / pieces, backend=backend)
        return x0.values

    whole = run(1)
    assert whole.shape == (200, 6)
    np.testing.assert_array_equal(run(40), whole)


def test_bad_parameters_are_named_errors():
    with pytest.raises(rv.ModelError, match="AKOrN: dim"):
        rv.neurons.AKOrN(dim=1)
    with pytest.raises(rv.ModelError, match="omega"):
        rv.neurons.Kuramoto(omega=np.nan)
