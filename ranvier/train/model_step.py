"""Any spiking model's own step, run in torch for training: no second copy of its equations.

A model-language step (``step(state, consts, arriving, i, c, k, key)``, see
:mod:`ranvier.engine.model`) is plain Python over arrays. :func:`torch_step` rebuilds the same
code object with torch in place of the helpers it calls: ``select`` becomes ``torch.where``,
``store_where`` a functional write, ``exp``/``tanh``/``sin_cos``/``floor``/``sqrt`` torch's, numpy's ``sqrt``,
``abs``, ... torch's, and ``spike(x)`` — the Heaviside step on every backend — the
surrogate-gradient spike (fast sigmoid, Zenke & Ganguli 2018). The state, constants and
arrivals it indexes become proxies over torch tensors ``(B, n)``: ``state[ROW, i]`` reads a row,
``state[ROW, i] = value`` replaces it (no in-place write, so autograd sees every step).

The reset goes through ``select(fired, v_reset, v_new)``, which passes no gradient through the
spike into the reset (the "detached reset" of :class:`~ranvier.train.SpikingModule`).

That route runs some 25 small torch ops per step under autograd. A population whose arrivals
are known for all steps (no projection from its own group) takes :meth:`ModelStep.sequence`
instead: the same rebuilt step, called once with symbolic values (:class:`_Node`; torch
functions reach it through ``__torch_function__``), becomes a program of elementwise ops with
its constants folded (:class:`_Graph`), differentiated symbolically in forward mode
(:func:`_tangent`) and run over all steps by :class:`_Recurrence`: per step only the ops that
lead to the next state, without autograd (a LIF step: four ops, as many as the hand-fused
:class:`~ranvier.train.recurrence.LIFRecurrence`), and a backward pass of one multiply-add per
state row and step. A step that cannot be traced (it branches on a value, reads ``k``, calls
a torch function with no traced version) runs step by step.
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
from .fused import FusedProgram
from .recurrence import surrogate_derivative, surrogate_spike

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
    if isinstance(x, _Node):
        return x.graph.spike(x)
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
    if not isinstance(x, Tensor | _Node):
        return torch.exp(torch.as_tensor(x))
    return torch.exp(torch.clamp(x, max=float(np.log(torch.finfo(x.dtype).max)) - 8.0))


def _sin_cos(x):
    return torch.sin(x), torch.cos(x)


#: model-language helper -> its torch version
_TORCH_HELPERS: dict[object, Callable] = {
    model_language.select: _select, model_language.store_where: _store_where, model_language.spike: _spike,
    model_language.any_true: _any_true, model_language.sin_cos: _sin_cos, model_language.exp: _exp,
    model_language.tanh: torch.tanh, model_language.floor: torch.floor, model_language.sqrt: torch.sqrt,
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


# -- a step traced once into a program, run over all steps with a derived backward ------------

class _Untraceable(Exception):
    """The step does something a traced program cannot hold (data-dependent control flow, ``k``)."""


class _Refusing:
    """``k`` and ``key`` while a step is traced: a step that reads them is run step by step instead."""

    def _refuse(self, *_):
        raise _Untraceable("the step reads k or key")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _refuse
    __floordiv__ = __mod__ = __pow__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __bool__ = __index__ = __int__ = __float__ = _refuse
    __hash__ = object.__hash__


def _compare(function: Callable) -> Callable:
    """A comparison written into a float 0/1 mask of the operands' broadcast shape (a bool
    tensor, and ``torch.where`` on one, cost three times as much on the CPU)."""
    def compare(a: Tensor, b: Tensor) -> Tensor:
        out = torch.empty(torch.broadcast_shapes(a.shape, b.shape), dtype=a.dtype, device=a.device)
        return function(a, b, out=out)
    return compare


#: op -> its forward on tensors; ``select`` is ``lerp(if_false, if_true, mask)``: exactly the
#: chosen branch where both are finite (``torch.where``'s backward needs that too: 0 * inf is NaN)
_FORWARD: dict[str, Callable] = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "neg": torch.neg, "pow": torch.pow,
    "ge": _compare(torch.ge), "gt": _compare(torch.gt), "le": _compare(torch.le), "lt": _compare(torch.lt),
    "eq": _compare(torch.eq), "ne": _compare(torch.ne), "spike": _compare(torch.ge),
    "and": torch.mul, "or": torch.maximum, "gate": torch.mul,
    "not": lambda a: 1 - a, "select": lambda condition, a, b: torch.lerp(b, a, condition),
    "exp": torch.exp, "tanh": torch.tanh, "sqrt": torch.sqrt, "abs": torch.abs, "floor": torch.floor,
    "sin": torch.sin, "cos": torch.cos, "sign": torch.sign,
}
#: ops whose value is a 0/1 mask (and ``gate(c, x)``, ``select(c, x, 0)`` as one product, when ``x`` is one)
_MASKS = {"ge", "gt", "le", "lt", "eq", "ne", "and", "or", "not", "spike"}
#: torch functions a step calls (through the torch helpers) -> op
_TORCH_OPS = {torch.exp: "exp", torch.tanh: "tanh", torch.sqrt: "sqrt", torch.abs: "abs", torch.floor: "floor",
              torch.sin: "sin", torch.cos: "cos"}


class _Node:
    """One value of a traced step: an op on earlier nodes and Python numbers, a constant ``(n,)``
    or 0-d tensor (``op == "const"``), or an input (a state row or a receptor's arrivals)."""

    __array_ufunc__ = None  # numpy scalars defer to the node's reflected operators
    __hash__ = object.__hash__

    def __init__(self, graph: _Graph, op: str, args: tuple, function: Callable | None, value: Tensor | None,
                 mask: bool, bound: float | None = None) -> None:
        self.graph, self.op, self.args, self.function, self.value, self.mask = graph, op, args, function, value, mask
        self.bound = bound  # of a clamp_max or clamp_min
        self.centred: _Node | None = None  # of a spike: the x of spike(x)
        self.index = len(graph.nodes)
        graph.nodes.append(self)
        self.uniform = None  # a constant's one value, when all its entries share it
        if value is not None and value.numel() and bool(torch.all(value == value.reshape(-1)[0])):
            self.uniform = float(value.reshape(-1)[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.graph.dtype

    def __add__(self, other): return self.graph.make("add", self, other)
    def __radd__(self, other): return self.graph.make("add", other, self)
    def __sub__(self, other): return self.graph.make("sub", self, other)
    def __rsub__(self, other): return self.graph.make("sub", other, self)
    def __mul__(self, other): return self.graph.make("mul", self, other)
    def __rmul__(self, other): return self.graph.make("mul", other, self)
    def __truediv__(self, other): return self.graph.make("div", self, other)
    def __rtruediv__(self, other): return self.graph.make("div", other, self)
    def __pow__(self, other): return self.graph.make("pow", self, other)
    def __rpow__(self, other): return self.graph.make("pow", other, self)
    def __neg__(self): return self.graph.make("neg", self)
    def __pos__(self): return self
    def __abs__(self): return self.graph.make("abs", self)
    def __ge__(self, other): return self.graph.make("ge", self, other)
    def __gt__(self, other): return self.graph.make("gt", self, other)
    def __le__(self, other): return self.graph.make("le", self, other)
    def __lt__(self, other): return self.graph.make("lt", self, other)
    def __eq__(self, other): return self.graph.make("eq", self, other)
    def __ne__(self, other): return self.graph.make("ne", self, other)
    def __and__(self, other): return self.graph.make("and", *self.graph.conditions(self, other))
    __rand__ = __and__
    def __or__(self, other): return self.graph.make("or", *self.graph.conditions(self, other))
    __ror__ = __or__
    def __invert__(self): return self.graph.make("not", self.graph.condition(self))

    def __bool__(self):
        raise _Untraceable("the step branches on a value (if/while/and/or on the state)")

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        graph = next(a for a in args if isinstance(a, _Node)).graph
        if func is torch.where and len(args) == 3 and not kwargs:
            return graph.make("select", graph.condition(args[0]), args[1], args[2])
        if func is torch.clamp and len(args) == 1 and set(kwargs) == {"max"}:
            return graph.make("clamp_max", args[0], bound=float(kwargs["max"]))
        if func in _TORCH_OPS and len(args) == 1 and not kwargs:
            return graph.make(_TORCH_OPS[func], args[0])
        raise _Untraceable(f"torch.{func.__name__} has no traced version")


class _Graph:
    """The nodes of one traced step, in creation order (every node after its arguments).

    Ops whose arguments are all constants are evaluated at once; ``x + 0``, ``x * 1``,
    ``x * 0``, ``select`` of a constant mask or of equal branches fold away, so a constant row
    (a delta receptor's zero propagator, a refractory period of zero) costs nothing per step.
    (``x * 0`` folds to 0 although the engine's NaN * 0 is NaN: a non-finite value that only
    such a term would carry is out of training's reach anyway.)
    """

    def __init__(self, dtype: torch.dtype, device: torch.device, scale: Tensor, slope: float) -> None:
        self.nodes: list[_Node] = []
        self.dtype, self.device, self.slope = dtype, device, slope
        self._interned: dict[tuple, _Node] = {}
        self.scale = self.const(scale)

    def const(self, value) -> _Node:
        value = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        return _Node(self, "const", (), None, value, bool(torch.all((value == 0) | (value == 1))))

    def input(self) -> _Node:
        return _Node(self, "input", (), None, None, False)

    def tensor(self, value) -> _Node:
        """``value`` as a node (a Python or numpy number becomes a 0-d constant)."""
        return value if isinstance(value, _Node) else self.const(_number(value))

    def condition(self, value) -> _Node:
        value = self.tensor(value)
        return value if value.mask else self.make("ne", value, 0.0)

    def conditions(self, a, b) -> tuple[_Node, _Node]:
        return self.condition(a), self.condition(b)

    def spike(self, centred) -> _Node:
        """``spike(centred)``: the mask ``a >= b`` for ``centred = a - b`` (the same bits, one op
        fewer per step), ``centred >= 0`` otherwise; ``centred`` is kept for the surrogate."""
        centred = self.tensor(centred)
        node = self.make("spike", *(centred.args if centred.op == "sub" else (centred, 0.0)))
        if isinstance(node, _Node) and node.op == "spike":
            node.centred = centred
        return node

    def make(self, op: str, *args, bound: float | None = None):
        args = tuple(a if isinstance(a, _Node) else _number(a) for a in args)
        if op in ("select", "or") or op in _MASKS:  # torch functions that need tensors
            args = tuple(self.tensor(a) for a in args)
        if op == "clamp_min" and args[0].op == "select":  # the spike count: clamp each branch
            condition, if_true, if_false = args[0].args
            return self.make("select", condition, self.make(op, if_true, bound=bound),
                             self.make(op, if_false, bound=bound))
        if op == "clamp_min" and args[0].mask and bound == 0:
            return args[0]
        if op == "select" and args[2].uniform == 0 and args[1].mask:  # one op (mul) instead of a lerp
            return self.make("gate", args[0], args[1])
        folded = self._fold(op, args)
        if folded is not None:
            return folded
        function = self._function(op, bound)
        if all(not isinstance(a, _Node) or a.op == "const" for a in args):
            value = function(*(a.value if isinstance(a, _Node) else a for a in args))
            return self.const(value)
        key = (op, bound, tuple(("node", a.index) if isinstance(a, _Node) else (type(a), a) for a in args))
        if key not in self._interned:
            mask = op in _MASKS or (op == "select" and args[1].mask and args[2].mask) or (
                op == "gate" and args[1].mask) or (op == "mul" and all(isinstance(a, _Node) and a.mask for a in args))
            self._interned[key] = _Node(self, op, args, function, None, mask, bound)
        return self._interned[key]

    def _function(self, op: str, bound: float | None) -> Callable:
        if op == "surrogate":
            return lambda x, scale: surrogate_derivative(x, scale, self.slope)
        if op == "clamp_max":
            return lambda x: torch.clamp(x, max=bound)
        if op == "clamp_min":
            return lambda x: torch.clamp(x, min=bound)
        return _FORWARD[op]

    @staticmethod
    def _fold(op: str, args: tuple):
        values = [a.uniform if isinstance(a, _Node) else a for a in args]
        if op == "add":
            if values[1] == 0:
                return args[0]
            if values[0] == 0:
                return args[1]
        elif op in ("sub", "div") and values[1] == (0 if op == "sub" else 1):
            return args[0]
        elif op in ("mul", "and", "gate"):
            for this, other in ((0, 1), (1, 0)):
                if values[this] == 0:
                    return args[this]
                if values[this] == 1:
                    return args[other]
        elif op == "select":
            if values[0] is not None and values[0] in (0, 1):
                return args[1] if values[0] == 1 else args[2]
            a, b = args[1], args[2]
            if a is b or (a.op == "const" == b.op and torch.equal(*torch.broadcast_tensors(a.value, b.value))):
                return a
        return None


def _number(value):
    """A Python or numpy number as a Python number (a numpy scalar has the same value)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bool | int | float):
        return value
    raise _Untraceable(f"a {type(value).__name__} in the step has no traced version")


def _tangent(node: _Node, tangents: list) -> _Node | None:
    """``d node`` from the tangents of its arguments (None: zero), by the chain rule."""
    graph, args = node.graph, node.args
    t = [tangents[a.index] if isinstance(a, _Node) else None for a in args]
    if all(x is None for x in t):
        return None
    make = graph.make

    def plus(a, b):
        return b if a is None else a if b is None else make("add", a, b)

    def times(a, b):
        """``a b``, with a constant factor of ``b`` moved outside (shares ``a x`` between entries)."""
        if b is None:
            return None
        if isinstance(b, _Node) and b.op == "mul" and (not isinstance(b.args[1], _Node) or b.args[1].op == "const"):
            return make("mul", make("mul", a, b.args[0]), b.args[1])
        return make("mul", a, b)

    op = node.op
    if op == "add":
        return plus(t[0], t[1])
    if op == "sub":
        return t[0] if t[1] is None else plus(t[0], make("neg", t[1]))
    if op == "mul":
        return plus(times(args[1], t[0]), times(args[0], t[1]))
    if op == "div":
        return plus(times(make("div", 1.0, args[1]), t[0]),
                    times(make("neg", make("div", node, args[1])), t[1]))
    if op == "neg":
        return make("neg", t[0])
    if op == "gate":  # as select: no gradient through the condition
        return times(args[0], t[1])
    if op == "pow":
        if t[1] is not None:
            raise _Untraceable("a power with a variable exponent")
        return times(make("mul", args[1], make("pow", args[0], make("sub", args[1], 1.0))), t[0])
    if op == "select":
        if t[1] is None and t[2] is None:
            return None
        return make("select", args[0], graph.tensor(t[1] if t[1] is not None else 0.0),
                    graph.tensor(t[2] if t[2] is not None else 0.0))
    if op == "spike":
        return times(make("surrogate", node.centred, graph.scale), tangents[node.centred.index])
    derivative = {
        "exp": lambda: node,
        "clamp_max": lambda: make("le", args[0], node.bound),
        "clamp_min": lambda: make("ge", args[0], node.bound),
        "tanh": lambda: make("sub", 1.0, make("mul", node, node)),
        "sqrt": lambda: make("div", 0.5, node),
        "abs": lambda: make("sign", args[0]),
        "sin": lambda: make("cos", args[0]),
        "cos": lambda: make("neg", make("sin", args[0])),
    }.get(op)
    return None if derivative is None else times(derivative(), t[0])  # the other ops are piecewise constant


class _Traced:
    """A step traced with the rows in ``constant`` held at their initial values."""

    def __init__(self, step: Callable, init: Tensor, consts: Tensor, scale: Tensor, slope: float,
                 absent: tuple[bool, ...], constant: set[int]) -> None:
        graph = self.graph = _Graph(consts.dtype, consts.device, scale, slope)
        rows = [graph.const(row) if j in constant else graph.input() for j, row in enumerate(init)]
        self.row_inputs = {j: node for j, node in enumerate(rows) if j not in constant}
        arrivals = [graph.const(0.0) if gone else graph.input() for gone in absent]
        self.arrival_inputs = {r: node for r, node in enumerate(arrivals) if not absent[r]}
        state = _Rows(rows)
        refusing = _Refusing()
        count = step(state, _Table([graph.const(row) for row in consts]), tuple(_Vector(a) for a in arrivals),
                     slice(None), slice(None), refusing, refusing)
        self.rows = [graph.tensor(row) for row in state.rows]
        count = graph.tensor(count)
        if count.op == "select" and count.args[2].uniform == model_language.NOT_FINITE:
            # select(healthy, count, NOT_FINITE): the engine's report of a state that stopped being
            # finite (three ops over all steps); in training such a state shows as NaN in the loss
            count = count.args[1]
        self.spikes = graph.make("clamp_min", count, bound=0.0)

    def constant_rows(self, init: Tensor, constant: set[int]) -> set[int]:
        """The rows of ``constant`` that this step leaves at their initial values."""
        return {j for j in constant if self.rows[j].op == "const" and torch.equal(
            torch.broadcast_to(self.rows[j].value, init[j].shape), init[j])}


def _walk(roots, stop: set[int]) -> tuple[list[_Node], set[int]]:
    """The nodes to evaluate for ``roots``, in order, and the inputs and ``stop`` nodes they read."""
    seen, order, reached = set(), [], set()
    stack = [root for root in roots if isinstance(root, _Node)]
    while stack:
        node = stack.pop()
        if node.index in seen or node.op == "const":
            continue
        seen.add(node.index)
        if node.op == "input" or node.index in stop:
            reached.add(node.index)
            continue
        order.append(node)
        stack.extend(a for a in node.args if isinstance(a, _Node))
    return sorted(order, key=lambda node: node.index), reached


class _Recurrence:
    """One population's step, traced, run over all ``T`` steps, with its derivative.

    The state rows the step leaves at their initial values are constants (found by fixed
    point: held constant, the step gives them back). Per step only the ops that lead to the
    next state run, without autograd; everything else (the spike count, its finiteness check)
    runs once over ``(T, B, n)`` afterwards. Forward-mode differentiation of the traced step
    gives, as expressions of its values, the Jacobian of the next state ``N`` and the spike
    output ``S`` with respect to the state ``O`` and the arrivals ``A``; reverse mode over time
    is then, with the state's adjoint ``a[k]`` (``a[T] = 0``) and the gradients ``gS``, ``gV``
    of the spikes and of ``v`` (row ``V`` of ``N``)::

        a_i[k] = sum_j dN_j/dO_i[k] (a_j[k+1] + [j = V] gV[k]) + dS/dO_i[k] gS[k]
        dL/dA_r[k] = sum_j dN_j/dA_r[k] (a_j[k+1] + [j = V] gV[k]) + dS/dA_r[k] gS[k]

    one multiply-add per state row and Jacobian entry per step; everything else is one op over
    all steps. Rows whose adjoint is always zero (a refractory counter, which changes ``v``
    only through conditions) are left out.
    """

    def __init__(self, step: Callable, init: Tensor, consts: Tensor, scale: Tensor, slope: float,
                 absent: tuple[bool, ...], v_row: int | None) -> None:
        constant = set(range(init.shape[0]))
        while True:
            traced = _Traced(step, init, consts, scale, slope, absent, constant)
            kept = traced.constant_rows(init, constant)
            if kept == constant:
                break
            constant = kept
        self.init, self.v_row = init, v_row
        graph = traced.graph
        self.variable = sorted(traced.row_inputs)
        self.row_inputs = {j: traced.row_inputs[j].index for j in self.variable}
        self.arrival_inputs = {r: node.index for r, node in traced.arrival_inputs.items()}
        self.rows = traced.rows
        self.spikes = traced.spikes
        self.entries = self._jacobian(graph, traced)
        self.nodes = graph.nodes
        self._literals: list = []  # the Python numbers the ops read, after the nodes' values
        loop, _ = _walk([self.rows[j] for j in self.variable], set())
        self.loop = self._compile(loop)
        self.loop_nodes = {node.index for node in loop}
        self.row_outputs = [(j, self.rows[j].index) for j in self.variable]
        after, reached = _walk([self.spikes], self.loop_nodes)
        self.after = self._compile(after)
        _, reached_backward = _walk(self.entries.values(), self.loop_nodes)
        self.inputs = set(self.row_inputs.values()) | set(self.arrival_inputs.values())
        outputs = {index for _, index in self.row_outputs}
        self.saved_forward = sorted(reached - self.inputs - outputs)
        self.saved_backward = sorted((reached | reached_backward) - self.inputs - outputs)
        self._backward_programs: dict[tuple[bool, bool], tuple] = {}

    def _jacobian(self, graph: _Graph, traced: _Traced) -> dict[tuple, _Node]:
        """Non-zero entries ``("J", j, i)``: dN_j/dO_i, ``("S", i)``: dS/dO_i, ``("JA", j, r)``: dN_j/dA_r,
        ``("SA", r)``: dS/dA_r, each a node (or constant) of the traced step."""
        forward = list(graph.nodes)
        seeds = [(("row", i), node) for i, node in traced.row_inputs.items()]
        seeds += [(("arrival", r), node) for r, node in traced.arrival_inputs.items()]
        entries = {}
        for (kind, i), seed in seeds:
            tangents: list = [None] * len(forward)
            tangents[seed.index] = graph.const(1.0)
            for node in forward:
                if node.op not in ("const", "input"):
                    tangents[node.index] = _nonzero(_tangent(node, tangents))
            targets = [((("J" if kind == "row" else "JA"), j, i), self.rows[j]) for j in self.variable]
            targets.append(((("S" if kind == "row" else "SA"), i), self.spikes))
            for key, target in targets:
                value = tangents[target.index] if target.index < len(forward) else None
                if value is not None:
                    entries[key] = graph.tensor(value)
        return entries

    def _relevant(self, has_spikes: bool, has_v: bool) -> list[int]:
        """State rows whose adjoint is not always zero."""
        rows = {i for i in self.variable if (has_spikes and ("S", i) in self.entries)
                or (has_v and ("J", self.v_row, i) in self.entries)}
        while True:
            more = {i for i in self.variable if any(("J", j, i) in self.entries for j in rows)} - rows
            if not more:
                return sorted(rows)
            rows |= more

    # -- running -------------------------------------------------------------------------------

    def _compile(self, nodes: list[_Node]) -> list[tuple[int, Callable, tuple[int, ...]]]:
        """``nodes`` as ``(index, function, argument indices)`` into :meth:`_values`."""
        program = []
        for node in nodes:
            args = []
            for a in node.args:
                if isinstance(a, _Node):
                    args.append(a.index)
                else:
                    args.append(len(self.nodes) + len(self._literals))
                    self._literals.append(a)
            program.append((node.index, node.function, tuple(args)))
        return program

    def _values(self) -> list:
        """The constants' values, room for the other nodes', then the literals."""
        return [node.value for node in self.nodes] + self._literals

    def forward(self, arriving: Sequence[Tensor | None], steps: int, batch: int, for_backward: bool):
        """``spikes (T, B, n)``, ``v (T, B, n)`` or None, and what the backward pass reads."""
        n = self.init.shape[1]
        values = self._values()
        per_step = {r: arriving[r].unbind(0) for r in self.arrival_inputs}
        history = {j: [self.init[j]] for j in self.variable}
        saved_nodes = self.saved_backward if for_backward else self.saved_forward
        saved: dict[int, list[Tensor]] = {index: [] for index in saved_nodes}
        row_inputs, arrival_inputs = list(self.row_inputs.items()), list(self.arrival_inputs.items())
        for k in range(steps):
            for j, index in row_inputs:
                values[index] = history[j][-1]
            for r, index in arrival_inputs:
                values[index] = per_step[r][k]
            for index, function, args in self.loop:
                values[index] = function(*[values[a] for a in args])
            for j, index in self.row_outputs:
                history[j].append(values[index])
            for index, kept in saved.items():
                kept.append(values[index])
        stacked = {j: _stack(rows, batch, n) for j, rows in history.items()}
        known = {index: _stack(kept, batch, n) for index, kept in saved.items()}
        for j, index in self.row_inputs.items():
            known[index] = stacked[j][:-1]
        for r, index in self.arrival_inputs.items():
            known[index] = arriving[r]
        for j, index in self.row_outputs:
            known.setdefault(index, stacked[j][1:])
        spikes = self._evaluate(self.after, known)[self.spikes.index].expand(steps, batch, n)
        if self.v_row is None:
            v = None
        elif self.v_row in stacked:
            v = stacked[self.v_row][1:]
        else:
            v = self.rows[self.v_row].value.expand(steps, batch, n)
        return spikes.to(self.init.dtype), v, known

    def _evaluate(self, program: list[tuple], known: dict[int, Tensor]) -> list:
        """Every node's value over all steps (as :meth:`_values`), from those of the ``known`` nodes ``(T, B, n)``."""
        values = self._values()
        for index, value in known.items():
            values[index] = value
        for index, function, args in program:
            values[index] = function(*[values[a] for a in args])
        return values

    def backward(self, known: dict[int, Tensor], grad_spikes: Tensor | None, grad_v: Tensor | None,
                 wanted: Sequence[bool]) -> list[Tensor | None]:
        """``dL/dA_r`` for each receptor (None where not wanted, nothing arrives or it is zero)."""
        key = (grad_spikes is not None, grad_v is not None)
        if key not in self._backward_programs:
            rows = self._relevant(*key)
            outputs = set(rows) | ({self.v_row} if key[1] and self.v_row in self.row_inputs else set())
            needed = [k for k in self.entries if (k[0] in ("J", "JA") and k[1] in outputs and (k[0] == "JA" or k[2]
                      in rows)) or (key[0] and k[0] in ("S", "SA") and (k[0] == "SA" or k[1] in rows))]
            program, _ = _walk([self.entries[k] for k in needed], self.loop_nodes)
            compiled = self._compile(program)
            # one loop for the varying Jacobian entries and the spike terms (entry * gS)
            fused_keys = [k for k in needed if k[0] in ("S", "SA") or self.entries[k].op != "const"]
            fused = FusedProgram(self.nodes, self._literals, compiled,
                                 [(self.entries[k], "grad" if k[0] in ("S", "SA") else None) for k in fused_keys])
            self._backward_programs[key] = rows, sorted(outputs), needed, compiled, (fused_keys, fused)
        rows, outputs, needed, program, (fused_keys, fused) = self._backward_programs[key]
        results = fused(known, grad_spikes) if fused_keys else None
        products: dict[tuple, Tensor] = {}
        if results is None:
            values = self._evaluate(program, known)
            entry = {k: values[self.entries[k].index] for k in needed}
        else:
            entry = {k: self.entries[k].value for k in needed}
            for k, result in zip(fused_keys, results, strict=True):
                if k[0] in ("S", "SA"):
                    products[k] = result
                else:
                    entry[k] = result
        varying = {k for k in needed if self.entries[k].op != "const"}
        reference = grad_spikes if grad_spikes is not None else grad_v
        through_spikes: dict[int, Tensor] = {}

        def spike_term(k: tuple) -> Tensor:
            """``entry * gS``; an entry ``x c`` (constant ``c``) as ``(x gS) c``, ``x gS`` shared."""
            if k in products:
                return products[k]
            node = self.entries[k]
            if node.op == "mul" and isinstance(node.args[1], _Node) and node.args[1].op == "const":
                return shared(node.args[0]) * node.args[1].value
            return shared(node)

        def shared(node: _Node) -> Tensor:
            if node.index not in through_spikes:
                through_spikes[node.index] = values[node.index] * grad_spikes
            return through_spikes[node.index]

        adjoint = {}
        for i in rows:
            total = spike_term(("S", i)) if grad_spikes is not None and ("S", i) in entry else None
            if grad_v is not None and ("J", self.v_row, i) in entry:
                factor = entry["J", self.v_row, i]
                total = torch.mul(factor, grad_v) if total is None else total.addcmul(factor, grad_v)
            shared_here = total is not None and any(total is t for t in through_spikes.values())
            # the recurrence below writes the adjoint in place
            adjoint[i] = torch.zeros_like(reference) if total is None else total.clone() if shared_here else total
        pairs = [(adjoint[i], adjoint[j], entry["J", j, i], ("J", j, i) in varying)
                 for i in rows for j in rows if ("J", j, i) in entry]
        for k in range(reference.shape[0] - 2, -1, -1):
            for into, source, factor, by_step in pairs:
                into[k].addcmul_(factor[k] if by_step else factor, source[k + 1])
        grads: list[Tensor | None] = []
        for r, want in enumerate(wanted):
            if not want or r not in self.arrival_inputs:
                grads.append(None)
                continue
            total = None
            if grad_spikes is not None and ("SA", r) in entry:
                total = spike_term(("SA", r))
                # the first gradient to read a shared product takes it over (written in place below)
                total = total.clone() if any(total is g for g in grads) else total
            for j in outputs:
                if ("JA", j, r) not in entry:
                    continue
                factor = entry["JA", j, r]
                if total is None:
                    total = torch.zeros_like(reference)
                # the adjoint of step k's next state: a_j[k+1], + gV[k] for v
                if j in adjoint:
                    total[:-1].addcmul_(adjoint[j][1:], factor[:-1] if ("JA", j, r) in varying else factor)
                if j == self.v_row and grad_v is not None:
                    total.addcmul_(grad_v, factor)
            grads.append(total)
        return grads


def _stack(values: list[Tensor], batch: int, n: int) -> Tensor:
    """``values`` ``(B, n)`` (the initial state, a constant: ``(n,)``) stacked into ``(len, B, n)``."""
    return torch.stack([value if value.shape == (batch, n) else value.expand(batch, n) for value in values])


def _nonzero(value):
    """A tangent, None where it is zero."""
    if value is None or (isinstance(value, _Node) and value.uniform == 0) or (
            not isinstance(value, _Node) and value == 0):
        return None
    return value


class _TracedSequence(torch.autograd.Function):
    """``(spikes, v)`` (or ``(spikes,)`` for a model without ``v``), each ``(T, B, n)``, of one
    population from its arrivals; backward by :meth:`_Recurrence.backward`."""

    @staticmethod
    def forward(ctx, recurrence: _Recurrence, steps: int, batch: int, *arriving: Tensor | None):
        spikes, v, known = recurrence.forward(arriving, steps, batch, for_backward=True)
        indices = sorted(known)
        ctx.save_for_backward(*(known[index] for index in indices))
        ctx.indices, ctx.recurrence = indices, recurrence
        ctx.set_materialize_grads(False)
        return (spikes,) if v is None else (spikes, v)

    @staticmethod
    def backward(ctx, grad_spikes: Tensor | None, grad_v: Tensor | None = None):
        if grad_spikes is None and grad_v is None:
            return (None, None, None, *(None for _ in ctx.needs_input_grad[3:]))
        known = dict(zip(ctx.indices, ctx.saved_tensors, strict=True))
        grads = ctx.recurrence.backward(known, grad_spikes, grad_v, ctx.needs_input_grad[3:])
        return (None, None, None, *grads)


class ModelStep:
    """One population's model step in torch: ``spikes, rows = stepper(rows, arriving, k, consts, scale)``.

    ``rows`` is the state, one ``(B, n)`` tensor per state variable; ``arriving`` one tensor (or
    None: nothing arrives) per receptor; ``consts`` the model's constants ``(n_consts, n)``.
    ``scale`` and the stepper's ``slope`` shape the surrogate of every ``spike(x)`` in the step:
    ``dS/dx = 1 / (scale (1 + slope |x| / scale)^2)``. Constants and scale are arguments, not
    attributes, so they follow the module's buffers to another dtype or device.

    :meth:`sequence` runs all steps of a population whose arrivals are known in advance as
    the step traced once (:class:`_Recurrence`); ``v_row`` is the state row it returns as ``v``.
    """

    def __init__(self, step: Callable, slope: float, v_row: int | None = None) -> None:
        self.step = torch_step(step)  # a TrainingError saying why when the step cannot run in torch
        self.slope = float(slope)
        self.v_row = v_row
        #: traced steps by (absent receptors, dtype, device, buffers); None: the step is not traceable
        self._recurrences: dict[tuple, _Recurrence | None] = {}

    def sequence(self, arriving: Sequence[Tensor | None], steps: int, batch: int, init: Tensor, consts: Tensor,
                 scale: Tensor) -> tuple[Tensor, Tensor | None] | None:
        """``spikes`` and ``v`` ``(T, B, n)`` (``v`` None without ``v_row``) from the arrivals ``(T, B, n)``
        of every receptor (None: nothing arrives) and the initial state ``init`` ``(n_state, n)``;
        None where the step cannot be traced (it branches on a value, reads ``k``, ...): then run
        it step by step."""
        absent = tuple(a is None for a in arriving)
        key = (absent, consts.dtype, consts.device, init.data_ptr(), consts.data_ptr(), scale.data_ptr())
        if key not in self._recurrences:
            try:
                self._recurrences[key] = _Recurrence(self.step, init, consts, scale, self.slope, absent, self.v_row)
            except (_Untraceable, TypeError):
                self._recurrences[key] = None
        recurrence = self._recurrences[key]
        if recurrence is None:
            return None
        if torch.is_grad_enabled() and any(a is not None and a.requires_grad for a in arriving):
            outputs = _TracedSequence.apply(recurrence, steps, batch, *arriving)
            return outputs[0], outputs[1] if len(outputs) > 1 else None
        spikes, v, _ = recurrence.forward(arriving, steps, batch, for_backward=False)
        return spikes, v

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
