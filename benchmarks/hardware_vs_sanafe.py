"""ranvier's Loihi and TrueNorth estimates side by side with SANA-FE's, on the same spikes and mapping.

    python benchmarks/hardware_vs_sanafe.py [--cuba-duration 0.5] [--dvs-steps 128] [--repeats 2]

SANA-FE (Boyle et al., IEEE TCAD 2025; ``pip install sanafe``) simulates a mapped spiking network
on an architecture description, time step by time step. Each network below runs in ranvier; the
same network goes to SANA-FE through its Python API, with the same cores: every ranvier core
slice (``report.placement.cores``) becomes a SANA-FE core at the same tile position (SANA-FE's
tile ``x * 4 + y`` on its 8 x 4 Loihi mesh, the core's place in its tile). Two ways of giving
SANA-FE the same spikes:

* **driven** (CUBA, digits, the mixed network): SANA-FE's neurons are Loihi LIF compartments with
  no leak and zero synaptic weights, and before each step the neurons ranvier fired at that step
  get a bias above threshold (``bias = 1``, ``threshold = 0.5``), all others ``bias = 0``; so
  they fire exactly when ranvier's did, and every spike goes through SANA-FE's synapses, axons
  and mesh. ``force_update`` marks each neuron active every step, as a LIF whose potential is
  never zero is on Loihi. Sources (``SpikeSource``) become SANA-FE input neurons (``loihi_inputs``,
  which cost nothing at the soma) replaying ranvier's input spikes, on spare cores after
  ranvier's (ranvier puts no source on a core; its input packets enter at the mesh corner).
* **native** (DVS gesture): both sides run the network's own dynamics on the same input events.
  SANA-FE builds its shipped network (``dvs_challenge.npz``, the layers of its tutorial 5 and of
  ``scripts/tcad2025/dvs_gesture.py``: Loihi LIF without leak, weights and thresholds as given);
  ranvier builds the same synapses (read back from SANA-FE's network) as LIF populations with
  delta synapses, no leak and ``v_th = threshold + 0.5`` (integer potentials: ``v >= th + 0.5``
  is SANA-FE's ``v > th``). Its input layer (bias-driven neurons of SANA-FE's tutorial) is a
  ``SpikeSource`` of the spikes those neurons fire, and in SANA-FE input neurons replaying the
  same spikes, so neither side computes it; the shipped configuration (input layer as biased
  LIF on a core, the tutorial's ``[1, 4, 16, 16, 4, 1]`` cores) is reported beside.

Energy by component: *synaptic* (SANA-FE synapse units; ranvier synaptic and dense), *neuron
update* (SANA-FE soma energy less its spike-out part; ranvier neuron), *spike out* (fired
spikes times ``energy_spike_out``; ranvier spike_out), *network* (SANA-FE axon-in/out and hops;
ranvier routing), *static* (SANA-FE has none). Time per step: SANA-FE's ``sim_time`` per step
("detailed" timing model) against ranvier's ``step_times``, each step's busiest core from the
spikes its monitors recorded (every population is recorded, so ranvier times each step; the mean
over steps is compared, and the per-step ratio's range is given). TrueNorth: SANA-FE's
``truenorth.yaml`` sets every energy and latency to 0, so it is read, not run (ratios undefined).

Results go to ``benchmarks/results/hardware_vs_sanafe.json``; the Markdown replaces this
script's section of ``benchmarks/BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import json
import os
import platform
import re
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
from harness import cpu_name, write_section

import ranvier as rv
import ranvier.hardware as hw
from ranvier.engine.plausibility import unchecked

RESULTS = Path(__file__).resolve().parent / "results" / "hardware_vs_sanafe.json"
BENCHMARKS = Path(__file__).resolve().parent / "BENCHMARKS.md"
SECTION = "## Hardware estimates beside SANA-FE (`benchmarks/hardware_vs_sanafe.py`)"
COMPONENTS = ("synaptic", "neuron", "spike_out", "network", "static")
#: SANA-FE's Loihi mesh is 4 tiles high: tile id = x * height + y (its arch.cpp)
MESH_HEIGHT = 4


@contextlib.contextmanager
def quiet():
    """Silence SANA-FE's C++ progress lines (written to the process's stdout)."""
    with open(os.devnull, "w") as null:
        saved = os.dup(1)
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            ctypes.CDLL(None).fflush(None)  # C stdio buffers, before stdout is back
            os.dup2(saved, 1)
            os.close(saved)


def arch_constants(name: str) -> dict:
    """The per-event constants of SANA-FE's shipped architecture file ``name`` (loihi, truenorth)."""
    import yaml

    text = files("sanafe.examples").joinpath(f"{name}.yaml").read_text()
    architecture = yaml.safe_load(text)["architecture"]
    tile = architecture["tile"][0]
    core = tile["core"][0]
    values = {"sync": architecture["attributes"].get("latency_sync"), **tile["attributes"]}
    for unit in ("axon_in", "soma", "synapse", "axon_out", "dendrite"):
        for entry in core.get(unit) or ():
            for key, value in entry["attributes"].items():
                if isinstance(value, float | int) and not isinstance(value, bool):
                    values[f"{entry['name']}.{key}"] = value
    return values


def loihi_spike_out_energy() -> float:
    """``energy_spike_out`` of the ``loihi_lif`` soma in SANA-FE's ``loihi.yaml`` (J), read without a YAML parser."""
    text = files("sanafe.examples").joinpath("loihi.yaml").read_text()
    block = text[text.index("name: loihi_lif"):]
    return float(re.search(r"energy_spike_out:\s*([0-9.eE+-]+)", block).group(1))


def spike_steps(net: rv.Network, monitors: dict, steps: int) -> dict[str, list[np.ndarray]]:
    """Per population, the ids that fired at each step of the run (ranvier's spike at ``k dt`` is step ``k - 1``)."""
    result = {}
    for name, monitor in monitors.items():
        step = np.clip(np.rint(np.asarray(monitor.times) / net.dt).astype(np.int64) - 1, 0, steps - 1)
        ids = np.asarray(monitor.ids, dtype=np.int64)
        order = np.argsort(step, kind="stable")
        bounds = np.searchsorted(step[order], np.arange(steps + 1))
        result[name] = [ids[order[bounds[k]:bounds[k + 1]]] for k in range(steps)]
    return result


def sanafe_cores(arch, placement: hw.Placement, cores_per_router: int):
    """The SANA-FE core of each ranvier core slice: same tile (x, y), same place in the tile."""
    if placement.chips > 1:
        raise SystemExit("the SANA-FE Loihi file is one chip of 128 cores; this mapping needs more")
    tiles = [tile.cores for tile in arch.tiles]  # each arch.tiles access copies every tile
    chosen = [tiles[core.x * MESH_HEIGHT + core.y][index % cores_per_router]
              for index, core in enumerate(placement.cores)]
    used = {(c.x * MESH_HEIGHT + c.y, i % cores_per_router) for i, c in enumerate(placement.cores)}
    spare = [tiles[t][k] for t in reversed(range(len(tiles))) for k in range(cores_per_router) if (t, k) not in used]
    return chosen, spare


def _connect(snn_groups, net: rv.Network, weights_zero: bool) -> None:
    for projection in net.projections:
        pre, post = projection.pre.name, projection.post.name
        if pre not in snn_groups or post not in snn_groups:
            continue
        pre_ids = np.asarray(projection.pre_ids)
        post_ids = np.asarray(projection.post_ids)
        weights = np.zeros(len(pre_ids)) if weights_zero else np.asarray(projection.weights, dtype=float)
        pairs = list(zip(pre_ids.tolist(), post_ids.tolist(), strict=True))
        snn_groups[pre].connect_neurons_sparse(snn_groups[post], {"w": weights.tolist()}, pairs)


def driven_sanafe(net: rv.Network, report: hw.Report, fired: dict[str, list[np.ndarray]], steps: int,
                  skip: tuple[str, ...] = ()) -> dict:
    """SANA-FE Loihi on ranvier's spikes and mapping (see the module docstring, "driven")."""
    import sanafe

    arch = sanafe.load_loihi()
    snn = sanafe.Network()
    placement = report.placement
    chosen, spare = sanafe_cores(arch, placement, int(report.target["cores_per_router"]))
    groups, inputs = {}, []
    for name, population in net.populations.items():
        if name in skip:
            continue
        if report.counts.populations[name].is_input:
            groups[name] = snn.create_neuron_group(name, population.n, soma_hw_name="loihi_inputs[0]",
                                                   default_synapse_hw_name="loihi_sparse_synapse")
            inputs.append(name)
        else:
            groups[name] = snn.create_neuron_group(
                name, population.n, soma_hw_name="loihi_lif", default_synapse_hw_name="loihi_sparse_synapse",
                model_attributes={"threshold": 0.5, "leak_decay": 0.0, "input_decay": 0.0, "force_update": True})
    _connect(groups, net, weights_zero=True)
    for core, sanafe_core in zip(placement.cores, chosen, strict=True):
        for i in range(core.start, core.stop):
            groups[core.population][i].map_to_core(sanafe_core)
    input_spikes = 0
    slot = 0
    for name in inputs:
        trains = np.zeros((net.populations[name].n, steps), dtype=bool)
        for step, ids in enumerate(fired[name]):
            trains[ids, step] = True
        input_spikes += int(trains.sum())
        for i in range(net.populations[name].n):
            core, unit = divmod(slot, 1024)
            groups[name][i].set_attributes(soma_hw_name=f"loihi_inputs[{unit}]",
                                           model_attributes={"spikes": trains[i].tolist()})
            groups[name][i].map_to_core(spare[core])
            slot += 1
    chip = sanafe.SpikingChip(arch)
    with quiet():
        chip.load(snn)
    driven = [name for name in groups if name not in inputs]
    mapped = {name: chip.mapped_neuron_groups[name] for name in driven}
    rows = []
    with quiet():
        on: dict[str, np.ndarray] = {name: np.zeros(0, dtype=np.int64) for name in driven}
        for step in range(steps):
            for name in driven:
                now = fired[name][step]
                for i in np.setdiff1d(on[name], now).tolist():
                    mapped[name][i].set_attributes(model_attributes={"bias": 0.0})
                for i in np.setdiff1d(now, on[name]).tolist():
                    mapped[name][i].set_attributes(model_attributes={"bias": 1.0})
                on[name] = now
            rows.append(chip.sim(1))
    used_cores = len(placement.cores) + -(-slot // 1024)
    return _sanafe_summary(rows, input_spikes, used_cores)


def _sanafe_summary(rows: list[dict], input_spikes: int, cores: int) -> dict:
    spike_out = loihi_spike_out_energy()
    energy = {key: np.array([r["energy"][key] for r in rows]) for key in ("synapse", "dendrite", "soma", "network",
                                                                           "total")}
    fired = np.array([r["neurons_fired"] for r in rows], dtype=float)
    computed_spikes = fired.sum() - input_spikes
    step_time = np.array([r["sim_time"] for r in rows])
    parts = {"synaptic": float(energy["synapse"].sum() + energy["dendrite"].sum()),
             "neuron": float(energy["soma"].sum() - spike_out * computed_spikes),
             "spike_out": float(spike_out * computed_spikes), "network": float(energy["network"].sum()),
             "static": 0.0}
    return {"energy": parts, "total": float(energy["total"].sum()), "steps": len(rows),
            "energy_per_step_range": [float(energy["total"].min()), float(energy["total"].max())],
            "step_time": float(step_time.mean()), "step_time_range": [float(step_time.min()), float(step_time.max())],
            "step_times": step_time,
            "spikes": float(computed_spikes), "input_spikes": input_spikes,
            "synaptic_events": float(sum(r["spikes"] for r in rows)),
            "packets": float(sum(r["packets_sent"] for r in rows)),
            "updated": float(sum(r["neurons_updated"] for r in rows)), "cores": cores}


def ranvier_summary(report: hw.Report) -> dict:
    totals = dict.fromkeys(hw.cost.CATEGORIES, 0.0)
    for parts in report.energy_by_population.values():
        for key, value in parts.items():
            totals[key] += value
    parts = {"synaptic": totals["synaptic"] + totals["dense"], "neuron": totals["neuron"],
             "spike_out": totals["spike_out"], "network": totals["routing"], "static": totals["static"]}
    return {"energy": parts, "total": report.energy, "dynamic": report.dynamic_energy, "steps": report.counts.steps,
            "step_time": report.step_time, "step_time_range": report.step_time_range,
            "step_times": report.step_times, "step_model": report.step_model, "spikes": report.counts.spikes,
            "synaptic_events": report.counts.synaptic_events, "packets": report.placement.packets,
            "cores": len(report.placement.cores), "strategy": report.placement.strategy,
            "violations": report.placement.violations}


def ratios(ours: dict, theirs: dict) -> dict:
    result = {key: (ours["energy"][key] / theirs["energy"][key] if theirs["energy"][key] else None)
              for key in COMPONENTS}
    result["dynamic"] = ours["dynamic"] / theirs["total"]
    result["total_with_static"] = ours["total"] / theirs["total"]
    result["step_time"] = ours["step_time"] / theirs["step_time"]
    if ours.get("step_times") is not None and theirs.get("step_times") is not None:
        per_step = ours["step_times"] / theirs["step_times"]
        result["step_time_per_step"] = [float(np.min(per_step)), float(np.median(per_step)), float(np.max(per_step))]
    return result


def without_arrays(value):
    """``value`` with the per-step arrays left out (the JSON keeps means and ranges)."""
    if isinstance(value, dict):
        return {key: without_arrays(item) for key, item in value.items() if not isinstance(item, np.ndarray)}
    return value


def record_spikes(net: rv.Network, names=None) -> dict:
    return {name: net.record(net[name], "spikes") for name in (names or net.populations)
            if getattr(net[name].model, "kind", "spiking") != "value"}


def compare_driven(net: rv.Network, monitors: dict, placement="fan_in_aware", skip=()) -> dict:
    report = hw.estimate(net, "loihi", placement=placement)
    steps = report.counts.steps
    fired = spike_steps(net, monitors, steps)
    start = time.perf_counter()
    theirs = driven_sanafe(net, report, fired, steps, skip)
    theirs["wall_s"] = time.perf_counter() - start
    ours = ranvier_summary(report)
    return {"ranvier": ours, "sanafe": theirs, "ratio": ratios(ours, theirs)}


def cuba(n: int, duration: float, placement="fan_in_aware") -> dict:
    net = rv.networks.cuba(n=n, seed=1)
    monitors = record_spikes(net)
    start = time.perf_counter()
    net.run(duration, backend="numba")
    result = compare_driven(net, monitors, placement)
    result["ranvier_run_s"] = time.perf_counter() - start
    return result


def digits_network(value_population: bool = False, seed: int = 3) -> rv.Network:
    """Digit 0 of scikit-learn's digits as saccade events (12 x 12 x 2) -> 128 LIF -> 10 LIF, random weights.

    ``value_population``: a Kuramoto population of 64 oscillators beside it (the mixed network).
    """
    events, _ = rv.datasets.digits_events(coding="saccade")[0]
    net = rv.Network(dt=1e-3, seed=seed)
    source = net.population(rv.datasets.from_tonic(events, (12, 12, 2)), name="input")
    with unchecked():
        lif = rv.neurons.LIF(tau_m=20e-3, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=0.0, tau_syn={"in": 0.0})
    hidden = net.population(lif, 128, name="hidden")
    out = net.population(lif, 10, name="out")
    net.connect(source, hidden, rv.connect.Bernoulli(p=0.3), weight=rv.init.Normal(0.35, 0.2), delay=1e-3)
    net.connect(hidden, out, rv.connect.AllToAll(), weight=rv.init.Normal(0.08, 0.1), delay=1e-3)
    if value_population:
        net.population(rv.neurons.Kuramoto(), 64, name="osc")
    return net


def digits(duration: float) -> dict:
    net = digits_network()
    monitors = record_spikes(net)
    net.run(duration, backend="numpy")
    return compare_driven(net, monitors)


def mixed(duration: float) -> dict:
    """The digits network with a Kuramoto (value) population beside it: what each side does with it."""
    net = digits_network(value_population=True)
    net.run(duration, backend="numpy")
    refused = {}
    for target in ("loihi", "truenorth"):
        try:
            hw.estimate(net, target)
        except hw.UnsupportedModelError as error:
            refused[target] = str(error)
    loihi2 = hw.estimate(net, "loihi2")
    spiking = digits_network()
    spiking_monitors = record_spikes(spiking)
    spiking.run(duration, backend="numpy")
    result = compare_driven(spiking, spiking_monitors)
    result["ranvier_refuses"] = refused
    result["ranvier_loihi2_J"] = loihi2.energy
    result["ranvier_loihi2_value_J"] = sum(loihi2.energy_by_population["osc"].values())
    return result


def dvs_layers(snn, data: dict, input_as_spikes: np.ndarray | None):
    """SANA-FE's DVS-gesture network (its tutorial 5); the input layer replays ``input_as_spikes`` if given."""
    import sanafe.layers

    thresholds = data["thresholds"]
    layer0 = sanafe.layers.Input2D(snn, 32, 32, threshold=thresholds[0])
    layer1 = sanafe.layers.Conv2D(snn, layer0, data["conv1"], stride_width=2, stride_height=2,
                                  threshold=thresholds[1])
    layer2 = sanafe.layers.Conv2D(snn, layer1, data["conv2"], threshold=thresholds[2])
    layer3 = sanafe.layers.Conv2D(snn, layer2, data["conv3"], threshold=thresholds[3])
    layer4 = sanafe.layers.Conv2D(snn, layer3, data["conv4"], threshold=thresholds[4])
    layer5 = sanafe.layers.Dense(snn, layer4, 11, data["dense1"], threshold=thresholds[5])
    if input_as_spikes is None:
        for neuron, bias in zip(layer0, data["inputs"], strict=True):
            neuron.set_attributes(model_attributes={"bias": bias})
    else:
        for i, neuron in enumerate(layer0):
            neuron.set_attributes(soma_hw_name=f"loihi_inputs[{i}]",
                                  model_attributes={"spikes": input_as_spikes[i].tolist()})
    return [layer0, layer1, layer2, layer3, layer4, layer5]


def dvs_input_spikes(data: dict, steps: int) -> np.ndarray:
    """Spikes of SANA-FE's bias-driven input layer: ``v += bias`` each step, a spike and ``v = 0`` above threshold."""
    bias, threshold = np.asarray(data["inputs"]), float(data["thresholds"][0])
    trains = np.zeros((len(bias), steps), dtype=bool)
    v = np.zeros(len(bias))
    for step in range(steps):
        v += bias
        fire = v > threshold
        trains[fire, step] = True
        v[fire] = 0.0
    return trains


DVS_NAMES = ("input", "conv1", "conv2", "conv3", "conv4", "dense")


def dvs_ranvier(layers, data: dict, trains: np.ndarray) -> rv.Network:
    """The same network in ranvier: synapses read back from SANA-FE's, non-leaky LIF, delta synapses."""
    index = {layer.group.get_name(): k for k, layer in enumerate(layers)}
    net = rv.Network(dt=1e-3, seed=0)
    neuron, step = np.nonzero(trains)
    populations = [net.population(rv.neurons.SpikeSource(times=(step + 1) * 1e-3, ids=neuron, n=trains.shape[0]),
                                  name="input")]
    for k, name in enumerate(DVS_NAMES[1:], start=1):
        with unchecked():  # SANA-FE's units: integer weights and thresholds
            lif = rv.neurons.LIF(tau_m=1e9, v_rest=0.0, v_th=float(data["thresholds"][k]) + 0.5, v_reset=0.0,
                                 t_ref=0.0, tau_syn={"in": 0.0})
        populations.append(net.population(lif, len(layers[k]), name=name))
    for k, layer in enumerate(layers[:-1]):
        pre, post, weight = [], [], []
        for neuron_ in layer:
            for edge in neuron_.edges_out:
                target = edge.post_neuron
                assert index[target.group_name] == k + 1
                pre.append(neuron_.get_id())
                post.append(target.neuron_offset)
                weight.append(edge.synapse_attributes["w"])
        net.connect(populations[k], populations[k + 1],
                    rv.connect.FromArrays(np.array(pre), np.array(post), weight=np.array(weight, dtype=np.float32)),
                    delay=1e-3)
    return net


def dvs(steps: int) -> dict:
    import sanafe
    import sanafe.tutorial

    with sanafe.tutorial.get_dvs_data() as handle:
        archive = np.load(handle)
        data = {key: archive[key] for key in archive.files}
    trains = dvs_input_spikes(data, steps)
    snn = sanafe.Network()
    layers = dvs_layers(snn, data, trains)
    net = dvs_ranvier(layers, data, trains)
    monitors = record_spikes(net)
    net.run(steps * 1e-3, backend="numba")
    # fan-in aware, the discrete-axon limits spread the convolutions over 351 cores on 3 chips
    # (docs/hardware.md, section 6); SANA-FE's Loihi file is one chip, and Loihi ran the network on one
    fan_in_aware_cores = len(hw.estimate(net, "loihi").placement.cores)
    report = hw.estimate(net, "loihi", placement="packed")
    # the same counts without their spike raster: what the average-step model would say
    average_step = hw.estimate(dataclasses.replace(report.counts, raster=None), "loihi", placement="packed").step_time
    arch = sanafe.load_loihi()
    chosen, spare = sanafe_cores(arch, report.placement, 4)
    for neuron in layers[0]:
        neuron.map_to_core(spare[0])
    for core, sanafe_core in zip(report.placement.cores, chosen, strict=True):
        layer = layers[DVS_NAMES.index(core.population)]
        for i in range(core.start, core.stop):
            layer[i].map_to_core(sanafe_core)
    for layer in layers:
        for neuron in layer:
            neuron.set_attributes(log_spikes=True)
    chip = sanafe.SpikingChip(arch)
    start = time.perf_counter()
    with quiet():
        chip.load(snn)
        run = chip.sim(steps, perf_trace=True, spike_trace=True)
    sanafe_s = time.perf_counter() - start
    theirs = _perf_summary(run, int(trains.sum()), len(report.placement.cores) + 1)
    fired_by_group: dict[str, int] = {}
    for step_spikes in run["spike_trace"]:
        for address in step_spikes:
            fired_by_group[address.group_name] = fired_by_group.get(address.group_name, 0) + 1
    sanafe_layer_spikes = [fired_by_group.get(layer.group.get_name(), 0) for layer in layers]
    ranvier_layer_spikes = [len(monitors[name].ids) for name in DVS_NAMES]
    ours = ranvier_summary(report)
    shipped = dvs_shipped(data, steps)
    return {"ranvier": ours, "sanafe": theirs, "ratio": ratios(ours, theirs), "sanafe_s": sanafe_s,
            "layer_spikes": {"ranvier": ranvier_layer_spikes, "sanafe": sanafe_layer_spikes},
            "fan_in_aware_cores": fan_in_aware_cores, "ranvier_average_step": average_step,
            "sanafe_shipped": shipped}


def _perf_summary(run: dict, input_spikes: int, cores: int) -> dict:
    perf = run["perf_trace"]
    rows = [{"energy": {"synapse": s, "dendrite": d, "soma": m, "network": n, "total": t}, "neurons_fired": f,
             "sim_time": time_, "spikes": sp, "packets_sent": 0, "neurons_updated": u}
            for s, d, m, n, t, f, time_, sp, u in zip(perf["synapse_energy"], perf["dendrite_energy"],
                                                       perf["soma_energy"], perf["network_energy"],
                                                       perf["total_energy"], perf["fired"], perf["sim_time"],
                                                       perf["spikes"], perf["updated"], strict=True)]
    summary = _sanafe_summary(rows, input_spikes, cores)
    summary["packets"] = float(run["packets_sent"])
    return summary


def dvs_shipped(data: dict, steps: int) -> dict:
    """SANA-FE's DVS network exactly as its tutorial 5 maps it ([1, 4, 16, 16, 4, 1] cores, biased input LIF)."""
    import sanafe

    arch = sanafe.load_loihi()
    snn = sanafe.Network()
    layers = dvs_layers(snn, data, None)
    cores = arch.cores()
    used = 0
    for layer, count in zip(layers, (1, 4, 16, 16, 4, 1), strict=True):
        per_core = len(layer) // count
        for k in range(count):
            stop = len(layer) if k == count - 1 else (k + 1) * per_core
            for i in range(k * per_core, stop):
                layer[i].map_to_core(cores[used])
            used += 1
    chip = sanafe.SpikingChip(arch)
    with quiet():
        chip.load(snn)
        run = chip.sim(steps, perf_trace=True)
    summary = _perf_summary(run, 0, used)
    return {"total": summary["total"], "energy": summary["energy"], "step_time": summary["step_time"],
            "energy_per_step_range": summary["energy_per_step_range"], "step_time_range": summary["step_time_range"],
            "cores": used}


def surprise(duration: float) -> dict:
    """CUBA at 4,000 and 5,000 neurons on loihi: fan-in aware against packed mapping, both sides."""
    rows = {}
    for n in (4000, 5000):
        for placement in ("fan_in_aware", "packed"):
            rows[f"{n} {placement}"] = cuba(n, duration, placement)
    return rows


def truenorth_rows(digits_net_duration: float) -> dict:
    """ranvier truenorth on the digits network and CUBA, against SANA-FE's truenorth.yaml constants (all 0)."""
    constants = arch_constants("truenorth")
    nonzero = {key: value for key, value in constants.items() if isinstance(value, float | int) and value}
    net = digits_network()
    net.run(digits_net_duration, backend="numpy")
    report = hw.estimate(net, "truenorth")
    try:
        hw.estimate(rv.networks.cuba(n=4000, seed=1), "truenorth", rates=5.0)
        cuba_refusal = None
    except hw.PlacementError as error:
        cuba_refusal = str(error)
    return {"sanafe_nonzero_constants": nonzero, "ranvier_digits": ranvier_summary(report),
            "ranvier_cuba": cuba_refusal}


def _fmt(value, digits=3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}"


def _step_cell(ours: dict) -> str:
    """ranvier's time per step (us): the mean over steps and their range when timed step by step."""
    if ours["step_time_range"] is None:
        return f"{ours['step_time'] * 1e6:.3g} (average step)"
    lo, hi = ours["step_time_range"]
    return f"{ours['step_time'] * 1e6:.3g} ({lo * 1e6:.3g}-{hi * 1e6:.3g})"


def markdown(result: dict) -> str:
    v = result["versions"]
    lines = [SECTION, "",
             f"Run {time.strftime('%Y-%m-%d')} on {result['machine']}; Python {v['python']}, ranvier {v['ranvier']}, "
             f"SANA-FE {v['sanafe']} (its `loihi.yaml`, \"detailed\" timing). Energies in uJ over the run, mean "
             "per step in brackets; ratio = ranvier / SANA-FE. Same spikes and same cores on both sides (see the "
             "script's docstring); SANA-FE models no static (leakage) energy, so the total compared is ranvier's "
             "dynamic energy, and ranvier's static is listed apart. Time per step: the mean over steps (range in "
             "brackets); ranvier times each step from the spikes its monitors recorded (each step's busiest core "
             "plus the barrier), as SANA-FE does. Why each ratio is what it is: "
             "`docs/hardware.md`, section 6.", "",
             "| network | side | synaptic | neuron update | spike out | network | static | total (dynamic) | "
             "time per step (us) | cores |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, row in result["networks"].items():
        ours, theirs, ratio = row["ranvier"], row["sanafe"], row["ratio"]
        steps = ours["steps"]
        lines.append(f"| {label} | ranvier loihi | " + " | ".join(_fmt(ours['energy'][k] * 1e6) for k in COMPONENTS)
                     + f" | {ours['dynamic'] * 1e6:.4g} ({ours['dynamic'] / steps * 1e6:.3g}/step) | "
                       f"{_step_cell(ours)} | {ours['cores']} |")
        lo, hi = theirs["step_time_range"]
        elo, ehi = theirs["energy_per_step_range"]
        lines.append("| | SANA-FE loihi | " + " | ".join(_fmt(theirs['energy'][k] * 1e6) for k in COMPONENTS)
                     + f" | {theirs['total'] * 1e6:.4g} ({elo * 1e6:.3g}-{ehi * 1e6:.3g}/step) | "
                       f"{theirs['step_time'] * 1e6:.3g} ({lo * 1e6:.3g}-{hi * 1e6:.3g}) | {theirs['cores']} |")
        per_step = ratio.get("step_time_per_step")
        spread = f" (per step {per_step[0]:.3g}-{per_step[2]:.3g}, median {per_step[1]:.3g})" if per_step else ""
        lines.append("| | ratio | " + " | ".join(_fmt(ratio[k], 3) for k in COMPONENTS)
                     + f" | **{ratio['dynamic']:.3g}** (with static {ratio['total_with_static']:.3g}) | "
                       f"**{ratio['step_time']:.3g}**{spread} | |")
    dvs_row = result["networks"].get("DVS gesture")
    if dvs_row:
        shipped = dvs_row["sanafe_shipped"]
        spikes = dvs_row["layer_spikes"]
        average = dvs_row["ranvier_average_step"]
        lines += ["", f"DVS gesture: ranvier's average-step model (the same counts without their spike raster) "
                  f"gives {average * 1e6:.3g} us per step, {average / dvs_row['sanafe']['step_time']:.3g}x SANA-FE's; "
                  f"the per-step model {dvs_row['ratio']['step_time']:.3g}x."]
        lines += ["", f"DVS gesture spikes per layer (input, conv1-4, dense): ranvier {spikes['ranvier']}, SANA-FE "
                  f"{spikes['sanafe']}. SANA-FE's shipped configuration (biased input LIF on a core, the tutorial's "
                  f"[1, 4, 16, 16, 4, 1] cores) gives {shipped['total'] * 1e6:.4g} uJ "
                  f"({shipped['energy_per_step_range'][0] * 1e6:.3g}-{shipped['energy_per_step_range'][1] * 1e6:.3g}"
                  f" uJ per step) and {shipped['step_time'] * 1e6:.3g} us per step "
                  f"({shipped['step_time_range'][0] * 1e6:.3g}-{shipped['step_time_range'][1] * 1e6:.3g}); the "
                  "measured Loihi figures SANA-FE's `dvs_gesture.py` plots lie between 1 and 4 uJ per step and 10 "
                  "and 30 us per step (mean per frame), which its paper's abstract says it matches within 12 % "
                  "(energy) and 25 % (latency)."]
    mixed_row = result.get("mixed")
    if mixed_row:
        lines += ["", "Mixed network (the digits network beside 64 Kuramoto oscillators): ranvier refuses it on "
                  + "; ".join(f"`{t}` (`UnsupportedModelError`: {m})" for t, m in mixed_row["ranvier_refuses"].items())
                  + f"; on `loihi2` it estimates {mixed_row['ranvier_loihi2_J'] * 1e6:.4g} uJ, "
                  f"{mixed_row['ranvier_loihi2_value_J'] * 1e6:.3g} of them for the oscillators. SANA-FE has no "
                  "value (dense-message) model, so only the spiking part can go to it: that part's row is above "
                  "(\"mixed, spiking part\")."]
    tn = result["truenorth"]
    lines += ["", "TrueNorth: SANA-FE's `truenorth.yaml` sets every energy and latency to 0 (nonzero constants: "
              f"{tn['sanafe_nonzero_constants'] or 'none'}), so its estimate is 0 J and 0 s for any network and no "
              f"ratio exists. ranvier's `truenorth` on the digits network: {tn['ranvier_digits']['total'] * 1e6:.4g} "
              f"uJ ({tn['ranvier_digits']['dynamic'] * 1e6:.3g} dynamic), {tn['ranvier_digits']['cores']} cores, "
              f"{tn['ranvier_digits']['step_time'] * 1e3:.3g} ms per step (the 1 kHz tick); CUBA 4000: "
              f"`PlacementError` ({tn['ranvier_cuba']})."]
    surprise_rows = result.get("surprise")
    if surprise_rows:
        lines += ["", "CUBA at 4,000 and 5,000 neurons, 0.5 s (the fan-in surprise), placement "
                  "`fan_in_aware` against `packed`:", "",
                  "| CUBA | cores ranvier / SANA-FE | ranvier total (static) uJ | ranvier dynamic uJ | SANA-FE uJ | "
                  "dynamic ratio | ranvier / SANA-FE us per step | limits broken |",
                  "|---|---|---|---|---|---|---|---|"]
        for label, row in surprise_rows.items():
            ours, theirs = row["ranvier"], row["sanafe"]
            lines.append(f"| {label} | {ours['cores']} / {theirs['cores']} | {ours['total'] * 1e6:.4g} "
                         f"({ours['energy']['static'] * 1e6:.4g}) | {ours['dynamic'] * 1e6:.4g} | "
                         f"{theirs['total'] * 1e6:.4g} | {row['ratio']['dynamic']:.3g} | "
                         f"{ours['step_time'] * 1e6:.3g} / {theirs['step_time'] * 1e6:.3g} | "
                         f"{'; '.join(ours['violations']) or 'none'} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuba-duration", type=float, default=0.5)
    parser.add_argument("--digits-duration", type=float, default=0.3)
    parser.add_argument("--dvs-steps", type=int, default=128)
    parser.add_argument("--no-surprise", action="store_true", help="skip the CUBA 4000/5000 mapping rows")
    args = parser.parse_args()
    import sanafe

    networks = {"CUBA 4000": cuba(4000, args.cuba_duration), "digits 288-128-10": digits(args.digits_duration)}
    mixed_row = mixed(args.digits_duration)
    networks["mixed, spiking part"] = mixed_row
    networks["DVS gesture"] = dvs(args.dvs_steps)
    result = {"machine": f"{cpu_name()}, {os.cpu_count()} cores, {platform.platform()}",
              "versions": {"python": platform.python_version(), "ranvier": rv.__version__,
                           "sanafe": getattr(sanafe, "__version__", "2.2.9")},
              "networks": networks, "mixed": mixed_row, "truenorth": truenorth_rows(args.digits_duration),
              "surprise": None if args.no_surprise else surprise(args.cuba_duration)}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(without_arrays(result), indent=2, default=float) + "\n")
    section = markdown(result)
    print(section)
    write_section(SECTION, section, BENCHMARKS)
    print(f"saved {RESULTS} and the SANA-FE section of {BENCHMARKS}")


if __name__ == "__main__":
    main()
