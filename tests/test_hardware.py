"""Hardware cost models: counts, targets as data, placement, cost and reports."""

import dataclasses
import json
import math

import numpy as np
import pytest

import ranvier as rv
import ranvier.hardware as hw
from ranvier.engine.model import Model
from ranvier.hardware.targets import REQUIRED, TARGET_DIR
from ranvier.units import ms, mV


class TinyValue(Model):
    """A value-emitting model (kind "value"), standing in for CfC/LTC."""

    kind = "value"

    @property
    def state_names(self):
        return ("h",)

    def constants(self, params, dt):
        return np.zeros((1, 1), dtype=np.float32)


def _chain(n=64, seed=3, dt=0.1 * ms):
    """Poisson input -> LIF layer -> LIF layer, small enough to run in a blink."""
    net = rv.Network(dt=dt, seed=seed)
    source = net.population(rv.neurons.PoissonSource(rate=200.0), n, name="input")
    lif = rv.neurons.LIF(tau_m=10 * ms, v_rest=0.0, v_th=10 * mV, v_reset=0.0, t_ref=1 * ms, tau_syn={"in": 5 * ms})
    hidden = net.population(lif, n, name="hidden")
    out = net.population(lif, n // 4, name="out")
    net.connect(source, hidden, rv.connect.Bernoulli(p=0.2), weight=4 * mV)
    net.connect(hidden, out, rv.connect.Bernoulli(p=0.3), weight=3 * mV)
    return net


@pytest.fixture(scope="module")
def ran():
    net = _chain()
    net.run(0.05, backend="numpy")
    return net


def test_every_shipped_target_loads_with_a_source_for_every_constant():
    names = hw.targets()
    assert {"loihi", "loihi2", "truenorth", "spinnaker2", "fpga_u55c", "cpu", "gpu"} <= set(names)
    for name in names:
        target = hw.load_target(name)
        assert set(REQUIRED[target.kind]) <= set(target.constants)
        for constant in target.constants.values():
            assert constant.source.strip() and constant.value >= 0


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(hw.UnknownTargetError, match="known targets: .*loihi2.*truenorth"):
        hw.load_target("loihi3")


def _target_file(tmp_path, drop=None, replace=None):
    text = (TARGET_DIR / "loihi.toml").read_text()
    if drop:
        text = text.replace(f"[constants.{drop}]", "[unused_table]")
    if replace:
        old, new = replace
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "custom.toml"
    path.write_text(text)
    return path


def test_target_file_with_a_missing_constant_names_it(tmp_path):
    with pytest.raises(hw.TargetFileError, match="custom.toml: missing constant.*energy_per_hop"):
        hw.load_target(_target_file(tmp_path, drop="energy_per_hop"))


def test_target_file_with_a_negative_constant_names_it_and_the_value(tmp_path):
    path = _target_file(tmp_path, replace=("value = 33.6e-12", "value = -33.6e-12"))
    with pytest.raises(hw.TargetFileError, match="custom.toml: constant 'energy_per_synaptic_event'.*-3.36e-11"):
        hw.load_target(path)


def test_target_file_without_a_source_is_refused(tmp_path):
    # the source line of energy_per_neuron_update: the first after its table's header
    text = (TARGET_DIR / "loihi.toml").read_text()
    table = text[text.index("[constants.energy_per_neuron_update]"):]
    line = next(line for line in table.splitlines() if line.startswith("source = "))
    path = _target_file(tmp_path, replace=(line, 'source = ""'))
    with pytest.raises(hw.TargetFileError, match="energy_per_neuron_update.*needs a source"):
        hw.load_target(path)


def test_a_user_target_file_is_used_by_path(tmp_path, ran):
    path = _target_file(tmp_path, replace=("value = 33.6e-12", "value = 67.2e-12"))
    doubled = hw.estimate(ran, path)
    reference = hw.estimate(ran, "loihi")
    synaptic = [sum(parts["synaptic"] for parts in r.energy_by_population.values()) for r in (doubled, reference)]
    assert synaptic[0] == pytest.approx(2 * synaptic[1])


def test_a_network_that_never_ran_has_no_measured_counts():
    with pytest.raises(hw.NotRunError, match="has not run"):
        hw.estimate(_chain(), "loihi2")


def test_measured_counts_are_the_runs_stats_and_structure(ran):
    counts = hw.count(ran)
    stats = ran.stats
    assert counts.measured and counts.steps == stats.steps
    assert counts.spikes == stats.spikes
    assert counts.synaptic_events == stats.synaptic_events > 0
    assert counts.neuron_updates == stats.neuron_updates
    assert counts.computed_updates == (64 + 16) * stats.steps  # the Poisson input arrives as data
    assert counts.synapses == sum(len(p) for p in ran.projections)
    hidden_out = counts.projections["hidden->out:in"]
    assert hidden_out.max_fan_out == int(ran.projections[1].out_degrees().max())
    assert hidden_out.max_fan_in == int(np.bincount(ran.projections[1].post_ids).max())
    assert hidden_out.weight_bits_needed == 1  # one shared weight
    assert counts.bits_moved == counts.spikes * math.ceil(math.log2(counts.neurons))


def test_estimate_from_stated_rates_is_marked_and_scales_with_them():
    net = _chain()
    low = hw.estimate(net, "loihi2", rates=5.0, duration=1.0)
    high = hw.estimate(net, "loihi2", rates=10.0, duration=1.0)
    assert not low.measured and "ESTIMATE" in low.table() and "ESTIMATE" in low.to_json()
    assert high.counts.synaptic_events == pytest.approx(2 * low.counts.synaptic_events)
    expected_events = 5.0 * 64 * 1.0 * len(net.projections[1]) / 64 + 5.0 * 64 * len(net.projections[0]) / 64
    assert low.counts.synaptic_events == pytest.approx(expected_events)


def test_bad_rates_name_the_population():
    with pytest.raises(rv.RanvierError, match="population 'hidden'.*-1"):
        hw.estimate(_chain(), "loihi2", rates={"hidden": -1.0})
    with pytest.raises(rv.RanvierError, match="unknown population 'nope'"):
        hw.estimate(_chain(), "loihi2", rates={"nope": 1.0})


def test_loihi_energy_is_the_sum_of_counted_operations_times_cited_energies(ran):
    report = hw.estimate(ran, "loihi")
    target, counts, placement = report.target, report.counts, report.placement
    dynamic = (target["energy_per_synaptic_event"] * counts.synaptic_events
               + target["energy_per_neuron_update"] * counts.computed_updates
               + target["energy_per_spike_out"] * sum(counts.populations[name].spikes for name in ("hidden", "out"))
               + target["energy_per_spike"] * placement.packets + target["energy_per_hop"] * placement.hops)
    assert report.dynamic_energy == pytest.approx(dynamic)
    assert report.static_energy == pytest.approx(target["static_power_per_chip"] * placement.chips * report.wall_time)
    assert report.wall_time == pytest.approx(counts.steps * report.step_time)
    assert report.edp == pytest.approx(report.energy * report.wall_time)
    assert placement.cores_by_population == {"hidden": 1, "out": 1}


def test_placement_splits_a_population_by_the_neurons_per_core_limit():
    net = rv.Network(dt=1e-3, seed=1)
    lif = rv.neurons.LIF(tau_syn={"in": 5 * ms})
    big = net.population(lif, 600, name="big")
    net.connect(big, big, rv.connect.OneToOne(), weight=0.0)
    report = hw.estimate(net, "truenorth", rates=1.0)
    assert report.placement.cores_by_population == {"big": 3}
    assert all(core.stop - core.start <= 256 for core in report.placement.cores)


def test_placement_shrinks_slices_to_fit_synaptic_memory():
    net = rv.Network(dt=1e-3, seed=1)
    lif = rv.neurons.LIF(tau_syn={"in": 5 * ms})
    source = net.population(rv.neurons.PoissonSource(rate=1.0), 4000, name="input")
    target = net.population(lif, 1000, name="dense")
    net.connect(source, target, rv.connect.FixedInDegree(400), weight=1e-3)
    report = hw.estimate(net, "loihi", rates=1.0)
    bits = 8 + 8
    per_core = max(core.stop - core.start for core in report.placement.cores)
    assert per_core * 400 * bits <= 1048576 < (per_core + 1) * 400 * bits * 1.05
    assert report.placement.cores_by_population["dense"] == math.ceil(1000 / per_core)


def test_a_neuron_whose_inputs_exceed_a_core_fails_by_name():
    net = rv.Network(dt=1e-3, seed=1)
    source = net.population(rv.neurons.PoissonSource(rate=1.0), 400, name="input")
    wide = net.population(rv.neurons.LIF(tau_syn={"in": 5 * ms}), 8, name="wide")
    net.connect(source, wide, rv.connect.AllToAll(), weight=1e-3)
    with pytest.raises(hw.PlacementError, match="population 'wide'.*cannot fit IBM TrueNorth"):
        hw.estimate(net, "truenorth", rates=1.0)


def test_truenorth_refuses_cuba_fan_out_by_name():
    net = rv.networks.cuba(n=1000, seed=1)
    with pytest.raises(hw.PlacementError, match="population '(exc|inh)': a neuron sends to .* 1 target core"):
        hw.estimate(net, "truenorth", rates=5.0)


def test_value_models_fail_on_truenorth_and_run_on_loihi2():
    net = rv.Network(dt=1e-3, seed=1)
    net.population(TinyValue(), 16, name="cfc")
    with pytest.raises(hw.UnsupportedModelError, match="population 'cfc'.*TinyValue is a value model"):
        hw.estimate(net, "truenorth", rates=0.0)
    with pytest.raises(hw.UnsupportedModelError, match="population 'cfc'"):
        hw.estimate(net, "loihi", rates=0.0)
    report = hw.estimate(net, "loihi2", rates=0.0, duration=0.1)
    assert report.counts.neuron_updates == 16 * 100


def test_locality_ordering_never_travels_further_than_declaration_order():
    net = rv.Network(dt=1e-3, seed=2)
    lif = rv.neurons.LIF(tau_syn={"in": 5 * ms})
    # a chain a -> b -> c declared as a, c, b with large populations, so order matters on the mesh
    a = net.population(lif, 4000, name="a")
    c = net.population(lif, 4000, name="c")
    b = net.population(lif, 4000, name="b")
    net.connect(a, b, rv.connect.FixedInDegree(4), weight=1e-3)
    net.connect(b, c, rv.connect.FixedInDegree(4), weight=1e-3)
    report = hw.estimate(net, "loihi", rates=10.0)
    placement = report.placement
    assert placement.order.index("b") == 1
    assert placement.hops < placement.hops_declaration_order
    assert placement.packets > 0 and placement.chips == 1


def test_loihi_hops_are_counted_between_tile_routers_not_cores():
    # a -> b one to one, 4096 neurons each: a fills the four cores of tile 0, b those of tile 1
    net = rv.Network(dt=1e-3, seed=1)
    lif = rv.neurons.LIF(tau_syn={"in": 5 * ms})
    a = net.population(lif, 4096, name="a")
    b = net.population(lif, 4096, name="b")
    net.connect(a, b, rv.connect.OneToOne(), weight=1e-3)
    report = hw.estimate(net, "loihi", rates=10.0)
    placement, target = report.placement, report.target
    assert target["cores_per_router"] == 4
    assert placement.cores_by_population == {"a": 4, "b": 4}
    routers = {name: {(c.x, c.y) for c in placement.cores if c.population == name} for name in ("a", "b")}
    assert len(routers["a"]) == len(routers["b"]) == 1 and routers["a"] != routers["b"]
    # every packet crosses one router hop; counted between cores it would have crossed four
    assert placement.packets == pytest.approx(4096 * 10.0 * report.counts.steps * 1e-3)
    assert placement.hops == pytest.approx(placement.packets)
    assert report.energy_by_population["a"]["routing"] == pytest.approx(
        placement.packets * (target["energy_per_spike"] + target["energy_per_hop"]))


def test_fpga_reports_resources_and_a_design_too_large_fails(tmp_path, ran):
    report = hw.estimate(ran, "fpga_u55c")
    resources = report.fpga["resources"]
    assert resources["dsp"] == 64 and resources["bram"] >= 1
    assert report.fpga["clock_hz"] == pytest.approx(200e6)
    text = (TARGET_DIR / "fpga_u55c.toml").read_text()
    small = tmp_path / "tiny_fpga.toml"
    small.write_text(text.replace("value = 9024", "value = 10"))
    with pytest.raises(hw.PlacementError, match="does not fit .*needs 64 DSP, the device has 10"):
        hw.estimate(ran, small)


def test_fpga_weights_overflowing_block_ram_stream_from_hbm(tmp_path, ran):
    on_chip = hw.estimate(ran, "fpga_u55c")
    text = (TARGET_DIR / "fpga_u55c.toml").read_text()
    small = tmp_path / "small_bram.toml"
    # four blocks of 1 kbit: room for the neuron state, not for the weights
    small.write_text(text.replace("value = 2016", "value = 4").replace("value = 36864", "value = 1024"))
    streamed = hw.estimate(ran, small)
    assert on_chip.fpga["weights_in"] == "BRAM" and streamed.fpga["weights_in"] == "HBM"
    assert streamed.fpga["hbm_bytes"] == (ran.stats.synaptic_events) * 16 / 8
    assert streamed.fpga["cycles_per_step"] > on_chip.fpga["cycles_per_step"]
    assert streamed.dynamic_energy == pytest.approx(
        on_chip.dynamic_energy + streamed.fpga["hbm_bytes"] * streamed.target["energy_per_hbm_byte"])


def test_von_neumann_baseline_counts_operations_and_bytes(ran):
    report = hw.estimate(ran, "cpu")
    t, c = report.target, report.counts
    moved = c.synaptic_events * 8 + c.computed_updates * 16
    assert report.extra["bytes_moved"] == moved
    expected = (c.synaptic_events * (t["energy_per_accumulate"] + 8 * t["energy_per_byte"])
                + c.computed_updates * (4 * t["energy_per_mac"] + 16 * t["energy_per_byte"]))
    assert report.energy == pytest.approx(expected)


def test_report_table_json_and_plots(in_tmp, ran):
    report = hw.estimate(ran, "loihi2")
    table = report.table()
    for label in ("Loihi 2", "placement:", "energy:", "latency:", "EDP", "hidden", "out"):
        assert label in table
    data = json.loads(report.to_json(in_tmp / "report.json"))
    assert data["target"] == "loihi2" and data["counts"]["synaptic_events"] == ran.stats.synaptic_events
    assert json.loads((in_tmp / "report.json").read_text())["energy_J"] == pytest.approx(report.energy)
    report.plot(in_tmp / "one.png")
    reports = hw.compare(ran, ["loihi", "loihi2", "cpu"], in_tmp / "many.png")
    assert [r.target.name for r in reports] == ["loihi", "loihi2", "cpu"]
    assert (in_tmp / "one.png").stat().st_size > 5000 and (in_tmp / "many.png").stat().st_size > 5000


def test_compare_leaves_out_targets_that_cannot_run_the_network():
    net = rv.networks.cuba(n=1000, seed=1)
    names = [r.target.name for r in hw.compare(net, rates=5.0)]
    assert "truenorth" not in names and "loihi2" in names


def test_per_inference_figures_divide_by_the_inferences(ran):
    one = hw.estimate(ran, "loihi2")
    ten = hw.estimate(ran, "loihi2", rates=None, inferences=10)
    assert ten.energy_per_inference == pytest.approx(one.energy / 10)
    assert ten.latency_per_inference == pytest.approx(one.wall_time / 10)
    assert ten.throughput == pytest.approx(10 / one.wall_time)


def _recurrent_value_counts(units=64, inputs=50, bins=50):
    """Counts built by hand (no CSR arrays): a GRU-like value layer of `units`, fed by `inputs` values per bin."""
    macs = 3 * units * (inputs + units)
    populations = {
        "x": hw.PopulationCounts("x", "Linear", "value", inputs, 0.0, float(inputs * bins), 1),
        "gru": hw.PopulationCounts("gru", "GRU", "value", units, 0.0, float(units * bins), 1),
    }
    projections = {"x->gru": hw.ProjectionCounts("x->gru", "x", "gru", macs, 0.0, float(macs * bins), True, 16, 0, 0)}
    return hw.Counts(populations, projections, duration=bins * 0.01, steps=bins, dt=0.01, measured=False)


def test_fpga_dense_layers_get_the_smallest_reuse_factor_that_fits():
    counts = _recurrent_value_counts()
    report = hw.estimate(counts, "fpga_u55c")
    fpga, macs = report.fpga, 3 * 64 * (50 + 64)
    reuse = fpga["reuse_factor"]
    assert math.ceil(macs / reuse) <= 9024 < math.ceil(macs / (reuse - 1))
    assert fpga["resources"]["dsp"] == math.ceil(macs / reuse) and fpga["lanes"] == 0
    assert fpga["cycles_per_step"] == reuse + 12
    assert report.latency_per_inference == pytest.approx(50 * (reuse + 12) / fpga["clock_hz"])
    assert report.energy_by_population["gru"]["dense"] == pytest.approx(macs * 50 * report.target["energy_per_mac"])


def test_hand_built_counts_place_without_structure_on_loihi2():
    report = hw.estimate(_recurrent_value_counts(units=2000), "loihi2")
    placement = report.placement
    gru_cores = placement.cores_by_population["gru"]
    assert gru_cores > 1
    # each input neuron reaches every core of the layer: the inputs split only to keep their output axons
    assert placement.cores_by_population["x"] == math.ceil(50 * gru_cores / report.target["fan_out_axons_per_core"])
    # dense all-to-all: each of the 50 inputs sends one value per bin to every core of the layer
    assert placement.packets == pytest.approx(50 * 50 * gru_cores)
    assert report.energy_by_population["gru"]["dense"] == pytest.approx(
        report.counts.dense_macs * report.target["energy_per_mac"])


def test_value_network_dense_macs_come_from_the_run():
    if not hasattr(rv.networks, "kuramoto"):
        pytest.skip("value populations (Kuramoto) are not in this checkout")
    net = rv.networks.kuramoto(n=50, coupling=2.0, spread=1.0, seed=1)
    net.run(0.01)
    report = hw.estimate(net, "loihi2")
    assert report.counts.dense_macs == net.stats.dense_macs > 0
    assert sum(parts["dense"] for parts in report.energy_by_population.values()) == pytest.approx(
        net.stats.dense_macs * report.target["energy_per_mac"])
    with pytest.raises(hw.UnsupportedModelError, match="population 'osc'.*Kuramoto is a value model"):
        hw.estimate(net, "truenorth")


def test_packed_placement_ignores_the_input_axon_limit_and_says_so():
    net = rv.networks.cuba(n=5000, seed=1)
    aware = hw.estimate(net, "loihi", rates=5.0, duration=0.1)
    packed = hw.estimate(net, "loihi", rates=5.0, duration=0.1, placement="packed")
    assert aware.placement.strategy == "fan_in_aware" and aware.placement.violations == []
    assert packed.placement.cores_by_population == {"exc": 5, "inh": 2}  # synaptic memory: 100 x 16 bits each
    assert len(aware.placement.cores) > 40
    assert any("input axons > 4096 (fan_in_axons_per_core)" in v for v in packed.placement.violations)
    assert "LIMIT BROKEN" in packed.table() and "LIMIT BROKEN" not in aware.table()


def test_a_hand_given_table_maps_populations_onto_the_cores_it_names(ran):
    by_count = hw.estimate(ran, "loihi", placement={"out": 1, "hidden": 2})
    assert by_count.placement.strategy == "table" and by_count.placement.order == ["out", "hidden"]
    assert [(c.population, c.start, c.stop) for c in by_count.placement.cores] == [
        ("out", 0, 16), ("hidden", 0, 32), ("hidden", 32, 64)]
    by_sizes = hw.estimate(ran, "loihi", placement={"hidden": [10, 54], "out": [16]})
    assert [c.stop - c.start for c in by_sizes.placement.cores] == [10, 54, 16]
    assert by_sizes.counts.synaptic_events == by_count.counts.synaptic_events


@pytest.mark.parametrize(("table", "message"), [
    ({"hidden": 1, "out": 1, "nope": 1}, "unknown population 'nope'"),
    ({"hidden": 1}, "misses population.*'out'"),
    ({"hidden": 1, "out": 1, "input": 1}, "population 'input' is an input"),
    ({"hidden": 0, "out": 1}, "population 'hidden' of 64 neurons cannot take 0 cores"),
    ({"hidden": [30, 30], "out": 1}, "population 'hidden' needs .* summing to its 64 neurons"),
    ({"hidden": 1, "out": "two"}, "population 'out' needs a number of cores"),
    ([("hidden", 1)], "or a population -> cores table"),
])
def test_bad_placement_tables_fail_by_name(ran, table, message):
    with pytest.raises(hw.PlacementTableError, match=message):
        hw.estimate(ran, "loihi", placement=table)


def test_a_table_cannot_put_more_neurons_on_a_core_than_it_holds():
    net = rv.networks.cuba(n=1000, seed=1)
    with pytest.raises(hw.PlacementTableError, match="'exc' puts 800 neurons on one core; IBM TrueNorth .* holds 256"):
        hw.estimate(net, "truenorth", rates=5.0, placement={"exc": 1, "inh": 1})
    with pytest.raises(hw.PlacementError, match="unknown placement 'tight'"):
        hw.estimate(net, "loihi", rates=5.0, placement="tight")


def _two_population_counts(raster: bool = True):
    """a (4 neurons) -> b (3 neurons) over 3 steps, with the spike raster below or without one.

    Synapses a0 -> b0, b1; a1 -> b1; a2 -> b2 (a3 has none). Spikes: step 0 a0 and a2, step 1 a0
    and a1, step 2 b1 (b has no outgoing synapses).
    """
    populations = {"a": hw.PopulationCounts("a", "LIF", "spiking", 4, 4.0, 12.0),
                   "b": hw.PopulationCounts("b", "LIF", "spiking", 3, 1.0, 9.0)}
    row_ptr, post_ids = np.array([0, 2, 3, 4, 4]), np.array([0, 1, 1, 2], dtype=np.int32)
    projections = {"a->b": hw.ProjectionCounts("a->b", "a", "b", 4, 6.0, 0.0, False, 1, 2, 2, row_ptr, post_ids)}
    spikes = hw.SpikeRaster(3, {"a": (np.array([0, 0, 1, 1]), np.array([0, 2, 0, 1])),
                                "b": (np.array([2]), np.array([1]))})
    return hw.Counts(populations, projections, duration=3e-3, steps=3, dt=1e-3, measured=True,
                     raster=spikes if raster else None)


def test_each_step_takes_its_busiest_core_from_the_spike_raster():
    # cores: a[0:2], a[2:4], b, all on one tile's router (one router in use: 0.6 us sync, no hops)
    table = {"a": [2, 2], "b": [3]}
    report = hw.estimate(_two_population_counts(), "loihi", placement=table)
    t = report.target
    neuron, synapse = t["time_per_neuron_update"], t["time_per_synaptic_event"]
    spike, sent, received = t["time_per_spike_out"], t["time_per_packet_out"], t["time_per_packet_in"]
    sync = t.for_routers("time_per_step_overhead", 1)
    assert sync == 0.6e-6
    expected = [
        # step 0: core b takes 2 packets (a0, a2) and their 3 synaptic events
        sync + 3 * neuron + 2 * received + 3 * synapse,
        # step 1: core a[0:2] fires a0 and a1, each one packet to core b (which takes 2 packets, 3 events)
        sync + 2 * neuron + 2 * spike + 2 * sent,
        # step 2: b1 fires, with no synapses out
        sync + 3 * neuron + spike,
    ]
    assert report.step_times == pytest.approx(expected, rel=1e-12)
    assert 3 * neuron + 2 * received + 3 * synapse > 2 * neuron + spike + sent  # core b is busiest at step 0
    assert 2 * neuron + 2 * spike + 2 * sent > 3 * neuron + 2 * received + 3 * synapse  # core a[0:2] at step 1
    assert report.step_time == pytest.approx(sum(expected) / 3, rel=1e-12)
    assert report.wall_time == pytest.approx(sum(expected), rel=1e-12)
    assert report.step_time_range == pytest.approx((min(expected), max(expected)), rel=1e-12)
    assert "each step's busiest core, over the 3 steps" in report.step_model
    assert "step time (mean;" in report.table() and report.to_dict()["latency_per_step_range_s"] is not None
    # the average step spreads each core's run over the steps, and a population's spikes over its
    # neurons (one each for a, so 3 packets reach b: a3 has no synapses): core b's 9 updates,
    # 3 packets in, 6 events and 1 spike over 3 steps are the busiest, missing step 1's burst on a[0:2]
    average = hw.estimate(_two_population_counts(raster=False), "loihi", placement=table)
    assert average.step_times is None and average.step_time_range is None
    assert average.step_time == pytest.approx(sync + (9 * neuron + 3 * received + 6 * synapse + spike) / 3, rel=1e-12)
    assert average.step_time < report.step_time
    assert "the average step" in average.step_model and "without a spike raster" in average.step_model


@pytest.fixture(scope="module")
def recorded():
    net = _chain()
    monitors = {name: net.record(name, "spikes") for name in net.populations}
    net.run(0.02, backend="numpy")
    return net, monitors


def test_the_spike_raster_is_read_from_monitors_holding_every_spike(recorded):
    net, monitors = recorded
    counts = hw.count(net)
    assert counts.raster is not None and counts.raster.steps == net.stats.steps == 200
    for name, monitor in monitors.items():
        steps, ids = counts.raster.spikes[name]
        assert len(ids) == net.stats.spikes_by_population[name] > 0
        order = np.lexsort((monitor.ids, monitor.steps))
        assert np.array_equal(np.lexsort((ids, steps)), np.arange(len(ids)))
        assert np.array_equal(steps, monitor.steps[order]) and np.array_equal(ids, monitor.ids[order])
    report = hw.estimate(net, "loihi")
    assert len(report.step_times) == 200 and report.step_time == pytest.approx(report.step_times.mean())
    # each step's busiest core is at least as busy as the average step's
    average = hw.estimate(dataclasses.replace(counts, raster=None), "loihi")
    assert report.step_time >= average.step_time


def test_a_sender_without_a_complete_record_falls_back_to_the_average_step():
    net = _chain()
    net.record("input", "spikes")
    net.record("hidden", "spikes", ids=range(10))  # some neurons only
    net.run(0.005, backend="numpy")
    report = hw.estimate(net, "loihi")
    assert report.step_times is None
    assert "the average step" in report.step_model and "population 'hidden' has outgoing synapses" in report.step_model
    net = _chain()
    net.run(0.002, backend="numpy")
    for name in net.populations:
        net.record(name, "spikes")  # after a first run: the monitors miss its spikes
    net.run(0.003, backend="numpy")
    assert hw.count(net).raster is None


def test_an_output_population_needs_no_record_and_a_poisson_drive_stops_the_raster():
    net = _chain()
    net.record("input", "spikes")
    net.record("hidden", "spikes")
    net.run(0.005, backend="numpy")
    counts = hw.count(net)
    assert counts.raster is not None and set(counts.raster.spikes) - {"out"} == {"input", "hidden"}
    # an unrecorded population is in the raster only when it never fired (then its record is known: empty)
    silent = net.stats.spikes_by_population.get("out", 0) == 0
    assert ("out" in counts.raster.spikes) == silent
    driven = rv.Network(dt=1e-3, seed=1)
    target = driven.population(rv.neurons.LIF(tau_syn={"in": 5 * ms}), 20, name="target")
    driven.connect(rv.connect.PoissonInput(10.0, 5), target, weight=1 * mV)
    driven.record("target", "spikes")
    driven.run(0.01, backend="numpy")
    no_raster = hw.count(driven).no_raster
    assert hw.count(driven).raster is None and "Poisson drive" in no_raster


def test_a_constant_may_depend_on_the_routers_in_use(tmp_path):
    loihi = hw.load_target("loihi")
    assert [loihi.for_routers("time_per_step_overhead", r) for r in (1, 2, 3, 4, 28, 29, 64)] == [
        0.6e-6, 1.0e-6, 1.0e-6, 1.4e-6, 1.4e-6, 1.8e-6, 1.8e-6]
    assert loihi.for_routers("time_per_hop", 5) == loihi["time_per_hop"]  # no table: the value
    old = 'by_routers = { "1" = 0.6e-6'
    with pytest.raises(hw.TargetFileError, match="time_per_step_overhead.*by_routers keys must be positive"):
        hw.load_target(_target_file(tmp_path, replace=(old, 'by_routers = { "none" = 0.6e-6')))
    with pytest.raises(hw.TargetFileError, match="by_routers value for 1 routers must be a finite number"):
        hw.load_target(_target_file(tmp_path, replace=(old, 'by_routers = { "1" = -0.6e-6')))


def test_delays_longer_than_loihi2_holds_are_a_named_error():
    net = rv.Network(dt=1e-3, seed=1)
    source = net.population(rv.neurons.SpikeSource([0.001, 0.002], [0, 1], n=2), name="input")
    lif = net.population(rv.neurons.LIF(), n=2, name="lif")
    delays = np.array([0.002, 0.063])  # 2 and 63 steps
    net.connect(source, lif, rv.connect.FromArrays([0, 1], [0, 1], weight=5e-3, delay=delays), receptor="exc")
    net.run(0.1)
    limit = r"'input->lif.*': delays up to 63 steps \(0.063 s\), but Intel Loihi 2 .* at most 62 steps late"
    with pytest.raises(hw.DelayLimitError, match=limit):
        hw.estimate(net, "loihi2")
    assert hw.estimate(net, "loihi").energy > 0  # no published limit for Loihi: not checked
    net.projections[0].set_delays(np.array([0.002, 0.062]))
    assert hw.estimate(net, "loihi2").energy > 0


@pytest.mark.parametrize("target", ["loihi2", "spinnaker2"])
def test_projections_into_a_value_port_wider_or_narrower_than_its_units_are_placed(target):
    # an ELM of 4 units reads 3 channels each (a port of 12); its channels lie on their units' cores
    from ranvier.hardware.placement import _compute_pairs

    net = rv.Network(dt=1e-3, seed=1)
    source = net.population(rv.neurons.PoissonSource(rate=50.0), n=3, name="src")
    elm = net.population(rv.neurons.ELM(n_in=3, n_out=2, n_memory=4), n=4, name="elm")
    explicit = net.connect(source, elm, rv.connect.FromArrays(np.array([0, 1, 2, 2]), np.array([0, 5, 9, 11])),
                           weight=1.0, receptor="input")
    dense = net.connect(source, elm, rv.connect.AllToAll(), weight=0.5, receptor="input")
    net.record(source, "spikes")
    net.run(0.05)
    report = hw.estimate(net, target)
    assert report.placement.cores_by_population["elm"] >= 1 and report.energy > 0
    counts = hw.counts.count(net)
    assert np.array_equal(counts.projections[explicit.name].post_ids, [0, 1, 3, 3])  # channel // 3
    for projection, synapses in ((explicit, 4), (dense, 36)):
        sources, cores, per_core = _compute_pairs(counts.projections[projection.name], 3, np.array([0, 2, 4]))
        assert per_core.sum() == synapses == len(projection)


@pytest.mark.parametrize("target", ["loihi2", "fpga_u55c", "cpu"])
def test_a_misspelt_placement_is_refused_on_every_target(target):
    net = rv.Network(dt=1e-3, seed=1)
    net.population(rv.neurons.LIF(), 4, name="cells")
    with pytest.raises(hw.PlacementError, match="unknown placement 'pakced'"):
        hw.estimate(net, target, rates=1.0, duration=0.1, placement="pakced")


def test_plotting_no_reports_is_a_named_error():
    with pytest.raises(rv.errors.HardwareError, match="no reports to plot"):
        hw.plot([])
