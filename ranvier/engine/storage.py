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
                             convolution (int64 geometry, ``connectivity.GEOMETRY_FIELDS``: a
                             convolution, its kernel the weights, no row_ptr or post_ids)
        row_ptr, post_ids        (not for an implicit all-to-all projection or a convolution)
        weights (the precision's type; one entry when shared), delay_steps (per synapse)
        pending              float64 (windows, width): spike counts still to reach a value population
        plasticity           a plastic projection's rule: attrs config (JSON), modulator;
                             pre_trace, pre_seen, post_trace, post_seen
    /poisson_inputs/<i>      attrs: name, post, receptor, rate (Hz), n_inputs, weight (V, as held in
                             the precision); a Poisson drive inside its target (absent: none)
    /spikes/<population>     SONATA spike layout: timestamps (float64, ms), node_ids (uint64);
                             attr sorting = by_time (an HDF5 enum {none, by_id, by_time}, as
                             libsonata reads it)
    /recordings/spikes/<i>   attrs: population, sonata (path of its /spikes group); ids (recorded subset)
    /recordings/state/<i>    attrs: population, variable, rows, every_steps; ids, steps (int64),
                             values (the precision's type (samples, channels, ids))

A saved file is written to a temporary name and renamed over ``path`` when complete, so a
process killed while writing leaves the previous file intact. A checkpoint after the first
appends the recordings made since and the new state to the file and commits them with a journal
and a commit marker (:class:`Checkpointer`, :mod:`.journal`), so that a process killed at
any moment leaves the last committed checkpoint; the recordings written leave memory, and
monitors read them back from the file when asked. Reading a file that is missing, truncated or
not a ranvier file raises :class:`~ranvier.errors.StorageError`, never an h5py error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import shutil
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, ProjectionError, RanvierError, StorageError
from . import distributions
from .connectivity import Convolution
from .distributions import Distribution
from .journal import JournaledFile, lock, recover, settle
from .kinds import Kind
from .model import Model, ValueModel
from .monitors import SpikeMonitor, StateMonitor
from .network import _MAX_DELAY_STEPS, PRECISIONS, Network, Population, Projection, _sends_values, _sets_state
from .plausibility import unchecked
from .state import Traces
from .stats import Stats

FORMAT = "ranvier"
#: the latest step a file may hold: up to 2**53 every step's time ``step * dt`` is exact in float64
_MAX_STEP = 2**53
#: bumped whenever the layout changes incompatibly; files of a newer version are refused
#: (2: implicit all-to-all projections, without row_ptr and post_ids; 3: checksums (HDF5 1.10
#: format with checksummed metadata, Fletcher-32 on every dataset, a digest of the attributes),
#: a count on each group of numbered groups, a write id)
SCHEMA_VERSION = 3
#: most rows per HDF5 chunk of the appendable recording datasets
_CHUNK = 1 << 16
#: bytes per HDF5 chunk of an appendable dataset, at most (a chunk is held in memory while written)
_CHUNK_BYTES = 1 << 20
#: the HDF5 file format written: 1.10's, whose metadata (superblock, object headers, indices) carry checksums
_LIBVER = ("v110", "v110")
#: the groups of numbered groups, each with a ``count`` attribute (schema 3)
_NUMBERED = ("populations", "projections", "recordings/spikes", "recordings/state")
#: network -> (file, structure version, the file's write id) when its monitors' recordings up to now
#: are in that file (after a checkpoint, or loading), so the next checkpoint to that file only appends
_RECORDED_IN: weakref.WeakKeyDictionary[Network, tuple[Path, int, str | None]] = weakref.WeakKeyDictionary()


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters escaped."""
    import glob

    return glob.escape(name)


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
        dataset = arrays[str(value["__array__"])]
        return dataset[()].reshape(()) if dataset.attrs.get("scalar", False) else dataset[()]
    if "__tuple__" in value:
        return tuple(_decode(item, arrays, where) for item in value["__tuple__"])
    if "__dataclass__" in value:
        path = value["__dataclass__"]
        if not isinstance(path, str) or not isinstance(value.get("fields"), dict):
            raise StorageError(f"{where}: a dataclass record needs a class path and a mapping of fields, "
                               f"the file holds {value!r}")
        cls = _import(path, where)
        if not dataclasses.is_dataclass(cls):
            raise StorageError(f"{where}: {path!r} is not a dataclass")
        try:
            return cls(**{key: _decode(item, arrays, where) for key, item in value["fields"].items()})
        except TypeError as error:
            raise StorageError(f"{where}: {path} cannot be rebuilt from its saved fields ({error})") from None
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


#: classes a user allowed files to name, by the path a file names them with (``module.qualname``)
_REGISTERED: dict[str, type] = {}


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_model(cls: type) -> type:
    """Let files name ``cls``: loading resolves a ``model=`` or dataclass path only to ranvier's
    own classes (``ranvier.*``) and to the classes registered here, and refuses any other path
    (:class:`~ranvier.errors.StorageError`), so that a file never imports a module of its
    choosing. ``cls`` is a :class:`~ranvier.Model` subclass or a dataclass (a record in a model's
    configuration); it is registered under ``module.qualname``, the path that saving writes.
    Returns ``cls``, so it also works as a class decorator (``@rv.register_model``)."""
    if not (isinstance(cls, type) and (issubclass(cls, Model) or dataclasses.is_dataclass(cls))):
        raise StorageError(f"register_model: expected a Model subclass or a dataclass, got {cls!r}")
    _REGISTERED[_class_path(cls)] = cls
    return cls


def unregister_model(cls: type) -> None:
    """Undo :func:`register_model`: files may no longer name ``cls`` (nothing when it was not registered)."""
    path = _class_path(cls)
    if _REGISTERED.get(path) is cls:
        del _REGISTERED[path]


@contextmanager
def registered(*classes: type) -> Iterator[None]:
    """Register ``classes`` for the duration of a ``with`` block, then restore the registry."""
    saved = dict(_REGISTERED)
    try:
        for cls in classes:
            register_model(cls)
        yield
    finally:
        _REGISTERED.clear()
        _REGISTERED.update(saved)


def _ranvier_module(name: str) -> bool:
    return name == "ranvier" or name.startswith("ranvier.")


def _import(path: str, where: str) -> Any:
    """The class named by ``path`` (``module.qualname``): a registered class, or a class defined in
    one of ranvier's modules (imported, attributes followed). Any other path is refused without
    importing anything."""
    path = _MOVED.get(path, path)
    if path in _REGISTERED:
        return _REGISTERED[path]
    refused = StorageError(f"{where}: refusing to import {path!r}: only ranvier's models and registered ones load; "
                           f"call rv.register_model({path.rsplit('.', 1)[-1]}) first")
    parts = path.split(".")
    if not _ranvier_module(path) or not all(part.isidentifier() and not part.startswith("__") for part in parts):
        raise refused
    for split in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:split])
        try:
            target: Any = importlib.import_module(module)
        except ImportError:
            continue
        try:
            for part in parts[split:]:
                target = getattr(target, part)
        except AttributeError:
            break
        # only a class defined where the path says (not one a ranvier module merely imported, such as os's)
        if not (isinstance(target, type) and _ranvier_module(target.__module__)):
            raise refused
        return target
    raise StorageError(f"{where}: class {path!r} cannot be imported")


def _model_class(path: str, where: str) -> type[Model]:
    target = _import(path, where)
    if not (isinstance(target, type) and issubclass(target, Model)):
        raise StorageError(f"{where}: {path!r} is not a ranvier neuron model")
    return target


# -- writing --------------------------------------------------------------------------------------


def _dataset(group, name: str, data, dtype=None, appendable: bool = False):
    """A dataset checked by a Fletcher-32 checksum per chunk; ``appendable``: it can grow along its
    first axis. A 0-d array is stored as one entry with attribute ``scalar`` (it cannot be chunked)."""
    data = np.asarray(data, dtype=dtype)
    if data.ndim == 0:
        dataset = group.create_dataset(name, data=data.reshape(1), chunks=(1,), fletcher32=True)
        dataset.attrs["scalar"] = True
        return dataset
    if appendable or data.size == 0:
        row_bytes = max(1, int(np.prod(data.shape[1:], dtype=np.int64)) * data.dtype.itemsize)
        rows = max(1, min(_CHUNK, len(data) or _CHUNK, _CHUNK_BYTES // row_bytes))
        chunks = (rows, *(max(1, size) for size in data.shape[1:]))
        # an axis of length 0 must be growable for a chunk of 1 to fit it
        maxshape = (None, *(None if size == 0 else size for size in data.shape[1:]))
        return group.create_dataset(name, data=data, maxshape=maxshape, chunks=chunks, fletcher32=True)
    return group.create_dataset(name, data=data, chunks=True, fletcher32=True)


def _appendable(group, name: str, data: np.ndarray, dtype) -> None:
    """A dataset that can grow along its first axis."""
    _dataset(group, name, data, dtype, appendable=True)


def _attribute_digest(file) -> np.ndarray:
    """SHA-256 of every attribute, group and dataset name, shape, type and filter of ``file``.

    The HDF5 1.10 format checksums its metadata, but not the global heap that holds string
    attributes; Fletcher-32 checks the data. This digest covers what neither does."""
    h5py = _h5py()
    digest = hashlib.sha256()
    objects = [("/", file)]
    file.visititems(lambda name, item: objects.append((name, item)))
    for name, item in sorted(objects, key=lambda pair: pair[0]):
        digest.update(f"{name}\0{type(item).__name__}\0".encode())
        if isinstance(item, h5py.Dataset):
            digest.update(f"{item.shape}\0{item.dtype.str}\0{item.chunks}\0{item.fletcher32}\0"
                          f"{item.compression}\0".encode())
        for key in sorted(item.attrs):
            if name == "/" and key == "integrity":
                continue
            value = item.attrs[key]
            shown = value.tolist() if isinstance(value, np.ndarray | np.generic) else value
            digest.update(f"{key}\0{type(value).__name__}\0{shown!r}\0".encode())
    return np.frombuffer(digest.digest(), dtype=np.uint8)


def _seal(file) -> str:
    """Mark the file as written now (a new write id, returned) and store the digest of its attributes."""
    write_id = uuid.uuid4().hex
    file.attrs["write_id"] = write_id
    file.attrs["integrity"] = _attribute_digest(file)
    return write_id


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
        _dataset(stored, str(index), array)
    params = group.create_group("params")
    for name, values in population.params.items():
        _dataset(params, name, values)
    _dataset(group, "state", population.state).attrs["state_names"] = list(model.state_names)
    _write_run_arrays(group, _population_run_arrays(population))


def _population_run_arrays(population: Population) -> dict[str, np.ndarray | None]:
    run = population.network.run_state.population(population.name)
    return {"ring": run.ring, "published": run.published}


def _write_run_arrays(group, arrays: dict[str, np.ndarray | None]) -> None:
    """Arrays that runs create and update (None before the first run), replacing older copies; the
    group's attribute ``run_arrays`` lists those it holds (schema 3), so that a deleted one is an error."""
    for name, array in arrays.items():
        if array is None:
            continue
        if name in group and group[name].shape == array.shape and group[name].dtype == array.dtype:
            group[name][...] = array
        else:
            if name in group:
                del group[name]
            _dataset(group, name, array)
    held = set(json.loads(group.attrs.get("run_arrays", "[]"))) | {name for name, array in arrays.items()
                                                                    if array is not None}
    group.attrs["run_arrays"] = json.dumps(sorted(held))


def _write_projection(group, projection: Projection) -> None:
    group.attrs.update(name=projection.name, pre=projection.pre.name, post=projection.post.name,
                       receptor=projection.receptor, all_to_all=projection.all_to_all, autapses=projection.autapses,
                       plastic=projection.plasticity is not None)
    if projection.convolution is not None:
        # the kernel is the weights; the synapses follow from the geometry
        group.attrs["convolution"] = projection.convolution.geometry()
    elif not projection.all_to_all:
        _dataset(group, "row_ptr", projection.row_ptr)
        _dataset(group, "post_ids", projection._post_ids)
    _dataset(group, "weights", projection._weights)
    if isinstance(projection.delay_steps, np.ndarray):
        _dataset(group, "delay_steps", projection.delay_steps)
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
    # made by the first run
    _write_run_arrays(learning, {} if traces is None else {name: getattr(traces, name) for name in _TRACES})


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
    group.attrs.update(population=monitor.population.name, sonata=f"/spikes/{sonata}",
                       subset=monitor.ids_recorded is not None)
    if monitor.ids_recorded is not None:
        _dataset(group, "ids", monitor.ids_recorded)
    spikes = file.require_group("spikes").create_group(sonata)
    write_sonata_sorting(spikes, "by_time")
    _appendable(spikes, "timestamps", _milliseconds(monitor.steps, dt), np.float64)
    spikes["timestamps"].attrs["units"] = "ms"
    _appendable(spikes, "node_ids", monitor.ids, np.uint64)


#: SONATA's ``sorting`` attribute of a spike population: an HDF5 enum of this base type (libsonata
#: reads nothing else; a string attribute makes its ``SpikeReader`` fail)
SONATA_SORTING = {"none": 0, "by_id": 1, "by_time": 2}


def write_sonata_sorting(group, sorting: str) -> None:
    """Set the SONATA ``sorting`` attribute (``"none"``, ``"by_id"`` or ``"by_time"``) of ``group``."""
    h5py = _h5py()
    group.attrs.create("sorting", SONATA_SORTING[sorting],
                       dtype=h5py.enum_dtype(SONATA_SORTING, basetype=np.int8))


def read_sonata_sorting(group) -> str | None:
    """The SONATA ``sorting`` of a spike population group: the enum, or the string bmtk writes; None if absent."""
    if "sorting" not in group.attrs:
        return None
    value = group.attrs["sorting"]
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        return value
    names = {code: name for name, code in SONATA_SORTING.items()}
    return names.get(int(value), "unknown")


def _milliseconds(steps: np.ndarray, dt: float) -> np.ndarray:
    """SONATA timestamps: a spike of step k is stamped (k + 1) dt (see SpikeMonitor), in ms."""
    return (np.asarray(steps, dtype=np.float64) + 1) * (dt * 1e3)


def _write_state_monitor(file, index: int, monitor: StateMonitor) -> None:
    group = file.require_group("recordings/state").create_group(str(index))
    group.attrs.update(population=monitor.population.name, variable=monitor.variable, rows=list(monitor.rows),
                       every_steps=monitor.every_steps)
    _dataset(group, "ids", monitor.ids)
    steps, values = monitor._samples()
    _appendable(group, "steps", steps, np.int64)
    _appendable(group, "values", values, monitor.population.network.dtype)


def _write_network(file, net: Network) -> str:
    _write_root(file, net)
    populations = file.create_group("populations")
    for population in net.populations.values():
        _write_population(populations.create_group(str(population.index)), population)
    projections = file.create_group("projections")
    for index, projection in enumerate(net.projections):
        _write_projection(projections.create_group(str(index)), projection)
    if net.poisson_inputs:
        drives = file.create_group("poisson_inputs")
        for index, drive in enumerate(net.poisson_inputs):
            attrs = drives.create_group(str(index)).attrs
            attrs["name"], attrs["post"], attrs["receptor"] = drive.name, drive.post.name, drive.receptor
            attrs["rate"], attrs["n_inputs"], attrs["weight"] = drive.rate, drive.n_inputs, float(drive.weight)
    file.create_group("spikes")
    file.create_group("recordings/spikes")
    file.create_group("recordings/state")
    for index, (sonata, monitor) in enumerate(zip(_sonata_names(net), net.spike_monitors, strict=True)):
        _write_spike_monitor(file, index, sonata, monitor, net.dt)
    for index, monitor in enumerate(net.state_monitors):
        _write_state_monitor(file, index, monitor)
    counts = (len(net.populations), len(net.projections), len(net.spike_monitors), len(net.state_monitors))
    for name, count in zip(_NUMBERED, counts, strict=True):
        file[name].attrs["count"] = count
    return _seal(file)


#: a temporary file of a process that is gone is removed once it is this old (s)
STALE_SECONDS = 60.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temporaries(directory: Path, pattern: str) -> list[Path]:
    """Remove the files matching ``pattern`` (a glob whose second-to-last dot-separated field is
    the writer's process id, as ``.<name>.<pid>.tmp``) left in ``directory`` by a killed process:
    their process is gone on this machine and they have not changed for :data:`STALE_SECONDS`."""
    import time

    removed = []
    for candidate in directory.glob(pattern):
        try:
            pid = int(candidate.name.rsplit(".", 2)[-2])
            if pid == os.getpid() or _alive(pid) or time.time() - candidate.stat().st_mtime < STALE_SECONDS:
                continue
            candidate.unlink()
            removed.append(candidate)
        except (ValueError, IndexError, OSError):
            continue
    return removed


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """Write to a temporary file next to ``path``; rename it over ``path`` only when complete.

    Temporary files of earlier writers to ``path`` that were killed are removed first."""
    if path.is_dir():
        raise StorageError(f"{path}: is a directory; give the path of a file to write")
    if not path.parent.is_dir():
        raise StorageError(f"{path}: directory {str(path.parent)!r} does not exist")
    remove_stale_temporaries(path.parent, f".{glob_escape(path.name)}.*.tmp")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        try:
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except OSError as error:
            raise StorageError(f"{path}: cannot write ({type(error).__name__}: {error})") from None
    finally:
        if temporary.exists():
            temporary.unlink()


def _open(path: Path, mode: str, source: JournaledFile | None = None):
    """``path`` as an h5py file; ``source``: the file object through which to read and write it instead."""
    try:
        return _h5py().File(path if source is None else source, mode, **({} if mode == "r" else {"libver": _LIBVER}))
    except (OSError, ValueError) as error:
        raise StorageError(f"{path}: cannot open as HDF5 for {'reading' if mode == 'r' else 'writing'} "
                           f"({error})") from None


def save(net: Network, path: str | os.PathLike) -> None:
    """Write ``net`` (populations, parameters, connectivity, delays, state, recordings) to ``path``."""
    _save(net, Path(path))


def _save(net: Network, path: Path) -> str:
    """:func:`save`; returns the write id of the file written."""
    if net._simulation is not None:
        net._simulation.runner.to_host()
    # the file will hold recordings still in memory too: appending them again would repeat them
    _RECORDED_IN.pop(net, None)
    with _replacing(path) as temporary:
        with _open(temporary, "w") as file:
            write_id = _write_network(file, net)
    # monitors that read their first recordings from the file just replaced find them in the new
    # one, at the same place
    resolved = path.resolve()
    for monitor in (*net.spike_monitors, *net.state_monitors):
        if monitor._written is not None and monitor._written.path.resolve() == resolved:
            monitor._written.write_id = write_id
    return write_id


# -- reading --------------------------------------------------------------------------------------


class _WrittenSpikes:
    """The first ``count`` spikes of a monitor, kept in a file rather than in memory.

    ``write_id`` is the file's write id when they were written: a file replaced since (another
    save or checkpoint to the same path) is refused rather than read. Spikes read back are
    checked: ids within the population, steps on the grid, in time order and before ``steps``."""

    def __init__(self, path: Path, group: str, count: int, dt: float, write_id: str | None = None,
                 n: int | None = None, steps: int | None = None):
        self.path, self.group, self.count, self.dt = path, group, count, dt
        self.write_id, self.n, self.limit = write_id, n, steps

    def _read(self, name: str) -> np.ndarray:
        with _reading(self.path) as file:
            _check_write_id(file, self.path, self.write_id)
            return file[f"{self.group}/{name}"][:self.count]

    def steps(self) -> np.ndarray:
        milliseconds = self._read("timestamps").astype(np.float64)
        where = f"{self.path}: {self.group}/timestamps"
        grid = milliseconds / (self.dt * 1e3)
        if not np.all(np.isfinite(grid)):
            raise StorageError(f"{where}: holds a timestamp that is not finite")
        steps = np.rint(grid).astype(np.int64) - 1
        off = np.abs(grid - (steps + 1)) > 1e-6 * np.maximum(1.0, np.abs(grid))
        if np.any(off):
            raise StorageError(f"{where}: timestamp {milliseconds[off][0]!r} ms is not a multiple of dt")
        if steps.size and (steps.min() < 0 or (self.limit is not None and steps.max() >= self.limit)):
            raise StorageError(f"{where}: holds spikes outside the steps run ({steps.min()} .. {steps.max()}; "
                               f"the file ran {self.limit} steps)")
        if np.any(np.diff(steps) < 0):
            raise StorageError(f"{where}: timestamps are not in time order (the file says sorting=by_time)")
        return steps

    def ids(self) -> np.ndarray:
        ids = self._read("node_ids")
        where = f"{self.path}: {self.group}/node_ids"
        if ids.dtype.kind not in "iu":
            raise StorageError(f"{where}: must hold integers, the file holds {ids.dtype}")
        if ids.size and self.n is not None and (ids.min() < 0 or ids.max() >= self.n):
            bad = ids.max() if ids.max() >= self.n else ids.min()
            raise StorageError(f"{where}: holds {bad}, outside the population ({self.n} neurons)")
        return ids.astype(np.int64)


class _WrittenSamples:
    """The first ``count`` samples of a state monitor, kept in a file (``write_id`` as above)."""

    def __init__(self, path: Path, group: str, count: int, write_id: str | None = None, steps: int | None = None):
        self.path, self.group, self.count, self.write_id, self.limit = path, group, count, write_id, steps

    def _read(self, name: str) -> np.ndarray:
        with _reading(self.path) as file:
            _check_write_id(file, self.path, self.write_id)
            return file[f"{self.group}/{name}"][:self.count]

    def steps(self) -> np.ndarray:
        steps = self._read("steps")
        where = f"{self.path}: {self.group}/steps"
        if steps.dtype.kind not in "iu":
            raise StorageError(f"{where}: must hold integers, the file holds {steps.dtype}")
        if steps.size and (steps.min() < 0 or (self.limit is not None and steps.max() >= self.limit)
                           or np.any(np.diff(steps) <= 0)):
            raise StorageError(f"{where}: sample steps must increase within the {self.limit} steps run")
        return steps.astype(np.int64)

    def values(self) -> np.ndarray:
        return self._read("values")


def _check_write_id(file, path: Path, expected: str | None) -> None:
    if expected is not None and file.attrs.get("write_id") != expected:
        raise StorageError(f"{path}: the file was replaced since these recordings were written or loaded "
                           "(another save or checkpoint to that path); load it again to read them")


def _is_ranvier_file(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file that ranvier wrote (its root's ``format`` attribute)."""
    try:
        with _h5py().File(path, "r") as file:
            return file.attrs.get("format") == FORMAT
    except (OSError, ValueError):
        return False


@contextmanager
def _reading(path: Path):
    """Open ``path`` for reading; any failure inside becomes a StorageError naming the file.

    A checkpoint that a killed process left half written is settled first (:func:`settle`)."""
    settle(path, _is_ranvier_file)
    file = _open(path, "r")
    try:
        yield file
    except StorageError:
        raise
    except RanvierError as error:
        # a declaration in the file that the network refuses (a bad dt, receptor, rule parameter)
        raise StorageError(f"{path}: {error}") from None
    except (OSError, KeyError, ValueError, TypeError, IndexError, OverflowError, AttributeError, RuntimeError,
            json.JSONDecodeError) as error:
        raise StorageError(f"{path}: damaged or incomplete ranvier file ({type(error).__name__}: {error})") from None
    finally:
        file.close()


# -- checking what a file holds ---------------------------------------------------------------


def _read_poisson_input(attrs, net: Network, where: str) -> None:
    """A Poisson drive (``/poisson_inputs/<i>``), checked as ``Network.connect`` checks it."""
    from ..errors import ProjectionError
    from .poisson_input import PoissonInput, make_drive

    post = _attr(attrs, "post", where, str)
    if post not in net.populations:
        raise StorageError(f"{where}: drives unknown population {post!r}")
    try:
        source = PoissonInput(_attr(attrs, "rate", where, float), _attr(attrs, "n_inputs", where, int))
        drive = make_drive(net, source, net[post], None, _attr(attrs, "weight", where, float), None,
                           _attr(attrs, "receptor", where, str), None)
    except ProjectionError as error:
        raise StorageError(f"{where}: {error}") from None
    drive.name = _attr(attrs, "name", where, str)
    net.poisson_inputs.append(drive)


def _attr(attrs, name: str, where: str, kind: type, low: int | None = None):
    """Attribute ``name`` as a ``kind`` (int, float, str or bool), checked against ``low``."""
    if name not in attrs:
        raise StorageError(f"{where}: attribute {name!r} is missing")
    value = attrs[name]
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise StorageError(f"{where}: attribute {name!r} must be one value, the file holds {value.shape}")
        value = value.reshape(()).item()
    if isinstance(value, np.generic):
        value = value.item()
    if kind is str:
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="strict")
        if not isinstance(value, str):
            raise StorageError(f"{where}: attribute {name!r} must be text, the file holds {value!r}")
        return value
    if kind is bool:
        if isinstance(value, bool | int) and value in (0, 1):
            return bool(value)
        raise StorageError(f"{where}: attribute {name!r} must be true or false, the file holds {value!r}")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise StorageError(f"{where}: attribute {name!r} must be an integer, the file holds {value!r}")
        if low is not None and value < low:
            raise StorageError(f"{where}: {name} = {value} must be at least {low}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise StorageError(f"{where}: attribute {name!r} must be a finite number, the file holds {value!r}")
    return float(value)


def _array(group, name: str, where: str, kind: str, shape: tuple | None = None, ndim: int | None = None,
           low=None, high=None, outside: str = "", read: bool = True):
    """Dataset ``name`` of ``group``, checked: ``kind`` "int" (integers) or "float"; ``shape`` (None
    entries free) or ``ndim``; values in ``[low, high)`` (``outside`` describes the range). With
    ``read=False`` only the dataset's type and shape are checked and the dataset is returned."""
    h5py = _h5py()
    if name not in group:
        raise StorageError(f"{where}: dataset {name!r} is missing")
    dataset = group[name]
    if not isinstance(dataset, h5py.Dataset):
        raise StorageError(f"{where}: {name!r} is not a dataset")
    dtype = dataset.dtype
    if (kind == "int" and dtype.kind not in "iu") or (kind == "float" and dtype.kind != "f"):
        expected = "integers" if kind == "int" else "floating-point numbers"
        raise StorageError(f"{where}: {name} must hold {expected}, the file holds {dtype}")
    scalar = bool(dataset.attrs.get("scalar", False))
    actual = () if scalar else dataset.shape
    if scalar and dataset.shape != (1,):
        raise StorageError(f"{where}: {name} is marked scalar but holds shape {dataset.shape}")
    if ndim is not None and len(actual) != ndim:
        raise StorageError(f"{where}: {name} must have {ndim} dimension(s), the file holds shape {actual}")
    if shape is not None and (len(actual) != len(shape) or
                              any(want is not None and want != got for want, got in zip(shape, actual, strict=True))):
        wanted = tuple("any" if want is None else want for want in shape)
        raise StorageError(f"{where}: {name} must have shape {wanted}, the file holds {actual}")
    if not read:
        return dataset
    values = dataset[()]
    if scalar:
        values = values.reshape(())
    if values.size:
        if kind == "float" and not np.all(np.isfinite(values)):
            raise StorageError(f"{where}: {name} holds a value that is not finite")
        if low is not None and values.min() < low:
            raise StorageError(f"{where}: {name} holds {values.min()}, {outside or f'below {low}'}")
        if high is not None and values.max() >= high:
            raise StorageError(f"{where}: {name} holds {values.max()}, {outside or f'at or above {high}'}")
    return values


def _numbered(file, name: str, where: str, version: int) -> list[str]:
    """The members of group ``name`` (``0``, ``1``, ...), in order; schema 3 checks its ``count``."""
    if name not in file:
        raise StorageError(f"{where}: group /{name} is missing")
    keys = list(file[name])
    if not all(key.isdigit() for key in keys):
        raise StorageError(f"{where}: /{name} holds members not numbered 0, 1, ...: {sorted(keys)[:5]}")
    count = _attr(file[name].attrs, "count", f"{where}: /{name}", int, low=0) if version >= 3 else len(keys)
    if count != len(keys) or sorted(map(int, keys)) != list(range(count)):
        missing = sorted(set(range(min(count, len(keys) + 5))) - set(map(int, keys)))
        raise StorageError(f"{where}: /{name} must hold {count} member(s) numbered 0 .. {count - 1}, "
                           f"the file holds {sorted(keys, key=int)}" + (f" ({missing[:5]} missing)" if missing else ""))
    return [str(index) for index in range(count)]


def _check_run_arrays(group, names: tuple[str, ...], where: str, version: int) -> None:
    """Schema 3: the run arrays a group holds are those its ``run_arrays`` attribute lists."""
    if version < 3:
        return
    listed = json.loads(_attr(group.attrs, "run_arrays", where, str))
    held = sorted(name for name in names if name in group)
    if not isinstance(listed, list) or sorted(map(str, listed)) != held:
        raise StorageError(f"{where}: the file lists run arrays {listed} but holds {held}")


def _check_ids(ids: np.ndarray, population: Population, where: str) -> np.ndarray:
    if ids.size and np.any(np.diff(ids) <= 0):
        raise StorageError(f"{where}: ids must be distinct and increasing")
    return ids.astype(np.int64)


# -- reading --------------------------------------------------------------------------------------


def load(path: str | os.PathLike) -> Network:
    """The network saved in ``path`` by :func:`save` or a checkpoint, ready to run on.

    Recordings stay in the file and are read when a monitor's data is asked for;
    ``net.spike_monitors`` and ``net.state_monitors`` list the monitors in recording order.
    Every array is checked against the declaration (``docs/storage.md``, "Damaged files"): a file
    that could make a run read or write outside its arrays is a :class:`StorageError`.
    """
    path = Path(path)
    if not path.is_file():
        raise StorageError(f"{path}: no such file")
    with _reading(path) as file:
        attrs = file.attrs
        if attrs.get("format") != FORMAT:
            raise StorageError(f"{path}: not a ranvier file (format attribute {attrs.get('format')!r})")
        where = str(path)
        version = _attr(attrs, "schema_version", where, int, low=1)
        if version > SCHEMA_VERSION:
            raise StorageError(f"{path}: schema version {version} is newer than this ranvier reads "
                               f"({SCHEMA_VERSION}); upgrade ranvier")
        if version >= 3:
            stored = attrs.get("integrity")
            if not (isinstance(stored, np.ndarray) and stored.dtype == np.uint8
                    and np.array_equal(stored, _attribute_digest(file))):
                raise StorageError(f"{path}: damaged ranvier file: its attributes or structure do not match the "
                                   "digest written with them")
        # files written before double precision existed hold float32 and no precision
        precision = _attr(attrs, "precision", where, str) if "precision" in attrs else "single"
        if precision not in PRECISIONS:
            raise StorageError(f"{path}: unknown precision {precision!r}; this ranvier reads "
                               f"{' and '.join(map(repr, PRECISIONS))}")
        seed = attrs["seed"]
        try:
            seed = int(seed.decode() if isinstance(seed, bytes) else seed)
        except (TypeError, ValueError):
            raise StorageError(f"{path}: seed {seed!r} is not an integer") from None
        if seed < 0:
            raise StorageError(f"{path}: seed {seed} is negative")
        net = Network(dt=_attr(attrs, "dt", where, float), seed=seed, precision=precision)
        net._seeds = np.random.SeedSequence(net.seed, n_children_spawned=_attr(attrs, "seeds_spawned", where, int,
                                                                               low=0))
        step = _attr(attrs, "step", where, int, low=0)
        if step > _MAX_STEP:
            raise StorageError(f"{where}: step = {step} exceeds {_MAX_STEP} (2**53), past which a step's time "
                               "(step x dt, float64) is no longer exact")
        for key in _numbered(file, "populations", where, version):
            _read_population(file["populations"][key], net, path, step, version)
        for key in _numbered(file, "projections", where, version):
            _read_projection(file["projections"][key], net, path, step, version)
        drives = file["poisson_inputs"] if "poisson_inputs" in file else {}
        for key in sorted(drives, key=lambda key: int(key) if key.isdigit() else -1):
            _read_poisson_input(drives[key].attrs, net, f"{path}: /poisson_inputs/{key}")
        write_id = _attr(attrs, "write_id", where, str) if version >= 3 else None
        for key in _numbered(file, "recordings/spikes", where, version):
            _read_spike_monitor(file, f"recordings/spikes/{key}", net, path, step, write_id, version)
        sonata = _sonata_names(net)
        for monitor, name in zip(net.spike_monitors, sonata, strict=True):
            if monitor._written.group != f"/spikes/{name}":
                raise StorageError(f"{path}: spike monitor of {monitor.population.name!r} names "
                                   f"{monitor._written.group!r}; its spikes belong in /spikes/{name}")
        for key in _numbered(file, "recordings/state", where, version):
            _read_state_monitor(file, f"recordings/state/{key}", net, path, step, write_id)
        net.step = step
        stats = json.loads(_attr(attrs, "stats", where, str))
        if not isinstance(stats, dict):
            raise StorageError(f"{path}: stats must be a JSON object, the file holds {stats!r}")
        net.stats = Stats(**stats)
    net._changed()
    _RECORDED_IN[net] = (path.resolve(), net._structure_version, write_id)
    return net


def _read_population(group, net: Network, path: Path, step: int, version: int) -> None:
    name = _attr(group.attrs, "name", f"{path}: {group.name}", str)
    where = f"{path}: population {name!r}"
    if name in net.populations:
        raise StorageError(f"{where}: a second population of that name")
    cls = _model_class(_attr(group.attrs, "model", where, str), where)
    if "config_arrays" not in group:
        raise StorageError(f"{where}: group 'config_arrays' is missing")
    config = _decode(json.loads(_attr(group.attrs, "config", where, str)), group["config_arrays"], where)
    if not isinstance(config, dict):
        raise StorageError(f"{where}: config must be a JSON object, the file holds {config!r}")
    try:
        with unchecked():  # checked when the model was first built
            model = cls._from_config(config)
    except (TypeError, ValueError) as error:
        raise StorageError(f"{where}: {cls.__name__} cannot be rebuilt from its saved configuration "
                           f"({error})") from None
    n = _attr(group.attrs, "n", where, int, low=1)
    size = getattr(model, "size", None)
    if size is not None and size != n:
        raise StorageError(f"{where}: n = {n}, but its {cls.__name__} has {size} neurons")
    period = _attr(group.attrs, "period", where, int, low=1)
    if period > 1 and model.kind == Kind.SCHEDULED:
        raise StorageError(f"{where}: period = {period}; a {cls.__name__} updates every step")
    if "params" not in group:
        raise StorageError(f"{where}: group 'params' is missing")
    expected = set(model.parameters)
    if set(group["params"]) != expected:
        raise StorageError(f"{where}: params must be {sorted(expected)}, the file holds {sorted(group['params'])}")
    params = {key: _array(group["params"], key, f"{where}: params", "float", shape=(n,)).astype(np.float64)
              for key in sorted(expected)}
    try:
        with unchecked():
            model.constants(params, net.dt * period)  # parameter values in range, as at declaration
            if model.kind == Kind.SCHEDULED:
                model.schedule(net.dt, name)
    except ValueError as error:
        message = str(error).removeprefix(f"population {name!r}: ")  # as a source's own check names it
        raise StorageError(f"{where}: {message}") from None
    names = list(model.state_names)
    state = _array(group, "state", where, "float", shape=(len(names), n)).astype(net.dtype, copy=False)
    saved_names = group["state"].attrs.get("state_names")
    saved = None if saved_names is None else [str(item) for item in np.atleast_1d(saved_names)]
    if saved != names:
        raise StorageError(f"{where}: state rows must be {names}, the file names {saved}")
    population = Population(net, model, n, name, len(net.populations), params, state, period)
    _check_run_arrays(group, ("ring", "published"), where, version)
    run = net.run_state.population(name)
    receptors = len(model.receptors)
    run.ring = (_array(group, "ring", where, "float", shape=(None, receptors, n)).astype(net.dtype, copy=False)
                if "ring" in group else None)
    if run.ring is not None and run.ring.shape[0] < 1:
        raise StorageError(f"{where}: ring has no slots")
    if "published" in group:
        channels = getattr(model, "channels", None)
        if channels is None:
            raise StorageError(f"{where}: a {cls.__name__} publishes no output, the file holds one")
        run.published = _array(group, "published", where, "float", shape=(channels, n)).astype(np.float64)
    run.held_until = _attr(group.attrs, "held_until", where, int, low=0)
    net.populations[name] = population


def _read_projection(group, net: Network, path: Path, step: int, version: int) -> None:
    attrs = group.attrs
    name = _attr(attrs, "name", f"{path}: {group.name}", str)
    where = f"{path}: projection {name!r}"
    if any(other.name == name for other in net.projections):
        raise StorageError(f"{where}: a second projection of that name")
    pre, post = net[_attr(attrs, "pre", where, str)], net[_attr(attrs, "post", where, str)]
    receptor = _attr(attrs, "receptor", where, str)
    if receptor not in post.model.receptors and not _sets_state(pre, post, receptor):
        raise StorageError(f"{where}: unknown receptor {receptor!r}; {post.name!r} has "
                           f"{list(post.model.receptors) or 'none'}")
    if post.model.kind not in (Kind.SPIKING, Kind.VALUE):
        raise StorageError(f"{where}: {post.name!r} takes no synaptic input")
    width = Network._check_channels(pre, post, receptor, name)
    # files of schema 1 hold every projection explicitly
    all_to_all = _attr(attrs, "all_to_all", where, bool) if "all_to_all" in attrs else False
    autapses = _attr(attrs, "autapses", where, bool) if "autapses" in attrs else True
    targets = (f"outside population {post.name!r} ({post.n} neurons)" if width == post.n else
               f"outside port {receptor!r} of {post.name!r} ({width} inputs)")
    convolution = _read_convolution(attrs, where, pre.n, width) if "convolution" in attrs else None
    if all_to_all:
        row_ptr = post_ids = None
        n_synapses = pre.n * (width if autapses else width - 1)
    elif convolution is not None:
        row_ptr, post_ids = convolution.row_ptr(), None
        n_synapses = int(row_ptr[-1])
    else:
        row_ptr = _array(group, "row_ptr", where, "int", shape=(pre.n + 1,)).astype(np.int64)
        post_ids = _array(group, "post_ids", where, "int", ndim=1, low=0, high=width, outside=targets)
        n_synapses = len(post_ids)
        if row_ptr[0] != 0 or row_ptr[-1] != n_synapses or np.any(np.diff(row_ptr) < 0):
            raise StorageError(f"{where}: row_ptr must rise from 0 to the {n_synapses} synapses of post_ids "
                               f"(it runs {row_ptr[0]} .. {row_ptr[-1]}"
                               f"{', decreasing somewhere' if np.any(np.diff(row_ptr) < 0) else ''})")
        post_ids = post_ids.astype(np.int32)
    weights = _array(group, "weights", where, "float", ndim=1).astype(net.dtype, copy=False)
    if convolution is not None and (len(weights) != np.prod(convolution.kernel_shape) or "delay_steps" in group
                                    or "plasticity" in group or all_to_all):
        raise StorageError(f"{where}: a convolution takes its kernel ({np.prod(convolution.kernel_shape)} weights), "
                           f"one delay and no plasticity; the file holds {len(weights)} weight(s)")
    if not all_to_all and convolution is None and len(weights) not in (1, n_synapses):  # all-to-all: checked below
        raise StorageError(f"{where}: weights must hold 1 or {n_synapses} (one per synapse) values, "
                           f"the file holds {len(weights)}")
    if "delay_steps" in group:
        delay_steps = _array(group, "delay_steps", where, "int", shape=(n_synapses,), low=1,
                             high=_MAX_DELAY_STEPS + 1, outside=f"outside 1 .. {_MAX_DELAY_STEPS} steps")
        delay_steps = delay_steps.astype(np.uint16)
    else:
        delay_steps = _attr(attrs, "delay_steps", where, int, low=1)
        if delay_steps > _MAX_DELAY_STEPS:
            raise StorageError(f"{where}: delay_steps = {delay_steps} exceeds {_MAX_DELAY_STEPS} steps")
    if _sends_values(pre, post) and not (isinstance(delay_steps, int) and delay_steps == 1):
        raise StorageError(f"{where}: values reach {post.name!r} at its next update; the file holds a delay")
    if version >= 3 and _attr(attrs, "plastic", where, bool) != ("plasticity" in group):
        raise StorageError(f"{where}: group 'plasticity' is {'missing' if 'plasticity' not in group else 'unexpected'}")
    if all_to_all and (weights.shape != (1,) or not isinstance(delay_steps, int) or "plasticity" in group):
        raise StorageError(f"{where}: an implicit all-to-all projection takes one weight, one delay and no "
                           f"plasticity; the file holds {weights.size} weight(s)")
    projection = Projection(name, pre, post, receptor, row_ptr, post_ids, weights, delay_steps, autapses, convolution)
    if not autapses and not (all_to_all and pre is post and projection.width == pre.n):
        raise StorageError(f"{where}: only an all-to-all projection within one population leaves out autapses")
    _check_run_arrays(group, ("pending",), where, version)
    net.run_state.projection(projection.name).pending = (
        _array(group, "pending", where, "float", ndim=2).astype(np.float64) if "pending" in group else None)
    net.projections.append(projection)
    if "plasticity" in group:
        _read_learning(group["plasticity"], projection, net, where, step, version)


def _read_convolution(attrs, where: str, n_pre: int, width: int) -> Convolution:
    """A convolution's geometry (attribute ``convolution``), checked against the populations it joins."""
    try:
        convolution = Convolution.from_geometry(attrs["convolution"])
    except ProjectionError as error:
        raise StorageError(f"{where}: {error}") from None
    if (convolution.n_pre, convolution.n_post) != (n_pre, width):
        raise StorageError(f"{where}: the convolution maps {convolution.in_shape} onto {convolution.out_shape}, the "
                           f"populations have {n_pre} -> {width} neurons")
    return convolution


def _read_learning(group, projection: Projection, net: Network, where: str, step: int, version: int) -> None:
    # imported here as Network.connect does: the learning rules build on the engine
    from ..plasticity import STDP

    where = f"{where}: plasticity"
    modulator = _attr(group.attrs, "modulator", where, str)
    config = json.loads(_attr(group.attrs, "config", where, str))
    if not isinstance(config, dict) or set(config) != set(_STDP_ARGUMENTS):
        raise StorageError(f"{where}: config must name {list(_STDP_ARGUMENTS)}, the file holds {config!r}")
    STDP(**config, modulator=net[modulator] if modulator else None).attach(projection)
    _check_run_arrays(group, _TRACES, where, version)
    if any(name in group for name in _TRACES):
        pre, post = projection.pre.n, projection.post.n
        kinds = {"pre_trace": ("float", pre), "pre_seen": ("int", pre), "post_trace": ("float", post),
                 "post_seen": ("int", post)}
        arrays = {name: _array(group, name, where, kind, shape=(size,), low=0 if kind == "int" else None,
                               high=step + 1 if kind == "int" else None,
                               outside=f"outside the {step} steps run" if kind == "int" else "")
                  for name, (kind, size) in kinds.items()}
        net.run_state.projection(projection.name).traces = Traces(
            arrays["pre_trace"].astype(np.float64), arrays["pre_seen"].astype(np.int64),
            arrays["post_trace"].astype(np.float64), arrays["post_seen"].astype(np.int64))


def _read_spike_monitor(file, name: str, net: Network, path: Path, step: int, write_id: str | None,
                        version: int) -> None:
    group = file[name]
    where = f"{path}: {name}"
    population = net[_attr(group.attrs, "population", where, str)]
    if population.model.kind not in (Kind.SPIKING, Kind.SCHEDULED) and not getattr(population.model, "pulses", False):
        raise StorageError(f"{where}: {population.name!r} does not spike")
    ids = None
    if version >= 3 and _attr(group.attrs, "subset", where, bool) != ("ids" in group):
        raise StorageError(f"{where}: dataset 'ids' is {'missing' if 'ids' not in group else 'unexpected'}")
    if "ids" in group:
        ids = _check_ids(_array(group, "ids", where, "int", ndim=1, low=0, high=population.n,
                                outside=f"outside population {population.name!r} ({population.n} neurons)"),
                         population, where)
    monitor = SpikeMonitor(population, ids)
    sonata = _attr(group.attrs, "sonata", where, str)
    if sonata not in file:
        raise StorageError(f"{where}: its spikes group {sonata} is missing")
    timestamps = _array(file[sonata], "timestamps", f"{path}: {sonata}", "float", ndim=1, read=False)
    node_ids = _array(file[sonata], "node_ids", f"{path}: {sonata}", "int", ndim=1, read=False)
    count = len(timestamps)
    if len(node_ids) != count:
        raise StorageError(f"{path}: {sonata} has {count} timestamps but {len(node_ids)} node_ids")
    monitor._written = _WrittenSpikes(path, sonata, count, net.dt, write_id, population.n, step)
    net.spike_monitors.append(monitor)


def _read_state_monitor(file, name: str, net: Network, path: Path, step: int, write_id: str | None) -> None:
    group = file[name]
    where = f"{path}: {name}"
    population = net[_attr(group.attrs, "population", where, str)]
    variable = _attr(group.attrs, "variable", where, str)
    model = population.model
    if variable == "output" and isinstance(model, ValueModel):
        expected = tuple(model.output_rows)
    elif variable in model.state_names:
        expected = (model.state_names.index(variable),)
    else:
        raise StorageError(f"{where}: unknown variable {variable!r}; {population.name!r} has "
                           f"{', '.join(model.state_names) or 'none'}")
    rows = group.attrs.get("rows")
    rows = tuple(int(row) for row in np.atleast_1d(rows)) if rows is not None else None
    if rows != tuple(int(row) for row in expected):
        raise StorageError(f"{where}: rows of {variable!r} must be {list(expected)}, the file holds {rows}")
    ids = _check_ids(_array(group, "ids", where, "int", ndim=1, low=0, high=population.n,
                            outside=f"outside population {population.name!r} ({population.n} neurons)"),
                     population, where)
    every_steps = _attr(group.attrs, "every_steps", where, int, low=1)
    if every_steps % population.period:
        raise StorageError(f"{where}: every_steps = {every_steps} is not a multiple of the population's "
                           f"period ({population.period})")
    steps = _array(group, "steps", where, "int", ndim=1, read=False)
    _array(group, "values", where, "float", shape=(len(steps), len(rows), len(ids)), read=False)
    monitor = StateMonitor(population, variable, rows, ids, every_steps)
    monitor._written = _WrittenSamples(path, name, len(steps), write_id, step)
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
#
def _check_checkpointed(file, path: Path, write_id: str) -> None:
    """A checkpoint goes on only in the file its network last wrote (``write_id``), not one put in its place."""
    if file.attrs.get("write_id") != write_id:
        raise StorageError(f"{path}: the file was replaced since the last checkpoint to it (another save or "
                           "checkpoint to that path); checkpoint to another path")


def _append_checkpoint(path: Path, write_id: str, update: Callable[[Any], None]) -> str | None:
    """Checkpoint in place into ``path``, which holds the checkpoint of write id ``write_id``:
    ``update(file)`` writes what changed to the h5py file, and the result is committed
    (:class:`JournaledFile`). Returns the new write id, or None when another process has the file
    open (it would read a file changing under it)."""
    try:
        handle = open(path, "rb+")
    except OSError as error:
        raise StorageError(f"{path}: cannot write ({type(error).__name__}: {error})") from None
    with handle:
        fd = handle.fileno()
        if not lock(fd):
            return None
        recover(fd)
        journal = JournaledFile(fd)
        try:
            with _open(path, "r+", journal) as file:
                _check_checkpointed(file, path, write_id)
                update(file)
                written = _seal(file)
            journal.commit()
        except BaseException:
            journal.abandon()
            raise
    return written


class Checkpointer:
    """Writes a running network to ``path`` periodically.

    A checkpoint writes the whole network (to a temporary file renamed over ``path``) unless
    ``path`` already holds this network's recordings so far (it was loaded from there, or
    checkpointed there since its structure last changed); then it appends the recordings made
    since and the new state, time and counts to that file and commits them
    (:func:`_append_checkpoint`), so its cost does not grow with the file. While the file is open
    elsewhere (another process, another h5py file object) it instead copies the file, updates the
    copy and renames it over ``path``.
    A process killed at any moment leaves the last committed checkpoint. After each checkpoint
    the monitors' recorded data leaves memory and is read back from the file.
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
        recorded = _RECORDED_IN.get(net)
        if (recorded is None or recorded[:2] != (self.path.resolve(), net._structure_version)
                or recorded[2] is None or not self.path.is_file()):
            write_id = _save(net, self.path)
        else:
            write_id = _append_checkpoint(self.path, recorded[2], self._update) or self._write_copy(recorded[2])
        self._release_recordings(write_id)
        _RECORDED_IN[net] = (self.path.resolve(), net._structure_version, write_id)

    def _write_copy(self, write_id: str) -> str:
        """The checkpoint as a copy of the file renamed over it, for a file another process has open
        (it keeps reading the file it opened); returns the new write id."""
        with _replacing(self.path) as temporary:
            shutil.copyfile(self.path, temporary)
            with open(temporary, "rb+") as handle:
                recover(handle.fileno())
            with _open(temporary, "r+") as file:
                _check_checkpointed(file, self.path, write_id)
                self._update(file)
                return _seal(file)

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

    def _release_recordings(self, write_id: str) -> None:
        net = self.net
        for sonata, monitor in zip(_sonata_names(net), net.spike_monitors, strict=True):
            written = monitor._written.count if monitor._written is not None else 0
            monitor._written = _WrittenSpikes(self.path, f"/spikes/{sonata}", written + monitor._count_memory(),
                                              net.dt, write_id, monitor.population.n, net.step)
            monitor._steps, monitor._ids = [], []
        for index, monitor in enumerate(net.state_monitors):
            written = monitor._written.count if monitor._written is not None else 0
            count = written + sum(len(chunk) for chunk in monitor._steps)
            monitor._written = _WrittenSamples(self.path, f"recordings/state/{index}", count, write_id, net.step)
            monitor._steps, monitor._values = [], [[] for _ in monitor.rows]
