"""Placement of populations onto the cores of a neuromorphic target.

Each population is cut into consecutive slices of neurons, one slice per core, as large as the
core's limits allow:

* neurons per core;
* synaptic memory: the slice's incoming synapses times ``weight_bits + synapse_overhead_bits``;
* fan-in: distinct source neurons (input axons) feeding the slice;
* fan-out: distinct (neuron, target core) pairs leaving the slice (output axons), and target
  cores per neuron.

Cores are then laid on each chip's 2D mesh of routers along a serpentine path: ``cores_per_router``
consecutive cores share one router (a Loihi tile holds four cores), routers run ``mesh_columns``
wide, chips side by side. The order keeps populations which exchange many packets next to each
other: greedy orders (from each of the busiest populations, repeatedly take the one exchanging
the most packets with those placed) are laid out and the one whose packets travel the fewest
hops is kept, or declaration order if none beats it. Traffic is counted in packets: a spike of a neuron
travels once to each core holding some of its targets (multicast), so packets = spikes times
distinct target cores; hops are the Manhattan distances, in routers, those packets travel:
a core at router (x, y) sends to one at (x', y') over |x - x'| + |y - y'| router hops, none
when both share a router.

How populations are cut (``strategy``):

* ``"fan_in_aware"`` (the default): slices as above, every core limit held;
* ``"packed"``: as many neurons per core as ``neurons_per_core`` and the synaptic memory allow,
  input and output axons not checked (the mapping of a simulator without axon tables, such as
  SANA-FE, or of a compiler that packs compartments first); the limits it breaks are listed in
  :attr:`Placement.violations`;
* a table ``{population: cores}`` or ``{population: [slice sizes]}``, the mapping given by hand
  (as SANA-FE's and NxSDK's users do): ``cores`` equal slices of ``ceil(n / cores)`` neurons (the
  last takes the rest), or the sizes of consecutive slices summing to the population's size; the
  table's order is the order of cores on the mesh. Limits it breaks are listed in
  :attr:`Placement.violations`; a malformed table raises :class:`PlacementTableError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import HardwareError
from .counts import Counts, ProjectionCounts
from .targets import Target

_MAX_REFINEMENTS = 30
#: greedy placement orders tried (one per starting population, busiest first)
_MAX_STARTS = 8
#: largest (target cores x sources) table of reached pairs built in memory (bytes); above it, keys are sorted
_MARK_LIMIT = 1 << 26


class UnsupportedModelError(HardwareError):
    """The target cannot run a population's model (CfC on TrueNorth, say)."""


class PlacementError(HardwareError):
    """A population cannot fit the target's cores (or an FPGA design does not fit the device)."""


class DelayLimitError(PlacementError):
    """A projection's synaptic delays are longer than the target's synapses or axons can hold."""


class PlacementTableError(PlacementError):
    """A hand-given population -> cores table names an unknown population, misses one, or cuts one badly."""


#: the placement strategies by name (a population -> cores table is the third kind)
STRATEGIES = ("fan_in_aware", "packed")


@dataclass
class CoreSlice:
    """Neurons ``start:stop`` of ``population`` on one core of ``chip``, its router at mesh position (x, y)."""

    population: str
    start: int
    stop: int
    chip: int = 0
    x: int = 0
    y: int = 0


@dataclass
class Placement:
    """Cores used and the traffic between them."""

    cores: list[CoreSlice]
    chips: int
    utilisation: dict[str, float]
    packets: float
    hops: float
    hops_declaration_order: float
    inter_chip_packets: float
    order: list[str]
    load_by_core: list[dict[str, float]] = field(repr=False)
    #: population -> (packets it sends, hops they travel)
    traffic_by_population: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: "fan_in_aware", "packed" or "table"
    strategy: str = "fan_in_aware"
    #: the core limits this mapping breaks (never any for "fan_in_aware"), one sentence each
    violations: list[str] = field(default_factory=list)

    @property
    def cores_by_population(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for core in self.cores:
            result[core.population] = result.get(core.population, 0) + 1
        return result

    def summary(self) -> dict[str, object]:
        return {"cores": len(self.cores), "chips": self.chips, "cores_by_population": self.cores_by_population,
                "utilisation": self.utilisation, "packets": self.packets, "hops": self.hops,
                "hops_declaration_order": self.hops_declaration_order, "inter_chip_packets": self.inter_chip_packets,
                "order": self.order, "strategy": self.strategy, "violations": self.violations}


def check_models(counts: Counts, target: Target) -> None:
    """Raise :class:`UnsupportedModelError` for the first population the target cannot run."""
    for population in counts.populations.values():
        reason = target.refuses(population.model, population.kind)
        if reason:
            raise UnsupportedModelError(f"population {population.name!r}: {reason} (target {target.name!r})")


_PAIRS_CACHE: dict[tuple[int, int], tuple] = {}


def _uniform(n: int, size: int) -> np.ndarray:
    """Slice boundaries of ``n`` neurons cut into slices of ``size`` (the last one smaller)."""
    return np.append(np.arange(0, n, size), n)


def _core_of(bounds: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of the slice (core within its population) holding each neuron id."""
    return np.searchsorted(bounds, ids, side="right") - 1


def _pairs(projection: ProjectionCounts, pre_n: int, post_bounds: np.ndarray):
    """Unique (source neuron, target core index within post) pairs and synapse counts per target core."""
    key = (id(projection), post_bounds.tobytes())
    if key not in _PAIRS_CACHE:
        _PAIRS_CACHE[key] = _compute_pairs(projection, pre_n, post_bounds)
    return _PAIRS_CACHE[key]


def _compute_pairs(projection: ProjectionCounts, pre_n: int, post_bounds: np.ndarray):
    n_post_cores = len(post_bounds) - 1
    sizes = np.diff(post_bounds)
    post_n = int(post_bounds[-1])
    if projection.row_ptr is not None:
        pre_ids = np.repeat(np.arange(pre_n, dtype=np.int64), np.diff(projection.row_ptr))
        post_core = _core_of(post_bounds, projection.post_ids.astype(np.int64))
        synapses_per_core = np.bincount(post_core, minlength=n_post_cores).astype(float)
        if n_post_cores * pre_n <= _MARK_LIMIT:
            # mark (target core, source) pairs in a table: linear time, where sorting keys is not
            reached = np.zeros((n_post_cores, pre_n), dtype=bool)
            reached[post_core, pre_ids] = True
            cores, sources = np.nonzero(reached)
            return sources, cores, synapses_per_core
        keys = np.unique(pre_ids * n_post_cores + post_core)
        return keys // n_post_cores, keys % n_post_cores, synapses_per_core
    if projection.all_to_all:
        # every source reaches every core (in the order of the table above), except that without
        # autapses a core holding only target j misses source j; each target misses one source then
        cores = np.repeat(np.arange(n_post_cores), pre_n)
        sources = np.tile(np.arange(pre_n), n_post_cores)
        if not projection.autapses:
            reached = (sizes[cores] > 1) | (sources != post_bounds[cores])
            cores, sources = cores[reached], sources[reached]
        per_target = (pre_n if projection.autapses else pre_n - 1) * projection.synapses_per_target
        return sources, cores, (sizes * per_target).astype(float)
    # no structure: uniformly random targets, so each core gets its share of the synapses and a
    # source reaches a given core with probability 1 - (1 - k/post_n)^slice
    sizes = sizes.astype(float)
    per_source = projection.synapses / max(1, pre_n)
    reach = 1.0 - (1.0 - min(1.0, per_source / post_n)) ** sizes
    synapses_per_core = projection.synapses * sizes / post_n
    return None, reach * pre_n, synapses_per_core


def _usage(counts: Counts, target: Target, bounds: dict[str, np.ndarray]):
    """Per placed population: synaptic memory bits, input axons and output axons of each of its cores,
    and the number of target cores of each of its neurons."""
    bits_per_synapse = target["weight_bits"] + target["synapse_overhead_bits"]
    fan_out_per_neuron = {p.name: np.zeros(p.n) for p in counts.populations.values()}
    memory = {name: np.zeros(len(b) - 1) for name, b in bounds.items()}
    fan_in = {name: np.zeros_like(memory[name]) for name in bounds}
    for projection in counts.projections.values():
        if projection.post not in bounds:
            continue
        pre_n = counts.populations[projection.pre].n
        sources, cores, synapses_per_core = _pairs(projection, pre_n, bounds[projection.post])
        memory[projection.post] += synapses_per_core * bits_per_synapse
        if sources is None:
            fan_in[projection.post] += cores
            fan_out_per_neuron[projection.pre] += cores.sum() / max(1, pre_n)
        else:
            fan_in[projection.post] += np.bincount(cores, minlength=len(memory[projection.post]))
            fan_out_per_neuron[projection.pre] += np.bincount(sources, minlength=pre_n)
    fan_out = {name: np.add.reduceat(fan_out_per_neuron[name], b[:-1]) for name, b in bounds.items()}
    return memory, fan_in, fan_out, {name: fan_out_per_neuron[name] for name in bounds}


def _slice_sizes(counts: Counts, target: Target, check_axons: bool = True) -> dict[str, np.ndarray]:
    """Slice boundaries per population: the largest slices that meet the per-core limits, refined until
    all hold (``check_axons=False``: only neurons per core and synaptic memory, the "packed" strategy)."""
    placed = [p for p in counts.populations.values() if not p.is_input]
    size = {p.name: min(p.n, int(target["neurons_per_core"])) for p in placed}
    bits_per_synapse = target["weight_bits"] + target["synapse_overhead_bits"]
    for name in size:
        size[name] = _memory_bound(counts, name, size[name], target["synaptic_memory_bits_per_core"] / bits_per_synapse)
    if not check_axons:
        return {name: _uniform(counts.populations[name].n, s) for name, s in size.items()}
    fan_in_limit, memory_limit = target["fan_in_axons_per_core"], target["synaptic_memory_bits_per_core"]
    fan_out_limit, targets_limit = target["fan_out_axons_per_core"], target["max_target_cores_per_neuron"]
    for _ in range(_MAX_REFINEMENTS):
        bounds = {name: _uniform(counts.populations[name].n, s) for name, s in size.items()}
        memory, fan_in, fan_out, neuron_targets = _usage(counts, target, bounds)
        worst: dict[str, float] = {}
        for name in size:
            if neuron_targets[name].max(initial=0) > targets_limit:
                raise PlacementError(
                    f"population {name!r}: a neuron sends to {int(neuron_targets[name].max())} cores, but "
                    f"{target.title} lets a neuron reach {int(targets_limit)} target core(s) "
                    f"(insert splitter neurons or shrink the fan-out)")
            ratios = [memory[name].max(initial=0) / memory_limit, fan_in[name].max(initial=0) / fan_in_limit,
                      fan_out[name].max(initial=0) / fan_out_limit]
            if max(ratios) > 1:
                worst[name] = max(ratios)
        if not worst:
            return bounds
        for name, ratio in worst.items():
            if size[name] == 1:
                population = counts.populations[name]
                raise PlacementError(
                    f"population {name!r} ({population.model}) cannot fit {target.title}: one neuron needs "
                    f"{ratio:.3g} times a core's synaptic memory, input axons or output axons "
                    f"({int(memory_limit)} bits, {int(fan_in_limit)} in, {int(fan_out_limit)} out per core)")
            size[name] = max(1, min(size[name] - 1, int(size[name] / ratio * 0.98)))
    raise PlacementError(f"placement on {target.title} did not converge after {_MAX_REFINEMENTS} refinements")


def _violations(counts: Counts, target: Target, bounds: dict[str, np.ndarray]) -> list[str]:
    """The core limits a mapping breaks, one sentence per population and limit (its worst core)."""
    memory, fan_in, fan_out, neuron_targets = _usage(counts, target, bounds)
    limits = (("synaptic memory bits", memory, "synaptic_memory_bits_per_core"),
              ("input axons", fan_in, "fan_in_axons_per_core"),
              ("output axons", fan_out, "fan_out_axons_per_core"))
    found = []
    for name in bounds:
        for what, usage, limit in limits:
            worst = int(np.argmax(usage[name])) if len(usage[name]) else 0
            if len(usage[name]) and usage[name][worst] > target[limit]:
                found.append(f"population {name!r}, its core {worst}: {usage[name][worst]:.0f} {what} > "
                             f"{target[limit]:.0f} ({limit})")
        most = neuron_targets[name].max(initial=0)
        if most > target["max_target_cores_per_neuron"]:
            found.append(f"population {name!r}: a neuron sends to {most:.0f} cores > "
                         f"{target['max_target_cores_per_neuron']:.0f} (max_target_cores_per_neuron)")
    return found


def _table_bounds(counts: Counts, target: Target, table) -> dict[str, np.ndarray]:
    """Slice boundaries from a hand-given ``{population: cores or [slice sizes]}`` table, checked by name."""
    if not isinstance(table, Mapping):
        raise PlacementTableError(f"placement must be one of {', '.join(STRATEGIES)} or a population -> cores "
                                  f"table (a dict), got {table!r}")
    placed = [p.name for p in counts.populations.values() if not p.is_input]
    inputs = [p.name for p in counts.populations.values() if p.is_input]
    for name in table:
        if name in inputs:
            raise PlacementTableError(f"placement table: population {name!r} is an input (its spikes enter the "
                                      "chip from outside) and takes no cores; leave it out")
        if name not in placed:
            raise PlacementTableError(f"placement table names unknown population {name!r}; the populations to "
                                      f"place are {', '.join(placed)}")
    missing = [name for name in placed if name not in table]
    if missing:
        raise PlacementTableError(f"placement table misses population(s) {', '.join(map(repr, missing))}: give "
                                  "every population on cores its number of cores or its slice sizes")
    per_core = int(target["neurons_per_core"])
    bounds = {}
    for name, cut in table.items():
        n = counts.populations[name].n
        if isinstance(cut, int) and not isinstance(cut, bool):
            if not 1 <= cut <= n:
                raise PlacementTableError(f"placement table: population {name!r} of {n} neurons cannot take "
                                          f"{cut!r} cores (1 to {n})")
            sizes = np.diff(_uniform(n, -(-n // cut)))
        else:
            try:
                sizes = np.asarray(cut)
            except (TypeError, ValueError):
                sizes = np.asarray(None)
            if (sizes.ndim != 1 or len(sizes) == 0 or sizes.dtype.kind not in "iu" or np.any(sizes < 1)
                    or sizes.sum() != n):
                raise PlacementTableError(f"placement table: population {name!r} needs a number of cores or a "
                                          f"list of positive slice sizes summing to its {n} neurons, got {cut!r}")
        if sizes.max() > per_core:
            raise PlacementTableError(f"placement table: population {name!r} puts {int(sizes.max())} neurons on "
                                      f"one core; {target.title} holds {per_core} per core")
        bounds[name] = np.append(0, np.cumsum(sizes)).astype(np.int64)
    return bounds


def _memory_bound(counts: Counts, name: str, largest: int, synapses_per_core: float) -> int:
    """Largest slice size up to ``largest`` whose slices all hold at most ``synapses_per_core`` synapses."""
    in_degree = np.zeros(counts.populations[name].n)
    for projection in counts.projections.values():
        if projection.post != name:
            continue
        if projection.post_ids is not None:
            in_degree += np.bincount(projection.post_ids, minlength=len(in_degree))
        else:
            in_degree += projection.synapses / len(in_degree)
    cumulative = np.concatenate(([0.0], np.cumsum(in_degree)))

    def fits(m: int) -> bool:
        starts = np.arange(0, len(in_degree), m)
        ends = np.minimum(starts + m, len(in_degree))
        return bool(np.all(cumulative[ends] - cumulative[starts] <= synapses_per_core))

    if fits(largest):
        return largest
    low, high = 1, largest  # fits(low) is assumed; a neuron too large for a core fails later, by name
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def _greedy_orders(counts: Counts, names: list[str]) -> list[list[str]]:
    """Candidate placement orders: from each start, repeatedly append the population exchanging
    the most packets with those already placed."""
    traffic = {(a, b): 0.0 for a in names for b in names}
    for projection in counts.projections.values():
        if projection.pre in names and projection.post in names and projection.pre != projection.post:
            packets = counts.sends(projection) * counts.populations[projection.pre].n
            traffic[projection.pre, projection.post] += packets
            traffic[projection.post, projection.pre] += packets
    by_traffic = sorted(names, key=lambda a: -sum(traffic[a, b] for b in names))
    orders = []
    for start in by_traffic[:_MAX_STARTS]:
        order, remaining = [start], [name for name in names if name != start]
        while remaining:
            # ties go to the population exchanging the most with the last one placed, then declaration order
            best = max(remaining, key=lambda a: (sum(traffic[a, b] for b in order), traffic[a, order[-1]],
                                                 -names.index(a)))
            order.append(best)
            remaining.remove(best)
        orders.append(order)
    return orders


def _lay_out(slices: list[CoreSlice], target: Target) -> None:
    """Core ``i`` of a chip sits at router ``i // cores_per_router``; routers fill rows of ``mesh_columns``."""
    columns, per_chip = int(target["mesh_columns"]), int(target["cores_per_chip"])
    sharing = int(target["cores_per_router"])
    for index, core in enumerate(slices):
        core.chip, local = divmod(index, per_chip)
        row, column = divmod(local // sharing, columns)
        core.y = row
        core.x = core.chip * columns + (column if row % 2 == 0 else columns - 1 - column)


def _traffic(counts: Counts, slices: list[CoreSlice], bounds: dict[str, np.ndarray]):
    """Packets, packet-hops, inter-chip packets, (packets, hops) per source population, and the
    packets each core sends and receives."""
    first_core = {}
    for index, core in enumerate(slices):
        first_core.setdefault(core.population, index)
    xs = np.array([c.x for c in slices], dtype=float)
    ys = np.array([c.y for c in slices], dtype=float)
    chips = np.array([c.chip for c in slices])
    sent_by_core, received_by_core = np.zeros(len(slices)), np.zeros(len(slices))
    packets = hops = inter_chip = 0.0
    by_population: dict[str, tuple[float, float]] = {}
    for projection in counts.projections.values():
        if projection.post not in bounds:
            continue
        pre = counts.populations[projection.pre]
        sends = counts.sends(projection)
        sources, cores, _ = _pairs(projection, pre.n, bounds[projection.post])
        if sources is None:
            # no structure: per target core, the expected number of sources reaching it, each
            # sending `sends` packets from the middle core of the source population
            post_cores = first_core[projection.post] + np.arange(len(cores))
            weight = cores * sends
            source_cores = (first_core[pre.name] + (len(bounds[pre.name]) - 1) // 2 if not pre.is_input
                            else None)
        else:
            post_cores = first_core[projection.post] + cores
            weight = np.full(len(cores), sends)
            source_cores = first_core[pre.name] + _core_of(bounds[pre.name], sources) if not pre.is_input else None
        if source_cores is None:
            # inputs enter at the mesh corner of the first chip
            src_x, src_y, src_chip = 0.0, 0.0, 0
        else:
            src_x, src_y, src_chip = xs[source_cores], ys[source_cores], chips[source_cores]
            np.add.at(sent_by_core, np.broadcast_to(source_cores, weight.shape), weight)
        np.add.at(received_by_core, post_cores, weight)
        distance = np.abs(xs[post_cores] - src_x) + np.abs(ys[post_cores] - src_y)
        crossing = chips[post_cores] != src_chip
        sent, travelled = float(weight.sum()), float((weight * distance).sum())
        packets += sent
        hops += travelled
        inter_chip += float(weight[crossing].sum())
        before = by_population.get(pre.name, (0.0, 0.0))
        by_population[pre.name] = (before[0] + sent, before[1] + travelled)
    return packets, hops, inter_chip, by_population, sent_by_core, received_by_core


def check_delays(counts: Counts, target: Target) -> None:
    """Raise :class:`DelayLimitError` for the first projection whose delays exceed the target's
    ``max_delay_steps`` (a constant only some targets define: Loihi 2's 62 steps)."""
    limit = int(target.get("max_delay_steps"))
    if not limit:
        return
    for projection in counts.projections.values():
        if projection.max_delay_steps > limit:
            raise DelayLimitError(
                f"projection {projection.name!r}: delays up to {projection.max_delay_steps} steps "
                f"({projection.max_delay_steps * counts.dt:g} s), but {target.title} delivers a spike at most "
                f"{limit} steps late; shorten them (learned delays: SpikingModule(..., max_delay=...) of at most "
                f"{limit} steps) or relay the spikes through intermediate neurons")


def check_strategy(strategy: str | Mapping) -> None:
    """Refuse a placement that names no strategy (a table is checked against the network when placed)."""
    if isinstance(strategy, str) and strategy not in STRATEGIES:
        raise PlacementError(f"unknown placement {strategy!r}: use one of {', '.join(STRATEGIES)} or a "
                             "population -> cores table")


def place(counts: Counts, target: Target, strategy: str | Mapping = "fan_in_aware") -> Placement:
    """Place ``counts``' populations on ``target``'s cores by ``strategy`` (see the module docstring)."""
    check_models(counts, target)
    check_delays(counts, target)
    check_strategy(strategy)
    _PAIRS_CACHE.clear()
    try:
        return _place(counts, target, strategy)
    finally:
        _PAIRS_CACHE.clear()


def _place(counts: Counts, target: Target, strategy) -> Placement:
    by_table = not isinstance(strategy, str)
    if by_table:
        bounds = _table_bounds(counts, target, strategy)
    else:
        bounds = _slice_sizes(counts, target, check_axons=strategy == "fan_in_aware")
    names = list(bounds)

    def slices_in(order: list[str]) -> list[CoreSlice]:
        slices = [CoreSlice(name, int(start), int(stop)) for name in order
                  for start, stop in zip(bounds[name][:-1], bounds[name][1:], strict=True)]
        _lay_out(slices, target)
        return slices

    nothing = (0.0, 0.0, 0.0, {}, np.zeros(0), np.zeros(0))
    order, slices = names, slices_in(names)
    traffic = _traffic(counts, slices, bounds) if names else nothing
    naive_hops = traffic[1]
    # a hand-given table fixes the order of cores too
    for candidate in _greedy_orders(counts, names) if names and not by_table else []:
        candidate_slices = slices_in(candidate)
        candidate_traffic = _traffic(counts, candidate_slices, bounds)
        if candidate_traffic[1] < traffic[1]:
            order, slices, traffic = candidate, candidate_slices, candidate_traffic
    packets, hops, inter_chip, by_population, sent_by_core, received_by_core = traffic
    chips = max(1, math.ceil(len(slices) / target["cores_per_chip"]))
    load = _core_loads(counts, slices, bounds, sent_by_core, received_by_core)
    bits_per_synapse = target["weight_bits"] + target["synapse_overhead_bits"]
    used = max(1, len(slices))
    utilisation = {
        "neurons": sum(c.stop - c.start for c in slices) / (used * target["neurons_per_core"]),
        "synaptic_memory": sum(load_["synapses"] for load_ in load) * bits_per_synapse
        / (used * target["synaptic_memory_bits_per_core"]),
        "cores": len(slices) / (chips * target["cores_per_chip"]),
    }
    violations = [] if strategy == "fan_in_aware" else _violations(counts, target, bounds)
    return Placement(slices, chips, utilisation, packets, hops, naive_hops, inter_chip, order, load, by_population,
                     "table" if by_table else strategy, violations)


def _core_loads(counts: Counts, slices: list[CoreSlice], bounds: dict[str, np.ndarray], sent_by_core: np.ndarray,
                received_by_core: np.ndarray) -> list[dict[str, float]]:
    """Per core over the run: neuron updates, spikes fired, packets sent and received, synaptic events
    and dense MACs, and synapses held. A population's updates and spikes are shared by its cores in
    proportion to their neurons (runs count spikes per population, not per neuron)."""
    cores_of: dict[str, list[int]] = {}
    for index, core in enumerate(slices):
        cores_of.setdefault(core.population, []).append(index)
    load = [{"updates": 0.0, "spikes": 0.0, "packets_out": float(sent), "packets_in": float(received),
             "events": 0.0, "macs": 0.0, "synapses": 0.0}
            for sent, received in zip(sent_by_core, received_by_core, strict=True)]
    for name, indices in cores_of.items():
        population = counts.populations[name]
        for index in indices:
            core = slices[index]
            share = (core.stop - core.start) / population.n
            load[index]["updates"] = population.updates * share
            load[index]["spikes"] = population.spikes * share
    for projection in counts.projections.values():
        if projection.post not in bounds:
            continue
        _, _, synapses_per_core = _pairs(projection, counts.populations[projection.pre].n, bounds[projection.post])
        share = synapses_per_core / max(1, projection.synapses)
        for local, index in enumerate(cores_of[projection.post]):
            load[index]["synapses"] += synapses_per_core[local]
            load[index]["events"] += projection.events * share[local]
            load[index]["macs"] += projection.macs * share[local]
    return load
