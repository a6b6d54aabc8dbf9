"""Networks Norse 1.1 exports through its own ``norse.torch.to_nir`` (LIFBoxCell, LIFCell, LIBoxCell,
IAFCell) run in ranvier spike for spike (LIBoxCell: its membrane, to float32 rounding)."""

import numpy as np
import pytest

import ranvier as rv
from ranvier.train.batch import simulate

norse = pytest.importorskip("norse.torch", reason="needs norse (pip install --no-deps norse)")
torch = pytest.importorskip("torch")


def _norse_outputs(model, cells, x: np.ndarray) -> list[np.ndarray]:
    """Norse's own forward over time, one step per sample: what each of ``cells`` returns (spikes, or
    the membrane of a LIBoxCell), (steps, n) per cell."""
    records = [[] for _ in cells]
    hooks = [cell.register_forward_hook(lambda module, args, out, record=record: record.append(out[0][0].numpy()))
             for cell, record in zip(cells, records, strict=True)]
    state = None
    with torch.no_grad():
        for t in range(x.shape[0]):
            _, state = model(torch.from_numpy(x[t]), state)
    for hook in hooks:
        hook.remove()
    return [np.array(record) for record in records]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_norse_feed_forward_lif_box_network_has_norse_spikes(backend):
    torch.manual_seed(3)
    model = norse.SequentialState(torch.nn.Linear(6, 12, bias=False), norse.LIFBoxCell(),
                                  torch.nn.Linear(12, 4, bias=False), norse.LIFBoxCell())
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.mul_(6.0).abs_()
    graph = norse.to_nir(model, torch.randn(1, 6))
    net = rv.nir.load(graph, dt=1e-3, convention="norse")
    steps = 200
    x = (np.random.default_rng(8).random((steps, 1, 6)) < 0.5).astype(np.float32)
    (expected,) = _norse_outputs(model, [model[3]], x)
    expected = expected.astype(bool)
    # each of the two projections delays by one step (a spike reaches the next layer in the next step)
    padded = np.concatenate([x, np.zeros((2, *x.shape[1:]), np.float32)])
    spikes = simulate(net, padded, "input", backend=backend)["3"][2:, 0]
    assert 100 < expected.sum() < expected.size - 100
    np.testing.assert_array_equal(spikes, expected)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_norse_lif_cell_network_has_norse_spikes_in_every_layer(backend):
    """LIFCell (a NIR CubaLIF): Norse's i += x; v += dt/tau_mem (v_leak - v + i); i -= dt/tau_syn i, the
    current updated first: ranvier's LIF with a delta and a current receptor (ranvier.neurons.discrete_synaptic)."""
    torch.manual_seed(4)
    parameters = norse.LIFParameters(tau_syn_inv=torch.as_tensor(300.0), tau_mem_inv=torch.as_tensor(150.0),
                                     v_leak=torch.as_tensor(0.1), v_th=torch.as_tensor(0.9))
    model = norse.SequentialState(torch.nn.Linear(6, 16), norse.LIFCell(parameters),
                                  torch.nn.Linear(16, 4, bias=False), norse.LIFCell())
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.mul_(2.0).abs_()
        model[0].bias.fill_(0.2)  # from the first input's arrival, as Norse adds it
    graph = norse.to_nir(model, torch.randn(1, 6))
    assert type(graph.nodes["1"]).__name__ == "CubaLIF"
    net = rv.nir.load(graph, dt=1e-3, convention="norse")
    assert net["3"].model.receptors == ("in", "syn") and net["3"].params["t_ref"][0] == 0.0
    steps = 400
    x = (np.random.default_rng(4).random((steps, 1, 6)) < 0.3).astype(np.float32)
    hidden, output = (spikes.astype(bool) for spikes in _norse_outputs(model, [model[1], model[3]], x))
    engine = simulate(net, np.concatenate([x, np.zeros((2, *x.shape[1:]), np.float32)]), "input", backend=backend)
    assert 200 < hidden.sum() < hidden.size - 200 and 100 < output.sum() < output.size - 100
    np.testing.assert_array_equal(engine["1"][1:steps + 1, 0], hidden)
    np.testing.assert_array_equal(engine["3"][2:, 0], output)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_norse_li_box_readout_has_norses_membrane(backend):
    """LIBoxCell (a NIR LI) returns its membrane v += dt tau_mem_inv (v_leak - v + x); ranvier's exact
    decay e^{-dt/tau} equals Norse's 1 - dt tau_mem_inv but is rounded differently in float32."""
    torch.manual_seed(5)
    model = norse.SequentialState(torch.nn.Linear(6, 10, bias=False), norse.LIFBoxCell(),
                                  torch.nn.Linear(10, 3), norse.LIBoxCell())
    with torch.no_grad():
        model[0].weight.mul_(6.0).abs_()
    graph = norse.to_nir(model, torch.randn(1, 6))
    assert type(graph.nodes["3"]).__name__ == "LI"
    net = rv.nir.load(graph, dt=1e-3, convention="norse")
    steps = 200
    x = (np.random.default_rng(5).random((steps, 1, 6)) < 0.5).astype(np.float32)
    (expected,) = _norse_outputs(model, [model[3]], x)
    v = simulate(net, np.concatenate([x, np.zeros((2, *x.shape[1:]), np.float32)]), "input", backend=backend,
                 record_v=["3"])["3.v"][2:, 0]
    assert np.ptp(expected) > 0.1
    np.testing.assert_allclose(v, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_norse_iaf_network_has_norse_spikes(backend):
    """IAFCell (a NIR IF): Norse's v += x without leak, spike at v > v_th, reset to 0; with
    convention="norse" a spike moves v by r w (NIR's reading: r w dt)."""
    torch.manual_seed(6)
    model = norse.SequentialState(torch.nn.Linear(6, 10, bias=False), norse.IAFCell(),
                                  torch.nn.Linear(10, 3, bias=False), norse.IAFCell())
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.abs_()
    graph = norse.to_nir(model, torch.randn(1, 6))
    assert type(graph.nodes["1"]).__name__ == "IF"
    net = rv.nir.load(graph, dt=1e-3, convention="norse")
    steps = 200
    x = (np.random.default_rng(6).random((steps, 1, 6)) < 0.5).astype(np.float32)
    hidden, output = (spikes.astype(bool) for spikes in _norse_outputs(model, [model[1], model[3]], x))
    engine = simulate(net, np.concatenate([x, np.zeros((2, *x.shape[1:]), np.float32)]), "input", backend=backend)
    assert 100 < hidden.sum() < hidden.size - 100 and 30 < output.sum() < output.size - 30
    np.testing.assert_array_equal(engine["1"][1:steps + 1, 0], hidden)
    np.testing.assert_array_equal(engine["3"][2:, 0], output)
