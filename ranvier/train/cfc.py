"""A trainable torch module for CfC networks, running the shared step functions of :mod:`ranvier.neurons.cfc`.

:class:`CfCModule` holds the weights of a :class:`~ranvier.neurons.cfc.CfCWeights` as parameters,
rebuilds the dataclass from them on each forward pass and calls the same functions the numpy
forward pass uses, with ``xp = torch``. Speed over ncps comes from that code's structure (fused
heads, the input drive computed for the whole sequence before the loop) and from a hand-written
backward pass for a one-layer CfC sequence (:class:`_CfCSequence`, whose forward pass is the shared
:func:`~ranvier.neurons.cfc.cfc_heads` and :func:`~ranvier.neurons.cfc.cfc_mix`, the two halves of
``cfc_recurrent``), tested against ncps' autograd. Every other configuration runs plain autograd
through the shared functions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..neurons.cfc import CfCLayer, CfCWeights, cfc_heads, cfc_mix, cfc_sequence, cfc_terms
from .liquid import check_sequence, parameter


class _CfCSequence(torch.autograd.Function):
    """A one-layer CfC over a whole sequence with a hand-written backward pass through time.

    The forward pass is :func:`~ranvier.neurons.cfc.cfc_heads` then
    :func:`~ranvier.neurons.cfc.cfc_mix` (the two halves of ``cfc_recurrent``), step by step,
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
                self.register_parameter(f"{prefix}backbone{k}_weight", parameter(weight))
                self.register_parameter(f"{prefix}backbone{k}_bias", parameter(bias))
            self.register_parameter(prefix + "head_weight", parameter(layer.head_weight))
            self.register_parameter(prefix + "head_bias", parameter(layer.head_bias))
            if layer.head_mask is not None:
                self.register_buffer(prefix + "head_mask", torch.tensor(layer.head_mask, dtype=torch.float32))
            if layer.mode == "pure":
                self.register_parameter(prefix + "w_tau", parameter(layer.w_tau))
                self.register_parameter(prefix + "a", parameter(layer.a))
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
        check_sequence("CfCModule", self.n_in, inputs, timespans)
        if state is None:
            state = inputs.new_zeros(inputs.shape[0], self.state_size)
        weights = self.weights()
        if not (torch.is_grad_enabled() and _fast_cfc_path(weights, timespans)):
            return cfc_sequence(torch, weights, inputs, state, timespans)
        terms = cfc_terms(torch, weights.layers[0], True)
        states = _CfCSequence.apply(inputs, state, terms.w_x, terms.w_h, terms.bias, terms.head_w, terms.head_b,
                                    terms)
        outputs = states
        if weights.projection is not None:
            outputs = outputs @ weights.projection[0].T + weights.projection[1]
        return outputs, states[:, -1]

