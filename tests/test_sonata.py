"""SONATA: ranvier's spike files open in the reference reader (libsonata), and bmtk-built point
networks (nodes.h5 / edges.h5 with their types CSV files, written here in bmtk's layout) load."""

import json

import h5py
import numpy as np
import pytest

import ranvier as rv
from ranvier import sonata
from ranvier.engine import storage
from ranvier.errors import InputError, StorageError
from ranvier.units import Hz, ms, mV

try:
    import libsonata
except ImportError:  # the [test] extra installs it (a binary wheel); without it these tests skip
    libsonata = None

needs_libsonata = pytest.mark.skipif(libsonata is None, reason="libsonata is not installed (pip install libsonata)")


def _network() -> rv.Network:
    net = rv.networks.cuba(n=200, seed=3)
    noise = net.population(rv.neurons.PoissonSource(rate=40 * Hz), n=30, name="noise")
    net.connect(noise, net["exc"], rv.connect.Bernoulli(p=0.2), weight=0.5 * mV, receptor="exc")
    net.record(net["exc"], "spikes")
    net.record(net["inh"], "spikes", ids=range(0, 40, 3))
    net.record(net["exc"], "spikes", ids=[1, 5, 9, 60])  # a second monitor of exc: /spikes/exc#2
    net.record(noise, "spikes")
    return net


def _assert_reads_like(path, names, monitors, sorting="by_time"):
    reader = libsonata.SpikeReader(str(path))
    assert sorted(reader.get_population_names()) == sorted(names)
    for name, monitor in zip(names, monitors, strict=True):
        population = reader[name]
        assert population.sorting == sorting
        assert population.time_units == "ms"
        data = population.get_dict()
        expected_times, expected_ids = monitor.times * 1e3, monitor.ids
        if sorting == "by_id":
            order = np.lexsort((expected_times, expected_ids))
            expected_times, expected_ids = expected_times[order], expected_ids[order]
        np.testing.assert_array_equal(data["node_ids"], expected_ids)
        np.testing.assert_allclose(data["timestamps"], expected_times, rtol=1e-12)
        assert len(population.get()) == monitor.num_spikes
        if monitor.num_spikes:
            assert population.times == pytest.approx((expected_times.min(), expected_times.max()))


@needs_libsonata
def test_saved_spikes_open_in_libsonata(tmp_path):
    net = _network()
    net.run(50 * ms, backend="numpy")
    assert all(m.num_spikes for m in net.spike_monitors)
    net.save(tmp_path / "run.h5")
    _assert_reads_like(tmp_path / "run.h5", ["exc", "inh", "exc#2", "noise"], net.spike_monitors)
    # a time window, through the reader's sorted path
    exc = libsonata.SpikeReader(str(tmp_path / "run.h5"))["exc"]
    window = exc.get(tstart=10.0, tstop=20.0)
    times = net.spike_monitors[0].times * 1e3
    assert len(window) == np.count_nonzero((times >= 10.0 - 1e-9) & (times <= 20.0 + 1e-9))
    # and ranvier still reads its own file
    loaded = rv.load(tmp_path / "run.h5")
    for a, b in zip(net.spike_monitors, loaded.spike_monitors, strict=True):
        np.testing.assert_array_equal(a.steps, b.steps)
        np.testing.assert_array_equal(a.ids, b.ids)


@needs_libsonata
def test_checkpoint_spikes_open_in_libsonata(tmp_path):
    net = _network()
    net.run(40 * ms, checkpoint=tmp_path / "ck.h5", every=10 * ms, backend="numpy")
    _assert_reads_like(tmp_path / "ck.h5", ["exc", "inh", "exc#2", "noise"], net.spike_monitors)
    loaded = rv.load(tmp_path / "ck.h5")
    loaded.run(10 * ms, checkpoint=tmp_path / "ck.h5", backend="numpy")
    _assert_reads_like(tmp_path / "ck.h5", ["exc", "inh", "exc#2", "noise"], loaded.spike_monitors)


@needs_libsonata
@pytest.mark.parametrize("sorting", ["by_time", "by_id", "none"])
def test_exported_spike_files_open_in_libsonata(tmp_path, sorting):
    net = _network()
    net.run(30 * ms, backend="numpy")
    exc, inh, exc_subset, noise = net.spike_monitors
    path = sonata.write_spikes(tmp_path / "spikes.h5", [exc, inh, noise], sorting=sorting)
    _assert_reads_like(path, ["exc", "inh", "noise"], [exc, inh, noise], sorting)
    with h5py.File(path) as file:
        assert file.attrs["magic"] == sonata.MAGIC
        assert list(file.attrs["version"]) == list(sonata.VERSION)
    exc_subset.to_sonata(tmp_path / "one.h5", name="exc_subset")
    _assert_reads_like(tmp_path / "one.h5", ["exc_subset"], [exc_subset])


def test_exported_spikes_read_back(tmp_path):
    net = _network()
    net.run(30 * ms, backend="numpy")
    exc = net.spike_monitors[0]
    exc.to_sonata(tmp_path / "exc.h5", sorting="by_id")
    times, ids = sonata.read_spikes(tmp_path / "exc.h5")["exc"]
    order = np.lexsort((exc.times, exc.ids))
    np.testing.assert_allclose(times, exc.times[order])
    np.testing.assert_array_equal(ids, exc.ids[order])
    with h5py.File(tmp_path / "exc.h5") as file:
        assert storage.read_sonata_sorting(file["spikes/exc"]) == "by_id"
    with pytest.raises(InputError, match="names="):
        sonata.write_spikes(tmp_path / "both.h5", net)  # two monitors of exc
    with pytest.raises(InputError, match="sorting"):
        sonata.write_spikes(tmp_path / "x.h5", exc, sorting="by_name")


def test_spike_files_bmtk_writes_read(tmp_path):
    """bmtk writes ``sorting`` as a string and may store times in the older /spikes/{gids, timestamps}."""
    with h5py.File(tmp_path / "bmtk.h5", "w") as file:
        group = file.create_group("spikes/lgn")
        group.attrs["sorting"] = "by_time"
        group.create_dataset("timestamps", data=[1.5, 2.0, 7.25])
        group.create_dataset("node_ids", data=np.array([3, 0, 3], dtype=np.uint32))
        assert storage.read_sonata_sorting(group) == "by_time"
    times, ids = sonata.read_spikes(tmp_path / "bmtk.h5")["lgn"]
    np.testing.assert_allclose(times, [1.5e-3, 2.0e-3, 7.25e-3])
    np.testing.assert_array_equal(ids, [3, 0, 3])
    with h5py.File(tmp_path / "old.h5", "w") as file:
        file["spikes/timestamps"] = [0.5]
        file["spikes/gids"] = [2]
    assert sonata.read_spikes(tmp_path / "old.h5")[""][1].tolist() == [2]
    with h5py.File(tmp_path / "none.h5", "w") as file:
        file["other"] = [1]
    with pytest.raises(StorageError, match="no /spikes"):
        sonata.read_spikes(tmp_path / "none.h5")


# -- networks in bmtk's layout ---------------------------------------------------------------------

IAF_EXP = {"C_m": 250.0, "tau_m": 10.0, "t_ref": 2.0, "E_L": -70.0, "V_reset": -70.0, "V_th": -55.0,
           "tau_syn_ex": 2.0, "tau_syn_in": 2.0, "I_e": 0.0}


def _write_types(path, header, rows):
    with open(path, "w") as handle:
        handle.write(" ".join(header) + "\n")
        for row in rows:
            handle.write(" ".join(f'"{v}"' if " " in str(v) else str(v) for v in row) + "\n")


def _write_nodes(path, populations):
    """``populations``: name -> (node_type_ids, per-node group-0 attributes)."""
    with h5py.File(path, "w") as file:
        file.attrs["magic"] = np.uint32(0x0A7A)
        file.attrs["version"] = np.array([0, 1], dtype=np.uint32)
        for name, (type_ids, attributes) in populations.items():
            group = file.create_group(f"nodes/{name}")
            n = len(type_ids)
            group["node_id"] = np.arange(n, dtype=np.uint64)
            group["node_type_id"] = np.asarray(type_ids, dtype=np.uint64)
            group["node_group_id"] = np.zeros(n, dtype=np.uint32)
            group["node_group_index"] = np.arange(n, dtype=np.uint64)
            attrs = group.create_group("0")
            for key, values in attributes.items():
                attrs[key] = np.asarray(values)


def _write_edges(path, name, source, target, pre, post, type_ids, attributes):
    with h5py.File(path, "w") as file:
        group = file.create_group(f"edges/{name}")
        group["source_node_id"] = np.asarray(pre, dtype=np.uint64)
        group["source_node_id"].attrs["node_population"] = source
        group["target_node_id"] = np.asarray(post, dtype=np.uint64)
        group["target_node_id"].attrs["node_population"] = target
        group["edge_type_id"] = np.asarray(type_ids, dtype=np.uint64)
        group["edge_group_id"] = np.zeros(len(pre), dtype=np.uint32)
        group["edge_group_index"] = np.arange(len(pre), dtype=np.uint64)
        attrs = group.create_group("0")
        for key, values in attributes.items():
            attrs[key] = np.asarray(values)


@pytest.fixture
def circuit(tmp_path):
    """Two driven iaf_psc_exp cells, one iaf_psc_delta cell and a virtual input, as bmtk writes them."""
    (tmp_path / "components").mkdir()
    (tmp_path / "components/exc.json").write_text(json.dumps({**IAF_EXP, "I_e": 400.0}))
    (tmp_path / "components/quiet.json").write_text(json.dumps(IAF_EXP))
    (tmp_path / "components/delta.json").write_text(json.dumps({"C_m": 250.0, "tau_m": 10.0, "E_L": -70.0,
                                                                "V_th": -55.0, "V_reset": -70.0, "t_ref": 2.0}))
    _write_types(tmp_path / "v1_node_types.csv",
                 ["node_type_id", "model_type", "model_template", "dynamics_params", "pop_name"],
                 [[100, "point_process", "nest:iaf_psc_exp", "exc.json", "driven"],
                  [101, "point_process", "nest:iaf_psc_exp", "quiet.json", "quiet"]])
    _write_nodes(tmp_path / "v1_nodes.h5", {"v1": ([100, 100, 101], {"x": [0.0, 1.0, 2.0]})})
    _write_types(tmp_path / "d_node_types.csv", ["node_type_id", "model_type", "model_template", "dynamics_params"],
                 [[200, "point_process", "nest:iaf_psc_delta", "delta.json"]])
    _write_nodes(tmp_path / "d_nodes.h5", {"d": ([200], {})})
    _write_types(tmp_path / "lgn_node_types.csv", ["node_type_id", "model_type", "model_template"],
                 [[300, "virtual", "NONE"]])
    _write_nodes(tmp_path / "lgn_nodes.h5", {"lgn": ([300, 300], {})})
    _write_types(tmp_path / "edge_types.csv",
                 ["edge_type_id", "target_query", "source_query", "delay", "dynamics_params", "model_template"],
                 [[1, "pop_name=='quiet'", "*", 1.5, "static.json", "static_synapse"],
                  [2, "*", "*", 2.0, "static.json", "static_synapse"]])
    # lgn 0 -> v1 2 (+300 pA x 2 synapses), lgn 1 -> v1 2 (-200 pA); lgn 0 -> d 0 (+2 mV, delay 2 ms)
    _write_edges(tmp_path / "lgn_v1_edges.h5", "lgn_to_v1", "lgn", "v1", [0, 1], [2, 2], [1, 1],
                 {"syn_weight": [300.0, -200.0], "nsyns": [2, 1]})
    _write_edges(tmp_path / "lgn_d_edges.h5", "lgn_to_d", "lgn", "d", [0], [0], [2], {"syn_weight": [2.0]})
    with h5py.File(tmp_path / "lgn_spikes.h5", "w") as file:
        group = file.create_group("spikes/lgn")
        group.attrs["sorting"] = "by_time"  # a string, as bmtk writes it
        group.create_dataset("timestamps", data=[10.0, 30.0]).attrs["units"] = "ms"
        group.create_dataset("node_ids", data=np.array([0, 1], dtype=np.uint64))
    return tmp_path


def _load(circuit, **options):
    return sonata.load_network(
        nodes=[(circuit / "v1_nodes.h5", circuit / "v1_node_types.csv"),
               (circuit / "d_nodes.h5", circuit / "d_node_types.csv"),
               (circuit / "lgn_nodes.h5", circuit / "lgn_node_types.csv")],
        edges=[(circuit / "lgn_v1_edges.h5", circuit / "edge_types.csv"),
               (circuit / "lgn_d_edges.h5", circuit / "edge_types.csv")],
        dynamics_dir=circuit / "components", **options)


def test_a_bmtk_point_network_loads_and_runs(circuit):
    net = _load(circuit, inputs={"lgn": circuit / "lgn_spikes.h5"}, dt=0.1 * ms)
    assert [p.name for p in net.populations.values()] == ["v1", "d", "lgn"]
    v1, d = net["v1"], net["d"]
    assert isinstance(v1.model, rv.neurons.LIF) and v1.n == 3
    np.testing.assert_allclose(v1.get("v"), -70 * mV)
    spikes = net.record(v1, "spikes")
    v_quiet = net.record(v1, "v", ids=[2])
    v_delta = net.record(d, "v")
    net.run(100 * ms, backend="numpy")

    # I_e = 400 pA over C_m = 250 pF with tau_m = 10 ms: v_inf = E_L + 16 mV, above V_th = E_L + 15 mV;
    # the period is t_ref + tau_m ln(16 / 1) (NEST's iaf_psc_exp, exact integration)
    driven = spikes.times[spikes.ids == 0]
    period = 2 * ms + 10 * ms * np.log(16.0)
    assert len(driven) == 3
    assert driven[0] == pytest.approx(period - 2 * ms, abs=0.11 * ms)
    np.testing.assert_array_equal(spikes.times[spikes.ids == 1], driven)
    np.testing.assert_allclose(np.diff(driven), period, atol=0.11 * ms)

    # the quiet cell: a 600 pA exponential current (tau_syn 2 ms) from the spike at 10 ms with delay 1.5 ms,
    # then -200 pA from the spike at 30 ms (NEST's timing: a spike at t acts at t + delay)
    t, v = v_quiet.t, v_quiet.values[:, 0]
    tau_m, tau_s, scale = 10 * ms, 2 * ms, 10 * ms / 250.0  # V per pA
    def psp(t, w):
        s = np.clip(t, 0, None)
        return w * scale * tau_s / (tau_s - tau_m) * (np.exp(-s / tau_s) - np.exp(-s / tau_m))
    expected = -70 * mV + psp(t - 11.5 * ms, 600.0) + psp(t - 31.5 * ms, -200.0)
    np.testing.assert_allclose(v, expected, atol=1e-6)
    assert 2 not in spikes.ids

    # the delta cell: v jumps 2 mV when the spike arrives (10 ms + 2 ms) and decays with tau_m
    t, v = v_delta.t, v_delta.values[:, 0]
    jump = np.where(t > 12 * ms - 1e-9, 2 * mV * np.exp(-(t - 12 * ms) / (10 * ms)), 0.0)
    np.testing.assert_allclose(v, -70 * mV + jump, atol=1e-6)


def test_the_loaded_network_saves_and_its_spikes_open(circuit, tmp_path):
    net = _load(circuit, inputs={"lgn": circuit / "lgn_spikes.h5"})
    net.record(net["v1"], "spikes")
    net.run(30 * ms, backend="numpy")
    net.save(tmp_path / "out.h5")
    np.testing.assert_array_equal(rv.load(tmp_path / "out.h5").spike_monitors[0].ids, net.spike_monitors[0].ids)
    if libsonata is not None:
        _assert_reads_like(tmp_path / "out.h5", ["v1"], net.spike_monitors)


def test_models_it_cannot_map_are_named(circuit):
    _write_types(circuit / "v1_node_types.csv", ["node_type_id", "model_type", "model_template", "dynamics_params"],
                 [[100, "point_process", "nest:aeif_cond_exp", "exc.json"],
                  [101, "point_process", "nest:iaf_psc_exp", "quiet.json"]])
    with pytest.raises(InputError, match="aeif_cond_exp"):
        _load(circuit)
    _write_types(circuit / "v1_node_types.csv", ["node_type_id", "model_type", "model_template", "morphology"],
                 [[100, "biophysical", "ctdb:Biophys1.hoc", "cell.swc"], [101, "biophysical", "x", "y"]])
    with pytest.raises(InputError, match="biophysical"):
        _load(circuit)
    _write_types(circuit / "v1_node_types.csv", ["node_type_id", "model_type", "model_template", "dynamics_params"],
                 [[100, "point_process", "nest:iaf_psc_exp", "exc.json"],
                  [101, "point_process", "nest:iaf_psc_delta", "quiet.json"]])
    with pytest.raises(InputError, match="mixes models"):
        _load(circuit)


def test_parameters_and_synapses_it_cannot_map_are_named(circuit):
    (circuit / "components/quiet.json").write_text(json.dumps({**IAF_EXP, "tau_syn_ex_rise": 1.0}))
    with pytest.raises(InputError, match="tau_syn_ex_rise"):
        _load(circuit)
    (circuit / "components/quiet.json").write_text(json.dumps(IAF_EXP))
    _write_types(circuit / "edge_types.csv", ["edge_type_id", "delay", "model_template"],
                 [[1, 1.5, "stdp_synapse"], [2, 2.0, "static_synapse"]])
    with pytest.raises(InputError, match="stdp_synapse"):
        _load(circuit)
    _write_types(circuit / "edge_types.csv", ["edge_type_id", "delay", "weight_function"],
                 [[1, 1.5, "wmax"], [2, 2.0, "NONE"]])
    with pytest.raises(InputError, match="weight_function"):
        _load(circuit)
    _write_types(circuit / "edge_types.csv", ["edge_type_id", "model_template"],
                 [[1, "static_synapse"], [2, "static_synapse"]])
    with pytest.raises(StorageError, match="delay"):
        _load(circuit)


def test_malformed_files_are_storage_errors(circuit):
    with pytest.raises(StorageError, match="dynamics_params"):
        sonata.load_network(nodes=(circuit / "v1_nodes.h5", circuit / "v1_node_types.csv"))  # no dynamics_dir
    _write_edges(circuit / "lgn_d_edges.h5", "lgn_to_d", "lgn", "d", [5], [0], [2], {"syn_weight": [2.0]})
    with pytest.raises(StorageError, match="node id 5"):
        _load(circuit)
    with pytest.raises(InputError, match="virtual"):
        _load(circuit, inputs={"v1": circuit / "lgn_spikes.h5"})
    with h5py.File(circuit / "lgn_nodes.h5", "a") as file:
        del file["nodes/lgn/node_type_id"]
    with pytest.raises(StorageError, match="node_type_id"):
        _load(circuit)


@pytest.mark.parametrize(("attributes", "message"), [
    ({"syn_weight": [300.0, np.inf], "nsyns": [2, 1]}, "finite syn_weight.*edge 1 has inf"),
    ({"syn_weight": [300.0, -200.0], "nsyns": [2, -1]}, "nsyns counts synapses and cannot be negative; edge 1"),
])
def test_edges_with_a_weight_no_synapse_can_have_are_named(circuit, attributes, message):
    _write_edges(circuit / "lgn_v1_edges.h5", "lgn_to_v1", "lgn", "v1", [0, 1], [2, 2], [1, 1], attributes)
    with pytest.raises(StorageError, match=message):
        _load(circuit)


# -- reports --------------------------------------------------------------------------------------


def _recorded_network():
    net = rv.networks.cuba(n=200, seed=3)
    osc = net.population(rv.neurons.Kuramoto(omega=10.0), n=5, name="osc")
    v = net.record(net["exc"], "v", ids=[0, 7, 42], every=0.5 * ms)
    output = net.record(osc, "output", ids=[1, 3])  # two channels: cos theta, sin theta
    net.run(20 * ms, backend="numpy")
    return net, v, output


@needs_libsonata
def test_reports_open_in_libsonata(tmp_path):
    net, v, output = _recorded_network()
    path = sonata.write_report(tmp_path / "report.h5", net)
    reader = libsonata.ElementReportReader(str(path))
    assert sorted(reader.get_population_names()) == ["exc", "osc"]
    exc = reader["exc"]
    assert (exc.time_units, exc.data_units) == ("ms", "mV")
    assert exc.get_node_ids() == [0, 7, 42]
    frame = exc.get()
    np.testing.assert_allclose(frame.times, v.t * 1e3, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(frame.data), (v.values * 1e3).astype(np.float32))
    assert np.asarray(frame.ids).tolist() == [[0, 0], [7, 0], [42, 0]]
    one = exc.get(node_ids=[7], tstart=5.0, tstop=6.0)
    np.testing.assert_allclose(one.times, [5.0, 5.5, 6.0])
    np.testing.assert_array_equal(np.asarray(one.data)[:, 0], (v.values[9:12, 1] * 1e3).astype(np.float32))
    osc = reader["osc"].get()
    assert np.asarray(osc.ids).tolist() == [[1, 0], [1, 1], [3, 0], [3, 1]]
    # (samples, channels, ids) -> node 1's cos and sin, then node 3's
    expected = output.values.transpose(0, 2, 1).reshape(len(output.t), 4).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(osc.data), expected)
    assert reader["osc"].data_units == ""


def test_reports_read_back_in_si(tmp_path):
    net, v, _ = _recorded_network()
    path = v.to_sonata(tmp_path / "v.h5", name="excitatory")
    report = sonata.read_report(path)["excitatory"]
    np.testing.assert_allclose(report["t"], v.t, rtol=1e-12)
    np.testing.assert_allclose(report["data"], v.values, rtol=1e-6)
    assert report["node_ids"].tolist() == [0, 7, 42] and report["units"] == "SI"
    with h5py.File(path) as file:
        assert file.attrs["magic"] == sonata.MAGIC
        assert file["report/excitatory/mapping/time"][()][2] == pytest.approx(0.5)


def test_report_errors_are_named(tmp_path):
    net = rv.networks.cuba(n=50, seed=1)
    first = net.record(net["exc"], "v")
    with pytest.raises(InputError, match="'exc' 'v' has no samples"):
        sonata.write_report(tmp_path / "r.h5", first)
    second = net.record(net["exc"], "I_exc")
    net.run(2 * ms, backend="numpy")
    with pytest.raises(InputError, match="both write /report/exc"):
        sonata.write_report(tmp_path / "r.h5", [first, second])
    sonata.write_report(tmp_path / "r.h5", [first, second], names=["v", "I_exc"])
    assert sorted(sonata.read_report(tmp_path / "r.h5")) == ["I_exc", "v"]
    with h5py.File(tmp_path / "r.h5", "a") as file:
        del file["report/v/mapping/element_ids"]
    with pytest.raises(StorageError, match="/report/v: needs data and mapping"):
        sonata.read_report(tmp_path / "r.h5")
    with pytest.raises(StorageError, match="not a SONATA report"):
        sonata.read_report(_spike_file(tmp_path))


def _spike_file(tmp_path):
    net = rv.networks.cuba(n=20, seed=1)
    net.record(net["exc"], "spikes")
    net.run(1 * ms, backend="numpy")
    return sonata.write_spikes(tmp_path / "spikes.h5", net)
