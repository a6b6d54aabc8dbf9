"""HDF5 storage: a network, its state and its recordings in one file (``net.save``, ``ranvier.load``).

The layout (schema version :data:`SCHEMA_VERSION`, described in ``docs/storage.md``)::

    /                        attrs: format="ranvier", schema_version, ranvier_version, dt, seed, precision
                                    ("single" or "double"; absent: single), step, seeds_spawned, stats (JSON)
    /populations/<i>         attrs: name, n, period, model (import path), config (JSON)
        config_arrays/<j>    arrays named by the config
        params/<parameter>   float64 (n,)
        state                float32 or float64 (the precision) (n_state, n), attrs state_names
        ring                 the same type (slots, receptors, n): input already scheduled for later steps
        published            float64 (channels, n): a value population's last published output
    /projections/<i>         attrs: name, pre, post, receptor, delay_steps (when one for all),
                                    all_to_all, autapses (schema 2; absent: all_to_all false)
        row_ptr, post_ids        (not for an implicit all-to-all projection)
        weights (the precision's type; one entry when shared), delay_steps (per synapse)
        pending              float64 (windows, width): spike counts still to reach a value population
        plasticity           a plastic projection's rule: attrs config (JSON), modulator;
                             pre_trace, pre_seen, post_trace, post_seen
    /spikes/<population>     SONATA spike layout: timestamps (float64, ms), node_ids (uint64);
                             attr sorting="by_time"
    /recordings/spikes/<i>   attrs: population, sonata (path of its /spikes group); ids (recorded subset)
    /recordings/state/<i>    attrs: population, variable, rows, every_steps; ids, steps (int64),
                             values (the precision's type (samples, channels, ids))

Every file is written to a temporary name and renamed over ``path`` when complete, so a
process killed while writing leaves the previous file intact. A checkpoint after the first
copies the previous checkpoint, appends the recordings made since and overwrites the state
(:class:`Checkpointer`); the recordings written leave memory, and monitors read them back from
the file when asked. Reading a file that is missing, truncated or not a ranvier file raises
:class:`~ranvier.errors.StorageError`, never an h5py error.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, StorageError
from . import distributions
from .distributions import Distribution
from .model import Model
from .monitors import SpikeMonitor, StateMonitor
from .network import PRECISIONS, Network, Population, Projection
from .plausibility import unchecked
from .state import Traces
from .stats import Stats

FORMAT = "ranvier"
#: bumped whenever the layout changes incompatibly; files of a newer version are refused
#: (2: implicit all-to-all projections, without row_ptr and post_ids)
SCHEMA_VERSION = 2
#: rows per HDF5 chunk of the appendable recording datasets
_CHUNK = 1 << 16
#: network -> (file, structure version) when its monitors' recordings up to now are in that file
#: (after a checkpoint, or loading), so the next checkpoint to that file only appends
_RECORDED_IN: weakref.WeakKeyDictionary[Network, tuple[Path, int]] = weakref.WeakKeyDictionary()


def _h5py():
    import h5py

    return h5py


# -- model configurations as JSON + arrays ------------------------------------------------------


def _encode(value: Any, arrays: list[np.ndarray], where: str) -> Any:
    """``value`` as JSON; arrays go into ``arrays`` and are referenced by index."""
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | float | np.integer | np.floating):
        return value.item() if isinstance(value, np.generic) else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # distributions, and records of weights such as CfC's and ELM's
        fields = {f.name: _encode(getattr(value, f.name), arrays, where) for f in dataclasses.fields(value) if f.init}
        if isinstance(value, Distribution):
            return {"__distribution__": type(value).__name__, "fields": fields}
        return {"__dataclass__": f"{type(value).__module__}.{type(value).__qualname__}", "fields": fields}
    if isinstance(value, dict):
        if not all(isinstance(key, str) and not key.startswith("__") for key in value):
            raise StorageError(f"{where}: dictionary keys must be strings not starting with '__' to be saved, "
                               f"got {list(value)!r}")
        return {key: _encode(item, arrays, where) for key, item in value.items()}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(item, arrays, where) for item in value]}
    if isinstance(value, list):
        return [_encode(item, arrays, where) for item in value]
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        arrays.append(np.asarray(value))
        return {"__array__": len(arrays) - 1}
    raise StorageError(f"{where}: cannot save a value of type {type(value).__name__} ({value!r}); "
                       "the model must override _config")


def _decode(value: Any, arrays, where: str) -> Any:
    if isinstance(value, list):
        return [_decode(item, arrays, where) for item in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        return arrays[str(value["__array__"])][()]
    if "__tuple__" in value:
        return tuple(_decode(item, arrays, where) for item in value["__tuple__"])
    if "__dataclass__" in value:
        cls = _import(value["__dataclass__"], where)
        if not dataclasses.is_dataclass(cls):
            raise StorageError(f"{where}: {value['__dataclass__']!r} is not a dataclass")
        return cls(**{key: _decode(item, arrays, where) for key, item in value["fields"].items()})
    if "__distribution__" not in value:
        return {key: _decode(item, arrays, where) for key, item in value.items()}
    name = value["__distribution__"]
    cls = getattr(distributions, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, Distribution)):
        raise StorageError(f"{where}: unknown distribution {name!r}")
    return cls(**{key: _decode(item, arrays, where) for key, item in value["fields"].items()})


#: classes that moved since files were written: the path a file names -> where the class is now
_MOVED = {f"ranvier.neurons.cfc_ltc.{name}": f"ranvier.neurons.{module}.{name}"
          for module, names in (("cfc", ("CfC", "CfCWeights", "CfCLayer")), ("ltc", ("LTC", "LTCWeights")))
          for name in names}


def _import(path: str, where: str) -> Any:
    """The class named by ``path`` (``module.qualname``): modules are imported, attributes followed."""
    parts = _MOVED.get(path, path).split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for part in parts[split:]:
                target = getattr(target, part)
        except AttributeError:
            break
        return target
    raise StorageError(f"{where}: class {path!r} cannot be imported")


def _model_class(path: str, where: str) -> type[Model]:
    target = _import(path, where)
    if not (isinstance(target, type) and issubclass(target, Model)):
        raise StorageError(f"{where}: {path!r} is not a ranvier neuron model")
    return target


# -- writing --------------------------------------------------------------------------------------


def _appendable(group, name: str, data: np.ndarray, dtype) -> None:
    """A dataset that can grow along its first axis."""
    data = np.asarray(data, dtype=dtype)
    chunks = (max(1, min(_CHUNK, len(data) or _CHUNK)), *data.shape[1:])
    group.create_dataset(name, data=data, maxshape=(None, *data.shape[1:]), chunks=chunks)


def _append(dataset, data: np.ndarray) -> None:
    old = dataset.shape[0]
    dataset.resize(old + len(data), axis=0)
    dataset[old:] = data


def _write_root(file, net: Network) -> None:
    from .. import __version__

    file.attrs.update(format=FORMAT, schema_version=SCHEMA_VERSION, ranvier_version=__version__,
                      precision=net.precision)
    _write_run_state(file, net)


def _write_run_state(file, net: Network) -> None:
    """What changes during a run besides state and recordings: time, seeds used, counts."""
    file.attrs.update(dt=net.dt, seed=str(net.seed), step=net.step,
                      seeds_spawned=net._seeds.n_children_spawned,
                      stats=json.dumps(dataclasses.asdict(net.stats)))


def _write_population(group, population: Population) -> None:
    model = population.model
    where = f"population {population.name!r}"
    arrays: list[np.ndarray] = []
    try:
        config = _encode(model._config(), arrays, where)
    except ModelError as error:
        raise StorageError(f"{where}: {error}") from None
    group.attrs.update(name=population.name, n=population.n, index=population.index, period=population.period,
                       held_until=population.network.run_state.population(population.name).held_until,
                       model=f"{type(model).__module__}.{type(model).__qualname__}", config=json.dumps(config))
    stored = group.create_group("config_arrays")
    for index, array in enumerate(arrays):
        stored.create_dataset(str(index), data=array)
    params = group.create_group("params")
    for name, values in population.params.items():
        params.create_dataset(name, data=values)
    group.create_dataset("state", data=population.state).attrs["state_names"] = list(model.state_names)
    _write_run_arrays(group, _population_run_arrays(population))


def _population_run_arrays(population: Population) -> dict[str, np.ndarray | None]:
    run = population.network.run_state.population(population.name)
    return {"ring": run.ring, "published": run.published}


def _write_run_arrays(group, arrays: dict[str, np.ndarray | None]) -> None:
    """Arrays that runs create and update (None before the first run), replacing older copies."""
    for name, array in arrays.items():
        if array is None:
            continue
        if name in group and group[name].shape == array.shape and group[name].dtype == array.dtype:
            group[name][...] = array
        else:
            if name in group:
                del group[name]
            group.create_dataset(name, data=array)


def _write_projection(group, projection: Projection) -> None:
    group.attrs.update(name=projection.name, pre=projection.pre.name, post=projection.post.name,
                       receptor=projection.receptor, all_to_all=projection.all_to_all, autapses=projection.autapses)
    if not projection.all_to_all:
        group.create_dataset("row_ptr", data=projection.row_ptr)
        group.create_dataset("post_ids", data=projection._post_ids)
    group.create_dataset("weights", data=projection._weights)
    if isinstance(projection.delay_steps, np.ndarray):
        group.create_dataset("delay_steps", data=projection.delay_steps)
    else:
        group.attrs["delay_steps"] = int(projection.delay_steps)
    _write_run_arrays(group, {"pending": projection.pre.network.run_state.projection(projection.name).pending})
    _write_learning(group, projection)


#: the arrays of a plastic projection's STDP traces
_TRACES = ("pre_trace", "pre_seen", "post_trace", "post_seen")
#: the constructor arguments of ``ranvier.plasticity.STDP`` besides its modulator population
_STDP_ARGUMENTS = ("tau_plus", "tau_minus", "a_plus", "a_minus", "w_min", "w_max", "rule", "modulates")


def _write_learning(group, projection: Projection) -> None:
    """A plastic projection's rule and traces (its weights are the projection's own)."""
    rule = projection.plasticity
    if rule is None:
        return
    learning = group.require_group("plasticity")
    learning.attrs.update(config=json.dumps({name: getattr(rule, name) for name in _STDP_ARGUMENTS}),
                          modulator="" if rule.modulator is None else rule.modulator.name)
    traces = projection.pre.network.run_state.projection(projection.name).traces
    if traces is not None:  # made by the first run
        _write_run_arrays(learning, {name: getattr(traces, name) for name in _TRACES})


def _sonata_names(net: Network) -> list[str]:
    """The /spikes group of each spike monitor: its population's name, made unique."""
    names: list[str] = []
    for monitor in net.spike_monitors:
        base = monitor.population.name.replace("/", "_")
        name, copy = base, 1
        while name in names:
            copy += 1
            name = f"{base}#{copy}"
        names.append(name)
    return names


def _write_spike_monitor(file, index: int, sonata: str, monitor: SpikeMonitor, dt: float) -> None:
    group = file.require_group("recordings/spikes").create_group(str(index))
    group.attrs.update(population=monitor.population.name, sonata=f"/spikes/{sonata}")
    if monitor.ids_recorded is not None:
        group.create_dataset("ids", data=monitor.ids_recorded)
    spikes = file.require_group("spikes").create_group(sonata)
    spikes.attrs["sorting"] = "by_time"
    _appendable(spikes, "timestamps", _milliseconds(monitor.steps, dt), np.float64)
    spikes["timestamps"].attrs["units"] = "ms"
    _appendable(spikes, "node_ids", monitor.ids, np.uint64)


def _milliseconds(steps: np.ndarray, dt: float) -> np.ndarray:
    """SONATA timestamps: a spike of step k is stamped (k + 1) dt (see SpikeMonitor), in ms."""
    return (np.asarray(steps, dtype=np.float64) + 1) * (dt * 1e3)


def _write_state_monitor(file, index: int, monitor: StateMonitor) -> None:
    group = file.require_group("recordings/state").create_group(str(index))
    group.attrs.update(population=monitor.population.name, variable=monitor.variable, rows=list(monitor.rows),
                       every_steps=monitor.every_steps)
    group.create_dataset("ids", data=monitor.ids)
    steps, values = monitor._samples()
    _appendable(group, "steps", steps, np.int64)
    _appendable(group, "values", values, monitor.population.network.dtype)


def _write_network(file, net: Network) -> None:
    _write_root(file, net)
    populations = file.create_group("populations")
    for population in net.populations.values():
        _write_population(populations.create_group(str(population.index)), population)
    projections = file.create_group("projections")
    for index, projection in enumerate(net.projections):
        _write_projection(projections.create_group(str(index)), projection)
    file.create_group("spikes")
    file.create_group("recordings/spikes")
    file.create_group("recordings/state")
    for index, (sonata, monitor) in enumerate(zip(_sonata_names(net), net.spike_monitors, strict=True)):
        _write_spike_monitor(file, index, sonata, monitor, net.dt)
    for index, monitor in enumerate(net.state_monitors):
        _write_state_monitor(file, index, monitor)


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """Write to a temporary file next to ``path``; rename it over ``path`` only when complete."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def _open(path: Path, mode: str):
    try:
        return _h5py().File(path, mode)
    except (OSError, ValueError) as error:
        raise StorageError(f"{path}: cannot open as HDF5 for {'reading' if mode == 'r' else 'writing'} "
                           f"({error})") from None


def save(net: Network, path: str | os.PathLike) -> None:
    """Write ``net`` (populations, parameters, connectivity, delays, state, recordings) to ``path``."""
    path = Path(path)
    if net._simulation is not None:
        net._simulation.runner.to_host()
    # the file will hold recordings still in memory too: appending them again would repeat them
    _RECORDED_IN.pop(net, None)
    with _replacing(path) as temporary:
        with _open(temporary, "w") as file:
            _write_network(file, net)


# -- reading --------------------------------------------------------------------------------------


class _WrittenSpikes:
    """The first ``count`` spikes of a monitor, kept in a file rather than in memory."""

    def __init__(self, path: Path, group: str, count: int, dt: float):
        self.path, self.group, self.count, self.dt = path, group, count, dt

    def _read(self, name: str) -> np.ndarray:
        with _reading(self.path) as file:
            return file[f"{self.group}/{name}"][:self.count]

    def steps(self) -> np.ndarray:
        return np.rint(self._read("timestamps") / (self.dt * 1e3)).astype(np.int64) - 1

    def ids(self) -> np.ndarray:
        return self._read("node_ids").astype(np.int64)


class _WrittenSamples:
    """The first ``count`` samples of a state monitor, kept in a file."""

    def __init__(self, path: Path, group: str, count: int):
        self.path, self.group, self.count = path, group, count

    def _read(self, name: str) -> np.ndarray:
        with _reading(self.path) as file:
            return file[f"{self.group}/{name}"][:self.count]

    def steps(self) -> np.ndarray:
        return self._read("steps")

    def values(self) -> np.ndarray:
        return self._read("values")


@contextmanager
def _reading(path: Path):
    """Open ``path`` for reading; any failure inside becomes a StorageError naming the file."""
    file = _open(path, "r")
    try:
        yield file
    except StorageError:
        raise
    except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError) as error:
        raise StorageError(f"{path}: damaged or incomplete ranvier file ({type(error).__name__}: {error})") from None
    finally:
        file.close()


def load(path: str | os.PathLike) -> Network:
    """The network saved in ``path`` by :func:`save` or a checkpoint, ready to run on.

    Recordings stay in the file and are read when a monitor's data is asked for;
    ``net.spike_monitors`` and ``net.state_monitors`` list the monitors in recording order.
    """
    path = Path(path)
    if not path.is_file():
        raise StorageError(f"{path}: no such file")
    with _reading(path) as file:
        attrs = file.attrs
        if attrs.get("format") != FORMAT:
            raise StorageError(f"{path}: not a ranvier file (format attribute {attrs.get('format')!r})")
        version = int(attrs["schema_version"])
        if version > SCHEMA_VERSION:
            raise StorageError(f"{path}: schema version {version} is newer than this ranvier reads "
                               f"({SCHEMA_VERSION}); upgrade ranvier")
        # files written before double precision existed hold float32 and no precision
        precision = str(attrs.get("precision", "single"))
        if precision not in PRECISIONS:
            raise StorageError(f"{path}: unknown precision {precision!r}; this ranvier reads "
                               f"{' and '.join(map(repr, PRECISIONS))}")
        net = Network(dt=float(attrs["dt"]), seed=int(attrs["seed"]), precision=precision)
        net._seeds = np.random.SeedSequence(net.seed, n_children_spawned=int(attrs["seeds_spawned"]))
        for key in sorted(file["populations"], key=int):
            _read_population(file["populations"][key], net, path)
        for key in sorted(file["projections"], key=int):
            _read_projection(file["projections"][key], net, path)
        for key in sorted(file["recordings/spikes"], key=int):
            _read_spike_monitor(file, f"recordings/spikes/{key}", net, path)
        for key in sorted(file["recordings/state"], key=int):
            _read_state_monitor(file, f"recordings/state/{key}", net, path)
        net.step = int(attrs["step"])
        net.stats = Stats(**json.loads(attrs["stats"]))
    net._changed()
    _RECORDED_IN[net] = (path.resolve(), net._structure_version)
    return net


def _read_population(group, net: Network, path: Path) -> None:
    name = str(group.attrs["name"])
    where = f"{path}: population {name!r}"
    cls = _model_class(str(group.attrs["model"]), where)
    config = _decode(json.loads(group.attrs["config"]), group["config_arrays"], where)
    try:
        with unchecked():  # checked when the model was first built
            model = cls._from_config(config)
    except (TypeError, ValueError) as error:
        raise StorageError(f"{where}: {cls.__name__} cannot be rebuilt from its saved configuration "
                           f"({error})") from None
    n = int(group.attrs["n"])
    params = {key: group["params"][key][()] for key in group["params"]}
    state = group["state"][()].astype(net.dtype, copy=False)
    if state.shape != (len(model.state_names), n) or any(values.shape != (n,) for values in params.values()):
        raise StorageError(f"{where}: saved state or parameters do not match {n} neurons of {cls.__name__}")
    population = Population(net, model, n, name, len(net.populations), params, state, int(group.attrs["period"]))
    run = net.run_state.population(name)
    run.ring = group["ring"][()].astype(net.dtype, copy=False) if "ring" in group else None
    run.published = group["published"][()] if "published" in group else None
    run.held_until = int(group.attrs["held_until"])
    net.populations[name] = population


def _read_projection(group, net: Network, path: Path) -> None:
    attrs = group.attrs
    delay_steps = group["delay_steps"][()] if "delay_steps" in group else int(attrs["delay_steps"])
    pre, post = net[str(attrs["pre"])], net[str(attrs["post"])]
    weights = group["weights"][()].astype(net.dtype, copy=False)
    # files of schema 1 hold every projection explicitly
    all_to_all, autapses = bool(attrs.get("all_to_all", False)), bool(attrs.get("autapses", True))
    where = f"{path}: projection {str(attrs['name'])!r}"
    if all_to_all and (weights.shape != (1,) or not isinstance(delay_steps, int) or "plasticity" in group):
        raise StorageError(f"{where}: an implicit all-to-all projection takes one weight, one delay and no "
                           f"plasticity; the file holds {weights.size} weight(s)")
    row_ptr, post_ids = (None, None) if all_to_all else (group["row_ptr"][()], group["post_ids"][()])
    projection = Projection(str(attrs["name"]), pre, post, str(attrs["receptor"]), row_ptr, post_ids, weights,
                            delay_steps, autapses)
    if not autapses and not (all_to_all and pre is post and projection.width == pre.n):
        raise StorageError(f"{where}: only an all-to-all projection within one population leaves out autapses")
    net.run_state.projection(projection.name).pending = group["pending"][()] if "pending" in group else None
    net.projections.append(projection)
    if "plasticity" in group:
        _read_learning(group["plasticity"], projection, net)


def _read_learning(group, projection: Projection, net: Network) -> None:
    # imported here as Network.connect does: the learning rules build on the engine
    from ..plasticity import STDP

    modulator = str(group.attrs["modulator"])
    STDP(**json.loads(group.attrs["config"]), modulator=net[modulator] if modulator else None).attach(projection)
    if all(name in group for name in _TRACES):
        net.run_state.projection(projection.name).traces = Traces(*(group[name][()] for name in _TRACES))


def _read_spike_monitor(file, name: str, net: Network, path: Path) -> None:
    group = file[name]
    monitor = SpikeMonitor(net[str(group.attrs["population"])], group["ids"][()] if "ids" in group else None)
    sonata = str(group.attrs["sonata"])
    count = len(file[f"{sonata}/timestamps"])
    if len(file[f"{sonata}/node_ids"]) != count:
        raise StorageError(f"{path}: {sonata} has {count} timestamps but {len(file[f'{sonata}/node_ids'])} node_ids")
    monitor._written = _WrittenSpikes(path, sonata, count, net.dt)
    net.spike_monitors.append(monitor)


def _read_state_monitor(file, name: str, net: Network, path: Path) -> None:
    group = file[name]
    population = net[str(group.attrs["population"])]
    variable = str(group.attrs["variable"])
    rows = tuple(int(row) for row in group.attrs["rows"])
    monitor = StateMonitor(population, variable, rows, group["ids"][()], int(group.attrs["every_steps"]))
    monitor._written = _WrittenSamples(path, name, len(group["steps"]))
    net.state_monitors.append(monitor)


def read_spikes(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The SONATA spikes of a file: population -> ``(timestamps in s, node_ids)``."""
    path = Path(path)
    with _reading(path) as file:
        spikes = file.get("spikes")
        if spikes is None:
            raise StorageError(f"{path}: no /spikes group")
        return {name: (group["timestamps"][()] * 1e-3, group["node_ids"][()].astype(np.int64))
                for name, group in spikes.items()}


# -- checkpoints ----------------------------------------------------------------------------------


class Checkpointer:
    """Writes a running network to ``path`` periodically.

    A checkpoint writes the whole network unless ``path`` already holds this network's
    recordings so far (it was loaded from there, or checkpointed there since its structure last
    changed); then it copies that file, appends the recordings made since, overwrites state,
    time and counts, and renames the copy over ``path``. A process killed at any moment leaves
    the last complete checkpoint. After each checkpoint the monitors' recorded data leaves
    memory and is read back from the file.
    """

    def __init__(self, net: Network, path: str | os.PathLike, every_steps: int):
        self.net = net
        self.path = Path(path)
        self.every_steps = every_steps
        #: the step at which the next checkpoint is due
        self.next_step = net.step + every_steps

    def start(self, step: int) -> None:
        """Count checkpoint intervals from ``step``, where the run starts."""
        self.next_step = step + self.every_steps

    def write(self) -> None:
        """Write the network as it stands, and schedule the next checkpoint."""
        net = self.net
        self.next_step = net.step + self.every_steps
        if _RECORDED_IN.get(net) != (self.path.resolve(), net._structure_version) or not self.path.is_file():
            save(net, self.path)
        else:
            with _replacing(self.path) as temporary:
                shutil.copyfile(self.path, temporary)
                with _open(temporary, "r+") as file:
                    self._update(file)
        self._release_recordings()
        _RECORDED_IN[net] = (self.path.resolve(), net._structure_version)

    def _update(self, file) -> None:
        net = self.net
        _write_run_state(file, net)
        for population in net.populations.values():
            group = file[f"populations/{population.index}"]
            group["state"][...] = population.state
            _write_run_arrays(group, _population_run_arrays(population))
            group.attrs["held_until"] = net.run_state.population(population.name).held_until
        for index, projection in enumerate(net.projections):
            group = file[f"projections/{index}"]
            _write_run_arrays(group, {"pending": net.run_state.projection(projection.name).pending})
            if projection.plasticity is not None:
                group["weights"][...] = projection._weights
                _write_learning(group, projection)
        for sonata, monitor in zip(_sonata_names(net), net.spike_monitors, strict=True):
            if monitor._steps:
                spikes = file[f"spikes/{sonata}"]
                _append(spikes["timestamps"], _milliseconds(np.concatenate(monitor._steps), net.dt))
                _append(spikes["node_ids"], np.concatenate(monitor._ids).astype(np.uint64))
        for index, monitor in enumerate(net.state_monitors):
            if monitor._steps:
                group = file[f"recordings/state/{index}"]
                # the monitor's earlier samples are in the file already (see _release_recordings)
                _append(group["steps"], np.concatenate(monitor._steps))
                _append(group["values"], np.stack([np.concatenate(chunks) for chunks in monitor._values], axis=1))

    def _release_recordings(self) -> None:
        net = self.net
        for sonata, monitor in zip(_sonata_names(net), net.spike_monitors, strict=True):
            written = monitor._written.count if monitor._written is not None else 0
            monitor._written = _WrittenSpikes(self.path, f"/spikes/{sonata}", written + monitor._count_memory(),
                                              net.dt)
            monitor._steps, monitor._ids = [], []
        for index, monitor in enumerate(net.state_monitors):
            written = monitor._written.count if monitor._written is not None else 0
            count = written + sum(len(chunk) for chunk in monitor._steps)
            monitor._written = _WrittenSamples(self.path, f"recordings/state/{index}", count)
            monitor._steps, monitor._values = [], [[] for _ in monitor.rows]
