"""Synaptic operations of ranvier's counts equal NeuroBench's on the same snnTorch model and inputs."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
pytest.importorskip("neurobench")

from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.workload import SynapticOperations  # noqa: E402
from neurobench.models import SNNTorchModel  # noqa: E402

import ranvier as rv  # noqa: E402
import ranvier.hardware as hw  # noqa: E402
from ranvier.hardware.neurobench import leaky_twin  # noqa: E402

# a threshold off the 1/16 grid of the summed weights: ranvier fires at v >= v_th, snnTorch at
# mem > threshold, which differ only when the membrane lands on the threshold exactly
BETA, THRESHOLD, STEPS = 0.9, 1.0 + 1 / 1024, 40


def _model_and_data(sizes=(30, 40, 10), samples=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        linear = torch.nn.Linear(n_in, n_out, bias=False)
        # multiples of 1/16 sum exactly in float32, so both simulators see the same input current;
        # about a third of the weights are zero, so synapses differ from the dense count
        levels = torch.randint(-4, 13, (n_out, n_in), generator=generator).float() / 16
        levels[torch.rand(n_out, n_in, generator=generator) < 0.35] = 0.0
        linear.weight.data = levels
        layers += [linear, snn.Leaky(beta=BETA, threshold=THRESHOLD, reset_mechanism="zero", init_hidden=True,
                                     output=(n_out == sizes[-1]))]
    net = torch.nn.Sequential(*layers)
    spikes = (torch.rand(samples, STEPS, sizes[0], generator=generator) < 0.3).float()
    return net, spikes


def _neurobench_synops(net, spikes):
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(spikes, torch.zeros(len(spikes))),
                                         batch_size=len(spikes))
    benchmark = Benchmark(SNNTorchModel(net), loader, [], [], [[], [SynapticOperations]])
    return benchmark.run(quiet=True)["SynapticOperations"]


def _ranvier_counts(net, spikes):
    weights = [layer.weight.detach().numpy() for layer in net if isinstance(layer, torch.nn.Linear)]
    events = dense = 0.0
    spikes_by_layer = np.zeros(len(weights))
    for sample in spikes.numpy():
        twin = leaky_twin(weights, BETA, THRESHOLD, sample)
        twin.run((STEPS + len(weights)) * twin.dt, backend="numpy")
        counts = hw.count(twin)
        events += counts.synaptic_events
        # NeuroBench's Dense counts every weight, zero or not, in every step
        dense += sum(counts.populations[p.pre].n * counts.populations[p.post].n
                     for p in counts.projections.values()) * STEPS
        spikes_by_layer += [counts.populations[f"layer{i}"].spikes for i in range(len(weights))]
    return events / len(spikes), dense / len(spikes), spikes_by_layer


def _snntorch_spikes(net, spikes):
    counts = []
    hooks = [layer.register_forward_hook(lambda module, args, out: counts.append(out[0] if isinstance(out, tuple)
                                                                                 else out))
             for layer in net if isinstance(layer, snn.Leaky)]
    with torch.no_grad():
        SNNTorchModel(net)(spikes)
    for hook in hooks:
        hook.remove()
    per_layer = len(hooks)
    return np.array([sum(float(c.sum()) for c in counts[i::per_layer]) for i in range(per_layer)])


def test_synaptic_operations_equal_neurobench():
    net, spikes = _model_and_data()
    reference = _neurobench_synops(net, spikes)
    events, dense, layer_spikes = _ranvier_counts(net, spikes)
    # the same spikes in every layer (ranvier's hidden layer only later by its projection delay)
    np.testing.assert_array_equal(layer_spikes[:-1], _snntorch_spikes(net, spikes)[:-1])
    assert layer_spikes[0] > 0
    assert events == pytest.approx(reference["Effective_ACs"], rel=0, abs=1e-9)
    assert reference["Effective_MACs"] == 0
    assert dense == pytest.approx(reference["Dense"], rel=0, abs=1e-9)


def test_twin_rejects_non_binary_inputs():
    with pytest.raises(rv.errors.HardwareError, match="binary spikes"):
        leaky_twin([np.ones((2, 3))], BETA, THRESHOLD, np.full((4, 3), 0.5))
