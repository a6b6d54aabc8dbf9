"""Networks Norse 1.1 exports through its own ``norse.torch.to_nir`` run in ranvier spike for spike."""

import numpy as np
import pytest

import ranvier as rv
from ranvier.train.batch import simulate

norse = pytest.importorskip("norse.torch", reason="needs norse (pip install --no-deps norse)")
torch = pytest.importorskip("torch")


def _norse_spikes(model, x: np.ndarray) -> np.ndarray:
    """Norse's own forward over time, one step per sample: output spikes (steps, n_out)."""
    outputs, state = [], None
    with torch.no_grad():
        for t in range(x.shape[0]):
            out, state = model(torch.from_numpy(x[t]), state)
            outputs.append(out[0].numpy())
    return np.array(outputs, dtype=bool)


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
    expected = _norse_spikes(model, x)
    # each of the two projections delays by one step (a spike reaches the next layer in the next step)
    padded = np.concatenate([x, np.zeros((2, *x.shape[1:]), np.float32)])
    spikes = simulate(net, padded, "input", backend=backend)["3"][2:, 0]
    assert 100 < expected.sum() < expected.size - 100
    np.testing.assert_array_equal(spikes, expected)
