"""sympy expressions -> a step function in the model language, and the constants it reads.

Every part of an expression that does not depend on the state (a parameter, a product of
units and numbers, ``exp(-dt / tau)``) becomes a row of ``consts``, computed once per run in
float64 by :func:`evaluate`; the step itself holds no literal, so it computes in the state's
precision on every backend and gives the same bits (the rules of :mod:`ranvier.engine.model`).
``exp``, ``sin``, ``cos`` and ``tanh`` of the state call the model language's own, which are
bit-identical across backends; ``sqrt`` is correctly rounded everywhere.
"""

from __future__ import annotations

import numpy as np
import sympy

from ...errors import ModelError
from .parsing import UNITS

#: marker of a constant row that holds entry (i, j) of the propagator e^{M dt}
PROPAGATOR = "propagator"


class Emitter:
    """Writes sympy expressions as model-language code, collecting their constant parts as rows."""

    def __init__(self, variables: dict[sympy.Symbol, str]) -> None:
        #: symbol -> the local name that holds its current value in the step
        self.variables = dict(variables)
        #: constant rows: a sympy expression, or ``(PROPAGATOR, i, j)``
        self.rows: list[object] = []
        self._row_of: dict[object, int] = {}

    def constant(self, row: object) -> str:
        if row not in self._row_of:
            self._row_of[row] = len(self.rows)
            self.rows.append(row)
        return f"consts[{self._row_of[row]}, col]"

    def _is_constant(self, expression: sympy.Expr) -> bool:
        return not (expression.free_symbols & set(self.variables))

    def emit(self, expression) -> str:
        if isinstance(expression, sympy.Symbol) and expression in self.variables:
            return self.variables[expression]
        if self._is_constant(expression):
            return self.constant(expression)
        if isinstance(expression, sympy.Add):
            return self._sum(expression)
        if isinstance(expression, sympy.Mul):
            return self._product(expression)
        if isinstance(expression, sympy.Pow):
            return self._power(expression)
        if isinstance(expression, sympy.core.relational.Relational):
            return f"({self.emit(expression.lhs)} {expression.rel_op} {self.emit(expression.rhs)})"
        if isinstance(expression, sympy.And | sympy.Or):
            joiner = " & " if isinstance(expression, sympy.And) else " | "
            return "(" + joiner.join(self.emit(argument) for argument in expression.args) + ")"
        if isinstance(expression, sympy.Min | sympy.Max):
            comparison = "<" if isinstance(expression, sympy.Min) else ">"
            arguments = [self.emit(argument) for argument in expression.args]
            result = arguments[0]
            for argument in arguments[1:]:
                result = f"select({result} {comparison} {argument}, {result}, {argument})"
            return result
        functions = {sympy.exp: "exp({})", sympy.tanh: "tanh({})", sympy.sin: "sin_cos({})[0]",
                     sympy.cos: "sin_cos({})[1]", sympy.Abs: "abs({})"}
        if expression.func in functions:
            return functions[expression.func].format(self.emit(expression.args[0]))
        raise ModelError(f"Equations: cannot compile {expression}")

    def condition(self, expression) -> str:
        """A threshold as spikes: ``spike(a - b)`` for ``a >= b`` (times ``(a - b != 0)`` for ``a > b``).

        ``spike`` is the model language's Heaviside step, the same bits as the comparison, and
        the surrogate-gradient function when the step runs in torch for training; conditions
        joined by ``and`` multiply, by ``or`` select.
        """
        if isinstance(expression, sympy.And):
            return "(" + " * ".join(self.condition(argument) for argument in expression.args) + ")"
        if isinstance(expression, sympy.Or):
            result = self.condition(expression.args[0])
            for argument in expression.args[1:]:
                result = f"select({result}, {result}, {self.condition(argument)})"
            return result
        if isinstance(expression, sympy.Ge | sympy.Gt):
            margin = expression.lhs - expression.rhs
        elif isinstance(expression, sympy.Le | sympy.Lt):
            margin = expression.rhs - expression.lhs
        else:
            raise ModelError(f"Equations: cannot use {expression} as a threshold")
        text = self.emit(margin)
        if isinstance(expression, sympy.Gt | sympy.Lt):
            return f"(spike({text}) * ({text} != 0))"
        return f"spike({text})"

    def _sum(self, expression: sympy.Add) -> str:
        constant_terms = [term for term in expression.args if self._is_constant(term)]
        terms = [term for term in expression.args if not self._is_constant(term)]
        text = ""
        for term in terms:
            if term.could_extract_minus_sign():
                text += f" - {self.emit(-term)}" if text else f"-{self.emit(-term)}"
            else:
                text += f" + {self.emit(term)}" if text else self.emit(term)
        if constant_terms:
            text += f" + {self.constant(sympy.Add(*constant_terms))}"
        return f"({text})"

    def _product(self, expression: sympy.Mul) -> str:
        constant_factor = sympy.Mul(*(f for f in expression.args if self._is_constant(f)))
        numerator, denominator = [], []
        for factor in expression.args:
            if self._is_constant(factor):
                continue
            if isinstance(factor, sympy.Pow) and factor.exp.is_negative and factor.exp.is_integer:
                denominator.append(factor.base ** -factor.exp)
            else:
                numerator.append(factor)
        sign = ""
        if constant_factor == -1:
            sign, constant_factor = "-", sympy.Integer(1)
        parts = [self.emit(factor) for factor in numerator]
        if constant_factor != 1 or not parts:
            parts.insert(0, self.constant(constant_factor))
        text = " * ".join(parts)
        if denominator:
            below = " * ".join(self.emit(factor) for factor in denominator)
            text = f"{text} / ({below})" if len(denominator) > 1 else f"{text} / {below}"
        return f"({sign}{text})"

    def _power(self, expression: sympy.Pow) -> str:
        base, exponent = expression.args
        if exponent.is_integer and exponent > 0:
            return "(" + " * ".join([self.emit(base)] * int(exponent)) + ")"
        if exponent.is_integer and exponent < 0:
            return f"({self.constant(sympy.Integer(1))} / {self._power(base ** -exponent)})"
        if exponent == sympy.Rational(1, 2):
            return f"sqrt({self.emit(base)})"
        if exponent == -sympy.Rational(1, 2):
            return f"({self.constant(sympy.Integer(1))} / sqrt({self.emit(base)}))"
        raise ModelError(f"Equations: the power {expression} has exponent {exponent}; use integer powers or sqrt(), "
                         "so every backend rounds alike")


def evaluate(expression, values: dict[str, np.ndarray]) -> np.ndarray:
    """``expression`` in float64, with parameter symbols from ``values`` and units at their SI scale."""
    if isinstance(expression, sympy.Symbol):
        if expression.name.startswith("unit_"):
            return np.float64(UNITS[expression.name.removeprefix("unit_")][0])
        return np.asarray(values[expression.name], dtype=np.float64)
    if isinstance(expression, sympy.Number):
        return np.float64(float(expression))
    arguments = [evaluate(argument, values) for argument in expression.args]
    if isinstance(expression, sympy.Add):
        return sum(arguments[1:], arguments[0])
    if isinstance(expression, sympy.Mul):
        product = arguments[0]
        for argument in arguments[1:]:
            product = product * argument
        return product
    if isinstance(expression, sympy.Pow):
        return np.power(arguments[0], arguments[1])
    numeric = {sympy.exp: np.exp, sympy.tanh: np.tanh, sympy.sin: np.sin, sympy.cos: np.cos, sympy.Abs: np.abs,
               sympy.Min: lambda *a: np.minimum.reduce(np.broadcast_arrays(*a)),
               sympy.Max: lambda *a: np.maximum.reduce(np.broadcast_arrays(*a))}
    if expression.func in numeric:
        return numeric[expression.func](*arguments)
    raise ModelError(f"Equations: cannot evaluate {expression}")


def propagators(matrix: sympy.Matrix, values: dict[str, np.ndarray], dt: float, n: int) -> np.ndarray:
    """``e^{M dt}`` for every neuron, ``(n, m, m)``: one matrix exponential per distinct ``M``."""
    size = matrix.shape[0]
    entries = np.zeros((n, size, size))
    for row in range(size):
        for column in range(size):
            if matrix[row, column] != 0:
                entries[:, row, column] = evaluate(matrix[row, column], values) * dt
    flat = entries.reshape(n, -1)
    if np.all(flat == flat[:1]):  # a homogeneous population: one exponential
        return np.broadcast_to(_matrix_exponential(entries[:1])[0], (n, size, size))
    distinct, inverse = np.unique(flat, axis=0, return_inverse=True)
    return _matrix_exponential(distinct.reshape(-1, size, size))[inverse.reshape(-1)]


#: Taylor terms of the scaled exponential: with ||A|| <= 1/2, the remainder is below 2**-60
_TAYLOR_TERMS = 20


def _matrix_exponential(matrices: np.ndarray) -> np.ndarray:
    """``e^A`` for a stack of small matrices ``(u, m, m)``: scaling and squaring of the Taylor series.

    A neuron has a handful of state variables, and ``A = M dt`` is small, so a few squarings
    suffice; this is exact to float64 rounding (within a few ulp of scipy's Pade ``expm``) at
    microseconds per stack, where ``scipy.linalg.expm`` calls BLAS once per matrix. The
    diagonal of a triangular ``A`` is set to ``exp(A_ii)``, its exact value (correctly
    rounded), as for a single variable's ``exp(-dt / tau)``.
    """
    size = matrices.shape[-1]
    norms = np.abs(matrices).sum(axis=-1).max(axis=-1)
    squarings = int(max(0, np.ceil(np.log2(max(float(norms.max(initial=0.0)), 1e-300) / 0.5))))
    scaled = matrices / 2.0 ** squarings
    term = np.broadcast_to(np.eye(size), matrices.shape).copy()
    result = term.copy()
    for order in range(1, _TAYLOR_TERMS + 1):
        term = term @ scaled / order
        result = result + term
    for _ in range(squarings):
        result = result @ result
    lower = np.tril(matrices, -1)
    upper = np.triu(matrices, 1)
    if not lower.any() or not upper.any():
        diagonal = np.arange(size)
        result[:, diagonal, diagonal] = np.exp(matrices[:, diagonal, diagonal])
    return result
