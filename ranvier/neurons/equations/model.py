"""``Equations``: a spiking neuron model written as Brian 2-style equations."""

from __future__ import annotations

import hashlib
import linecache
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy

from ...engine import model as model_language
from ...engine.distributions import Distribution
from ...engine.model import NOT_FINITE, Model, ParameterValue
from ...engine.plausibility import warn_if_implausible
from ...errors import ModelError
from . import integration
from .codegen import PROPAGATOR, Emitter, evaluate, propagators
from .parsing import RESERVED, Declaration, dimension_of, parse_declarations, parse_expression, parse_statements
from .units import UNITS, Dimension

_TIME = UNITS["second"][1]
#: dimensions whose parameter values are checked for plausibility (ranvier.engine.plausibility)
_PLAUSIBILITY = {_TIME: "time", UNITS["volt"][1]: "voltage", UNITS["amp"][1]: "current",
                 UNITS["siemens"][1]: "conductance", UNITS["farad"][1]: "capacitance", _TIME ** -1: "frequency"}
#: constant row holding the refractory period in whole steps
_REFRACTORY_STEPS = ("refractory steps",)
#: generated source -> its step function, so equal equations share one compiled kernel
_STEPS: dict[str, Any] = {}


class Equations(Model):
    r"""A spiking model from equations in Brian 2's syntax, with units checked and the step generated.

    Example, the Izhikevich (2003) neuron::

        from ranvier.units import ms, mV
        izhikevich = rv.neurons.Equations('''
            dv/dt = (0.04/ms/mV)*v**2 + (5/ms)*v + 140*mV/ms - u + I : volt
            du/dt = a*(b*v - u) : volt/second
            a : 1/second
            b : 1/second
            c : volt
            d : volt/second
            I : volt/second
            ''', threshold="v >= 30*mV", reset="v = c; u += d", method="euler",
            parameters={"a": 0.02/ms, "b": 0.2/ms, "c": -65*mV, "d": 8*mV/ms, "I": 10*mV/ms})

    Each line declares a differential equation (``dx/dt = expression : unit``), a subexpression
    (``name = expression : unit``) or a parameter (``name : unit``), whose value, in SI units,
    comes from ``parameters`` (a float, a per-neuron array or a ``ranvier.init`` distribution).
    Unit names (``mV``, ``ms``, ``nA``, ``pF``, ``nS``, ``Hz``; also ``mvolt``, ``msecond``, ...)
    stand for their SI scale. Every equation is checked for dimensions: a mismatch is a
    :class:`~ranvier.ModelError` naming the equation and both dimensions.

    Parameters
    ----------
    equations : the equation string
    threshold : a condition on the state (``"v >= v_th"``); a neuron spikes in the step that
        ends with it true. None: the model never spikes.
    reset : assignments run where a neuron spiked, in order (``"v = v_reset; w += b"``)
    refractory : the refractory period (s; a float, array, distribution or the name of a
        parameter): for that many steps after a spike, the equations flagged
        ``(unless refractory)`` hold their variable, and the threshold is not tested
    method : ``"exact"`` (linear systems: the propagator ``e^{M dt}``, computed once per run, as
        Brian 2 and NEST do), ``"euler"``, ``"rk4"`` or ``"exponential_euler"``; see
        :mod:`ranvier.neurons.equations.integration`
    parameters : parameter name -> value
    receptors : receptor name -> the state variable a spike's weight is added to

    One step, from ``k dt`` to ``(k + 1) dt``: integrate every equation; test the threshold on
    the new state; add the weights arriving now to their receptors' variables; reset where the
    neuron spiked. This is Brian 2's order within a time step (state update, threshold,
    synaptic effects, reset), so a spike Brian 2 stamps at ``t`` is stamped ``t + dt`` here (the
    end of the step that produced it).
    """

    checks_finite = True

    def __init__(self, equations: str, threshold: str | None = None, reset: str | None = None,
                 refractory: ParameterValue | str = 0.0, method: str = "exact",
                 parameters: Mapping[str, ParameterValue] | None = None,
                 receptors: Mapping[str, str] | None = None) -> None:
        super().__init__()
        if method not in integration.METHODS:
            raise ModelError(f"Equations: unknown method {method!r}; choose one of {', '.join(integration.METHODS)}")
        self.equations = equations
        self.threshold = threshold
        self.reset = reset
        self.refractory = refractory
        self.method = method
        self.receptor_variables = dict(receptors or {})
        declarations = parse_declarations(equations)
        self._declarations = declarations
        self._states = [d for d in declarations if d.kind == "differential"]
        declared = {d.name: d for d in declarations if d.kind == "parameter"}
        given = dict(parameters or {})
        #: declared parameters without a value: per-neuron variables, set with the population's init
        self._variables = [d for name, d in declared.items() if name not in given]
        self.parameters = self._take_parameters(declared, given)
        self._has_refractory = not (isinstance(refractory, int | float) and refractory == 0)
        try:
            self._build()
        except ModelError as error:
            # messages quote sympy's forms, whose units are the symbols unit_<name>: show the units' names
            raise ModelError(re.sub(r"\bunit_(\w+)", r"\1", str(error))) from None

    def _take_parameters(self, declared: dict[str, Declaration], given: dict[str, ParameterValue]):
        others = {d.name for d in self._declarations if d.kind != "parameter"}
        for name in given:
            if name in declared:
                continue
            if not (isinstance(name, str) and name.isidentifier()) or name in RESERVED or name in UNITS:
                raise ModelError(f"Equations: parameters names {name!r}, which cannot be a constant's name")
            if name in others:
                raise ModelError(f"Equations: parameters names {name!r}, which the equations define")
        for name, value in given.items():
            if not isinstance(value, Distribution):
                try:
                    finite = np.all(np.isfinite(np.asarray(value, dtype=float)))
                except (TypeError, ValueError):
                    finite = False
                if not finite:
                    raise ModelError(f"Equations: parameter {name!r} must be a finite number, array or "
                                     f"distribution, got {value!r}")
        for name, value in given.items():
            plausibility = _PLAUSIBILITY.get(declared[name].dimension) if name in declared else None
            if plausibility is not None:
                warn_if_implausible("Equations", name, value, plausibility)
        parameters = dict(given)
        if isinstance(self.refractory, str):
            if self.refractory not in given or (self.refractory in declared
                                                and declared[self.refractory].dimension != _TIME):
                raise ModelError(f"Equations: refractory={self.refractory!r} must name a parameter declared in "
                                 "seconds")
        else:
            self._check_finite(refractory=self.refractory)
            if not isinstance(self.refractory, Distribution) and np.any(np.asarray(self.refractory, float) < 0):
                raise ModelError(f"Equations: refractory must be >= 0, got {self.refractory!r}")
            parameters["t_ref"] = self.refractory
            warn_if_implausible("Equations", "refractory", self.refractory, "time")
        return parameters

    def _build(self) -> None:
        states = {d.name: sympy.Symbol(d.name, real=True) for d in self._states}
        variables = {d.name: sympy.Symbol(d.name, real=True) for d in self._variables}
        names = dict(states)
        names.update({d.name: sympy.Symbol(d.name, real=True) for d in self._declarations if d.kind != "differential"})
        undeclared = [name for name in self.parameters if name not in names and name != "t_ref"]
        names.update({name: sympy.Symbol(name, real=True) for name in undeclared})
        names["dt"] = integration.DT
        dimensions: dict[sympy.Symbol, Dimension | None] = {names[d.name]: d.dimension for d in self._declarations}
        dimensions.update({names[name]: None for name in undeclared})  # a constant given without a unit
        dimensions[integration.DT] = _TIME
        subexpressions = self._subexpressions(names, dimensions)

        def resolved(expression):
            for _ in range(len(subexpressions) + 1):
                expression = expression.xreplace(subexpressions)
            return expression

        derivatives, sources = {}, {}
        for declaration in self._states:
            where = f"Equations: {declaration.source!r}"
            expression = parse_expression(declaration.expression, names, where)
            found = dimension_of(expression, dimensions, where, declaration.expression)
            wanted = declaration.dimension / _TIME
            if found is not None and found != wanted and expression != 0:  # 0 * mV/ms is 0, of any unit
                raise ModelError(f"{where}: dimension mismatch: the right-hand side is {found} but "
                                 f"d{declaration.name}/dt is {wanted}")
            symbol = states[declaration.name]
            derivatives[symbol] = resolved(expression)
            sources[symbol] = declaration.source
        assignable = {**states, **variables}
        for receptor, variable in self.receptor_variables.items():
            if variable not in assignable:
                raise ModelError(f"Equations: receptor {receptor!r} targets {variable!r}, which is not a state "
                                 f"variable ({', '.join(assignable)})")
        threshold = None
        if self.threshold is not None:
            where = f"Equations: threshold {self.threshold!r}"
            threshold = parse_expression(self.threshold, names, where, relational=True)
            if not isinstance(threshold, sympy.core.relational.Relational | sympy.And | sympy.Or):
                raise ModelError(f"{where} is not a condition such as 'v >= v_th'")
            dimension_of(threshold, dimensions, where, self.threshold)
            threshold = resolved(threshold)
        resets = []
        if self.reset is not None:
            if self.threshold is None:
                raise ModelError("Equations: a reset needs a threshold")
            where = f"Equations: reset {self.reset!r}"
            for target, value, source in parse_statements(self.reset, names, set(assignable), where):
                found = dimension_of(value, dimensions, where, source)
                wanted = dimensions[assignable[target]]
                if found is not None and found != wanted and value != 0:  # 0 * mV is 0, of any unit
                    raise ModelError(f"{where}: dimension mismatch in {source!r}: {target} is "
                                     f"{wanted} but the new value is {found}")
                resets.append((assignable[target], resolved(value)))
        self._threshold, self._resets = threshold, resets
        self._compile(list(states.values()), list(variables.values()), derivatives, sources, threshold, resets)

    def _subexpressions(self, names, dimensions) -> dict[sympy.Symbol, sympy.Expr]:
        subexpressions = {}
        for declaration in self._declarations:
            if declaration.kind != "subexpression":
                continue
            where = f"Equations: {declaration.source!r}"
            expression = parse_expression(declaration.expression, names, where)
            found = dimension_of(expression, dimensions, where, declaration.expression)
            if found is not None and found != declaration.dimension:
                raise ModelError(f"{where}: dimension mismatch: the expression is {found} but {declaration.name} "
                                 f"is declared {declaration.dimension}")
            subexpressions[names[declaration.name]] = expression
        for _ in range(len(subexpressions) + 1):
            subexpressions = {name: value.xreplace(subexpressions) for name, value in subexpressions.items()}
        looping = [name for name, value in subexpressions.items() if value.free_symbols & set(subexpressions)]
        if looping:
            raise ModelError(f"Equations: subexpression {looping[0].name!r} refers to itself")
        return subexpressions

    def _compile(self, states, variables, derivatives, sources, threshold, resets) -> None:
        rows = [*states, *variables]
        emitter = Emitter({x: f"s_{x.name}" for x in rows})
        lines = [f"    s_{x.name} = state[{row}, i]" for row, x in enumerate(rows)]
        refractory_row = len(rows)
        if self._has_refractory:
            lines.append(f"    s_refractory = state[{refractory_row}, i]")
        if self.method == "exact":
            self._linear = integration.linear_system(derivatives, sources)
            self._check_constant_coefficients(variables)
            lines += self._exact_lines(emitter, states)
        else:
            self._linear = None
            step = integration.program(self.method, derivatives, sources)
            for symbol, value in step.temporaries:
                lines.append(f"    t_{symbol.name} = {emitter.emit(value)}")
                emitter.variables[symbol] = f"t_{symbol.name}"
            lines += [f"    n_{x.name} = {emitter.emit(step.updates[x])}" for x in states]
        lines += [f"    n_{x.name} = s_{x.name}" for x in variables]  # constant between resets
        emitter.variables = {x: f"n_{x.name}" for x in rows}
        held = [x for x in states if "unless refractory" in next(d for d in self._states if d.name == x.name).flags]
        if self._has_refractory:
            lines.append("    active = s_refractory <= 0")
            lines += [f"    n_{x.name} = select(active, n_{x.name}, s_{x.name})" for x in held]
            one = emitter.constant(sympy.Integer(1))
            lines.append(f"    n_refractory = select(active, s_refractory, s_refractory - {one})")
        if threshold is not None:
            condition = emitter.condition(threshold)
            lines.append(f"    fired = {condition}" + (" * (n_refractory <= 0)" if self._has_refractory else ""))
        for receptor, (_, variable) in enumerate(self.receptor_variables.items()):
            lines.append(f"    n_{variable} = n_{variable} + arriving[{receptor}][i]")
        for target, value in resets:
            lines.append(f"    n_{target.name} = select(fired, {emitter.emit(value)}, n_{target.name})")
        if self._has_refractory and threshold is not None:
            lines.append(f"    n_refractory = select(fired, {emitter.constant(_REFRACTORY_STEPS)}, n_refractory)")
        changed = {target for target, _ in resets} | {name for name in self.receptor_variables.values()}
        lines += [f"    state[{row}, i] = n_{x.name}" for row, x in enumerate(rows)
                  if x in states or x.name in changed or x in changed]
        health = " + ".join(f"n_{x.name}" for x in states)
        if self._has_refractory:
            lines.append(f"    store_where(state, {refractory_row}, i, n_refractory != s_refractory, n_refractory)")
            health += " + n_refractory"
        lines.append(f"    health = {health}")
        lines.append(f"    return select(health - health == 0, {'fired' if threshold is not None else '0'}, "
                     "NOT_FINITE)")
        source = "def equations_step(state, consts, arriving, i, col, k, key):\n" + "\n".join(lines) + "\n"
        self._rows = emitter.rows
        self.source = source
        self.step = _step_function(source)

    def _exact_lines(self, emitter: Emitter, states) -> list[str]:
        """``x_i' = x_eq_i + sum_j P_ij (x_j - x_eq_j)``, the diagonal term first (as LIF writes it)."""
        system = self._linear
        lines = []
        for i, x in enumerate(states):
            terms = []
            for j in system.couples[i]:
                propagator = emitter.constant((PROPAGATOR, i, j))
                if system.equilibrium is None or system.equilibrium[j] == 0:
                    terms.append(f"s_{states[j].name} * {propagator}")
                else:
                    terms.append(f"(s_{states[j].name} - {emitter.emit(system.equilibrium[j])}) * {propagator}")
            if system.equilibrium is None:
                terms.append(emitter.constant((PROPAGATOR, i, len(states))))
            elif system.equilibrium[i] != 0:
                terms.insert(0, emitter.emit(system.equilibrium[i]))
            lines.append(f"    n_{x.name} = " + " + ".join(terms))
        return lines

    def _check_constant_coefficients(self, variables) -> None:
        """``exact`` computes ``e^{M dt}`` once per run: ``M`` (and ``b`` when ``M`` is singular) must not
        depend on a per-neuron variable, whose value a reset may change."""
        system = self._linear
        parts = [system.matrix] + ([system.offset] if system.equilibrium is None else [])
        used = set().union(*(part.free_symbols for part in parts)) & set(variables)
        if used:
            name = sorted(symbol.name for symbol in used)[0]
            raise ModelError(f"Equations: method 'exact' needs coefficients fixed for the run, but they depend on "
                             f"{name!r}, a per-neuron variable; give {name!r} a value in parameters, or use "
                             "method='euler', 'rk4' or 'exponential_euler'")

    @property
    def state_names(self) -> tuple[str, ...]:
        return (tuple(d.name for d in self._states) + tuple(d.name for d in self._variables)
                + (("refractory",) if self._has_refractory else ()))

    @property
    def receptors(self) -> tuple[str, ...]:
        return tuple(self.receptor_variables)

    def constants(self, params: Mapping[str, np.ndarray], dt: float) -> np.ndarray:
        values = {**params, "dt": np.float64(dt)}
        n = max([np.size(value) for value in params.values()] + [1])
        exponentials = None
        if self._linear is not None and any(isinstance(row, tuple) and row[0] == PROPAGATOR for row in self._rows):
            exponentials = self._propagators(values, dt, n)
        rows = []
        for row in self._rows:
            if row is _REFRACTORY_STEPS:
                t_ref = values[self.refractory] if isinstance(self.refractory, str) else values["t_ref"]
                rows.append(np.round(np.asarray(t_ref, dtype=np.float64) / dt))
            elif isinstance(row, tuple):  # (PROPAGATOR, i, j)
                rows.append(exponentials[:, row[1], row[2]])
            else:
                rows.append(evaluate(row, values))
        if not rows:
            return np.zeros((0, 1))
        return np.asarray(np.broadcast_arrays(*(np.atleast_1d(np.asarray(row, dtype=np.float64)) for row in rows)),
                          dtype=np.float64)

    def _propagators(self, values, dt: float, n: int) -> np.ndarray:
        system = self._linear
        if system.equilibrium is not None:
            return propagators(system.matrix, values, dt, n)
        size = len(system.states)
        augmented = sympy.zeros(size + 1, size + 1)
        augmented[:size, :size] = system.matrix
        augmented[:size, size] = system.offset
        return propagators(augmented, values, dt, n)

    def lif_parameters(self, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """The parameters of the ``neurons.LIF`` these equations are (for NIR export), or None.

        They are a LIF when, integrated exactly, one variable ``v`` has ``dv/dt = (v_eq - v +
        sum_r I_r) / tau_m`` with each current ``dI_r/dt = -I_r / tau_r`` fed by one receptor (or
        the receptor adds to ``v`` directly: a delta synapse), the threshold is ``v >= v_th`` and
        the reset ``v = v_reset``, all of them parameters or constants; ``params`` as drawn for a
        population. The keys are those of ``LIF.parameters``.
        """
        system, threshold = self._linear, self._threshold
        if system is None or system.equilibrium is None or self._variables or not isinstance(threshold, sympy.Ge):
            return None
        states, matrix = system.states, system.matrix
        v = threshold.lhs
        if v not in states or threshold.rhs.free_symbols & set(states) or len(self._resets) != 1:
            return None
        (target, reset), = self._resets
        if target != v or reset.free_symbols & set(states):
            return None
        row = states.index(v)
        if self._has_refractory and "unless refractory" not in self._states[row].flags:
            return None
        currents = {}
        for receptor, name in self.receptor_variables.items():
            if name == v.name:
                currents[receptor] = None
                continue
            j = [x.name for x in states].index(name)
            coupled = [k for k in range(len(states)) if matrix[j, k] != 0]
            if coupled != [j] or system.offset[j] != 0 or sympy.simplify(matrix[row, j] + matrix[row, row]) != 0:
                return None
            currents[receptor] = j
        used = {row, *(j for j in currents.values() if j is not None)}
        if used != set(range(len(states))) or len(used) != len(currents) + 1 - list(currents.values()).count(None):
            return None
        values = dict(params)
        n = max([np.size(value) for value in params.values()] + [1])

        def number(expression):
            return np.broadcast_to(evaluate(expression, values), (n,)).astype(np.float64)

        result = {"tau_m": number(-1 / matrix[row, row]), "v_rest": number(system.equilibrium[row]),
                  "v_th": number(threshold.rhs), "v_reset": number(reset), "i_bias": np.zeros(n),
                  "t_ref": number(sympy.Symbol(self.refractory, real=True)) if isinstance(self.refractory, str)
                  else np.broadcast_to(np.asarray(params["t_ref"], dtype=np.float64), (n,))}
        for receptor, j in currents.items():
            result[f"tau_{receptor}"] = np.zeros(n) if j is None else number(-1 / matrix[j, j])
        return result

    def _config(self) -> dict[str, Any]:
        parameters = {name: value for name, value in self.parameters.items() if name != "t_ref"}
        return {"equations": self.equations, "threshold": self.threshold, "reset": self.reset,
                "refractory": self.refractory, "method": self.method, "parameters": parameters,
                "receptors": dict(self.receptor_variables)}

    def __repr__(self) -> str:
        states = ", ".join(d.name for d in self._states)
        return f"Equations({states}; method={self.method!r}, threshold={self.threshold!r})"


def _step_function(source: str):
    """The step function ``source`` defines, compiled once per distinct source."""
    if source not in _STEPS:
        filename = f"<ranvier.Equations {hashlib.sha256(source.encode()).hexdigest()[:12]}>"
        # registered so tracebacks and inspect.getsource show the generated code
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace = {"np": np, "select": model_language.select, "store_where": model_language.store_where,
                     "exp": model_language.exp, "tanh": model_language.tanh, "sin_cos": model_language.sin_cos,
                     "sqrt": model_language.sqrt, "spike": model_language.spike,
                     "NOT_FINITE": NOT_FINITE}
        exec(compile(source, filename, "exec"), namespace)  # our own generated code, never text from a file
        _STEPS[source] = namespace["equations_step"]
    return _STEPS[source]
