"""NALSM: the branching-factor measure, and self-organisation toward criticality with the astrocyte."""

import numpy as np
import pytest

import ranvier as rv
from ranvier import datasets
from ranvier.errors import ProjectionError
from ranvier.networks.nalsm import branching_factor, plastic_projections, stream
from ranvier.units import ms


def _tree():
    """Neuron 0 -> 1, 2; 1 -> 3, 4; 2 -> 5, 6: a spike at the root branches twice."""
    net = rv.Network(dt=1 * ms, seed=1)
    cells = net.population(rv.neurons.LIF(tau_syn={"exc": 5 * ms}), n=7, name="cells")
    projection = net.connect(cells, cells, rv.connect.FromArrays([0, 0, 1, 1, 2, 2], [1, 2, 3, 4, 5, 6]),
                             weight=1.0)
    return projection


def test_branching_factor_counts_descendants_per_ancestor_along_the_synapses():
    projection = _tree()
    steps = np.array([10, 11, 11, 12, 12, 12, 12])
    ids = np.arange(7)
    # neurons 0, 1, 2 each see 2 descendants (1 ancestor at most); the leaves 3-6 see none
    assert branching_factor(steps, ids, projection) == pytest.approx(6 / 7)
    # descendants outside the window (4 steps) do not count
    late = np.array([10, 15, 15, 20, 20, 20, 20])
    assert branching_factor(late, ids, projection) == 0.0
    # a repeated activation of the whole tree counts each spike's own window
    assert branching_factor(np.concatenate([steps, steps + 100]), np.concatenate([ids, ids]),
                            projection) == pytest.approx(6 / 7)
    assert np.isnan(branching_factor([], [], projection))


def _organise(weight_scale, astrocyte, samples=120):
    """A 200-neuron NALSM on 20 ms of each training digit; branching factor of the first 200 ms and the last 1 s."""
    train = datasets.digits_events(train=True)
    source = stream(train, range(samples), 20 * ms)
    net = rv.networks.nalsm(n_liquid=200, astrocyte=astrocyte, weight_scale=weight_scale, input_source=source, seed=3)
    spikes = net.record("liquid", "spikes")
    net.run(samples * 20 * ms)
    liquid = [p for p in net.projections if p.pre.name == "liquid" and p.post.name == "liquid"]
    steps, ids = spikes.steps, spikes.ids
    first, last = steps < 200, steps >= steps.max() - 1000
    return branching_factor(steps[first], ids[first], liquid), branching_factor(steps[last], ids[last], liquid)


@pytest.mark.parametrize("weight_scale", [0.6, 1.6])
def test_astrocyte_moves_the_branching_factor_toward_one_and_plain_stdp_does_not(weight_scale):
    start, organised = _organise(weight_scale, astrocyte=True)
    assert (start < 0.5) if weight_scale < 1 else (start > 1.15)  # sub- and super-critical starts
    assert abs(organised - 1) < 0.15
    assert abs(organised - 1) < abs(start - 1) / 2
    # plain STDP (the astrocyte's rate held at 1) drifts up: from the super-critical start it stays
    # super-critical, from the sub-critical one it has not reached 1 (docs/plasticity.md has longer runs)
    plain_start, plain = _organise(weight_scale, astrocyte=False)
    assert plain_start == pytest.approx(start, abs=0.15)
    assert plain > 1.2 if weight_scale > 1 else plain < 0.9


def test_builder_layout_and_bad_input():
    net = rv.networks.nalsm(n_input=20, n_liquid=50, seed=1)
    assert set(net.populations) == {"input", "liquid", "astro"}
    names = sorted(p.name for p in plastic_projections(net))
    assert names == ["input->liquid:exc", "liquid->liquid:exc", "liquid->liquid:inh"]
    inhibitory = net.projections[-1]
    assert inhibitory.weights.max() <= 0 and inhibitory.plasticity.modulates == "potentiation"
    assert rv.networks.nalsm.branching_factor is branching_factor
    plain = rv.networks.nalsm(n_input=20, n_liquid=50, astrocyte=False, seed=1)
    assert "astro" not in plain.populations and all(p.plasticity.modulator is None for p in plastic_projections(plain))
    with pytest.raises(ProjectionError, match="weight_scale"):
        rv.networks.nalsm(weight_scale=3.0)
    with pytest.raises(ProjectionError, match="n_liquid"):
        rv.networks.nalsm(n_liquid=1)
