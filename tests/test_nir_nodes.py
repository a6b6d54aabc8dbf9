"""NIR: sources as Input, Flatten, Scale, Threshold, IF, nested graphs, bias timing, Norse's tau, convolutions."""

import numpy as np
import pytest

nir = pytest.importorskip("nir")
pytest.importorskip("torch")

import ranvier as rv  # noqa: E402
from ranvier.errors import NIRError  # noqa: E402
from ranvier.train import simulate  # noqa: E402
from ranvier.units import ms  # noqa: E402


def _run(net, x):
    """Spikes of every population for inputs x (steps, batch, n), with one step more for the delay."""
    padded = np.concatenate([x, np.zeros((1, *x.shape[1:]), np.float32)])
    return simulate(net, padded, "input", backend="numpy")


def test_poisson_and_other_sources_export_as_input_nodes():
    net = rv.Network(dt=1 * ms, seed=1)
    noise = net.population(rv.neurons.PoissonSource(20.0), n=4, name="noise")
    lif = net.population(rv.neurons.LIF(tau_m=10 * ms, v_rest=0.0, v_th=1.0, v_reset=0.0, tau_syn={"in": 0.0}),
                         n=3, name="lif")
    net.connect(noise, lif, rv.connect.AllToAll(), weight=0.5)
    graph = rv.nir.to_nir(net)
    assert isinstance(graph.nodes["noise"], nir.Input) and graph.nodes["noise"].metadata["source"] == "PoissonSource"
    assert list(graph.nodes["noise"].input_type["input"]) == [4]
    loaded = rv.nir.from_nir(graph)
    assert isinstance(loaded["noise"].model, rv.neurons.SpikeSource) and loaded["noise"].n == 4


def test_flatten_scale_and_threshold_load():
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([2])}),
        "flat": nir.Flatten(input_type={"input": np.array([2])}),
        "scale": nir.Scale(scale=np.array([2.0, 0.5])),
        "w": nir.Linear(weight=np.ones((3, 2))),
        "th": nir.Threshold(threshold=np.full(3, 1.5)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }, edges=[("input", "flat"), ("flat", "scale"), ("scale", "w"), ("w", "th"), ("th", "output")], type_check=False)
    net = rv.nir.load(graph, dt=1e-3)
    x = np.zeros((6, 1, 2), np.float32)
    x[0, 0, 0] = 1  # 2 > 1.5
    x[2, 0, 1] = 1  # 0.5
    x[3, 0, 1] = 1  # 0.5 again: a Threshold has no memory
    x[4, 0, :] = 1  # 2.5
    spikes = _run(net, x)["th"][1:, 0, 0]
    np.testing.assert_array_equal(spikes, x[:, 0] @ np.array([2.0, 0.5]) > 1.5)


def _integrator(threshold: float) -> nir.NIRGraph:
    """One input into one IF node: at dt = 1 ms a spike adds r w dt = 1 to v."""
    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([1])}),
        "w": nir.Linear(weight=np.ones((1, 1))),
        "if": nir.IF(r=np.full(1, 1000.0), v_threshold=np.full(1, threshold), v_reset=np.zeros(1)),
        "output": nir.Output(output_type={"output": np.array([1])}),
    }, edges=[("input", "w"), ("w", "if"), ("if", "output")])


def test_if_integrates_without_leak_and_resets():
    net = rv.nir.load(_integrator(2.5), dt=1e-3)
    x = np.zeros((10, 1, 1), np.float32)
    x[[0, 3, 8, 9]] = 1  # v: 1, 2, 3 -> spike, reset, 1 ...
    spikes = _run(net, x)["if"][1:, 0, 0]
    assert list(np.flatnonzero(spikes)) == [8]


def test_a_membrane_exactly_at_an_if_threshold_does_not_spike():
    net = rv.nir.load(_integrator(2.0), dt=1e-3)
    x = np.zeros((6, 1, 1), np.float32)
    x[[0, 1, 2]] = 1  # v: 1, 2 (at the threshold: NIR spikes only above it), 3 -> spike
    assert list(np.flatnonzero(_run(net, x)["if"][1:, 0, 0])) == [2]


def _leaky(v, drive, beta=0.9):
    """snnTorch Leaky (reset by subtraction to zero, 'zero' reset): mem = beta mem + drive; spike at > 1."""
    v = beta * v + drive
    spike = v > 1.0
    return np.where(spike, 0.0, v), spike


def test_a_nested_graph_in_the_form_snntorch_writes_rleaky_runs_like_its_equations():
    n, beta, dt = 4, 0.9, 1e-4
    tau = dt / (1 - beta)
    rng = np.random.default_rng(5)
    w_in, w_rec = rng.normal(0.6, 0.3, (n, 3)), rng.normal(0.0, 0.3, (n, n))
    rleaky = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([n])}),
        "lif": nir.LIF(tau=np.full(n, tau), r=np.full(n, tau / dt), v_leak=np.zeros(n), v_threshold=np.ones(n)),
        "w_rec": nir.Linear(weight=w_rec),
        "output": nir.Output(output_type={"output": np.array([n])}),
    }, edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([3])}),
        "fc": nir.Linear(weight=w_in),
        "rnn": rleaky,
        "output": nir.Output(output_type={"output": np.array([n])}),
    }, edges=[("input", "fc"), ("fc", "rnn.input"), ("rnn.output", "output")], type_check=False)
    net = rv.nir.load(graph, dt=dt)
    assert set(net.populations) == {"input", "rnn.lif"}
    assert sorted((p.pre.name, p.post.name) for p in net.projections) == [("input", "rnn.lif"),
                                                                         ("rnn.lif", "rnn.lif")]
    # the recurrent weights are delivered one step later, as snnTorch's RLeaky reads the last step's spikes
    steps = 80
    x = (np.random.default_rng(6).random((steps, 1, 3)) < 0.4).astype(np.float32)
    engine = _run(net, x)["rnn.lif"][1:, 0]
    v, spikes, expected = np.zeros(n), np.zeros(n, bool), np.zeros((steps, n), bool)
    for t in range(steps):
        v, spikes = _leaky(v, x[t, 0] @ w_in.T + spikes @ w_rec.T, beta)
        expected[t] = spikes
    assert expected.sum() > 20
    assert np.mean(engine == expected) >= 0.99


def test_affine_bias_acts_from_the_step_spikes_first_arrive_as_in_snntorch():
    snntorch = pytest.importorskip("snntorch")
    import torch

    beta, dt, n = 0.9, 1e-4, 5
    torch.manual_seed(0)
    fc = torch.nn.Linear(3, n)
    with torch.no_grad():
        fc.bias.copy_(torch.tensor([0.3, -0.2, 0.15, 0.0, 0.5]))
    lif = snntorch.Leaky(beta=beta, threshold=1.0, reset_mechanism="zero")
    steps = 40
    x = (np.random.default_rng(7).random((steps, 1, 3)) < 0.4).astype(np.float32)
    mem, out = lif.init_leaky(), []
    with torch.no_grad():
        for t in range(steps):
            spike, mem = lif(fc(torch.from_numpy(x[t])), mem)
            out.append(spike.numpy()[0])
    expected = np.array(out, dtype=bool)
    tau = dt / (1 - beta)
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([3])}),
        "fc": nir.Affine(weight=fc.weight.detach().numpy(), bias=fc.bias.detach().numpy()),
        "lif": nir.LIF(tau=np.full(n, tau), r=np.full(n, tau / dt), v_leak=np.zeros(n), v_threshold=np.ones(n)),
        "output": nir.Output(output_type={"output": np.array([n])}),
    }, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    net = rv.nir.load(graph, dt=dt)
    engine = _run(net, x)["lif"][1:, 0]
    assert expected.sum() > 10
    np.testing.assert_array_equal(engine, expected)
    assert not np.any(_run(net, x)["lif"][0])  # nothing before the inputs arrive, though the bias 0.5 would


def norse_style_graph(n: int = 3, dt: float = 1e-3) -> nir.NIRGraph:
    """What Norse 1.1's to_nir writes for Linear + LIFBoxCell: tau = dt / tau_mem_inv (1e-5 s for 100 /s)."""
    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([2])}),
        "0": nir.Affine(weight=np.full((n, 2), 0.8), bias=np.zeros(n)),
        "1": nir.LIF(tau=np.full(n, dt / 100.0), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n),
                     v_reset=np.zeros(n)),
        "output": nir.Output(output_type={"output": np.array([n])}),
    }, edges=[("input", "0"), ("0", "1"), ("1", "output")])


def test_norse_tau_convention_is_named_and_loads_with_convention_norse():
    with pytest.raises(NIRError, match=r"tau = 1e-05 s is shorter than dt = 0.001 s. Norse 1.1's to_nir writes tau "
                                       r"= dt / tau_inv .*convention='norse'"):
        rv.nir.load(norse_style_graph(), dt=1e-3)
    net = rv.nir.load(norse_style_graph(), dt=1e-3, convention="norse")
    # euler with tau 0.01 s, dt 1 ms: decay 0.9 per step, as Norse's v += dt tau_mem_inv (v_leak - v + i)
    assert float(net["1"].params["tau_m"][0]) == pytest.approx(-1e-3 / np.log(0.9))
    with pytest.raises(NIRError, match="convention must be"):
        rv.nir.load(norse_style_graph(), dt=1e-3, convention="brian")


def test_a_real_norse_export_loads_with_convention_norse():
    norse = pytest.importorskip("norse.torch", reason="needs norse (pip install --no-deps norse)")
    import torch

    model = norse.SequentialState(torch.nn.Linear(3, 4), norse.LIFBoxCell(), torch.nn.Linear(4, 2, bias=False),
                                  norse.LIFCell())
    graph = norse.to_nir(model, torch.randn(1, 3))
    with pytest.raises(NIRError, match="Norse 1.1"):
        rv.nir.load(graph, dt=1e-3)
    net = rv.nir.load(graph, dt=1e-3, convention="norse")
    assert {"1", "3"} <= set(net.populations)
    assert float(net["3"].params["tau_syn"][0]) == pytest.approx(-1e-3 / np.log(1 - 1e-3 * 200), rel=1e-6)


def test_one_dimensional_convolutions_are_a_named_error():
    layer = nir.Conv1d(input_shape=4, weight=np.ones((1, 1, 2)), stride=1, padding=0, dilation=1, groups=1,
                       bias=np.zeros(1))
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1, 4])}), "conv": layer,
                                "output": nir.Output(output_type={"output": np.array([1, 3])})},
                         edges=[("input", "conv"), ("conv", "output")], type_check=False)
    with pytest.raises(NIRError, match="'conv': type Conv1d is not supported; supported: .*Conv2d, SumPool2d"):
        rv.nir.load(graph, dt=1e-3)


def test_snntorch_rleaky_exported_by_snntorch_runs_with_the_same_spikes():
    snntorch = pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch", reason="snnTorch's exporter needs nirtorch (pip install nirtorch)")
    import torch
    from snntorch.export_nir import export_to_nir

    class Recurrent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 6)
            self.lif = snntorch.RLeaky(beta=0.9, linear_features=6, init_hidden=True, output=True,
                                       reset_mechanism="zero")

        def forward(self, x):
            return self.lif(self.fc(x))

    torch.manual_seed(2)
    model = Recurrent()
    with torch.no_grad():
        model.fc.weight.mul_(3.0)
        model.fc.bias.fill_(0.1)
    graph = export_to_nir(model, torch.randn(3))
    # snnTorch's "zero" reset also drops the input of the step after a spike: NIR's reset with t_ref = dt
    net = rv.nir.load(graph, dt=1e-4, t_ref=1e-4)
    lif = next(name for name in net.populations if name.endswith("lif"))
    steps = 60
    x = (np.random.default_rng(8).random((steps, 1, 3)) < 0.4).astype(np.float32)
    from snntorch import utils as snntorch_utils

    snntorch_utils.reset(model)
    with torch.no_grad():
        expected = np.array([model(torch.from_numpy(x[t, 0]))[0].numpy() for t in range(steps)], dtype=bool)
    engine = _run(net, x)[lif][1:, 0]
    assert expected.sum() > 20
    np.testing.assert_array_equal(engine, expected)
    assert rv.hardware.estimate(net, "loihi2", rates=10.0).energy > 0
