"""HDF5 storage: save, load, the SONATA spike layout, and damaged files."""

import dataclasses
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

import ranvier as rv
from ranvier.engine import storage
from ranvier.errors import StorageError
from ranvier.units import Hz, ms, mV


def _network(seed: int = 7) -> rv.Network:
    """LIF, Poisson and spike-time sources; per-synapse weights and delays; a distribution parameter."""
    net = rv.Network(dt=0.1 * ms, seed=seed)
    lif = rv.neurons.LIF(tau_m=rv.init.Uniform(15 * ms, 25 * ms), v_rest=-65 * mV, v_th=-50 * mV,
                         v_reset=-65 * mV, t_ref=2 * ms, tau_syn={"exc": 5 * ms, "inh": 0.0})
    cells = net.population(lif, n=60, name="cells", init={"v": rv.init.Uniform(-65 * mV, -50 * mV)})
    noise = net.population(rv.neurons.PoissonSource(rate=rv.init.Uniform(50 * Hz, 150 * Hz)), n=40, name="noise")
    times = np.array([1.0, 2.5, 2.5, 7.0, 12.0]) * ms
    cue = net.population(rv.neurons.SpikeSource(times, [0, 1, 3, 2, 0], n=5), name="cue")
    net.connect(noise, cells, rv.connect.Bernoulli(p=0.3), weight=rv.init.Normal(4 * mV, 1 * mV),
                delay=rv.init.Uniform(0.1 * ms, 3 * ms), receptor="exc")
    net.connect(cells, cells, rv.connect.Bernoulli(p=0.1), weight=-1 * mV, delay=1 * ms, receptor="inh")
    pre, post = np.array([0, 1, 2, 3, 4]), np.array([5, 6, 7, 8, 9])
    net.connect(cue, cells, rv.connect.FromArrays(pre, post), weight=np.linspace(5, 15, 5) * mV,
                delay=np.array([0.1, 0.5, 1.0, 2.0, 4.0]) * ms, receptor="exc")
    net.record(cells, "spikes")
    net.record(noise, "spikes", ids=[0, 1, 2])
    net.record(cells, "v", ids=[0, 10, 20], every=0.5 * ms)
    return net


def _spikes(net: rv.Network) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(monitor.steps, monitor.ids) for monitor in net.spike_monitors]


def _assert_same_recordings(a: rv.Network, b: rv.Network) -> None:
    for (steps_a, ids_a), (steps_b, ids_b) in zip(_spikes(a), _spikes(b), strict=True):
        np.testing.assert_array_equal(steps_a, steps_b)
        np.testing.assert_array_equal(ids_a, ids_b)
    for monitor_a, monitor_b in zip(a.state_monitors, b.state_monitors, strict=True):
        np.testing.assert_array_equal(monitor_a.t, monitor_b.t)
        np.testing.assert_array_equal(monitor_a.values, monitor_b.values)


@pytest.mark.parametrize("ran_before", [0.0, 10 * ms])
def test_loaded_network_continues_with_identical_spikes(tmp_path, ran_before):
    net = _network()
    net.run(ran_before, backend="numpy")
    net.save(tmp_path / "net.h5")
    loaded = rv.load(tmp_path / "net.h5")
    net.run(20 * ms, backend="numpy")
    loaded.run(20 * ms, backend="numpy")
    assert net.spike_monitors[0].num_spikes > 10 and net.spike_monitors[1].num_spikes > 0
    _assert_same_recordings(net, loaded)
    assert loaded.stats.spikes == net.stats.spikes and loaded.step == net.step


def test_declaration_round_trips(tmp_path):
    net = _network()
    net.save(tmp_path / "net.h5")
    loaded = rv.load(tmp_path / "net.h5")
    assert list(loaded.populations) == ["cells", "noise", "cue"]
    assert loaded.dt == net.dt and loaded.seed == net.seed
    for name, population in net.populations.items():
        other = loaded[name]
        assert type(other.model) is type(population.model) and other.n == population.n
        np.testing.assert_array_equal(other.state, population.state)
        for key, values in population.params.items():
            np.testing.assert_array_equal(other.params[key], values)
    assert loaded["cells"].model.parameters["tau_m"] == rv.init.Uniform(15 * ms, 25 * ms)
    np.testing.assert_array_equal(loaded["cue"].model.times, net["cue"].model.times)
    for original, copy in zip(net.projections, loaded.projections, strict=True):
        assert (copy.name, copy.pre.name, copy.post.name, copy.receptor) == (
            original.name, original.pre.name, original.post.name, original.receptor)
        for field in ("pre_ids", "post_ids", "weights", "delays"):
            np.testing.assert_array_equal(getattr(copy, field), getattr(original, field))


def test_a_population_declared_after_loading_draws_the_same_values(tmp_path):
    net = _network()
    net.save(tmp_path / "net.h5")
    loaded = rv.load(tmp_path / "net.h5")
    start = {"v": rv.init.Uniform(-70 * mV, -50 * mV)}
    extra = [n.population(rv.neurons.LIF(), n=10, name="extra", init=start) for n in (net, loaded)]
    np.testing.assert_array_equal(extra[0].get("v"), extra[1].get("v"))


def test_spikes_use_the_sonata_layout(tmp_path):
    net = _network()
    net.run(20 * ms, backend="numpy")
    net.save(tmp_path / "net.h5")
    monitor = net.spike_monitors[0]
    with h5py.File(tmp_path / "net.h5", "r") as file:
        group = file["spikes/cells"]
        # an HDF5 enum, as the SONATA reference reader (libsonata) requires
        assert h5py.check_enum_dtype(group.attrs.get_id("sorting").dtype) == storage.SONATA_SORTING
        assert group.attrs["sorting"] == storage.SONATA_SORTING["by_time"]
        assert storage.read_sonata_sorting(group) == "by_time"
        assert group["timestamps"].attrs["units"] == "ms"
        np.testing.assert_allclose(group["timestamps"][()], monitor.times * 1e3)
        np.testing.assert_array_equal(group["node_ids"][()], monitor.ids)
        assert group["node_ids"].dtype == np.uint64
        assert "noise" in file["spikes"]
    times, ids = storage.read_spikes(tmp_path / "net.h5")["cells"]
    np.testing.assert_allclose(times, monitor.times)


def test_file_names_its_schema(tmp_path):
    _network().save(tmp_path / "net.h5")
    with h5py.File(tmp_path / "net.h5", "r") as file:
        assert file.attrs["format"] == "ranvier"
        assert file.attrs["schema_version"] == storage.SCHEMA_VERSION
        assert json.loads(file["populations/0"].attrs["config"])["tau_syn"]


def test_truncated_file_raises_storage_error(tmp_path):
    net = _network()
    net.run(5 * ms, backend="numpy")
    net.save(tmp_path / "net.h5")
    data = (tmp_path / "net.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(StorageError, match="cut.h5"):
        rv.load(tmp_path / "cut.h5")


def test_damaged_or_foreign_files_raise_storage_error(tmp_path):
    (tmp_path / "noise.h5").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(StorageError, match="noise.h5"):
        rv.load(tmp_path / "noise.h5")
    with h5py.File(tmp_path / "foreign.h5", "w") as file:
        file["x"] = 1
    with pytest.raises(StorageError, match="not a ranvier file"):
        rv.load(tmp_path / "foreign.h5")
    with pytest.raises(StorageError, match="no such file"):
        rv.load(tmp_path / "missing.h5")
    _network().save(tmp_path / "net.h5")
    with h5py.File(tmp_path / "net.h5", "r+") as file:
        del file["populations/1/state"]
    with pytest.raises(StorageError, match="damaged"):
        rv.load(tmp_path / "net.h5")
    with h5py.File(tmp_path / "net.h5", "r+") as file:
        storage._seal(file)  # a consistent edit: the digest matches, the declaration does not
    with pytest.raises(StorageError, match="population 'noise': dataset 'state' is missing"):
        rv.load(tmp_path / "net.h5")


def test_newer_schema_is_refused(tmp_path):
    _network().save(tmp_path / "net.h5")
    with h5py.File(tmp_path / "net.h5", "r+") as file:
        file.attrs["schema_version"] = storage.SCHEMA_VERSION + 1
    with pytest.raises(StorageError, match="newer"):
        rv.load(tmp_path / "net.h5")


class _Opaque(rv.neurons.LIF):
    """A model whose constructor takes an object that storage cannot write."""

    def __init__(self, helper=None):
        super().__init__()
        self.helper = helper


def test_unsaveable_model_configuration_names_the_population(tmp_path):
    net = rv.Network(seed=1)
    net.population(_Opaque(helper=object()), n=3, name="odd")
    with pytest.raises(StorageError, match="population 'odd'.*override _config"):
        net.save(tmp_path / "net.h5")
    assert not (tmp_path / "net.h5").exists()


def test_a_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "net.h5"
    _network().save(path)
    before = path.read_bytes()
    net = rv.Network(seed=1)
    net.population(_Opaque(helper=object()), n=3, name="odd")
    with pytest.raises(StorageError):
        net.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["net.h5"]


def test_import_ranvier_does_not_import_h5py_or_dask():
    code = "import sys, ranvier; print(sorted(m for m in ('h5py', 'dask', 'distributed') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_value_population_round_trips(tmp_path):
    def build():
        net = rv.networks.kuramoto(n=40, coupling=3.0, spread=0.5, seed=1, pulses=True)
        net.record(net["osc"], "order", every=10 * ms)
        net.record(net["osc"], "output", ids=[0, 1], every=10 * ms)
        net.record(net["osc"], "spikes")
        return net

    net = build()
    net.run(0.3, backend="numpy")
    net.save(tmp_path / "osc.h5")
    loaded = rv.load(tmp_path / "osc.h5")
    assert loaded["osc"].model.pulses and loaded["osc"].model.parameters["omega"] == rv.init.Cauchy(0.0, 0.5)
    net.run(0.3, backend="numpy")
    loaded.run(0.3, backend="numpy")
    assert net.state_monitors[1].values.shape == (60, 2, 2)
    _assert_same_recordings(net, loaded)


@dataclasses.dataclass(frozen=True)
class _Gains:
    """A record of weights, as CfC, LTC and ELM keep theirs."""

    scale: np.ndarray
    pair: tuple


class _Gained(rv.neurons.LIF):
    """A model whose constructor takes a record of arrays and a tuple."""

    def __init__(self, gains: _Gains, shape: tuple = (2, 3)):
        super().__init__()
        self.gains = gains
        self.shape = shape


@pytest.fixture
def registry():
    """The storage registry, restored after the test."""
    with storage.registered():
        yield storage._REGISTERED


def test_records_and_tuples_in_a_configuration_round_trip(tmp_path, registry):
    gains = _Gains(scale=np.arange(6.0).reshape(2, 3), pair=(np.ones(2, dtype=np.float32), "tanh"))
    net = rv.Network(seed=1)
    net.population(_Gained(gains, shape=(4, 5)), n=3, name="gained")
    net.save(tmp_path / "net.h5")
    with pytest.raises(StorageError, match=r"population 'gained': refusing to import 'test_storage\._Gained'.*"
                                           r"register_model\(_Gained\)"):
        rv.load(tmp_path / "net.h5")
    assert rv.register_model(_Gained) is _Gained
    with pytest.raises(StorageError, match=r"refusing to import 'test_storage\._Gains'"):
        rv.load(tmp_path / "net.h5")  # the record's class too must be registered
    rv.register_model(_Gains)
    model = rv.load(tmp_path / "net.h5")["gained"].model
    assert isinstance(model.gains, _Gains) and model.shape == (4, 5)
    np.testing.assert_array_equal(model.gains.scale, gains.scale)
    assert isinstance(model.gains.pair, tuple) and model.gains.pair[1] == "tanh"
    assert model.gains.pair[0].dtype == np.float32


def _edited(tmp_path, change) -> str:
    """Save a run network, apply ``change(file)`` with h5py, write the digest again (as anyone can)."""
    net = _network()
    net.run(5 * ms, backend="numpy")
    path = tmp_path / "net.h5"
    net.save(path)
    with h5py.File(path, "r+") as file:
        change(file)
        storage._seal(file)
    return path


def _replace(name, data):
    def change(file):
        attrs = dict(file[name].attrs)
        del file[name]
        file.create_dataset(name, data=data)
        file[name].attrs.update(attrs)
    return change


def _set_attr(name, key, value):
    def change(file):
        file[name].attrs[key] = value
    return change


def _post_ids(edit):
    def change(file):
        ids = file["projections/1/post_ids"][()]
        _replace("projections/1/post_ids", edit(ids))(file)
    return change


@pytest.mark.parametrize("change, message", [
    (_post_ids(lambda ids: np.where(np.arange(len(ids)) == 3, 4000, ids)),
     r"projection 'cells->cells:inh': post_ids holds 4000, outside population 'cells' \(60 neurons\)"),
    (_post_ids(lambda ids: np.where(np.arange(len(ids)) == 3, -1, ids)), "post_ids holds -1, outside population"),
    (_post_ids(lambda ids: ids.astype(np.float64)), "post_ids must hold integers, the file holds float64"),
    (_post_ids(lambda ids: ids[:-1]), "row_ptr must rise from 0 to the .* synapses of post_ids"),
    (lambda file: _replace("projections/1/row_ptr", file["projections/1/row_ptr"][:-1])(file),
     r"row_ptr must have shape \(61,\)"),
    (lambda file: _replace("projections/1/row_ptr", file["projections/1/row_ptr"][()][::-1])(file),
     "row_ptr must rise"),
    (lambda file: _replace("projections/0/delay_steps", np.zeros_like(file["projections/0/delay_steps"]))(file),
     "delay_steps holds 0, outside 1 .. 65535 steps"),
    (_set_attr("projections/1", "delay_steps", 0), "delay_steps = 0 must be at least 1"),
    (_set_attr("populations/0", "period", 0), "population 'cells': period = 0 must be at least 1"),
    (_set_attr("projections/1", "receptor", "ampa"), "unknown receptor 'ampa'"),
    (lambda file: file["populations/0/state"].attrs.__setitem__("state_names", ["v", "w", "I_exc", "I_inh"]),
     "state rows must be"),
    (lambda file: _replace("populations/0/params/tau_m", -np.ones(60))(file), "tau_m must be > 0"),
    (lambda file: file.__delitem__("projections/2"), r"/projections must hold 3 member\(s\)"),
    (lambda file: file.__delitem__("recordings/state/0"), r"/recordings/state must hold 1 member\(s\)"),
    (lambda file: file.__delitem__("recordings/spikes/1/ids"), "dataset 'ids' is missing"),
    (lambda file: _replace("recordings/state/0/ids", np.array([0, 10, 60]))(file),
     r"ids holds 60, outside population 'cells' \(60 neurons\)"),
    (_set_attr("recordings/state/0", "rows", [7]), "rows of 'v' must be"),
    (_set_attr("recordings/state/0", "every_steps", 0), "every_steps = 0 must be at least 1"),
    (lambda file: file.__delitem__("populations/0/ring"), "lists run arrays"),
    (_set_attr("/", "step", 2**63 - 10), r"step = 9223372036854775798 exceeds 9007199254740992 \(2\*\*53\)"),
    (lambda file: _replace("populations/2/config_arrays/0", np.array([-1.0, 2.5, 2.5, 7.0, 12.0]) * ms)(file),
     r"net\.h5: population 'cue': SpikeSource time -0\.001 s is below dt"),
], ids=["post-id-outside", "post-id-negative", "float-ids", "short-post-ids", "short-row-ptr", "row-ptr-falls",
        "delay-0", "shared-delay-0", "period-0", "receptor", "state-rows", "negative-tau", "deleted-projection",
        "deleted-recording", "deleted-subset", "monitor-ids", "monitor-rows", "every-0", "deleted-ring", "huge-step",
        "source-time"])
def test_a_file_that_contradicts_its_declaration_is_a_named_storage_error(tmp_path, change, message):
    path = _edited(tmp_path, change)
    with pytest.raises(StorageError, match=message):
        rv.load(path)


def test_recordings_read_back_are_checked(tmp_path):
    def change(file):
        _replace("spikes/cells/node_ids", np.array([60], dtype=np.uint64))(file)
        _replace("spikes/cells/timestamps", np.array([0.1]))(file)
    net = rv.load(_edited(tmp_path, change))
    with pytest.raises(StorageError, match=r"node_ids: holds 60, outside the population \(60 neurons\)"):
        _ = net.spike_monitors[0].ids


def test_a_bit_flip_in_data_or_attributes_is_detected(tmp_path):
    net = _network()
    net.run(5 * ms, backend="numpy")
    net.save(tmp_path / "net.h5")
    data = bytearray((tmp_path / "net.h5").read_bytes())
    with h5py.File(tmp_path / "net.h5", "r") as file:
        offset = file["populations/0/state"].id.get_chunk_info(0).byte_offset
    data[offset + 5] ^= 4  # inside the chunk of the state of 'cells': Fletcher-32 sees it
    (tmp_path / "flipped.h5").write_bytes(bytes(data))
    with pytest.raises(StorageError, match="flipped.h5"):
        rv.load(tmp_path / "flipped.h5")
    config = bytes(data).index(b'"tau_syn"')  # a string attribute, in HDF5's global heap: the digest sees it
    data[offset + 5] ^= 4
    data[config + 2] ^= 1
    (tmp_path / "flipped.h5").write_bytes(bytes(data))
    with pytest.raises(StorageError, match="attributes or structure do not match"):
        rv.load(tmp_path / "flipped.h5")


def test_a_loaded_network_refuses_recordings_from_a_replaced_file(tmp_path):
    net = _network()
    net.run(5 * ms, backend="numpy")
    net.save(tmp_path / "net.h5")
    loaded = rv.load(tmp_path / "net.h5")
    other = _network(seed=8)
    other.run(5 * ms, backend="numpy")
    other.save(tmp_path / "net.h5")
    with pytest.raises(StorageError, match="replaced since"):
        _ = loaded.spike_monitors[0].times


def test_checkpoint_to_a_directory_is_a_storage_error(tmp_path):
    net = _network()
    with pytest.raises(StorageError, match="is a directory"):
        net.run(1 * ms, backend="numpy", checkpoint=tmp_path)


class _Mine(rv.neurons.LIF):
    """A user's own model, defined in this module."""


def _renamed(tmp_path, attribute, value):
    """A saved network whose first population's ``attribute`` is ``value``, digest written again."""
    net = rv.Network(seed=1)
    net.population(rv.neurons.LIF(), n=2, name="x")
    path = tmp_path / "net.h5"
    net.save(path)
    with h5py.File(path, "r+") as file:
        file["populations/0"].attrs[attribute] = value
        storage._seal(file)
    return path


@pytest.mark.parametrize("path", ["os.system", "subprocess.Popen", "ranvier.engine.storage.os.system",
                                  "ranvier.engine.storage.np.ndarray", "ranvier.engine.storage.importlib.import_module",
                                  "ranvier.__main__.Model", "ranvier.neurons.LIF.__class__", "antigravity.X",
                                  "ranvier..LIF", "ranvier.neurons.LIF.step"])
def test_a_model_path_outside_ranvier_is_refused_without_importing(tmp_path, path, registry):
    file = _renamed(tmp_path, "model", path)
    before = set(sys.modules)
    with pytest.raises(StorageError, match=r"population 'x'") as caught:
        rv.load(file)
    assert "refusing to import" in str(caught.value) or "is not a ranvier neuron model" in str(caught.value)
    assert str(path) in str(caught.value)
    assert not {name for name in set(sys.modules) - before if not name.startswith("ranvier")}


def test_a_dataclass_path_outside_ranvier_is_refused(tmp_path, registry):
    net = rv.Network(seed=1)
    net.population(_Gained(_Gains(scale=np.ones(2), pair=(1, 2))), n=2, name="x")
    rv.register_model(_Gained)
    path = tmp_path / "net.h5"
    net.save(path)
    with h5py.File(path, "r+") as file:
        config = json.loads(file["populations/0"].attrs["config"])
        config["gains"]["__dataclass__"] = "subprocess.CompletedProcess"
        file["populations/0"].attrs["config"] = json.dumps(config)
        storage._seal(file)
    with pytest.raises(StorageError, match=r"population 'x': refusing to import 'subprocess\.CompletedProcess'"):
        rv.load(path)


def test_a_registered_user_model_loads_and_moved_paths_still_resolve(tmp_path, registry):
    net = rv.Network(seed=1)
    net.population(_Mine(), n=2, name="mine")
    net.save(tmp_path / "mine.h5")
    with pytest.raises(StorageError, match=r"refusing to import 'test_storage\._Mine'"):
        rv.load(tmp_path / "mine.h5")
    rv.register_model(_Mine)
    assert type(rv.load(tmp_path / "mine.h5")["mine"].model) is _Mine
    storage.unregister_model(_Mine)
    with pytest.raises(StorageError, match="refusing"):
        rv.load(tmp_path / "mine.h5")
    # ranvier's own classes and the old paths of moved ones load without registering
    assert storage._import("ranvier.neurons.cfc_ltc.CfC", "here") is rv.neurons.CfC
    assert storage._import("ranvier.neurons.lif.LIF", "here") is rv.neurons.LIF
    with pytest.raises(StorageError, match="register_model: expected"):
        rv.register_model(object)


def test_the_microcircuit_saved_mid_run_continues_with_identical_spikes(tmp_path):
    # its receptor is named "syn": the LIF parameter tau_syn is that receptor's, not the constructor's dict
    net = rv.networks.microcircuit(scale=0.01, seed=2)
    for name in ("L4e", "L5e"):
        net.record(net[name], "spikes")
    net.run(5 * ms, backend="numpy")
    net.save(tmp_path / "circuit.h5")
    loaded = rv.load(tmp_path / "circuit.h5")
    assert loaded["L4e"].model.tau_syn == net["L4e"].model.tau_syn == {"syn": 0.5 * ms}
    net.run(10 * ms, backend="numpy")
    loaded.run(10 * ms, backend="numpy")
    assert net.spike_monitors[0].num_spikes > 0
    _assert_same_recordings(net, loaded)


def test_a_receptor_named_m_is_refused():
    with pytest.raises(rv.errors.ModelError, match="receptor cannot be named 'm'"):
        rv.neurons.LIF(tau_m=20 * ms, tau_syn={"m": 1 * ms})


class _Labelled(rv.neurons.LIF):
    """A user's model that hands its other arguments on to LIF's constructor."""

    def __init__(self, label: str = "plain", **lif_arguments):
        super().__init__(**lif_arguments)
        self.label = label


def test_a_model_that_hands_keyword_arguments_to_its_base_round_trips(tmp_path, registry):
    rv.register_model(_Labelled)
    net = rv.Network(seed=1)
    net.population(_Labelled(label="tagged", tau_m=30 * ms, tau_syn={"a": 1 * ms, "b": 2 * ms}), n=2, name="x")
    net.save(tmp_path / "net.h5")
    model = rv.load(tmp_path / "net.h5")["x"].model
    assert (type(model), model.label, model.tau_syn) == (_Labelled, "tagged", {"a": 1 * ms, "b": 2 * ms})
    assert model.parameters["tau_m"] == 30 * ms


def test_reading_a_foreign_hdf5_file_leaves_it_as_it_was(tmp_path):
    # bytes past the end an HDF5 superblock names are another program's data, not a checkpoint's tail
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w", libver="v110") as file:
        file["x"] = np.arange(10)
    with open(path, "ab") as handle:
        handle.write(b"user data " * 400)
    before = path.read_bytes()
    with pytest.raises(StorageError, match="not a ranvier file"):
        rv.load(path)
    assert path.read_bytes() == before
