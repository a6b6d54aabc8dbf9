"""A value model's array step, traced once and compiled with numba: how the CPU backends run CfC and ELM.

CfC and ELM define their step once, as a function of the array namespace ``xp`` (numpy or
torch) and of 2-d arrays ``(rows, columns)``. Called with a :class:`_Namespace` as ``xp`` and
traced arrays as inputs, that function records each operation it performs; the record becomes
one numba function that runs the whole step in compiled loops, with no return to Python between
operations (at batch 1 numpy spends most of a step's time starting each of its dozen operations).
The trace computes every value with numpy as it goes, so shapes are known and fixed: the compiled
step takes only inputs of the traced shapes, and arrays the function reads that are not traced
inputs (its weights) are copied into the step's constants when it is traced.

The torch operations that ``xp is not np`` branches pick are recorded with their numpy
branch's formula (``lerp`` as ``start + weight (end - start)``, ``sigmoid`` as
``tanh(x / 2) / 2 + 1 / 2``, ``addmm`` as ``bias + x @ w``), so the compiled step computes
the numpy reference's expressions in its order. It is not bit-identical to numpy: a matrix
product sums ``x_q W_qj`` over ascending ``q``, where numpy's BLAS sums in blocks, and ``tanh``
and ``exp`` are the model language's (:func:`ranvier.engine.model.tanh`, within about 1e-16 of
the true value), where numpy uses its own SIMD versions; the two agree to a few units in the
last place per operation.

An operation the tracer does not know (arrays of more than two dimensions, a ``reshape``, an
``out=`` argument) raises :class:`UntraceableError`, and the caller runs the function in numpy.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import kernel_cache
from .numba_backend import kernel_fingerprint
from .source_writer import SourceWriter

# the model language's tanh and exp: arithmetic alone, so the loops around them vectorise (a call
# to the C library's, numba's own, is about 20 ns a value and keeps the loop scalar)
_UNARY = {"tanh": "tanh({})", "exp": "exp({})", "abs": "abs({})", "log1p": "np.log1p({})", "neg": "-{}"}
_BINARY = {"add": "{} + {}", "sub": "{} - {}", "mul": "{} * {}", "div": "{} / {}"}
_NUMPY_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}
_NUMPY_UNARY = {"tanh": np.tanh, "exp": np.exp, "abs": np.abs, "log1p": np.log1p, "neg": np.negative}

#: compiled steps by kernel name, loaded once per process
_LOADED: dict[str, object] = {}
#: each traced function's compiled steps by the shapes of its inputs: a model hands the same function to
#: every run, and tracing and writing the source again would cost about half a millisecond
_BY_FUNCTION: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class UntraceableError(TypeError):
    """The array function did something the tracer does not record."""


class _Traced:
    """An array of the traced function: node ``index`` of its trace, with its value computed by numpy."""

    __array_ufunc__ = None  # numpy arrays and scalars defer to our reflected operators

    def __init__(self, trace: _Trace, index: int, value: np.ndarray):
        self.trace = trace
        self.index = index
        self.value = value

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    def dim(self) -> int:
        return 2

    @property
    def ndim(self) -> int:
        return 2

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
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, slice) for k in key)):
            raise UntraceableError(f"indexing a traced array with {key!r}: only [rows, columns] slices are traced")
        bounds = []
        for part, size in zip(key, self.shape, strict=True):
            start, stop, stride = part.indices(size)
            if stride != 1 or stop <= start:
                raise UntraceableError(f"slice {part!r} of a traced array: only non-empty unit-stride slices")
            bounds.append((start, stop))
        return self.trace.view(self, *bounds)

    def split(self, sizes: Sequence[int], dim: int = -1) -> list[_Traced]:
        if dim not in (-1, 1):
            raise UntraceableError("a traced array splits along its columns only")
        blocks, start = [], 0
        for size in sizes:
            blocks.append(self.trace.view(self, (0, self.shape[0]), (start, start + size)))
            start += size
        return blocks

    def __getattr__(self, name: str):
        raise UntraceableError(f"traced arrays have no {name!r}")


def _plain(x: Any) -> Any:
    """A constant operand as numpy: a 2-d float64 array, or a Python float."""
    if isinstance(x, (int, float, np.floating, np.integer)):
        return float(x)
    array = np.asarray(x, dtype=np.float64)
    if array.ndim == 0:
        return float(array)
    if array.ndim == 1:
        return array[None]
    if array.ndim != 2:
        raise UntraceableError(f"an operand of {array.ndim} dimensions: only 2-d arrays are traced")
    return array


class _Trace:
    """The operations of one call: nodes (inputs, results, views), constants and operations in order."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []
        #: per node: ("input", position), ("result",) or ("view", base, (row0, row1), (col0, col1))
        self.nodes: list[tuple] = []
        self.operations: list[tuple] = []
        self.constants: list[np.ndarray] = []

    def _node(self, value: np.ndarray, how: tuple) -> _Traced:
        value = np.asarray(value, dtype=np.float64)
        if value.ndim != 2:
            raise UntraceableError(f"a traced value of shape {value.shape}: only 2-d arrays are traced")
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
        if isinstance(left, float) or isinstance(right, float):
            raise UntraceableError("a matrix product with a scalar")
        return self._result(left @ right, ("matmul", self._operand(a), self._operand(b)))

    def concatenate(self, parts: Sequence[Any], axis: int) -> _Traced:
        if axis not in (0, 1, -1):
            raise UntraceableError(f"concatenating traced arrays along axis {axis}")
        axis = 1 if axis == -1 else axis
        value = np.concatenate([_numeric(part) for part in parts], axis)
        return self._result(value, ("concatenate", axis, [self._operand(part) for part in parts]))

    def view(self, base: _Traced, rows: tuple[int, int], columns: tuple[int, int]) -> _Traced:
        return self._node(base.value[rows[0]:rows[1], columns[0]:columns[1]], ("view", base.index, rows, columns))


def _numeric(x: Any) -> Any:
    """A traced array's value, or a constant as :func:`_plain` has it."""
    return x.value if isinstance(x, _Traced) else _plain(x)


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


class CompiledStep:
    """``function(xp, *inputs)`` compiled for inputs of the traced shapes: ``step(*inputs)`` returns its
    outputs (arrays it owns, overwritten by the next call)."""

    def __init__(self, kernel: Any, input_shapes: list[tuple[int, int]], constants: np.ndarray, scratch_size: int,
                 output_shapes: list[tuple[int, int]]):
        self._kernel = kernel
        self.input_shapes = input_shapes
        self._constants = constants
        self._scratch = np.empty(max(1, scratch_size))
        self._outputs = tuple(np.empty(shape) for shape in output_shapes)

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        for position, (array, shape) in enumerate(zip(inputs, self.input_shapes, strict=True)):
            if array.shape != shape:
                raise ValueError(f"input {position} of a compiled array step has shape {array.shape}, "
                                 f"traced as {shape}")
        self._kernel(*inputs, self._constants, self._scratch, *self._outputs)
        return self._outputs


def compile_step(function: Callable[..., Any], *examples: np.ndarray) -> CompiledStep:
    """Trace ``function(xp, *inputs)`` (returning an array or a tuple of arrays) on ``examples``, 2-d arrays
    of the shapes it will be called with, and compile it; :class:`UntraceableError` where it cannot be traced.

    ``function`` is traced once per shape of its inputs: the arrays it reads besides them must not change."""
    shapes = tuple(np.shape(example) for example in examples)
    compiled = _BY_FUNCTION.setdefault(function, {})
    if shapes not in compiled:
        compiled[shapes] = _compile(function, examples)
    return compiled[shapes]


def _compile(function: Callable[..., Any], examples: Sequence[np.ndarray]) -> CompiledStep:
    trace = _Trace()
    traced = [trace.input(np.asarray(example, dtype=np.float64)) for example in examples]
    results = function(_Namespace(trace), *traced)
    results = results if isinstance(results, tuple) else (results,)
    if not all(isinstance(result, _Traced) for result in results):
        raise UntraceableError("an output of the array step does not depend on its inputs")
    source, constants, scratch_size = _write(trace, [result.index for result in results])
    # the fingerprint covers numba's version and the model language the source calls
    name = f"ranvier_array_step_{kernel_fingerprint(source, {})}"
    if name not in _LOADED:
        _LOADED[name] = kernel_cache.load(name, source, {})
    return CompiledStep(_LOADED[name], [trace.shapes[node.index] for node in traced], constants, scratch_size,
                        [trace.shapes[index] for index in (result.index for result in results)])


def _write(trace: _Trace, outputs: list[int]) -> tuple[str, np.ndarray, int]:
    """The kernel's source, its constants packed into one vector, and the length of its scratch vector."""
    w = SourceWriter()
    w("import numpy as np")
    w("from numba import njit")
    w()
    w("from ranvier.engine.model import exp, tanh")
    w()
    w()
    inputs = [f"x{how[1]}" for how in trace.nodes if how[0] == "input"]
    outs = [f"out{k}" for k in range(len(outputs))]
    w("@njit(cache=True, nogil=True, fastmath=False, error_model='numpy')")
    w(f"def advance({', '.join([*inputs, 'constants', 'scratch', *outs])}):")
    packed, offset = [], 0
    scratch = 0
    with w.indent():
        for k, constant in enumerate(trace.constants):
            rows, columns = constant.shape
            w(f"k{k} = constants[{offset}:{offset + constant.size}].reshape(({rows}, {columns}))")
            packed.append(constant.ravel())
            offset += constant.size
        for index, how in enumerate(trace.nodes):
            rows, columns = trace.shapes[index]
            if how[0] == "input":
                w(f"t{index} = x{how[1]}")
            elif how[0] == "view":
                _, base, (r0, r1), (c0, c1) = how
                w(f"t{index} = t{base}[{r0}:{r1}, {c0}:{c1}]")
            else:
                w(f"t{index} = scratch[{scratch}:{scratch + rows * columns}].reshape(({rows}, {columns}))")
                scratch += rows * columns
        for operation in trace.operations:
            _write_operation(w, trace, operation)
        for k, index in enumerate(outputs):
            rows, columns = trace.shapes[index]
            with w.block(f"for i in range({rows}):"), w.block(f"for j in range({columns}):"):
                w(f"out{k}[i, j] = t{index}[i, j]")
    constants = np.concatenate(packed) if packed else np.zeros(1)
    return "\n".join(w.lines) + "\n", constants, scratch


def _element(trace: _Trace, operand: tuple, shape: tuple[int, int]) -> str:
    """``operand`` at ``[i, j]`` of a result of ``shape``, broadcast where it has one row or column."""
    kind, what = operand
    if kind == "scalar":
        return repr(what)
    own = _shape(trace, operand)
    row = "i" if own[0] == shape[0] else "0"
    column = "j" if own[1] == shape[1] else "0"
    return f"{'t' if kind == 'node' else 'k'}{what}[{row}, {column}]"


def _shape(trace: _Trace, operand: tuple) -> tuple[int, int]:
    """The shape of a node or constant operand."""
    return trace.shapes[operand[1]] if operand[0] == "node" else trace.constants[operand[1]].shape


def _name(operand: tuple) -> str:
    return f"{'t' if operand[0] == 'node' else 'k'}{operand[1]}"


def _write_operation(w: SourceWriter, trace: _Trace, operation: tuple) -> None:
    kind, out = operation[0], operation[1]
    rows, columns = trace.shapes[out]
    if kind in ("binary", "unary"):
        if kind == "binary":
            expression = _BINARY[operation[2]].format(*(f"({_element(trace, o, (rows, columns))})"
                                                        for o in operation[3:]))
        else:
            expression = _UNARY[operation[2]].format(f"({_element(trace, operation[3], (rows, columns))})")
        with w.block(f"for i in range({rows}):"), w.block(f"for j in range({columns}):"):
            w(f"t{out}[i, j] = {expression}")
    elif kind == "matmul":
        left, right = _name(operation[2]), _name(operation[3])
        inner = _shape(trace, operation[2])[1]
        with w.block(f"for i in range({rows}):"):
            with w.block(f"for j in range({columns}):"):
                w(f"t{out}[i, j] = 0.0")
            # the row of the right operand is contiguous: the inner loop runs along it
            with w.block(f"for q in range({inner}):"):
                w(f"a = {left}[i, q]")
                with w.block(f"for j in range({columns}):"):
                    w(f"t{out}[i, j] += a * {right}[q, j]")
    else:  # concatenate
        axis, parts = operation[2], operation[3]
        start = 0
        for part in parts:
            shape = _shape(trace, part)
            row_offset, column_offset = (start, 0) if axis == 0 else (0, start)
            with w.block(f"for i in range({shape[0]}):"), w.block(f"for j in range({shape[1]}):"):
                w(f"t{out}[i + {row_offset}, j + {column_offset}] = {_name(part)}[i, j]")
            start += shape[axis]
