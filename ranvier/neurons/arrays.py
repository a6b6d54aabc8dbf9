"""Array helpers of the models written once for numpy and torch (CfC, LTC, ELM).

A function that takes ``xp`` (``numpy`` or ``torch``) as its first argument runs the same code in
either library (``xp is not np`` picks torch's fused kernels: a ``hasattr`` on the numpy module
costs a failed module ``__getattr__``, microseconds, once per call); the rest tell the two apart
by the methods their arrays have. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import InputError


def sigmoid(xp: Any, x: Any) -> Any:
    """Logistic function; torch's fused kernel where there is one, else the overflow-free tanh form."""
    if xp is not np:
        return xp.sigmoid(x)
    return 0.5 * xp.tanh(0.5 * x) + 0.5


def time_steps(x: Any) -> list:
    """``x[:, t]`` for every ``t``; torch's unbind, so the backward pass stacks once instead of once per step."""
    if hasattr(x, "unbind"):
        return list(x.unbind(1))
    return [x[:, t] for t in range(x.shape[1])]


def unroll(xp: Any, inputs: Any, step: Callable[[Any, Any, Any], tuple[Any, Any]], state: Any,
           timespans: Any) -> tuple[Any, Any]:
    """Apply ``step(input_t, state, elapsed) -> (output, state)`` to each step's input in turn.

    ``elapsed`` is 1 when ``timespans`` is None, else column ``t`` of ``timespans`` ``(batch, T)``;
    returns the outputs stacked along axis 1 and the last state.
    """
    outputs = []
    for t, input_t in enumerate(inputs):
        elapsed = 1.0 if timespans is None else timespans[:, t: t + 1]
        output, state = step(input_t, state, elapsed)
        outputs.append(output)
    return xp.stack(outputs, 1), state


def contiguous(x: Any) -> Any:
    """``x`` in row-major layout: torch's batched matmul falls back to a loop of copies on transposed operands,
    and elementwise results inherit their operands' layout."""
    return x.contiguous() if hasattr(x, "contiguous") else np.ascontiguousarray(x)


def cast_floats(weights: Any, dtype: Any) -> Any:
    """A copy of a weights dataclass (or tuple, or array) with every numpy array cast to ``dtype``."""
    if isinstance(weights, np.ndarray):
        return weights.astype(dtype)
    if isinstance(weights, tuple):
        return tuple(cast_floats(item, dtype) for item in weights)
    if hasattr(weights, "__dataclass_fields__"):
        return type(weights)(**{name: cast_floats(getattr(weights, name), dtype)
                                for name in weights.__dataclass_fields__})
    return weights


def remembered_step(model: Any, n: int, dt: float, make: Callable[[], Any]) -> Any:
    """``make()``, the model's step for ``n`` units over ``dt``, made once per weights object and time unit.

    An engine population asks for its step at every update (numpy) and every run (the compiled
    backends, which compile once per step function): both then get the same object.
    """
    kept = model.__dict__.get("_array_steps")
    if kept is None or kept[0] is not model.weights:
        kept = model.__dict__["_array_steps"] = (model.weights, {})
    key = (n, dt, model.time_unit)
    if key not in kept[1]:
        kept[1][key] = make()
    return kept[1][key]


def check_sequence_inputs(model: str, n_in: int, inputs: np.ndarray,
                          timespans: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
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
