"""Potjans & Diesmann (2014) microcircuit: structure of the builder."""

import numpy as np
import pytest

import ranvier as rv
from ranvier.networks.microcircuit import FULL_SIZES, POPULATIONS, in_degrees


def test_full_scale_totals_match_the_paper():
    assert sum(FULL_SIZES) == 77169
    total_synapses = (in_degrees() * np.asarray(FULL_SIZES)[:, None]).sum()
    assert 0.29e9 < total_synapses < 0.31e9  # "~0.3 billion synapses"


def test_downscaled_network_keeps_in_degrees_and_weights():
    net = rv.networks.microcircuit(scale=0.02, seed=3)
    for name, size in zip(POPULATIONS, FULL_SIZES, strict=True):
        assert net[name].n == round(size * 0.02)
    assert list(net.populations) == list(POPULATIONS)  # the background is drawn inside the targets
    degrees = in_degrees()
    by_name = {p.name: p for p in net.projections}
    l4e_to_l23e = by_name["L4e->L23e:syn"]
    np.testing.assert_array_equal(np.bincount(l4e_to_l23e.post_ids, minlength=net["L23e"].n),
                                  round(degrees[0, 2]))
    l23e_to_l23e = by_name["L23e->L23e:syn"]
    assert l4e_to_l23e.weights.mean() == pytest.approx(2 * l23e_to_l23e.weights.mean(), rel=0.02)
    assert l23e_to_l23e.weights.mean() == pytest.approx(3.512e-3, rel=0.02)  # 87.8 pA into 250 pF / 10 ms
    inhibitory = by_name["L23i->L23e:syn"]
    assert np.all(inhibitory.weights < 0) and np.all(l23e_to_l23e.weights > 0)
    assert inhibitory.weights.mean() == pytest.approx(-4 * l23e_to_l23e.weights.mean(), rel=0.02)
    assert l23e_to_l23e.delays.min() >= 1e-4 and l23e_to_l23e.delays.mean() == pytest.approx(1.5e-3, rel=0.1)
    assert inhibitory.delays.mean() == pytest.approx(0.75e-3, rel=0.15)
    drives = {d.post.name: d for d in net.poisson_inputs}
    assert drives["L4e"].n_inputs == 2100 and drives["L4e"].rate == 8.0
    assert float(drives["L4e"].weight) == pytest.approx(l23e_to_l23e.weights.mean(), rel=0.02)
    sources = rv.networks.microcircuit(scale=0.02, seed=3, background="sources")
    assert sources[f"{name}_bg"].n == sources[name].n and not sources.poisson_inputs
    np.testing.assert_allclose(sources["L4e_bg"].params["rate"], 2100 * 8.0)


def test_scale_outside_unit_interval_is_refused():
    with pytest.raises(ValueError, match="scale"):
        rv.networks.microcircuit(scale=1.5)


#: Full-scale population rates (Hz) of the model as published: Potjans & Diesmann (2014) as
#: re-simulated at full scale in Romaro et al. (2021), Neural Computation 33:1993, Table A.1
#: (NEST's own run there gave 0.86, 4.45, 7.59 and 1.09 Hz for L2/3e, L4e, L5e and L6e).
PUBLISHED_RATES = {"L23e": 0.90, "L23i": 2.80, "L4e": 4.39, "L4i": 5.70,
                   "L5e": 6.80, "L5i": 8.22, "L6e": 1.14, "L6i": 7.60}


@pytest.mark.slow
def test_full_scale_layer_rates_match_the_published_ones():
    """At full scale (77 169 neurons, 0.3 G synapses, ~3.3 GB) the CPU runs it in a few minutes.

    Downscaled versions with preserved in-degrees drift (at scale 0.1, L2/3e fires at ~2.3 Hz
    and L5e at ~12 Hz), so the published rates are checked at full scale.
    """
    net = rv.networks.microcircuit(scale=1.0, seed=1)
    monitors = {name: net.record(net[name], "spikes") for name in POPULATIONS}
    net.run(0.6, backend="numba")
    for name, monitor in monitors.items():
        rate = np.sum(monitor.times > 0.2) / net[name].n / 0.4  # after the start-up transient
        assert rate == pytest.approx(PUBLISHED_RATES[name], rel=0.25), (name, rate)
