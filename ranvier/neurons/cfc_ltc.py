"""Closed-form continuous-time (CfC) and liquid time-constant (LTC) neurons, written once for numpy and torch.

Every equation lives in one array function that takes the array namespace ``xp`` (``numpy`` or
``torch``) as its first argument, so the numpy reference, the torch module used for training
(:mod:`ranvier.train.cfc_ltc`) and the engine's value populations run the same code. Weights are
small frozen dataclasses of arrays; the numpy classes :class:`CfC` and :class:`LTC` hold them as
float32 numpy arrays, the torch modules rebuild the same dataclasses from their parameters.

The per-step functions :func:`cfc_step` and :func:`ltc_step` have the signature the engine calls,
``(xp, weights, x_t, state, elapsed) -> (output, new_state)``. ``elapsed`` is the time the step
covers in the model's own time unit: ncps trains with ``timespans`` defaulting to 1 per sample,
so a model trained that way expects ``elapsed = 1`` per input sample.

This module never imports torch; the ``xp`` passed in decides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.model import ValueModel
from ..errors import InputError, ModelError

#: CfC modes of ncps 1.0.1 (``ncps.torch.CfCCell``): gated interpolation, ungated sum, direct solution.
CFC_MODES = ("default", "no_gate", "pure")
#: Backbone activations whose definitions numpy and torch share (ncps also offers GELU, which needs erf).
CFC_ACTIVATIONS = ("lecun_tanh", "tanh", "relu", "silu")
#: Input/output mappings of ``ncps.torch.LTCCell``: elementwise ``w * x + b``, ``w * x``, or none.
LTC_MAPPINGS = ("affine", "linear", "none")


def _sigmoid(xp: Any, x: Any) -> Any:
    """Logistic function; torch's fused kernel where there is one, else the overflow-free tanh form."""
    if hasattr(xp, "sigmoid"):
        return xp.sigmoid(x)
    return 0.5 * xp.tanh(0.5 * x) + 0.5


def _split_columns(xp: Any, x: Any, sizes: Sequence[int]) -> list:
    """``x`` cut into column blocks of ``sizes``; torch's split, whose backward pass is one concatenation.

    A tuple is taken as the blocks already cut (a caller that cuts a whole sequence's buffer at once)."""
    if isinstance(x, tuple):
        return list(x)
    if hasattr(x, "split"):
        return list(x.split(list(sizes), dim=-1))
    return np.split(x, np.cumsum(sizes)[:-1], axis=-1)


def _time_steps(x: Any) -> list:
    """``x[:, t]`` for every ``t``; torch's unbind, so the backward pass stacks once instead of once per step."""
    if hasattr(x, "unbind"):
        return list(x.unbind(1))
    return [x[:, t] for t in range(x.shape[1])]


def _into(result: Any, out: Any) -> Any:
    """``result``, or ``result`` copied into ``out`` where one is given."""
    if out is None:
        return result
    out[...] = result
    return out


def _lerp(xp: Any, start: Any, end: Any, weight: Any, out: Any = None) -> Any:
    """``start + weight (end - start)``, as torch's single lerp op where there is one."""
    if hasattr(xp, "lerp"):
        return xp.lerp(start, end, weight, out=out)
    return _into(start + weight * (end - start), out)


def _contiguous(x: Any) -> Any:
    """``x`` in row-major layout: torch's batched matmul falls back to a loop of copies on transposed operands,
    and elementwise results inherit their operands' layout."""
    return x.contiguous() if hasattr(x, "contiguous") else np.ascontiguousarray(x)


def _is_one(x: Any) -> bool:
    return isinstance(x, (int, float)) and x == 1


def _softplus(xp: Any, x: Any) -> Any:
    """``log(1 + e^x)`` written so neither library overflows: ``relu(x) + log1p(e^-|x|)``."""
    magnitude = xp.abs(x)
    return 0.5 * (x + magnitude) + xp.log1p(xp.exp(-magnitude))


def _activation(xp: Any, name: str, x: Any, out: Any = None) -> Any:
    """Backbone nonlinearity; ``lecun_tanh`` is ``1.7159 tanh(0.666 x)`` (LeCun et al. 1998, as in ncps).

    ``out`` (optional, may be ``x`` itself) receives the result."""
    if name == "lecun_tanh":
        return _into(1.7159 * xp.tanh(0.666 * x), out)
    if name == "tanh":
        return xp.tanh(x, out=out)
    if name == "relu":
        return _into(0.5 * (x + xp.abs(x)), out)
    return _into(x * _sigmoid(xp, x), out)  # silu


def _check_inputs(model: str, n_in: int, inputs: np.ndarray, timespans: np.ndarray | None) -> tuple:
    """Return ``inputs`` as float ``(batch, T, n_in)`` and ``timespans`` as ``(batch, T)`` or None."""
    array = np.asarray(inputs, dtype=np.float64)
    if array.ndim not in (2, 3) or array.shape[-1] != n_in or array.shape[-2] == 0:
        raise InputError(f"{model}: inputs must have shape (T, {n_in}) or (batch, T, {n_in}); got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{model}: inputs contain {np.count_nonzero(~np.isfinite(array))} NaN or infinite values")
    batched = array.reshape((-1,) + array.shape[-2:])
    if timespans is None:
        return batched, None
    spans = np.asarray(timespans, dtype=np.float64)
    if spans.size != batched.shape[0] * batched.shape[1]:
        raise InputError(f"{model}: timespans must hold one value per input sample {batched.shape[:2]}; "
                         f"got shape {spans.shape}")
    if not np.all(np.isfinite(spans) & (spans > 0)):
        raise InputError(f"{model}: timespans must be positive and finite; got {spans.ravel()[:8]}...")
    return batched, spans.reshape(batched.shape[:2])


# --------------------------------------------------------------------------------------------- CfC


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
class _CfCTerms:
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
    if hasattr(xp, "addmm") and x.dim() == 2:
        return xp.addmm(bias, x, weight_t, out=out)
    return _into(bias + x @ weight_t, out)


def _cfc_terms(xp: Any, layer: CfCLayer, unit_time: bool) -> _CfCTerms:
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
    return _CfCTerms(
        layer=layer, activation=activation, w_x=_contiguous(first_t[: layer.n_in]),
        w_h=_contiguous(first_t[layer.n_in:]), bias=first_bias * inner if layer.backbone else first_bias,
        hidden=tuple((_contiguous(weight.T * (inner * outer)), bias * inner) for weight, bias in layer.backbone[1:]),
        head_w=_contiguous(heads.T * outer) if layer.backbone else None, head_b=head_bias,
        decay=xp.abs(layer.w_tau) if layer.mode == "pure" else None, unit_time=unit_time)


def cfc_input_drive(xp: Any, terms: _CfCTerms, x: Any) -> Any:
    """The part of the layer's first affine map that depends only on the input: ``W_x x + b``.

    It does not depend on ``h``, so a sequence computes it for all time steps in one matmul.
    """
    return x @ terms.w_x + terms.bias


def cfc_heads(xp: Any, terms: _CfCTerms, drive: Any, h: Any, out: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
    """The matmul half of a CfC step: ``(backbone, heads)`` from the input drive (:func:`cfc_input_drive`) and ``h``.

    ``backbone`` is the last backbone layer's activation (None for a wired layer, whose heads see
    ``[x, h]`` directly); ``heads`` the head pre-activations for mode ``pure`` and without unit
    elapsed time, and with unit elapsed time their tanh: ``[f1, f2, tanh(u_gate / 2)]``, the gate head
    being already halved and summed by :func:`_cfc_terms`. :func:`cfc_mix` finishes the step;
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


def cfc_mix(xp: Any, terms: _CfCTerms, heads: Any, elapsed: Any, out: Any = None) -> Any:
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


def cfc_recurrent(xp: Any, terms: _CfCTerms, drive: Any, h: Any, elapsed: Any) -> Any:
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


def cfc_cell(xp: Any, layer: CfCLayer, x: Any, h: Any, elapsed: Any) -> Any:
    """One CfC layer step from input ``x`` ``(batch, n_in)`` and hidden state ``h`` ``(batch, units)``."""
    terms = _cfc_terms(xp, layer, _is_one(elapsed))
    return cfc_recurrent(xp, terms, cfc_input_drive(xp, terms, x), h, elapsed)


def _cfc_layers_step(xp: Any, weights: CfCWeights, terms: Sequence[_CfCTerms], drive0: Any, state: Any,
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
    terms = [_cfc_terms(xp, layer, _is_one(elapsed)) for layer in weights.layers]
    return _cfc_layers_step(xp, weights, terms, cfc_input_drive(xp, terms[0], x_t), state, elapsed)


def cfc_sequence(xp: Any, weights: CfCWeights, inputs: Any, state: Any, timespans: Any = None) -> tuple[Any, Any]:
    """Run a CfC network over ``inputs`` ``(batch, T, n_in)``; return outputs ``(batch, T, out)`` and the last state.

    ``timespans`` ``(batch, T)`` gives each step's ``elapsed`` (1 when None). Weights are arranged
    once, and the first layer's input drive is computed for all steps at once, outside the loop.
    """
    terms = [_cfc_terms(xp, layer, timespans is None) for layer in weights.layers]
    drives = _time_steps(cfc_input_drive(xp, terms[0], inputs))
    outputs = []
    for t, drive in enumerate(drives):
        elapsed = 1.0 if timespans is None else timespans[:, t: t + 1]
        output, state = _cfc_layers_step(xp, weights, terms, drive, state, elapsed)
        outputs.append(output)
    return xp.stack(outputs, 1), state


# --------------------------------------------------------------------------------------------- LTC


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
class _LTCTerms:
    """What an LTC step needs that does not depend on the state, computed once per sequence."""

    sigma_t: Any  # (post, pre) sigma^T
    sigma_mu_t: Any  # (post, pre) (sigma mu)^T
    rev_and_w: Any  # (post, pre, 2): [(W erev)^T, W^T], W = positive(w) * mask
    cm: Any
    gleak: Any
    gleak_vleak: Any
    synapse_sums: Callable[[Any, Any], Any]


def ltc_synapse_sums(terms: _LTCTerms, v: Any, xp: Any = np) -> Any:
    """Recurrent synapses' sums ``[sum_i g_ij(v_i) E_ij, sum_i g_ij(v_i)]`` as a ``(post, batch, 2)`` array.

    ``g_ij(v_i) = W_ij sigmoid(sigma_ij (v_i - mu_ij))``, laid out ``(post j, batch, pre i)`` so both
    sums are one batched matmul. :mod:`ranvier.train.cfc_ltc` replaces it with a torch autograd
    function computing the same sums with a hand-written backward pass (tested against this one).
    """
    activation = _sigmoid(xp, terms.sigma_t[:, None, :] * v[None] - terms.sigma_mu_t[:, None, :])
    return activation @ terms.rev_and_w


def _positive(xp: Any, weights: LTCWeights, x: Any) -> Any:
    return _softplus(xp, x) if weights.positive else x


def _ltc_terms(xp: Any, weights: LTCWeights, synapse_sums: Callable[[Any, Any], Any] | None = None) -> _LTCTerms:
    conductance = _positive(xp, weights, weights.w) * weights.mask
    gleak = _positive(xp, weights, weights.gleak)
    return _LTCTerms(
        sigma_t=_contiguous(weights.sigma.T),
        sigma_mu_t=_contiguous((weights.sigma * weights.mu).T),
        rev_and_w=_contiguous(xp.stack([(conductance * weights.erev).T, conductance.T], 2)),
        cm=_positive(xp, weights, weights.cm),
        gleak=gleak,
        gleak_vleak=gleak * weights.vleak,
        synapse_sums=synapse_sums or (lambda terms, v: ltc_synapse_sums(terms, v, xp)),
    )


def ltc_sensory(xp: Any, weights: LTCWeights, x: Any) -> tuple[Any, Any]:
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
    conductance = _positive(xp, weights, weights.sensory_w) * weights.sensory_mask
    rev_and_w = _contiguous(xp.stack([(conductance * weights.sensory_erev).T, conductance.T], 2))
    sigma_t = _contiguous(weights.sensory_sigma.T)
    sigma_mu_t = _contiguous((weights.sensory_sigma * weights.sensory_mu).T)
    activation = _sigmoid(xp, sigma_t[:, None, :] * flat[None] - sigma_mu_t[:, None, :])
    sums = activation @ rev_and_w  # (post, samples, 2)
    return sums[:, :, 0].T.reshape(lead + (-1,)), sums[:, :, 1].T.reshape(lead + (-1,))


def _ltc_unfolds(xp: Any, weights: LTCWeights, terms: _LTCTerms, sensory: tuple[Any, Any], v: Any,
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
    terms = _ltc_terms(xp, weights)
    return _ltc_unfolds(xp, weights, terms, ltc_sensory(xp, weights, x_t), state, elapsed)


def ltc_sequence(xp: Any, weights: LTCWeights, inputs: Any, state: Any, timespans: Any = None,
                 synapse_sums: Callable[[Any, Any], Any] | None = None) -> tuple[Any, Any]:
    """Run an LTC network over ``inputs`` ``(batch, T, n_in)``; return outputs ``(batch, T, motor)`` and the last state.

    Sensory synapses and the weight transforms are computed once for the whole sequence.
    ``synapse_sums(terms, v)`` replaces :func:`ltc_synapse_sums` (the torch module's fused version).
    """
    terms = _ltc_terms(xp, weights, synapse_sums)
    sensory = zip(*map(_time_steps, ltc_sensory(xp, weights, inputs)), strict=True)
    outputs = []
    for t, sensory_t in enumerate(sensory):
        elapsed = 1.0 if timespans is None else timespans[:, t: t + 1]
        output, state = _ltc_unfolds(xp, weights, terms, sensory_t, state, elapsed)
        outputs.append(output)
    return xp.stack(outputs, 1), state


# ------------------------------------------------------------------------------- public model classes


def _numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


class _LiquidModel(ValueModel):
    """What CfC and LTC share: a numpy forward pass over the shared sequence function, and the engine
    population.

    As a population (``net.population(CfC.from_ncps(m), name="cfc", dt=...)``, no ``n`` needed) its
    units are the network's hidden units: ``n = state_size``, state rows ``h`` (the hidden state) and
    ``output``. Each update runs one step of the same sequence function on the input vector that
    reached port ``"input"`` (``n_in`` wide: weighted spike counts or values), with
    ``elapsed = dt / time_unit`` (ncps's ``timespans``; ``time_unit=None`` makes every update one unit,
    ncps's default). Its ``output`` row holds the model's output: the whole hidden state for a plain
    model, and for a model with fewer outputs than units (motor neurons of a wiring, ``proj_size``)
    those outputs in units ``0 .. output_size - 1`` and zeros after them.
    """

    weights: Any
    _sequence: Any
    n_in: int
    state_size: int
    output_size: int
    #: seconds of engine time per time unit of the model (``timespans`` of 1); None: one unit per update
    time_unit: float | None = None

    @property
    def size(self) -> int:
        return self.state_size

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("h", "output")

    def ports(self, n: int) -> dict[str, tuple[int, int]]:
        return {"input": (self.n_in, 1)}

    def initial_state(self) -> dict[str, Any]:
        if self.output_size > self.state_size:
            raise ModelError(f"{self!r}: its {self.output_size} outputs do not fit its {self.state_size} units; "
                             "as a population, connect a projection as the readout instead of proj_size")
        return {"h": 0.0, "output": 0.0}

    def advance(self, state: np.ndarray, inputs: Any, params: Any, dt: float) -> None:
        elapsed = 1.0 if self.time_unit is None else dt / self.time_unit
        outputs, hidden = self.forward(inputs["input"][0][None, :], timespans=np.array([elapsed]), state=state[0])
        state[0] = hidden
        state[1, :self.output_size] = outputs[0]
        return None

    def _float64_weights(self) -> Any:
        """The weights in float64, cast once per weights object (an engine population calls this every update)."""
        cached = getattr(self, "_weights64", None)
        if cached is None or cached[0] is not self.weights:
            cached = self._weights64 = (self.weights, _cast(self.weights, np.float64))
        return cached[1]

    def forward(self, inputs: np.ndarray, timespans: np.ndarray | None = None,
                state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run a whole sequence in numpy (float64): ``inputs`` ``(T, n_in)`` or ``(batch, T, n_in)``.

        Returns ``(outputs, last_state)``, outputs ``(T, out)`` or ``(batch, T, out)``; ``timespans``
        (one elapsed time per sample, default 1) and the initial ``state`` (default zeros) as in ncps.
        """
        batched, spans = _check_inputs(repr(self), self.n_in, inputs, timespans)
        batch = batched.shape[0]
        if state is None:
            h = np.zeros((batch, self.state_size))
        else:
            h = np.asarray(state, dtype=np.float64).reshape(batch, self.state_size)
        weights = self._float64_weights()
        outputs, h = type(self)._sequence(np, weights, batched, h, spans)
        if np.ndim(inputs) == 2:
            return outputs[0], h[0]
        return outputs, h


def _cast(weights: Any, dtype: Any) -> Any:
    """A copy of a weights dataclass with every float array cast to ``dtype``."""
    if isinstance(weights, np.ndarray):
        return weights.astype(dtype)
    if isinstance(weights, tuple):
        return tuple(_cast(item, dtype) for item in weights)
    if hasattr(weights, "__dataclass_fields__"):
        return type(weights)(**{name: _cast(getattr(weights, name), dtype) for name in weights.__dataclass_fields__})
    return weights


class CfC(_LiquidModel):
    """Closed-form continuous-time network (Hasani et al. 2022): weights and a numpy forward pass.

    Build it from a trained ``ncps.torch.CfC`` with :meth:`from_ncps`, or from a :class:`CfCWeights`.
    :meth:`to_torch` returns a trainable ``torch.nn.Module`` computing the same function; the
    equations are in :func:`cfc_recurrent`.
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
        if getattr(module, "use_mixed", False):
            raise ModelError("CfC.from_ncps: mixed_memory=True (an LSTM beside the CfC) is not supported")
        cell = module.rnn_cell
        cells = list(cell._layers) if hasattr(cell, "_layers") else [cell]
        layers = []
        for sub in cells:
            activation = _ncps_activation(sub)
            backbone = tuple((_numpy(m.weight), _numpy(m.bias)) for m in (sub.backbone or [])
                             if hasattr(m, "weight"))
            heads = [sub.ff1] if sub.mode == "pure" else [sub.ff1, sub.ff2, sub.time_a, sub.time_b]
            head_weight = np.concatenate([_numpy(h.weight) for h in heads])
            head_mask = None
            if sub.sparsity_mask is not None:
                mask = _numpy(sub.sparsity_mask)
                head_mask = np.concatenate([mask if i < 2 else np.ones_like(mask) for i in range(len(heads))])
            layers.append(CfCLayer(
                n_in=int(sub.input_size), units=int(sub.hidden_size), mode=sub.mode, activation=activation,
                backbone=backbone, head_weight=head_weight,
                head_bias=np.concatenate([_numpy(h.bias) for h in heads]), head_mask=head_mask,
                w_tau=_numpy(sub.w_tau) if sub.mode == "pure" else None,
                a=_numpy(sub.A) if sub.mode == "pure" else None))
        projection = None
        if hasattr(module.fc, "weight"):
            projection = (_numpy(module.fc.weight), _numpy(module.fc.bias))
        return cls(CfCWeights(layers=tuple(layers), projection=projection))

    def to_torch(self) -> Any:
        """A trainable ``torch.nn.Module`` (:class:`ranvier.train.cfc_ltc.CfCModule`) with these weights."""
        from ..train.cfc_ltc import CfCModule

        return CfCModule(self.weights)

    def step(self, xp: Any, x_t: Any, state: Any, elapsed: Any = 1.0) -> tuple[Any, Any]:
        """One step for the engine: :func:`cfc_step` with this model's weights."""
        return cfc_step(xp, self.weights, x_t, state, elapsed)


def _ncps_activation(cell: Any) -> str:
    if cell.backbone is None:
        return "lecun_tanh"
    names = {"LeCun": "lecun_tanh", "Tanh": "tanh", "ReLU": "relu", "SiLU": "silu"}
    for module in cell.backbone:
        kind = type(module).__name__
        if kind in names:
            return names[kind]
        if kind not in ("Linear", "Dropout"):
            raise ModelError(f"CfC.from_ncps: backbone activation {kind} is not one of {sorted(names)}")
    raise ModelError("CfC.from_ncps: the backbone has no activation")


class LTC(_LiquidModel):
    """Liquid time-constant network (Hasani et al. 2021): weights and a numpy forward pass.

    Build it from an ``ncps.torch.LTC`` with :meth:`from_ncps` (plain or wired by an
    ``ncps.wirings`` object); :meth:`to_torch` returns a trainable ``torch.nn.Module``. The
    equations are in :func:`ltc_step`.
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
        if getattr(module, "use_mixed", False):
            raise ModelError("LTC.from_ncps: mixed_memory=True (an LSTM beside the LTC) is not supported")
        cell = module.rnn_cell
        params = {name: _numpy(value) for name, value in cell._params.items()}
        for mapping in (cell._input_mapping, cell._output_mapping):
            if mapping not in LTC_MAPPINGS:
                raise ModelError(f"LTC.from_ncps: mapping {mapping!r} is not one of {LTC_MAPPINGS}")
        return cls(LTCWeights(
            gleak=params["gleak"], vleak=params["vleak"], cm=params["cm"], w=params["w"],
            sigma=params["sigma"], mu=params["mu"], erev=params["erev"], mask=params["sparsity_mask"],
            sensory_w=params["sensory_w"], sensory_sigma=params["sensory_sigma"],
            sensory_mu=params["sensory_mu"], sensory_erev=params["sensory_erev"],
            sensory_mask=params["sensory_sparsity_mask"], input_w=params.get("input_w"),
            input_b=params.get("input_b"), output_w=params.get("output_w"), output_b=params.get("output_b"),
            motor=int(cell.motor_size), ode_unfolds=int(cell._ode_unfolds), epsilon=float(cell._epsilon),
            positive=bool(cell._implicit_param_constraints)))

    def to_torch(self) -> Any:
        """A trainable ``torch.nn.Module`` (:class:`ranvier.train.cfc_ltc.LTCModule`) with these weights."""
        from ..train.cfc_ltc import LTCModule

        return LTCModule(self.weights)

    def step(self, xp: Any, x_t: Any, state: Any, elapsed: Any = 1.0) -> tuple[Any, Any]:
        """One step for the engine: :func:`ltc_step` with this model's weights."""
        return ltc_step(xp, self.weights, x_t, state, elapsed)
