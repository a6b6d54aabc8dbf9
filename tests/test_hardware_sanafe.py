"""ranvier's Loihi estimate beside SANA-FE's (benchmarks/hardware_vs_sanafe.py) at small size.

A 600-neuron CUBA network runs 10 ms in ranvier; SANA-FE's Loihi model replays the same spikes on
the same cores (neurons driven to fire when ranvier's did). Both must count the same work, and
each energy component must stand in the ratio its constants explain (docs/hardware.md, section 6).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sanafe")

import ranvier as rv  # noqa: E402
import ranvier.hardware as hw  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import hardware_vs_sanafe as peer  # noqa: E402


@pytest.fixture(scope="module")
def side_by_side():
    net = rv.networks.cuba(n=600, seed=2)
    monitors = peer.record_spikes(net)
    net.run(0.01, backend="numpy")
    return net, peer.compare_driven(net, monitors)


def test_both_sides_count_the_same_spikes_synaptic_events_and_packets(side_by_side):
    net, result = side_by_side
    ours, theirs = result["ranvier"], result["sanafe"]
    assert theirs["steps"] == ours["steps"] == 100
    assert theirs["spikes"] == net.stats.spikes > 0
    assert theirs["synaptic_events"] == ours["synaptic_events"] == net.stats.synaptic_events
    assert theirs["packets"] == pytest.approx(ours["packets"], rel=1e-12)
    assert theirs["cores"] == ours["cores"]
    # every neuron is active (its potential is never zero), so SANA-FE updates each at every step
    assert theirs["updated"] == 600 * 100


def test_each_energy_component_is_in_the_ratio_of_its_constants(side_by_side):
    _, result = side_by_side
    ratio = result["ratio"]
    loihi = hw.load_target("loihi")
    assert ratio["synaptic"] == pytest.approx(loihi["energy_per_synaptic_event"] / 33.6e-12)
    assert ratio["spike_out"] == pytest.approx(1.0)
    # every neuron is active: SANA-FE's access + update (51.2 + 21.6 pJ) on both sides
    assert ratio["neuron"] == pytest.approx(1.0)
    # 112.7 pJ per packet against SANA-FE's 111 pJ, and hop energies 3.5 against 3.0 / 4.2 pJ
    assert 1.0 < ratio["network"] < 1.05
    assert result["sanafe"]["energy"]["static"] == 0 < result["ranvier"]["energy"]["static"]
    assert ratio["dynamic"] == pytest.approx(1.0, abs=0.01)


def test_the_time_of_each_step_is_set_by_its_busiest_core_on_both_sides(side_by_side):
    _, result = side_by_side
    ours, theirs = result["ranvier"], result["sanafe"]
    assert ours["step_times"] is not None and "each step's busiest core" in ours["step_model"]
    # a step without spikes: 480 excitatory neurons on one core at 6.0 + 3.7 ns (active), one tile's 0.6 us sync
    quiet = 480 * 9.7e-9 + 0.6e-6
    assert ours["step_time_range"][0] == pytest.approx(quiet) == theirs["step_time_range"][0]
    per_step = ours["step_times"] / theirs["step_times"]
    assert np.median(per_step) == pytest.approx(1.0)
    # with spikes, ranvier adds a core's sending and receiving work, SANA-FE overlaps part of them
    assert per_step.min() == pytest.approx(1.0) and per_step.max() < 1.3
    assert 1.0 < result["ratio"]["step_time"] < 1.1
