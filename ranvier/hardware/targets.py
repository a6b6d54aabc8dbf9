"""Hardware targets as data: one TOML file per target, every constant with its source.

A target file names the target, its ``kind`` (``"neuromorphic"``, ``"fpga"`` or
``"von_neumann"``), the model kinds it can run (``supported_kinds``, matched against
``Model.kind``; ``unsupported_models`` lists model class names it cannot run even so) and a
table ``[constants.NAME]`` per constant with ``value``, ``unit``, ``source`` (paper or
datasheet, table or page) and ``verified`` (whether the number was checked against the
source's text). A constant may also give ``by_routers``, a table from a number of routers in use
to the value then (``{ "1" = 0.6e-6, "4" = 1.4e-6 }``: the entry for the most routers at or below
those in use holds, the first entry below them all; SANA-FE's table-based synchronisation delay);
``value`` is then the figure for the whole chip. Users add a target by dropping a file in
``ranvier/hardware/targets/`` or by passing a path to :func:`load_target`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, published as tomli
    import tomli as tomllib

from ..errors import HardwareError

TARGET_DIR = Path(__file__).resolve().parent / "targets"

#: constants every target of a kind must define
REQUIRED = {
    "neuromorphic": (
        "cores_per_chip", "cores_per_router", "mesh_columns", "neurons_per_core", "synaptic_memory_bits_per_core",
        "fan_in_axons_per_core", "fan_out_axons_per_core", "max_target_cores_per_neuron", "weight_bits",
        "synapse_overhead_bits", "energy_per_synaptic_event", "energy_per_neuron_update", "energy_per_spike",
        "energy_per_hop", "energy_per_mac", "time_per_synaptic_event", "time_per_neuron_update", "time_per_hop",
        "time_per_step_overhead", "static_power_per_chip",
    ),
    "fpga": (
        "luts", "ffs", "bram_blocks", "bram_bits_per_block", "dsps", "clock_hz", "timing_utilisation_limit",
        "parallel_lanes", "reuse_factor", "pipeline_depth_cycles", "dsp_per_mac", "luts_per_lane", "ffs_per_lane",
        "luts_per_mac", "weight_bits", "state_bits", "energy_per_mac", "energy_per_synaptic_event",
        "energy_per_neuron_update", "static_power", "hbm_bandwidth", "energy_per_hbm_byte",
    ),
    "von_neumann": (
        "energy_per_mac", "energy_per_accumulate", "energy_per_byte", "ops_per_neuron_update",
        "bytes_per_synaptic_event", "bytes_per_neuron_update", "mac_rate", "memory_bandwidth", "static_power",
    ),
}

#: constants a target of a kind may define; a target that does not define one does not model that cost (0).
#: Loihi's come from SANA-FE's calibration on silicon (``loihi.toml``); Davies et al. 2018 gives none of them.
OPTIONAL = {
    "neuromorphic": ("energy_per_spike_out", "time_per_spike_out", "time_per_packet_out", "time_per_packet_in",
                     "max_delay_steps"),
    "fpga": (),
    "von_neumann": (),
}

#: constants that must be strictly positive (they divide or count hardware units)
POSITIVE = {
    "cores_per_chip", "cores_per_router", "mesh_columns", "neurons_per_core", "synaptic_memory_bits_per_core",
    "fan_in_axons_per_core",
    "fan_out_axons_per_core", "max_target_cores_per_neuron", "weight_bits", "luts", "ffs", "bram_blocks",
    "bram_bits_per_block", "dsps", "clock_hz", "timing_utilisation_limit", "parallel_lanes", "dsp_per_mac",
    "state_bits", "mac_rate", "memory_bandwidth", "hbm_bandwidth",
}


class UnknownTargetError(HardwareError):
    """No target of that name; the message lists the known ones."""


class TargetFileError(HardwareError):
    """A target file is unreadable, or a constant is missing, negative or malformed."""


@dataclass(frozen=True)
class Constant:
    """One hardware constant: ``value`` in ``unit``, from ``source``."""

    value: float
    unit: str
    source: str
    verified: bool
    #: (routers in use, value) pairs by increasing routers; empty when the value does not depend on them
    by_routers: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class Target:
    """A hardware target loaded from its TOML file (see the module docstring)."""

    name: str
    title: str
    kind: str
    supported_kinds: tuple[str, ...]
    unsupported_models: tuple[str, ...]
    constants: dict[str, Constant] = field(repr=False)
    path: Path | None = None

    def __getitem__(self, name: str) -> float:
        return self.constants[name].value

    def get(self, name: str) -> float:
        """The value of an optional constant (:data:`OPTIONAL`), 0 where this target does not define it."""
        constant = self.constants.get(name)
        return constant.value if constant is not None else 0.0

    def for_routers(self, name: str, routers: int) -> float:
        """The value of constant ``name`` with ``routers`` routers in use (its ``by_routers`` table, else its value)."""
        constant = self.constants[name]
        if not constant.by_routers:
            return constant.value
        value = constant.by_routers[0][1]
        for at_least, entry in constant.by_routers:
            if routers >= at_least:
                value = entry
        return value

    def unverified(self) -> list[str]:
        """Names of the constants not yet checked against their source's text."""
        return [name for name, constant in self.constants.items() if not constant.verified]

    def refuses(self, model_class: str, model_kind: str) -> str | None:
        """Why this target cannot run a model of class ``model_class`` and kind ``model_kind``; None if it can."""
        if model_class in self.unsupported_models:
            return f"{self.title} cannot run {model_class} models"
        if model_kind not in self.supported_kinds:
            return (f"{self.title} runs only {', '.join(self.supported_kinds)} models; "
                    f"{model_class} is a {model_kind} model")
        return None


def targets() -> list[str]:
    """Names of the targets shipped with ranvier (the TOML files in ``ranvier/hardware/targets``)."""
    return sorted(path.stem for path in TARGET_DIR.glob("*.toml"))


def _constant(path: Path, name: str, table: object) -> Constant:
    where = f"target file {path.name}: constant {name!r}"
    if not isinstance(table, dict) or "value" not in table:
        raise TargetFileError(f"{where} needs a table with value, unit and source, got {table!r}")
    value = table["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TargetFileError(f"{where}: value must be a finite number, got {value!r}")
    if value < 0:
        raise TargetFileError(f"{where}: value must not be negative, got {value!r}")
    if name in POSITIVE and value == 0:
        raise TargetFileError(f"{where}: value must be positive, got {value!r}")
    source = table.get("source")
    if not isinstance(source, str) or not source.strip():
        raise TargetFileError(f"{where}: every constant needs a source (paper or datasheet, table or page)")
    return Constant(float(value), str(table.get("unit", "")), source, bool(table.get("verified", False)),
                    _by_routers(where, table.get("by_routers")))


def _by_routers(where: str, table: object) -> tuple[tuple[int, float], ...]:
    """A ``by_routers`` table as sorted (routers, value) pairs; () when absent."""
    if table is None:
        return ()
    if not isinstance(table, dict) or not table:
        raise TargetFileError(f"{where}: by_routers must be a table of routers in use -> value, got {table!r}")
    pairs = []
    for key, value in table.items():
        if not key.isdigit() or int(key) < 1:
            raise TargetFileError(f"{where}: by_routers keys must be positive numbers of routers, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise TargetFileError(f"{where}: by_routers value for {key} routers must be a finite number >= 0, "
                                  f"got {value!r}")
        pairs.append((int(key), float(value)))
    return tuple(sorted(pairs))


def load_target(target: str | Path | Target) -> Target:
    """Load a target by name (one of :func:`targets`) or from the path of a TOML file."""
    if isinstance(target, Target):
        return target
    path = Path(target)
    if path.suffix != ".toml":
        path = TARGET_DIR / f"{target}.toml"
        if not path.is_file():
            raise UnknownTargetError(f"unknown hardware target {str(target)!r}; known targets: {', '.join(targets())}")
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise TargetFileError(f"target file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise TargetFileError(f"target file {path.name}: not valid TOML ({error})") from None
    kind = data.get("kind")
    if kind not in REQUIRED:
        raise TargetFileError(f"target file {path.name}: kind must be one of {', '.join(REQUIRED)}, got {kind!r}")
    tables = data.get("constants", {})
    missing = [name for name in REQUIRED[kind] if name not in tables]
    if missing:
        raise TargetFileError(f"target file {path.name}: missing constant(s) {', '.join(missing)}")
    constants = {name: _constant(path, name, table) for name, table in tables.items()}
    return Target(
        name=str(data.get("name", path.stem)),
        title=str(data.get("title", path.stem)),
        kind=kind,
        supported_kinds=tuple(data.get("supported_kinds", ("spiking", "scheduled", "value"))),
        unsupported_models=tuple(data.get("unsupported_models", ())),
        constants=constants,
        path=path,
    )
