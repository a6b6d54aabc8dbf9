"""A traced array step written as one compiled function: how the numba and cuda backends run CfC, LTC and ELM.

:func:`ranvier.engine.array_trace.trace` records the operations of a model's array step; this
module writes them as loops in one compiled function, so the whole step runs without returning
to Python between operations (at batch 1 numpy spends most of a step's time starting each of its
dozen operations):

* for the CPU (:func:`load`), ``advance(*inputs, constants, scratch, *outputs)``, which the numba
  kernel calls at the population's windows (and :class:`CompiledStep` from Python);
* for CUDA (:func:`cuda_source`), a device function that every thread of one block runs,
  ``step(status, state, inputs, constants, scratch, population, k)``: it reads its inputs from
  the population's state and input rows and writes its results into the state where the
  model's ``gather`` and ``destinations`` say (their views resolved to offsets and strides on
  the host, :class:`Placement`), its threads striding over each loop's entries with a barrier
  between loops; it then records in ``status`` a state that is not finite. The chunk's
  delivery kernel calls it at the population's windows (:mod:`.cuda_window`).

It computes the numpy reference's expressions in their order, but not bit for bit: a matrix
product sums ``x_q W_qj`` over ascending ``q``, where numpy's BLAS sums in blocks, and ``tanh``
and ``exp`` are the model language's (:func:`ranvier.engine.model.tanh`, within about 1e-16 of
the true value), where numpy uses its own SIMD versions; the two agree to a few units in the
last place per operation. The CUDA kernel sums in the CPU function's order, one thread per
entry of a product, so on numba's CUDA simulator the two give the same bits; a GPU may contract
a multiply and an add into one rounding (FMA).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np

from ..array_trace import Trace
from ..lowering import Status
from . import kernel_cache
from .fingerprint import kernel_fingerprint
from .source_writer import SourceWriter

# the model language's tanh and exp: arithmetic alone, so the loops around them vectorise (a call
# to the C library's, numba's own, is about 20 ns a value and keeps the loop scalar)
_UNARY = {"tanh": "tanh({})", "exp": "exp({})", "abs": "abs({})", "log1p": "np.log1p({})", "neg": "-{}"}
_BINARY = {"add": "{} + {}", "sub": "{} - {}", "mul": "{} * {}", "div": "{} / {}"}

#: the code a kernel records in ``status`` for a state that is not finite
_NOT_FINITE = int(Status.NOT_FINITE)
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


def cuda_source(trace: Trace, placement: Placement, name: str) -> str:
    """The source of ``name(status, state, inputs, constants, scratch, population, k)``, a CUDA device function
    of ``trace`` run by every thread of one block (see the module's docstring), for a module that imports
    ``math``, ``cuda`` and the model language's ``exp`` and ``tanh``."""
    return _write(trace, placement, name)


def view_address(view: np.ndarray, base: np.ndarray) -> tuple[int, tuple[int, ...]]:
    """Where ``view`` lies in the C-contiguous array ``base``: ``(offset, strides)`` in entries, so that
    ``view[a0, a1, ...]`` is ``base.ravel()[offset + a0 s0 + a1 s1 + ...]``; ValueError when it is no view
    of ``base``."""
    itemsize = base.itemsize
    offset, remainder = divmod(view.__array_interface__["data"][0] - base.__array_interface__["data"][0], itemsize)
    strides = tuple(stride // itemsize for stride in view.strides)
    reach = [(size - 1) * stride for size, stride in zip(view.shape, strides, strict=True)]
    low, high = offset + sum(min(0, r) for r in reach), offset + sum(max(0, r) for r in reach)
    if (view.dtype != base.dtype or remainder or any(stride % itemsize for stride in view.strides)
            or view.size == 0 or low < 0 or high >= base.size or not np.shares_memory(view, base)):
        raise ValueError(f"an array of shape {view.shape} is not a view of the array of shape {base.shape} "
                         "it should look into")
    return offset, strides


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


@dataclass(frozen=True)
class Placement:
    """Where a CUDA step finds its inputs, ``(array, offset, strides)`` in the flat ``"state"`` or
    ``"inputs"``, and puts its outputs, ``(offset, strides)`` in the flat state (:func:`view_address`);
    ``state_size`` entries of the state are tested for being finite."""

    inputs: tuple[tuple[str, int, tuple[int, ...]], ...]
    outputs: tuple[tuple[int, tuple[int, ...]], ...]
    state_size: int


def _write(trace: Trace, placement: Placement | None = None, name: str = "advance") -> str:
    """The source of the CPU module, or with a ``placement`` of the CUDA device function ``name``."""
    threaded = placement is not None
    w = SourceWriter()
    if not threaded:
        w("import numpy as np")
        w("from numba import njit")
        w()
        w("from ranvier.engine.model import exp, tanh")
        w()
        w()
    inputs = [f"x{how[1]}" for how in trace.nodes if how[0] == "input"]
    outs = [f"out{k}" for k in range(len(trace.outputs))]
    aliases = [] if threaded else [f"t{index} = x{how[1]}" for index, how in enumerate(trace.nodes)
                                   if how[0] == "input"]
    where = _Addresses.of(trace, placement)
    groups = _groups(trace)
    kept = _read_later(trace, groups)
    calls: dict[int, str] = {}
    for g, group in enumerate(groups):
        if not threaded and any(operation[0] == "unary" and operation[2] in ("tanh", "exp") for operation in group):
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
    if threaded:
        w("@cuda.jit(device=True)")
        w(f"def {name}(status, state, inputs, constants, scratch, population, k):")
    else:
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
            with _loops(w, shape, where.threaded) as at:
                names = at.split(", ")
                if threaded:
                    offset, strides = placement.outputs[k]
                    target = f"state[{_strided(offset, strides, names)}]"
                else:
                    target = f"out{k}[{at}]"
                w(f"{target} = {_at(trace, where, ('node', index), names)}")
        if threaded:
            with _loops(w, (placement.state_size,), True) as at, w.block(f"if not math.isfinite(state[{at}]):"):
                w("status[1] = population")
                w("status[2] = k")
                w(f"status[0] = {_NOT_FINITE}")
    return "\n".join(w.lines) + "\n"


@dataclass(frozen=True)
class _Addresses:
    """Where each constant starts in ``constants`` and each result in ``scratch``: both are read and
    written as flat vectors with literal offsets and strides, so the compiled function makes no array
    views (two dozen views in a function keep LLVM from vectorising its loops, five times slower); and,
    for a CUDA kernel, where each input lies in the flat state or inputs."""

    constants: tuple[int, ...]
    results: dict[int, int]
    inputs: tuple[tuple[str, int, tuple[int, ...]], ...] | None = None

    @property
    def threaded(self) -> bool:
        """Whether this is a CUDA kernel's: its loops stride over a block's threads."""
        return self.inputs is not None

    @staticmethod
    def of(trace: Trace, placement: Placement | None) -> _Addresses:
        constants, offset = [], 0
        for constant in trace.constants:
            constants.append(offset)
            offset += constant.size
        results, offset = {}, 0
        for index, how in enumerate(trace.nodes):
            if how[0] == "result":
                results[index] = offset
                offset += math.prod(trace.shapes[index])
        return _Addresses(tuple(constants), results, None if placement is None else placement.inputs)


def _flat(start: int, shape: tuple[int, ...], names: list[str]) -> str:
    """The row-major position of ``names`` in an array of ``shape`` that starts at ``start``."""
    return _strided(start, tuple(math.prod(shape[axis + 1:]) for axis in range(len(shape))), names)


def _strided(start: int, strides: tuple[int, ...], names: list[str]) -> str:
    """The position of ``names`` in an array of ``strides`` (in entries) that starts at ``start``."""
    terms = [str(start)] if start else []
    for name, stride in zip(names, strides, strict=True):
        if name != "0" and stride != 0:
            terms.append(name if stride == 1 else f"({name}) * {stride}")
    return " + ".join(terms) or "0"


def _stored(trace: Trace, where: _Addresses, index: int, names: list[str]) -> str:
    """Result ``index`` at ``names``, as a place in ``scratch``."""
    return f"scratch[{_flat(where.results[index], trace.shapes[index], names)}]"


@contextlib.contextmanager
def _loops(w: SourceWriter, shape: tuple[int, ...], threaded: bool, prefix: str = "a"):
    """Loops over ``shape``, yielding the index ``"a0, a1, ..."``: nested loops, or (``threaded``) one
    loop of a block's threads over the entries in row-major order, then a barrier, so the next loop
    reads what every thread wrote."""
    if not threaded:
        with contextlib.ExitStack() as stack:
            for axis, size in enumerate(shape):
                stack.enter_context(w.block(f"for {prefix}{axis} in range({size}):"))
            yield ", ".join(f"{prefix}{axis}" for axis in range(len(shape)))
        return
    with w.block(f"for {prefix} in range(cuda.threadIdx.x, {math.prod(shape)}, cuda.blockDim.x):"):
        names = []
        for axis, size in enumerate(shape):
            stride = math.prod(shape[axis + 1:])
            entry = prefix if stride == 1 else f"({prefix} // {stride})"
            # no remainder on the first axis longer than one: the entry is below the loop's end
            names.append("0" if size == 1 else entry if math.prod(shape[:axis]) == 1 else f"{entry} % {size}")
        yield ", ".join(names)
    w("cuda.syncthreads()")


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
    unary = dict(_UNARY, log1p="math.log1p({})") if where.threaded else _UNARY
    with _loops(w, shape, where.threaded) as at:
        for operation in group:
            kind, out = operation[0], operation[1]
            operands = [f"v{o[1]}" if o[0] == "node" and o[1] in made
                        else _element(trace, where, o, shape, at.split(", ")) for o in operation[3:]]
            template = _BINARY[operation[2]] if kind == "binary" else unary[operation[2]]
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
    if where.threaded:
        array, offset, strides = where.inputs[how[1]]
        return f"{array}[{_strided(offset, strides, names)}]"
    return f"t{what}[{', '.join(names)}]"


def _broadcast(own: tuple[int, ...], shape: tuple[int, ...], names: list[str]) -> list[str]:
    """The index of an operand of shape ``own`` where a result of ``shape`` is at ``names``, by numpy's
    broadcasting: its axes align with the last ones, and an axis of one stays at 0."""
    lead = len(shape) - len(own)
    return [names[lead + axis] if size == shape[lead + axis] else "0" for axis, size in enumerate(own)]


def _element(trace: Trace, where: _Addresses, operand: tuple, shape: tuple[int, ...], names: list[str]) -> str:
    """``operand`` where a result of ``shape`` is at ``names`` (one per axis), broadcast as numpy does."""
    if operand[0] == "scalar":
        return repr(operand[1])
    return _at(trace, where, operand, _broadcast(_shape(trace, operand), shape, names))


def _write_operation(w: SourceWriter, trace: Trace, where: _Addresses, operation: tuple) -> None:
    """A matrix product, a concatenation or a reshape."""
    kind, out = operation[0], operation[1]
    shape = trace.shapes[out]
    threaded = where.threaded
    if kind == "matmul":
        left, right = operation[2], operation[3]
        inner = _shape(trace, left)[-1]
        if threaded:
            # a thread per entry, summing over q in the CPU function's order
            with _loops(w, shape, True, "m") as at:
                names = at.split(", ")
                batch_names, i, j = names[:-2], names[-2], names[-1]
                left_at = [*_broadcast(_shape(trace, left)[:-2], shape[:-2], batch_names), i, "q"]
                right_at = [*_broadcast(_shape(trace, right)[:-2], shape[:-2], batch_names), "q", j]
                w("total = 0.0")
                with w.block(f"for q in range({inner}):"):
                    w(f"total += {_at(trace, where, left, left_at)} * {_at(trace, where, right, right_at)}")
                w(f"{_stored(trace, where, out, names)} = total")
            return
        batch = shape[:-2]
        batch_names = [f"b{axis}" for axis in range(len(batch))]
        left_at = _broadcast(_shape(trace, left)[:-2], batch, batch_names)
        right_at = _broadcast(_shape(trace, right)[:-2], batch, batch_names)
        target = _stored(trace, where, out, [*batch_names, "i", "j"])
        with _loops(w, batch, False, "b"), w.block(f"for i in range({shape[-2]}):"):
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
        source_shape = _shape(trace, source)
        with _loops(w, source_shape, threaded) as at:
            names = at.split(", ")
            w(f"scratch[{_flat(where.results[out], source_shape, names)}] = {_at(trace, where, source, names)}")
    else:  # concatenate
        axis, parts = operation[2], operation[3]
        start = 0
        for part in parts:
            part_shape = _shape(trace, part)
            with _loops(w, part_shape, threaded) as at:
                names = at.split(", ")
                shifted = [f"{name} + {start}" if a == axis and start else name for a, name in enumerate(names)]
                w(f"{_stored(trace, where, out, shifted)} = {_at(trace, where, part, names)}")
            start += part_shape[axis]
