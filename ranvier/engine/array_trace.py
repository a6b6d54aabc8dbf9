"""Recording a value model's array step: the operations one call of ``function(xp, *arrays)`` performs.

CfC, LTC and ELM define their step once, as a function of the array namespace ``xp`` (numpy or
torch). Called with a :class:`_Namespace` as ``xp`` and traced arrays as inputs, the function
records each operation it performs (:func:`trace`); the compiled backends write the record as one
compiled function (:mod:`ranvier.engine.backends.array_program`). The trace computes every value
with numpy as it goes, so shapes are known and fixed, and arrays the function reads that are not
traced inputs (its weights) become the trace's constants, copied when it is traced.

Recorded: elementwise ``+ - * /``, ``tanh``, ``exp``, ``abs``, ``log1p`` and negation with numpy's
broadcasting, matrix products (batched over leading axes), basic indexing (slices, integers,
``None``), ``.T``, ``reshape``, ``split`` and concatenation, whether the function calls them as
numpy functions, operators or the torch functions that ``xp is not np`` branches pick; those
(``lerp``, ``sigmoid``, ``addmm``) are recorded with their numpy branch's formula (``start +
weight (end - start)``, ``tanh(x / 2) / 2 + 1 / 2``, ``bias + x @ w``), so the record holds the
numpy reference's expressions in its order. Anything else (an ``out=`` argument, ``xp.cos``, an
array index) raises :class:`UntraceableError`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_NUMPY_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}
_NUMPY_UNARY = {"tanh": np.tanh, "exp": np.exp, "abs": np.abs, "log1p": np.log1p, "neg": np.negative}
#: numpy ufuncs a traced array records when numpy code calls them on it
_UFUNCS = {np.add: "add", np.subtract: "sub", np.multiply: "mul", np.divide: "div", np.tanh: "tanh",
           np.exp: "exp", np.absolute: "abs", np.log1p: "log1p", np.negative: "neg"}
#: each traced function's traces by the shapes of its inputs: a model hands the same function to every
#: lowering, and tracing it again would cost about half a millisecond
_BY_FUNCTION: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class UntraceableError(TypeError):
    """The array function did something the tracer does not record."""


class _Traced:
    """An array of the traced function: node ``index`` of its trace, with its value computed by numpy."""

    def __init__(self, trace: _Trace, index: int, value: np.ndarray):
        self.trace = trace
        self.index = index
        self.value = value

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def ndim(self) -> int:
        return self.value.ndim

    def dim(self) -> int:
        return self.value.ndim

    @property
    def T(self) -> _Traced:  # noqa: N802 - numpy's name
        ndim = self.value.ndim
        return self.trace.view(self, tuple(("axis", axis, 0) for axis in reversed(range(ndim))), (), self.value.T)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs or ufunc not in _UFUNCS:
            raise UntraceableError(f"numpy's {ufunc.__name__}.{method} on a traced array is not traced")
        name = _UFUNCS[ufunc]
        return self.trace.binary(name, *inputs) if name in _NUMPY_BINARY else self.trace.unary(name, *inputs)

    def __add__(self, other): return self.trace.binary("add", self, other)
    def __radd__(self, other): return self.trace.binary("add", other, self)
    def __sub__(self, other): return self.trace.binary("sub", self, other)
    def __rsub__(self, other): return self.trace.binary("sub", other, self)
    def __mul__(self, other): return self.trace.binary("mul", self, other)
    def __rmul__(self, other): return self.trace.binary("mul", other, self)
    def __truediv__(self, other): return self.trace.binary("div", self, other)
    def __rtruediv__(self, other): return self.trace.binary("div", other, self)
    def __neg__(self): return self.trace.unary("neg", self)
    def __matmul__(self, other): return self.trace.matmul(self, other)
    def __rmatmul__(self, other): return self.trace.matmul(other, self)

    def __getitem__(self, key):
        axes, fixed = _index_map(key, self.value.shape)
        return self.trace.view(self, axes, fixed, self.value[key])

    def reshape(self, *shape) -> _Traced:
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple | list) else shape
        return self.trace.reshape(self, tuple(int(size) for size in shape))

    def split(self, sizes: Sequence[int], dim: int = -1) -> list[_Traced]:
        axis = dim % self.value.ndim
        blocks, start = [], 0
        for size in sizes:
            key = (slice(None),) * axis + (slice(start, start + size),)
            blocks.append(self[key])
            start += size
        return blocks

    def __getattr__(self, name: str):
        raise UntraceableError(f"traced arrays have no {name!r}")


def _index_map(key: Any, shape: tuple[int, ...]) -> tuple[tuple, tuple]:
    """Basic indexing ``key`` (slices of unit step, integers, None, one Ellipsis) as a view's map: per axis
    of the view, ``("new",)`` or ``("axis", base axis, first index)``, and the ``(base axis, index)`` pairs
    that integers fix."""
    parts = list(key) if isinstance(key, tuple) else [key]
    if any(part is Ellipsis for part in parts):
        at = parts.index(Ellipsis)
        used = sum(1 for part in parts if part is not None and part is not Ellipsis)
        parts[at:at + 1] = [slice(None)] * (len(shape) - used)
    axes, fixed, axis = [], [], 0
    for part in parts:
        if part is None:
            axes.append(("new",))
            continue
        if isinstance(part, slice):
            start, _, step = part.indices(shape[axis])
            if step != 1:
                raise UntraceableError(f"a slice with step {step} of a traced array")
            axes.append(("axis", axis, start))
        elif isinstance(part, int | np.integer):
            fixed.append((axis, int(part) % shape[axis]))
        else:
            raise UntraceableError(f"indexing a traced array with {part!r}: only slices, integers and None")
        axis += 1
    axes += [("axis", rest, 0) for rest in range(axis, len(shape))]
    return tuple(axes), tuple(fixed)


def _plain(x: Any) -> Any:
    """A constant operand as numpy: a float64 array, or a Python float."""
    if isinstance(x, int | float | np.floating | np.integer):
        return float(x)
    array = np.asarray(x, dtype=np.float64)
    return float(array) if array.ndim == 0 else array


def _numeric(x: Any) -> Any:
    """A traced array's value, or a constant as :func:`_plain` has it."""
    return x.value if isinstance(x, _Traced) else _plain(x)


class _Trace:
    """The operations of one call: nodes (inputs, results, views), constants and operations in order."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []
        #: per node: ("input", position), ("result",) or ("view", base node, axes, fixed) (see
        #: :func:`_index_map`; the base is never itself a view)
        self.nodes: list[tuple] = []
        self.operations: list[tuple] = []
        self.constants: list[np.ndarray] = []

    def _node(self, value: np.ndarray, how: tuple) -> _Traced:
        value = np.asarray(value, dtype=np.float64)
        if value.ndim == 0:
            raise UntraceableError("a traced value of no dimensions")
        self.shapes.append(value.shape)
        self.nodes.append(how)
        return _Traced(self, len(self.nodes) - 1, value)

    def input(self, value: np.ndarray) -> _Traced:
        return self._node(value, ("input", sum(1 for how in self.nodes if how[0] == "input")))

    def _operand(self, x: Any) -> tuple:
        """``("node", index)``, ``("constant", index)`` or ``("scalar", value)``."""
        if isinstance(x, _Traced):
            return ("node", x.index)
        plain = _plain(x)
        if isinstance(plain, float):
            return ("scalar", plain)
        self.constants.append(np.ascontiguousarray(plain))
        return ("constant", len(self.constants) - 1)

    def _result(self, value: np.ndarray, operation: tuple) -> _Traced:
        node = self._node(value, ("result",))
        self.operations.append((operation[0], node.index, *operation[1:]))
        return node

    def binary(self, name: str, a: Any, b: Any) -> Any:
        if not isinstance(a, _Traced) and not isinstance(b, _Traced):
            return _NUMPY_BINARY[name](a, b)
        value = _NUMPY_BINARY[name](_numeric(a), _numeric(b))
        return self._result(value, ("binary", name, self._operand(a), self._operand(b)))

    def unary(self, name: str, x: Any) -> Any:
        if not isinstance(x, _Traced):
            return _NUMPY_UNARY[name](x)
        return self._result(_NUMPY_UNARY[name](x.value), ("unary", name, self._operand(x)))

    def matmul(self, a: Any, b: Any) -> _Traced:
        left, right = _numeric(a), _numeric(b)
        if np.ndim(left) < 2 or np.ndim(right) < 2:
            raise UntraceableError("a matrix product of an operand with fewer than two dimensions")
        return self._result(left @ right, ("matmul", self._operand(a), self._operand(b)))

    def concatenate(self, parts: Sequence[Any], axis: int) -> _Traced:
        value = np.concatenate([_numeric(part) for part in parts], axis)
        return self._result(value, ("concatenate", axis % value.ndim, [self._operand(part) for part in parts]))

    def reshape(self, base: _Traced, shape: tuple[int, ...]) -> _Traced:
        return self._result(base.value.reshape(shape), ("reshape", self._operand(base)))

    def view(self, base: _Traced, axes: tuple, fixed: tuple, value: np.ndarray) -> _Traced:
        """A view of ``base`` (a view of a view is made a view of the first one's base)."""
        how = self.nodes[base.index]
        if how[0] == "view":
            _, root, root_axes, root_fixed = how
            composed, pinned = [], list(root_fixed)
            for axis in axes:
                if axis[0] == "new" or root_axes[axis[1]][0] == "new":
                    composed.append(("new",))
                else:
                    _, root_axis, start = root_axes[axis[1]]
                    composed.append(("axis", root_axis, start + axis[2]))
            for view_axis, index in fixed:
                if root_axes[view_axis][0] == "axis":
                    _, root_axis, start = root_axes[view_axis]
                    pinned.append((root_axis, start + index))
            return self._node(value, ("view", root, tuple(composed), tuple(pinned)))
        return self._node(value, ("view", base.index, axes, fixed))


class _Namespace:
    """The ``xp`` a traced function is called with: the torch-style functions its torch branches call,
    recorded with the formulas of their numpy branches."""

    def __init__(self, trace: _Trace):
        self._trace = trace

    def _no_out(self, out: Any) -> None:
        if out is not None:
            raise UntraceableError("out= arguments are not traced")

    def tanh(self, x: Any, out: Any = None) -> Any:
        self._no_out(out)
        return self._trace.unary("tanh", x)

    def exp(self, x: Any, out: Any = None) -> Any:
        self._no_out(out)
        return self._trace.unary("exp", x)

    def abs(self, x: Any, out: Any = None) -> Any:
        self._no_out(out)
        return self._trace.unary("abs", x)

    def log1p(self, x: Any, out: Any = None) -> Any:
        self._no_out(out)
        return self._trace.unary("log1p", x)

    def sigmoid(self, x: Any) -> Any:
        return 0.5 * self.tanh(0.5 * x) + 0.5

    def lerp(self, start: Any, end: Any, weight: Any, out: Any = None) -> Any:
        self._no_out(out)
        return start + weight * (end - start)

    def addmm(self, bias: Any, x: Any, weight: Any, out: Any = None) -> Any:
        self._no_out(out)
        return bias + x @ weight

    def concatenate(self, parts: Sequence[Any], axis: int = 0, dim: int | None = None) -> Any:
        if not any(isinstance(part, _Traced) for part in parts):
            return np.concatenate(parts, axis if dim is None else dim)
        return self._trace.concatenate(parts, axis if dim is None else dim)

    cat = concatenate

    def __getattr__(self, name: str):
        raise UntraceableError(f"xp.{name} is not traced")


@dataclass(frozen=True)
class Trace:
    """What one call did: its nodes and their shapes, its operations in order, its constants, and which
    nodes it returned (see :class:`_Trace` for the node and operation records)."""

    shapes: tuple[tuple[int, ...], ...]
    nodes: tuple[tuple, ...]
    operations: tuple[tuple, ...]
    constants: tuple[np.ndarray, ...]
    outputs: tuple[int, ...]
    #: whether the function returned a tuple (else its one array)
    returns_tuple: bool = True

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        return [self.shapes[index] for index, how in enumerate(self.nodes) if how[0] == "input"]

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return [self.shapes[index] for index in self.outputs]

    def packed_constants(self) -> np.ndarray:
        """The constants one after the other, row-major, as the compiled step reads them."""
        return np.concatenate([c.ravel() for c in self.constants]) if self.constants else np.zeros(1)


def trace(function: Callable[..., Any], *examples: np.ndarray) -> Trace:
    """Record ``function(xp, *inputs)`` (returning an array or a tuple of arrays) called on ``examples``,
    arrays of the shapes it will be called with; :class:`UntraceableError` where it cannot be traced.

    A function is traced once per shape of its inputs: the arrays it reads besides them must not change."""
    shapes = tuple(np.shape(example) for example in examples)
    traces = _BY_FUNCTION.setdefault(function, {})
    if shapes not in traces:
        record = _Trace()
        traced = [record.input(np.asarray(example, dtype=np.float64)) for example in examples]
        returned = function(_Namespace(record), *traced)
        results = returned if isinstance(returned, tuple) else (returned,)
        if not all(isinstance(result, _Traced) for result in results):
            raise UntraceableError("an output of the array step does not depend on its inputs")
        traces[shapes] = Trace(tuple(record.shapes), tuple(record.nodes), tuple(record.operations),
                               tuple(record.constants), tuple(result.index for result in results),
                               isinstance(returned, tuple))
    return traces[shapes]
