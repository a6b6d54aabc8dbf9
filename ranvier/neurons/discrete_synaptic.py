"""ranvier's LIF as the discrete-time synaptic neuron of snnTorch (``Synaptic``) and Norse (``LIFCell``).

Both step, in step ``t`` with input ``x[t]`` (the weighted spikes arriving in that step)::

    syn[t] = alpha syn[t-1] + x[t]
    v[t]   = v_leak + beta (v[t-1] - v_leak) + syn[t]

the current updated first and entering ``v`` in the same step. ranvier's LIF
(:func:`ranvier.neurons.lif._lif_step`, exact integration) gives this with ``beta = e^{-dt/tau_m}``
and two receptors: a delta receptor ``"in"`` that adds ``x[t]`` to ``v`` in the step it arrives,
and a current receptor ``"syn"`` (``alpha = e^{-dt/tau_syn}``) holding ``I = alpha syn / P``,
``P`` the propagator of :func:`ranvier.neurons.lif._propagator`: ``I[t-1]`` moves ``v[t]`` by
``P I[t-1] = alpha syn[t-1]``, and the arrivals of step ``t`` add ``alpha x[t] / P`` to ``I``. A
weight ``w`` therefore goes to ``"in"`` as ``w`` and to ``"syn"`` as ``w alpha / P``.
"""

from __future__ import annotations

import numpy as np

from .lif import LIF, _propagator


def _discrete_synaptic(tau_m: np.ndarray, tau_syn: np.ndarray, dt: float,
                       **parameters) -> tuple[LIF, dict[str, np.ndarray]]:
    """The LIF stepping the discrete synaptic neuron (module docstring) and the factor turning a
    weight into each receptor's weight.

    ``tau_m``, ``tau_syn`` (s) are the time constants whose exact decays per step ``dt`` (s) are
    ``beta`` and ``alpha``; ``parameters`` are the LIF's others (``v_rest``, ``v_th``, ``v_reset``,
    ``t_ref``, ``i_bias``)."""
    tau_m = np.asarray(tau_m, dtype=np.float64)
    tau_syn = np.asarray(tau_syn, dtype=np.float64)
    alpha = np.exp(-dt / tau_syn)
    factors = {"in": np.ones_like(alpha), "syn": alpha / _propagator(dt, tau_syn, tau_m)}
    return LIF(tau_m=tau_m, tau_syn={"in": 0.0, "syn": tau_syn}, **parameters), factors
