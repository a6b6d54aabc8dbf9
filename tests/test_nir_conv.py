"""NIR convolutions: Conv2d, SumPool2d and AvgPool2d load as projections whose kernel is stored once.

Convolutional networks exported by snnTorch's and Norse's own exporters run in ranvier with the
same spikes as the libraries' own forward passes, and are costed by ``hardware.estimate``.
"""

import numpy as np
import pytest

nir = pytest.importorskip("nir")
torch = pytest.importorskip("torch")

import ranvier as rv  # noqa: E402
from ranvier.errors import NIRError  # noqa: E402
from ranvier.networks import nir_io  # noqa: E402


def run_engine(net, x: np.ndarray, extra: int, backend: str = "numpy") -> dict[str, np.ndarray]:
    """Spikes ``x`` (T, n) into the population ``"input"``; every other population's spikes, (T + extra, n)."""
    source = net["input"].model
    steps, ids = np.nonzero(x)
    # an empty Input of a loaded graph: its spikes are the caller's (spike in step k: time (k + 1) dt)
    source.times, source.ids = (steps + 1) * net.dt, ids.astype(np.int64)
    monitors = {name: net.record(p, "spikes") for name, p in net.populations.items() if name != "input"}
    net.run((len(x) + extra) * net.dt, backend=backend)
    spikes = {}
    for name, monitor in monitors.items():
        spikes[name] = np.zeros((len(x) + extra, net[name].n), dtype=bool)
        spikes[name][monitor.steps, monitor.ids] = True
    return spikes


def input_spikes(steps: int, shape: tuple, p: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((steps, int(np.prod(shape)))) < p).astype(np.float32)


def snntorch_spikes(model, x: np.ndarray, shape: tuple) -> dict[str, np.ndarray]:
    """Each snnTorch Leaky layer's spikes (T, n) over the steps of ``x``, batch of one."""
    snntorch = pytest.importorskip("snntorch")
    from snntorch import utils

    recorded: dict[str, list] = {}

    def keep(name):
        return lambda module, inputs, output: recorded.setdefault(name, []).append(
            (output[0] if isinstance(output, tuple) else output).detach().numpy().reshape(-1).copy())

    hooks = [module.register_forward_hook(keep(name)) for name, module in model.named_modules()
             if isinstance(module, snntorch.Leaky)]
    utils.reset(model)
    with torch.no_grad():
        for t in range(len(x)):
            model(torch.from_numpy(x[t].reshape(1, *shape)))
    for hook in hooks:
        hook.remove()
    return {name: np.array(values, dtype=bool) for name, values in recorded.items()}


def leaky(shape, beta=0.9):
    snntorch = pytest.importorskip("snntorch")
    return snntorch.Leaky(beta=torch.full(shape, beta), threshold=torch.ones(shape), init_hidden=True,
                          reset_mechanism="zero")


class ConvPoolLinear(torch.nn.Module):
    """snnTorch: Conv2d(1, 4, 3) -> Leaky -> AvgPool2d(2) -> Flatten -> Linear(36, 5) -> Leaky, on 8x8 maps."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)
        self.lif1 = leaky((4, 6, 6))
        self.pool = torch.nn.AvgPool2d(2)
        self.flat = torch.nn.Flatten()
        self.fc = torch.nn.Linear(36, 5)
        self.lif2 = leaky((5,))

    def forward(self, x):
        return self.lif2(self.fc(self.flat(self.pool(self.lif1(self.conv(x))))))


class ConvPoolConv(torch.nn.Module):
    """snnTorch: Conv2d(2, 4, 3) -> Leaky -> AvgPool2d(2) -> Conv2d(4, 3, 3, padding=1) -> Leaky -> Flatten
    -> Linear(48, 6) -> Leaky, on 10x10 maps."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(2, 4, 3)
        self.lif1 = leaky((4, 8, 8))
        self.pool = torch.nn.AvgPool2d(2)
        self.conv2 = torch.nn.Conv2d(4, 3, 3, padding=1)
        self.lif2 = leaky((3, 4, 4))
        self.flat = torch.nn.Flatten()
        self.fc = torch.nn.Linear(48, 6)
        self.lif3 = leaky((6,))

    def forward(self, x):
        x = self.lif2(self.conv2(self.pool(self.lif1(self.conv1(x)))))
        return self.lif3(self.fc(self.flat(x)))


def exported(model_class, shape, seed, gain, fc_gain=1.0):
    pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch", reason="snnTorch's exporter needs nirtorch (pip install nirtorch)")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(seed)
    model = model_class()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim > 1:
                parameter.mul_(gain)
        model.fc.weight.mul_(fc_gain)
    # a batched sample with its batch dimension left out of the graph's types
    return model, export_to_nir(model, torch.zeros(1, *shape), ignore_dims=[0])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_snntorch_conv_pool_linear_export_runs_with_snntorchs_spikes(backend):
    shape = (1, 8, 8)
    model, graph = exported(ConvPoolLinear, shape, seed=0, gain=5.0, fc_gain=6.0)
    assert {"Conv2d", "AvgPool2d", "Flatten", "Affine"} <= {type(node).__name__ for node in graph.nodes.values()}
    net = rv.nir.load(graph, dt=1e-4)
    conv = next(p for p in net.projections if p.pre.name == "input")
    assert conv.convolution is not None and conv.convolution.out_shape == (4, 6, 6)
    assert conv.nbytes == 4 * 36 + 8 * 65  # the kernel once, a synapse count per source
    x = input_spikes(60, shape, 0.3, seed=1)
    expected = snntorch_spikes(model, x, shape)
    engine = run_engine(net, x, extra=2, backend=backend)
    assert expected["lif1"].sum() > 100 and expected["lif2"].sum() > 10
    np.testing.assert_array_equal(engine["lif1"][1:61], expected["lif1"])
    np.testing.assert_array_equal(engine["lif2"][2:62], expected["lif2"])
    report = rv.hardware.estimate(net, "loihi2")
    assert report.counts.synaptic_events == net.stats.synaptic_events > 0
    assert report.counts.projections[conv.name].max_fan_out == 4 * 9 and report.energy > 0


def test_snntorch_pooling_then_convolution_is_one_shared_convolution():
    shape = (2, 10, 10)
    model, graph = exported(ConvPoolConv, shape, seed=3, gain=4.0)
    net = rv.nir.load(graph, dt=1e-4)
    by_target = {p.post.name: p for p in net.projections if p.pre.name != "_bias_clock"}
    assert by_target["lif1"].convolution is not None
    composed = by_target["lif2"].convolution  # pool(2) then conv(3, padding 1): stride 2, 6x6 taps, padding 2
    assert composed is not None and composed.kernel_size == (6, 6) and composed.stride == (2, 2)
    assert by_target["lif3"].convolution is None  # pooling-free Flatten + Linear: explicit synapses
    x = input_spikes(50, shape, 0.3, seed=4)
    expected = snntorch_spikes(model, x, shape)
    engine = run_engine(net, x, extra=3)
    assert min(expected[name].sum() for name in ("lif1", "lif2", "lif3")) > 25
    for depth, name in enumerate(("lif1", "lif2", "lif3"), start=1):
        np.testing.assert_array_equal(engine[name][depth:depth + 50], expected[name], err_msg=name)
    assert rv.hardware.estimate(net, "loihi2").energy > 0


@pytest.mark.parametrize("geometry", [dict(size=2, stride=2, padding=1, dilation=1, height=8),
                                      dict(size=3, stride=1, padding=0, dilation=2, height=13),
                                      dict(size=2, stride=2, padding=2, dilation=1, height=6),
                                      dict(size=3, stride=3, padding=1, dilation=1, height=10)])
def test_pooling_then_convolution_composes_to_the_same_matrix(geometry):
    height = geometry["height"]
    pool = rv.connect.Conv2d(np.full((3, 1, 2, 2), 0.25), (3, height, height), stride=2, groups=3)
    kernel = np.random.default_rng(0).normal(size=(4, 3, geometry["size"], geometry["size"]))
    conv = rv.connect.Conv2d(kernel, pool.convolution.out_shape, stride=geometry["stride"],
                             padding=geometry["padding"], dilation=geometry["dilation"])
    composed = nir_io._pool_then_convolution(pool, conv)
    assert composed is not None
    product = nir_io._compose(nir_io._stage_matrix(("conv", pool), pool.convolution.n_pre),
                              nir_io._stage_matrix(("conv", conv), conv.convolution.n_pre), pool.convolution.n_pre)
    expected = np.zeros((conv.convolution.n_post, pool.convolution.n_pre))
    expected[product[0], product[1]] = product[2]
    rows, columns, values, _ = nir_io._stage_matrix(("conv", composed), pool.convolution.n_pre)
    matrix = np.zeros_like(expected)
    np.add.at(matrix, (rows, columns), values)
    np.testing.assert_allclose(matrix, expected, atol=1e-12)


def test_pooling_that_drops_rows_before_a_padded_convolution_stays_explicit():
    pool = rv.connect.Conv2d(np.ones((1, 1, 2, 2)), (1, 7, 7), stride=2, groups=1)
    conv = rv.connect.Conv2d(np.ones((1, 1, 3, 3)), pool.convolution.out_shape, padding=1)
    assert nir_io._pool_then_convolution(pool, conv) is None  # row 6 is pooled by none


def test_sum_pooling_and_scales_load_and_run_as_their_equations():
    kernel = np.random.default_rng(2).normal(0.6, 0.4, (2, 1, 2, 2))
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([1, 6, 6])}),
        "conv": nir.Conv2d(input_shape=(6, 6), weight=kernel, stride=1, padding=0, dilation=1, groups=1,
                           bias=np.array([0.1, -0.05])),
        "half": nir.Scale(scale=np.full(50, 0.5)),
        "a": nir.IF(r=np.full(50, 1000.0), v_threshold=np.full(50, 0.4), v_reset=np.zeros(50)),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0),
        "b": nir.Threshold(threshold=np.full(8, 1.5)),
        "output": nir.Output(output_type={"output": np.array([8])}),
    }, edges=[("input", "conv"), ("conv", "half"), ("half", "a"), ("a", "pool"), ("pool", "flat"), ("flat", "b"),
              ("b", "output")], type_check=False)
    net = rv.nir.load(graph, dt=1e-3)
    assert [p.convolution is not None for p in net.projections if p.pre.name != "_bias_clock"] == [True, True]
    x = input_spikes(40, (1, 6, 6), 0.35, seed=6)
    engine = run_engine(net, x, extra=2)
    # the equations: a integrates 0.5 (conv(x) + bias) from the first arrival and resets; b sums 2x2 windows
    v = np.zeros((2, 5, 5))
    a_spikes, b_spikes = [], []
    bias = np.array([0.1, -0.05])[:, None, None]
    for t in range(40):
        drive = torch.nn.functional.conv2d(torch.tensor(x[t].reshape(1, 1, 6, 6), dtype=torch.float64),
                                           torch.tensor(kernel))[0].numpy()
        v = v + 0.5 * (drive + bias)
        fired = v >= 0.4
        v[fired] = 0.0
        a_spikes.append(fired.ravel())
        pooled = fired[:, :4, :4].reshape(2, 2, 2, 2, 2).sum(axis=(2, 4))
        b_spikes.append(pooled.ravel() > 1.5)
    assert np.sum(a_spikes) > 50 and np.sum(b_spikes) > 5
    np.testing.assert_array_equal(engine["a"][1:41], np.array(a_spikes))
    np.testing.assert_array_equal(engine["b"][2:42], np.array(b_spikes))


def test_norse_conv_export_runs_with_norses_spikes():
    norse = pytest.importorskip("norse.torch", reason="needs norse (pip install --no-deps norse)")
    torch.manual_seed(5)
    model = norse.SequentialState(torch.nn.Conv2d(1, 4, 3), norse.LIFBoxCell(), torch.nn.Conv2d(4, 2, 3, stride=2),
                                  norse.LIFBoxCell())
    with torch.no_grad():
        for layer, gain in ((model[0], 8.0), (model[2], 40.0)):
            for parameter in layer.parameters():
                parameter.mul_(gain)
    graph = norse.to_nir(model, torch.zeros(1, 1, 9, 9))
    net = rv.nir.load(graph, dt=1e-3, convention="norse")
    assert all(p.convolution is not None for p in net.projections if p.pre.name != "_bias_clock")
    x = input_spikes(60, (1, 9, 9), 0.3, seed=7)
    recorded = []
    hook = model[1].register_forward_hook(lambda module, inputs, output: recorded.append(output[0].numpy().ravel()))
    state, out = None, []
    with torch.no_grad():
        for t in range(60):
            spikes, state = model(torch.from_numpy(x[t].reshape(1, 1, 9, 9)), state)
            out.append(spikes.numpy().ravel())
    hook.remove()
    expected_hidden, expected = np.array(recorded, dtype=bool), np.array(out, dtype=bool)
    engine = run_engine(net, x, extra=2)
    assert expected_hidden.sum() > 100 and expected.sum() > 10
    np.testing.assert_array_equal(engine["1"][1:61], expected_hidden)
    np.testing.assert_array_equal(engine["3"][2:62], expected)
    assert rv.hardware.estimate(net, "loihi2").energy > 0


def test_norse_modules_its_exporter_leaves_out_are_a_named_error():
    norse = pytest.importorskip("norse.torch", reason="needs norse (pip install --no-deps norse)")
    model = norse.SequentialState(torch.nn.Conv2d(1, 2, 3), norse.LIFBoxCell(), torch.nn.Flatten(),
                                  torch.nn.Linear(72, 3), norse.LIFBoxCell())
    graph = norse.to_nir(model, torch.zeros(1, 1, 8, 8))
    with pytest.raises(NIRError, match=r"NIR node '2' is None: the exporter did not convert that module \(Norse "
                                       r"1.1's to_nir writes None for torch.nn.Flatten"):
        rv.nir.load(graph, dt=1e-3, convention="norse")


def test_a_convolution_on_a_flat_input_is_a_named_error():
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([10])}),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "lif": nir.Threshold(threshold=np.ones(4)),
        "output": nir.Output(output_type={"output": np.array([4])}),
    }, edges=[("input", "pool"), ("pool", "lif"), ("lif", "output")], type_check=False)
    with pytest.raises(NIRError, match=r"'pool': a SumPool2d needs a \(C, H, W\) input, got shape \(10,\)"):
        rv.nir.load(graph, dt=1e-3)
