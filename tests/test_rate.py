"""Rate populations: torch modules in the engine, and the hybrid ANN-SNN."""

import numpy as np
import pytest
import torch

import ranvier as rv
from ranvier.units import ms


def _counting_network(module, rate_dt=5 * ms, inputs="counts"):
    net = rv.Network(dt=1 * ms, seed=1)
    times = np.array([1, 2, 3, 6, 7, 11]) * ms
    ids = np.array([0, 1, 0, 2, 2, 1])
    source = net.population(rv.neurons.SpikeSource(times, ids, n=3), name="src")
    layer = net.population(rv.neurons.Rate(module, dt=rate_dt, inputs=inputs), name="layer")
    net.connect(source, layer, rv.connect.OneToOne(), weight=1.0, receptor="input")
    return net, times, ids, layer


def test_a_torch_module_reads_window_counts_and_sends_its_output():
    linear = torch.nn.Linear(3, 2)
    net, times, ids, layer = _counting_network(linear)
    assert layer.n == 2
    output = net.record(layer, "output")
    net.run(15 * ms, backend="numpy")
    arrival = np.round(times / ms).astype(int)  # emitted in step t/dt - 1, arrives one step later
    for window in range(3):
        counts = np.bincount(ids[arrival // 5 == window], minlength=3).astype(np.float32)
        expected = linear(torch.as_tensor(counts)[None])[0].detach().numpy()
        np.testing.assert_allclose(output.values[window], expected, rtol=1e-6, atol=1e-7)
    assert net.stats.neuron_updates_by_population["layer"] == 2 * 3


def test_rates_divide_counts_by_the_window():
    identity = torch.nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        identity.weight.copy_(torch.eye(3))
    net, *_ = _counting_network(identity, inputs="rates")
    output = net.record("layer", "output")
    net.run(5 * ms, backend="numpy")
    np.testing.assert_allclose(output.values[0], [2 / 5e-3, 1 / 5e-3, 0.0])


def test_rate_population_drives_spiking_neurons_identically_on_both_backends():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8))
    spikes = {}
    for backend in ("numpy", "numba"):
        net = rv.Network(dt=0.5 * ms, seed=2)
        source = net.population(rv.neurons.PoissonSource(rate=400.0), n=20, name="src")
        ann = net.population(rv.neurons.Rate(mlp, dt=10 * ms), name="ann")
        cells = net.population(rv.neurons.LIF(tau_syn={"exc": 5 * ms}, v_rest=-60e-3, v_th=-50e-3), n=8, name="cells")
        net.connect(source, ann, rv.connect.OneToOne(), weight=1.0, receptor="input")
        net.connect(ann, cells, rv.connect.OneToOne(), weight=5e-3)
        spikes[backend] = net.record(cells, "spikes")
        net.run(100 * ms, backend=backend)
    assert spikes["numpy"].num_spikes > 0
    np.testing.assert_array_equal(spikes["numpy"].steps, spikes["numba"].steps)
    np.testing.assert_array_equal(spikes["numpy"].ids, spikes["numba"].ids)


def test_hybrid_ann_sets_the_snn_membrane_at_each_update():
    class Fixed(torch.nn.Module):
        def forward(self, counts):
            return torch.full((1, 4), 0.75) + 0.0 * counts.sum()

    source = rv.neurons.SpikeSource(np.array([30e-3]), np.array([0]), n=6)
    net = rv.networks.hybrid(Fixed(), source, ann_dt=20 * ms, dt=1 * ms, input_weights=np.zeros((4, 6)) + 0.5)
    v = net.record("snn", "v")
    net.run(45 * ms, backend="numpy")
    decay = np.exp(-1 / 20)
    # the ANN update at 20 ms sets v = 0.75, after the sample stamped 20 ms; v then decays, and the input
    # spike emitted in step 29 adds 0.5 in step 30 (0.75 d^11 + 0.5 < 1: no spike); 40 ms sets v again
    assert v.values[19, 0] == 0.0
    np.testing.assert_allclose(v.values[20, 0], 0.75 * decay, rtol=1e-5)
    np.testing.assert_allclose(v.values[30, 0], 0.75 * decay**11 + 0.5, rtol=1e-5)
    np.testing.assert_allclose(v.values[40, 0], 0.75 * decay, rtol=1e-5)
    assert net.stats.dense_macs_by_projection["ann->snn:v"] == 4 * 2


def test_bad_rate_modules_are_named():
    with pytest.raises(rv.ModelError, match="torch.nn.Module"):
        rv.neurons.Rate(lambda x: x)
    with pytest.raises(rv.ModelError, match="n_in"):
        rv.neurons.Rate(torch.nn.ReLU())
    with pytest.raises(rv.ModelError, match=r"must map \(1, 3\)"):
        rv.neurons.Rate(torch.nn.Flatten(0), n_in=3)
    net = rv.Network(dt=1 * ms)
    source = net.population(rv.neurons.PoissonSource(rate=1.0), n=5, name="src")
    layer = net.population(rv.neurons.Rate(torch.nn.Linear(3, 2)), name="layer")
    with pytest.raises(rv.ProjectionError, match="OneToOne needs equal sizes, got 5 -> 3"):
        net.connect(source, layer, rv.connect.OneToOne(), weight=1.0, receptor="input")
    cells = net.population(rv.neurons.LIF(), n=4, name="cells")
    with pytest.raises(rv.ProjectionError, match=r"'layer->cells:exc'.*in \[0, 2\), got \[3\]"):
        net.connect(layer, cells, rv.connect.FromArrays([0, 3], [0, 1]), weight=1.0, receptor="exc")
    with pytest.raises(rv.ProjectionError, match="hybrid: the ANN takes 3 input features, the source has 5"):
        rv.networks.hybrid(torch.nn.Linear(3, 2), rv.neurons.SpikeSource(np.array([1e-3]), np.array([0]), n=5))


def test_a_network_with_a_rate_population_saves_and_loads(tmp_path):
    torch.manual_seed(1)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh())
    net, *_ = _counting_network(mlp)
    net.run(5 * ms, backend="numpy")
    net.save(tmp_path / "rate.h5")
    loaded = rv.load(tmp_path / "rate.h5")
    assert isinstance(loaded["layer"].model, rv.neurons.Rate)
    outputs = []
    for network in (net, loaded):
        monitor = network.record("layer", "output")
        network.run(10 * ms, backend="numpy")
        outputs.append(monitor.values)
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert np.abs(outputs[0]).max() > 0


def test_a_saved_rate_module_is_data_and_loading_runs_no_code(tmp_path):
    import h5py

    class Custom(torch.nn.Module):
        def forward(self, x):
            return x * 2

    net, *_ = _counting_network(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.GELU()))
    net.save(tmp_path / "layers.h5")
    with h5py.File(tmp_path / "layers.h5", "r") as file:
        config = next(group.attrs["config"] for group in file["populations"].values() if group.attrs["name"] == "layer")
    assert '"layer": "LayerNorm"' in config and "torch.save" not in config
    loaded = rv.load(tmp_path / "layers.h5")["layer"].model.module
    assert [type(layer).__name__ for layer in loaded] == ["Linear", "LayerNorm", "GELU"]
    net, *_ = _counting_network(torch.nn.Sequential(Custom(), torch.nn.Linear(3, 3)))
    with pytest.raises(rv.StorageError, match="population 'layer'.*Custom cannot be saved as data"):
        net.save(tmp_path / "custom.h5")
    # a file naming another layer (or any class) is refused, not imported
    with h5py.File(tmp_path / "layers.h5", "r+") as file:
        group = next(group for group in file["populations"].values() if group.attrs["name"] == "layer")
        group.attrs["config"] = group.attrs["config"].replace('"layer": "GELU"', '"layer": "os.system"')
        rv.engine.storage._seal(file)  # as an attacker would: only the checks of the content remain
    with pytest.raises(rv.StorageError, match="'os.system'"):
        rv.load(tmp_path / "layers.h5")


_NARROW_HANDOVER = """
import json
import numpy as np
import torch
import ranvier as rv
from ranvier.engine.backends import cuda_backend
from ranvier.plasticity import STDP
from ranvier.units import ms, mV

handed = []
to_host = cuda_backend.CudaRunner.to_host
def recorded(self, rings=None, states=()):
    handed.append(None if rings is None else [sorted(rings), sorted(states)])
    return to_host(self, rings, states)
cuda_backend.CudaRunner.to_host = recorded

def run(backend):
    torch.manual_seed(0)
    net = rv.networks.cuba(n=200, seed=2)
    ann = net.population(rv.neurons.Rate(torch.nn.Sequential(torch.nn.Linear(160, 8), torch.nn.Sigmoid()), dt=2 * ms),
                         name="ann")
    net.connect(net["exc"], ann, rv.connect.OneToOne(), weight=1.0, receptor="input")
    net.connect(ann, net["exc"], rv.connect.FixedInDegree(2), weight=4 * mV, receptor="exc")
    net.connect(net["exc"], net["inh"], rv.connect.FixedInDegree(5), weight=0.5 * mV, receptor="exc",
                plasticity=STDP(a_plus=0.05 * mV, a_minus=0.06 * mV, w_max=2 * mV))
    spikes = [net.record(name, "spikes") for name in ("exc", "inh")]
    output = net.record("ann", "output")
    net.run(20 * ms, backend=backend)
    return ([[m.steps.tolist(), m.ids.tolist()] for m in spikes], output.values.tolist(),
            net.projections[-1].weights.tolist(), net["inh"].state.tolist(), net["exc"].state.tolist())

reference, on_cuda = run("numpy"), run("cuda")
print(json.dumps({"same": [a == b for a, b in zip(reference, on_cuda)], "handed": handed,
                  "spikes": sum(len(ids) for _, ids in reference[0])}))
"""


@pytest.mark.slow
def test_a_rate_window_on_cuda_hands_over_only_the_population_it_drives(on_cuda_simulator):
    """A Rate population (a torch MLP) counting CUBA's excitatory spikes and driving them back, beside an STDP
    projection: each of its windows copies the rings of the excitatory population alone (not its state, which
    the Rate's output does not set, nor the inhibitory population, nor the learned weights), and spikes,
    outputs, learned weights and states equal numpy's."""
    result = on_cuda_simulator(_NARROW_HANDOVER)
    assert result["same"] == [True] * 5 and result["spikes"] > 20
    windows = [handed for handed in result["handed"] if handed is not None]
    assert len(windows) == 10 and all(handed == [[0], []] for handed in windows)  # rings, states
    assert result["handed"][0] is None and result["handed"][-1] is None  # a run's start and end hand over all


_SETTING_WINDOW = """
import json
import torch
import ranvier as rv
from ranvier.units import ms

def run(backend):
    torch.manual_seed(0)
    net = rv.Network(dt=1 * ms, seed=2)
    source = net.population(rv.neurons.PoissonSource(rate=300.0), n=20, name="source")
    ann = net.population(rv.neurons.Rate(torch.nn.Sequential(torch.nn.Linear(20, 6), torch.nn.Sigmoid()), dt=4 * ms),
                         name="ann")
    snn = net.population(rv.neurons.LIF(tau_syn={"exc": 5 * ms}, v_rest=0.0, v_th=1.0, v_reset=0.0), n=6, name="snn")
    net.connect(source, ann, rv.connect.OneToOne(), weight=1.0, receptor="input")
    net.connect(ann, snn, rv.connect.OneToOne(), weight=1.2, receptor="v")  # sets v at each update
    net.connect(source, snn, rv.connect.Bernoulli(0.3), weight=0.3, receptor="exc")
    spikes, v = net.record("snn", "spikes"), net.record("snn", "v")
    net.run(40 * ms, backend=backend)
    return [spikes.steps.tolist(), spikes.ids.tolist(), v.values.tolist()]

reference, on_cuda = run("numpy"), run("cuda")
print(json.dumps({"same": [a == b for a, b in zip(reference, on_cuda)], "spikes": len(reference[0])}))
"""


@pytest.mark.slow
def test_a_rate_window_that_sets_a_membrane_on_cuda_hands_its_state_over(on_cuda_simulator):
    """A Rate whose output sets the spiking population's ``v`` at each window: that window hands the
    population's state over and back (a window that only holds values in its rings does not), and spikes
    and ``v`` equal numpy's."""
    result = on_cuda_simulator(_SETTING_WINDOW)
    assert result["same"] == [True, True, True] and result["spikes"] > 5
