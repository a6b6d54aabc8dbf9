"""Closed-form continuous-time (CfC) networks (Hasani et al. 2022), written once for numpy and torch.

Every equation lives in one array function that takes the array namespace ``xp`` (``numpy`` or
``torch``) as its first argument, so the numpy reference, the torch module used for training
(:mod:`ranvier.train.cfc`) and the engine population run the same code. Weights are small frozen
dataclasses of arrays; :class:`CfC` holds them as float32 numpy arrays, the torch module rebuilds
the same dataclasses from its parameters.

:func:`cfc_step` advances a network one step, ``(xp, weights, x_t, state, elapsed) -> (output,
new_state)``; :func:`cfc_sequence` runs a whole sequence. ``elapsed`` is the time the step covers in
the model's own time unit: ncps trains with ``timespans`` defaulting to 1 per sample, so a model
trained that way expects ``elapsed = 1`` per input sample.

This module never imports torch; the ``xp`` passed in decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError
from .arrays import contiguous, sigmoid, time_steps, unroll
from .liquid import LiquidModel
from .ncps_import import cfc_arrays

#: CfC modes of ncps 1.0.1 (``ncps.torch.CfCCell``): gated interpolation, ungated sum, direct solution.
CFC_MODES = ("default", "no_gate", "pure")
#: Backbone activations whose definitions numpy and torch share (ncps also offers GELU, which needs erf).
CFC_ACTIVATIONS = ("lecun_tanh", "tanh", "relu", "silu")


def _split_columns(xp: Any, x: Any, sizes: Sequence[int]) -> list:
    """``x`` cut into column blocks of ``sizes``; torch's split, whose backward pass is one concatenation.

    A tuple is taken as the blocks already cut (a caller that cuts a whole sequence's buffer at once)."""
    if isinstance(x, tuple):
        return list(x)
    if xp is not np:
        return list(x.split(list(sizes), dim=-1))
    blocks, start = [], 0
    for size in sizes:
        blocks.append(x[..., start:start + size])
        start += size
    return blocks


def _into(result: Any, out: Any) -> Any:
    """``result``, or ``result`` copied into ``out`` where one is given."""
    if out is None:
        return result
    out[...] = result
    return out


def _lerp(xp: Any, start: Any, end: Any, weight: Any, out: Any = None) -> Any:
    """``start + weight (end - start)``, as torch's single lerp op where there is one."""
    if xp is not np:
        return xp.lerp(start, end, weight, out=out)
    return _into(start + weight * (end - start), out)


def _is_one(x: Any) -> bool:
    return isinstance(x, (int, float)) and x == 1


def _activation(xp: Any, name: str, x: Any, out: Any = None) -> Any:
    """Backbone nonlinearity; ``lecun_tanh`` is ``1.7159 tanh(0.666 x)`` (LeCun et al. 1998, as in ncps).

    ``out`` (optional, may be ``x`` itself) receives the result."""
    if name == "lecun_tanh":
        return _into(1.7159 * xp.tanh(0.666 * x), out)
    if name == "tanh":
        return xp.tanh(x, out=out)
    if name == "relu":
        return _into(0.5 * (x + xp.abs(x)), out)
    return _into(x * sigmoid(xp, x), out)  # silu


@dataclass(frozen=True)
class CfCLayer:
    """Weights of one CfC cell (one layer of a wired CfC, or the whole unwired cell).

    ``backbone`` holds ``(weight, bias)`` pairs, torch ``nn.Linear`` layout ``(out, in)``; the first
    takes the concatenation ``[x, h]``. ``head_weight`` stacks the rows of the heads ``ff1, ff2,
    time_a, time_b`` (modes ``default``/``no_gate``) or ``ff1`` alone (``pure``); ``head_mask``
    (same shape, or None) is a wired layer's sparsity mask on ``ff1``/``ff2`` (ones on the time
    heads). ``w_tau`` and ``a`` are the ``pure`` mode's per-unit parameters.
    """

    n_in: int
    units: int
    mode: str
    activation: str
    backbone: tuple[tuple[Any, Any], ...]
    head_weight: Any
    head_bias: Any
    head_mask: Any = None
    w_tau: Any = None
    a: Any = None


@dataclass(frozen=True)
class CfCWeights:
    """A CfC network: its layers in order (one unless wired) and an optional linear projection ``(W, b)``."""

    layers: tuple[CfCLayer, ...]
    projection: tuple[Any, Any] | None = None


@dataclass(frozen=True)
class CfCTerms:
    """A layer's weights arranged for stepping, computed once per sequence: the first affine map split into
    its input part ``w_x`` and recurrent part ``w_h`` (both transposed), masks applied."""

    layer: CfCLayer
    activation: str
    w_x: Any  # (n_in, features)
    w_h: Any  # (units, features)
    bias: Any
    hidden: tuple[tuple[Any, Any], ...]  # further backbone layers, transposed
    head_w: Any  # (backbone units, heads), transposed; None when the heads are the first map
    head_b: Any
    decay: Any  # |w_tau| (pure mode)
    unit_time: bool  # elapsed is 1: the two time heads are one, (W_a + W_b) / 2


def _affine(xp: Any, bias: Any, x: Any, weight_t: Any, out: Any = None) -> Any:
    """``bias + x @ weight_t``, as torch's fused addmm where there is one; ``out`` receives it if given."""
    if xp is not np and x.dim() == 2:
        return xp.addmm(bias, x, weight_t, out=out)
    return _into(bias + x @ weight_t, out)


def cfc_terms(xp: Any, layer: CfCLayer, unit_time: bool) -> CfCTerms:
    """Arrange a layer's weights for stepping. The time heads are halved, so that one tanh gives the gate,
    ``sigmoid(u) = (1 + tanh(u / 2)) / 2``; with ``unit_time`` they are also summed into one head."""
    heads = layer.head_weight if layer.head_mask is None else layer.head_weight * layer.head_mask
    head_bias = layer.head_bias
    if layer.mode != "pure":
        n = layer.units
        features, time_a, time_b = heads[: 2 * n], heads[2 * n: 3 * n] * 0.5, heads[3 * n:] * 0.5
        bias_features, bias_a, bias_b = head_bias[: 2 * n], head_bias[2 * n: 3 * n] * 0.5, head_bias[3 * n:] * 0.5
        if unit_time:
            heads = xp.concatenate([features, time_a + time_b])
            head_bias = xp.concatenate([bias_features, bias_a + bias_b])
        else:
            heads = xp.concatenate([features, time_a, time_b])
            head_bias = xp.concatenate([bias_features, bias_a, bias_b])
    first, first_bias = layer.backbone[0] if layer.backbone else (heads, head_bias)
    activation = layer.activation
    inner = outer = 1.0
    if layer.backbone and activation == "lecun_tanh":
        # 1.7159 tanh(0.666 u): the two scales move into the affine maps around it, leaving one tanh per layer
        activation, inner, outer = "tanh", 0.666, 1.7159
    first_t = first.T * inner if layer.backbone else first.T
    # row-major copies, once per sequence: torch's per-step matmuls run a third faster on them than on
    # the transposed views
    return CfCTerms(
        layer=layer, activation=activation, w_x=contiguous(first_t[: layer.n_in]),
        w_h=contiguous(first_t[layer.n_in:]), bias=first_bias * inner if layer.backbone else first_bias,
        hidden=tuple((contiguous(weight.T * (inner * outer)), bias * inner) for weight, bias in layer.backbone[1:]),
        head_w=contiguous(heads.T * outer) if layer.backbone else None, head_b=head_bias,
        decay=xp.abs(layer.w_tau) if layer.mode == "pure" else None, unit_time=unit_time)


def cfc_input_drive(xp: Any, terms: CfCTerms, x: Any) -> Any:
    """The part of the layer's first affine map that depends only on the input: ``W_x x + b``.

    It does not depend on ``h``, so a sequence computes it for all time steps in one matmul.
    """
    return x @ terms.w_x + terms.bias


def cfc_heads(xp: Any, terms: CfCTerms, drive: Any, h: Any, out: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
    """The matmul half of a CfC step: ``(backbone, heads)`` from the input drive (:func:`cfc_input_drive`) and ``h``.

    ``backbone`` is the last backbone layer's activation (None for a wired layer, whose heads see
    ``[x, h]`` directly); ``heads`` the head pre-activations for mode ``pure`` and without unit
    elapsed time, and with unit elapsed time their tanh: ``[f1, f2, tanh(u_gate / 2)]``, the gate head
    being already halved and summed by :func:`cfc_terms`. :func:`cfc_mix` finishes the step;
    :func:`cfc_recurrent` is the two in a row. The torch module's hand-written backward pass keeps
    both outputs of every step instead of recomputing them, written straight into its buffers ``out``
    (``(backbone, heads)`` arrays of the outputs' shapes; the backbone one is ignored without a backbone).
    """
    backbone_out, heads_out = (None, None) if out is None else out
    if terms.head_w is None:
        backbone = None
        z = _affine(xp, drive, h, terms.w_h, heads_out)
    else:
        last = len(terms.hidden)
        z = _affine(xp, drive, h, terms.w_h, backbone_out if last == 0 else None)
        z = _activation(xp, terms.activation, z, z if last == 0 and out is not None else None)
        for index, (weight_t, bias) in enumerate(terms.hidden, 1):
            z = _activation(xp, terms.activation, _affine(xp, bias, z, weight_t),
                            backbone_out if index == last else None)
        backbone = z
        z = _affine(xp, terms.head_b, z, terms.head_w, heads_out)
    if terms.unit_time and terms.layer.mode != "pure":
        # one tanh serves f1, f2 and the gate; every op saved here is saved twice per step, forward and
        # backward, and per-op overhead dominates at these sizes
        z = xp.tanh(z, out=heads_out)
    return backbone, z


def cfc_mix(xp: Any, terms: CfCTerms, heads: Any, elapsed: Any, out: Any = None) -> Any:
    """The elementwise half of a CfC step: the new hidden state from :func:`cfc_heads`' ``heads`` (into ``out``).

    ``heads`` may also be given as the tuple of its column blocks (``f1, f2, gate`` with unit elapsed time)."""
    layer = terms.layer
    n = layer.units
    if layer.mode == "pure":
        return _into(layer.a - layer.a * xp.exp(-elapsed * (terms.decay + xp.abs(heads))) * heads, out)
    if terms.unit_time:
        f1, f2, gate_tanh = _split_columns(xp, heads, (n, n, n))
    else:
        features, time_a, time_b = _split_columns(xp, heads, (2 * n, n, n))
        f1, f2 = _split_columns(xp, xp.tanh(features), (n, n))
        gate_tanh = xp.tanh(time_a * elapsed + time_b)
    if layer.mode == "no_gate":
        return _into(f1 + (gate_tanh * 0.5 + 0.5) * f2, out)
    # f1 + g (f2 - f1) with g = (1 + gt) / 2 is (f1 + f2) / 2 + gt (f2 - (f1 + f2) / 2): two lerps, no scalar ops
    return _lerp(xp, _lerp(xp, f1, f2, 0.5), f2, gate_tanh, out)


def cfc_recurrent(xp: Any, terms: CfCTerms, drive: Any, h: Any, elapsed: Any) -> Any:
    """New hidden state of a CfC layer from its input drive (:func:`cfc_input_drive`) and ``h``.

    Hasani et al. (2022), "Closed-form continuous-time neural networks", Nat. Mach. Intell. 4,
    the CfC cell as ncps 1.0.1 implements it (``ncps.torch.CfCCell``). With ``z = backbone([x, h])``
    (affine maps each followed by the backbone activation; none for a wired layer, whose heads see
    ``[x, h]`` directly)::

        f1 = tanh(W_1 z + b_1),  f2 = tanh(W_2 z + b_2)
        g  = sigmoid((W_a z + b_a) * elapsed + (W_b z + b_b))           # time gate
        default:  h' = f1 (1 - g) + g f2
        no_gate:  h' = f1 + g f2
        pure:     h' = a - a exp(-elapsed (|w_tau| + |u|)) u,  u = W_1 z + b_1   (the direct solution)

    A wired layer's sparsity mask multiplies ``W_1`` and ``W_2``. ``elapsed`` is the step's duration
    in the model's time unit: a number or a ``(batch, 1)`` array. The step is :func:`cfc_heads`
    (the matmuls) followed by :func:`cfc_mix` (the elementwise rest).
    """
    return cfc_mix(xp, terms, cfc_heads(xp, terms, drive, h)[1], elapsed)


def _cfc_layers_step(xp: Any, weights: CfCWeights, terms: Sequence[CfCTerms], drive0: Any, state: Any,
                     elapsed: Any) -> tuple[Any, Any]:
    """Advance every layer one step; layer 0 gets its precomputed drive, layer l > 0 the new h of l - 1."""
    new_states = []
    signal = None
    states = [state] if len(terms) == 1 else _split_columns(xp, state, [t.layer.units for t in terms])
    for index, (layer_terms, h) in enumerate(zip(terms, states, strict=True)):
        drive = drive0 if index == 0 else cfc_input_drive(xp, layer_terms, signal)
        signal = cfc_recurrent(xp, layer_terms, drive, h, elapsed)
        new_states.append(signal)
    new_state = new_states[0] if len(new_states) == 1 else xp.concatenate(new_states, 1)
    output = signal
    if weights.projection is not None:
        output = output @ weights.projection[0].T + weights.projection[1]
    return output, new_state


def cfc_step(xp: Any, weights: CfCWeights, x_t: Any, state: Any, elapsed: Any) -> tuple[Any, Any]:
    """Advance a CfC network one step: ``(output, new_state)`` from input ``x_t`` ``(batch, n_in)``.

    ``state`` ``(batch, units)`` concatenates the layers' hidden states; the output is the last
    layer's new state (a wired network's motor neurons), through the projection if there is one.
    """
    terms = [cfc_terms(xp, layer, _is_one(elapsed)) for layer in weights.layers]
    return _cfc_layers_step(xp, weights, terms, cfc_input_drive(xp, terms[0], x_t), state, elapsed)


def cfc_sequence(xp: Any, weights: CfCWeights, inputs: Any, state: Any, timespans: Any = None) -> tuple[Any, Any]:
    """Run a CfC network over ``inputs`` ``(batch, T, n_in)``; return outputs ``(batch, T, out)`` and the last state.

    ``timespans`` ``(batch, T)`` gives each step's ``elapsed`` (1 when None). Weights are arranged
    once, and the first layer's input drive is computed for all steps at once, outside the loop.
    """
    terms = [cfc_terms(xp, layer, timespans is None) for layer in weights.layers]
    drives = time_steps(cfc_input_drive(xp, terms[0], inputs))
    return unroll(xp, drives, lambda drive, h, elapsed: _cfc_layers_step(xp, weights, terms, drive, h, elapsed),
                  state, timespans)


class CfC(LiquidModel):
    """Closed-form continuous-time network (Hasani et al. 2022): weights, a numpy forward pass, a population.

    Build it from a trained ``ncps.torch.CfC`` with :meth:`from_ncps`, or from a :class:`CfCWeights`.
    The equations are in :func:`cfc_recurrent`; :class:`ranvier.train.CfCModule` trains the same
    function in torch (``CfCModule(model.weights)``).
    """

    _sequence = staticmethod(cfc_sequence)

    def __init__(self, weights: CfCWeights):
        for layer in weights.layers:
            if layer.mode not in CFC_MODES:
                raise ModelError(f"CfC: mode {layer.mode!r} is not one of {CFC_MODES}")
            if layer.activation not in CFC_ACTIVATIONS:
                raise ModelError(f"CfC: activation {layer.activation!r} is not one of {CFC_ACTIVATIONS}")
        super().__init__()
        self.weights = weights

    @property
    def n_in(self) -> int:
        return self.weights.layers[0].n_in

    @property
    def state_size(self) -> int:
        return sum(layer.units for layer in self.weights.layers)

    @property
    def output_size(self) -> int:
        if self.weights.projection is not None:
            return int(self.weights.projection[0].shape[0])
        return self.weights.layers[-1].units

    def __repr__(self) -> str:
        return f"CfC(n_in={self.n_in}, units={self.state_size}, mode={self.weights.layers[0].mode!r})"

    @classmethod
    def from_ncps(cls, module: Any) -> CfC:
        """Copy the weights of an ``ncps.torch.CfC`` (plain or wired, any mode, optional ``proj_size``)."""
        layers, projection = cfc_arrays(module)
        return cls(CfCWeights(layers=tuple(CfCLayer(**layer) for layer in layers), projection=projection))

    @staticmethod
    def _arrange(weights: CfCWeights, unit_time: bool) -> list[CfCTerms]:
        return [cfc_terms(np, layer, unit_time) for layer in weights.layers]

    @staticmethod
    def _step(xp: Any, weights: CfCWeights, terms: list[CfCTerms], x: Any, h: Any, elapsed: float) -> tuple[Any, Any]:
        return _cfc_layers_step(xp, weights, terms, cfc_input_drive(xp, terms[0], x), h, elapsed)
