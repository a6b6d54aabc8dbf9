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


@pytest.mark.slow
def test_sr_regime_is_regular_and_fast_ai_regime_is_irregular_and_slow():
    sr_rate, sr_cv = _activity(g=3.0, eta=2.0)
    ai_rate, ai_cv = _activity(g=5.0, eta=2.0)
    assert sr_rate > 150 and sr_cv < 0.1, (sr_rate, sr_cv)
    assert 5 < ai_rate < 80 and ai_cv > 0.3, (ai_rate, ai_cv)
