"""Convolutions (``connect.Conv2d``): a kernel stored once, each spike's targets computed by every backend."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ranvier as rv
from ranvier.engine.backends import numba_kernels
from ranvier.engine.connectivity import Convolution
from ranvier.errors import ProjectionError
from ranvier.neurons import LIF

#: (C, H, W, C_out, kernel size, stride, padding, dilation, groups)
GEOMETRIES = [(1, 8, 8, 4, 3, 1, 0, 1, 1), (4, 7, 9, 6, 3, 2, 1, 1, 2), (3, 6, 6, 3, 2, 2, 0, 1, 3),
              (2, 9, 8, 4, 3, 1, 2, 2, 1), (2, 5, 5, 2, (2, 3), (1, 2), (1, 0), 1, 1)]


def rule(geometry, seed=0) -> rv.connect.Conv2d:
    channels, height, width, out_channels, size, stride, padding, dilation, groups = geometry
    size = (size, size) if isinstance(size, int) else size
    kernel = np.random.default_rng(seed).normal(0.0, 1.0, (out_channels, channels // groups, *size))
    return rv.connect.Conv2d(kernel, (channels, height, width), stride=stride, padding=padding, dilation=dilation,
                             groups=groups)


def dense_reference(conv: rv.connect.Conv2d) -> np.ndarray:
    """The convolution's matrix (targets, sources), summed output by output from its definition."""
    channels, height, width = conv.input_shape
    out_channels, out_height, out_width = conv.convolution.out_shape
    in_group, out_group = channels // conv.groups, out_channels // conv.groups
    padding = conv.convolution.padding
    matrix = np.zeros((out_channels * out_height * out_width, channels * height * width))
    for o in range(out_channels):
        for u in range(out_height):
            for v in range(out_width):
                for local in range(in_group):
                    c = (o // out_group) * in_group + local
                    for i in range(conv.kernel.shape[2]):
                        for j in range(conv.kernel.shape[3]):
                            y = u * conv.stride[0] - padding[0] + i * conv.dilation[0]
                            x = v * conv.stride[1] - padding[1] + j * conv.dilation[1]
                            if 0 <= y < height and 0 <= x < width:
                                matrix[(o * out_height + u) * out_width + v, (c * height + y) * width + x] += \
                                    conv.kernel[o, local, i, j]
    return matrix


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_the_explicit_synapses_are_the_convolution(geometry):
    conv = rule(geometry)
    row_ptr, post_ids, kernel_index = conv.convolution.synapses()
    pre_ids = np.repeat(np.arange(conv.convolution.n_pre), np.diff(row_ptr))
    matrix = np.zeros_like(dense_reference(conv))
    matrix[post_ids, pre_ids] = conv.kernel.ravel()[kernel_index]
    np.testing.assert_array_equal(matrix, dense_reference(conv))
    assert len(set(zip(pre_ids.tolist(), post_ids.tolist(), strict=True))) == len(post_ids)
    np.testing.assert_array_equal(np.diff(row_ptr), conv.convolution.out_degrees())
    np.testing.assert_array_equal(np.bincount(post_ids, minlength=conv.convolution.n_post),
                                  conv.convolution.in_degrees())


def test_same_padding_and_output_shapes_follow_torch():
    torch = pytest.importorskip("torch")
    for size, dilation in ((3, 1), (4, 1), (2, 2)):
        kernel = np.ones((2, 1, size, size))
        conv = rv.connect.Conv2d(kernel, (1, 7, 6), padding="same", dilation=dilation)
        out = torch.nn.functional.conv2d(torch.eye(42, dtype=torch.float64).reshape(42, 1, 7, 6),
                                         torch.tensor(kernel), padding="same", dilation=dilation)
        assert tuple(out.shape[1:]) == conv.convolution.out_shape
        np.testing.assert_array_equal(out.reshape(42, -1).T.numpy(), dense_reference(conv))


def build(geometry, explicit: bool, rate=300.0, seed=2, delay=0.2e-3, precision="single"):
    """Poisson spikes through a convolution (or its explicit synapses) into LIF neurons, and the map onto itself."""
    conv = rule(geometry, seed=seed)
    net = rv.Network(dt=1e-4, seed=seed, precision=precision)
    source = net.population(rv.neurons.PoissonSource(rate), conv.convolution.n_pre, name="source")
    cells = net.population(LIF(tau_m=10e-3, v_rest=0.0, v_th=0.1, v_reset=0.0, t_ref=1e-3, tau_syn={"in": 2e-3}),
                           conv.convolution.n_post, name="cells")
    if explicit:
        synapses = conv.build(source.n, cells.n, None, False, "x")
        pre_ids = np.repeat(np.arange(source.n), np.diff(synapses.row_ptr))
        net.connect(source, cells, rv.connect.FromArrays(pre_ids, synapses.post_ids, weight=synapses.weight),
                    delay=delay)
    else:
        net.connect(source, cells, conv, delay=delay)
    net.record(cells, "spikes")
    net.record(cells, "v", ids=np.arange(0, cells.n, 3))
    return net


def outcome(net):
    spikes = net.spike_monitors[0]
    return (spikes.steps.tolist(), spikes.ids.tolist(), net.state_monitors[0].values.tobytes(),
            dict(net.stats.synaptic_events_by_projection))


@pytest.mark.parametrize("geometry", GEOMETRIES[:4])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_convolution_runs_exactly_as_its_explicit_synapses(geometry, backend):
    shared, explicit = build(geometry, explicit=False), build(geometry, explicit=True)
    projection = shared.projections[0]
    assert projection.convolution is not None and explicit.projections[0].convolution is None
    assert len(projection) == len(explicit.projections[0])
    # the kernel once and a synapse count per source: nothing per synapse
    assert projection.nbytes == 4 * np.prod(projection.convolution.kernel_shape) + 8 * (projection.pre.n + 1)
    np.testing.assert_array_equal(projection.post_ids, explicit.projections[0].post_ids)
    np.testing.assert_array_equal(projection.pre_ids, explicit.projections[0].pre_ids)
    np.testing.assert_array_equal(projection.weights, explicit.projections[0].weights)
    np.testing.assert_array_equal(projection.in_degrees(), explicit.projections[0].in_degrees())
    shared.run(0.02, backend=backend)
    explicit.run(0.02, backend=backend)
    result = outcome(shared)
    assert len(result[1]) > 50
    expected = outcome(explicit)
    assert result[:3] == expected[:3]
    assert list(result[3].values()) == list(expected[3].values())


@pytest.mark.parametrize("precision", ["single", "double"])
def test_numba_equals_numpy_and_the_counts_are_the_fan_out(precision):
    runs = {}
    for backend in ("numpy", "numba"):
        net = build(GEOMETRIES[1], explicit=False, precision=precision)
        net.run(0.02, backend=backend)
        runs[backend] = outcome(net)
    assert runs["numpy"] == runs["numba"]
    net = build(GEOMETRIES[1], explicit=False, precision=precision)
    sources = net.record(net["source"], "spikes")
    net.run(0.01)
    fan_out = net.projections[0].out_degrees()
    assert net.stats.synaptic_events == int(fan_out[sources.ids].sum()) > 0


def test_block_delivery_of_a_convolution_equals_its_serial_delivery():
    conv = rule(GEOMETRIES[1])
    geometry = conv.convolution.geometry()
    row_ptr = conv.convolution.row_ptr()
    kernel = conv.kernel.ravel().astype(np.float32)
    rng = np.random.default_rng(3)
    spikes = rng.integers(0, conv.convolution.n_pre, 80).astype(np.int32)
    steps = np.sort(rng.integers(0, 3, 80)).astype(np.int64)
    n_post = conv.convolution.n_post
    serial = np.zeros((4, 2, n_post), dtype=np.float32)
    events = numba_kernels.deliver_convolution(spikes, steps, 0, 80, row_ptr, geometry, kernel, 1, serial, 1, 0,
                                               n_post)
    assert events == int(np.diff(row_ptr)[spikes].sum())
    for blocks in (2, 3, 7):
        blocked = np.zeros_like(serial)
        for block in range(blocks):
            low = numba_kernels._block_start.py_func(block, blocks, n_post)
            high = numba_kernels._block_start.py_func(block + 1, blocks, n_post)
            numba_kernels.deliver_convolution(spikes, steps, 0, 80, row_ptr, geometry, kernel, 1, blocked, 1, low,
                                              high)
        np.testing.assert_array_equal(blocked, serial)


PARALLEL = """
import json, sys
sys.path.insert(0, TESTS)
import numba
from ranvier.engine.backends import numba_backend
numba_backend.PARALLEL_MIN_SYNAPSES = 0
numba_backend.PARALLEL_MIN_EVENTS = 0
from test_connectivity_conv import GEOMETRIES, build, outcome
net = build(GEOMETRIES[1], explicit=False)
net.run(0.02, backend="numba")
result = outcome(net)
print(json.dumps({"parallel": numba_backend._parallel_delivery(net._simulation.lowered), "steps": result[0],
                  "ids": result[1], "v": result[2].hex(), "events": list(result[3].values())}))
"""


def test_parallel_delivery_on_two_threads_equals_numpy():
    reference = build(GEOMETRIES[1], explicit=False)
    reference.run(0.02, backend="numpy")
    expected = outcome(reference)
    script = PARALLEL.replace("TESTS", repr(str(Path(__file__).parent)))
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "NUMBA_NUM_THREADS": "2"},
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["parallel"]
    assert (result["steps"], result["ids"], bytes.fromhex(result["v"]), result["events"]) == \
        (expected[0], expected[1], expected[2], list(expected[3].values()))


CUDA = """
import json, sys
sys.path.insert(0, TESTS)
from test_connectivity_conv import GEOMETRIES, build, outcome
runs = []
for backend in ("numpy", "cuda"):
    net = build(GEOMETRIES[BACKEND_GEOMETRY], explicit=False, rate=150.0)
    net.run(0.004, backend=backend)
    result = outcome(net)
    runs.append([result[0], result[1], result[2].hex(), list(result[3].values())])
print(json.dumps({"same": runs[0] == runs[1], "spikes": len(runs[0][1]), "events": runs[0][3]}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("geometry", [1, 2])
def test_cuda_delivers_a_convolution_as_numpy_on_the_simulator(geometry, on_cuda_simulator):
    result = on_cuda_simulator(CUDA.replace("BACKEND_GEOMETRY", str(geometry)))
    assert result["events"][0] > 50
    assert result["same"]


def test_plasticity_or_per_synapse_delays_make_the_synapses_explicit():
    conv = rule(GEOMETRIES[0])
    net = rv.Network(dt=1e-4, seed=1)
    a = net.population(rv.neurons.PoissonSource(100.0), 64, name="a")
    b = net.population(LIF(tau_syn={"in": 0.0}), 144, name="b")
    delayed = net.connect(a, b, conv, delay=rv.init.Uniform(1e-4, 1e-3))
    assert delayed.convolution is None and len(delayed) == 1296
    shared = net.connect(a, b, conv)
    assert shared.convolution is not None
    shared.set_delays(np.full(len(shared), 3e-4))
    assert shared.convolution is None and np.all(shared.delays == pytest.approx(3e-4))
    # the same synapses (the per-synapse delays' rows are in order of delay)
    def pairs(projection):
        order = np.lexsort((projection.post_ids, projection.pre_ids))
        return projection.pre_ids[order], projection.post_ids[order]
    for made, expected in zip(pairs(shared), pairs(delayed), strict=True):
        np.testing.assert_array_equal(made, expected)


def test_bad_convolutions_are_named_errors():
    kernel = np.ones((4, 1, 3, 3))
    net = rv.Network(dt=1e-4)
    a = net.population(rv.neurons.PoissonSource(10.0), 64, name="a")
    b = net.population(LIF(tau_syn={"in": 0.0}), 100, name="b")
    with pytest.raises(ProjectionError, match=r"Conv2d maps \(1, 8, 8\) = 64 sources onto \(4, 6, 6\) = 144 "
                                              r"targets, the populations have 64 -> 100"):
        net.connect(a, b, rv.connect.Conv2d(kernel, (1, 8, 8)))
    with pytest.raises(ProjectionError, match="weights are its kernel"):
        net.connect(a, b, rv.connect.Conv2d(kernel, (1, 8, 8)), weight=2.0)
    with pytest.raises(ProjectionError, match="groups=2 must divide"):
        rv.connect.Conv2d(kernel, (1, 8, 8), groups=2)
    with pytest.raises(ProjectionError, match="input_shape must be three positive integers"):
        rv.connect.Conv2d(kernel, (8, 8))
    with pytest.raises(ProjectionError, match="does not fit"):
        rv.connect.Conv2d(np.ones((1, 1, 5, 5)), (1, 3, 3))
    with pytest.raises(ProjectionError, match="stride must be at least 1"):
        rv.connect.Conv2d(kernel, (1, 8, 8), stride=0)
    with pytest.raises(ProjectionError, match="padding='same' needs stride 1"):
        rv.connect.Conv2d(kernel, (1, 8, 8), stride=2, padding="same")
    with pytest.raises(ProjectionError, match="finite"):
        rv.connect.Conv2d(np.full((1, 1, 2, 2), np.nan), (1, 4, 4))


def test_hardware_estimate_counts_the_effective_fan_out():
    shared, explicit = build(GEOMETRIES[0], explicit=False), build(GEOMETRIES[0], explicit=True)
    shared.run(0.01)
    explicit.run(0.01)
    reports = [rv.hardware.estimate(net, "loihi2") for net in (shared, explicit)]
    assert reports[0].counts.synaptic_events == reports[1].counts.synaptic_events > 0
    assert reports[0].counts.synapses == reports[1].counts.synapses == 1296
    assert reports[0].energy == pytest.approx(reports[1].energy)



def test_a_saved_convolution_loads_and_continues_with_the_same_spikes(tmp_path):
    whole = build(GEOMETRIES[1], explicit=False)
    whole.run(0.02)
    first = build(GEOMETRIES[1], explicit=False)
    first.run(0.01)
    first.save(tmp_path / "conv.h5")
    loaded = rv.load(tmp_path / "conv.h5")
    assert loaded.projections[0].convolution == first.projections[0].convolution
    np.testing.assert_array_equal(loaded.projections[0].weights, first.projections[0].weights)
    loaded.run(0.01)
    assert outcome(loaded)[:2] == outcome(whole)[:2] and outcome(loaded)[3] == outcome(whole)[3]


def test_a_geometry_that_makes_no_convolution_is_a_named_error():
    geometry = rule(GEOMETRIES[1]).convolution.geometry()
    assert Convolution.from_geometry(geometry) == rule(GEOMETRIES[1]).convolution
    broken = geometry.copy()
    broken[8] = 0  # stride_y
    with pytest.raises(ProjectionError, match="stride_y out of range"):
        Convolution.from_geometry(broken)
    with pytest.raises(ProjectionError, match="15 integers"):
        Convolution.from_geometry(geometry[:-1])
