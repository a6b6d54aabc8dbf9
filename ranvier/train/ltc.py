"""A trainable torch module for LTC networks, running the shared step functions of :mod:`ranvier.neurons.ltc`.

:class:`LTCModule` holds the weights of a :class:`~ranvier.neurons.ltc.LTCWeights` as parameters,
rebuilds the dataclass from them on each forward pass and calls the same sequence function the
numpy forward pass uses, with ``xp = torch``. Speed over ncps comes from that code's structure
(sensory synapses computed for the whole sequence before the loop, one batched matmul for both
recurrent conductance sums) and from a hand-written backward pass for those sums
(:class:`_SynapseSums`), tested against ncps' autograd.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch
from torch import nn

from ..neurons.ltc import LTCWeights, ltc_sequence
from .liquid import check_sequence, parameter


class _SynapseSums(torch.autograd.Function):
    """:func:`~ranvier.neurons.ltc.ltc_synapse_sums` with a hand-written backward pass.

    Autograd through the plain expression keeps about five ``(post, batch, pre)`` tensors per ODE
    unfold and makes a dozen passes over them. Here the forward pass keeps only the activations
    ``s = sigmoid(sigma (v - mu))``; the backward pass works in two buffers that every unfold of
    the sequence reuses, and forms the gradients of ``S = s @ rev_and_w`` from ``g = dL/dS``::

        d(rev_and_w) = s^T g,   ds = g rev_and_w^T,   dx = ds s (1 - s)
        dv_bi = sum_j dx_jbi sigma_ji,   dsigma_ji = sum_b dx_jbi v_bi,   d(sigma mu)_ji = -sum_b dx_jbi
    """

    @staticmethod
    def forward(ctx: Any, v: torch.Tensor, sigma_t: torch.Tensor, sigma_mu_t: torch.Tensor,
                rev_and_w: torch.Tensor, buffers: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        activation = torch.mul(v[None], sigma_t[:, None, :])
        activation.sub_(sigma_mu_t[:, None, :]).sigmoid_()
        ctx.save_for_backward(v, sigma_t, rev_and_w, activation)
        ctx.buffers = buffers
        return torch.bmm(activation, rev_and_w)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        v, sigma_t, rev_and_w, activation = ctx.saved_tensors
        slope, product = ctx.buffers
        # contiguous small operands keep bmm on its batched kernel (strided ones fall back to a loop of copies)
        grad = grad.contiguous()
        grad_rev_and_w = torch.bmm(grad.transpose(1, 2).contiguous(), activation).transpose(1, 2)
        torch.bmm(grad, rev_and_w.transpose(1, 2), out=slope)
        torch.ops.aten.sigmoid_backward.grad_input(slope, activation, grad_input=slope)
        grad_sigma_mu_t = -slope.sum(1)
        torch.mul(slope, v[None], out=product)
        grad_sigma_t = product.sum(1)
        torch.mul(slope, sigma_t[:, None, :], out=product)
        grad_v = product.sum(0)
        return grad_v, grad_sigma_t, grad_sigma_mu_t, grad_rev_and_w, None


def _fused_synapse_sums(batch: int, units: int, like: torch.Tensor) -> Any:
    """A ``synapse_sums(terms, v)`` for one sequence, with its two ``(units, batch, units)`` backward buffers."""
    buffers = (like.new_empty(units, batch, units), like.new_empty(units, batch, units))

    def synapse_sums(terms: Any, v: torch.Tensor) -> torch.Tensor:
        return _SynapseSums.apply(v, terms.sigma_t, terms.sigma_mu_t, terms.rev_and_w, buffers)

    return synapse_sums


class LTCModule(nn.Module):
    """An LTC network as a ``torch.nn.Module``: ``forward(inputs, state=None, timespans=None) -> (outputs, state)``.

    Parameters carry ncps' names (``gleak``, ``sensory_mu``, ...); masks are buffers. With
    ``positive`` (ncps' ``implicit_param_constraints``) the positive parameters pass through
    softplus, so no clipping after optimiser steps is needed.
    """

    _ARRAYS = ("gleak", "vleak", "cm", "w", "sigma", "mu", "erev", "sensory_w", "sensory_sigma", "sensory_mu",
               "sensory_erev", "input_w", "input_b", "output_w", "output_b")

    def __init__(self, weights: LTCWeights):
        super().__init__()
        for name in self._ARRAYS:
            value = getattr(weights, name)
            if value is not None:
                self.register_parameter(name, parameter(value))
        self.register_buffer("mask", torch.tensor(weights.mask, dtype=torch.float32))
        self.register_buffer("sensory_mask", torch.tensor(weights.sensory_mask, dtype=torch.float32))
        self._settings = {field.name: getattr(weights, field.name) for field in fields(LTCWeights)
                          if field.name in ("motor", "ode_unfolds", "epsilon", "positive")}
        self._present = [name for name in self._ARRAYS if getattr(weights, name) is not None]
        self.n_in = weights.n_in
        self.state_size = weights.units

    def weights(self) -> LTCWeights:
        """The current parameters as an :class:`LTCWeights` of tensors (gradients flow through it)."""
        arrays: dict[str, Any] = {name: getattr(self, name) for name in self._present}
        return LTCWeights(mask=self.mask, sensory_mask=self.sensory_mask, **arrays, **self._settings)

    def forward(self, inputs: torch.Tensor, state: torch.Tensor | None = None,
                timespans: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        check_sequence("LTCModule", self.n_in, inputs, timespans)
        if state is None:
            state = inputs.new_zeros(inputs.shape[0], self.state_size)
        sums = _fused_synapse_sums(inputs.shape[0], self.state_size, state)
        return ltc_sequence(torch, self.weights(), inputs, state, timespans, synapse_sums=sums)
