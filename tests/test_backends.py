"""Every backend gives the numpy reference's spikes, to the spike, on the same seed."""

import numpy as np
import pytest

import ranvier as rv
from ranvier.units import ms


def _spikes(build, backend, duration):
    net = build()
    monitors = {name: net.record(population, "spikes") for name, population in net.populations.items()}
    net.run(duration, backend=backend)
    return {name: (m.steps, m.ids) for name, m in monitors.items()}, net


NETWORKS = {
    "cuba": lambda: rv.networks.cuba(n=800, seed=11),
    "cuba-heterogeneous-delays": lambda: rv.networks.cuba(n=800, seed=12, delay=rv.init.Uniform(0.1 * ms, 3 * ms)),
    "brunel-ai": lambda: rv.networks.brunel(n=1000, g=5.0, eta=2.0, seed=13),
}


@pytest.mark.parametrize("name", NETWORKS)
def test_numba_matches_numpy_reference(name):
    reference, reference_net = _spikes(NETWORKS[name], "numpy", 0.1)
    compiled, compiled_net = _spikes(NETWORKS[name], "numba", 0.1)
    assert sum(len(ids) for _, ids in reference.values()) > 100
    for population in reference:
        np.testing.assert_array_equal(compiled[population][0], reference[population][0])
        np.testing.assert_array_equal(compiled[population][1], reference[population][1])
    assert compiled_net.stats.synaptic_events == reference_net.stats.synaptic_events
    for population in reference_net.populations.values():
        np.testing.assert_array_equal(compiled_net[population.name].state, population.state)


def test_poisson_counts_have_poisson_statistics():
    """Counts per step are Poisson(rate * dt), also for rates above 1 / dt."""
    net = rv.Network(dt=0.1 * ms, seed=5)
    source = net.population(rv.neurons.PoissonSource(rate=25_000.0), 200, name="drive")
    spikes = net.record(source, "spikes")
    net.run(0.2, backend="numba")
    per_step = np.bincount(spikes.steps * 200 + spikes.ids, minlength=2000 * 200)
    assert per_step.mean() == pytest.approx(2.5, rel=0.01)
    assert per_step.var() == pytest.approx(2.5, rel=0.03)
    assert per_step.max() >= 8
