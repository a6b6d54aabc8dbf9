"""The LIF step in torch, and the fused BPTT of a feed-forward population over all its steps.

:func:`lif_step` is ranvier's LIF step (:func:`ranvier.neurons.lif._lif_step`) on a batch, with
the exact-integration constants of :meth:`ranvier.neurons.LIF.constants` held in a
:class:`LayerConstants`. Per step ``k`` (state ``v``, ``refractory``, currents ``I_r``; arrivals
``A_r[k]``; ``a_k = refractory <= 0``)::

    v_free = v_eq + (v - v_eq) p_vv + sum_{current r} I_r P_r + sum_{delta r} A_r[k]
    I_r    = I_r d_r + A_r[k]                                  (current receptors, d_r = e^{-dt/tau_r})
    u_k    = v_free if a_k else v                              (p_vv = e^{-dt/tau_m})
    s_k    = H(u_k - v_th)                                     (surrogate sigma' in backward)
    v      = v_reset if s_k else u_k;  refractory = t_ref/dt if s_k else refractory - (1 - a_k)

:class:`LIFRecurrence` runs this loop for one population whose arrivals are known for all steps
(no projection from the population's own group), without autograd, keeping ``u`` (and ``a``
when the population has a refractory period), and differentiates it by hand. With
``keep_k = dv_k/du_k = 1 - s_k`` (detached reset; ``- sigma'_k (u_k - v_reset)`` otherwise) and
the outputs' gradients ``gS[k]``, ``gV[k]``, reverse-mode through the loop is::

    g_u[k]   = sigma'_k gS[k] + keep_k gV[k] + keep_k c_{k+1} g_u[k+1],   c_k = a_k p_vv + 1 - a_k
    g_free[k] = a_k g_u[k]
    dL/dA_r[k] = g_free[k]                                     (delta receptor)
    dL/dA_r[k] = g_I[k],  g_I[k] = P_r g_free[k+1] + d_r g_I[k+1],  g_I[T-1] = 0   (current receptor)

two linear recurrences, one fused multiply-add per step each; everything else is one tensor op
over all ``T`` steps.

:func:`project` is a projection's arrivals for all steps, ``(T B, n_pre) @ W``: when the
presynaptic spikes are given (no gradient wanted for them) and sparse, a numba kernel sums only
the rows of ``W`` of the neurons that spiked, forward and for ``dL/dW = X^T dL/dA``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import torch
from torch import Tensor

from ..neurons.lif import FIRST_CURRENT, REFRACTORY, V

#: a given spike matrix with at most this fraction of non-zeros is multiplied as a sparse one
SPARSE_DENSITY = 0.2


def surrogate_derivative(centred: Tensor, scale: Tensor, slope: float) -> Tensor:
    """Fast-sigmoid surrogate ``dS/dv = 1 / (scale (1 + slope |centred| / scale)^2)`` at
    ``v - v_th = centred`` (1/V); one new tensor, the rest in place."""
    return centred.abs().mul_(slope / scale).add_(1).square_().mul_(scale).reciprocal_()


class _Spike(torch.autograd.Function):
    """Heaviside forward; fast-sigmoid surrogate backward (Zenke & Ganguli 2018, SuperSpike):
    ``dS/dv = 1 / (scale (1 + slope |v - v_th| / scale)^2)``."""

    @staticmethod
    def forward(ctx, centred: Tensor, scale: Tensor, slope: float) -> Tensor:
        ctx.save_for_backward(centred, scale)
        ctx.slope = slope
        return (centred >= 0).to(centred.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        centred, scale = ctx.saved_tensors
        return grad * surrogate_derivative(centred, scale, ctx.slope), None, None


def surrogate_spike(centred: Tensor, scale: Tensor, slope: float) -> Tensor:
    """``H(centred)`` (1.0 where ``centred >= 0``) forward, the fast-sigmoid surrogate backward."""
    return _Spike.apply(centred, scale, slope)


@dataclass
class LayerConstants:
    """One LIF population's rows of :meth:`ranvier.neurons.LIF.constants`, each ``(n,)``.

    ``v_eq`` is None where it is zero for every neuron (then ``v_free = v p_vv`` exactly);
    ``t_ref`` (refractory steps) is None without a refractory period; ``decay`` and
    ``propagator`` are None for delta receptors.
    """

    v_eq: Tensor | None
    p_vv: Tensor
    v_th: Tensor
    v_reset: Tensor
    t_ref: Tensor | None
    decay: tuple[Tensor | None, ...]
    propagator: tuple[Tensor | None, ...]
    scale: Tensor
    slope: float
    detach_reset: bool
    init: Tensor

    def initial(self, batch: int) -> list[Tensor]:
        """The population's initial state rows, one ``(batch, n)`` tensor each."""
        return [row.expand(batch, -1).clone() for row in self.init]


def lif_step(layer: LayerConstants, state: list[Tensor], arriving: Sequence[Tensor | None]) -> tuple[Tensor, Tensor]:
    """One engine step (module docstring); updates ``state`` in the list.

    Returns the spikes ``s_k`` (float 0/1) and ``u_k``, the voltage before reset. Under autograd
    the spike is :class:`_Spike` (surrogate gradient) and the reset ``v = lerp(u, v_reset, s)``
    passes ``dv/du = 1 - s`` and, unless ``layer.detach_reset``, ``dv/ds = v_reset - u``.
    """
    v = state[V]
    v_free = v * layer.p_vv if layer.v_eq is None else layer.v_eq + (v - layer.v_eq) * layer.p_vv
    for r, decay in enumerate(layer.decay):
        arrival = arriving[r]
        if decay is None:
            if arrival is not None:
                v_free = v_free + arrival
        else:
            current = state[FIRST_CURRENT + r]
            v_free = v_free + current * layer.propagator[r]
            current = current * decay
            state[FIRST_CURRENT + r] = current if arrival is None else current + arrival
    # masks are float 0/1 and selections are lerps: lerp(x, y, 0) = x and lerp(x, y, 1) = y exactly
    # (torch evaluates y - (y - x)(1 - w) for w >= 0.5), the engine's selects, without bool tensors
    # (slow in torch on the CPU); a lerp's gradient is (1 - w, w), that of the select it replaces
    if layer.t_ref is not None:
        refractory = state[REFRACTORY]
        active = torch.le(refractory, 0, out=torch.empty_like(refractory))
        v_new = torch.lerp(v, v_free, active)
        refractory = refractory + (active - 1)
    else:
        v_new = v_free
    if torch.is_grad_enabled():
        fired = _Spike.apply(v_new - layer.v_th, layer.scale, layer.slope)
    else:
        fired = torch.ge(v_new, layer.v_th, out=torch.empty_like(v_new))
    state[V] = torch.lerp(v_new, layer.v_reset, fired.detach() if layer.detach_reset else fired)
    if layer.t_ref is not None:
        state[REFRACTORY] = torch.lerp(refractory, layer.t_ref, fired.detach())
    return fired, v_new


class LIFRecurrence(torch.autograd.Function):
    """``(spikes, v)``, each ``(T, B, n)``, of one population from its arrivals ``A_r`` ``(T, B, n)``
    (None for a receptor nothing arrives at); hand-written backward (module docstring)."""

    @staticmethod
    def forward(ctx, layer: LayerConstants, steps: int, batch: int, *arriving: Tensor | None):
        state = layer.initial(batch)
        per_step = [None if a is None else a.unbind(0) for a in arriving]
        spikes, before_reset, after_reset, active = [], [], [], []
        for k in range(steps):
            if layer.t_ref is not None:
                active.append(torch.le(state[REFRACTORY], 0, out=torch.empty_like(state[V])))  # a_k
            fired, v_new = lif_step(layer, state, [None if a is None else a[k] for a in per_step])
            spikes.append(fired)
            before_reset.append(v_new)
            after_reset.append(state[V])
        spikes, after_reset = torch.stack(spikes), torch.stack(after_reset)
        ctx.save_for_backward(spikes, torch.stack(before_reset), torch.stack(active) if active else None)
        ctx.layer = layer
        ctx.set_materialize_grads(False)
        ctx.delta = [a is not None and d is None for a, d in zip(arriving, layer.decay, strict=True)]
        return spikes, after_reset

    @staticmethod
    def backward(ctx, grad_spikes: Tensor | None, grad_v: Tensor | None):
        spikes, u, active = ctx.saved_tensors
        layer: LayerConstants = ctx.layer
        slope = None
        if grad_spikes is not None or not layer.detach_reset:
            slope = surrogate_derivative(u - layer.v_th, layer.scale, layer.slope)
        # keep = dv/du = 1 - s (detached reset), - sigma' (u - v_reset) otherwise
        keep = None if layer.detach_reset else (1 - spikes).sub_(slope * (u - layer.v_reset))
        # drive[k] = sigma'_k gS[k] + keep_k gV[k]; becomes g_u in place below
        drive = None if grad_spikes is None else slope.mul_(grad_spikes)
        if grad_v is not None:
            through = torch.addcmul(grad_v, spikes, grad_v, value=-1) if keep is None else keep * grad_v
            drive = through if drive is None else drive.add_(through)
        if drive is None:
            return (None, None, None, *(None for _ in ctx.delta))
        carry = layer.p_vv if active is None else torch.where(active[1:] > 0, layer.p_vv, 1.0)
        factor = torch.addcmul(carry, spikes[:-1], carry, value=-1) if keep is None else keep[:-1].mul_(carry)
        for k in range(drive.shape[0] - 2, -1, -1):
            drive[k].addcmul_(factor[k], drive[k + 1])
        grad_free = drive if active is None else drive.mul_(active)
        grads = []
        for r, delta in enumerate(ctx.delta):
            if not ctx.needs_input_grad[3 + r]:
                grads.append(None)
            elif delta:  # a second delta receptor gets its own copy: autograd may accumulate in place
                grads.append(grad_free.clone() if any(g is grad_free for g in grads) else grad_free)
            else:
                grad_current = torch.empty_like(grad_free)
                grad_current[-1] = 0
                torch.mul(grad_free[1:], layer.propagator[r], out=grad_current[:-1])
                for k in range(grad_current.shape[0] - 2, -1, -1):
                    grad_current[k].addcmul_(layer.decay[r], grad_current[k + 1])
                grads.append(grad_current)
        return (None, None, None, *grads)


# -- projections of given spike trains -----------------------------------------------------------

@numba.njit(cache=True, parallel=True)
def _row_counts(x: np.ndarray) -> np.ndarray:
    """``indptr`` of the row-compressed ``x`` ``(R, K)``: cumulative non-zeros per row, from 0 (rows in parallel)."""
    counts = np.zeros(x.shape[0] + 1, dtype=np.int64)
    for r in numba.prange(x.shape[0]):
        count = 0
        for c in range(x.shape[1]):
            count += x[r, c] != 0
        counts[r + 1] = count
    return np.cumsum(counts)


@numba.njit(cache=True, parallel=True)
def _compress(x: np.ndarray, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray) -> None:
    """Fill the column ``indices`` and ``values`` of ``x``'s non-zeros, row by row (rows in parallel: each
    writes its own stretch ``indptr[r] .. indptr[r + 1] - 1``)."""
    for r in numba.prange(x.shape[0]):
        p = indptr[r]
        for c in range(x.shape[1]):
            if x[r, c] != 0:
                indices[p] = c
                values[p] = x[r, c]
                p += 1


@numba.njit(cache=True)
def _sparse_times(indptr, indices, values, w, out, offset):
    """``out[offset + r] = (X w)[r]`` for row-compressed ``X``: the weighted sum of ``w``'s rows, in column order."""
    for r in range(indptr.size - 1):
        row = out[offset + r]
        for p in range(indptr[r], indptr[r + 1]):
            c = indices[p]
            a = values[p]
            for j in range(w.shape[1]):
                row[j] += a * w[c, j]


@numba.njit(cache=True)
def _sparse_transpose_times(indptr, indices, values, g, out, offset):
    """``out = X^T g[offset:]`` for row-compressed ``X``."""
    for r in range(indptr.size - 1):
        for p in range(indptr[r], indptr[r + 1]):
            c = indices[p]
            a = values[p]
            for j in range(g.shape[1]):
                out[c, j] += a * g[offset + r, j]


class _SparseProjection(torch.autograd.Function):
    """Arrivals ``(T, B, n_post)`` from row-compressed constant spikes (no gradient for them),
    delayed by ``delay`` steps (the first ``delay`` steps are zero)."""

    @staticmethod
    def forward(ctx, compressed: tuple[np.ndarray, np.ndarray, np.ndarray], weight: Tensor, steps: int,
                batch: int, delay: int) -> Tensor:
        indptr, indices, values = compressed
        out = np.zeros((steps * batch, weight.shape[1]), dtype=values.dtype)
        _sparse_times(indptr, indices, values, weight.detach().contiguous().numpy(), out, delay * batch)
        ctx.compressed, ctx.shape, ctx.offset = compressed, weight.shape, delay * batch
        return torch.from_numpy(out).reshape(steps, batch, -1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        indptr, indices, values = ctx.compressed
        out = np.zeros(ctx.shape, dtype=values.dtype)
        _sparse_transpose_times(indptr, indices, values, grad.reshape(-1, ctx.shape[1]).contiguous().numpy(),
                                out, ctx.offset)
        return None, torch.from_numpy(out), None, None, None


def project(pre: Tensor, weight: Tensor, delay: int) -> Tensor:
    """Arrivals ``A[k] = pre[k - delay] @ weight`` ``(T, B, n_post)`` (zero for ``k < delay``) of spikes
    ``pre`` ``(T, B, n_pre)``. Sparse (numba) when ``pre`` needs no gradient, lives on the CPU and
    has at most :data:`SPARSE_DENSITY` non-zeros; a dense matmul over all steps otherwise."""
    steps, batch, n_pre = pre.shape
    sent = pre[:steps - delay].reshape(-1, n_pre)
    if not (pre.requires_grad or pre.device.type != "cpu" or weight.device.type != "cpu"
            or pre.dtype != weight.dtype):
        dense = sent.contiguous().numpy()
        indptr = _row_counts(dense)
        if indptr[-1] <= SPARSE_DENSITY * dense.size:
            indices, values = np.empty(indptr[-1], dtype=np.int64), np.empty(indptr[-1], dtype=dense.dtype)
            _compress(dense, indptr, indices, values)
            return _SparseProjection.apply((indptr, indices, values), weight, steps, batch, delay)
    current = (sent @ weight).reshape(steps - delay, batch, -1)
    return torch.nn.functional.pad(current, (0, 0, 0, 0, delay, 0))
