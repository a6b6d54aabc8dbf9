"""Implicit all-to-all projections: one weight, one delay, nothing stored per synapse."""

import time
import tracemalloc

import h5py
import numpy as np
import pytest

import ranvier as rv
import ranvier.hardware as hw
from ranvier.engine import storage
from ranvier.units import ms, mV

_LIF = rv.neurons.LIF(tau_m=5 * ms, v_rest=-49 * mV, v_th=-50 * mV, v_reset=-55 * mV, t_ref=2 * ms,
                      tau_syn={"exc": 5 * ms, "inh": 5 * ms})


def _pairs(n_pre: int, n_post: int, autapses: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every (pre, post) pair in CSR order, without j -> j unless ``autapses``."""
    pre, post = np.divmod(np.arange(n_pre * n_post), n_post)
    keep = autapses | (pre != post)
    return pre[keep], post[keep]


def _network(implicit: bool, autapses: bool, delay: float, seed: int = 5) -> rv.Network:
    """A self-driven LIF population with a recurrent and a feed-forward all-to-all projection.

    ``implicit=False`` declares the same synapses with ``FromArrays``, explicitly in CSR.
    """
    net = rv.Network(seed=seed)
    cells = net.population(_LIF, 24, name="cells", init={"v": rv.init.Uniform(-60 * mV, -50 * mV)})
    readout = net.population(_LIF, 9, name="readout")
    for pre, post, same_autapses, weight, receptor in ((cells, cells, autapses, 0.4 * mV, "exc"),
                                                       (cells, readout, True, -0.3 * mV, "inh")):
        rule = rv.connect.AllToAll(autapses=same_autapses) if implicit else \
            rv.connect.FromArrays(*_pairs(pre.n, post.n, same_autapses or pre is not post))
        net.connect(pre, post, rule, weight=weight, delay=delay, receptor=receptor)
    return net


def _run(net: rv.Network, backend: str, duration: float = 100 * ms) -> dict:
    spikes = {name: net.record(p, "spikes") for name, p in net.populations.items()}
    v = net.record(net["readout"], "v")
    net.run(duration, backend=backend)
    return {"spikes": {name: (m.steps.tolist(), m.ids.tolist()) for name, m in spikes.items()},
            "v": v.values.tobytes(), "events": dict(net.stats.synaptic_events_by_projection)}


def test_large_all_to_all_is_built_at_once_in_constant_memory():
    net = rv.Network(seed=1)
    cells = net.population(_LIF, 20000, name="cells")
    tracemalloc.start()
    start = time.perf_counter()
    projection = net.connect(cells, cells, rv.connect.AllToAll(), weight=0.1 * mV, receptor="exc")
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert projection.all_to_all and projection.width == 20000 and projection.autapses
    assert len(projection) == 20000 ** 2 and projection.nbytes == 4
    assert projection._weights.shape == (1,) and projection.weight_stride == 0 and projection.delay_steps == 1
    assert elapsed < 0.2 and peak < 1 << 20
    assert projection.weights.shape == (20000 ** 2,) and projection.delays.shape == (20000 ** 2,)  # broadcast views
    assert np.all(projection.out_degrees() == 20000) and np.all(projection.in_degrees() == 20000)


@pytest.mark.parametrize("autapses", [True, False])
def test_synapse_arrays_equal_the_explicit_projection(autapses):
    net = rv.Network(seed=2)
    cells = net.population(_LIF, 7, name="cells")
    implicit = net.connect(cells, cells, rv.connect.AllToAll(autapses=autapses), weight=0.5 * mV, delay=2 * ms,
                           receptor="exc")
    explicit = net.connect(cells, cells, rv.connect.FromArrays(*_pairs(7, 7, autapses)), weight=0.5 * mV,
                           delay=2 * ms, receptor="exc")
    assert implicit.all_to_all and implicit.autapses == autapses and not explicit.all_to_all
    assert len(implicit) == len(explicit) == (49 if autapses else 42)
    for name in ("row_ptr", "pre_ids", "post_ids", "weights", "delays"):
        ours, theirs = getattr(implicit, name), getattr(explicit, name)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), name
    assert np.array_equal(implicit.out_degrees(), explicit.out_degrees())
    assert np.array_equal(implicit.in_degrees(), explicit.in_degrees())
    assert implicit.nbytes == 4 < explicit.nbytes
    assert not implicit.post_ids.flags.writeable and not implicit.weights.flags.writeable


def test_only_one_weight_and_one_delay_without_plasticity_stay_implicit():
    net = rv.Network(seed=3)
    a = net.population(_LIF, 6, name="a")
    b = net.population(_LIF, 4, name="b")
    rule = rv.connect.AllToAll()
    assert net.connect(a, b, rule, weight=1 * mV, receptor="exc").all_to_all
    assert net.connect(a, b, rule, weight=np.float32(1e-3), delay=np.float64(2 * ms), receptor="exc").all_to_all
    assert not net.connect(a, b, rule, weight=rv.init.Normal(1 * mV, 0.1 * mV), receptor="exc").all_to_all
    assert not net.connect(a, b, rule, weight=np.full(24, 1 * mV), receptor="exc").all_to_all
    assert not net.connect(a, b, rule, weight=1 * mV, delay=rv.init.Uniform(1 * ms, 2 * ms), receptor="exc").all_to_all
    plastic = net.connect(a, b, rule, weight=1 * mV, receptor="exc", plasticity=rv.plasticity.STDP())
    assert not plastic.all_to_all and plastic.weight_stride == 1
    # autapses are only left out within one population
    assert net.connect(a, b, rv.connect.AllToAll(autapses=False), weight=1 * mV, receptor="exc").autapses


def test_set_weights_makes_the_synapses_explicit():
    net = rv.Network(seed=4)
    cells = net.population(_LIF, 5, name="cells")
    projection = net.connect(cells, cells, rv.connect.AllToAll(autapses=False), weight=1 * mV, receptor="exc")
    post_ids = projection.post_ids.copy()
    weights = np.arange(len(projection), dtype=np.float32) * 1e-4
    projection.set_weights(weights)
    assert not projection.all_to_all and projection.weight_stride == 1
    assert np.array_equal(projection.post_ids, post_ids) and np.array_equal(projection.weights, weights)
    with pytest.raises(rv.ProjectionError, match="20 weights"):
        projection.set_weights(np.zeros(3))


@pytest.mark.parametrize("autapses", [True, False])
@pytest.mark.parametrize("delay", [0.1 * ms, 0.2 * ms])
def test_spikes_equal_the_explicit_projection_on_numpy_and_numba(autapses, delay):
    reference = _run(_network(True, autapses, delay), "numpy")
    assert sum(len(ids) for _, ids in reference["spikes"].values()) > 50
    assert _run(_network(True, autapses, delay), "numba") == reference
    assert _run(_network(False, autapses, delay), "numba") == reference
    assert _run(_network(False, autapses, delay), "numpy") == reference


def test_spikes_equal_numpy_on_the_cuda_simulator(on_cuda_simulator):
    script = """
import json, sys
sys.path.insert(0, TESTS)
from test_all_to_all import _network, _run
results = []
for autapses in (True, False):
    reference = _run(_network(True, autapses, 0.2e-3), "numpy", 0.01)
    compiled = _run(_network(True, autapses, 0.2e-3), "cuda", 0.01)
    results.append([reference == compiled, sum(len(ids) for _, ids in reference["spikes"].values())])
print(json.dumps(results))
"""
    for same, spikes in on_cuda_simulator(script):
        assert spikes > 10 and same


@pytest.mark.parametrize("autapses", [True, False])
def test_save_and_load_keep_the_projection_implicit(tmp_path, autapses):
    net = _network(True, autapses, 0.2 * ms)
    net.run(20 * ms)
    net.save(tmp_path / "net.h5")
    with h5py.File(tmp_path / "net.h5") as file:
        assert "row_ptr" not in file["projections/0"] and "post_ids" not in file["projections/0"]
    loaded = rv.load(tmp_path / "net.h5")
    for saved, read in zip(net.projections, loaded.projections, strict=True):
        assert read.all_to_all and (read.width, read.autapses, read.delay_steps) == \
            (saved.width, saved.autapses, saved.delay_steps)
        assert read._weights.tobytes() == saved._weights.tobytes() and read.nbytes == 4
    assert _run(loaded, "numba", 30 * ms) == _run(net, "numba", 30 * ms)


def test_files_of_schema_one_with_explicit_projections_load(tmp_path):
    net = _network(False, False, 0.2 * ms)
    net.save(tmp_path / "old.h5")
    with h5py.File(tmp_path / "old.h5", "r+") as file:  # as version 1 wrote it
        file.attrs["schema_version"] = 1
        for group in file["projections"].values():
            del group.attrs["all_to_all"], group.attrs["autapses"]
    loaded = rv.load(tmp_path / "old.h5")
    for saved, read in zip(net.projections, loaded.projections, strict=True):
        assert not read.all_to_all and np.array_equal(read.post_ids, saved.post_ids)
    assert storage.SCHEMA_VERSION == 3


def test_a_file_giving_an_implicit_projection_many_weights_is_refused(tmp_path):
    net = _network(True, True, 0.2 * ms)
    net.save(tmp_path / "net.h5")
    with h5py.File(tmp_path / "net.h5", "r+") as file:
        del file["projections/0/weights"]
        file["projections/0/weights"] = np.ones(3, dtype=np.float32)
        storage._seal(file)  # the digest matches the edit: the declaration's checks must refuse it
    with pytest.raises(rv.StorageError, match="one weight, one delay"):
        rv.load(tmp_path / "net.h5")


@pytest.mark.parametrize("autapses", [True, False])
def test_hardware_counts_and_placement_equal_the_explicit_projection(autapses):
    reports = []
    for implicit in (True, False):
        net = _network(implicit, autapses, 0.2 * ms)
        net.run(20 * ms)
        counts = hw.count(net)
        reports.append((counts, hw.place(counts, hw.load_target("loihi2"))))
    (implicit, placed), (explicit, reference) = reports
    for ours, theirs in zip(implicit.projections.values(), explicit.projections.values(), strict=True):
        assert (ours.synapses, ours.events, ours.max_fan_in, ours.max_fan_out) == \
            (theirs.synapses, theirs.events, theirs.max_fan_in, theirs.max_fan_out)
    assert placed.summary() == reference.summary()


def _input_network(implicit: bool) -> rv.Network:
    """Spike input -> LIF layer (all to all) -> itself (without autapses) and a readout."""
    net = rv.Network(dt=1 * ms, seed=6)
    source = net.population(rv.neurons.SpikeSource([], [], n=8), name="input")
    lif = rv.neurons.LIF(tau_m=10 * ms, v_rest=0.0, v_th=10 * mV, v_reset=0.0, t_ref=0.0, tau_syn={"in": 5 * ms})
    hidden = net.population(lif, n=10, name="hidden")
    out = net.population(lif, n=3, name="out")
    for pre, post, autapses, weight in ((source, hidden, True, 4 * mV), (hidden, hidden, False, -1 * mV),
                                        (hidden, out, True, 3 * mV)):
        rule = rv.connect.AllToAll(autapses=autapses) if implicit else \
            rv.connect.FromArrays(*_pairs(pre.n, post.n, autapses))
        net.connect(pre, post, rule, weight=weight, delay=2 * ms)
    return net


def test_nir_export_gives_the_explicit_weight_matrices():
    pytest.importorskip("nir")
    implicit, explicit = (rv.nir.to_nir(_input_network(flag)) for flag in (True, False))
    matrices = [name for name in implicit.nodes if name.startswith("w")]
    assert len(matrices) == 3
    for name in matrices:
        assert np.array_equal(implicit.nodes[name].weight, explicit.nodes[name].weight)


def test_trained_weights_written_back_make_the_synapses_explicit():
    torch = pytest.importorskip("torch")
    from ranvier.train import SpikingModule, simulate

    net = _input_network(True)
    x = (np.random.default_rng(2).random((40, 2, 8)) < 0.3).astype(np.float32)
    out = simulate(net, x, "input")["out"]
    assert out.sum() > 5 and np.array_equal(out, simulate(_input_network(False), x, "input")["out"])
    module = SpikingModule(net, "input")
    with torch.no_grad():
        for weight in module.weights:
            weight.mul_(2.0)
    module.write_back()
    assert not any(p.all_to_all for p in net.projections)
    np.testing.assert_allclose(net.projections[0].weights, 8 * mV, rtol=1e-6)
