"""The work of each core at each step, from a run's spike raster and a placement.

For step ``k`` and core ``c`` (one slice of a placed population, :mod:`ranvier.hardware.placement`)::

    spikes[k, c]      = spikes c's neurons fired at step k
    packets_out[k, c] = sum over those spikes of the target cores of the firing neuron, per projection
    packets_in[k, c]  = packets reaching c at step k (from placed and input populations)
    events[k, c]      = synapses onto c's neurons from the neurons that fired at step k (ACs)
    updates[k, c]     = neurons of c x updates per neuron per step of its population (the run's mean)
    macs[k, c]        = c's dense MACs per step (the run's mean)

Packets are counted as the placement counts them: a spike travels once to each core holding some
of its targets through a projection. A spike's work at its targets is charged to the step that
fired it: the receiving cores take in its packets and accumulate its weights (into whichever
delay slot the synapse names) before the step's barrier, as SANA-FE's time step does (its
``chip.cpp``: messages are processed at their destination cores in the step that sends them).
Populations that are not in the raster (those without outgoing synapses, unrecorded) have their
spikes spread evenly over the steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import HardwareError
from .counts import Counts, ProjectionCounts
from .placement import Placement

#: largest steps x cores block of loads built at once
_BLOCK_ELEMENTS = 1 << 22


@dataclass
class _Fanout:
    """Where the neurons of ``pre`` send through one projection: neuron ``i``'s (target core,
    synapses) pairs are ``cores[ptr[i]:ptr[i + 1]]`` and ``synapses[ptr[i]:ptr[i + 1]]``; cores are
    indices into the placement's core list."""

    pre: str
    ptr: np.ndarray
    cores: np.ndarray
    synapses: np.ndarray


def _population_cores(placement: Placement) -> dict[str, tuple[int, np.ndarray]]:
    """Per placed population: the index of its first core and its slice boundaries (its cores are consecutive)."""
    result: dict[str, tuple[int, list[int]]] = {}
    for index, core in enumerate(placement.cores):
        first, bounds = result.setdefault(core.population, (index, [core.start]))
        bounds.append(core.stop)
    return {name: (first, np.asarray(bounds, dtype=np.int64)) for name, (first, bounds) in result.items()}


def _fanout(projection: ProjectionCounts, pre_n: int, first: int, bounds: np.ndarray) -> _Fanout:
    n_cores = len(bounds) - 1
    if projection.row_ptr is not None:
        pre_ids = np.repeat(np.arange(pre_n, dtype=np.int64), np.diff(projection.row_ptr))
        post_core = np.searchsorted(bounds, projection.post_ids.astype(np.int64), side="right") - 1
        keys, synapses = np.unique(pre_ids * n_cores + post_core, return_counts=True)
        sources, cores = keys // n_cores, keys % n_cores
    elif projection.all_to_all:
        # every source reaches every core's every neuron, less itself without autapses
        sources = np.repeat(np.arange(pre_n, dtype=np.int64), n_cores)
        cores = np.tile(np.arange(n_cores, dtype=np.int64), pre_n)
        synapses = np.diff(bounds)[cores]
        if not projection.autapses:
            synapses = synapses - ((sources >= bounds[cores]) & (sources < bounds[cores + 1]))
        synapses = synapses * projection.synapses_per_target
        keep = synapses > 0
        sources, cores, synapses = sources[keep], cores[keep], synapses[keep]
    else:
        raise HardwareError(f"projection {projection.name!r} has no synapse structure (row_ptr, post_ids), "
                            "so its spikes cannot be followed to their cores step by step")
    ptr = np.searchsorted(sources, np.arange(pre_n + 1))
    return _Fanout(projection.pre, ptr, first + cores, synapses.astype(float))


def _deliver(flat: dict[str, np.ndarray], fanout: _Fanout, rows: np.ndarray, ids: np.ndarray,
             senders: np.ndarray | None) -> None:
    """Add the packets and synaptic events of spikes ``ids`` (at flat offsets ``rows``, sent from
    flat cells ``senders``, None for inputs) through ``fanout`` to ``flat``'s counts."""
    size = len(flat["events"])
    degree = np.diff(fanout.ptr)
    if senders is not None:
        flat["packets_out"] += np.bincount(senders, weights=degree[ids], minlength=size)
    # the (target core, synapses) pairs of each spike, one after another, a bounded number at a time
    piece = max(1, _BLOCK_ELEMENTS // max(1, int(degree.max(initial=0))))
    for start in range(0, len(ids), piece):
        some, at = ids[start:start + piece], rows[start:start + piece]
        spread = degree[some]
        offsets = np.cumsum(spread) - spread
        pairs = np.repeat(fanout.ptr[some] - offsets, spread) + np.arange(int(spread.sum()))
        targets = np.repeat(at, spread) + fanout.cores[pairs]
        flat["packets_in"] += np.bincount(targets, minlength=size)
        flat["events"] += np.bincount(targets, weights=fanout.synapses[pairs], minlength=size)


def step_loads(counts: Counts, placement: Placement) -> Iterator[dict[str, np.ndarray]]:
    """The loads above for consecutive blocks of steps: each a dict of (steps in the block, cores) arrays.

    ``counts.raster`` must hold the run's spikes (:mod:`ranvier.hardware.raster`).
    """
    raster = counts.raster
    if raster is None:
        raise HardwareError(f"no spike raster, so no per-step loads: {counts.no_raster}")
    placed = _population_cores(placement)
    fanouts: dict[str, list[_Fanout]] = {}
    for projection in counts.projections.values():
        if projection.dense or projection.post not in placed or projection.pre not in raster.spikes:
            continue
        first, bounds = placed[projection.post]
        fanouts.setdefault(projection.pre, []).append(
            _fanout(projection, counts.populations[projection.pre].n, first, bounds))
    steps = max(1, raster.steps)
    n = len(placement.cores)
    mean = {key: np.array([load[key] for load in placement.load_by_core]) / steps for key in ("updates", "macs")}
    # populations out of the raster spike evenly
    mean["spikes"] = np.array([0.0 if core.population in raster.spikes else load["spikes"]
                               for core, load in zip(placement.cores, placement.load_by_core, strict=True)]) / steps
    block = max(1, _BLOCK_ELEMENTS // max(1, n))
    for start in range(0, raster.steps, block):
        stop = min(raster.steps, start + block)
        size = (stop - start) * n
        flat = {key: np.zeros(size) for key in ("spikes", "packets_out", "packets_in", "events")}
        for name, (spike_steps, ids) in raster.spikes.items():
            lo, hi = np.searchsorted(spike_steps, (start, stop))
            rows, ids_now = (spike_steps[lo:hi] - start) * n, ids[lo:hi]
            senders = None
            if name in placed:
                first, bounds = placed[name]
                senders = rows + first + np.searchsorted(bounds, ids_now, side="right") - 1
                flat["spikes"] += np.bincount(senders, minlength=size)
            for fanout in fanouts.get(name, ()):
                _deliver(flat, fanout, rows, ids_now, senders)
        loads = {key: value.reshape(stop - start, n) for key, value in flat.items()}
        loads["spikes"] = loads["spikes"] + mean["spikes"]
        for key in ("updates", "macs"):
            loads[key] = np.broadcast_to(mean[key], (stop - start, n))
        yield loads
