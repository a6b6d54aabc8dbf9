"""A traced array step written as one numba function: how the numba backend runs CfC, LTC and ELM.

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

import contextlib
import math
from dataclasses import dataclass

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
    return sum(math.prod(shape) for shape, how in zip(trace.shapes, trace.nodes, strict=True) if how[0] == "result")


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
    aliases = [f"t{index} = x{how[1]}" for index, how in enumerate(trace.nodes) if how[0] == "input"]
    where = _Addresses.of(trace)
    groups = _groups(trace)
    kept = _read_later(trace, groups)
    calls: dict[int, str] = {}
    for g, group in enumerate(groups):
        if any(operation[0] == "unary" and operation[2] in ("tanh", "exp") for operation in group):
            # measured: a loop of tanh or exp vectorises in a function of its own, and runs three to
            # four times slower inside the function of a whole LTC step
            w("@njit(nogil=True, fastmath=False, error_model='numpy', no_cpython_wrapper=True)")
            w(f"def _loop{g}({', '.join([*inputs, 'constants', 'scratch'])}):")
            with w.indent():
                for alias in aliases:
                    w(alias)
                _write_elementwise(w, trace, where, group, kept)
            w()
            w()
            calls[g] = f"_loop{g}({', '.join([*inputs, 'constants', 'scratch'])})"
    w("@njit(cache=True, nogil=True, fastmath=False, error_model='numpy')")
    w(f"def advance({', '.join([*inputs, 'constants', 'scratch', *outs])}):")
    with w.indent():
        for alias in aliases:
            w(alias)
        for g, group in enumerate(groups):
            if g in calls:
                w(calls[g])
            elif group[0][0] in ("binary", "unary"):
                _write_elementwise(w, trace, where, group, kept)
            else:
                _write_operation(w, trace, where, group[0])
        for k, index in enumerate(trace.outputs):
            shape = trace.shapes[index]
            with _loops(w, shape) as at:
                w(f"out{k}[{at}] = {_at(trace, where, ('node', index), at.split(', '))}")
    return "\n".join(w.lines) + "\n"


@dataclass(frozen=True)
class _Addresses:
    """Where each constant starts in ``constants`` and each result in ``scratch``: both are read and
    written as flat vectors with literal offsets and strides, so the compiled function makes no array
    views (two dozen views in a function keep LLVM from vectorising its loops, five times slower)."""

    constants: tuple[int, ...]
    results: dict[int, int]

    @staticmethod
    def of(trace: Trace) -> _Addresses:
        constants, offset = [], 0
        for constant in trace.constants:
            constants.append(offset)
            offset += constant.size
        results, offset = {}, 0
        for index, how in enumerate(trace.nodes):
            if how[0] == "result":
                results[index] = offset
                offset += math.prod(trace.shapes[index])
        return _Addresses(tuple(constants), results)


def _flat(start: int, shape: tuple[int, ...], names: list[str]) -> str:
    """The row-major position of ``names`` in an array of ``shape`` that starts at ``start``."""
    terms = [str(start)] if start else []
    for axis, name in enumerate(names):
        stride = math.prod(shape[axis + 1:])
        if name != "0":
            terms.append(name if stride == 1 else f"({name}) * {stride}")
    return " + ".join(terms) or "0"


def _stored(trace: Trace, where: _Addresses, index: int, names: list[str]) -> str:
    """Result ``index`` at ``names``, as a place in ``scratch``."""
    return f"scratch[{_flat(where.results[index], trace.shapes[index], names)}]"


@contextlib.contextmanager
def _loops(w: SourceWriter, shape: tuple[int, ...], prefix: str = "a"):
    """Nested loops over ``shape`` (``a0``, ``a1``, ...); yields the index ``"a0, a1, ..."``."""
    with contextlib.ExitStack() as stack:
        for axis, size in enumerate(shape):
            stack.enter_context(w.block(f"for {prefix}{axis} in range({size}):"))
        yield ", ".join(f"{prefix}{axis}" for axis in range(len(shape)))


def _groups(trace: Trace) -> list[list[tuple]]:
    """The operations in order, runs of elementwise ones of one shape together: each run is one loop,
    where an operation reads what an earlier one of its run wrote at the same index (every compiled
    loop costs compile time, and a run of them passes over memory once).

    A run ends at an operation of another shape, at any other operation, and before one that reads a
    view of something its run computes (the view's entries are not all written yet).
    """
    groups: list[list[tuple]] = []
    members: set[int] = set()
    for operation in trace.operations:
        elementwise = operation[0] in ("binary", "unary")
        joins = (elementwise and groups and groups[-1][0][0] in ("binary", "unary")
                 and trace.shapes[groups[-1][0][1]] == trace.shapes[operation[1]]
                 and not any(o[0] == "node" and o[1] not in members and _viewed_base(trace, o[1]) in members
                             for o in operation[3:]))
        if joins:
            groups[-1].append(operation)
        else:
            groups.append([operation])
            members = set()
        members.add(operation[1])
    return groups


def _read_later(trace: Trace, groups: list[list[tuple]]) -> set[int]:
    """The results read outside the run that computes them (by a later operation, directly or through a
    view, or as an output): only those are stored. A loop that stores every intermediate value does not
    vectorise: LLVM cannot prove that so many arrays do not overlap."""
    made_in = {operation[1]: g for g, group in enumerate(groups) for operation in group}
    kept = {_viewed_base(trace, index) for index in trace.outputs}
    for g, group in enumerate(groups):
        for operation in group:
            operands = operation[3] if operation[0] == "concatenate" else operation[2:]
            for operand in operands:
                if isinstance(operand, tuple) and operand[0] == "node":
                    base = _viewed_base(trace, operand[1])
                    if made_in.get(base) != g or base != operand[1]:
                        kept.add(base)
    return kept


def _viewed_base(trace: Trace, index: int) -> int:
    """The node a view (of a view ...) looks into; the node itself when it is not a view."""
    while trace.nodes[index][0] == "view":
        index = trace.nodes[index][1]
    return index


def _write_elementwise(w: SourceWriter, trace: Trace, where: _Addresses, group: list[tuple], kept: set[int]) -> None:
    """A run of elementwise operations of one shape as one loop; values made in the run are read as locals,
    and stored only where ``kept`` (:func:`_read_later`)."""
    shape = trace.shapes[group[0][1]]
    made: set[int] = set()
    with _loops(w, shape) as at:
        for operation in group:
            kind, out = operation[0], operation[1]
            operands = [f"v{o[1]}" if o[0] == "node" and o[1] in made else _element(trace, where, o, shape)
                        for o in operation[3:]]
            template = _BINARY[operation[2]] if kind == "binary" else _UNARY[operation[2]]
            w(f"v{out} = {template.format(*(f'({o})' for o in operands))}")
            if out in kept:
                w(f"{_stored(trace, where, out, at.split(', '))} = v{out}")
            made.add(out)


def _shape(trace: Trace, operand: tuple) -> tuple[int, ...]:
    """The shape of a node or constant operand."""
    return trace.shapes[operand[1]] if operand[0] == "node" else trace.constants[operand[1]].shape


def _at(trace: Trace, where: _Addresses, operand: tuple, names: list[str]) -> str:
    """``operand`` at the index ``names`` (one expression per axis), read from the array behind it: a
    view is indexed through to its base, a constant or result by its flat position."""
    kind, what = operand
    if kind == "scalar":
        return repr(what)
    if kind == "constant":
        return f"constants[{_flat(where.constants[what], trace.constants[what].shape, names)}]"
    how = trace.nodes[what]
    if how[0] == "view":
        _, base, axes, fixed = how
        at = dict(fixed)
        for name, axis in zip(names, axes, strict=True):
            if axis[0] == "axis":
                start = axis[2]
                at[axis[1]] = name if start == 0 else str(start) if name == "0" else f"{name} + {start}"
        what, how = base, trace.nodes[base]
        names = [str(at[axis]) for axis in range(len(trace.shapes[base]))]
    if how[0] == "result":
        return _stored(trace, where, what, names)
    return f"t{what}[{', '.join(names)}]"


def _broadcast(own: tuple[int, ...], shape: tuple[int, ...], names: list[str]) -> list[str]:
    """The index of an operand of shape ``own`` where a result of ``shape`` is at ``names``, by numpy's
    broadcasting: its axes align with the last ones, and an axis of one stays at 0."""
    lead = len(shape) - len(own)
    return [names[lead + axis] if size == shape[lead + axis] else "0" for axis, size in enumerate(own)]


def _element(trace: Trace, where: _Addresses, operand: tuple, shape: tuple[int, ...]) -> str:
    """``operand`` at ``[a0, a1, ...]`` of a result of ``shape``, broadcast as numpy does."""
    if operand[0] == "scalar":
        return repr(operand[1])
    names = [f"a{axis}" for axis in range(len(shape))]
    return _at(trace, where, operand, _broadcast(_shape(trace, operand), shape, names))


def _write_operation(w: SourceWriter, trace: Trace, where: _Addresses, operation: tuple) -> None:
    """A matrix product, a concatenation or a reshape."""
    kind, out = operation[0], operation[1]
    shape = trace.shapes[out]
    if kind == "matmul":
        left, right = operation[2], operation[3]
        batch = shape[:-2]
        inner = _shape(trace, left)[-1]
        batch_names = [f"b{axis}" for axis in range(len(batch))]
        left_at = _broadcast(_shape(trace, left)[:-2], batch, batch_names)
        right_at = _broadcast(_shape(trace, right)[:-2], batch, batch_names)
        target = _stored(trace, where, out, [*batch_names, "i", "j"])
        with _loops(w, batch, "b"), w.block(f"for i in range({shape[-2]}):"):
            with w.block(f"for j in range({shape[-1]}):"):
                w(f"{target} = 0.0")
            # the row of the right operand is contiguous: the inner loop runs along it
            with w.block(f"for q in range({inner}):"):
                w(f"a = {_at(trace, where, left, [*left_at, 'i', 'q'])}")
                with w.block(f"for j in range({shape[-1]}):"):
                    w(f"{target} += a * {_at(trace, where, right, [*right_at, 'q', 'j'])}")
    elif kind == "reshape":
        # row-major order, whatever the layout of the source
        source = operation[2]
        w("n = 0")
        with _loops(w, _shape(trace, source)) as at:
            w(f"scratch[{where.results[out]} + n] = {_at(trace, where, source, at.split(', '))}")
            w("n += 1")
    else:  # concatenate
        axis, parts = operation[2], operation[3]
        start = 0
        for part in parts:
            part_shape = _shape(trace, part)
            with _loops(w, part_shape) as at:
                shifted = [f"a{a} + {start}" if a == axis and start else f"a{a}" for a in range(len(part_shape))]
                w(f"{_stored(trace, where, out, shifted)} = {_at(trace, where, part, at.split(', '))}")
            start += part_shape[axis]
