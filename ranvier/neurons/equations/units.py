"""Unit names in equation strings: their SI scale and their physical dimension.

Dimensions come from sympy's unit system (``sympy.physics.units``): each base unit is a sympy
quantity whose dimension sympy's SI system resolves into powers of the base dimensions, and the
prefixes (``m``, ``u``, ``n``, ...) are sympy's. Brian 2's names are accepted in both its
forms: ``mV`` and ``mvolt``, ``ms`` and ``msecond``, ``nA`` and ``namp``, ``Hz`` and ``hertz``.
Values in ranvier are plain SI floats, so a unit in an equation contributes only its scale
(``mV`` is ``1e-3``) and its dimension.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

from sympy.physics import units as sympy_units
from sympy.physics.units import prefixes as sympy_prefixes
from sympy.physics.units.systems.si import SI, dimsys_SI

#: base unit -> (short symbol or None, sympy quantity); each has SI scale 1 in ranvier
_BASE_UNITS = {
    "volt": ("V", sympy_units.volt),
    "amp": ("A", sympy_units.ampere),
    "ampere": (None, sympy_units.ampere),
    "second": ("s", sympy_units.second),
    "siemens": ("S", sympy_units.siemens),
    "farad": ("F", sympy_units.farad),
    "ohm": (None, sympy_units.ohm),
    "hertz": ("Hz", sympy_units.hertz),
    "metre": ("m", sympy_units.meter),
    "meter": (None, sympy_units.meter),
    "coulomb": ("C", sympy_units.coulomb),
    "joule": ("J", sympy_units.joule),
    "watt": ("W", sympy_units.watt),
    "mole": ("mol", sympy_units.mole),
    "molar": ("M", sympy_units.mole / sympy_units.liter),
    "radian": ("rad", sympy_units.radian),
}

_PREFIXES = {
    "f": sympy_prefixes.femto, "p": sympy_prefixes.pico, "n": sympy_prefixes.nano, "u": sympy_prefixes.micro,
    "m": sympy_prefixes.milli, "c": sympy_prefixes.centi, "k": sympy_prefixes.kilo, "M": sympy_prefixes.mega,
    "G": sympy_prefixes.giga,
}


class Dimension:
    """A physical dimension: exponents of the SI base dimensions (``{"time": -1}`` for a rate)."""

    __slots__ = ("exponents",)

    def __init__(self, exponents: Mapping[str, Fraction | int] | None = None) -> None:
        self.exponents = {name: Fraction(power) for name, power in (exponents or {}).items() if power != 0}

    @classmethod
    def of_quantity(cls, quantity) -> Dimension:
        dimension = quantity.dimension if hasattr(quantity, "dimension") else SI.get_dimensional_expr(quantity)
        if not hasattr(dimension, "name"):
            from sympy.physics.units import Dimension as SympyDimension

            dimension = SympyDimension(dimension)
        dependencies = dimsys_SI.get_dimensional_dependencies(dimension)
        return cls({str(base.name if hasattr(base, "name") else base): power for base, power in dependencies.items()})

    def __mul__(self, other: Dimension) -> Dimension:
        merged = dict(self.exponents)
        for name, power in other.exponents.items():
            merged[name] = merged.get(name, 0) + power
        return Dimension(merged)

    def __truediv__(self, other: Dimension) -> Dimension:
        return self * other ** -1

    def __pow__(self, power) -> Dimension:
        return Dimension({name: exponent * Fraction(power) for name, exponent in self.exponents.items()})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dimension) and self.exponents == other.exponents

    def __hash__(self) -> int:
        return hash(frozenset(self.exponents.items()))

    @property
    def dimensionless(self) -> bool:
        return not self.exponents

    def __str__(self) -> str:
        return describe(self)

    def __repr__(self) -> str:
        return f"Dimension({describe(self)})"


#: SI scale of a unit that is not an SI base or derived unit itself: mol / litre is 1000 mol / m^3
_OWN_SCALE = {"molar": 1000}

#: unit name -> (SI scale, dimension)
UNITS: dict[str, tuple[float, Dimension]] = {}
for _name, (_symbol, _quantity) in _BASE_UNITS.items():
    _dimension = Dimension.of_quantity(_quantity)
    _scale = _OWN_SCALE.get(_name, 1)
    for _stem in (_name, _symbol):
        if _stem is None:
            continue
        # a bare symbol (V, A, s, C, ...) reads as a model's own name far more often than as a unit
        if _stem == _name or len(_stem) > 1:
            UNITS.setdefault(_stem, (float(_scale), _dimension))
        for _prefix, _sympy_prefix in _PREFIXES.items():
            # in sympy's exact rationals: nano x 1000 is 1e-6, not 1.0000000000000002e-06
            UNITS.setdefault(_prefix + _stem, (float(_sympy_prefix.scale_factor * _scale), _dimension))
UNITS["metre"] = UNITS["meter"] = (1.0, Dimension.of_quantity(sympy_units.meter))

DIMENSIONLESS = Dimension()

#: names used when a dimension is described in a message, most familiar first
_NAMED = ["volt", "amp", "second", "siemens", "farad", "ohm", "coulomb", "joule", "watt", "metre", "molar"]


def describe(dimension: Dimension) -> str:
    """A readable unit for ``dimension``: ``volt``, ``volt/second``, ``1/second``, ``amp*second``, ..."""
    if dimension.dimensionless:
        return "1 (dimensionless)"
    named = [(name, UNITS[name][1]) for name in _NAMED]
    for name, unit in named:
        if unit == dimension:
            return name
    time = UNITS["second"][1]
    for power in (1, 2):
        if time ** -power == dimension:
            return "1/second" + (f"**{power}" if power > 1 else "")
    def power(text: str, exponent: int) -> str:
        return text if exponent == 1 else f"{text}**{exponent}"

    for exponent in (1, 2, 3):
        for name, unit in named:
            for seconds in (1, 2, -1, -2, 0):
                if seconds == 0 and exponent == 1:
                    continue
                if unit ** exponent * time ** -seconds == dimension:
                    if seconds > 0:
                        return f"{power(name, exponent)}/{power('second', seconds)}"
                    return power(name, exponent) + (f"*{power('second', -seconds)}" if seconds else "")
    for name, unit in named:
        for other, other_unit in named:
            if unit / other_unit == dimension:
                return f"{name}/{other}"
            if unit * other_unit == dimension:
                return f"{name}*{other}"
    return "*".join(f"{base}**{power}" if power != 1 else base for base, power in sorted(dimension.exponents.items()))
