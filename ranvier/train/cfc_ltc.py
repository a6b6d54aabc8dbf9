"""Trainable torch modules for CfC and LTC networks, running the shared cell functions of ranvier.neurons.cfc_ltc.

The modules hold the weights of a :class:`~ranvier.neurons.cfc_ltc.CfCWeights` /
:class:`~ranvier.neurons.cfc_ltc.LTCWeights` as parameters, rebuild the dataclass from them on
each forward pass and call the same functions the numpy forward pass uses, with ``xp = torch``.
Speed over ncps comes from that code's structure (fused heads, input terms computed for the
whole sequence before the loop, one batched matmul for both LTC conductance sums) and from two
hand-written backward passes, each tested against ncps' autograd: the LTC recurrent synapse
sums (:class:`_SynapseSums`) and a one-layer CfC sequence (:class:`_CfCSequence`, whose forward
pass is the shared :func:`~ranvier.neurons.cfc_ltc.cfc_heads` and
:func:`~ranvier.neurons.cfc_ltc.cfc_mix`, the two halves of ``cfc_recurrent``). Every other configuration
runs plain autograd through the shared functions.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..neurons.cfc_ltc import (
    CfCLayer,
    CfCWeights,
    LTCWeights,
    _cfc_terms,
    cfc_heads,
    cfc_mix,
    cfc_sequence,
    ltc_sequence,
)


def _check(module: str, n_in: int, inputs: torch.Tensor, timespans: torch.Tensor | None) -> None:
    if inputs.dim() != 3 or inputs.shape[-1] != n_in or inputs.shape[1] == 0:
        raise InputError(f"{module}: inputs must have shape (batch, T >= 1, {n_in}); got {tuple(inputs.shape)}")
    # any NaN or infinity makes the float64 sum non-finite: one reduction, where an elementwise isfinite costs more
    # than a CfC forward step; the elementwise check runs only to rule out an overflowing sum of finite values
    if not bool(torch.isfinite(inputs.sum(dtype=torch.float64))) and not bool(torch.isfinite(inputs).all()):
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


class _CfCSequence(torch.autograd.Function):
    """A one-layer CfC over a whole sequence with a hand-written backward pass through time.

    The forward pass is :func:`~ranvier.neurons.cfc_ltc.cfc_heads` then
    :func:`~ranvier.neurons.cfc_ltc.cfc_mix` (the two halves of ``cfc_recurrent``), step by step,
    outside autograd; it keeps every step's backbone activation ``a = tanh(drive + h_{t-1} W_h)``
    and head activations ``u = tanh(a W + b)``, so the backward pass recomputes nothing and needs
    only the recursion through ``h``::

        dz_t  = c_t * dh_t                    c = dh/dz from u: (1 - g)(1 - f1^2), g (1 - f2^2), (f2 - f1)(1 - gt^2) / 2
        da_t  = (dz_t W^T) (1 - a_t^2)
        dh_{t-1} = dL/dh_{t-1} (from the output) + da_t W_h^T

    with ``gt`` the gate's tanh (``g = (1 + gt) / 2``; ``no_gate`` uses ``c = 1 - f1^2, g (1 - f2^2),
    f2 (1 - gt^2) / 2``). The forward pass writes the activations into preallocated ``(T, batch, .)``
    buffers. The backward pass works in chunks of ``_CHUNK`` steps: ``c`` for the chunk is one fused
    ``tanh_backward`` over the stored heads (times ``2 dh/du``; the 2 is taken out again by a halved
    ``W``, exactly), ``(1 - a^2)`` is applied per step by ``tanh_backward`` against the stored ``a``,
    and the weight gradients are one matmul each per chunk.
    """

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor, h0: torch.Tensor, w_x: torch.Tensor, w_h: torch.Tensor,
                bias: torch.Tensor, head_w: torch.Tensor, head_b: torch.Tensor, terms: Any) -> torch.Tensor:
        steps, batch, n = inputs.shape[1], h0.shape[0], h0.shape[1]
        # every step writes into slices of these (no per-step allocations, no stacking afterwards); the input
        # drives of all steps, one addmm, go time-major into the backbone buffer, where each step's backbone
        # matmul accumulates onto its own drive
        states = h0.new_empty(steps, batch, n)
        backbones = h0.new_empty(steps, batch, w_h.shape[1])
        heads = h0.new_empty(steps, batch, head_w.shape[1])
        torch.addmm(bias, inputs.transpose(0, 1).reshape(steps * batch, -1), w_x, out=backbones.view(steps * batch, -1))
        # each step's f1, f2 and gate columns, cut from the buffer once rather than split at every step
        blocks = zip(*(block.unbind(0) for block in heads.view(steps, batch, 3, n).unbind(2)), strict=True)
        h = h0
        for h_out, backbone_out, heads_out, head_blocks in zip(states.unbind(0), backbones.unbind(0),
                                                               heads.unbind(0), blocks, strict=True):
            cfc_heads(torch, terms, backbone_out, h, out=(backbone_out, heads_out))
            h = cfc_mix(torch, terms, head_blocks, 1.0, out=h_out)
        ctx.save_for_backward(inputs, h0, w_x, w_h, head_w, states, backbones, heads)
        ctx.mode = terms.layer.mode
        return states.transpose(0, 1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_states: torch.Tensor) -> tuple:
        inputs, h0, w_x, w_h, head_w, states, backbones, heads = ctx.saved_tensors
        steps, batch, n = states.shape
        x = inputs.transpose(0, 1)
        grad_out = grad_states.transpose(0, 1).unbind(0)
        head_w_t, w_h_t = (head_w.t() * 0.5).contiguous(), w_h.t().contiguous()
        one = head_w.new_ones(())
        tanh_backward = torch.ops.aten.tanh_backward.grad_input
        grads = [torch.zeros_like(w) for w in (w_x, w_h, head_w)]
        grad_bias = w_h.new_zeros(w_h.shape[1])
        grad_head_b = w_h.new_zeros(head_w.shape[1])
        grad_inputs = x.new_empty(x.shape)
        grad_h = grad_out[steps - 1]
        carry = h0
        # chunks of steps keep the temporaries small enough to stay in cache and in the allocator's reuse
        for stop in range(steps, 0, -_CHUNK):
            start = max(0, stop - _CHUNK)
            count = stop - start
            rows = count * batch
            a = backbones[start:stop].view(rows, -1)
            u = heads[start:stop].view(rows, 3, n)
            f1, f2, gate_tanh = u.unbind(1)
            # twice dz/du: default [1 - g_t, 1 + g_t, f2 - f1], no_gate [2, 1 + g_t, f2]; the factor 2 is
            # undone by the halved head_w_t and the final scale of the head gradients (both exact)
            factor = u.new_empty(rows, 3, n)
            if ctx.mode == "no_gate":
                factor[:, 0].fill_(2.0)
                factor[:, 2].copy_(f2)
            else:
                torch.sub(one, gate_tanh, out=factor[:, 0])
                torch.sub(f2, f1, out=factor[:, 2])
            torch.add(gate_tanh, one, out=factor[:, 1])
            slopes = tanh_backward(factor, u, grad_input=factor).view(count, batch, 3, n).unbind(0)
            a_steps = a.view(count, batch, -1).unbind(0)
            grad_z = a.new_empty(count, batch, 3, n)
            grad_pre = a.new_empty(count, batch, a.shape[1])
            grad_zs, grad_z_rows = grad_z.unbind(0), grad_z.view(count, batch, 3 * n).unbind(0)
            grad_pres = grad_pre.unbind(0)
            for t in range(count - 1, -1, -1):
                torch.mul(slopes[t], grad_h.view(batch, 1, n), out=grad_zs[t])
                tanh_backward(grad_z_rows[t] @ head_w_t, a_steps[t], grad_input=grad_pres[t])
                if start + t > 0:  # the output's gradient and the recurrent one, in one addmm
                    grad_h = torch.addmm(grad_out[start + t - 1], grad_pres[t], w_h_t)
                else:
                    carry = grad_pres[t] @ w_h_t
            grad_z = grad_z.view(rows, 3 * n)
            grad_pre = grad_pre.view(rows, -1)
            previous = states[start - 1:stop - 1] if start > 0 else torch.cat([h0[None], states[:stop - 1]], 0)
            grads[0].addmm_(x[start:stop].reshape(rows, -1).t(), grad_pre)
            grads[1].addmm_(previous.reshape(rows, n).t(), grad_pre)
            grads[2].addmm_(a.t(), grad_z)
            grad_bias += grad_pre.sum(0)
            grad_head_b += grad_z.sum(0)
            torch.mm(grad_pre, w_x.t(), out=grad_inputs[start:stop].view(rows, -1))
        return (grad_inputs.transpose(0, 1), carry, grads[0], grads[1], grad_bias, grads[2].mul_(0.5),
                grad_head_b.mul_(0.5), None)


#: time steps per chunk of the CfC backward pass (64 x 20 rows of temporaries: about 1 MB, within L2)
_CHUNK = 20


def _fast_cfc_path(weights: CfCWeights, timespans: torch.Tensor | None) -> bool:
    """Whether :class:`_CfCSequence` covers this network: one unwired layer with one tanh backbone layer
    (LeCun tanh folds into tanh), mode default or no_gate, unit elapsed time."""
    if timespans is not None or len(weights.layers) != 1:
        return False
    layer = weights.layers[0]
    return (len(layer.backbone) == 1 and layer.activation in ("lecun_tanh", "tanh")
            and layer.mode in ("default", "no_gate"))


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
        weights = self.weights()
        if not (torch.is_grad_enabled() and _fast_cfc_path(weights, timespans)):
            return cfc_sequence(torch, weights, inputs, state, timespans)
        terms = _cfc_terms(torch, weights.layers[0], True)
        states = _CfCSequence.apply(inputs, state, terms.w_x, terms.w_h, terms.bias, terms.head_w, terms.head_b,
                                    terms)
        outputs = states
        if weights.projection is not None:
            outputs = outputs @ weights.projection[0].T + weights.projection[1]
        return outputs, states[:, -1]


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
