"""SONATA files: spike files other tools read, and networks bmtk builds.

* :func:`write_spikes` (``SpikeMonitor.to_sonata``) writes a standalone SONATA spike file, which
  libsonata's ``SpikeReader`` and bmtk's ``SpikeTrains.from_sonata`` read; :func:`read_spikes`
  reads any SONATA spike file (ranvier's, bmtk's, libsonata's or NEST's layout).
* :func:`write_report` (``StateMonitor.to_sonata``) writes state monitors as a SONATA report
  (``/report/<population>``, one element per node and channel), which libsonata's
  ``ElementReportReader`` and ``SomaReportReader`` read; :func:`read_report` reads one back.
* :func:`load_network` reads a SONATA network (``nodes.h5`` / ``edges.h5`` with their node and
  edge types CSV files, as bmtk's ``NetworkBuilder`` writes them) into a :class:`~ranvier.Network`
  for the point-neuron models it can map: NEST's ``iaf_psc_exp`` and ``iaf_psc_delta`` become
  :class:`~ranvier.neurons.LIF`, ``virtual`` nodes become :class:`~ranvier.neurons.SpikeSource`
  (fed from a SONATA spike file); anything else is a named error.

The layout is the SONATA developer guide's
(https://github.com/AllenInstitute/sonata/blob/master/docs/SONATA_DEVELOPER_GUIDE.md); docs/storage.md
has what is mapped and how. h5py is imported only when a function here runs.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from .errors import InputError, StorageError

__all__ = ["MAGIC", "VERSION", "load_network", "read_report", "read_spikes", "write_report", "write_spikes"]

#: the root attributes of a SONATA file: ``magic`` (uint32) and ``version`` ([major, minor])
MAGIC = 0x0A7A
VERSION = (0, 1)

_SORTINGS = ("none", "by_id", "by_time")


def _h5py():
    from .engine.storage import _h5py as load

    return load()


# -- spike files ----------------------------------------------------------------------------------


def _monitors(source, kind: str, what: str) -> list:
    """The monitors of ``source`` (one monitor, a list of them, or a network's monitors of ``kind``:
    ``"spike"`` or ``"state"``); ``what`` names the caller in the error for any other object."""
    from .engine.monitors import SpikeMonitor, StateMonitor
    from .engine.network import Network

    monitor_class = SpikeMonitor if kind == "spike" else StateMonitor
    if isinstance(source, Network):
        return list(source.spike_monitors if kind == "spike" else source.state_monitors)
    if isinstance(source, monitor_class):
        return [source]
    monitors = list(source)
    for monitor in monitors:
        if not isinstance(monitor, monitor_class):
            raise InputError(f"{what}: expected {kind} monitors, got {type(monitor).__name__}")
    return monitors


def write_spikes(path: str | os.PathLike, source, sorting: str = "by_time",
                 names: Mapping[int, str] | Iterable[str] | None = None) -> Path:
    """Write the spikes of ``source`` (a ``SpikeMonitor``, a list of them, or a ``Network``: all its
    spike monitors) to a SONATA spike file at ``path`` and return the path.

    Each monitor becomes ``/spikes/<population name>`` with ``timestamps`` (float64, ms; a spike of
    the step from k dt to (k+1) dt at (k+1) dt, as ``SpikeMonitor.times``), ``node_ids`` (uint64,
    the neuron's index in its population) and the ``sorting`` enum: ``"by_time"`` (ranvier's order),
    ``"by_id"`` (by node id, then time) or ``"none"``. The root has SONATA's ``magic`` and ``version``.
    Two monitors of one population need ``names`` (a new population name for each monitor, in order).
    """
    if sorting not in _SORTINGS:
        raise InputError(f"write_spikes: sorting must be one of {', '.join(_SORTINGS)}, got {sorting!r}")
    from .engine.storage import write_sonata_sorting

    h5py = _h5py()
    monitors = _monitors(source, "spike", "write_spikes")
    chosen = _population_names("write_spikes", monitors, names, "spikes")
    path = Path(path)
    try:
        with h5py.File(path, "w") as file:
            file.attrs.create("magic", MAGIC, dtype=np.uint32)
            file.attrs.create("version", np.asarray(VERSION, dtype=np.uint32))
            root = file.create_group("spikes")
            for name, monitor in zip(chosen, monitors, strict=True):
                times = (np.asarray(monitor.steps, dtype=np.float64) + 1) * (monitor._dt * 1e3)
                ids = np.asarray(monitor.ids, dtype=np.uint64)
                if sorting == "by_id":
                    order = np.lexsort((times, ids))
                    times, ids = times[order], ids[order]
                group = root.create_group(name)
                write_sonata_sorting(group, sorting)
                group.create_dataset("timestamps", data=times, dtype=np.float64).attrs["units"] = "ms"
                group.create_dataset("node_ids", data=ids, dtype=np.uint64)
    except OSError as error:
        raise StorageError(f"{path}: cannot write a SONATA spike file ({error})") from error
    return path


_TIME_UNITS = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "us": 1e-6}

# -- reports --------------------------------------------------------------------------------------

#: SI units a report stores in the units neuroscience readers expect (SONATA's examples and bmtk: mV)
_REPORT_UNITS = {"volt": ("mV", 1e3)}
#: report data units read back into SI
_DATA_UNITS = {"mV": 1e-3, "V": 1.0, "volt": 1.0, "nA": 1e-9, "pA": 1e-12, "A": 1.0}


def _population_names(what: str, monitors: list, names, prefix: str) -> list[str]:
    chosen = [monitor.population.name for monitor in monitors] if names is None else [str(n) for n in names]
    if len(chosen) != len(monitors):
        raise InputError(f"{what}: {len(monitors)} monitors but {len(chosen)} names")
    for name in chosen:
        if chosen.count(name) > 1:
            raise InputError(f"{what}: two monitors would both write /{prefix}/{name}; "
                             "give each its own population name with names=[...]")
        if not name or "/" in name:
            raise InputError(f"{what}: {name!r} cannot name a SONATA population")
    return chosen


def write_report(path: str | os.PathLike, source, names: Mapping[int, str] | Iterable[str] | None = None) -> Path:
    """Write the samples of ``source`` (a ``StateMonitor``, a list of them, or a ``Network``: all
    its state monitors) to a SONATA report at ``path`` and return the path.

    Each monitor becomes ``/report/<population name>`` in the SONATA report layout:
    ``data`` (float32, one row per sample, one column per element), and ``mapping`` with
    ``node_ids`` (uint64, the recorded neurons), ``index_pointers`` (uint64; node ``i``'s elements
    are columns ``index_pointers[i] .. index_pointers[i + 1] - 1``), ``element_ids`` (uint32: the
    channel, 0 for a one-channel variable) and ``time`` (float64 ``[start, stop, step]`` in ms,
    ``stop`` exclusive). A sample taken at the end of the step from ``k dt`` to ``(k + 1) dt`` is
    at ``(k + 1) dt``, as ``StateMonitor.t``. Voltages are written in mV (``units = "mV"``, as
    SONATA's examples and bmtk write them); other variables in their SI unit, ``units`` naming it
    (empty when dimensionless). Reports are one variable per population, so two monitors of one
    population need ``names`` (a population name for each, in order). A monitor needs its samples
    at one interval from one run (``every``): a monitor with none is an error.
    """
    from .engine.monitors import variable_unit

    h5py = _h5py()
    monitors = _monitors(source, "state", "write_report")
    chosen = _population_names("write_report", monitors, names, "report")
    path = Path(path)
    blocks = []
    for name, monitor in zip(chosen, monitors, strict=True):
        times = monitor.t
        if not len(times):
            raise InputError(f"write_report: the monitor of {monitor.population.name!r} {monitor.variable!r} "
                             "has no samples; run the network first")
        step_ms = monitor.every_steps * monitor._dt * 1e3
        unit = variable_unit(monitor.population, monitor.variable)
        units, scale = _REPORT_UNITS.get(unit, (unit, 1.0))
        values = np.asarray(monitor.values, dtype=np.float64) * scale
        channels = len(monitor.rows)
        # (samples, channels, ids) -> one column per (node, channel), the node's elements together
        data = values.reshape(len(times), channels, -1).transpose(0, 2, 1).reshape(len(times), -1)
        ids = np.asarray(monitor.ids, dtype=np.uint64)
        start = float(times[0] * 1e3)
        blocks.append((name, data, ids, channels, units, (start, start + len(times) * step_ms, step_ms)))
    try:
        with h5py.File(path, "w") as file:
            file.attrs.create("magic", MAGIC, dtype=np.uint32)
            file.attrs.create("version", np.asarray(VERSION, dtype=np.uint32))
            root = file.create_group("report")
            for name, data, ids, channels, units, time in blocks:
                group = root.create_group(name)
                group.create_dataset("data", data=data, dtype=np.float32).attrs["units"] = units
                mapping = group.create_group("mapping")
                mapping.create_dataset("node_ids", data=ids, dtype=np.uint64)
                mapping.create_dataset("index_pointers", data=np.arange(len(ids) + 1, dtype=np.uint64) * channels)
                mapping.create_dataset("element_ids", data=np.tile(np.arange(channels, dtype=np.uint32), len(ids)))
                mapping.create_dataset("time", data=np.asarray(time, dtype=np.float64)).attrs["units"] = "ms"
    except OSError as error:
        raise StorageError(f"{path}: cannot write a SONATA report ({error})") from error
    return path


def read_report(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """The populations of a SONATA report: name -> ``{"t": times (s), "node_ids", "element_ids",
    "index_pointers", "data": (samples, elements)}``, data in SI when its ``units`` are a voltage
    or current ranvier knows (mV, V, nA, pA, A), as stored otherwise (``"units"`` holds them)."""
    from .engine.storage import _reading

    path = Path(path)
    with _reading(path) as file:
        root = file.get("report")
        if root is None or not hasattr(root, "items"):
            raise StorageError(f"{path}: not a SONATA report (no /report group)")
        reports = {}
        for name, group in root.items():
            where = f"{path}: /report/{name}"
            mapping = group.get("mapping") if hasattr(group, "get") else None
            needed = ("node_ids", "index_pointers", "element_ids", "time")
            if "data" not in group or mapping is None or any(key not in mapping for key in needed):
                raise StorageError(f"{where}: needs data and mapping/{{{', '.join(needed)}}}")
            data = group["data"][()]
            node_ids, pointers = mapping["node_ids"][()], mapping["index_pointers"][()]
            elements, time = mapping["element_ids"][()], mapping["time"][()]
            if data.ndim != 2 or time.shape != (3,) or len(pointers) != len(node_ids) + 1 \
                    or data.shape[1] != len(elements) or (len(pointers) and int(pointers[-1]) != len(elements)):
                raise StorageError(f"{where}: data {data.shape}, node_ids {node_ids.shape}, index_pointers "
                                   f"{pointers.shape}, element_ids {elements.shape} and time {time.shape} disagree")
            time_units = mapping["time"].attrs.get("units", "ms")
            time_units = time_units.decode() if isinstance(time_units, bytes) else str(time_units)
            if time_units not in _TIME_UNITS or not np.isfinite(time).all() or time[2] <= 0:
                raise StorageError(f"{where}: time {time.tolist()} {time_units!r} is not "
                                   "[start, stop, step] in ms or s")
            units = group["data"].attrs.get("units", "")
            units = units.decode() if isinstance(units, bytes) else str(units)
            scale = _DATA_UNITS.get(units)
            times = (time[0] + time[2] * np.arange(data.shape[0])) * _TIME_UNITS[time_units]
            reports[name] = {"t": times, "node_ids": node_ids.astype(np.int64),
                             "element_ids": elements.astype(np.int64), "index_pointers": pointers.astype(np.int64),
                             "data": data.astype(np.float64) * (1.0 if scale is None else scale),
                             "units": "SI" if scale is not None else units}
        return reports


def read_spikes(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The spikes of a SONATA spike file: population -> ``(times in s, node ids)``.

    Reads ``/spikes/<population>/{timestamps, node_ids}`` (timestamps in the ``units`` their
    attribute names, ms when it is absent) and the older single-population layout
    (``/spikes/{timestamps, gids}``, returned as population ``""``)."""
    from .engine.storage import _reading

    path = Path(path)
    with _reading(path) as file:
        root = file.get("spikes")
        if root is None or not hasattr(root, "items"):
            raise StorageError(f"{path}: not a SONATA spike file (no /spikes group)")
        groups = {name: group for name, group in root.items() if hasattr(group, "items")}
        if not groups and "timestamps" in root:
            groups = {"": root}
        spikes = {}
        for name, group in groups.items():
            where = f"{path}: /spikes/{name}" if name else f"{path}: /spikes"
            ids_name = "node_ids" if "node_ids" in group else "gids"
            if "timestamps" not in group or ids_name not in group:
                raise StorageError(f"{where}: needs datasets timestamps and node_ids")
            timestamps, ids = group["timestamps"], group[ids_name]
            if timestamps.shape != ids.shape or timestamps.ndim != 1:
                raise StorageError(f"{where}: timestamps {timestamps.shape} and node_ids {ids.shape} differ")
            if ids.dtype.kind not in "iu" or timestamps.dtype.kind not in "fiu":
                raise StorageError(f"{where}: node_ids must be integers and timestamps numbers")
            units = timestamps.attrs.get("units", "ms")
            units = units.decode() if isinstance(units, bytes) else str(units)
            if units not in _TIME_UNITS:
                raise StorageError(f"{where}: timestamps in unknown units {units!r} (ms or s)")
            spikes[name] = (timestamps[()].astype(np.float64) * _TIME_UNITS[units], ids[()].astype(np.int64))
        return spikes


# -- networks -------------------------------------------------------------------------------------

#: NEST's defaults (NEST 3) for the parameters of the models that map onto ranvier's LIF
_NEST_DEFAULTS = {
    "iaf_psc_exp": {"C_m": 250.0, "tau_m": 10.0, "t_ref": 2.0, "E_L": -70.0, "V_reset": -70.0, "V_th": -55.0,
                    "I_e": 0.0, "tau_syn_ex": 2.0, "tau_syn_in": 2.0},
    "iaf_psc_delta": {"C_m": 250.0, "tau_m": 10.0, "t_ref": 2.0, "E_L": -70.0, "V_reset": -70.0, "V_th": -55.0,
                      "I_e": 0.0},
}
#: parameters accepted besides those: the initial membrane potential
_INITIAL = ("V_m",)
_MISSING = {"", "none", "null", "nan"}


def _missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return str(value).strip().lower() in _MISSING


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter=" ", quotechar='"', skipinitialspace=True))
    except OSError as error:
        raise StorageError(f"{path}: cannot read the types file ({error})") from error
    if not rows:
        raise StorageError(f"{path}: the types file has no rows")
    return rows


def _types(path: Path, key: str) -> dict[int, dict[str, str]]:
    types = {}
    for row in _read_csv(path):
        if key not in row or _missing(row[key]):
            raise StorageError(f"{path}: every row needs a {key}")
        try:
            types[int(row[key])] = row
        except ValueError:
            raise StorageError(f"{path}: {key} {row[key]!r} is not an integer") from None
    return types


def _dataset(group, name: str, where: str, kind: str = "iu"):
    if name not in group:
        raise StorageError(f"{where}: dataset {name!r} is missing")
    data = group[name][()]
    if data.ndim != 1 or data.dtype.kind not in kind:
        raise StorageError(f"{where}/{name}: must be 1-D {'integers' if kind == 'iu' else 'numbers'}, "
                           f"the file holds {data.dtype} {data.shape}")
    return data


def _open(path: Path):
    h5py = _h5py()
    try:
        return h5py.File(path, "r")
    except (OSError, FileNotFoundError) as error:
        raise StorageError(f"{path}: cannot open ({error})") from error


def _groups_of(population, where: str, n: int):
    """Per element: its group id and index in the group, and the groups (id -> h5 group)."""
    if "node_group_id" in population or "edge_group_id" in population:
        prefix = "node" if "node_group_id" in population else "edge"
        group_ids = _dataset(population, f"{prefix}_group_id", where)
        group_index = _dataset(population, f"{prefix}_group_index", where)
    else:
        group_ids, group_index = np.zeros(n, np.int64), np.arange(n)
    if len(group_ids) != n or len(group_index) != n:
        raise StorageError(f"{where}: group ids and indices must have one entry per element ({n})")
    groups = {}
    for gid in np.unique(group_ids):
        if str(gid) in population:
            groups[int(gid)] = population[str(gid)]
    return group_ids.astype(np.int64), group_index.astype(np.int64), groups


def _column(name: str, n: int, types: dict, type_ids: np.ndarray, group_ids, group_index, groups,
            where: str) -> np.ndarray | None:
    """Per-element values of ``name``: the h5 group's dataset where it has one, else the types CSV."""
    values = np.full(n, np.nan)
    found = False
    for gid, group in groups.items():
        if name in group:
            data = group[name][()]
            if data.dtype.kind not in "fiu":
                raise StorageError(f"{where}/{gid}/{name}: must hold numbers, the file holds {data.dtype}")
            rows = group_ids == gid
            if group_index[rows].size and group_index[rows].max() >= len(data):
                raise StorageError(f"{where}/{gid}/{name}: shorter than its group's indices")
            values[rows] = data[group_index[rows]]
            found = True
    for type_id, row in types.items():
        if name in row and not _missing(row[name]):
            try:
                value = float(row[name])
            except ValueError:
                raise StorageError(f"{where}: type {type_id}'s {name} {row[name]!r} is not a number") from None
            rows = (type_ids == type_id) & np.isnan(values)
            values[rows] = value
            found = True
    return values if found else None


def _dynamics(row: dict, directory: Path | None, where: str) -> dict:
    name = row.get("dynamics_params")
    if _missing(name):
        return {}
    candidate = Path(name) if Path(name).is_absolute() else (directory or Path()) / name
    if not candidate.is_file():
        raise StorageError(f"{where}: dynamics_params file {name!r} not found in {directory or Path()} "
                           "(pass dynamics_dir=, bmtk's components/point_neuron_models_dir)")
    try:
        params = json.loads(candidate.read_text())
    except (OSError, ValueError) as error:
        raise StorageError(f"{candidate}: cannot read dynamics_params ({error})") from error
    if not isinstance(params, dict):
        raise StorageError(f"{candidate}: dynamics_params must be a JSON object")
    return params


def _model_of(row: dict, where: str) -> tuple[str, str]:
    """(``"virtual"`` or the NEST model name, its template as written)."""
    model_type = str(row.get("model_type", "")).strip()
    template = str(row.get("model_template", "")).strip()
    if model_type == "virtual":
        return "virtual", template
    if model_type not in ("point_process", "point_neuron", "point_soma", ""):
        raise InputError(f"{where}: model_type {model_type!r} cannot be mapped; ranvier reads point neurons "
                         "(model_type point_process with a nest:iaf_psc_exp or nest:iaf_psc_delta template) "
                         "and virtual nodes")
    name = template.split(":", 1)[1] if template.startswith("nest:") else None
    if name not in _NEST_DEFAULTS:
        raise InputError(f"{where}: model_template {template!r} cannot be mapped; ranvier maps "
                         f"{', '.join('nest:' + m for m in _NEST_DEFAULTS)} onto LIF")
    return name, template


def _nodes(nodes_file: Path, types_file: Path, dynamics_dir: Path | None) -> dict[str, dict]:
    types = _types(types_file, "node_type_id")
    found = {}
    with _open(nodes_file) as file:
        if "nodes" not in file:
            raise StorageError(f"{nodes_file}: not a SONATA nodes file (no /nodes group)")
        for pop_name, population in file["nodes"].items():
            where = f"{nodes_file}: /nodes/{pop_name}"
            type_ids = _dataset(population, "node_type_id", where).astype(np.int64)
            n = len(type_ids)
            if n == 0:
                raise StorageError(f"{where}: has no nodes")
            node_ids = (_dataset(population, "node_id", where).astype(np.int64) if "node_id" in population
                        else np.arange(n))
            if len(node_ids) != n or len(np.unique(node_ids)) != n:
                raise StorageError(f"{where}: node_id must give each node its own id")
            unknown = sorted(set(type_ids.tolist()) - set(types))
            if unknown:
                raise StorageError(f"{where}: node_type_id {unknown[:5]} not in {types_file}")
            models = {tid: _model_of(types[tid], f"{types_file}: node type {tid}") for tid in np.unique(type_ids)}
            kinds = {name for name, _ in models.values()}
            if len(kinds) > 1:
                raise InputError(f"{where}: mixes models {sorted(kinds)}; ranvier maps a node population onto "
                                 "one model: put each model in its own population")
            kind = kinds.pop()
            group_ids, group_index, groups = _groups_of(population, where, n)
            entry = {"n": n, "node_ids": node_ids, "kind": kind, "where": where}
            if kind != "virtual":
                entry["params"] = _lif_params(kind, types, type_ids, group_ids, group_index, groups,
                                              dynamics_dir or types_file.parent, where)
            found[pop_name] = entry
    return found


def _lif_params(kind, types, type_ids, group_ids, group_index, groups, directory, where) -> dict[str, np.ndarray]:
    n = len(type_ids)
    defaults = _NEST_DEFAULTS[kind]
    allowed = set(defaults) | set(_INITIAL)
    params = {name: np.full(n, value, dtype=np.float64) for name, value in defaults.items()}
    params["V_m"] = np.full(n, np.nan)
    for type_id in np.unique(type_ids):
        dynamics = _dynamics(types[type_id], directory, f"node type {type_id}")
        extra = sorted(set(dynamics) - allowed)
        if extra:
            raise InputError(f"{where}: node type {type_id} ({kind}) sets {extra}, which ranvier's LIF cannot "
                             f"take; it maps {sorted(allowed)}")
        for name, value in dynamics.items():
            try:
                params[name][type_ids == type_id] = float(value)
            except (TypeError, ValueError):
                raise InputError(f"{where}: node type {type_id}: {name} = {value!r} is not a number") from None
    # per-node values in the h5 groups (bmtk's dynamics_params subgroup) override the types
    for gid, group in groups.items():
        dynamics = group.get("dynamics_params")
        if dynamics is None:
            continue
        rows = group_ids == gid
        for name in dynamics:
            if name not in allowed:
                raise InputError(f"{where}/{gid}/dynamics_params: {name!r} cannot be mapped onto LIF; "
                                 f"it maps {sorted(allowed)}")
            data = dynamics[name][()]
            params[name][rows] = np.asarray(data, dtype=np.float64)[group_index[rows]]
    for name, values in params.items():
        if name != "V_m" and not np.all(np.isfinite(values)):
            raise InputError(f"{where}: {name} is not finite for every node")
    if np.any(params["C_m"] <= 0) or np.any(params["tau_m"] <= 0):
        raise InputError(f"{where}: C_m and tau_m must be positive")
    return params


def _lif(kind: str, params: dict[str, np.ndarray]):
    """NEST's iaf_psc_exp / iaf_psc_delta as ranvier's LIF: ms -> s, mV -> V; currents (pA) become
    voltage-equivalent (x tau_m / C_m), so ``i_bias = I_e tau_m / C_m``."""
    from .neurons import LIF

    def one(values, scale):
        values = np.asarray(values, dtype=np.float64) * scale
        return float(values[0]) if np.all(values == values[0]) else values

    tau_m = params["tau_m"] * 1e-3
    volts_per_pA = _volts_per_pA(params)
    if kind == "iaf_psc_exp":
        tau_syn = {"exc": one(params["tau_syn_ex"], 1e-3), "inh": one(params["tau_syn_in"], 1e-3)}
    else:
        tau_syn = {"exc": 0.0, "inh": 0.0}
    return LIF(tau_m=one(tau_m, 1.0), v_rest=one(params["E_L"], 1e-3), v_th=one(params["V_th"], 1e-3),
               v_reset=one(params["V_reset"], 1e-3), t_ref=one(params["t_ref"], 1e-3), tau_syn=tau_syn,
               i_bias=one(params["I_e"] * volts_per_pA, 1.0))


def _volts_per_pA(params) -> np.ndarray:
    """A current of 1 pA as LIF's voltage-equivalent input (V): tau_m / C_m, tau_m in s and C_m in pF."""
    return (params["tau_m"] * 1e-3) / params["C_m"]


def _edges(edges_file: Path, types_file: Path | None) -> list[dict]:
    types = _types(types_file, "edge_type_id") if types_file is not None else {}
    found = []
    with _open(edges_file) as file:
        if "edges" not in file:
            raise StorageError(f"{edges_file}: not a SONATA edges file (no /edges group)")
        for pop_name, population in file["edges"].items():
            where = f"{edges_file}: /edges/{pop_name}"
            ends = {}
            for end in ("source", "target"):
                data = _dataset(population, f"{end}_node_id", where).astype(np.int64)
                node_population = population[f"{end}_node_id"].attrs.get("node_population")
                if node_population is None:
                    raise StorageError(f"{where}/{end}_node_id: needs the node_population attribute")
                node_population = (node_population.decode() if isinstance(node_population, bytes)
                                   else str(node_population))
                ends[end] = (node_population, data)
            n = len(ends["source"][1])
            if len(ends["target"][1]) != n:
                raise StorageError(f"{where}: source_node_id and target_node_id differ in length")
            type_ids = (_dataset(population, "edge_type_id", where).astype(np.int64) if "edge_type_id" in population
                        else np.full(n, -1))
            if len(type_ids) != n:
                raise StorageError(f"{where}: edge_type_id must have one entry per edge ({n})")
            unknown = sorted(set(type_ids.tolist()) - set(types) - {-1})
            if unknown:
                raise StorageError(f"{where}: edge_type_id {unknown[:5]} not in {types_file}")
            for type_id in np.unique(type_ids):
                row = types.get(int(type_id), {})
                template = str(row.get("model_template", "")).strip()
                if not _missing(template) and template not in ("static_synapse", "nest:static_synapse"):
                    raise InputError(f"{where}: edge type {type_id} uses synapse model {template!r}; ranvier "
                                     "maps static_synapse (plastic and short-term synapses are not read)")
                function = row.get("weight_function")
                if not _missing(function):
                    raise InputError(f"{where}: edge type {type_id} has weight_function {function!r}, a Python "
                                     "function of bmtk's; compute the weights into syn_weight first")
            group_ids, group_index, groups = _groups_of(population, where, n)
            values = {name: _column(name, n, types, type_ids, group_ids, group_index, groups, where)
                      for name in ("syn_weight", "delay", "nsyns")}
            for name in ("syn_weight", "delay"):
                if values[name] is None:
                    raise StorageError(f"{where}: every edge needs a {name} (in its group or its edge type)")
                bad = ~np.isfinite(values[name])
                if np.any(bad):
                    edge = int(np.flatnonzero(bad)[0])
                    raise StorageError(f"{where}: every edge needs a finite {name} (in its group or its edge type); "
                                       f"edge {edge} has {float(values[name][edge])!r}")
            nsyns = 1.0 if values["nsyns"] is None else np.nan_to_num(values["nsyns"], nan=1.0)
            if np.any(nsyns < 0):
                edge = int(np.flatnonzero(nsyns < 0)[0])
                raise StorageError(f"{where}: nsyns counts synapses and cannot be negative; edge {edge} has "
                                   f"{float(nsyns[edge])!r}")
            weights = values["syn_weight"] * nsyns
            found.append({"where": where, "source": ends["source"], "target": ends["target"],
                          "weight": weights, "delay": values["delay"]})
    return found


def _pairs(files, what: str) -> list[tuple[Path, Path | None]]:
    if isinstance(files, str | os.PathLike) or (isinstance(files, tuple) and len(files) == 2
                                                and all(isinstance(f, str | os.PathLike) for f in files)):
        files = [files]
    pairs = []
    for item in files:
        if isinstance(item, str | os.PathLike):
            raise InputError(f"load_network: {what} must be given as (h5 file, types csv) pairs, got {item!r}")
        h5_file, csv_file = item
        pairs.append((Path(h5_file), None if csv_file is None else Path(csv_file)))
    return pairs


def load_network(nodes, edges=(), *, inputs: Mapping[str, str | os.PathLike] | None = None,
                 dynamics_dir: str | os.PathLike | None = None, dt: float = 1e-4, seed: int | None = None):
    """A :class:`~ranvier.Network` from a SONATA network as bmtk builds it.

    ``nodes``: ``(nodes.h5, node_types.csv)`` pairs (one pair alone is accepted); ``edges``:
    ``(edges.h5, edge_types.csv)`` pairs. Each node population becomes a population of the same
    name (neuron i is the i-th node of the file; ``node_id`` values are mapped to it):

    * ``model_type`` ``point_process`` with ``model_template`` ``nest:iaf_psc_exp`` or
      ``nest:iaf_psc_delta``: a ``LIF`` with NEST's parameters (``dynamics_params`` JSON from
      ``dynamics_dir``, default the node types file's folder, and per-node values in the nodes file;
      NEST's defaults for the rest; ``V_m`` sets the initial ``v``);
    * ``model_type`` ``virtual``: a ``SpikeSource`` whose spikes are read from ``inputs[population]``,
      a SONATA spike file (no spikes when it is not given).

    Each edge population becomes up to two projections, its synapses of weight >= 0 into receptor
    ``exc`` and its negative ones into ``inh`` (NEST's sign rule), with
    ``weight = syn_weight x nsyns`` (pA for ``iaf_psc_exp``, mV for ``iaf_psc_delta``, as NEST reads
    them) and ``delay`` (ms). Other models, plastic synapses, weight functions and mixed models in
    one population raise :class:`~ranvier.InputError`; malformed files a :class:`~ranvier.StorageError`.
    """
    from .connect import FromArrays
    from .engine.network import Network
    from .neurons import SpikeSource

    directory = None if dynamics_dir is None else Path(dynamics_dir)
    populations: dict[str, dict] = {}
    for nodes_file, types_file in _pairs(nodes, "nodes"):
        if types_file is None:
            raise InputError(f"load_network: {nodes_file} needs its node types CSV")
        for name, entry in _nodes(nodes_file, types_file, directory).items():
            if name in populations:
                raise StorageError(f"{nodes_file}: node population {name!r} is also in {populations[name]['where']}")
            populations[name] = entry
    inputs = dict(inputs or {})
    for name in inputs:
        if name not in populations or populations[name]["kind"] != "virtual":
            raise InputError(f"load_network: inputs names {name!r}, which is not a virtual node population")

    net = Network(dt=dt, seed=seed)
    made = {}
    for name, entry in populations.items():
        if entry["kind"] == "virtual":
            times, ids = np.zeros(0), np.zeros(0, dtype=np.int64)
            if name in inputs:
                spikes = read_spikes(inputs[name])
                if name not in spikes:
                    raise InputError(f"{inputs[name]}: no spikes of population {name!r} "
                                     f"(it has {', '.join(map(repr, spikes)) or 'none'})")
                times, node_ids = spikes[name]
                ids = _indices(entry, node_ids, f"{inputs[name]}: /spikes/{name}/node_ids")
            made[name] = net.population(SpikeSource(times, ids, n=entry["n"]), entry["n"], name=name)
        else:
            params = entry["params"]
            v_start = np.where(np.isnan(params["V_m"]), params["E_L"], params["V_m"]) * 1e-3
            model = _lif(entry["kind"], params)
            made[name] = net.population(model, entry["n"], name=name, init={"v": v_start})
    for edges_file, types_file in _pairs(edges, "edges"):
        for edge in _edges(edges_file, types_file):
            (source_name, sources), (target_name, targets) = edge["source"], edge["target"]
            for name in (source_name, target_name):
                if name not in populations:
                    raise StorageError(f"{edge['where']}: names node population {name!r}, which no nodes file has")
            target = populations[target_name]
            if target["kind"] == "virtual":
                raise InputError(f"{edge['where']}: its targets are virtual nodes ({target_name!r}), "
                                 "which take no input")
            pre = _indices(populations[source_name], sources, f"{edge['where']}/source_node_id")
            post = _indices(target, targets, f"{edge['where']}/target_node_id")
            if np.any(edge["delay"] * 1e-3 < dt * (1 - 1e-9)):
                raise InputError(f"{edge['where']}: a delay of {edge['delay'].min()} ms is shorter than dt "
                                 f"({dt * 1e3} ms)")
            scale = 1e-3 if target["kind"] == "iaf_psc_delta" else _volts_per_pA(target["params"])[post]
            weights = edge["weight"] * scale
            for receptor, keep in (("exc", weights >= 0), ("inh", weights < 0)):
                if not np.any(keep):
                    continue
                net.connect(made[source_name], made[target_name],
                            FromArrays(pre[keep], post[keep], weight=weights[keep], delay=edge["delay"][keep] * 1e-3),
                            receptor=receptor)
    return net


def _indices(entry: dict, node_ids: np.ndarray, where: str) -> np.ndarray:
    """Positions in the population of SONATA node ids."""
    ids = entry["node_ids"]
    if np.array_equal(ids, np.arange(entry["n"])):
        index = np.asarray(node_ids, dtype=np.int64)
        bad = (index < 0) | (index >= entry["n"])
    else:
        order = np.argsort(ids)
        found = np.searchsorted(ids[order], node_ids)
        found = np.clip(found, 0, len(ids) - 1)
        bad = ids[order][found] != node_ids
        index = order[found]
    if np.any(bad):
        raise StorageError(f"{where}: node id {np.asarray(node_ids)[bad][0]} is not in {entry['where']}")
    return index.astype(np.int64)
