"""Brian 2's CUBA example (after Vogels & Abbott 2005, Brette et al. 2007 benchmark 2)."""

from __future__ import annotations

from ..engine.connectivity import Bernoulli
from ..engine.distributions import Distribution, Uniform
from ..engine.model import Model
from ..engine.network import Network
from ..neurons.lif import LIF
from ..units import ms, mV


def cuba(n: int = 4000, seed: int | None = None, mean_in_degree: float = 80.0,
         delay: float | Distribution = 0.1 * ms, dt: float = 0.1 * ms, model: Model | None = None) -> Network:
    """Brian 2's CUBA network: ``0.8 n`` excitatory and ``0.2 n`` inhibitory LIF neurons.

    ``tau_m = 20 ms``, ``v_rest = -49 mV`` (above threshold, so neurons fire without input),
    ``v_th = -50 mV``, ``v_reset = -60 mV``, ``t_ref = 5 ms``, exponential currents with
    ``tau_exc = 5 ms`` and ``tau_inh = 10 ms``; every pair is connected with probability
    ``mean_in_degree / n`` (0.02 at the defaults), with weights ``1.62 mV`` and ``-9 mV``
    scaled by ``80 / mean_in_degree`` so the mean input stays the same; ``v`` starts uniform
    in ``[v_reset, v_th)``. ``mean_in_degree=1000`` with ``n=10000`` is the CUBA-dense
    benchmark. ``delay`` may be a distribution for per-synapse delays. ``model`` replaces the LIF
    (an :class:`~ranvier.neurons.Equations` of the same equations, say); it needs receptors
    ``"exc"`` and ``"inh"`` and a state variable ``v``.

    Populations: ``"exc"``, ``"inh"``.
    """
    net = Network(dt=dt, seed=seed)
    if model is None:
        model = LIF(tau_m=20 * ms, v_rest=-49 * mV, v_th=-50 * mV, v_reset=-60 * mV, t_ref=5 * ms,
                    tau_syn={"exc": 5 * ms, "inh": 10 * ms})
    n_exc = int(0.8 * n)
    start = {"v": Uniform(-60 * mV, -50 * mV)}
    exc = net.population(model, n_exc, name="exc", init=start)
    inh = net.population(model, n - n_exc, name="inh", init=start)
    scale = 80.0 / mean_in_degree
    rule = Bernoulli(p=min(1.0, mean_in_degree / n))
    net.connect(exc, [exc, inh], rule, weight=1.62 * mV * scale, delay=delay, receptor="exc")
    net.connect(inh, [exc, inh], rule, weight=-9.0 * mV * scale, delay=delay, receptor="inh")
    return net
