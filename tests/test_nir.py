"""ranvier.nir: export and load NIR graphs; a round trip gives identical spikes."""

import numpy as np
import pytest

nir = pytest.importorskip("nir")

import ranvier as rv  # noqa: E402
from ranvier.errors import NIRError  # noqa: E402
from ranvier.train import simulate  # noqa: E402
from ranvier.units import ms, mV  # noqa: E402


def network() -> rv.Network:
    net = rv.Network(dt=1 * ms, seed=3)
    source = net.population(rv.neurons.SpikeSource([], [], n=12), name="input")
    delta = net.population(rv.neurons.LIF(tau_m=15 * ms, v_rest=-1 * mV, v_th=10 * mV, v_reset=0.0, t_ref=2 * ms,
                                          tau_syn={"in": 0.0}, i_bias=2 * mV), n=20, name="hidden")
    cuba = net.population(rv.neurons.LIF(tau_m=10 * ms, v_rest=0.0, v_th=8 * mV, v_reset=0.0, t_ref=0.0,
                                         tau_syn={"exc": 5 * ms}), n=6, name="out")
    net.connect(source, delta, rv.connect.Bernoulli(0.6), weight=rv.init.Normal(4 * mV, 3 * mV))
    net.connect(delta, cuba, rv.connect.AllToAll(), weight=rv.init.Normal(3 * mV, 2 * mV), delay=3 * ms)
    net.connect(delta, delta, rv.connect.Bernoulli(0.2), weight=rv.init.Normal(0.0, 2 * mV), delay=2 * ms)
    return net


def test_round_trip_through_a_file_gives_identical_spikes(tmp_path):
    net = network()
    rv.nir.save(net, tmp_path / "net.nir")
    loaded = rv.nir.load(tmp_path / "net.nir")
    assert set(loaded.populations) == {"input", "hidden", "out"}
    x = (np.random.default_rng(1).random((80, 3, 12)) < 0.2).astype(np.float32)
    ours = simulate(net, x, "input", backend="numpy")
    theirs = simulate(loaded, x, "input", backend="numpy")
    for name in ("hidden", "out"):
        assert ours[name].sum() > 30
        np.testing.assert_array_equal(ours[name], theirs[name])


def test_a_recurrent_network_exports_with_its_populations_as_outputs(tmp_path):
    net = rv.Network(dt=1e-4, seed=2)
    source = net.population(rv.neurons.SpikeSource([], [], n=3), name="input")
    loop = net.population(rv.neurons.LIF(v_rest=0.0, v_th=10 * mV, v_reset=0.0, tau_syn={"exc": 5 * ms}), 4,
                          name="loop")
    net.connect(source, loop, rv.connect.AllToAll(), weight=6 * mV, receptor="exc")
    net.connect(loop, loop, rv.connect.AllToAll(autapses=False), weight=1 * mV, receptor="exc")
    rv.nir.save(net, tmp_path / "loop.nir")
    loaded = rv.nir.load(tmp_path / "loop.nir")
    x = (np.random.default_rng(2).random((60, 2, 3)) < 0.3).astype(np.float32)
    ours, theirs = simulate(net, x, "input", backend="numpy"), simulate(loaded, x, "input", backend="numpy")
    assert ours["loop"].sum() > 10
    np.testing.assert_array_equal(ours["loop"], theirs["loop"])


def snntorch_style_graph(beta: float = 0.9, dt: float = 1e-4) -> nir.NIRGraph:
    """What snnTorch's exporter writes for Linear + Leaky (snntorch/export_nir.py): tau = dt/(1-beta), r = tau/dt."""
    rng = np.random.default_rng(0)
    tau = dt / (1 - beta)
    n = 8
    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([5])}),
        "fc": nir.Affine(weight=rng.normal(0.8, 0.5, (n, 5)), bias=np.zeros(n)),
        "lif": nir.LIF(tau=np.full(n, tau), r=np.full(n, tau / dt), v_leak=np.zeros(n), v_threshold=np.ones(n)),
        "output": nir.Output(output_type={"output": np.array([n])}),
    }, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])


def test_snntorch_style_graph_runs_like_its_discrete_equations():
    graph = snntorch_style_graph()
    net = rv.nir.load(graph, dt=1e-4)
    steps = 60
    x = (np.random.default_rng(2).random((steps, 2, 5)) < 0.3).astype(np.float32)
    engine = simulate(net, np.concatenate([x, np.zeros((1, 2, 5), np.float32)]), "input", backend="numpy")["lif"]
    # mem[t] = beta mem[t-1] + W x[t]; spike and reset to v_reset = v_leak = 0 when mem >= threshold
    weight = graph.nodes["fc"].weight.T
    mem = np.zeros((2, 8))
    expected = np.zeros((steps, 2, 8), dtype=bool)
    for t in range(steps):
        mem = 0.9 * mem + x[t] @ weight
        expected[t] = mem >= 1.0
        mem[expected[t]] = 0.0
    assert expected.sum() > 20
    assert np.mean(engine[1:] == expected) >= 0.99


def test_norse_style_cubalif_and_integrator_nodes_load():
    n = 4
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([3])}),
        "w": nir.Linear(weight=np.ones((n, 3))),
        "delay": nir.Delay(delay=np.full(3, 2e-3)),
        "cuba": nir.CubaLIF(tau_syn=np.full(n, 5e-3), tau_mem=np.full(n, 1e-2), r=np.ones(n), v_leak=np.zeros(n),
                            v_threshold=np.ones(n), w_in=np.full(n, 2.0)),
        "w2": nir.Linear(weight=np.ones((2, n))),
        "acc": nir.I(r=np.ones(2)),
        "output": nir.Output(output_type={"output": np.array([2])}),
    }, edges=[("input", "delay"), ("delay", "w"), ("w", "cuba"), ("cuba", "w2"), ("w2", "acc"), ("acc", "output")])
    net = rv.nir.load(graph, dt=1e-3, integration="exact")
    assert net.projections[0].delays[0] == pytest.approx(2e-3)
    assert net["cuba"].model.receptors == ("syn",)
    assert float(net["acc"].params["v_th"][0]) >= rv.nir.from_nir.__globals__["NO_THRESHOLD"]


def test_unsupported_nodes_and_networks_raise_named_errors():
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([4])}),
                                "rnn": nir.CubaLI(tau_syn=np.ones(4), tau_mem=np.ones(4), r=np.ones(4),
                                                  v_leak=np.zeros(4)),
                                "output": nir.Output(output_type={"output": np.array([4])})},
                         edges=[("input", "rnn"), ("rnn", "output")], type_check=False)
    with pytest.raises(NIRError, match="type CubaLI is not supported; supported: Input, Output, LIF"):
        rv.nir.load(graph, dt=1e-3)
    with pytest.raises(NIRError, match="pass dt"):
        rv.nir.load(snntorch_style_graph())
    net = rv.Network(dt=1 * ms)
    net.population(rv.neurons.Kuramoto(), n=3, name="phases")
    with pytest.raises(NIRError, match="population 'phases': Kuramoto has no NIR node"):
        rv.nir.save(net)
