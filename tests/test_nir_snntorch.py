"""snnTorch 1.0 Synaptic and RSynaptic networks exported through snnTorch's own ``export_to_nir`` run
in ranvier spike for spike (``convention="snntorch"``)."""

import numpy as np
import pytest

pytest.importorskip("nir")
torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
pytest.importorskip("nirtorch", reason="snnTorch's exporter needs nirtorch (pip install nirtorch)")

from snntorch.export_nir import export_to_nir  # noqa: E402

import ranvier as rv  # noqa: E402
from ranvier.train.batch import simulate  # noqa: E402

DT = 1e-4  # the step snnTorch's exporter writes its time constants for


def _neuron(kind: str, shape: int | tuple, **flags):
    """A Synaptic or Leaky layer with its parameters as tensors of the layer's shape (snnTorch's exporter
    needs them so: with scalars NIR's type inference fails)."""
    common = {"beta": torch.full(np.atleast_1d(shape).tolist(), 0.9), "threshold": torch.ones(shape),
              "reset_mechanism": "zero", "init_hidden": True, **flags}
    if kind == "synaptic":
        return snn.Synaptic(alpha=torch.full(np.atleast_1d(shape).tolist(), 0.8), **common)
    return snn.Leaky(**common)


def _spikes_by_layer(model, neurons, x: np.ndarray, shape: tuple | None = None) -> list[np.ndarray]:
    """snnTorch's own step loop over ``x`` (steps, n_in), each step given as ``shape``: the spikes of each
    module in ``neurons``, (steps, n)."""
    records = [[] for _ in neurons]
    hooks = [neuron.register_forward_hook(lambda module, args, out, record=record: record.append(
                 (out[0] if isinstance(out, tuple) else out).numpy().reshape(-1).copy()))
             for neuron, record in zip(neurons, records, strict=True)]
    for neuron in neurons:
        neuron.reset_mem()  # snntorch.utils.reset leaves RSynaptic's last spikes, which the export left set
    with torch.no_grad():
        for step in x:
            model(torch.from_numpy(step.reshape(shape or step.shape)))
    for hook in hooks:
        hook.remove()
    return [np.array(record, dtype=bool) for record in records]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("first", ["synaptic", "leaky"])
def test_a_synaptic_network_exported_by_snntorch_runs_with_its_spikes(first, backend):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 20), _neuron(first, 20), torch.nn.Linear(20, 6),
                                _neuron("synaptic", 6, output=True))
    with torch.no_grad():  # biases stay: they act from the first input's arrival, as in snnTorch
        model[0].weight.mul_(2.0)
        model[2].weight.mul_(2.0)
    graph = export_to_nir(model, torch.randn(8))
    assert type(graph.nodes["3"]).__name__ == "CubaLIF"
    net = rv.nir.load(graph, convention="snntorch")
    # Leaky keeps the input of the step after a spike; Synaptic loses it: one refractory step
    assert net["1"].params["t_ref"][0] == (DT if first == "synaptic" else 0.0)
    assert net["3"].model.receptors == ("in", "syn") and net["3"].params["t_ref"][0] == DT
    steps = 400
    x = (np.random.default_rng(1).random((steps, 8)) < 0.3).astype(np.float32)
    hidden, output = _spikes_by_layer(model, [model[1], model[3]], x)
    padded = np.concatenate([x[:, None], np.zeros((2, 1, 8), np.float32)])
    engine = simulate(net, padded, "input", backend=backend)
    assert 50 < output.sum() < output.size - 50 and 200 < hidden.sum() < hidden.size - 200
    # each projection delays one step: layer l spikes l steps after snnTorch's
    np.testing.assert_array_equal(engine["1"][1:steps + 1, 0], hidden)
    np.testing.assert_array_equal(engine["3"][2:, 0], output)
    assert rv.hardware.estimate(net, "loihi2", rates=10.0).energy > 0


class _Recurrent(torch.nn.Module):
    def __init__(self, kind: str, n: int = 8):
        super().__init__()
        self.fc = torch.nn.Linear(4, n)
        cell = snn.RSynaptic(alpha=0.8, beta=0.9, linear_features=n, init_hidden=True, output=True,
                             reset_mechanism="zero") if kind == "rsynaptic" else \
            snn.RLeaky(beta=0.9, linear_features=n, init_hidden=True, output=True, reset_mechanism="zero")
        self.lif = cell

    def forward(self, x):
        return self.lif(self.fc(x))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("kind", ["rsynaptic", "rleaky"])
def test_recurrent_layers_exported_by_snntorch_run_with_their_spikes(kind, backend):
    torch.manual_seed(2)
    model = _Recurrent(kind)
    with torch.no_grad():
        model.fc.weight.mul_(2.0)
    graph = export_to_nir(model, torch.randn(4))
    net = rv.nir.load(graph, convention="snntorch")
    lif = next(name for name in net.populations if name.endswith("lif"))
    # the layer feeds itself through its recurrent weights: snnTorch's zero reset loses that step's input
    assert net[lif].params["t_ref"][0] == DT
    steps = 300
    x = (np.random.default_rng(2).random((steps, 4)) < 0.3).astype(np.float32)
    (expected,) = _spikes_by_layer(model, [model.lif], x)
    engine = simulate(net, np.concatenate([x[:, None], np.zeros((1, 1, 4), np.float32)]), "input",
                      backend=backend)[lif][1:, 0]
    assert 100 < expected.sum() < expected.size - 100
    np.testing.assert_array_equal(engine, expected)


def test_the_nir_loader_and_from_snntorch_build_the_same_synaptic_receptors():
    from ranvier.train import from_snntorch

    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4, bias=False), _neuron("synaptic", 4))
    direct, _ = from_snntorch(model, dt=DT)
    loaded = rv.nir.load(export_to_nir(model, torch.randn(5)), convention="snntorch")
    for receptor in ("in", "syn"):
        ours = next(p for p in direct.projections if p.receptor == receptor)
        theirs = next(p for p in loaded.projections if p.receptor == receptor)
        # the same mapping; the exporter's float32 taus differ from the betas in the 7th digit
        np.testing.assert_allclose(np.sort(theirs.weights), np.sort(ours.weights), rtol=1e-5)


class _ConvSynaptic(torch.nn.Module):
    """snnTorch: Conv2d(1, 3, 3) -> Synaptic -> Flatten -> Linear(108, 4) -> Synaptic, on 8x8 maps."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 3, 3)
        self.syn1 = _neuron("synaptic", (3, 6, 6))
        self.flat = torch.nn.Flatten()
        self.fc = torch.nn.Linear(108, 4)
        self.syn2 = _neuron("synaptic", (4,))

    def forward(self, x):
        return self.syn2(self.fc(self.flat(self.syn1(self.conv(x)))))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_convolutional_synaptic_network_exported_by_snntorch_runs_with_its_spikes(backend):
    torch.manual_seed(4)
    model = _ConvSynaptic()
    with torch.no_grad():
        model.conv.weight.mul_(2.0)
        model.fc.weight.mul_(3.0)
    graph = export_to_nir(model, torch.zeros(1, 1, 8, 8), ignore_dims=[0])
    net = rv.nir.load(graph, convention="snntorch")
    convolutions = [p for p in net.projections if p.pre.name == "input"]
    # one shared-kernel projection per receptor of the discrete synaptic neuron
    assert sorted(p.receptor for p in convolutions) == ["in", "syn"]
    assert all(p.convolution is not None and p.convolution.out_shape == (3, 6, 6) for p in convolutions)
    steps = 200
    x = (np.random.default_rng(4).random((steps, 64)) < 0.3).astype(np.float32)
    hidden, output = _spikes_by_layer(model, [model.syn1, model.syn2], x, (1, 1, 8, 8))
    engine = simulate(net, np.concatenate([x[:, None], np.zeros((2, 1, 64), np.float32)]), "input", backend=backend)
    assert 500 < hidden.sum() < hidden.size - 500 and 30 < output.sum() < output.size - 30
    np.testing.assert_array_equal(engine["syn1"][1:steps + 1, 0], hidden)
    np.testing.assert_array_equal(engine["syn2"][2:, 0], output)
    assert rv.hardware.estimate(net, "loihi2", rates=10.0).energy > 0
