"""Learnable per-synapse delays: a Gaussian kernel over lags whose position is trained (DCLS).

After Hammouamri, Khalfaoui-Hassani & Masquelier, "Learning Delays in Spiking Neural Networks
using Dilated Convolutions with Learnable Spacings", ICLR 2024. Each synapse ``i -> j`` of a
projection has a weight ``W_ij`` and a real delay ``d_ij`` (steps, clamped to ``[1, D]``,
``D = max_delay``). Its kernel over the integer lags ``tau = 0 .. D`` is::

    K_ij(tau) = W_ij g(tau; d_ij, sigma),   g(tau; d, sigma) = exp(-(tau - d)^2 / (2 sigma^2))
                                                              / sum_{tau'=0..D} exp(-(tau' - d)^2 / (2 sigma^2))

(a Gaussian normalised over the lags, evaluated as a softmax over ``tau``, so it stays finite for
any small ``sigma``), and the arrivals of spikes ``s`` ``(T, B, n_pre)`` are::

    A[k, b, j] = sum_i sum_{tau=0..min(k, D)} s[k - tau, b, i] K_ij(tau)          (T, B, n_post)

``dA/dW`` and ``dA/dd`` go through ``g``: ``dg(tau)/dd = g(tau) ((tau - d) - E_g[tau - d]) / sigma^2``
(torch autograd). ``sigma`` is a hyper-parameter, not trained: DCLS starts it wide (``D / 2``, so
every delay sees a gradient from spikes far from its current position) and shrinks it during
training (:func:`sigma_schedule`); at the end the delays are rounded (:func:`rounded`) and
written into the projections, where the event engine runs them as integer delays.

Width and rounding
    ``sigma = 0`` is the rounded kernel itself: ``g(tau) = 1`` at ``tau = round(d)``, 0 elsewhere,
    so :func:`delayed_projection` with ``sigma=0`` is exactly the fixed-delay projection
    ``A[k] = sum_ij s[k - round(d_ij), :, i] W_ij`` that :func:`rounded` delays give in the engine
    (no gradient for ``d`` there). A Gaussian is one-hot only in the limit: at integer ``d`` the
    two neighbouring lags each keep ``exp(-1 / (2 sigma^2))`` of the peak, 0.135 at ``sigma = 0.5``
    (the paper's final width), 7.9e-5 at 0.23 (the final width of the authors' code), below 1e-6
    for ``sigma <= 0.18`` and below float32 resolution for ``sigma <= 0.15``. So train down to
    ``sigma`` of 0.5 or 0.23 as DCLS does, round, and evaluate (or fine-tune the weights) with
    ``sigma=0``: that forward pass is the one the engine reproduces.

The shift method
    :func:`shifted_projection` (``SpikingModule(..., delay_method="shift")``) runs the other way
    round: forward, every synapse at its rounded delay, the network the engine runs, at every
    ``sigma``; backward, the weights and spikes get that network's exact gradients and the
    delays DCLS's gradient of a Gaussian-smoothed arrival (equations in its docstring). Its work
    is ``nnz(s) n_post`` each way instead of ``nnz(s) (D + 1) n_post``, and no fine-tuning at
    ``sigma = 0`` is needed before :func:`rounded` delays go into the engine.

Paths
    With ``pre`` needing a gradient (a hidden layer's spikes), on a GPU, or dense, the arrivals are
    one ``conv1d`` over time (kernel ``K`` flipped, ``D`` steps of left padding), differentiable in
    ``pre``, ``W`` and ``d``. Given spikes (no gradient) on the CPU with at most
    :data:`~ranvier.train.recurrence.SPARSE_DENSITY` non-zeros take a numba kernel over the
    non-zeros ``(k, b, i)`` only: forward ``A[k + tau, b, :] += s K_i(tau)``, backward
    ``dL/dK_i(tau) = sum_{(k, b, i)} s dL/dA[k + tau, b, :]``; torch then chains ``K -> W, d``.
    The work is ``nnz(s) (D + 1) n_post`` multiply-adds each way, against ``T B n_pre n_post`` for
    a dense product without delays. Both kernels split work so that every output element is
    summed by one thread in a fixed order (forward: one thread per sample ``b``; backward: one
    per presynaptic neuron ``i``), so results do not depend on the number of threads and repeat
    bit for bit.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import Tensor

from ..errors import TrainingError
from .recurrence import SPARSE_DENSITY, _compress, _row_counts

#: sigma_schedule's decrease laws
SCHEDULES = ("exponential", "linear", "cosine")


def _check(max_delay: int, sigma: float, what: str) -> None:
    if isinstance(max_delay, bool) or not isinstance(max_delay, (int, np.integer)) or max_delay < 1:
        raise TrainingError(f"{what}: max_delay must be an integer >= 1 (steps), got {max_delay!r}")
    if not (isinstance(sigma, (int, float, np.floating)) and math.isfinite(sigma) and sigma >= 0):
        raise TrainingError(f"{what}: sigma must be a finite number >= 0 (steps), got {sigma!r}")


def _check_projection(what: str, pre: Tensor, weight: Tensor, delay: Tensor, mask: Tensor | None, max_delay: int,
                      sigma: float) -> None:
    """A delayed projection's shapes: spikes ``(T, B, n_pre)``; weight, delay and mask ``(n_pre, n_post)``."""
    _check(max_delay, sigma, what)
    if pre.ndim != 3:
        raise TrainingError(f"{what}: pre must be spikes (T, B, n_pre), got shape {tuple(pre.shape)}")
    n_pre = pre.shape[2]
    if weight.ndim != 2 or weight.shape[0] != n_pre or delay.shape != weight.shape:
        raise TrainingError(f"{what}: weight and delay must both be (n_pre={n_pre}, n_post), got "
                            f"{tuple(weight.shape)} and {tuple(delay.shape)}")
    if mask is not None and mask.shape != weight.shape:
        raise TrainingError(f"{what}: mask must be {tuple(weight.shape)}, got {tuple(mask.shape)}")


def rounded(delay: Tensor | np.ndarray, max_delay: int) -> np.ndarray:
    """Learned delays as the integer steps the engine runs: ``round(d)`` clipped to ``[1, max_delay]``.

    ``np.rint`` (half to even, as ``torch.round``); ``int64``, the shape of ``delay``. These are the
    positions of ``g`` at ``sigma = 0`` in :func:`delayed_projection`.
    """
    _check(max_delay, 0.0, "rounded")
    if isinstance(delay, Tensor):
        delay = delay.detach().cpu().numpy()
    delay = np.asarray(delay, dtype=np.float64)
    if not np.all(np.isfinite(delay)):
        raise TrainingError("rounded: delays must be finite")
    return np.clip(np.rint(delay), 1, max_delay).astype(np.int64)


def sigma_schedule(epoch: int, epochs: int, max_delay: int | None = None, *, start: float | None = None,
                   end: float = 0.5, fraction: float = 0.25, method: str = "exponential") -> float:
    """The kernel width ``sigma`` (steps) for ``epoch`` (0-based) of ``epochs``.

    ``sigma`` falls from ``start`` (default ``max_delay / 2``) at epoch 0 to ``end`` at epoch
    ``n = max(1, round(fraction * epochs))`` and stays at ``end`` after. ``method``:

    * ``"exponential"`` (default; DCLS's: the authors' code multiplies ``sigma`` by
      ``(end / start)^(1 / n)`` each epoch over the first quarter of training, from
      ``max_delay // 2`` to 0.23, where the paper states 0.5):
      ``sigma = start (end / start)^(e / n)``;
    * ``"linear"``: ``sigma = start + (end - start) e / n``;
    * ``"cosine"``: ``sigma = end + (start - end) (1 + cos(pi e / n)) / 2``.

    None of them reaches a one-hot kernel (see :mod:`ranvier.train.delays`, "Width and
    rounding"): after the schedule, round the delays and use ``sigma=0``.
    """
    if start is None:
        if max_delay is None:
            raise TrainingError("sigma_schedule: give max_delay (start = max_delay / 2) or start")
        _check(max_delay, 0.0, "sigma_schedule")
        start = max_delay / 2
    if method not in SCHEDULES:
        raise TrainingError(f"sigma_schedule: method must be one of {SCHEDULES}, got {method!r}")
    if not (0 < end <= start and math.isfinite(start)):
        raise TrainingError(f"sigma_schedule: need 0 < end <= start, got start={start!r}, end={end!r}")
    if epochs < 1 or not 0 <= epoch or not 0 < fraction <= 1:
        raise TrainingError(f"sigma_schedule: need epochs >= 1, epoch >= 0 and 0 < fraction <= 1, got "
                            f"epoch={epoch!r}, epochs={epochs!r}, fraction={fraction!r}")
    n = max(1, round(fraction * epochs))
    x = min(epoch, n) / n
    if method == "exponential":
        return float(start * (end / start) ** x)
    if method == "linear":
        return float(start + (end - start) * x)
    return float(end + (start - end) * (1 + math.cos(math.pi * x)) / 2)


def gaussian_lags(delay: Tensor, sigma: float, max_delay: int) -> Tensor:
    """``g(tau; d, sigma)`` for lags ``tau = 0 .. max_delay`` of delays ``(n_pre, n_post)``: ``(n_pre, L, n_post)``.

    ``d`` is clamped to ``[1, max_delay]`` first (no gradient outside: clamp the parameter after
    each optimiser step so it stays inside); ``sigma = 0`` gives the one-hot at ``round(d)``.
    """
    lags = torch.arange(max_delay + 1, dtype=delay.dtype, device=delay.device).reshape(1, -1, 1)
    position = delay.clamp(1, max_delay).unsqueeze(1)
    if sigma == 0:
        return (lags == torch.round(position.detach())).to(delay.dtype)
    return torch.softmax((lags - position).square() * (-0.5 / sigma ** 2), dim=1)


def delay_kernel(weight: Tensor, delay: Tensor, sigma: float, max_delay: int, mask: Tensor | None = None) -> Tensor:
    """``K[i, tau, j] = W_ij m_ij g(tau; d_ij, sigma)``, ``(n_pre, max_delay + 1, n_post)`` (``m`` the mask).

    Lags in the middle: a presynaptic neuron's whole kernel is one contiguous block, which the
    sparse kernels read (forward) and write (backward) per spike.
    """
    if mask is not None:
        weight = weight * mask.to(weight.dtype)
    return weight.unsqueeze(1) * gaussian_lags(delay, sigma, max_delay)


# -- the sparse kernels --------------------------------------------------------------------------

@numba.njit(cache=True, parallel=True)
def _delayed_times(indptr, indices, values, kernel, steps, batch, out):
    """``out[r + tau B] += s K[i, tau]`` for each non-zero ``s = X[r, i]``, ``r = k B + b``,
    ``k + tau < T``; one thread per sample ``b`` (each owns its output rows)."""
    lags, n_post = kernel.shape[1], kernel.shape[2]
    for b in numba.prange(batch):
        for k in range(steps):
            r = k * batch + b
            top = min(lags, steps - k)
            for p in range(indptr[r], indptr[r + 1]):
                block = kernel[indices[p]]
                a = values[p]
                for tau in range(top):
                    row = out[r + tau * batch]
                    w = block[tau]
                    for j in range(n_post):
                        row[j] += a * w[j]


@numba.njit(cache=True)
def _by_column(indptr, indices, n_columns):
    """Column-compressed positions of a row-compressed matrix: ``colptr`` and, per column in row
    order, each non-zero's row and its index in the row-compressed arrays."""
    colptr = np.zeros(n_columns + 1, dtype=np.int64)
    for p in range(indices.size):
        colptr[indices[p] + 1] += 1
    colptr = np.cumsum(colptr)
    fill = colptr[:-1].copy()
    rows = np.empty(indices.size, dtype=np.int64)
    where = np.empty(indices.size, dtype=np.int64)
    for r in range(indptr.size - 1):
        for p in range(indptr[r], indptr[r + 1]):
            q = fill[indices[p]]
            rows[q] = r
            where[q] = p
            fill[indices[p]] = q + 1
    return colptr, rows, where


@numba.njit(cache=True, parallel=True)
def _delayed_transpose_times(colptr, rows, where, values, grad, steps, batch, out):
    """``out[i, tau] += s grad[r + tau B]`` for each non-zero ``s = X[r, i]``, ``r = k B + b``,
    ``k + tau < T``; one thread per presynaptic neuron ``i`` (each owns ``out[i]``)."""
    lags, n_post = out.shape[1], out.shape[2]
    for i in numba.prange(out.shape[0]):
        block = out[i]
        for q in range(colptr[i], colptr[i + 1]):
            r = rows[q]
            a = values[where[q]]
            top = min(lags, steps - r // batch)
            for tau in range(top):
                g = grad[r + tau * batch]
                o = block[tau]
                for j in range(n_post):
                    o[j] += a * g[j]


class _SparseDelayedProjection(torch.autograd.Function):
    """Arrivals ``(T, B, n_post)`` of row-compressed constant spikes ``X`` ``(T B, n_pre)`` through
    the lag kernel ``K`` ``(n_pre, L, n_post)``; the gradient is for ``K`` only."""

    @staticmethod
    def forward(ctx, compressed: tuple[np.ndarray, np.ndarray, np.ndarray], kernel: Tensor, steps: int,
                batch: int) -> Tensor:
        indptr, indices, values = compressed
        out = np.zeros((steps * batch, kernel.shape[2]), dtype=values.dtype)
        _delayed_times(indptr, indices, values, kernel.detach().contiguous().numpy(), steps, batch, out)
        ctx.compressed, ctx.shape, ctx.steps, ctx.batch = compressed, kernel.shape, steps, batch
        return torch.from_numpy(out).reshape(steps, batch, -1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        indptr, indices, values = ctx.compressed
        colptr, rows, where = _by_column(indptr, indices, ctx.shape[0])
        out = np.zeros(tuple(ctx.shape), dtype=values.dtype)
        _delayed_transpose_times(colptr, rows, where, values, grad.reshape(-1, ctx.shape[2]).contiguous().numpy(),
                                 ctx.steps, ctx.batch, out)
        return None, torch.from_numpy(out), None, None


def _dense(pre: Tensor, kernel: Tensor) -> Tensor:
    """``A[k] = sum_tau pre[k - tau] @ K[:, tau]`` as one causal ``conv1d`` over time."""
    steps, batch, _ = pre.shape
    lags = kernel.shape[1]
    x = torch.nn.functional.pad(pre.to(kernel.dtype).permute(1, 2, 0), (lags - 1, 0))  # (B, n_pre, L - 1 + T)
    # conv1d: out[b, j, k] = sum_i sum_l x[b, i, k + l] w[j, i, l]; l = L - 1 - tau
    out = torch.nn.functional.conv1d(x, kernel.flip(1).permute(2, 0, 1))
    return out.permute(2, 0, 1)


def delayed_projection(pre: Tensor, weight: Tensor, delay: Tensor, sigma: float, max_delay: int,
                       mask: Tensor | None = None, *, sparse: bool | None = None) -> Tensor:
    """Arrivals ``A`` ``(T, B, n_post)`` of spikes ``pre`` ``(T, B, n_pre)`` through synapses with weights
    ``weight`` and real delays ``delay`` (both ``(n_pre, n_post)``) spread by a Gaussian of width
    ``sigma`` over the lags ``0 .. max_delay`` (equations in :mod:`ranvier.train.delays`).

    ``mask`` ``(n_pre, n_post)`` (0/1) zeroes absent synapses. Differentiable in ``weight`` and
    ``delay`` (and in ``pre`` when it requires grad). ``sparse=None`` picks the numba path for
    given (no-grad) CPU spikes with at most :data:`~ranvier.train.recurrence.SPARSE_DENSITY`
    non-zeros and ``conv1d`` otherwise; ``True`` or ``False`` forces one (``True`` needs no-grad
    CPU spikes of the weights' dtype).
    """
    what = "delayed_projection"
    _check_projection(what, pre, weight, delay, mask, max_delay, sigma)
    n_pre = pre.shape[2]
    steps, batch = pre.shape[:2]
    kernel = delay_kernel(weight, delay, sigma, max_delay, mask)
    eligible = not (pre.requires_grad or pre.device.type != "cpu" or weight.device.type != "cpu"
                    or pre.dtype != weight.dtype)
    if sparse and not eligible:
        raise TrainingError(f"{what}: the sparse path needs CPU spikes without gradient, of the weights' dtype "
                            f"({weight.dtype}); got {pre.dtype} on {pre.device}, requires_grad={pre.requires_grad}")
    if eligible and sparse is not False and steps * batch:
        dense = pre.detach().reshape(-1, n_pre).contiguous().numpy()
        indptr = _row_counts(dense)
        if sparse or indptr[-1] <= SPARSE_DENSITY * dense.size:
            indices, values = np.empty(indptr[-1], dtype=np.int64), np.empty(indptr[-1], dtype=dense.dtype)
            _compress(dense, indptr, indices, values)
            return _SparseDelayedProjection.apply((indptr, indices, values), kernel, steps, batch)
    return _dense(pre, kernel)


# -- the shift method: the engine's network forward, a smoothed gradient for the delays ----------

def gradient_window(sigma: float, max_delay: int) -> np.ndarray:
    """``w(u) = (u / sigma^2) G(u)`` for ``u = -R .. R``, ``G`` the Gaussian of width ``sigma`` normalised
    over the window, ``R = min(ceil(3 sigma), max_delay)``; all zeros for ``sigma = 0``.

    ``Psi(t) = sum_u w(u) gA[t + u]`` is the delay gradient of :func:`shifted_projection` per unit weight
    and spike (see its docstring), computed by :func:`_smoothed_gradient`.
    """
    _check(max_delay, sigma, "gradient_window")
    if sigma == 0:
        return np.zeros(3)
    reach = min(math.ceil(3 * sigma), max_delay)
    u = np.arange(-reach, reach + 1, dtype=np.float64)
    gaussian = np.exp(-0.5 * (u / sigma) ** 2)
    return u / sigma ** 2 * gaussian / gaussian.sum()


#: the sample blocks the delay gradients are summed in, each into its own partial sums, added in
#: block order after: a fixed split, so the sums do not depend on the number of threads
GRADIENT_BLOCKS = 8


@numba.njit(cache=True, parallel=True)
def _smoothed_gradient(grad, steps, window, both):
    """``both[b, t, j] = (grad[b, t, j], psi[b, t, j])``, ``psi[b, t, j] = sum_u w(u) grad[b, t + u, j]`` over
    ``u = -R .. R`` (``grad`` ``(B, T', n_post)`` holds the gradient in rows ``0 .. steps - 1`` and zeros
    after). ``w`` is odd (``w(-u) = -w(u)``), so ``psi[t] = sum_{u=1..R} w(u) grad[t + u] - sum_{u=1..R}
    w(u) grad[t - u]``, summed in that order; one thread per sample ``b``."""
    length, n_post = grad.shape[1], grad.shape[2]
    reach = (window.size - 1) // 2
    for b in numba.prange(grad.shape[0]):
        g = grad[b]
        row = np.empty(n_post, dtype=grad.dtype)
        for t in range(length):
            for j in range(n_post):
                row[j] = 0.0
            for u in range(1, min(reach, steps - 1 - t) + 1):
                weight = window[reach + u]
                for j in range(n_post):
                    row[j] += weight * g[t + u, j]
            for u in range(max(1, t - steps + 1), min(reach, t) + 1):
                weight = window[reach + u]
                for j in range(n_post):
                    row[j] -= weight * g[t - u, j]
            for j in range(n_post):
                both[b, t, j, 0] = g[t, j]
                both[b, t, j, 1] = row[j]


@numba.njit(cache=True, parallel=True)
def _shifted_times(indptr, indices, values, weight, shift, steps, batch, out):
    """``out[b, k + n_ij, j] += s W_ij`` for each non-zero ``s = X[k B + b, i]`` (``out`` ``(B, T + D + 1,
    n_post)``); one thread per sample ``b`` (each owns ``out[b]``, whose rows ``k .. k + D`` stay in cache)."""
    n_post = weight.shape[1]
    for b in numba.prange(batch):
        arrivals = out[b]
        for k in range(steps):
            r = k * batch + b
            for p in range(indptr[r], indptr[r + 1]):
                a = values[p]
                weight_row, shift_row = weight[indices[p]], shift[indices[p]]
                for j in range(n_post):
                    arrivals[k + shift_row[j], j] += a * weight_row[j]


@numba.njit(cache=True, parallel=True)
def _shifted_transpose_times(indptr, indices, values, grad_and_psi, shift, steps, batch, sums):
    """Per synapse ``(i, j)`` and non-zero ``s = X[k B + b, i]``, ``t = k + n_ij``:
    ``sums[c, i, j] += s (grad[b, t, j], psi[b, t, j])`` (the two interleaved in ``grad_and_psi``),
    ``c`` the block of :data:`GRADIENT_BLOCKS` holding ``b``; one thread per block (a sample's rows
    stay in cache; each block owns its partial sums)."""
    blocks, n_post = sums.shape[0], sums.shape[2]
    size = (batch + blocks - 1) // blocks
    for block in numba.prange(blocks):
        block_sums = sums[block]
        for b in range(block * size, min(batch, (block + 1) * size)):
            both = grad_and_psi[b]
            for k in range(steps):
                r = k * batch + b
                for p in range(indptr[r], indptr[r + 1]):
                    a = values[p]
                    row, shift_row = block_sums[indices[p]], shift[indices[p]]
                    for j in range(n_post):
                        t = k + shift_row[j]
                        row[j, 0] += a * both[t, j, 0]
                        row[j, 1] += a * both[t, j, 1]


@numba.njit(cache=True, parallel=True)
def _shifted_input_gradient(weight, shift, grad, steps, batch, out):
    """``out[i, k B + b] = sum_j W_ij grad[j, (k + n_ij) B + b]``, ``j`` ascending (``grad`` ``(n_post, (T + D
    + 1) B)``, zero past ``T``): per synapse one contiguous multiply-add over all steps and samples;
    one thread per presynaptic neuron ``i``."""
    n_pre, n_post = weight.shape
    length = steps * batch
    for i in numba.prange(n_pre):
        row = out[i]
        row[:] = 0.0
        for j in range(n_post):
            w = weight[i, j]
            source = grad[j, shift[i, j] * batch:shift[i, j] * batch + length]
            for r in range(length):
                row[r] += w * source[r]


class _ShiftedProjection(torch.autograd.Function):
    """Arrivals through synapses at their rounded delays; exact gradients for the spikes and the
    weights, the smoothed surrogate for the delays (:func:`shifted_projection`)."""

    @staticmethod
    def forward(ctx, pre: Tensor, weight: Tensor, delay: Tensor, sigma: float, max_delay: int) -> Tensor:
        steps, batch, n_pre = pre.shape
        dense = pre.detach().reshape(-1, n_pre).contiguous().numpy()
        indptr = _row_counts(dense)
        indices, values = np.empty(indptr[-1], dtype=np.int64), np.empty(indptr[-1], dtype=dense.dtype)
        _compress(dense, indptr, indices, values)
        # the narrowest integer that holds the delays: with the weights, the synapse table stays in cache
        shift = rounded(delay, max_delay).astype(np.uint8 if max_delay <= np.iinfo(np.uint8).max else np.int32)
        w = weight.detach().contiguous().numpy()
        # rows past T catch the arrivals that fall outside the run, so the kernel never branches
        out = np.zeros((batch, steps + max_delay + 1, w.shape[1]), dtype=dense.dtype)
        _shifted_times(indptr, indices, values, w, shift, steps, batch, out)
        ctx.save_for_backward(weight)
        ctx.compressed, ctx.shift = (indptr, indices, values), shift
        ctx.sigma, ctx.max_delay, ctx.steps, ctx.batch = sigma, max_delay, steps, batch
        return torch.from_numpy(out[:, :steps]).permute(1, 0, 2).contiguous()

    @staticmethod
    def backward(ctx, grad: Tensor):
        (weight,) = ctx.saved_tensors
        indptr, indices, values = ctx.compressed
        w = weight.detach().contiguous().numpy()
        steps, batch, max_delay = ctx.steps, ctx.batch, ctx.max_delay
        # (B, T + D + 1, n_post), zero past T: one sample's gradient over a delay's reach stays in cache
        by_sample = np.zeros((batch, steps + max_delay + 1, w.shape[1]), dtype=w.dtype)
        by_sample[:, :steps] = grad.to(weight.dtype).permute(1, 0, 2).numpy()
        # the gradient and psi side by side: the backward kernel reads both from one cache line
        both = np.empty(by_sample.shape + (2,), dtype=w.dtype)
        _smoothed_gradient(by_sample, steps, gradient_window(ctx.sigma, max_delay).astype(w.dtype), both)
        blocks = min(GRADIENT_BLOCKS, batch)
        sums = np.zeros((blocks,) + w.shape + (2,), dtype=w.dtype)
        _shifted_transpose_times(indptr, indices, values, both, ctx.shift, steps, batch, sums)
        total = sums.sum(axis=0)
        grad_weight = np.ascontiguousarray(total[..., 0])
        grad_delay = total[..., 1] * w
        grad_pre = None
        if ctx.needs_input_grad[0]:
            # (n_post, (T + D + 1) B): a synapse's delayed gradient is one contiguous stretch
            by_target = np.ascontiguousarray(by_sample.transpose(2, 1, 0)).reshape(w.shape[1], -1)
            grad_pre = np.empty((w.shape[0], steps * batch), dtype=w.dtype)
            _shifted_input_gradient(w, ctx.shift, by_target, steps, batch, grad_pre)
            grad_pre = torch.from_numpy(grad_pre.T.reshape(steps, batch, -1).copy())
        return grad_pre, torch.from_numpy(grad_weight), torch.from_numpy(grad_delay), None, None


def shifted_projection(pre: Tensor, weight: Tensor, delay: Tensor, sigma: float, max_delay: int,
                       mask: Tensor | None = None) -> Tensor:
    """Arrivals ``A`` ``(T, B, n_post)`` of spikes ``pre`` ``(T, B, n_pre)`` through synapses at their rounded
    delays, with a smoothed surrogate gradient for the real delays (the ``"shift"`` method).

    Forward, the network the engine runs: ``n_ij = round(c_ij)``, ``c_ij = clamp(d_ij, 1, max_delay)``::

        A[k, b, j] = sum_i pre[k - n_ij, b, i] W_ij

    with its exact gradients for ``pre`` and ``W``. For the delays, the gradient they would get if
    each spike arrived spread by a Gaussian ``G`` of width ``sigma`` (steps) around ``k + d_ij``
    (``A(k) = sum_m pre[m] W G(k - m - d)``, so ``dA(k)/dd = -sum_m pre[m] W G'(k - m - d)``)::

        dL/dd_ij = W_ij sum_{m, b} pre[m, b, i] Psi(m + n_ij, b, j),
        Psi(t, b, j) = sum_{u=-R..R} (u / sigma^2) G(u) dL/dA[t + u, b, j]

    (:func:`gradient_window`), taken at the rounded delay ``n_ij`` that the forward pass runs,
    so the gradient is constant within a rounding step (evaluating ``Psi`` between steps would
    read two more values per synapse and spike, at 2.7x the cost of the backward kernel on this
    machine). This is the straight-through idea of surrogate spikes applied to the delay, and
    the delay gradient of SLAYER (Shrestha & Orchard, NeurIPS 2018: the derivative of a delayed
    response by its delay is minus its time derivative), taken of the Gaussian-smoothed response
    as DCLS smooths it (:func:`delayed_projection` differs in running the smoothed kernel forward
    too). A wide ``sigma`` lets a delay feel errors far from its position; ``sigma = 0`` freezes
    the delays. The work is ``nnz(pre) n_post`` per pass, against ``nnz(pre) (max_delay + 1)
    n_post`` for DCLS's kernel, and the forward pass is always the engine's. CPU tensors only.
    Every output element is summed in a fixed order that does not depend on the threads (forward:
    one thread per sample ``b``; weight and delay gradients: partial sums over fixed blocks of
    samples, :data:`GRADIENT_BLOCKS`, added in block order; spike gradients: one thread per
    presynaptic neuron), so results repeat bit for bit at any thread count.
    """
    what = "shifted_projection"
    _check_projection(what, pre, weight, delay, mask, max_delay, sigma)
    if mask is not None:
        weight = weight * mask.to(weight.dtype)
    if pre.device.type != "cpu" or weight.device.type != "cpu":
        raise TrainingError(f"{what}: the shift method runs on CPU tensors; got {pre.device} and {weight.device} "
                            "(use delayed_projection, DCLS, on other devices)")
    return _ShiftedProjection.apply(pre.to(weight.dtype), weight, delay, float(sigma), int(max_delay))
