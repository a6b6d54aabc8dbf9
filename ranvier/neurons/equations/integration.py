"""Integration methods: one step of ``dx/dt = f(x)`` over ``dt``, as sympy expressions.

Explicit methods produce a *program*: temporaries evaluated in order, then the new value of
every state variable, each a sympy expression of the old state, the temporaries, parameters,
units and ``dt``. ``exact`` instead describes the linear system ``dx/dt = M x + b``, whose step
``x(t + dt) = x_eq + e^{M dt} (x(t) - x_eq)`` (or its affine form when ``M`` is singular) needs
the matrix exponential, computed numerically once per run (:mod:`.codegen`).

Methods, as Brian 2 defines them (``brian2.stateupdaters``):

``euler``               ``x' = x + dt f(x)``
``rk4``                 the classical fourth-order Runge-Kutta method:
                        ``k1 = dt f(x)``, ``k2 = dt f(x + k1/2)``, ``k3 = dt f(x + k2/2)``,
                        ``k4 = dt f(x + k3)``, ``x' = x + (k1 + 2 k2 + 2 k3 + k4) / 6``
``exponential_euler``   for ``f = A x + B`` with ``A``, ``B`` free of ``x`` (conditionally
                        linear): ``x' = -B/A + (x + B/A) e^{A dt}``
``exact``               linear systems with constant coefficients (Rotter & Diesmann 1999)
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from ...errors import ModelError

METHODS = ("exact", "euler", "rk4", "exponential_euler")
DT = sympy.Symbol("dt", positive=True)


@dataclass
class Program:
    """An explicit step: ``temporaries`` in order, then ``updates[state]``, all from the old state."""

    temporaries: list[tuple[sympy.Symbol, sympy.Expr]]
    updates: dict[sympy.Symbol, sympy.Expr]


@dataclass
class LinearSystem:
    """``dx/dt = M x + b`` with ``M`` and ``b`` free of the state (parameters and units only).

    ``equilibrium`` is the fixed point ``x_eq = -M^{-1} b`` (simplified), or None when ``M`` is
    singular; ``couples[i]`` lists the states whose value at ``t`` enters state ``i`` at
    ``t + dt`` (the nonzero pattern of ``e^{M dt}``), ``i`` first.
    """

    states: list[sympy.Symbol]
    matrix: sympy.Matrix
    offset: sympy.Matrix
    equilibrium: list[sympy.Expr] | None
    couples: list[list[int]]


def _free_of(expression: sympy.Expr, states) -> bool:
    return not (expression.free_symbols & set(states))


def program(method: str, derivatives: dict[sympy.Symbol, sympy.Expr], sources: dict[sympy.Symbol, str]) -> Program:
    """The explicit step of ``method`` for ``dx/dt = derivatives[x]``."""
    states = list(derivatives)
    if method == "euler":
        return Program([], {x: x + DT * f for x, f in derivatives.items()})
    if method == "rk4":
        return _rk4(states, derivatives)
    if method == "exponential_euler":
        return _exponential_euler(states, derivatives, sources)
    raise ModelError(f"Equations: unknown method {method!r}; choose one of {', '.join(METHODS)}")


def _rk4(states, derivatives) -> Program:
    temporaries: list[tuple[sympy.Symbol, sympy.Expr]] = []
    point = {x: x for x in states}
    slopes = []
    for stage, fraction in enumerate((sympy.Rational(1, 2), sympy.Rational(1, 2), sympy.Integer(1), None), start=1):
        slope = {x: sympy.Symbol(f"k{stage}_{x.name}") for x in states}
        for x in states:
            temporaries.append((slope[x], DT * derivatives[x].xreplace(point)))
        slopes.append(slope)
        if fraction is not None:
            point = {x: sympy.Symbol(f"x{stage}_{x.name}") for x in states}
            for x in states:
                temporaries.append((point[x], x + fraction * slope[x]))
    sixth, third = sympy.Rational(1, 6), sympy.Rational(1, 3)
    updates = {x: x + (sixth * slopes[0][x] + third * slopes[1][x] + third * slopes[2][x] + sixth * slopes[3][x])
               for x in states}
    return Program(temporaries, updates)


def _exponential_euler(states, derivatives, sources) -> Program:
    temporaries: list[tuple[sympy.Symbol, sympy.Expr]] = []
    updates = {}
    for x, f in derivatives.items():
        expanded = sympy.expand(f)
        rate = sympy.diff(expanded, x)
        drive = sympy.expand(expanded - rate * x)
        if not _free_of(rate, [x]) or not _free_of(drive, [x]):
            raise ModelError(f"Equations: {sources[x]!r} is not linear in {x.name}, which exponential_euler needs "
                             f"(dx/dt = A x + B with A and B free of x); use method='rk4' or 'euler'")
        if rate == 0:
            updates[x] = x + DT * drive
            continue
        ratio = sympy.Symbol(f"ba_{x.name}")
        temporaries.append((ratio, sympy.factor_terms(drive) / sympy.factor_terms(rate)))
        updates[x] = -ratio + (ratio + x) * sympy.exp(sympy.factor_terms(rate) * DT)
    return Program(temporaries, updates)


def linear_system(derivatives: dict[sympy.Symbol, sympy.Expr], sources: dict[sympy.Symbol, str]) -> LinearSystem:
    """``derivatives`` as ``M x + b``; a nonlinear equation is a :class:`ModelError` that suggests a method."""
    states = list(derivatives)
    size = len(states)
    matrix = sympy.zeros(size, size)
    offset = sympy.zeros(size, 1)
    for row, x in enumerate(states):
        expanded = sympy.expand(derivatives[x])
        for column, y in enumerate(states):
            coefficient = sympy.diff(expanded, y)
            if not _free_of(coefficient, states):
                raise ModelError(
                    f"Equations: method 'exact' needs a linear system, but {sources[x]!r} is nonlinear in "
                    f"{y.name} (d/d{y.name} = {coefficient}); use method='rk4', 'euler' or 'exponential_euler'")
            matrix[row, column] = sympy.factor_terms(coefficient)
        offset[row] = sympy.factor_terms(expanded.xreplace({y: 0 for y in states}))
    couples = []
    for row in range(size):
        reached, frontier = {row}, [row]
        while frontier:
            current = frontier.pop()
            for column in range(size):
                if matrix[current, column] != 0 and column not in reached:
                    reached.add(column)
                    frontier.append(column)
        couples.append([row, *sorted(reached - {row})])
    equilibrium = None
    if sympy.simplify(matrix.det()) != 0:
        solution = matrix.LUsolve(-offset)
        equilibrium = [sympy.simplify(value) for value in solution]
    return LinearSystem(states, matrix, offset, equilibrium, couples)
