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
        assert net[f"{name}_bg"].n == net[name].n
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
    np.testing.assert_allclose(net["L4e_bg"].params["rate"], 2100 * 8.0)


def test_scale_outside_unit_interval_is_refused():
    with pytest.raises(ValueError, match="scale"):
        rv.networks.microcircuit(scale=1.5)
