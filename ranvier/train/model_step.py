"""Any spiking model's own step, run in torch for training: no second copy of its equations.

A model-language step (``step(state, consts, arriving, i, c, k, key)``, see
:mod:`ranvier.engine.model`) is plain Python over arrays. :func:`torch_step` rebuilds the same
code object with torch in place of the helpers it calls: ``select`` becomes ``torch.where``,
``store_where`` a functional write, ``exp``/``tanh``/``sin_cos`` torch's, numpy's ``sqrt``,
``abs``, ... torch's, and ``spike(x)`` — the Heaviside step on every backend — the
surrogate-gradient spike (fast sigmoid, Zenke & Ganguli 2018). The state, constants and
arrivals it indexes become proxies over torch tensors ``(B, n)``: ``state[ROW, i]`` reads a row,
``state[ROW, i] = value`` replaces it (no in-place write, so autograd sees every step).

The reset goes through ``select(fired, v_reset, v_new)``, which passes no gradient through the
spike into the reset (the "detached reset" of :class:`~ranvier.train.SpikingModule`).
"""

from __future__ import annotations

import contextvars
import types
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..engine import model as model_language
from ..errors import TrainingError
from .recurrence import surrogate_spike

#: (scale, slope) of the surrogate spike while a population's step runs
_SURROGATE: contextvars.ContextVar[tuple[Tensor, float]] = contextvars.ContextVar("surrogate")


def _as_condition(condition):
    if isinstance(condition, Tensor) and condition.dtype != torch.bool:
        return condition != 0
    return condition


def _select(condition, if_true, if_false):
    return torch.where(_as_condition(condition), if_true, if_false)


def _store_where(array, row, i, condition, value):
    array[row, i] = torch.where(_as_condition(condition), value, array[row, i])


def _spike(x):
    scale, slope = _SURROGATE.get()
    return surrogate_spike(x, scale, slope)


def _any_true(condition):
    return bool(torch.any(_as_condition(condition)))


def _exp(x):
    """``e^x`` with ``x`` capped where the result would overflow, minus a margin of e^8.

    An exploding model (AdEx's exponential term at a coarse ``dt``) would otherwise produce an
    infinity that its reset discards in the forward pass but that turns the backward pass's
    ``0 * inf`` into NaN weights. A capped value still crosses any threshold, so the spikes
    and resets are the engine's.
    """
    if not isinstance(x, Tensor):
        return torch.exp(torch.as_tensor(x))
    return torch.exp(torch.clamp(x, max=float(np.log(torch.finfo(x.dtype).max)) - 8.0))


def _sin_cos(x):
    return torch.sin(x), torch.cos(x)


#: model-language helper -> its torch version
_TORCH_HELPERS: dict[object, Callable] = {
    model_language.select: _select, model_language.store_where: _store_where, model_language.spike: _spike,
    model_language.any_true: _any_true, model_language.sin_cos: _sin_cos, model_language.exp: _exp,
    model_language.tanh: torch.tanh,
}
#: helpers a trainable step may not call
_NOT_DIFFERENTIABLE = {model_language.uniform01: "draws random numbers (uniform01)"}


class _TorchNumpy:
    """The few numpy functions a step may call, on torch tensors (others are a TrainingError)."""

    inf = float("inf")
    sqrt = staticmethod(torch.sqrt)
    exp = staticmethod(_exp)
    abs = staticmethod(torch.abs)
    floor = staticmethod(torch.floor)
    minimum = staticmethod(torch.minimum)
    maximum = staticmethod(torch.maximum)
    where = staticmethod(_select)

    @staticmethod
    def float32(value):
        return value  # the module computes in its own dtype

    float64 = float32

    def __getattr__(self, name: str):
        raise TrainingError(f"np.{name} in a model's step has no torch version; the model cannot train")


class _TorchLanguage:
    """``ranvier``, ``ranvier.language`` or ``ranvier.engine.model`` as a step sees them in torch."""

    def __init__(self, module: types.ModuleType) -> None:
        self._module = module

    def __getattr__(self, name: str):
        value = getattr(self._module, name)
        return _TORCH_HELPERS.get(value, value)


_NUMPY = _TorchNumpy()
_LANGUAGE_MODULES = ("ranvier", "ranvier.language", "ranvier.engine.model")


def _torch_value(value, seen: dict[int, object]):
    """What a global a step reads becomes in torch."""
    if isinstance(value, types.ModuleType):
        if value is np:
            return _NUMPY
        return _TorchLanguage(value) if value.__name__ in _LANGUAGE_MODULES else value
    try:
        if value in _NOT_DIFFERENTIABLE:
            raise TrainingError(f"its step {_NOT_DIFFERENTIABLE[value]}, which has no surrogate in torch")
        if value in _TORCH_HELPERS:
            return _TORCH_HELPERS[value]
    except TypeError:  # unhashable
        return value
    function = getattr(value, "py_func", value)  # a numba dispatcher's Python function
    if isinstance(function, types.FunctionType) and not function.__module__.startswith("torch"):
        return torch_step(function, seen)
    return value


def torch_step(function: Callable, seen: dict[int, object] | None = None) -> Callable:
    """``function`` (a step or a helper it calls) with its globals mapped to their torch versions."""
    seen = {} if seen is None else seen
    if id(function) in seen:
        return seen[id(function)]
    namespace = dict(function.__globals__)
    rebuilt = types.FunctionType(function.__code__, namespace, function.__name__, function.__defaults__,
                                 function.__closure__)
    seen[id(function)] = rebuilt
    for name in _global_names(function.__code__):
        if name in namespace:
            namespace[name] = _torch_value(namespace[name], seen)
    return rebuilt


def _global_names(code: types.CodeType):
    yield from code.co_names
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _global_names(constant)


class _Rows:
    """``state`` as a step indexes it: ``state[row, i]`` is row ``row`` ``(B, n)``; writes replace it."""

    def __init__(self, rows: list[Tensor]) -> None:
        self.rows = rows

    def __getitem__(self, key):
        return self.rows[key[0]]

    def __setitem__(self, key, value) -> None:
        self.rows[key[0]] = value


class _Table:
    """``consts[row, c]``: row ``row`` of the constants ``(n,)``, broadcast over the batch."""

    def __init__(self, table: Tensor) -> None:
        self.table = table

    def __getitem__(self, key):
        return self.table[key[0]]


class _Vector:
    """``arriving[r][i]``: the arrivals of receptor ``r`` ``(B, n)``."""

    def __init__(self, values: Tensor) -> None:
        self.values = values

    def __getitem__(self, index):
        return self.values


class ModelStep:
    """One population's model step in torch: ``spikes, rows = stepper(rows, arriving, k, consts, scale)``.

    ``rows`` is the state, one ``(B, n)`` tensor per state variable; ``arriving`` one tensor (or
    None: nothing arrives) per receptor; ``consts`` the model's constants ``(n_consts, n)``.
    ``scale`` and the stepper's ``slope`` shape the surrogate of every ``spike(x)`` in the step:
    ``dS/dx = 1 / (scale (1 + slope |x| / scale)^2)``. Constants and scale are arguments, not
    attributes, so they follow the module's buffers to another dtype or device.
    """

    def __init__(self, step: Callable, slope: float) -> None:
        self.step = torch_step(step)  # a TrainingError saying why when the step cannot run in torch
        self.slope = float(slope)

    def __call__(self, rows: Sequence[Tensor], arriving: Sequence[Tensor | None], k: int, consts: Tensor,
                 scale: Tensor) -> tuple[Tensor, list[Tensor]]:
        state = _Rows(list(rows))
        batch_shape = rows[0].shape
        zeros = None
        vectors = []
        for values in arriving:
            if values is None:
                zeros = torch.zeros(batch_shape, dtype=rows[0].dtype, device=rows[0].device) if zeros is None else zeros
                values = zeros
            vectors.append(_Vector(values))
        token = _SURROGATE.set((scale, self.slope))
        try:
            # key 0: uniform01, the one helper that reads it, has no torch version
            count = self.step(state, _Table(consts), tuple(vectors), slice(None), slice(None), k, 0)
        finally:
            _SURROGATE.reset(token)
        if not isinstance(count, Tensor):
            count = torch.zeros(batch_shape, dtype=rows[0].dtype, device=rows[0].device) + count
        # a neuron whose state stopped being finite returns NOT_FINITE (-1): the loss shows it as NaN
        return count.clamp(min=0).to(rows[0].dtype), state.rows


__all__ = ["ModelStep", "torch_step"]
