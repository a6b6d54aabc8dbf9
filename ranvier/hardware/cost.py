"""Energy, latency, throughput and FPGA resources from counts, a target and a placement.

Neuromorphic targets (per run; ``E_x`` and ``t_x`` are the target's constants)::

    E_dynamic = E_syn * ACs + E_mac * MACs + E_neuron * updates + E_spike_out * spikes
                + E_spike * packets + E_hop * hops
    work(c)   = t_neuron * updates + t_syn * (ACs + MACs) + t_spike_out * spikes
                + t_packet_out * packets sent + t_packet_in * packets received      (of core c)
    t_step(k) = t_overhead(routers in use) + max over cores work(c at step k) + t_hop * (mesh diameter in use)

Each step takes as long as its busiest core, then the barrier. With the run's spike raster
(``counts.raster``: every spiking population with outgoing synapses recorded, see
:mod:`ranvier.hardware.raster`) the work of each core at each step is known
(:mod:`ranvier.hardware.steps`), and the step time is reported as the mean over steps, with its
range; without it, the *average step* is used: each core's work over the run divided by the
steps, which misses the steps where activity bunches (a burst at one step and silence at the
next cost more than their mean). ``t_overhead`` may depend on the routers (tiles) in use
(the constant's ``by_routers`` table, :mod:`ranvier.hardware.targets`).

``spikes`` are those a core's neurons fire (the soma's spike-out work, once per spike),
``packets`` those leaving a core (one per spike per target core, each with its axon-out
lookup and its way through the routers). ``E_spike_out`` and the ``t_spike_out``,
``t_packet_out``, ``t_packet_in`` terms are optional constants (0 where a target defines none).

``hops`` and the mesh diameter count router hops: cores sharing a router are zero hops apart
(``cores_per_router``; see :mod:`ranvier.hardware.placement`).
    E_static  = P_chip * chips * sum over steps t_step(k)

FPGA targets (a dataflow design, hls4ml-style; Duarte et al. 2018)::

    cycles per step = sum_p ceil(n_p / lanes) + ceil(ACs per step / lanes)
                      + sum over value populations (reuse_factor + pipeline_depth)
    DSPs = lanes + sum_p ceil(MACs per step into p / reuse_factor) * dsp_per_mac
    clock = f_max, derated by limit / utilisation above the timing utilisation limit

Weights that do not fit the block RAM stream from HBM: each AC or MAC fetches its weight,
adding ``bytes / (hbm_bandwidth / clock)`` cycles per step and ``E_hbm`` per byte.

Von Neumann baselines (CPU/GPU)::

    E = E_mac * (MACs + ops_per_update * updates) + E_acc * ACs + E_byte * bytes
    t = max(operations / mac_rate, bytes / memory_bandwidth)

Energies are in joules, times in seconds, power in watts. Per-population energies charge
synaptic work to the receiving population and packets to the sending one; static energy is
shared by cores (neuromorphic) or by neuron updates (others).
"""

from __future__ import annotations

import math

import numpy as np

from .counts import Counts
from .placement import Placement, PlacementError, check_models
from .steps import step_loads
from .targets import Target

CATEGORIES = ("synaptic", "dense", "neuron", "spike_out", "routing", "static")


def _empty(counts: Counts) -> dict[str, dict[str, float]]:
    return {name: dict.fromkeys(CATEGORIES, 0.0) for name in counts.populations}


def neuromorphic(counts: Counts, target: Target, placement: Placement) -> dict[str, object]:
    energy = _empty(counts)
    for projection in counts.projections.values():
        energy[projection.post]["synaptic"] += target["energy_per_synaptic_event"] * projection.events
        energy[projection.post]["dense"] += target["energy_per_mac"] * projection.macs
    for population in counts.populations.values():
        if not population.is_input:
            energy[population.name]["neuron"] += target["energy_per_neuron_update"] * population.updates
            energy[population.name]["spike_out"] += target.get("energy_per_spike_out") * population.spikes
    for name, (packets, hops) in placement.traffic_by_population.items():
        energy[name]["routing"] += target["energy_per_spike"] * packets + target["energy_per_hop"] * hops
    steps = max(1, counts.steps)
    span = (max((c.x for c in placement.cores), default=0) + max((c.y for c in placement.cores), default=0))
    routers = len({(c.chip, c.x, c.y) for c in placement.cores})
    fixed = target.for_routers("time_per_step_overhead", routers) + target["time_per_hop"] * span
    if counts.raster is not None:
        busiest = np.concatenate([_core_work(target, loads).max(axis=1, initial=0.0)
                                  for loads in step_loads(counts, placement)] or [np.zeros(0)])
        step_times = fixed + busiest
        wall = float(step_times.sum())
        step_time = wall / steps
        step_model = f"each step's busiest core, over the {counts.steps} steps of the spike raster"
    else:
        busiest = max((_core_work(target, load) for load in placement.load_by_core), default=0.0) / steps
        step_time = fixed + busiest
        wall = steps * step_time
        step_times = None
        step_model = f"the average step (the run's work per core / steps): {counts.no_raster}"
    static = target["static_power_per_chip"] * placement.chips * wall
    cores = placement.cores_by_population
    for name, n_cores in cores.items():
        energy[name]["static"] += static * n_cores / max(1, len(placement.cores))
    return {"energy": energy, "step_time": step_time, "wall_time": wall, "static_power": static / wall if wall else 0,
            "step_times": step_times, "step_model": step_model}


def _core_work(target: Target, load):
    """Busy time (s) of a core over the work in ``load`` (numbers, or arrays of them by step and core)."""
    return (target["time_per_neuron_update"] * load["updates"]
            + target["time_per_synaptic_event"] * (load["events"] + load["macs"])
            + target.get("time_per_spike_out") * load["spikes"]
            + target.get("time_per_packet_out") * load["packets_out"]
            + target.get("time_per_packet_in") * load["packets_in"])


def fpga(counts: Counts, target: Target) -> dict[str, object]:
    check_models(counts, target)
    steps = max(1, counts.steps)
    computing = [p for p in counts.populations.values() if not p.is_input]
    lanes = int(min(target["parallel_lanes"], max(1, sum(p.n for p in computing if p.kind != "value"))))
    if not any(p.kind != "value" for p in computing):
        lanes = 0
    macs_into = {p.name: 0.0 for p in computing}
    for projection in counts.projections.values():
        if projection.post in macs_into:
            macs_into[projection.post] += projection.macs / steps
    dsp_budget = target["dsps"] - lanes
    reuse = int(target["reuse_factor"]) or _smallest_reuse(macs_into.values(), dsp_budget, target["dsp_per_mac"])
    multipliers = sum(math.ceil(m / reuse) for m in macs_into.values() if m > 0)
    synapse_bits = counts.synapses * target["weight_bits"]
    state_bits = sum(p.n * p.state_variables for p in computing) * target["state_bits"]
    # weights that overflow the block RAM stream from HBM, each use fetching its weight
    weights_in_hbm = synapse_bits + state_bits > target["bram_blocks"] * target["bram_bits_per_block"]
    on_chip_bits = state_bits if weights_in_hbm else synapse_bits + state_bits
    resources = {
        "dsp": lanes + multipliers * target["dsp_per_mac"],
        "lut": lanes * target["luts_per_lane"] + multipliers * target["luts_per_mac"],
        "ff": lanes * target["ffs_per_lane"] + multipliers * target["luts_per_mac"],
        "bram": math.ceil(on_chip_bits / target["bram_bits_per_block"]),
    }
    available = {"dsp": target["dsps"], "lut": target["luts"], "ff": target["ffs"], "bram": target["bram_blocks"]}
    utilisation = {key: resources[key] / available[key] for key in resources}
    for key, used in utilisation.items():
        if used > 1:
            raise PlacementError(f"the design does not fit {target.title}: it needs {resources[key]:.0f} "
                                 f"{key.upper()}, the device has {available[key]:.0f}")
    limit = target["timing_utilisation_limit"]
    clock = target["clock_hz"] * min(1.0, limit / max(max(utilisation.values()), 1e-12))
    spiking_updates = sum(math.ceil(p.n / lanes) for p in computing if p.kind != "value") if lanes else 0
    events_per_step = counts.synaptic_events / steps
    cycles = (spiking_updates + (math.ceil(events_per_step / lanes) if lanes else 0)
              + sum(reuse + target["pipeline_depth_cycles"] for m in macs_into.values() if m > 0))
    hbm_bytes = (counts.synaptic_events + counts.dense_macs) * target["weight_bits"] / 8 if weights_in_hbm else 0.0
    if weights_in_hbm:
        cycles += math.ceil(hbm_bytes / steps / (target["hbm_bandwidth"] / clock))
    step_time = cycles / clock
    wall = steps * step_time
    energy = _empty(counts)
    fetch = target["energy_per_hbm_byte"] * target["weight_bits"] / 8 if weights_in_hbm else 0.0
    for projection in counts.projections.values():
        energy[projection.post]["synaptic"] += (target["energy_per_synaptic_event"] + fetch) * projection.events
        energy[projection.post]["dense"] += (target["energy_per_mac"] + fetch) * projection.macs
    _neuron_and_static(counts, energy, target["energy_per_neuron_update"], target["static_power"] * wall)
    return {"energy": energy, "step_time": step_time, "wall_time": wall, "static_power": target["static_power"],
            "fpga": {"resources": resources, "available": available, "utilisation": utilisation,
                     "clock_hz": clock, "reuse_factor": reuse, "lanes": lanes, "cycles_per_step": cycles,
                     "weights_in": "HBM" if weights_in_hbm else "BRAM", "hbm_bytes": hbm_bytes}}


def _smallest_reuse(macs_per_step, dsp_budget: float, dsp_per_mac: float) -> int:
    """Smallest reuse factor whose multipliers fit the DSPs left (hls4ml's ReuseFactor)."""
    macs = [m for m in macs_per_step if m > 0]
    if not macs:
        return 1
    reuse = 1
    while sum(math.ceil(m / reuse) for m in macs) * dsp_per_mac > dsp_budget:
        if reuse > max(macs):
            raise PlacementError(f"the dense layers need more DSPs than the {dsp_budget:.0f} left even at full reuse")
        reuse += max(1, reuse // 8)
    return reuse


def _neuron_and_static(counts: Counts, energy, energy_per_update: float, static: float) -> None:
    updates = max(1.0, counts.computed_updates)
    for population in counts.populations.values():
        if not population.is_input:
            energy[population.name]["neuron"] += energy_per_update * population.updates
            energy[population.name]["static"] += static * population.updates / updates


def von_neumann(counts: Counts, target: Target) -> dict[str, object]:
    check_models(counts, target)
    energy = _empty(counts)
    for projection in counts.projections.values():
        energy[projection.post]["synaptic"] += projection.events * (
            target["energy_per_accumulate"] + target["bytes_per_synaptic_event"] * target["energy_per_byte"])
        # a dense MAC reads its float32 weight
        energy[projection.post]["dense"] += projection.macs * (target["energy_per_mac"] + 4 * target["energy_per_byte"])
    operations = (counts.dense_macs + counts.synaptic_events
                  + counts.computed_updates * target["ops_per_neuron_update"])
    moved = (counts.synaptic_events * target["bytes_per_synaptic_event"] + 4 * counts.dense_macs
             + counts.computed_updates * target["bytes_per_neuron_update"])
    wall = max(operations / target["mac_rate"], moved / target["memory_bandwidth"])
    per_update = (target["ops_per_neuron_update"] * target["energy_per_mac"]
                  + target["bytes_per_neuron_update"] * target["energy_per_byte"])
    _neuron_and_static(counts, energy, per_update, target["static_power"] * wall)
    steps = max(1, counts.steps)
    return {"energy": energy, "step_time": wall / steps, "wall_time": wall, "static_power": target["static_power"],
            "bytes_moved": moved}
