"""Astrocytes: slow integrators of neuronal activity that emit a modulatory signal."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..engine.model import ParameterValue, ValueModel
from ..engine.plausibility import warn_if_implausible
from ..units import ms

_ACTIVITY = 0
_DECAY, _BASELINE = range(2)


def _astrocyte_step(state, consts, inputs, i, c, k, key):
    """``A <- b + (A - b) exp(-dt / tau) + (weighted spike count of the window)``."""
    baseline = consts[_BASELINE, c]
    state[_ACTIVITY, i] = baseline + (np.float64(state[_ACTIVITY, i]) - baseline) * consts[_DECAY, c] + inputs[0, i]
    return 0


class Astrocyte(ValueModel):
    r"""An astrocyte that integrates the spikes of the populations it watches (a value population).

    .. math::

        \frac{dA}{dt} = \frac{b - A}{\tau} + \sum_j w_j \sum_f \delta(t - t_j^f)

    ``A`` (the output) relaxes to the baseline ``b`` with time constant ``tau`` (s) and jumps by
    the weight ``w_j`` of every spike that reaches port ``"input"`` through an ordinary
    ``net.connect`` (weights of either sign: in the NALSM of Ivanov & Michmizos 2021, Eq. 7,
    liquid spikes raise ``A`` and input spikes lower it, so ``A`` follows the liquid's activity
    relative to its drive). Each update over the population's ``dt`` is exact for the decay:
    ``A <- b + (A - b) exp(-dt / tau) + (weighted spike count of the window)``.

    The output is a modulatory signal: ``ranvier.plasticity.STDP(modulator=astro)`` scales
    learning by it, and a value projection from the astrocyte into a LIF receptor
    (``net.connect(astro, lif, AllToAll(), weight=w, receptor="astro")``) adds ``w A`` to that
    receptor's input in every step, which shifts the neurons' excitability.

    Parameters
    ----------
    tau : integration time constant (s); the NALSM uses 100 ms (its ``ASTRO_TAU = 100`` steps of 1 ms)
    baseline : the value ``A`` relaxes to without input, and its initial value
    """

    step = staticmethod(_astrocyte_step)

    def __init__(self, tau: ParameterValue = 100 * ms, baseline: ParameterValue = 0.0) -> None:
        super().__init__()
        self._check_positive(tau=tau)
        self._check_finite(baseline=baseline)
        warn_if_implausible(type(self).__name__, "tau", tau, "time")
        self.parameters = {"tau": tau, "baseline": baseline}

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("output",)

    def initial_state(self) -> dict[str, ParameterValue]:
        return {"output": self.parameters["baseline"]}

    def constants(self, params: Mapping[str, np.ndarray], dt: float) -> np.ndarray:
        tau, baseline = np.broadcast_arrays(params["tau"], params["baseline"])
        return np.stack([np.exp(-dt / tau), baseline]).astype(np.float64)
