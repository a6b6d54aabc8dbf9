"""Brunel (2000) model A: g and eta move the network between the SR and AI regimes."""

import numpy as np
import pytest

import ranvier as rv


def _activity(g, eta):
    net = rv.networks.brunel(n=12500, g=g, eta=eta, seed=2)
    spikes = net.record(net["exc"], "spikes")
    net.run(0.3, backend="numba")
    late = spikes.times > 0.1
    times, ids = spikes.times[late], spikes.ids[late]
    rate = len(times) / net["exc"].n / 0.2
    trains = [times[ids == i] for i in np.unique(ids)[:500]]
    cv = np.mean([np.diff(t).std() / np.diff(t).mean() for t in trains if len(t) >= 3])
    return rate, cv


def test_structure_follows_the_paper():
    net = rv.networks.brunel(n=2500, seed=1)
    assert set(net.populations) == {"exc", "inh", "ext"}
    by_name = {p.name: p for p in net.projections}
    np.testing.assert_array_equal(np.bincount(by_name["exc->inh:delta"].post_ids, minlength=500), 200)
    np.testing.assert_array_equal(np.bincount(by_name["inh->exc:delta"].post_ids, minlength=2000), 50)
    np.testing.assert_allclose(by_name["inh->exc:delta"].weights, -5 * 0.1e-3, rtol=1e-6)
    np.testing.assert_allclose(by_name["exc->exc:delta"].delays, 1.5e-3)
    # external drive: eta * nu_thr per input, C_E inputs, nu_thr = theta / (J C_E tau_m) = 50 Hz here
    np.testing.assert_allclose(net["ext"].params["rate"], 2.0 * 50.0 * 200)


def test_drive_background_draws_the_external_input_inside_the_targets():
    sources = rv.networks.brunel(n=2500, seed=1)
    net = rv.networks.brunel(n=2500, seed=1, background="drive")
    assert set(net.populations) == {"exc", "inh"}
    drives = {d.post.name: d for d in net.poisson_inputs}
    assert set(drives) == {"exc", "inh"} and not sources.poisson_inputs
    # C_E = 200 inputs each at eta * nu_thr = 100 Hz: the sources' summed rate, one source per neuron
    assert drives["exc"].n_inputs == 200 and drives["exc"].rate == pytest.approx(100.0)
    assert float(drives["inh"].weight) == pytest.approx(0.1e-3)
    by_name = {p.name: p for p in net.projections}
    assert set(by_name) == {"exc->exc:delta", "inh->exc:delta", "exc->inh:delta", "inh->inh:delta"}
    np.testing.assert_array_equal(np.bincount(by_name["exc->inh:delta"].post_ids, minlength=500), 200)
    with pytest.raises(ValueError, match="background must be 'sources' or 'drive', got 'spikes'"):
        rv.networks.brunel(n=100, background="spikes")


def test_drive_background_gives_the_sources_activity():
    rates = {}
    for background in ("sources", "drive"):
        net = rv.networks.brunel(n=2500, seed=4, background=background)
        spikes = net.record(net["exc"], "spikes")
        net.run(0.3, backend="numba")
        rates[background] = np.sum(spikes.times > 0.1) / net["exc"].n / 0.2
    assert 5 < rates["sources"] < 80 and rates["drive"] == pytest.approx(rates["sources"], rel=0.1), rates


@pytest.mark.slow
def test_sr_regime_is_regular_and_fast_ai_regime_is_irregular_and_slow():
    sr_rate, sr_cv = _activity(g=3.0, eta=2.0)
    ai_rate, ai_cv = _activity(g=5.0, eta=2.0)
    assert sr_rate > 150 and sr_cv < 0.1, (sr_rate, sr_cv)
    assert 5 < ai_rate < 80 and ai_cv > 0.3, (ai_rate, ai_cv)
