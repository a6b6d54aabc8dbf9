"""Brian 2's equation syntax, parsed into sympy expressions and checked for dimensions.

An equation string holds one declaration per line (``#`` starts a comment)::

    dv/dt = (v_rest - v + I) / tau : volt (unless refractory)   # a differential equation
    I_total = I + I_syn : volt                                   # a subexpression
    tau : second                                                 # a parameter

Expressions are read with Python's own parser (:mod:`ast`) and converted node by node into
sympy; only arithmetic, comparisons, numbers, names and the functions in :data:`FUNCTIONS`
are accepted, so an equation string from a file can never run code (``eval`` is not used,
nor sympy's ``parse_expr``, which calls it).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import sympy

from ...errors import ModelError
from .units import DIMENSIONLESS, UNITS, Dimension

#: function name in an equation -> sympy function
FUNCTIONS = {
    "exp": sympy.exp, "sqrt": sympy.sqrt, "abs": sympy.Abs, "sin": sympy.sin, "cos": sympy.cos,
    "tanh": sympy.tanh, "clip": lambda x, low, high: sympy.Min(sympy.Max(x, low), high),
}
#: names an equation may not declare
RESERVED = {"t", "dt", "refractory", "t_ref", "not_refractory", *FUNCTIONS}
_FLAGS = {"unless refractory", "constant"}

_DIFFERENTIAL = re.compile(r"^d(?P<name>[A-Za-z_]\w*)\s*/\s*dt\s*=\s*(?P<expr>.+)$")
_SUBEXPRESSION = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<expr>.+)$")
_PARAMETER = re.compile(r"^(?P<name>[A-Za-z_]\w*)$")
_FLAGGED = re.compile(r"^(?P<unit>.*?)\s*\((?P<flags>[^()]*)\)\s*$")


@dataclass
class Declaration:
    """One line of an equation string."""

    kind: str  # "differential", "subexpression" or "parameter"
    name: str
    unit: str
    dimension: Dimension
    expression: sympy.Expr | None
    source: str
    flags: set[str] = field(default_factory=set)


def unit_symbol(name: str) -> sympy.Symbol:
    """The symbol that stands for unit ``name`` in an expression (its value is the unit's SI scale)."""
    return sympy.Symbol(f"unit_{name}", positive=True)


def parse_expression(text: str, names: dict[str, sympy.Symbol], where: str,
                     relational: bool = False) -> sympy.Expr:
    """``text`` as a sympy expression over ``names`` (name -> symbol) and unit names."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as error:
        raise ModelError(f"{where}: cannot parse {text.strip()!r}: {error.msg}") from None
    return _convert(tree, names, where, text.strip(), relational)


def _convert(node: ast.AST, names, where: str, text: str, relational: bool):
    def convert(child, allow_relational=False):
        return _convert(child, names, where, text, allow_relational)

    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return sympy.Integer(node.value) if isinstance(node.value, int) else sympy.Float(node.value)
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        if node.id in UNITS:
            return unit_symbol(node.id)
        if node.id == "t":
            raise ModelError(f"{where}: time 't' is not supported in {text!r}; add a state variable "
                             "'dtime/dt = 1 : 1' and use it instead")
        raise ModelError(f"{where}: unknown name {node.id!r} in {text!r}; declare it as a parameter "
                         f"('{node.id} : <unit>') and give its value in parameters")
    if isinstance(node, ast.BinOp):
        left, right = convert(node.left), convert(node.right)
        operations = {ast.Add: lambda: left + right, ast.Sub: lambda: left - right, ast.Mult: lambda: left * right,
                      ast.Div: lambda: left / right, ast.Pow: lambda: left ** right}
        if type(node.op) in operations:
            return operations[type(node.op)]()
        if isinstance(node.op, ast.BitAnd | ast.BitOr) and relational:
            return sympy.And(left, right) if isinstance(node.op, ast.BitAnd) else sympy.Or(left, right)
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.USub):
            return -convert(node.operand)
        if isinstance(node.op, ast.UAdd):
            return convert(node.operand)
        if isinstance(node.op, ast.Not) and relational:
            return sympy.Not(convert(node.operand, True))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id not in FUNCTIONS:
            raise ModelError(f"{where}: unknown function {node.func.id!r} in {text!r}; "
                             f"equations may call {', '.join(sorted(FUNCTIONS))}")
        return FUNCTIONS[node.func.id](*(convert(argument) for argument in node.args))
    if relational and isinstance(node, ast.Compare) and len(node.ops) == 1:
        comparisons = {ast.Lt: sympy.Lt, ast.LtE: sympy.Le, ast.Gt: sympy.Gt, ast.GtE: sympy.Ge}
        if type(node.ops[0]) in comparisons:
            return comparisons[type(node.ops[0])](convert(node.left), convert(node.comparators[0]), evaluate=False)
    if relational and isinstance(node, ast.BoolOp):
        parts = [convert(value, True) for value in node.values]
        return sympy.And(*parts, evaluate=False) if isinstance(node.op, ast.And) else sympy.Or(*parts, evaluate=False)
    raise ModelError(f"{where}: {ast.unparse(node)!r} in {text!r} is not allowed; equations use numbers, names, "
                     "+ - * / **, the functions " + ", ".join(sorted(FUNCTIONS)) +
                     (" and comparisons joined by and/or" if relational else ""))


def unit_dimension(unit: str, where: str) -> Dimension:
    """The dimension of a unit expression such as ``volt/second`` or ``1``."""
    expression = parse_expression(unit, {}, where)
    return dimension_of(expression, {}, where, unit)


def dimension_of(expression, dimensions: dict[sympy.Symbol, Dimension | None], where: str,
                 text: str) -> Dimension | None:
    """The dimension of ``expression``; a sum of unlike dimensions is a :class:`ModelError`.

    A symbol whose dimension is ``None`` in ``dimensions`` (a constant given in ``parameters``
    but not declared with a unit) has an unknown dimension: whatever it enters is unknown too,
    and is not checked.
    """
    def of(node):
        return dimension_of(node, dimensions, where, text)

    if isinstance(expression, sympy.Symbol):
        if expression in dimensions:
            return dimensions[expression]
        return UNITS[expression.name.removeprefix("unit_")][1]
    if isinstance(expression, sympy.Number):
        return DIMENSIONLESS
    if isinstance(expression, sympy.Add | sympy.Min | sympy.Max):
        terms = [term for term in expression.args if not (isinstance(term, sympy.Number) and term == 0)]
        known = [(term, of(term)) for term in terms]
        known = [(term, dimension) for term, dimension in known if dimension is not None]
        if not known:
            return None
        # the terms of known dimension must agree, whatever an undeclared constant beside them is
        first_term, first = known[0]
        for term, other in known[1:]:
            if other == first:
                continue
            if isinstance(term, sympy.Number) or isinstance(first_term, sympy.Number):
                raise ModelError(f"{where}: dimension mismatch in {text!r}: a plain number is added to "
                                 f"{first if isinstance(term, sympy.Number) else other}")
            raise ModelError(f"{where}: dimension mismatch in {text!r}: {first_term} is {first} but {term} is "
                             f"{other}")
        return first
    if isinstance(expression, sympy.Mul):
        total = DIMENSIONLESS
        for factor in expression.args:
            dimension = of(factor)
            if dimension is None:
                return None
            total = total * dimension
        return total
    if isinstance(expression, sympy.Pow):
        base, exponent = expression.args
        if not isinstance(exponent, sympy.Number):
            for part in (of(exponent), of(base)):
                if part is not None and not part.dimensionless:
                    raise ModelError(f"{where}: in {text!r}, a power with a variable exponent needs a "
                                     "dimensionless base and exponent")
            return DIMENSIONLESS
        dimension = of(base)
        return None if dimension is None else dimension ** sympy.Rational(exponent)
    if isinstance(expression, sympy.Abs):
        return of(expression.args[0])
    if isinstance(expression, sympy.Function):
        argument = of(expression.args[0])
        if argument is not None and not argument.dimensionless:
            raise ModelError(f"{where}: dimension mismatch in {text!r}: the argument of {expression.func.__name__} "
                             f"must be dimensionless, got {argument}")
        return DIMENSIONLESS
    if isinstance(expression, sympy.core.relational.Relational):
        left, right = of(expression.lhs), of(expression.rhs)
        if None not in (left, right) and left != right and not any(
                isinstance(side, sympy.Number) and side == 0 for side in (expression.lhs, expression.rhs)):
            raise ModelError(f"{where}: dimension mismatch in {text!r}: {expression.lhs} is {left} but "
                             f"{expression.rhs} is {right}")
        return DIMENSIONLESS
    if isinstance(expression, sympy.And | sympy.Or | sympy.Not):
        for argument in expression.args:
            of(argument)
        return DIMENSIONLESS
    raise ModelError(f"{where}: cannot determine the dimension of {expression} in {text!r}")


def _form(body: str, where: str) -> tuple[str, re.Match]:
    """Which kind of declaration ``body`` (a line without its unit) is, and its parts."""
    for kind, pattern in (("differential", _DIFFERENTIAL), ("subexpression", _SUBEXPRESSION),
                          ("parameter", _PARAMETER)):
        match = pattern.match(body)
        if match:
            return kind, match
    raise ModelError(f"{where}: expected 'dx/dt = expression', 'name = expression' or 'name'")


def parse_declarations(equations: str) -> list[Declaration]:
    """The lines of ``equations``, each checked for its form and its unit (expressions come later)."""
    declarations: list[Declaration] = []
    seen: set[str] = set()
    for line in equations.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if ":" not in line:
            raise ModelError(f"Equations: {line!r} has no unit; write 'dv/dt = ... : volt' or 'tau : second'")
        body, unit = (part.strip() for part in line.rsplit(":", 1))
        flags: set[str] = set()
        flagged = _FLAGGED.match(unit)
        if flagged:
            unit = flagged["unit"].strip()
            flags = {flag.strip() for flag in flagged["flags"].split(",")}
            unknown = flags - _FLAGS
            if unknown:
                raise ModelError(f"Equations: unknown flag {sorted(unknown)[0]!r} in {line!r}; known flags: "
                                 f"{', '.join(sorted(_FLAGS))}")
        where = f"Equations: {line!r}"
        dimension = unit_dimension(unit, where)
        kind, match = _form(body, where)
        name = match["name"]
        if name in RESERVED or name in UNITS:
            raise ModelError(f"{where}: {name!r} is reserved{' (a unit)' if name in UNITS else ''}; choose "
                             "another name")
        if name in seen:
            raise ModelError(f"{where}: {name!r} is declared twice")
        if "unless refractory" in flags and kind != "differential":
            raise ModelError(f"{where}: '(unless refractory)' applies to differential equations only")
        seen.add(name)
        expression = match.groupdict().get("expr")
        declarations.append(Declaration(kind, name, unit, dimension, expression, line, flags))
    if not any(declaration.kind == "differential" for declaration in declarations):
        raise ModelError("Equations: no differential equation ('dv/dt = ... : volt') in the equations")
    return declarations


def parse_statements(text: str, names: dict[str, sympy.Symbol], targets: set[str],
                     where: str) -> list[tuple[str, sympy.Expr, str]]:
    """A reset such as ``"v = v_reset; w += b"``: ``(target, new value, source)`` in order."""
    statements = []
    for source in re.split(r"[;\n]", text):
        source = source.split("#", 1)[0].strip()
        if not source:
            continue
        try:
            tree = ast.parse(source, mode="exec").body
        except SyntaxError as error:
            raise ModelError(f"{where}: cannot parse {source!r}: {error.msg}") from None
        statement = tree[0] if len(tree) == 1 else None
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
            operation = None
        elif isinstance(statement, ast.AugAssign):
            target, value, operation = statement.target, statement.value, statement.op
        else:
            raise ModelError(f"{where}: {source!r} is not an assignment such as 'v = v_reset' or 'w += b'")
        if not isinstance(target, ast.Name) or target.id not in targets:
            raise ModelError(f"{where}: {source!r} assigns {ast.unparse(target)!r}, which is not a state variable "
                             f"({', '.join(sorted(targets))})")
        expression = _convert(value, names, where, source, False)
        if operation is not None:
            current = names[target.id]
            combined = {ast.Add: current + expression, ast.Sub: current - expression,
                        ast.Mult: current * expression, ast.Div: current / expression}
            if type(operation) not in combined:
                raise ModelError(f"{where}: {source!r}: only =, +=, -=, *= and /= are allowed")
            expression = combined[type(operation)]
        statements.append((target.id, expression, source))
    return statements
