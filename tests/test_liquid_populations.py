"""CfC, LTC and ELM as engine value populations: the engine reproduces ncps and the numpy forward pass."""

import numpy as np
import pytest
import torch
from ncps.torch import LTC as NcpsLTC
from ncps.torch import CfC as NcpsCfC

import ranvier as rv
from ranvier.units import ms


def _feed(net, values, width, period):
    """A value source that starts at ``values[0]`` and publishes ``values[t]`` at its ``t``-th update."""
    from ranvier.engine.model import ValueModel

    class Replay(ValueModel):
        def __init__(self):
            super().__init__()
            self.t = 1

        @property
        def state_names(self):
            return ("output",)

        def advance(self, state, inputs, params, dt):
            state[0] = values[min(self.t, len(values) - 1)]
            self.t += 1

    return net.population(Replay(), n=width, name="feed", dt=period * net.dt, init={"output": values[0]})


def _engine_outputs(model, inputs, period=2):
    net = rv.Network(dt=1 * ms, seed=1)
    feed = _feed(net, inputs, inputs.shape[1], period)
    population = net.population(model, name="liquid", dt=period * ms)
    net.connect(feed, population, rv.connect.OneToOne(), weight=1.0, receptor="input")
    output = net.record(population, "output")
    # the liquid's update t reads the input the feed published before it, values[t - 1]
    net.run(len(inputs) * period * ms, backend="numpy")
    return output.values


@pytest.mark.parametrize("family", ["cfc", "ltc"])
def test_engine_population_reproduces_ncps(family):
    torch.manual_seed(3)
    reference = NcpsCfC(5, 12) if family == "cfc" else NcpsLTC(5, 12)
    inputs = np.random.default_rng(2).normal(size=(30, 5)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.as_tensor(inputs)[None])[0][0].numpy()
    model = (rv.neurons.CfC if family == "cfc" else rv.neurons.LTC).from_ncps(reference)
    population_outputs = _engine_outputs(model, inputs)
    np.testing.assert_allclose(population_outputs, expected, atol=1e-5)


def test_elm_population_is_a_batch_of_neurons():
    model = rv.neurons.ELM(n_in=3, n_out=2, n_memory=8, seed=4)
    neurons = 4
    inputs = np.random.default_rng(5).poisson(0.3, size=(20, neurons * 3)).astype(np.float64)
    expected, _ = model.forward(inputs.reshape(20, neurons, 3).transpose(1, 0, 2))
    net = rv.Network(dt=1 * ms, seed=1)
    feed = _feed(net, inputs, neurons * 3, 1)
    population = net.population(model, n=neurons, name="elm")
    net.connect(feed, population, rv.connect.OneToOne(), weight=1.0, receptor="input")
    output = net.record(population, "output")
    net.run(20 * ms, backend="numpy")
    np.testing.assert_allclose(output.values, expected.transpose(1, 2, 0), atol=1e-5)


def test_liquid_population_runs_identically_on_numpy_and_numba():
    torch.manual_seed(0)
    model = rv.neurons.CfC.from_ncps(NcpsCfC(10, 6))
    results = []
    for backend in ("numpy", "numba"):
        net = rv.Network(dt=1 * ms, seed=7)
        source = net.population(rv.neurons.PoissonSource(rate=80.0), n=10, name="src")
        cfc = net.population(model, name="cfc", dt=5 * ms)
        net.connect(source, cfc, rv.connect.OneToOne(), weight=1.0, receptor="input")
        output = net.record(cfc, "output")
        net.run(100 * ms, backend=backend)
        results.append(output.values)
    assert np.abs(results[0]).max() > 0
    np.testing.assert_array_equal(results[0], results[1])
