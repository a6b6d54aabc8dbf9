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
"""

from __future__ import annotations

import math
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
                "order": self.order}


def check_models(counts: Counts, target: Target) -> None:
    """Raise :class:`UnsupportedModelError` for the first population the target cannot run."""
    for population in counts.populations.values():
        reason = target.refuses(population.model, population.kind)
        if reason:
            raise UnsupportedModelError(f"population {population.name!r}: {reason} (target {target.name!r})")


_PAIRS_CACHE: dict[tuple[int, int], tuple] = {}


def _pairs(projection: ProjectionCounts, pre_n: int, post_n: int, post_slice: int):
    """Unique (source neuron, target core index within post) pairs and synapse counts per target core."""
    key = (id(projection), post_slice)
    if key not in _PAIRS_CACHE:
        _PAIRS_CACHE[key] = _compute_pairs(projection, pre_n, post_n, post_slice)
    return _PAIRS_CACHE[key]


def _compute_pairs(projection: ProjectionCounts, pre_n: int, post_n: int, post_slice: int):
    if projection.row_ptr is not None:
        pre_ids = np.repeat(np.arange(pre_n, dtype=np.int64), np.diff(projection.row_ptr))
        post_core = projection.post_ids.astype(np.int64) // post_slice
        n_post_cores = -(-post_n // post_slice)
        synapses_per_core = np.bincount(post_core, minlength=n_post_cores).astype(float)
        if n_post_cores * pre_n <= _MARK_LIMIT:
            # mark (target core, source) pairs in a table: linear time, where sorting keys is not
            reached = np.zeros((n_post_cores, pre_n), dtype=bool)
            reached[post_core, pre_ids] = True
            cores, sources = np.nonzero(reached)
            return sources, cores, synapses_per_core
        keys = np.unique(pre_ids * n_post_cores + post_core)
        return keys // n_post_cores, keys % n_post_cores, synapses_per_core
    n_post_cores = -(-post_n // post_slice)
    sizes = np.minimum(post_slice, post_n - post_slice * np.arange(n_post_cores))
    if projection.all_to_all:
        # every source reaches every core (in the order of the table above), except that without
        # autapses a core holding only target j misses source j; each target misses one source then
        cores = np.repeat(np.arange(n_post_cores), pre_n)
        sources = np.tile(np.arange(pre_n), n_post_cores)
        if not projection.autapses:
            reached = (sizes[cores] > 1) | (sources != cores * post_slice)
            cores, sources = cores[reached], sources[reached]
        return sources, cores, (sizes * (pre_n if projection.autapses else pre_n - 1)).astype(float)
    # no structure: uniformly random targets, so each core gets its share of the synapses and a
    # source reaches a given core with probability 1 - (1 - k/post_n)^slice
    sizes = sizes.astype(float)
    per_source = projection.synapses / max(1, pre_n)
    reach = 1.0 - (1.0 - min(1.0, per_source / post_n)) ** sizes
    synapses_per_core = projection.synapses * sizes / post_n
    return None, reach * pre_n, synapses_per_core


def _slice_sizes(counts: Counts, target: Target) -> dict[str, int]:
    """Largest slice per population that meets the per-core limits, refined until all hold."""
    placed = [p for p in counts.populations.values() if not p.is_input]
    size = {p.name: min(p.n, int(target["neurons_per_core"])) for p in placed}
    bits_per_synapse = target["weight_bits"] + target["synapse_overhead_bits"]
    for name in size:
        size[name] = _memory_bound(counts, name, size[name], target["synaptic_memory_bits_per_core"] / bits_per_synapse)
    fan_in_limit, memory_limit = target["fan_in_axons_per_core"], target["synaptic_memory_bits_per_core"]
    fan_out_limit, targets_limit = target["fan_out_axons_per_core"], target["max_target_cores_per_neuron"]
    for _ in range(_MAX_REFINEMENTS):
        worst: dict[str, float] = {}
        fan_out_per_neuron = {p.name: np.zeros(p.n) for p in counts.populations.values()}
        memory = {name: np.zeros(-(-counts.populations[name].n // s)) for name, s in size.items()}
        fan_in = {name: np.zeros_like(memory[name]) for name in size}
        for projection in counts.projections.values():
            if projection.post not in size:
                continue
            pre_n, post_n = counts.populations[projection.pre].n, counts.populations[projection.post].n
            sources, cores, synapses_per_core = _pairs(projection, pre_n, post_n, size[projection.post])
            memory[projection.post] += synapses_per_core * bits_per_synapse
            if sources is None:
                fan_in[projection.post] += cores
                fan_out_per_neuron[projection.pre] += cores.sum() / max(1, pre_n)
            else:
                fan_in[projection.post] += np.bincount(cores, minlength=len(memory[projection.post]))
                fan_out_per_neuron[projection.pre] += np.bincount(sources, minlength=pre_n)
        for name in size:
            neuron_targets = fan_out_per_neuron[name]
            if neuron_targets.max(initial=0) > targets_limit:
                raise PlacementError(
                    f"population {name!r}: a neuron sends to {int(neuron_targets.max())} cores, but "
                    f"{target.title} lets a neuron reach {int(targets_limit)} target core(s) "
                    f"(insert splitter neurons or shrink the fan-out)")
            slice_out = np.add.reduceat(neuron_targets, np.arange(0, len(neuron_targets), size[name]))
            ratios = [memory[name].max(initial=0) / memory_limit, fan_in[name].max(initial=0) / fan_in_limit,
                      slice_out.max(initial=0) / fan_out_limit]
            if max(ratios) > 1:
                worst[name] = max(ratios)
        if not worst:
            return size
        for name, ratio in worst.items():
            if size[name] == 1:
                population = counts.populations[name]
                raise PlacementError(
                    f"population {name!r} ({population.model}) cannot fit {target.title}: one neuron needs "
                    f"{ratio:.3g} times a core's synaptic memory, input axons or output axons "
                    f"({int(memory_limit)} bits, {int(fan_in_limit)} in, {int(fan_out_limit)} out per core)")
            size[name] = max(1, min(size[name] - 1, int(size[name] / ratio * 0.98)))
    raise PlacementError(f"placement on {target.title} did not converge after {_MAX_REFINEMENTS} refinements")


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


def _traffic(counts: Counts, slices: list[CoreSlice], size: dict[str, int]):
    """Packets, packet-hops, inter-chip packets and (packets, hops) per source population."""
    first_core = {}
    for index, core in enumerate(slices):
        first_core.setdefault(core.population, index)
    xs = np.array([c.x for c in slices], dtype=float)
    ys = np.array([c.y for c in slices], dtype=float)
    chips = np.array([c.chip for c in slices])
    packets = hops = inter_chip = 0.0
    by_population: dict[str, tuple[float, float]] = {}
    for projection in counts.projections.values():
        if projection.post not in size:
            continue
        pre = counts.populations[projection.pre]
        sends = counts.sends(projection)
        post_slice = size[projection.post]
        sources, cores, _ = _pairs(projection, pre.n, counts.populations[projection.post].n, post_slice)
        if sources is None:
            # no structure: per target core, the expected number of sources reaching it, each
            # sending `sends` packets from the middle core of the source population
            post_cores = first_core[projection.post] + np.arange(len(cores))
            weight = cores * sends
            source_cores = first_core[pre.name] + (-(-pre.n // size[pre.name])) // 2 if not pre.is_input else None
        else:
            post_cores = first_core[projection.post] + cores
            weight = np.full(len(cores), sends)
            source_cores = first_core[pre.name] + sources // size[pre.name] if not pre.is_input else None
        if source_cores is None:
            # inputs enter at the mesh corner of the first chip
            src_x, src_y, src_chip = 0.0, 0.0, 0
        else:
            src_x, src_y, src_chip = xs[source_cores], ys[source_cores], chips[source_cores]
        distance = np.abs(xs[post_cores] - src_x) + np.abs(ys[post_cores] - src_y)
        crossing = chips[post_cores] != src_chip
        sent, travelled = float(weight.sum()), float((weight * distance).sum())
        packets += sent
        hops += travelled
        inter_chip += float(weight[crossing].sum())
        before = by_population.get(pre.name, (0.0, 0.0))
        by_population[pre.name] = (before[0] + sent, before[1] + travelled)
    return packets, hops, inter_chip, by_population


def place(counts: Counts, target: Target) -> Placement:
    """Place ``counts``' populations on ``target``'s cores (see the module docstring)."""
    check_models(counts, target)
    _PAIRS_CACHE.clear()
    try:
        return _place(counts, target)
    finally:
        _PAIRS_CACHE.clear()


def _place(counts: Counts, target: Target) -> Placement:
    size = _slice_sizes(counts, target)
    names = list(size)

    def slices_in(order: list[str]) -> list[CoreSlice]:
        slices = [CoreSlice(name, start, min(start + size[name], counts.populations[name].n))
                  for name in order for start in range(0, counts.populations[name].n, size[name])]
        _lay_out(slices, target)
        return slices

    nothing = (0.0, 0.0, 0.0, {})
    order, slices = names, slices_in(names)
    traffic = _traffic(counts, slices, size) if names else nothing
    naive_hops = traffic[1]
    for candidate in _greedy_orders(counts, names) if names else []:
        candidate_slices = slices_in(candidate)
        candidate_traffic = _traffic(counts, candidate_slices, size)
        if candidate_traffic[1] < traffic[1]:
            order, slices, traffic = candidate, candidate_slices, candidate_traffic
    packets, hops, inter_chip, by_population = traffic
    chips = max(1, math.ceil(len(slices) / target["cores_per_chip"]))
    load = _core_loads(counts, slices, size)
    bits_per_synapse = target["weight_bits"] + target["synapse_overhead_bits"]
    used = max(1, len(slices))
    utilisation = {
        "neurons": sum(c.stop - c.start for c in slices) / (used * target["neurons_per_core"]),
        "synaptic_memory": sum(load_["synapses"] for load_ in load) * bits_per_synapse
        / (used * target["synaptic_memory_bits_per_core"]),
        "cores": len(slices) / (chips * target["cores_per_chip"]),
    }
    return Placement(slices, chips, utilisation, packets, hops, naive_hops, inter_chip, order, load, by_population)


def _core_loads(counts: Counts, slices: list[CoreSlice], size: dict[str, int]) -> list[dict[str, float]]:
    """Per core: neuron updates, synaptic events and dense MACs over the run, and synapses held."""
    cores_of: dict[str, list[int]] = {}
    for index, core in enumerate(slices):
        cores_of.setdefault(core.population, []).append(index)
    load = [{"updates": 0.0, "events": 0.0, "macs": 0.0, "synapses": 0.0} for _ in slices]
    for name, indices in cores_of.items():
        population = counts.populations[name]
        for index in indices:
            core = slices[index]
            load[index]["updates"] = population.updates * (core.stop - core.start) / population.n
    for projection in counts.projections.values():
        if projection.post not in size:
            continue
        _, _, synapses_per_core = _pairs(projection, counts.populations[projection.pre].n,
                                         counts.populations[projection.post].n, size[projection.post])
        share = synapses_per_core / max(1, projection.synapses)
        for local, index in enumerate(cores_of[projection.post]):
            load[index]["synapses"] += synapses_per_core[local]
            load[index]["events"] += projection.events * share[local]
            load[index]["macs"] += projection.macs * share[local]
    return load
