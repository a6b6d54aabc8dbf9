"""Array steps (CfC, LTC, ELM, a user's matrix model): traced once, compiled, run inside the numba backend's loop."""

import warnings

import numpy as np
import pytest
import torch
from ncps.torch import LTC as NcpsLTC
from ncps.torch import CfC as NcpsCfC
from ncps.wirings import AutoNCP
from numba import njit

import ranvier as rv
from ranvier.engine import model as model_language
from ranvier.engine.array_trace import UntraceableError, trace
from ranvier.engine.backends import numba_backend
from ranvier.engine.backends.array_program import CompiledStep, view_address
from ranvier.engine.model import ArrayStep, ValueModel
from ranvier.errors import RanvierWarning
from ranvier.units import ms

# A compiled step sums each matrix product in ascending order where numpy's BLAS sums in blocks,
# and takes tanh and exp from the model language where numpy has its own SIMD versions: each
# operation agrees to a few units in the last place, so a step's outputs (of order 1) agree to
# well within 1e-13, not bit for bit.
STEP_TOLERANCE = 1e-13


def _cfc(**options):
    torch.manual_seed(0)
    return rv.neurons.CfC.from_ncps(NcpsCfC(6, options.pop("units", 16), **options))


def _numpy_and_compiled(step, state, inputs):
    """A step's outputs in numpy and from its compiled trace, on the same arrays."""
    arrays = step.gather(state, inputs)
    return step.function(np, *arrays), CompiledStep(trace(step.function, *arrays))(*arrays)


@pytest.mark.parametrize("options", [{}, {"mode": "no_gate"}, {"mode": "pure"}, {"proj_size": 4},
                                     {"units": AutoNCP(12, 3)}, {"backbone_layers": 2}])
@pytest.mark.parametrize("time_unit", [None, 2e-3])
def test_traced_cfc_step_matches_its_numpy_step(options, time_unit):
    model = _cfc(**options)
    model.time_unit = time_unit
    step = model.array_step(model.state_size, 1e-3)
    rng = np.random.default_rng(1)
    state = rng.normal(size=(2, model.state_size))
    inputs = rng.normal(size=(1, 6))
    expected, got = _numpy_and_compiled(step, state, inputs)
    assert len(got) == 2 and np.abs(expected[1]).max() > 0.05
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=STEP_TOLERANCE)


def test_traced_elm_step_matches_its_numpy_step():
    model = rv.neurons.ELM(n_in=3, n_out=2, n_memory=8, seed=4)
    neurons = 5
    step = model.array_step(neurons, 1e-3)
    rng = np.random.default_rng(2)
    state = rng.normal(size=(len(model.state_names), neurons))
    inputs = rng.normal(size=(1, neurons * 3))
    arrays = step.gather(state, inputs)
    expected = step.function(np, *arrays)
    got = CompiledStep(trace(step.function, *arrays))(*arrays)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=STEP_TOLERANCE)


def test_a_compiled_step_refuses_inputs_of_another_shape():
    model = _cfc()
    step = model.array_step(16, 1e-3)
    arrays = step.gather(np.zeros((2, 16)), np.zeros((1, 6)))
    compiled = CompiledStep(trace(step.function, *arrays))
    with pytest.raises(ValueError, match=r"input 0 of a compiled array step has shape \(1, 5\), traced as \(1, 6\)"):
        compiled(np.zeros((1, 5)), arrays[1])


@pytest.mark.parametrize("units", [8, AutoNCP(10, 3)])
@pytest.mark.parametrize("time_unit", [None, 2e-3])
def test_traced_ltc_step_matches_its_numpy_step(units, time_unit):
    # LTC's synapses are three-dimensional (post, batch, pre): broadcasting, a batched matrix product,
    # integer indexing, .T and reshape are all traced
    torch.manual_seed(0)
    model = rv.neurons.LTC.from_ncps(NcpsLTC(4, units))
    model.time_unit = time_unit
    step = model.array_step(model.state_size, 1e-3)
    rng = np.random.default_rng(3)
    state = rng.normal(size=(2, model.state_size))
    inputs = rng.normal(size=(1, 4))
    expected, got = _numpy_and_compiled(step, state, inputs)
    assert np.abs(expected[1] - state[0:1]).max() > 0.01
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=STEP_TOLERANCE)


def test_what_the_tracer_does_not_record_raises_untraceable_error():
    x = np.ones((2, 3))
    with pytest.raises(UntraceableError, match="xp.cos is not traced"):
        trace(lambda xp, a: xp.cos(a), x)
    with pytest.raises(UntraceableError, match="numpy's add.__call__ on a traced array is not traced"):
        trace(lambda xp, a: np.add(a, 1.0, out=np.empty((2, 3))), x)
    with pytest.raises(UntraceableError, match="only slices, integers and None"):
        trace(lambda xp, a: a[np.array([0, 1])], x)
    with pytest.raises(UntraceableError, match="does not depend on its inputs"):
        trace(lambda xp, a: np.zeros((2, 3)), x)


def test_the_model_languages_tanh_compiled_in_a_loop_is_numpys_bit_for_bit():
    @njit(error_model="numpy")
    def tanh_all(x, out):
        for i in range(x.shape[0]):
            out[i] = model_language.tanh(x[i])

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=2000) * scale for scale in (1e-8, 1e-3, 0.3, 1, 5, 19.9, 20.1, 1e3)]
                       + [np.array([0.0, -0.0, 20.0, -20.0, np.inf, -np.inf, np.nan, 5e-324, 1e308])])
    out = np.empty_like(x)
    tanh_all(x, out)
    with np.errstate(over="ignore"):
        expected = model_language.tanh(x)
    np.testing.assert_array_equal(out.view(np.int64), expected.view(np.int64))


class _Rotation(ValueModel):
    """A user's matrix model: ``y <- tanh(W x + b) + cos(y)`` optionally, to test what is not traced."""

    def __init__(self, width, traceable=True):
        super().__init__()
        rng = np.random.default_rng(3)
        self.weights = rng.normal(size=(width, width)) / width
        self.traceable = traceable

    @property
    def state_names(self):
        return ("output",)

    def array_step(self, n, dt):
        weights = self.weights
        if self.traceable:
            def function(xp, x, y):
                return xp.tanh(x @ weights.T + 0.1) + 0.5 * y
        else:
            def function(xp, x, y):
                return xp.cos(x @ weights.T) + 0.5 * y
        return ArrayStep(function, _rotation_gather, _rotation_destinations)

    def advance(self, state, inputs, params, dt):
        self.array_step(state.shape[1], dt).run(state, inputs["input"])


def _rotation_gather(state, inputs):
    return inputs[0:1], state[0:1]


def _rotation_destinations(state, output):
    return (state[0:1],)


def _mixed_network(liquid_model, elm_model):
    net = rv.Network(dt=1 * ms, seed=3)
    source = net.population(rv.neurons.PoissonSource(rate=150.0), n=6, name="source")
    cfc = net.population(liquid_model, name="cfc", dt=2 * ms)
    elm = net.population(elm_model, n=2, name="elm")
    lif = net.population(rv.neurons.LIF(), n=4, name="lif")
    torch.manual_seed(1)
    ltc = net.population(rv.neurons.LTC.from_ncps(NcpsLTC(6, 5)), name="ltc", dt=3 * ms)
    net.connect(source, ltc, rv.connect.OneToOne(), weight=0.5, receptor="input")
    net.connect(source, cfc, rv.connect.OneToOne(), weight=1.0, receptor="input")
    net.connect(source, elm, rv.connect.FixedInDegree(2), weight=0.7, receptor="input", delay=2 * ms)
    net.connect(cfc, lif, rv.connect.AllToAll(), weight=2.0, receptor="exc")
    monitors = [net.record(cfc, "output"), net.record(elm, "output"), net.record(lif, "v"), net.record(ltc, "output")]
    return net, monitors


def test_array_steps_run_inside_the_numba_loop_and_match_numpy(monkeypatch):
    calls = []
    advance = numba_backend.NumbaRunner.advance

    def counted(self, start, stop):
        calls.append((start, stop))
        return advance(self, start, stop)

    monkeypatch.setattr(numba_backend.NumbaRunner, "advance", counted)
    results = {}
    for backend in ("numpy", "numba"):
        net, monitors = _mixed_network(_cfc(), rv.neurons.ELM(n_in=6, n_out=2, n_memory=5, seed=1))
        net.run(60 * ms, backend=backend)
        results[backend] = [m.values for m in monitors]
        assert net.stats.neuron_updates_by_population["cfc"] == 30 * 16
    # the whole run is one stretch of compiled code: no window returns to Python
    assert calls == [(0, 60)]
    assert np.abs(results["numpy"][0]).max() > 0.1 and np.abs(results["numpy"][1]).max() > 0
    assert np.ptp(results["numpy"][3]) > 0.01
    for a, b in zip(results["numpy"], results["numba"], strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-11)


def test_new_weights_between_runs_are_taken_up_on_numba():
    outputs = {}
    for backend in ("numpy", "numba"):
        model = _cfc()
        net, monitors = _mixed_network(model, rv.neurons.ELM(n_in=6, n_out=2, n_memory=5, seed=1))
        net.run(20 * ms, backend=backend)
        layer = model.weights.layers[0]
        model.weights = type(model.weights)(layers=(type(layer)(**{**vars(layer), "head_bias": layer.head_bias + 1}),))
        net.run(20 * ms, backend=backend)
        outputs[backend] = monitors[0].values
    np.testing.assert_allclose(outputs["numba"], outputs["numpy"], rtol=0, atol=1e-11)
    assert not np.allclose(outputs["numpy"][15], outputs["numpy"][5], atol=0.05)


def test_a_users_array_step_runs_compiled_and_an_untraceable_one_warns_and_runs_in_numpy():
    for traceable in (True, False):
        results = []
        for backend in ("numpy", "numba"):
            net = rv.Network(dt=1 * ms, seed=2)
            source = net.population(rv.neurons.PoissonSource(rate=200.0), n=4, name="source")
            model = _Rotation(4, traceable)
            rotation = net.population(model, n=4, name="rotation")
            net.connect(source, rotation, rv.connect.OneToOne(), weight=1.0, receptor="input")
            monitor = net.record(rotation, "output")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                net.run(30 * ms, backend=backend)
            messages = [str(w.message) for w in caught if issubclass(w.category, RanvierWarning)]
            expects_warning = backend == "numba" and not traceable
            assert any("'rotation'" in m and "xp.cos is not traced" in m for m in messages) == expects_warning
            results.append(monitor.values)
        assert np.abs(results[0]).max() > 0.1
        if traceable:
            np.testing.assert_allclose(results[1], results[0], rtol=0, atol=1e-12)
        else:
            np.testing.assert_array_equal(results[1], results[0])


_ON_CUDA_SIMULATOR = """
import json, sys
import numpy as np
sys.path.insert(0, TESTS)
import ranvier as rv
from test_array_steps import _cfc, _mixed_network
from ranvier.units import ms

runs = {}
for backend in ("numpy", "cuda"):
    net, monitors = _mixed_network(_cfc(), rv.neurons.ELM(n_in=6, n_out=2, n_memory=5, seed=1))
    net.run(20 * ms, backend=backend)
    net.run(10 * ms, backend=backend)
    runs[backend] = [m.values for m in monitors]
    updated = sorted(v.name for v in net._simulation.lowered.values)
print(json.dumps({"on_device": updated,
                  "differences": [float(np.abs(a - b).max()) for a, b in zip(*runs.values())],
                  "ranges": [float(np.ptp(a)) for a in runs["numpy"]]}))
"""


@pytest.mark.slow
def test_array_steps_run_as_device_kernels_and_match_numpy_on_the_cuda_simulator(on_cuda_simulator):
    """CfC, ELM and LTC beside LIF: each array step runs as its one-block kernel on the device."""
    result = on_cuda_simulator(_ON_CUDA_SIMULATOR)
    assert result["on_device"] == ["cfc", "elm", "ltc"]
    assert min(result["ranges"]) > 0.01
    assert max(result["differences"]) <= 1e-11


def test_view_addresses_give_each_views_entries_in_its_flat_base():
    state = np.arange(15.0).reshape(3, 5)
    for view in (state[1:2, 0:3], state.T, state[0].reshape(5, 1), state[2:0:-1, ::2]):
        offset, strides = view_address(view, state)
        index = np.indices(view.shape).reshape(view.ndim, -1)
        flat = offset + np.tensordot(np.array(strides), index, axes=1)
        np.testing.assert_array_equal(state.ravel()[flat], view.ravel())
    with pytest.raises(ValueError, match=r"shape \(3,\) is not a view of the array of shape \(3, 5\)"):
        view_address(np.zeros(3), state)
    with pytest.raises(ValueError, match="not a view"):
        view_address(state[0] * 1.0, state)
