"""Trainable torch modules for CfC and LTC networks, running the shared cell functions of ranvier.neurons.cfc_ltc.

The modules hold the weights of a :class:`~ranvier.neurons.cfc_ltc.CfCWeights` /
:class:`~ranvier.neurons.cfc_ltc.LTCWeights` as parameters, rebuild the dataclass from them on
each forward pass and call the same sequence function the numpy forward pass uses, with
``xp = torch``. Speed over ncps comes from that function's structure (fused heads, input terms
computed for the whole sequence before the loop, one batched matmul for both LTC conductance
sums), not from a second copy of the equations.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..neurons.cfc_ltc import CfCLayer, CfCWeights, LTCWeights, cfc_sequence, ltc_sequence


def _check(module: str, n_in: int, inputs: torch.Tensor, timespans: torch.Tensor | None) -> None:
    if inputs.dim() != 3 or inputs.shape[-1] != n_in:
        raise InputError(f"{module}: inputs must have shape (batch, T, {n_in}); got {tuple(inputs.shape)}")
    if not bool(torch.isfinite(inputs).all()):
        raise InputError(f"{module}: inputs contain NaN or infinite values")
    if timespans is not None and tuple(timespans.shape) != tuple(inputs.shape[:2]):
        raise InputError(f"{module}: timespans must have shape {tuple(inputs.shape[:2])}; "
                         f"got {tuple(timespans.shape)}")


class _SynapseSums(torch.autograd.Function):
    """:func:`~ranvier.neurons.cfc_ltc.ltc_synapse_sums` with a hand-written backward pass.

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


def _parameter(array: np.ndarray) -> nn.Parameter:
    return nn.Parameter(torch.tensor(np.asarray(array, dtype=np.float32)))


class CfCModule(nn.Module):
    """A CfC network as a ``torch.nn.Module``: ``forward(inputs, state=None, timespans=None) -> (outputs, state)``.

    ``inputs`` is ``(batch, T, n_in)`` (batch first, as ncps' default); outputs ``(batch, T, out)``.
    Masks of wired layers are buffers, so training keeps the wiring.
    """

    def __init__(self, weights: CfCWeights):
        super().__init__()
        self._layer_meta = []
        for index, layer in enumerate(weights.layers):
            prefix = f"layer{index}_"
            for k, (weight, bias) in enumerate(layer.backbone):
                self.register_parameter(f"{prefix}backbone{k}_weight", _parameter(weight))
                self.register_parameter(f"{prefix}backbone{k}_bias", _parameter(bias))
            self.register_parameter(prefix + "head_weight", _parameter(layer.head_weight))
            self.register_parameter(prefix + "head_bias", _parameter(layer.head_bias))
            if layer.head_mask is not None:
                self.register_buffer(prefix + "head_mask", torch.tensor(layer.head_mask, dtype=torch.float32))
            if layer.mode == "pure":
                self.register_parameter(prefix + "w_tau", _parameter(layer.w_tau))
                self.register_parameter(prefix + "a", _parameter(layer.a))
            self._layer_meta.append((layer.n_in, layer.units, layer.mode, layer.activation, len(layer.backbone),
                                     layer.head_mask is not None))
        if weights.projection is not None:
            self.projection = nn.Linear(*weights.projection[0].shape[::-1])
            with torch.no_grad():
                self.projection.weight.copy_(torch.tensor(weights.projection[0]))
                self.projection.bias.copy_(torch.tensor(weights.projection[1]))
        else:
            self.projection = None
        self.n_in = weights.layers[0].n_in
        self.state_size = sum(layer.units for layer in weights.layers)

    def weights(self) -> CfCWeights:
        """The current parameters as a :class:`CfCWeights` of tensors (gradients flow through it)."""
        layers = []
        for index, (n_in, units, mode, activation, n_backbone, masked) in enumerate(self._layer_meta):
            prefix = f"layer{index}_"
            get = self.__getattr__
            layers.append(CfCLayer(
                n_in=n_in, units=units, mode=mode, activation=activation,
                backbone=tuple((get(f"{prefix}backbone{k}_weight"), get(f"{prefix}backbone{k}_bias"))
                               for k in range(n_backbone)),
                head_weight=get(prefix + "head_weight"), head_bias=get(prefix + "head_bias"),
                head_mask=get(prefix + "head_mask") if masked else None,
                w_tau=get(prefix + "w_tau") if mode == "pure" else None,
                a=get(prefix + "a") if mode == "pure" else None))
        projection = None if self.projection is None else (self.projection.weight, self.projection.bias)
        return CfCWeights(layers=tuple(layers), projection=projection)

    def forward(self, inputs: torch.Tensor, state: torch.Tensor | None = None,
                timespans: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        _check("CfCModule", self.n_in, inputs, timespans)
        if state is None:
            state = inputs.new_zeros(inputs.shape[0], self.state_size)
        return cfc_sequence(torch, self.weights(), inputs, state, timespans)


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
                self.register_parameter(name, _parameter(value))
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
        _check("LTCModule", self.n_in, inputs, timespans)
        if state is None:
            state = inputs.new_zeros(inputs.shape[0], self.state_size)
        sums = _fused_synapse_sums(inputs.shape[0], self.state_size, state)
        return ltc_sequence(torch, self.weights(), inputs, state, timespans, synapse_sums=sums)
