"""Static checks of model-language functions: the rules that keep every backend bit-identical.

A model's ``step`` (and an elementwise value model's ``finish``) is plain Python that the numpy
backend runs on whole arrays, numba compiles for one neuron and numba.cuda compiles as a device
function (:mod:`ranvier.engine.model`). Code that breaks the rules below runs, but differently
on different backends, or crashes only on some; :func:`check_step` and :func:`check_finish` find
such code when a population is declared (``Network.population``) and raise a
:class:`~ranvier.errors.ModelError` naming the model, the function, the line and the code, and
saying what to write instead.

The rules:

* **signature**: a step takes exactly seven positional parameters,
  ``(state, consts, arriving, i, c, k, key)`` (the names are free), ``finish`` takes two,
  ``(state, consts)``; a step is a function or a ``@staticmethod``, not a method taking ``self``.
* **float literals** (spiking steps): a literal like ``0.0001`` is float64 on numba and adopts
  float32 on numpy (NEP 50), so ``0.0001 * u`` rounds differently. Take every float constant
  from ``consts`` (computed in ``constants()``), or give it an explicit type
  (``np.float32(0.5)``, a module-level ``np.float32`` constant). A literal in float64
  arithmetic (with a value made by ``np.float64(...)`` or ``uniform01``) is fine.
* **python numbers meeting float32**: an int literal in arithmetic (``2 * v``, ``v ** 2``), or a
  python ``int``/``float`` value (a loop counter, ``k``, a module-level float) combined with a
  float32 value promotes to float64 on numba only. Int literals in subscripts, in ``range()``
  and ``len()`` and in comparisons are fine, as is index arithmetic (``FIRST + 4 * r``). In
  elementwise value models (float64 arithmetic) literals are fine, except with a float32 state
  value read directly (``state[ROW, i] * 0.5``; widen it with ``np.float64(state[ROW, i])``).
* **branches**: ``if``, ``while``, ``x if cond else y``, ``and``/``or``/``not``, chained
  comparisons and ``min``/``max``/``int``/``float``/``bool`` on a value derived from the state,
  the constants, the input or the neuron index work on numba but not on numpy's arrays
  ("truth value of an array is ambiguous"). Write ``select(condition, if_true, if_false)``,
  ``&``/``|``/``~`` on conditions, and ``while any_true(condition):`` for a data-dependent loop.
* **allocation**: a step allocates nothing (no ``np.zeros``/``empty``/``ones``/``full``/
  ``array``/``arange``/``*_like``, no list, dict or set literals or comprehensions; tuples of
  scalars are fine): numba compiles it without its runtime.

* **rows**: a row named by a constant (``state[3, i]``, ``consts[ROWS.tau, c]``) exists: below
  the model's number of state variables, or of rows ``constants()`` returns
  (:func:`check_rows`, when the population's constants are known).

Checks read the function's source (``inspect.getsource``; functions defined in notebook cells
have one too). A function without source (defined in ``python -c`` or the plain REPL) is
checked on its code object instead: its signature, its float constants (spiking steps) and
its allocations. Each function is checked once per process.
"""

from __future__ import annotations

import ast
import builtins
import dis
import inspect
import textwrap
import types
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError
from . import model as language
from .kinds import Kind

__all__ = ["check_finish", "check_model_functions", "check_step"]

# -- what a function did wrong ----------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    what: str
    hint: str
    line: int | None = None
    code: str | None = None
    #: found on the function's bytecode: it has no source
    bytecode: bool = False


#: (code object, role) -> the problems found, so each function is checked once per process
_CHECKED: dict[tuple[types.CodeType, str], tuple[_Problem, ...]] = {}
#: (code, 0 or 1) -> the highest constant state (0) or constants (1) row the function names
_ROWS: dict[tuple[types.CodeType, int], tuple[int, int | None, str] | None] = {}

_SIGNATURES = {
    "spiking": ("a spiking step", ("state", "consts", "arriving", "i", "c", "k", "key")),
    "value": ("an elementwise value step", ("state", "consts", "inputs", "i", "c", "k", "key")),
    "finish": ("finish", ("state", "consts")),
}

_FLOAT_LITERAL_HINT = ("float literals are float64 on numba and float32 on numpy; compute it in constants() "
                       "and read consts[ROW, c] (or give it a type: a module-level np.float32 constant)")
_INT_LITERAL_HINT = ("an int literal promotes float32 to float64 on numba but not on numpy; compute the "
                     "constant in constants() and read consts[ROW, c], or use a module-level np.float32 constant")
_PYTHON_NUMBER_HINT = ("a python number is int64/float64 on numba and adopts float32 on numpy; convert it "
                       "explicitly (np.float32(...)) or read the value from consts")
_VALUE_STATE_HINT = ("state rows are float32 (float64 on numba once a literal meets them); widen the value "
                     "first: np.float64(state[ROW, i])")
_SELECT_HINT = "use select(condition, if_true, if_false)"
_ALLOCATION_HINT = "a step allocates nothing; keep per-neuron values in state rows (a tuple of scalars is fine)"

_ALLOCATORS = {getattr(np, name) for name in (
    "zeros", "empty", "ones", "full", "array", "arange", "zeros_like", "empty_like", "ones_like", "full_like",
    "linspace", "concatenate", "stack", "vstack", "hstack", "copy", "asarray", "ascontiguousarray", "eye",
    "identity", "tile", "repeat")}
_ALLOCATOR_NAMES = {function.__name__ for function in _ALLOCATORS}
_BUILTIN_ALLOCATORS = {list: "list()", dict: "dict()", set: "set()"}
_ON_ARRAYS = {min: "use select(a < b, a, b) (or np.minimum)", max: "use select(a > b, a, b) (or np.maximum)",
              int: "use np.int64(...)", float: "use np.float64(...) or np.float32(...)",
              bool: "use a comparison; branch with select(...)", any: "use any_true(...)",
              all: "use ~any_true(~condition)", sum: "add the terms with +"}


def check_step(function, kind, owner: str) -> None:
    """Check a model's ``step`` against the model-language rules; raise ModelError if it breaks one.

    ``kind`` is :attr:`Kind.SPIKING <ranvier.engine.kinds.Kind.SPIKING>` (a spiking step: float32
    state, no float literals) or :attr:`Kind.VALUE <ranvier.engine.kinds.Kind.VALUE>` (an
    elementwise value model's step, float64 arithmetic). ``owner`` names the model in the
    message, e.g. ``"population 'izh' (Izhikevich)"``.

    >>> def leak(state, consts, arriving, i, c, k, key):
    ...     state[0, i] = state[0, i] * 0.9 + arriving[0][i]
    ...     return 0
    >>> check_step(leak, Kind.SPIKING, "model Leak")   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ranvier.errors.ModelError: model Leak: float literal 0.9 in leak (...:2, `state[0, i] * 0.9`): float literals ...
    """
    kind = Kind(kind)
    if kind not in (Kind.SPIKING, Kind.VALUE):
        raise ModelError(f"{owner}: only spiking and elementwise value models have a step, not {kind}")
    _check(function, kind.value, owner)


def check_finish(function, owner: str) -> None:
    """Check an elementwise value model's ``finish(state, consts)``; raise ModelError if it breaks a rule."""
    _check(function, "finish", owner)


def check_model_functions(model, owner: str) -> None:
    """Check the model-language functions of ``model``: a spiking or elementwise value model's
    ``step``, and ``finish`` if it has one. Other models (sources with a schedule, value models
    with ``advance``) have none and pass."""
    kind = getattr(model, "kind", None)
    if kind not in (Kind.SPIKING, Kind.VALUE):
        return
    step = getattr(model, "step", None)
    if step is None:
        return
    check_step(step, kind, owner)
    finish = getattr(model, "finish", None) if Kind(kind) == Kind.VALUE else None
    if finish is not None:
        check_finish(finish, owner)


def check_rows(model: object, state_rows: int, const_rows: int, owner: str) -> None:
    """Refuse a step or ``finish`` of ``model`` that reads a state or constants row it does not have.

    Only rows named by a constant (``state[3, i]``, ``consts[ROWS.tau, c]``, ``FIRST + 2``) are
    checked. numpy raises an IndexError for such a read, but numba's compiled code, which checks
    no bounds, reads past the array, a different number on every run.
    """
    kind = getattr(model, "kind", None)
    if kind not in (Kind.SPIKING, Kind.VALUE) or getattr(model, "step", None) is None:
        return
    functions = [model.step]
    if Kind(kind) == Kind.VALUE and getattr(model, "finish", None) is not None:
        functions.append(model.finish)
    for function in functions:
        if isinstance(function, staticmethod | classmethod):
            function = function.__func__
        function = getattr(function, "py_func", function)
        if not inspect.isfunction(function):
            continue
        arrays = [(0, state_rows, "state row", "state row(s)"), (1, const_rows, "constants row", "constants row(s)")]
        if Kind(kind) == Kind.SPIKING and function is not getattr(model, "finish", None):
            arrays.append((2, len(model.receptors), "the input of receptor", "receptor(s)"))
        for array, rows, what, counted in arrays:
            read = _highest_row(function, array)
            if read is not None and read[0] >= rows:
                row, line, text = read
                held = f"0 .. {rows - 1}" if rows else "none"
                raise ModelError(f"{owner}: {function.__name__} reads {what} {row} (line {line}, `{text}`), but "
                                 f"the model has {rows} {counted} ({held}); numba would read past the array")


def _highest_row(function, array: int) -> tuple[int, int | None, str] | None:
    """The highest constant row of parameter ``array`` (0: state, 1: consts) that ``function`` reads
    or writes, with its line and text; None when it names none by a constant."""
    key = (function.__code__, array)
    if function.__closure__ or key not in _ROWS:  # a closure's rows may differ from one closure to the next
        _ROWS[key] = _find_highest_row(function, array)
    return _ROWS[key]


#: helpers of the model language that take an array and a row: ``store_where(state, ROW, i, ...)``
_ROW_HELPERS = (language.store_where, language.fill_row, language.row_sum)


def _find_highest_row(function, array: int) -> tuple[int, int | None, str] | None:
    parsed = _parse(function)
    if parsed is None:
        return None
    node, source, first_line = parsed
    arguments = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
    if len(arguments) <= array:
        return None
    analysis = _Analysis(function, node, source, first_line, "finish")
    highest = None
    for use in analysis.walk():
        if isinstance(use, ast.Subscript) and isinstance(use.value, ast.Name) and use.value.id == arguments[array]:
            index = use.slice.elts[0] if isinstance(use.slice, ast.Tuple) else use.slice
        elif (isinstance(use, ast.Call) and len(use.args) >= 2 and isinstance(use.args[0], ast.Name)
              and use.args[0].id == arguments[array] and any(analysis.callee(use) is h for h in _ROW_HELPERS)):
            index = use.args[1]
        else:
            continue
        row = _constant_row(analysis, index)
        if row is not None and (highest is None or row > highest[0]):
            highest = (row, analysis.line(use), analysis.text(use))
    return highest


def _constant_row(analysis: _Analysis, node: ast.AST) -> int | None:
    """The value of a row index made of int literals, global ints (``ROWS.v``) and ``+``/``*``."""
    if isinstance(node, ast.Constant):
        value = node.value
    elif isinstance(node, ast.Name | ast.Attribute):
        value = analysis.resolve(node)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
        left, right = _constant_row(analysis, node.left), _constant_row(analysis, node.right)
        if left is None or right is None:
            return None
        return left + right if isinstance(node.op, ast.Add) else left * right
    else:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        return None
    return int(value)


def _check(function, role: str, owner: str) -> None:
    label = "finish" if role == "finish" else "step"
    if isinstance(function, staticmethod | classmethod):
        function = function.__func__
    if inspect.ismethod(function):
        name = getattr(function, "__qualname__", repr(function))
        raise ModelError(f"{owner}: {label} {name} is a method bound to {type(function.__self__).__name__} (it "
                         f"takes self); declare it with @staticmethod: {_SIGNATURES[role][0]} takes "
                         f"({', '.join(_SIGNATURES[role][1])})")
    function = getattr(function, "py_func", function)  # a numba dispatcher: check its Python function
    code = getattr(function, "__code__", None)
    if not inspect.isfunction(function) or code is None:
        raise ModelError(f"{owner}: {label} must be a Python function written in the model language, "
                         f"got {function!r}")
    key = (code, role)
    if function.__closure__:
        problems = tuple(_problems(function, role))  # the verdict depends on the closure's values: no cache
    else:
        if key not in _CHECKED:
            _CHECKED[key] = tuple(_problems(function, role))
        problems = _CHECKED[key]
    if problems:
        raise ModelError(_message(owner, function, problems))


def _message(owner: str, function, problems: tuple[_Problem, ...]) -> str:
    name = function.__qualname__
    filename = function.__code__.co_filename
    lines = []
    for problem in problems:
        where = f"{filename}:{problem.line}" if problem.line is not None else filename
        if problem.bytecode:
            where += "; no source, checked on its bytecode"
        code = f", `{problem.code}`" if problem.code else ""
        lines.append(f"{problem.what} in {name} ({where}{code}): {problem.hint}")
    text = f"{owner}: {lines[0]}"
    if len(lines) > 1:
        text += "".join(f"\n  also: {line}" for line in lines[1:])
    return text


def _problems(function, role: str) -> list[_Problem]:
    signature = _signature_problem(function, role)
    if signature is not None:
        return [signature]  # the other checks read the parameters by position
    parsed = _parse(function)
    if parsed is None:
        return _code_object_problems(function.__code__, role)
    node, source, first_line = parsed
    try:
        return _Analysis(function, node, source, first_line, role).run()
    except Exception:  # noqa: BLE001 - a construct the analysis does not know must not stop a declaration
        return _code_object_problems(function.__code__, role)


def _signature_problem(function, role: str) -> _Problem | None:
    code = function.__code__
    what, names = _SIGNATURES[role]
    parameters = code.co_varnames[:code.co_argcount]
    starred = code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)
    if code.co_argcount == len(names) and not code.co_kwonlyargcount and not starred:
        return None
    shown = list(parameters)
    if code.co_flags & inspect.CO_VARARGS:
        shown.append("*" + code.co_varnames[code.co_argcount + code.co_kwonlyargcount])
    shown += list(code.co_varnames[code.co_argcount:code.co_argcount + code.co_kwonlyargcount])
    if code.co_flags & inspect.CO_VARKEYWORDS:
        shown.append("**...")
    return _Problem(f"{role if role == 'finish' else 'the step'} takes ({', '.join(shown)})",
                    f"{what} takes ({', '.join(names)}): {len(names)} positional parameters (the names are free)",
                    code.co_firstlineno)


def _parse(function) -> tuple[ast.AST, str, int] | None:
    """The function's definition node, its (dedented) source and the file line of the source's first line."""
    code = function.__code__
    try:
        lines, first_line = inspect.getsourcelines(function)
        source = textwrap.dedent("".join(lines))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    first_line = max(first_line, 1)
    parameters = list(code.co_varnames[:code.co_argcount])
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name != code.co_name:
                continue
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        elif isinstance(node, ast.Lambda):
            if code.co_name != "<lambda>":
                continue
            start = node.lineno
        else:
            continue
        arguments = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
        if arguments == parameters and start + first_line - 1 == code.co_firstlineno:
            return node, source, first_line
    return None  # the file changed since the function was made, or the source is not its own


# -- the checks on the syntax tree --------------------------------------------------------------

# types of values, as both backends see them
_PY_INT = "python int"  # a python int: int64 on numba, adopts the other operand's type on numpy
_PY_FLOAT = "python float"  # a python float: float64 on numba, adopts float32 on numpy
_INT = "int64"
_F64 = "float64"
_F32 = "float32"
_BOOL = "bool"
_UNKNOWN = "unknown"
_SHAPE = "shape"  # an array's shape: indexing it gives python ints
_RANGE = "range"
_WEAK = {_PY_INT, _PY_FLOAT}
_STRONG = {_F64, _INT}

_DTYPE_CONSTRUCTORS = {np.float32: _F32, np.float64: _F64, np.int64: _INT, np.int32: _INT, np.intp: _INT,
                       np.int16: _INT, np.int8: _INT, np.bool_: _BOOL, np.uint64: _UNKNOWN, np.uint32: _UNKNOWN}
_FLOAT64_HELPERS = {language.uniform01, language.row_sum, language.exp, language.tanh}
for _name in ("exp", "tanh"):  # helpers newer versions of the model language have
    if hasattr(language, _name):
        _FLOAT64_HELPERS.add(getattr(language, _name))
_MISSING = object()


def _atom_of_value(value) -> object:
    """The type of a global constant the function reads."""
    if isinstance(value, bool | np.bool_):
        return _BOOL
    if isinstance(value, int):
        return _PY_INT
    if isinstance(value, float):
        return _PY_FLOAT
    if isinstance(value, np.generic | np.ndarray):
        if value.dtype == np.float32:
            return _F32
        if value.dtype == np.float64:
            return _F64
        if np.issubdtype(value.dtype, np.signedinteger):
            return _INT
        if value.dtype == np.bool_:
            return _BOOL
        return _UNKNOWN
    if isinstance(value, tuple) and len(value) <= 64:
        return ("tuple", tuple(frozenset({_atom_of_value(v)}) for v in value))
    return _UNKNOWN


def _promote(a, b, op: ast.operator | None) -> object:
    """The type of ``a op b`` on numpy (where python numbers adopt the other operand's type)."""
    if not (isinstance(a, str) and isinstance(b, str)) or _SHAPE in (a, b) or _RANGE in (a, b):
        return _UNKNOWN
    pair = {a, b}
    divides = isinstance(op, ast.Div)
    if _F64 in pair:
        return _F64
    if _UNKNOWN in pair:
        return _UNKNOWN
    if _F32 in pair:
        return _F64 if _INT in pair else _F32
    if _INT in pair:
        return _F64 if divides or _PY_FLOAT in pair else _INT
    if pair <= _WEAK:
        return _PY_FLOAT if divides or _PY_FLOAT in pair else _PY_INT
    if pair == {_BOOL}:
        return _BOOL if isinstance(op, ast.BitAnd | ast.BitOr | ast.BitXor) else _INT
    return _F64 if _PY_FLOAT in pair or divides else _INT  # bool with a python number


def _strong(atom) -> object:
    """What a python number becomes inside a numpy function (np.float64 / np.int64)."""
    return {_PY_INT: _INT, _PY_FLOAT: _F64}.get(atom, atom)


def _describe(node: ast.AST, source_text: str) -> tuple[str, bool]:
    """How a message names an operand, and whether it is a literal."""
    literal = _literal_value(node)
    if literal is not None:
        return f"{type(literal).__name__} literal {literal!r}", True
    if isinstance(node, ast.Name):
        return f"`{node.id}`", False
    return f"`{source_text}`", False


def _bound_names(target: ast.AST):
    """The names an assignment to ``target`` binds (not those in ``state[ROW, i] = ...``)."""
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _bound_names(element)
    elif isinstance(target, ast.Starred):
        yield from _bound_names(target.value)


def _literal_value(node: ast.AST):
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _literal_value(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    return None


class _Analysis:
    """One pass over a step's syntax tree: signature already checked, the other rules here."""

    def __init__(self, function, node, source: str, first_line: int, role: str):
        self.function = function
        self.node = node
        self.source = source
        self.first_line = first_line
        self.role = role
        self.globals = function.__globals__
        self.closure = {}
        if function.__closure__:
            for name, cell in zip(function.__code__.co_freevars, function.__closure__, strict=False):
                try:
                    self.closure[name] = cell.cell_contents
                except ValueError:
                    pass
        arguments = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
        self.locals = set(function.__code__.co_varnames) | set(function.__code__.co_cellvars)
        # per-neuron values: state, constants, input, and the neuron index and column (arrays on numpy)
        self.tainted = set(arguments[:5])
        # i is an int64 array on numpy; c is i, or the python int 0 when the population shares one column
        index, column, step = {_INT}, {_INT, _PY_INT}, {_PY_INT}
        if role == "spiking":
            kinds = [{_F32}, {_F32}, {_F32}, index, column, step, {_UNKNOWN}]
            self.dangerous = {_F32, _UNKNOWN}
        elif role == "value":
            kinds = [{_F32}, {_F64}, {_F64}, index, column, step, {_UNKNOWN}]
            self.dangerous = {_F32}
        else:
            kinds = [{_F32}, {_F64}]
            self.dangerous = {_F32}
        self.types: dict[str, frozenset] = {name: frozenset(kind) for name, kind in zip(arguments, kinds,
                                                                                      strict=False)}
        self.problems: list[_Problem] = []
        self._reported: set[int] = set()
        self._index_nodes: set[int] = set()
        self._parents: dict[int, ast.AST] | None = None

    # -- helpers --------------------------------------------------------------------------------

    def body(self) -> list[ast.AST]:
        return [self.node.body] if isinstance(self.node, ast.Lambda) else list(self.node.body)

    def walk(self):
        for statement in self.body():
            yield from ast.walk(statement)

    def line(self, node: ast.AST) -> int | None:
        lineno = getattr(node, "lineno", None)
        return None if lineno is None else lineno + self.first_line - 1

    def text(self, node: ast.AST) -> str:
        segment = ast.get_source_segment(self.source, node) or ast.unparse(node)
        segment = " ".join(segment.split())
        return segment if len(segment) <= 80 else segment[:77] + "..."

    def report(self, node: ast.AST, what: str, hint: str, shown: ast.AST | None = None) -> None:
        if id(node) in self._reported:
            return
        self._reported.add(id(node))
        self.problems.append(_Problem(what, hint, self.line(node), self.text(shown if shown is not None else node)))

    def resolve(self, node: ast.AST):
        """The object a name or attribute chain refers to, when it is a global (np.zeros, select, len)."""
        if isinstance(node, ast.Name):
            if node.id in self.locals:
                return _MISSING
            if node.id in self.closure:
                return self.closure[node.id]
            if node.id in self.globals:
                return self.globals[node.id]
            return getattr(builtins, node.id, _MISSING)
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return _MISSING if base is _MISSING else getattr(base, node.attr, _MISSING)
        return _MISSING

    def callee(self, node: ast.AST):
        return self.resolve(node.func) if isinstance(node, ast.Call) else _MISSING

    # -- taint: which values depend on the neuron ------------------------------------------------

    def reads_state(self, node: ast.AST, loop_test: bool = False) -> bool:
        if isinstance(node, ast.Attribute) and node.attr in ("shape", "ndim", "size", "dtype"):
            return False
        if isinstance(node, ast.Call):
            function = self.callee(node)
            if function is len or (loop_test and function is language.any_true):
                return False
        if isinstance(node, ast.Name):
            return node.id in self.tainted
        return any(self.reads_state(child, loop_test) for child in ast.iter_child_nodes(node))

    def propagate_taint(self) -> None:
        changed = True
        while changed:
            changed = False
            for node in self.walk():
                targets, value = self.assignment(node)
                if value is None or not self.reads_state(value):
                    continue
                for name in (n for target in targets for n in _bound_names(target)):
                    if name not in self.tainted:
                        self.tainted.add(name)
                        changed = True

    @staticmethod
    def assignment(node: ast.AST) -> tuple[list[ast.AST], ast.AST | None]:
        if isinstance(node, ast.Assign):
            return node.targets, node.value
        if isinstance(node, ast.AugAssign | ast.AnnAssign | ast.NamedExpr):
            return [node.target], node.value
        if isinstance(node, ast.For | ast.comprehension):
            return [node.target], node.iter
        return [], None

    # -- types: which values are python numbers, float32 or float64 -----------------------------

    def type_of(self, node: ast.AST) -> frozenset:
        return frozenset(self._type_of(node))

    def _type_of(self, node: ast.AST) -> set:
        if isinstance(node, ast.Constant):
            return {_atom_of_value(node.value) if isinstance(node.value, int | float) else _UNKNOWN}
        if isinstance(node, ast.Name):
            if node.id in self.locals:
                return set(self.types.get(node.id, ()))
            value = self.resolve(node)
            return {_UNKNOWN} if value is _MISSING else {_atom_of_value(value)}
        if isinstance(node, ast.Attribute):
            if node.attr == "shape":
                return {_SHAPE}
            if node.attr in ("ndim", "size"):
                return {_PY_INT}
            if node.attr == "T":
                return self._type_of(node.value)
            value = self.resolve(node)
            return {_UNKNOWN} if value is _MISSING else {_atom_of_value(value)}
        if isinstance(node, ast.Subscript):
            result = set()
            for atom in self._type_of(node.value):
                if atom == _SHAPE:
                    result.add(_PY_INT)
                elif isinstance(atom, tuple):
                    elements = atom[1]
                    index = _literal_value(node.slice)
                    if isinstance(index, int) and -len(elements) <= index < len(elements):
                        result |= elements[index]
                    else:
                        for element in elements:
                            result |= element
                elif atom in (_F32, _F64, _INT, _BOOL):
                    result.add(atom)
                else:
                    result.add(_UNKNOWN)
            return result
        if isinstance(node, ast.BinOp):
            return {_promote(a, b, node.op) for a in self._type_of(node.left) for b in self._type_of(node.right)}
        if isinstance(node, ast.UnaryOp):
            return {_BOOL} if isinstance(node.op, ast.Not) else self._type_of(node.operand)
        if isinstance(node, ast.Compare):
            return {_BOOL}
        if isinstance(node, ast.BoolOp):
            return set().union(*(self._type_of(value) for value in node.values))
        if isinstance(node, ast.IfExp):
            return self._type_of(node.body) | self._type_of(node.orelse)
        if isinstance(node, ast.Tuple):
            return {("tuple", tuple(self.type_of(element) for element in node.elts))}
        if isinstance(node, ast.NamedExpr):
            return self._type_of(node.value)
        if isinstance(node, ast.Call):
            return self._call_type(node)
        return {_UNKNOWN}

    def _call_type(self, node: ast.Call) -> set:
        function = self.callee(node)
        arguments = node.args
        if function is _MISSING:
            return {_UNKNOWN}
        try:
            if function in _DTYPE_CONSTRUCTORS:
                return {_DTYPE_CONSTRUCTORS[function]}
        except TypeError:  # unhashable
            return {_UNKNOWN}
        if function in _FLOAT64_HELPERS:
            return {_F64}
        if function is language.sin_cos:
            return {("tuple", (frozenset({_F64}), frozenset({_F64})))}
        if function is language.any_true or function is language.spike or function is bool:
            return {_BOOL}
        if function is language.select and len(arguments) == 3:
            return self._select_type(arguments[1], arguments[2])
        if function is np.where and len(arguments) == 3:
            return self._select_type(arguments[1], arguments[2])
        if function is len or function is int or function is round:
            return {_PY_INT}
        if function is float:
            return {_PY_FLOAT}
        if function is range:
            return {_RANGE}
        if function is abs and arguments:
            return self._type_of(arguments[0])
        if function in (min, max) and arguments:
            return set().union(*(self._type_of(a) for a in arguments))
        if isinstance(function, np.ufunc) or str(getattr(function, "__module__", "")).startswith("numpy"):
            # numpy functions make numpy numbers of python ones (np.sqrt(2.0) is an np.float64)
            if not arguments:
                return {_UNKNOWN}
            result = {_strong(a) for a in self._type_of(arguments[0])}
            for argument in arguments[1:]:
                result = {_strong(_promote(a, b, None)) for a in result for b in self._type_of(argument)}
            if getattr(function, "__name__", "") in _FLOAT_UFUNCS:
                result = {_F64 if atom in (_INT, _BOOL) else atom for atom in result}
            return result
        return {_UNKNOWN}

    def _select_type(self, if_true: ast.AST, if_false: ast.AST) -> set:
        result = set()
        for a in self._type_of(if_true):
            for b in self._type_of(if_false):
                if a == b:
                    result.add(_strong(a))
                elif {a, b} <= (_WEAK | _STRONG):
                    result.add(_strong(_promote(a, b, None)))
                elif _BOOL in (a, b) and {a, b} - {_BOOL} <= (_WEAK | {_INT}):
                    result.add(_INT)
                else:
                    result.add(_promote(a, b, None))
        return result

    def iteration_type(self, node: ast.AST) -> frozenset:
        result = set()
        for atom in self._type_of(node):
            if atom == _RANGE:
                result.add(_PY_INT)
            elif isinstance(atom, tuple):
                for element in atom[1]:
                    result |= element
            elif atom in (_F32, _F64, _INT, _BOOL):
                result.add(atom)
            else:
                result.add(_UNKNOWN)
        return frozenset(result)

    def bind(self, target: ast.AST, kinds: frozenset) -> bool:
        if isinstance(target, ast.Name):
            old = self.types.get(target.id, frozenset())
            new = old | kinds
            self.types[target.id] = new
            return new != old
        if isinstance(target, ast.Tuple | ast.List):
            changed = False
            for index, element in enumerate(target.elts):
                parts = set()
                for atom in kinds:
                    if isinstance(atom, tuple) and len(atom[1]) == len(target.elts):
                        parts |= atom[1][index]
                    else:
                        parts.add(_UNKNOWN)
                changed |= self.bind(element, frozenset(parts))
            return changed
        if isinstance(target, ast.Starred):
            return self.bind(target.value, frozenset({_UNKNOWN}))
        return False

    def infer_types(self) -> None:
        for _ in range(50):  # types only grow, so this ends; 50 rounds bound pathological code
            changed = False
            for node in self.walk():
                if isinstance(node, ast.Assign):
                    kinds = self.type_of(node.value)
                    for target in node.targets:
                        changed |= self.bind(target, kinds)
                elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and node.value is not None:
                    changed |= self.bind(node.target, self.type_of(node.value))
                elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                    kinds = frozenset(_promote(a, b, node.op) for a in self.type_of(node.target)
                                      for b in self.type_of(node.value))
                    changed |= self.bind(node.target, kinds)
                elif isinstance(node, ast.For | ast.comprehension):
                    changed |= self.bind(node.target, self.iteration_type(node.iter))
            if not changed:
                return

    # -- the rules -----------------------------------------------------------------------------

    def run(self) -> list[_Problem]:
        self.propagate_taint()
        self.infer_types()
        for node in self.walk():
            if isinstance(node, ast.Subscript):
                self._index_nodes.update(id(n) for n in ast.walk(node.slice))
        for node in self.walk():
            self.check_branch(node)
            self.check_allocation(node)
            self.check_name(node)
        for node in self.walk():
            if id(node) not in self._index_nodes:
                self.check_numbers(node)
        if self.role == "spiking":
            for node in self.walk():
                if id(node) not in self._index_nodes:
                    self.check_float_literal(node)
        self.problems.sort(key=lambda p: p.line or 0)
        return self.problems

    def check_branch(self, node: ast.AST) -> None:
        if isinstance(node, ast.If) and self.reads_state(node.test):
            self.report(node, "`if` on a state value", f"{_SELECT_HINT}; numpy runs the step on whole arrays, "
                        "where `if` cannot branch per neuron", shown=node.test)
        elif isinstance(node, ast.While) and self.reads_state(node.test, loop_test=True):
            self.report(node, "`while` on a state value", "loop with `while any_true(condition):` and mask "
                        "the updates inside with select(...)", shown=node.test)
        elif isinstance(node, ast.IfExp) and self.reads_state(node.test):
            self.report(node, "conditional expression (`a if condition else b`) on a state value", _SELECT_HINT)
        elif isinstance(node, ast.BoolOp) and self.reads_state(node):
            word, operator = ("and", "&") if isinstance(node.op, ast.And) else ("or", "|")
            self.report(node, f"`{word}` on state values", f"combine conditions with `{operator}` (with "
                        f"parentheses: (a > 0) {operator} (b > 0)), or {_SELECT_HINT}")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not) and self.reads_state(node.operand):
            self.report(node, "`not` on a state value", "negate a condition with `~condition`")
        elif isinstance(node, ast.Compare) and len(node.ops) > 1 and self.reads_state(node):
            self.report(node, "chained comparison on state values", "write (a < b) & (b < c)")
        elif isinstance(node, ast.Assert) and self.reads_state(node.test):
            self.report(node, "`assert` on a state value", "a step cannot stop for one neuron; leave it out")
        elif isinstance(node, ast.Call) and node.args:
            function = self.callee(node)
            try:
                hint = _ON_ARRAYS.get(function) if function is not _MISSING else None
            except TypeError:
                hint = None
            if hint is not None and any(self.reads_state(a) for a in node.args):
                self.report(node, f"`{function.__name__}()` on state values", f"{hint}; on numpy the values are "
                            "arrays, where it fails or compares whole arrays")

    def check_name(self, node: ast.AST) -> None:
        # numpy would raise a NameError in the first step, numba a TypingError when it compiles
        if (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in self.locals
                and self.resolve(node) is _MISSING):
            self.report(node, f"name {node.id!r} is not defined", "define it at module level (a constant of the "
                        "model language: an int, or np.float32(...)), or read it from consts")

    def check_allocation(self, node: ast.AST) -> None:
        kinds = {ast.List: "a list literal", ast.Dict: "a dict literal", ast.Set: "a set literal",
                 ast.ListComp: "a list comprehension", ast.SetComp: "a set comprehension",
                 ast.DictComp: "a dict comprehension", ast.GeneratorExp: "a generator expression"}
        for syntax, what in kinds.items():
            if isinstance(node, syntax):
                if isinstance(node, ast.List) and isinstance(node.ctx, ast.Store):
                    return  # [a, b] = ... unpacks
                self.report(node, f"{what} (it allocates)", _ALLOCATION_HINT)
                return
        if isinstance(node, ast.Call):
            function = self.callee(node)
            try:
                allocates = function in _ALLOCATORS or function in _BUILTIN_ALLOCATORS
            except TypeError:
                allocates = False
            if allocates:
                name = _BUILTIN_ALLOCATORS.get(function) or f"np.{function.__name__}(...)"
                self.report(node, f"{name} (it allocates)", _ALLOCATION_HINT)

    def operand_pairs(self, node: ast.AST):
        """(operand, partners, how) for each place where values of two types meet."""
        if isinstance(node, ast.BinOp):
            yield node.left, [node.right], "in arithmetic with"
            yield node.right, [node.left], "in arithmetic with"
        elif isinstance(node, ast.AugAssign):
            yield node.value, [node.target], "in arithmetic with"
            yield node.target, [node.value], "in arithmetic with"
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for index, operand in enumerate(operands):
                yield operand, [o for j, o in enumerate(operands) if j in (index - 1, index + 1)], "compared with"
        elif isinstance(node, ast.Call):
            function = self.callee(node)
            if (function is language.select or function is np.where) and len(node.args) == 3:
                yield node.args[1], [node.args[2]], "selected against"
                yield node.args[2], [node.args[1]], "selected against"
            elif isinstance(function, np.ufunc) and function.nin >= 2 and len(node.args) >= 2:
                operands = node.args[:function.nin]
                for index, operand in enumerate(operands):
                    yield operand, [o for j, o in enumerate(operands) if j != index], f"in np.{function.__name__} with"

    def check_numbers(self, node: ast.AST) -> None:
        """A python number (literal or value) meeting a float32 value: promoted on numba only."""
        for operand, partners, how in self.operand_pairs(node):
            kinds = self.type_of(operand)
            weak = kinds & ({_PY_FLOAT} if how == "compared with" else _WEAK)
            if not weak:
                continue
            partner_kinds = frozenset().union(*(self.type_of(p) for p in partners))
            meets = partner_kinds & self.dangerous
            if not meets:
                continue
            name, literal = _describe(operand, self.text(operand))
            literal_value = _literal_value(operand)
            if self.role == "spiking" and isinstance(literal_value, float):
                continue  # check_float_literal reports it
            if not literal:
                name = f"python {'float' if _PY_FLOAT in weak else 'int'} {name}"
            if self.role != "spiking":
                self.report(operand, f"{name} {how} a float32 state value", _VALUE_STATE_HINT, shown=node)
                continue
            what = f"{name} {how} {'a float32 value' if _F32 in meets else 'a value of unknown type'}"
            hint = _INT_LITERAL_HINT if literal else _PYTHON_NUMBER_HINT
            if literal and isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and operand is node.right:
                base = self.text(node.left)
                hint = (f"write `{' * '.join([base] * literal_value)}`" if literal_value in (2, 3) else
                        "compute the power from consts or with repeated multiplication") + \
                    "; an int exponent promotes float32 to float64 on numba but not on numpy"
            self.report(operand, what, hint, shown=node)

    def check_float_literal(self, node: ast.AST) -> None:
        """A spiking step takes float constants from consts, unless the arithmetic is explicitly float64."""
        value = _literal_value(node)
        if not isinstance(value, float):
            return
        raw_parent = self.parents().get(id(node))
        if isinstance(node, ast.Constant) and isinstance(raw_parent, ast.UnaryOp) \
                and isinstance(raw_parent.op, ast.USub | ast.UAdd):
            return  # reported as the signed literal
        parent = self.parent_of(node)
        if isinstance(parent, ast.Call) and node in parent.args:
            function = self.callee(parent)
            try:
                if function in _DTYPE_CONSTRUCTORS:
                    return  # np.float32(0.5): typed explicitly
            except TypeError:
                pass
        partners = [partner for operand, group, _how in self.operand_pairs(parent) if operand is node
                    for partner in group] if parent is not None else []
        if partners:
            kinds = frozenset().union(*(self.type_of(p) for p in partners))
            if kinds and kinds <= _STRONG:
                return  # float64 arithmetic (or with int64 indices): float64 on both backends
        self.report(node, f"float literal {value!r}", _FLOAT_LITERAL_HINT, shown=parent if isinstance(
            parent, ast.BinOp | ast.Compare | ast.AugAssign | ast.Call) else node)

    def parents(self) -> dict[int, ast.AST]:
        """id(node) -> the node it is a child of."""
        if self._parents is None:
            self._parents = {}
            for statement in self.body():
                for parent in ast.walk(statement):
                    for child in ast.iter_child_nodes(parent):
                        self._parents[id(child)] = parent
        return self._parents

    def parent_of(self, node: ast.AST) -> ast.AST | None:
        """The node ``node`` is an operand of (a signed literal counts as one operand)."""
        parent = self.parents().get(id(node))
        if isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub | ast.UAdd):
            return self.parent_of(parent)
        return parent


_FLOAT_UFUNCS = {"sqrt", "exp", "expm1", "log", "log1p", "log2", "log10", "sin", "cos", "tan", "arcsin", "arccos",
                 "arctan", "sinh", "cosh", "tanh", "floor", "ceil", "trunc", "rint", "true_divide", "power",
                 "arctan2", "hypot", "exp2", "cbrt"}


# -- the checks on a code object (no source) ----------------------------------------------------


def _code_object_problems(code: types.CodeType, role: str) -> list[_Problem]:
    problems: list[_Problem] = []
    seen: set[tuple[str, object]] = set()
    for nested in _code_objects(code):
        instructions = list(dis.get_instructions(nested))
        line = nested.co_firstlineno
        for index, instruction in enumerate(instructions):
            if instruction.starts_line is not None:
                line = instruction.starts_line
            if role == "spiking" and instruction.opname == "LOAD_CONST" and isinstance(instruction.argval, float) \
                    and not _typed_by_constructor(instructions, index):
                key = ("float", instruction.argval)
                if key not in seen:
                    seen.add(key)
                    problems.append(_Problem(f"float literal {instruction.argval!r}", _FLOAT_LITERAL_HINT, line,
                                             bytecode=True))
            elif instruction.opname in ("BUILD_LIST", "BUILD_SET", "BUILD_MAP", "BUILD_CONST_KEY_MAP", "LIST_APPEND",
                                        "SET_ADD", "MAP_ADD"):
                what = {"BUILD_LIST": "a list", "LIST_APPEND": "a list comprehension", "BUILD_SET": "a set",
                        "SET_ADD": "a set comprehension", "MAP_ADD": "a dict comprehension"}.get(
                    instruction.opname, "a dict")
                key = ("allocation", what)
                if key not in seen:
                    seen.add(key)
                    problems.append(_Problem(f"{what} (it allocates)", _ALLOCATION_HINT, line, bytecode=True))
            elif instruction.opname in ("LOAD_ATTR", "LOAD_METHOD", "LOAD_GLOBAL") \
                    and instruction.argval in _ALLOCATOR_NAMES:
                key = ("allocation", instruction.argval)
                if key not in seen:
                    seen.add(key)
                    problems.append(_Problem(f"np.{instruction.argval}(...) (it allocates)", _ALLOCATION_HINT, line,
                                             bytecode=True))
    return problems


def _code_objects(code: types.CodeType):
    yield code
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _code_objects(constant)


def _typed_by_constructor(instructions: list[dis.Instruction], index: int) -> bool:
    """Whether the constant at ``index`` is the one argument of a call to np.float32/np.float64/..."""
    before = instructions[index - 1] if index else None
    after = next((i for i in instructions[index + 1:] if i.opname not in ("PRECALL", "KW_NAMES", "CACHE")), None)
    return (before is not None and before.opname in ("LOAD_ATTR", "LOAD_METHOD", "LOAD_GLOBAL", "LOAD_NAME")
            and before.argval in ("float32", "float64") and after is not None
            and after.opname in ("CALL", "CALL_FUNCTION") and after.arg == 1)
