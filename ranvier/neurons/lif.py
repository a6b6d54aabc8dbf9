"""Leaky integrate-and-fire neuron with exponentially decaying, current-based synapses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..engine.distributions import Distribution
from ..engine.model import NOT_FINITE, Model, ParameterValue, select, spike, store_where
from ..engine.plausibility import warn_if_implausible
from ..errors import ModelError
from ..units import ms, mV

# rows of the state array
V = 0
REFRACTORY = 1  # steps of refractoriness left
FIRST_CURRENT = 2  # then one row per receptor

# rows of the constants array
V_EQUILIBRIUM = 0
P_VV = 1
V_THRESHOLD = 2
V_RESET = 3
REFRACTORY_STEPS = 4
FIRST_RECEPTOR = 5  # then the four constants of each receptor:
RECEPTOR_CONSTS = 4  # current decay, current -> v, arrival -> v (delta receptors), arrival -> current

#: one refractory step, as float32 so the compiled counter stays in float32 in single precision
#: (an integer literal would promote it to float64); in double precision it adopts float64
_ONE_STEP = np.float32(1.0)


def _lif_step(state, consts, arriving, i, c, k, key):
    """Advance LIF neurons ``i`` from ``k * dt`` to ``(k + 1) * dt``; return 1 where they spike.

    Exact integration of the linear subthreshold system (Rotter & Diesmann 1999, as NEST's
    ``iaf_psc_exp`` and Brian 2's ``method='exact'``), with ``v_eq = v_rest + i_bias``::

        v(t+dt)   = v_eq + (v - v_eq) e^{-dt/tau_m} + sum_r I_r P_r
        I_r(t+dt) = I_r e^{-dt/tau_r} + (weights arriving in this step)
        P_r       = tau_r / (tau_r - tau_m) (e^{-dt/tau_r} - e^{-dt/tau_m})

    A receptor with ``tau_r = 0`` is a delta synapse (NEST's ``iaf_psc_delta``): its weights
    jump ``v`` directly. A refractory neuron keeps ``v``, counts its refractory steps down and
    discards delta input; currents keep decaying. ``v >= v_th`` emits a spike, sets
    ``v = v_reset`` and starts ``t_ref / dt`` refractory steps; a neuron whose state is no
    longer finite returns ``NOT_FINITE``. Arriving input is added after
    the voltage update, so a spike sent at time t with delay d first moves ``v`` in the step
    that starts at ``t + d``.
    """
    v = state[V, i]
    refractory = state[REFRACTORY, i]
    v_equilibrium = consts[V_EQUILIBRIUM, c]
    v_free = v_equilibrium + (v - v_equilibrium) * consts[P_VV, c]
    for r in range(len(arriving)):
        row = FIRST_RECEPTOR + RECEPTOR_CONSTS * r
        current = state[FIRST_CURRENT + r, i]
        spike_input = arriving[r][i]
        v_free = v_free + current * consts[row + 1, c] + spike_input * consts[row + 2, c]
        current = current * consts[row, c] + spike_input * consts[row + 3, c]
        state[FIRST_CURRENT + r, i] = current
    active = refractory <= 0
    counting_down = refractory > 0
    v_new = select(active, v_free, v)
    refractory = select(active, refractory, refractory - _ONE_STEP)
    fired = spike(v_new - consts[V_THRESHOLD, c])
    state[V, i] = select(fired, consts[V_RESET, c], v_new)
    refractory = select(fired, consts[REFRACTORY_STEPS, c], refractory)
    # the counter changes only while it runs down or at a spike: most steps leave it alone
    # (select, not |, so the same line runs in torch, where fired is a surrogate spike)
    store_where(state, REFRACTORY, i, select(fired, fired, counting_down), refractory)
    # x - x is 0 for finite x and NaN otherwise. v_free carries v and every receptor's current
    # and input (each times a propagator or a 0/1 switch, and 0 times Inf or NaN is NaN), so
    # with the counter it covers the whole state; a current that overflows to Inf this step
    # shows in the next. Reading the counter here also keeps the compiled loop from loading
    # its constant under a mask (a gather), since the write above is conditional.
    health = v_free + refractory
    return select(health - health == 0, fired, NOT_FINITE)


def _propagator(dt: float, tau_syn: np.ndarray, tau_m: np.ndarray) -> np.ndarray:
    """Voltage response at ``dt`` to a unit current that decays with ``tau_syn``."""
    same = np.isclose(tau_syn, tau_m, rtol=1e-9, atol=0.0)
    safe_difference = np.where(same, 1.0, tau_syn - tau_m)
    general = tau_syn / safe_difference * (np.exp(-dt / tau_syn) - np.exp(-dt / tau_m))
    degenerate = dt / tau_m * np.exp(-dt / tau_m)
    return np.where(same, degenerate, general)



def spiking_above(threshold: np.ndarray | float, dtype: np.dtype | type) -> np.ndarray:
    """The ``v_th`` (float64) at which a LIF, which spikes where ``v >= v_th``, spikes where ``v > threshold``
    (snnTorch's and NIR's rule) for ``v`` held in ``dtype``: the next ``dtype`` number above ``threshold``."""
    held = np.asarray(threshold, dtype=dtype)
    return np.nextafter(held, np.asarray(np.inf, dtype=dtype)).astype(np.float64)


def spiking_at(v_th: np.ndarray | float, dtype: np.dtype | type) -> np.ndarray:
    """The inverse of :func:`spiking_above`: the threshold above which ``v`` in ``dtype`` spikes where
    ``v >= v_th`` (the ``v_threshold`` of a NIR node for a LIF's ``v_th``)."""
    held = np.asarray(v_th, dtype=dtype)
    return np.nextafter(held, np.asarray(-np.inf, dtype=dtype)).astype(np.float64)


class LIF(Model):
    r"""Leaky integrate-and-fire neuron, current-based synapses (ranvier's reference model).

    .. math::

        \tau_m \frac{dv}{dt} = v_{rest} - v + \sum_r I_r + i_{bias}, \qquad
        \frac{dI_r}{dt} = -\frac{I_r}{\tau_r}

    Synaptic currents and ``i_bias`` are voltage-equivalent (volts), as in Brian 2's CUBA
    example: a spike adds its weight (volts) to ``I_r`` of its target. ``v >= v_th`` emits a
    spike, sets ``v = v_reset`` and holds it for ``t_ref``.

    Parameters
    ----------
    tau_m : membrane time constant (s)
    v_rest, v_th, v_reset : resting, threshold and reset potentials (V)
    t_ref : refractory period (s), rounded to whole steps
    tau_syn : receptor name -> synaptic time constant (s); 0 makes a delta synapse, whose
        weight jumps ``v`` at once
    i_bias : constant voltage-equivalent input (V)

    Each value may be a float, a per-neuron array or a ``ranvier.init`` distribution.
    State variables: ``v``, ``refractory`` (steps left) and ``I_<receptor>`` per receptor.
    """

    step = staticmethod(_lif_step)
    checks_finite = True

    def __init__(
        self,
        tau_m: ParameterValue = 20 * ms,
        v_rest: ParameterValue = -65 * mV,
        v_th: ParameterValue = -50 * mV,
        v_reset: ParameterValue = -65 * mV,
        t_ref: ParameterValue = 2 * ms,
        tau_syn: Mapping[str, ParameterValue] | None = None,
        i_bias: ParameterValue = 0.0,
    ) -> None:
        super().__init__()
        tau_syn = {"exc": 5 * ms, "inh": 5 * ms} if tau_syn is None else dict(tau_syn)
        if not tau_syn:
            raise ModelError("LIF: tau_syn needs at least one receptor, e.g. {'exc': 5e-3}")
        if "m" in tau_syn:
            # the receptor's time constant is the parameter tau_<receptor>: tau_m is the membrane's
            raise ModelError("LIF: a receptor cannot be named 'm' (its time constant would be tau_m, the "
                             "membrane time constant); name it otherwise, e.g. 'exc'")
        self._check_positive(tau_m=tau_m)
        for receptor, tau in tau_syn.items():
            if not isinstance(tau, Distribution) and (
                    not np.all(np.isfinite(np.asarray(tau, dtype=float))) or np.any(np.asarray(tau, dtype=float) < 0)):
                raise ModelError(f"LIF: tau_syn[{receptor!r}] must be >= 0 and finite, got {tau!r}")
        self._check_finite(v_rest=v_rest, v_th=v_th, v_reset=v_reset, i_bias=i_bias)
        if not isinstance(t_ref, Distribution) and np.any(np.asarray(t_ref, dtype=float) < 0):
            raise ModelError(f"LIF: t_ref must be >= 0, got {t_ref!r}")
        owner = type(self).__name__
        times = {"tau_m": tau_m, "t_ref": t_ref, **{f"tau_syn[{r!r}]": tau for r, tau in tau_syn.items()}}
        for name, value in times.items():
            warn_if_implausible(owner, name, value, "time")
        for name, value in (("v_rest", v_rest), ("v_th", v_th), ("v_reset", v_reset), ("i_bias", i_bias)):
            warn_if_implausible(owner, name, value, "voltage")
        self.tau_syn = tau_syn
        self.parameters = {
            "tau_m": tau_m, "v_rest": v_rest, "v_th": v_th, "v_reset": v_reset,
            "t_ref": t_ref, "i_bias": i_bias,
            **{f"tau_{r}": tau for r, tau in tau_syn.items()},
        }

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("v", "refractory", *(f"I_{r}" for r in self.tau_syn))

    def _config(self) -> dict[str, Any]:
        config = super()._config()
        if "tau_syn" in config:
            # a receptor named "syn" has the parameter tau_syn, which is not the constructor's dict
            config["tau_syn"] = dict(self.tau_syn)
        return config

    @property
    def receptors(self) -> tuple[str, ...]:
        return tuple(self.tau_syn)

    def initial_state(self) -> dict[str, ParameterValue]:
        state = {name: 0.0 for name in self.state_names}
        state["v"] = self.parameters["v_rest"]
        return state

    @staticmethod
    def _check_drawn(params: Mapping[str, np.ndarray], receptors) -> None:
        """Per-neuron values (drawn from distributions, or read from a file) in range."""
        ranges = {"tau_m": (0.0, False), "t_ref": (0.0, True), **{f"tau_{r}": (0.0, True) for r in receptors}}
        for name, values in params.items():
            values = np.asarray(values, dtype=np.float64)
            bad = ~np.isfinite(values)
            low, inclusive = ranges.get(name, (None, True))
            if low is not None:
                bad |= (values < low) if inclusive else (values <= low)
            if np.any(bad):
                needs = "finite" if low is None else f"{'>=' if inclusive else '>'} {low:g} and finite"
                raise ModelError(f"LIF: {name} must be {needs} for every neuron, got {float(values[bad][0])!r} "
                                 f"(neuron {int(np.flatnonzero(bad)[0])})")

    def constants(self, params: Mapping[str, np.ndarray], dt: float) -> np.ndarray:
        self._check_drawn(params, self.tau_syn)
        tau_m = params["tau_m"]
        rows = [
            params["v_rest"] + params["i_bias"],
            np.exp(-dt / tau_m),
            params["v_th"],
            params["v_reset"],
            np.round(params["t_ref"] / dt),
        ]
        for receptor in self.tau_syn:
            tau = params[f"tau_{receptor}"]
            delta = tau == 0
            safe_tau = np.where(delta, 1.0, tau)
            rows += [
                np.where(delta, 0.0, np.exp(-dt / safe_tau)),
                np.where(delta, 0.0, _propagator(dt, safe_tau, tau_m)),
                delta.astype(np.float64),
                (~delta).astype(np.float64),
            ]
        return np.asarray(np.broadcast_arrays(*rows), dtype=np.float64)
