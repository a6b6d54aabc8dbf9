"""SLTT and SLTT-K: Spatial Learning Through Time for a :class:`~ranvier.train.SpikingModule`.

Meng et al. 2023, "Towards Memory- and Time-Efficient Backpropagation for Training Spiking Neural
Networks", ICCV, Sec. 4: the temporal routes ``v[k-1] -> v[k]`` and ``I[k-1] -> I[k]`` are left
out of the backward pass; only the spatial route (a spike, through its projection and delay,
into the target's membrane) carries gradient, so gradients are computed online with memory
independent of ``T``. SLTT-K backpropagates from ``K`` random time steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from ..errors import TrainingError
from ..neurons.lif import FIRST_RECEPTOR, RECEPTOR_CONSTS, REFRACTORY, V
from .recurrence import lif_step, surrogate_derivative

#: steps per chunk of SLTT's input projections (a fixed size, so memory stays independent of T)
_CHUNK = 16


def sltt_backward(module, x: Tensor | Mapping[str, Tensor], target: Tensor, readout: str,
                  step_loss: Callable[[Tensor, Tensor], Tensor] | None = None, k: int | None = None,
                  generator: torch.Generator | None = None) -> tuple[float, Tensor]:
    """SLTT (``k=None``) or SLTT-K: accumulate weight gradients into ``.grad``, online.

    Objective as in :meth:`loss`: the mean over steps (over ``k`` random steps for SLTT-K) of
    ``step_loss``. Errors follow only the spatial routes (module docstring) and the reset is
    left out of the backward pass. A population's error trails the readout's by its lag (the
    delays and current steps on its way to the readout), so the method keeps spikes,
    surrogate slopes and errors of the last ``max lag + max delay + 2`` steps only: memory
    does not grow with ``T``. Returns the loss and the readout's voltages ``(T, B, n)``.
    """
    module.check_readout(readout)
    for population in module.populations.values():
        if population.stepper is not None:
            raise TrainingError(f"SLTT: population {population.name!r} is not trained through the LIF recurrence; "
                                "SLTT covers LIF populations (generic=False); use loss() (BPTT)")
    for projection in module.projections:
        if projection.delay_groups or projection.learned:
            raise TrainingError(f"SLTT: projection {projection.name!r} has per-synapse delays; SLTT needs one "
                                "delay per projection; use loss() (BPTT)")
    step_loss = step_loss or torch.nn.functional.cross_entropy
    inputs = module.as_inputs(x)
    steps, batch = next(iter(inputs.values())).shape[:2]
    if k is not None and not 1 <= k <= steps:
        raise TrainingError(f"SLTT-K: k must be in [1, {steps}], got {k!r}")
    chosen = set(range(steps)) if k is None else set(torch.randperm(steps, generator=generator)[:k].tolist())
    lags, spatial = module.lags(readout)
    window = max(lags.values()) + max((p.delay for p in module.projections), default=1) + 2
    spikes: dict[str, dict[int, Tensor]] = {name: {} for name in module.populations}
    slopes: dict[str, dict[int, Tensor]] = {name: {} for name in module.populations}
    actives: dict[str, dict[int, Tensor]] = {name: {} for name in module.populations}
    errors: dict[str, dict[int, Tensor]] = {name: {} for name in lags}
    grads = [torch.zeros_like(w) for w in module.weights]
    weights = [module.weight(i).detach() for i in range(len(module.projections))]
    layers = {name: module.layer_constants(name) for name in module.populations}
    states = {name: layers[name].initial(batch) for name in module.populations}
    scale = module.readout_scale(readout)
    readout_v = []
    total_loss = 0.0
    order = sorted(lags, key=lags.get)

    def spikes_at(name: str, step: int) -> Tensor | None:
        if step < 0:
            return None
        return inputs[name][step] if name in inputs else spikes[name].get(step)

    def arrival_error(p, arrival: int) -> Tensor | None:
        """dL/dA for projection ``p``'s arrivals in step ``arrival`` (None when zero)."""
        if module.populations[p.post].delta[p.receptor]:
            return errors[p.post].get(arrival)
        error = errors[p.post].get(arrival + 1)
        if error is None:
            return None
        consts = getattr(module, f"_consts_{p.post}")
        return error * consts[FIRST_RECEPTOR + RECEPTOR_CONSTS * p.receptor + 1]

    # projections from inputs work on chunks of steps: one larger matmul instead of many small
    # ones; a chunk's size is fixed, so memory still does not grow with T
    chunks: dict[int, tuple[int, Tensor]] = {}
    pending: dict[int, list[tuple[int, Tensor]]] = {i: [] for i, p in enumerate(module.projections)
                                                     if p.pre in inputs}

    def input_current(i: int, p, t: int) -> Tensor | None:
        if t % _CHUNK == 0:
            first = max(t, p.delay)
            last = min(t + _CHUNK, steps)
            block = inputs[p.pre][first - p.delay:last - p.delay]
            chunks[i] = (first, (block.reshape(-1, block.shape[2]) @ weights[i]).reshape(
                block.shape[0], batch, -1) if block.shape[0] else block)
        first, block = chunks[i]
        return block[t - first] if first <= t < first + block.shape[0] else None

    def flush(i: int) -> None:
        if pending[i]:
            pre_steps = torch.tensor([step for step, _ in pending[i]])
            pre = inputs[module.projections[i].pre][pre_steps]
            post_error = torch.stack([error for _, error in pending[i]])
            grads[i] += pre.reshape(-1, pre.shape[2]).T @ post_error.reshape(-1, post_error.shape[2])
            pending[i].clear()

    with torch.no_grad():
        for t in range(steps + max(lags.values())):
            if t < steps:
                for name in module.populations:
                    now: list[Tensor | None] = [None] * len(module.populations[name].receptors)
                    for i, p in enumerate(module.projections):
                        if p.post != name:
                            continue
                        if p.pre in inputs:
                            current = input_current(i, p, t)
                        else:
                            pre = spikes_at(p.pre, t - p.delay)
                            current = None if pre is None else pre @ weights[i]
                        if current is not None:
                            now[p.receptor] = current if now[p.receptor] is None else now[p.receptor] + current
                    state = states[name]
                    active = state[REFRACTORY] <= 0
                    fired, v_new = lif_step(layers[name], state, now)
                    spikes[name][t] = fired
                    actives[name][t] = active
                    slopes[name][t] = surrogate_derivative(v_new - layers[name].v_th, layers[name].scale,
                                                           module.slope) * active
                readout_v.append(states[readout][V])
            for name in order:
                step = t - lags[name]
                if not 0 <= step < steps:
                    continue
                if name == readout:
                    if step not in chosen:
                        continue
                    with torch.enable_grad():
                        v_now = readout_v[step].clone().requires_grad_(True)
                        loss = step_loss(v_now / scale, target) / len(chosen)
                        (grad_v,) = torch.autograd.grad(loss, v_now)
                    total_loss += float(loss)
                    error = grad_v * (1 - spikes[name][step]) * actives[name][step]
                else:
                    grad_s = None
                    for i in spatial:
                        p = module.projections[i]
                        if p.pre != name or p.post not in lags:
                            continue
                        post_error = arrival_error(p, step + p.delay)
                        if post_error is not None:
                            term = post_error @ weights[i].T
                            grad_s = term if grad_s is None else grad_s + term
                    error = None if grad_s is None else grad_s * slopes[name][step]
                if error is not None:
                    errors[name][step] = error
            for i, p in enumerate(module.projections):
                if p.post not in lags:
                    continue
                arrival = t - lags[p.post] - (0 if module.populations[p.post].delta[p.receptor] else 1)
                post_error = arrival_error(p, arrival) if arrival < steps else None
                if post_error is None or arrival - p.delay < 0:
                    continue
                if p.pre in inputs:
                    pending[i].append((arrival - p.delay, post_error))
                    if len(pending[i]) == _CHUNK:
                        flush(i)
                else:
                    grads[i] += spikes_at(p.pre, arrival - p.delay).T @ post_error
            for table in (*spikes.values(), *slopes.values(), *actives.values(), *errors.values()):
                for old in [step for step in table if step < t - window]:
                    del table[old]
        for i in pending:
            flush(i)
    for i, weight in enumerate(module.weights):
        grad = grads[i] * getattr(module, f"_mask{i}")
        weight.grad = grad if weight.grad is None else weight.grad + grad
    return total_loss, torch.stack(readout_v)
