"""ranvier.train.from_snntorch: an snnTorch Leaky/Synaptic model reproduced spike for spike in the engine."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")

from ranvier.errors import TrainingError  # noqa: E402
from ranvier.train import from_snntorch, simulate  # noqa: E402


def run_snntorch(model: torch.nn.Sequential, x: torch.Tensor) -> list[np.ndarray]:
    """Spikes of every spiking layer, (T, B, n), from snnTorch's own step loop."""
    states = [m.init_synaptic() if isinstance(m, snn.Synaptic) else m.init_leaky()
              for m in model if isinstance(m, snn.Leaky | snn.Synaptic)]
    out: list[list[torch.Tensor]] = [[] for _ in states]
    with torch.no_grad():
        for step in x:
            signal, layer = step, 0
            for module in model:
                if isinstance(module, torch.nn.Linear):
                    signal = module(signal)
                elif isinstance(module, snn.Synaptic):
                    syn, mem = states[layer]
                    signal, syn, mem = module(signal, syn, mem)
                    states[layer] = (syn, mem)
                    out[layer].append(signal)
                    layer += 1
                else:
                    signal, states[layer] = module(signal, states[layer])
                    out[layer].append(signal)
                    layer += 1
    return [torch.stack(spikes).numpy().astype(bool) for spikes in out]


@pytest.mark.parametrize("second", ["leaky", "synaptic"])
def test_engine_reproduces_snntorch_spikes(second):
    torch.manual_seed(0)
    last = snn.Synaptic(alpha=0.8, beta=0.9, reset_mechanism="zero") if second == "synaptic" else \
        snn.Leaky(beta=0.85, threshold=0.8, reset_mechanism="zero")
    model = torch.nn.Sequential(torch.nn.Linear(30, 40), snn.Leaky(beta=0.9, reset_mechanism="zero"),
                                torch.nn.Linear(40, 10), last)
    with torch.no_grad():
        model[0].weight.mul_(3.0)
        model[2].weight.mul_(3.0)
    steps = 50
    x = (torch.rand(steps, 4, 30) < 0.2).float()
    peer = run_snntorch(model, x)
    net, layers = from_snntorch(model, dt=1e-3)
    padded = np.concatenate([x.numpy(), np.zeros((len(layers), 4, 30), dtype=np.float32)])
    ours = simulate(net, padded, "input", backend="numpy")
    for depth, (name, theirs) in enumerate(zip(layers, peer, strict=True), start=1):
        assert theirs.sum() > 20
        assert np.mean(ours[name][depth:depth + steps] == theirs) >= 0.99


@pytest.mark.parametrize("neuron", ["leaky", "synaptic"])
def test_a_membrane_exactly_at_the_threshold_does_not_spike_as_in_snntorch(neuron):
    # round weights and thresholds (quantised or converted networks) meet the threshold exactly:
    # snnTorch's Heaviside is 1 only above it
    linear = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        linear.weight[:] = 1.0
    spiking = snn.Synaptic(alpha=0.5, beta=0.5, threshold=1.0, reset_mechanism="zero") if neuron == "synaptic" else \
        snn.Leaky(beta=torch.tensor([0.5]), threshold=torch.tensor([1.0]), reset_mechanism="zero")
    model = torch.nn.Sequential(linear, spiking)
    x = torch.zeros(12, 1, 1)
    x[1:4] = 1.0
    (theirs,) = run_snntorch(model, x)
    net, (layer,) = from_snntorch(model, dt=1e-3)
    ours = simulate(net, np.concatenate([x.numpy(), np.zeros((1, 1, 1), np.float32)]), "input", backend="numpy")
    np.testing.assert_array_equal(ours[layer][1:], theirs)


def test_unsupported_snntorch_models_raise_named_errors():
    with pytest.raises(TrainingError, match="reset_mechanism='subtract' is not supported"):
        from_snntorch(torch.nn.Sequential(torch.nn.Linear(3, 2), snn.Leaky(beta=0.9)))
    with pytest.raises(TrainingError, match="beta must be in"):
        from_snntorch(torch.nn.Sequential(torch.nn.Linear(3, 2), snn.Leaky(beta=1.0, reset_mechanism="zero")))
    with pytest.raises(TrainingError, match="expected nn.Sequential of nn.Linear"):
        from_snntorch(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()))
