"""Liquid time-constant (LTC) networks (Hasani et al. 2021), written once for numpy and torch.

As in :mod:`ranvier.neurons.cfc`, every equation is one array function taking the array namespace
``xp`` first, shared by the numpy reference, the torch module used for training
(:mod:`ranvier.train.ltc`) and the engine population. :func:`ltc_step` advances a network one step,
``(xp, weights, x_t, state, elapsed) -> (output, new_state)``; :func:`ltc_sequence` runs a whole
sequence, ``elapsed`` (ncps' ``timespans``) in the model's own time unit.

This module never imports torch; the ``xp`` passed in decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError
from .arrays import contiguous, sigmoid, time_steps, unroll
from .liquid import LiquidModel
from .ncps_import import ltc_arrays


@dataclass(frozen=True)
class LTCWeights:
    """Parameters of an LTC network, named and shaped as in ``ncps.torch.LTCCell`` (pre-synaptic index first).

    ``gleak, vleak, cm`` ``(units,)``; ``w, sigma, mu, erev, mask`` ``(units, units)``; ``sensory_*``
    ``(n_in, units)``; ``input_w, input_b`` ``(n_in,)``; ``output_w, output_b`` ``(motor,)`` (None
    where the mapping lacks them). ``positive`` says whether ``w, sensory_w, cm, gleak`` pass through
    softplus (ncps' ``implicit_param_constraints``).
    """

    gleak: Any
    vleak: Any
    cm: Any
    w: Any
    sigma: Any
    mu: Any
    erev: Any
    mask: Any
    sensory_w: Any
    sensory_sigma: Any
    sensory_mu: Any
    sensory_erev: Any
    sensory_mask: Any
    input_w: Any = None
    input_b: Any = None
    output_w: Any = None
    output_b: Any = None
    motor: int = 0
    ode_unfolds: int = 6
    epsilon: float = 1e-8
    positive: bool = True

    @property
    def units(self) -> int:
        return int(self.gleak.shape[0])

    @property
    def n_in(self) -> int:
        return int(self.sensory_w.shape[0])


@dataclass(frozen=True)
class LTCTerms:
    """What an LTC step needs that does not depend on the state, computed once per sequence (once per
    weights object in an engine population)."""

    sigma_t: Any  # (post, pre) sigma^T
    sigma_mu_t: Any  # (post, pre) (sigma mu)^T
    rev_and_w: Any  # (post, pre, 2): [(W erev)^T, W^T], W = positive(w) * mask
    cm: Any
    gleak: Any
    gleak_vleak: Any
    synapse_sums: Callable[[Any, Any], Any]
    sensory_sigma_t: Any  # the same three for the sensory synapses, (post, n_in)
    sensory_sigma_mu_t: Any
    sensory_rev_and_w: Any


def ltc_synapse_sums(terms: LTCTerms, v: Any, xp: Any = np) -> Any:
    """Recurrent synapses' sums ``[sum_i g_ij(v_i) E_ij, sum_i g_ij(v_i)]`` as a ``(post, batch, 2)`` array.

    ``g_ij(v_i) = W_ij sigmoid(sigma_ij (v_i - mu_ij))``, laid out ``(post j, batch, pre i)`` so both
    sums are one batched matmul. :mod:`ranvier.train.ltc` replaces it with a torch autograd
    function computing the same sums with a hand-written backward pass (tested against this one).
    """
    activation = sigmoid(xp, terms.sigma_t[:, None, :] * v[None] - terms.sigma_mu_t[:, None, :])
    return activation @ terms.rev_and_w


def _softplus(xp: Any, x: Any) -> Any:
    """``log(1 + e^x)`` written so neither library overflows: ``relu(x) + log1p(e^-|x|)``."""
    magnitude = xp.abs(x)
    return 0.5 * (x + magnitude) + xp.log1p(xp.exp(-magnitude))


def _positive(xp: Any, weights: LTCWeights, x: Any) -> Any:
    return _softplus(xp, x) if weights.positive else x


def ltc_terms(xp: Any, weights: LTCWeights, synapse_sums: Callable[[Any, Any], Any] | None = None) -> LTCTerms:
    """The weight transforms of a step (softplus, masks, ``W E``), laid out for :func:`ltc_synapse_sums`;
    ``synapse_sums`` as in :func:`ltc_sequence`."""
    conductance = _positive(xp, weights, weights.w) * weights.mask
    sensory_conductance = _positive(xp, weights, weights.sensory_w) * weights.sensory_mask
    gleak = _positive(xp, weights, weights.gleak)
    return LTCTerms(
        sigma_t=contiguous(weights.sigma.T),
        sigma_mu_t=contiguous((weights.sigma * weights.mu).T),
        rev_and_w=contiguous(xp.stack([(conductance * weights.erev).T, conductance.T], 2)),
        cm=_positive(xp, weights, weights.cm),
        gleak=gleak,
        gleak_vleak=gleak * weights.vleak,
        synapse_sums=synapse_sums or (lambda terms, v: ltc_synapse_sums(terms, v, xp)),
        sensory_sigma_t=contiguous(weights.sensory_sigma.T),
        sensory_sigma_mu_t=contiguous((weights.sensory_sigma * weights.sensory_mu).T),
        sensory_rev_and_w=contiguous(xp.stack([(sensory_conductance * weights.sensory_erev).T,
                                               sensory_conductance.T], 2)),
    )


def ltc_sensory(xp: Any, weights: LTCWeights, terms: LTCTerms, x: Any) -> tuple[Any, Any]:
    """Sensory synapses' reversal-weighted and plain conductance sums, ``(..., units)`` each.

    ``u = input_w * x + input_b`` (the input mapping), then for every sensory synapse ``i -> j``
    ``g_ij = positive(sensory_w_ij) mask_ij sigmoid(sensory_sigma_ij (u_i - sensory_mu_ij))``;
    returns ``(sum_i g_ij E_ij, sum_i g_ij)``. It depends only on the input, so a sequence
    computes it for all steps at once.
    """
    if weights.input_w is not None:
        x = x * weights.input_w
    if weights.input_b is not None:
        x = x + weights.input_b
    lead = x.shape[:-1]
    flat = x.reshape(-1, weights.n_in)
    activation = sigmoid(xp, terms.sensory_sigma_t[:, None, :] * flat[None] - terms.sensory_sigma_mu_t[:, None, :])
    sums = activation @ terms.sensory_rev_and_w  # (post, samples, 2)
    return sums[:, :, 0].T.reshape(lead + (-1,)), sums[:, :, 1].T.reshape(lead + (-1,))


def _ltc_unfolds(xp: Any, weights: LTCWeights, terms: LTCTerms, sensory: tuple[Any, Any], v: Any,
                 elapsed: Any) -> tuple[Any, Any]:
    """The fused semi-implicit Euler solver of one LTC step; returns ``(output, new_v)``."""
    cm_t = terms.cm / (elapsed / weights.ode_unfolds)
    rest_numerator = terms.gleak_vleak + sensory[0]
    rest_denominator = cm_t + terms.gleak + sensory[1] + weights.epsilon  # the same for every unfold
    for _ in range(weights.ode_unfolds):
        sums = terms.synapse_sums(terms, v)
        numerator = cm_t * v + rest_numerator + sums[:, :, 0].T
        denominator = rest_denominator + sums[:, :, 1].T
        v = numerator / denominator
    output = v[:, : weights.motor]
    if weights.output_w is not None:
        output = output * weights.output_w
    if weights.output_b is not None:
        output = output + weights.output_b
    return output, v


def ltc_step(xp: Any, weights: LTCWeights, x_t: Any, state: Any, elapsed: Any) -> tuple[Any, Any]:
    """Advance an LTC network one step: ``(output, new_state)`` for input ``x_t`` ``(batch, n_in)``.

    Hasani et al. (2021), "Liquid time-constant networks", AAAI 35, and ``ncps.torch.LTCCell``: each neuron
    is a membrane ``C_j dv_j/dt = g_leak,j (v_leak,j - v_j) + sum_i g_ij(v_i) (E_ij - v_j)`` with
    synaptic conductances ``g_ij(v_i) = w_ij sigmoid(sigma_ij (v_i - mu_ij))`` from recurrent and
    sensory synapses. As ``ncps.torch.LTCCell`` (1.0.1) solves it, the step is split into
    ``ode_unfolds`` sub-steps of the fused (semi-implicit) Euler update::

        v <- (c v + g_leak v_leak + sum_i g_ij E_ij) / (c + g_leak + sum_i g_ij + epsilon),
        c = C / (elapsed / ode_unfolds)

    with ``g_ij`` evaluated at the sub-step's ``v``. The output is the first ``motor`` neurons'
    ``v`` through the output mapping ``output_w * v + output_b``.
    """
    terms = ltc_terms(xp, weights)
    return _ltc_unfolds(xp, weights, terms, ltc_sensory(xp, weights, terms, x_t), state, elapsed)


def ltc_sequence(xp: Any, weights: LTCWeights, inputs: Any, state: Any, timespans: Any = None,
                 synapse_sums: Callable[[Any, Any], Any] | None = None) -> tuple[Any, Any]:
    """Run an LTC network over ``inputs`` ``(batch, T, n_in)``; return outputs ``(batch, T, motor)`` and the last state.

    Sensory synapses and the weight transforms are computed once for the whole sequence.
    ``synapse_sums(terms, v)`` replaces :func:`ltc_synapse_sums` (the torch module's fused version).
    """
    terms = ltc_terms(xp, weights, synapse_sums)
    sensory = zip(*map(time_steps, ltc_sensory(xp, weights, terms, inputs)), strict=True)
    return unroll(xp, sensory, lambda sensory_t, v, elapsed: _ltc_unfolds(xp, weights, terms, sensory_t, v, elapsed),
                  state, timespans)


class LTC(LiquidModel):
    """Liquid time-constant network (Hasani et al. 2021): weights, a numpy forward pass, a population.

    Build it from an ``ncps.torch.LTC`` with :meth:`from_ncps` (plain or wired by an
    ``ncps.wirings`` object), or from an :class:`LTCWeights`. The equations are in :func:`ltc_step`;
    :class:`ranvier.train.LTCModule` trains the same function in torch (``LTCModule(model.weights)``).
    """

    _sequence = staticmethod(ltc_sequence)

    def __init__(self, weights: LTCWeights):
        if weights.ode_unfolds < 1:
            raise ModelError(f"LTC: ode_unfolds must be at least 1; got {weights.ode_unfolds}")
        if not 0 < weights.motor <= weights.units:
            raise ModelError(f"LTC: motor (output) neurons must number 1..{weights.units}; got {weights.motor}")
        super().__init__()
        self.weights = weights

    @property
    def n_in(self) -> int:
        return self.weights.n_in

    @property
    def state_size(self) -> int:
        return self.weights.units

    @property
    def output_size(self) -> int:
        return self.weights.motor

    def __repr__(self) -> str:
        return f"LTC(n_in={self.n_in}, units={self.state_size}, motor={self.output_size})"

    @classmethod
    def from_ncps(cls, module: Any) -> LTC:
        """Copy the parameters and solver settings of an ``ncps.torch.LTC``."""
        return cls(LTCWeights(**ltc_arrays(module)))

    @staticmethod
    def _arrange(weights: LTCWeights, unit_time: bool) -> LTCTerms:
        return ltc_terms(np, weights)

    @staticmethod
    def _step(xp: Any, weights: LTCWeights, terms: LTCTerms, x: Any, v: Any, elapsed: float) -> tuple[Any, Any]:
        return _ltc_unfolds(xp, weights, terms, ltc_sensory(xp, weights, terms, x), v, elapsed)
