"""A traced array step written as one numba function: how the numba backend runs CfC and ELM.

:func:`ranvier.engine.array_trace.trace` records the operations of a model's array step; this
module writes them as loops in one compiled function, ``advance(*inputs, constants, scratch,
*outputs)``, so the whole step runs without returning to Python between operations (at batch 1
numpy spends most of a step's time starting each of its dozen operations). The numba kernel
calls it at the population's windows; :class:`CompiledStep` calls it from the host (the cuda
backend's host populations).

It computes the numpy reference's expressions in their order, but not bit for bit: a matrix
product sums ``x_q W_qj`` over ascending ``q``, where numpy's BLAS sums in blocks, and ``tanh``
and ``exp`` are the model language's (:func:`ranvier.engine.model.tanh`, within about 1e-16 of
the true value), where numpy uses its own SIMD versions; the two agree to a few units in the
last place per operation.
"""

from __future__ import annotations

import numpy as np

from ..array_trace import Trace
from . import kernel_cache
from .fingerprint import kernel_fingerprint
from .source_writer import SourceWriter

# the model language's tanh and exp: arithmetic alone, so the loops around them vectorise (a call
# to the C library's, numba's own, is about 20 ns a value and keeps the loop scalar)
_UNARY = {"tanh": "tanh({})", "exp": "exp({})", "abs": "abs({})", "log1p": "np.log1p({})", "neg": "-{}"}
_BINARY = {"add": "{} + {}", "sub": "{} - {}", "mul": "{} * {}", "div": "{} / {}"}

#: compiled steps by kernel name, loaded once per process
_LOADED: dict[str, object] = {}


def load(trace: Trace) -> object:
    """The compiled ``advance`` of ``trace``."""
    source = _write(trace)
    # the fingerprint covers numba's version and the model language the source calls
    name = f"ranvier_array_step_{kernel_fingerprint(source, {})}"
    if name not in _LOADED:
        _LOADED[name] = kernel_cache.load(name, source, {})
    return _LOADED[name]


def scratch_size(trace: Trace) -> int:
    """Length of the scratch vector ``trace``'s compiled step needs: one block per result it computes."""
    return sum(rows * columns for (rows, columns), how in zip(trace.shapes, trace.nodes, strict=True)
               if how[0] == "result")


class CompiledStep:
    """A trace compiled for the host: ``step(*inputs)``, inputs of the traced shapes, returns its outputs as the
    traced function did, an array or a tuple (arrays it owns, overwritten by the next call)."""

    def __init__(self, trace: Trace):
        self._kernel = load(trace)
        self.input_shapes = trace.input_shapes
        self._constants = trace.packed_constants()
        self._scratch = np.empty(max(1, scratch_size(trace)))
        self._outputs = tuple(np.empty(shape) for shape in trace.output_shapes)
        self._returns_tuple = trace.returns_tuple

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...] | np.ndarray:
        for position, (array, shape) in enumerate(zip(inputs, self.input_shapes, strict=True)):
            if array.shape != shape:
                raise ValueError(f"input {position} of a compiled array step has shape {array.shape}, "
                                 f"traced as {shape}")
        self._kernel(*inputs, self._constants, self._scratch, *self._outputs)
        return self._outputs if self._returns_tuple else self._outputs[0]


def _write(trace: Trace) -> str:
    """The kernel's source."""
    w = SourceWriter()
    w("import numpy as np")
    w("from numba import njit")
    w()
    w("from ranvier.engine.model import exp, tanh")
    w()
    w()
    inputs = [f"x{how[1]}" for how in trace.nodes if how[0] == "input"]
    outs = [f"out{k}" for k in range(len(trace.outputs))]
    w("@njit(cache=True, nogil=True, fastmath=False, error_model='numpy')")
    w(f"def advance({', '.join([*inputs, 'constants', 'scratch', *outs])}):")
    offset = 0
    scratch = 0
    with w.indent():
        for k, constant in enumerate(trace.constants):
            rows, columns = constant.shape
            w(f"k{k} = constants[{offset}:{offset + constant.size}].reshape(({rows}, {columns}))")
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
        for group in _groups(trace):
            if len(group) > 1 or group[0][0] in ("binary", "unary"):
                _write_elementwise(w, trace, group)
            else:
                _write_operation(w, trace, group[0])
        for k, index in enumerate(trace.outputs):
            rows, columns = trace.shapes[index]
            with w.block(f"for i in range({rows}):"), w.block(f"for j in range({columns}):"):
                w(f"out{k}[i, j] = t{index}[i, j]")
    return "\n".join(w.lines) + "\n"


def _groups(trace: Trace) -> list[list[tuple]]:
    """The operations in order, runs of elementwise ones of one shape together: each run is one loop,
    where an operation reads what an earlier one of its run wrote at the same ``[i, j]`` (every
    compiled loop costs compile time, and a run of them passes over memory once).

    A run ends at an operation of another shape, at a matrix product or concatenation, and before
    one that reads a view of something its run computes (the view's entries are not all written yet).
    """
    groups: list[list[tuple]] = []
    members: set[int] = set()
    for operation in trace.operations:
        elementwise = operation[0] in ("binary", "unary")
        shape = trace.shapes[operation[1]]
        joins = (elementwise and groups and groups[-1][0][0] in ("binary", "unary")
                 and trace.shapes[groups[-1][0][1]] == shape
                 and not any(o[0] == "node" and o[1] not in members and _viewed_base(trace, o[1]) in members
                             for o in operation[3:]))
        if joins:
            groups[-1].append(operation)
        else:
            groups.append([operation])
            members = set()
        members.add(operation[1])
    return groups


def _viewed_base(trace: Trace, index: int) -> int:
    """The node a view (of a view ...) looks into; the node itself when it is not a view."""
    while trace.nodes[index][0] == "view":
        index = trace.nodes[index][1]
    return index


def _write_elementwise(w: SourceWriter, trace: Trace, group: list[tuple]) -> None:
    """A run of elementwise operations of one shape as one loop; values made in the run are read as locals."""
    rows, columns = trace.shapes[group[0][1]]
    made: set[int] = set()
    with w.block(f"for i in range({rows}):"), w.block(f"for j in range({columns}):"):
        for operation in group:
            kind, out = operation[0], operation[1]
            operands = [f"v{o[1]}" if o[0] == "node" and o[1] in made else _element(trace, o, (rows, columns))
                        for o in operation[3:]]
            template = _BINARY[operation[2]] if kind == "binary" else _UNARY[operation[2]]
            w(f"v{out} = {template.format(*(f'({o})' for o in operands))}")
            w(f"t{out}[i, j] = v{out}")
            made.add(out)


def _element(trace: Trace, operand: tuple, shape: tuple[int, int]) -> str:
    """``operand`` at ``[i, j]`` of a result of ``shape``, broadcast where it has one row or column."""
    kind, what = operand
    if kind == "scalar":
        return repr(what)
    own = _shape(trace, operand)
    row = "i" if own[0] == shape[0] else "0"
    column = "j" if own[1] == shape[1] else "0"
    return f"{'t' if kind == 'node' else 'k'}{what}[{row}, {column}]"


def _shape(trace: Trace, operand: tuple) -> tuple[int, int]:
    """The shape of a node or constant operand."""
    return trace.shapes[operand[1]] if operand[0] == "node" else trace.constants[operand[1]].shape


def _name(operand: tuple) -> str:
    return f"{'t' if operand[0] == 'node' else 'k'}{operand[1]}"


def _write_operation(w: SourceWriter, trace: Trace, operation: tuple) -> None:
    """A matrix product or a concatenation."""
    kind, out = operation[0], operation[1]
    rows, columns = trace.shapes[out]
    if kind == "matmul":
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
