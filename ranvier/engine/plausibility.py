"""Plausibility warnings: parameter values ranvier accepts but that are probably in the wrong unit.

Every quantity in ranvier is a plain SI float, so ``LIF(tau_m=20)`` asks for a membrane time
constant of 20 *seconds*; it was almost certainly meant as ``20 * ms``. The built-in models call
:func:`warn_if_implausible` on their dimensioned parameters, which emits a
:class:`~ranvier.RanvierWarning` naming the likely unit::

    LIF: tau_m = 20 s is outside the plausible range of a time constant (0.1 ms .. 1 s): did you mean 20 * ms?

The value is still used: this is a warning, not an error. Each (model class, parameter) pair
warns at most once per process. Silence the warnings with the standard filters::

    import warnings
    import ranvier as rv
    warnings.simplefilter("ignore", rv.RanvierWarning)

``pytest -W error::ranvier.errors.RanvierWarning`` turns them into errors instead (Python's own
``-W`` option cannot name this category: it is read before ranvier can be imported). A warning
that a filter suppressed still counts as given for its (model class, parameter) pair.

What is checked: the magnitude of every finite, nonzero entry of a float or array (zero is
often legal: ``t_ref=0``, ``tau_syn=0`` for a delta synapse, ``i_bias=0``, ``v_rest=0``), and
the fixed numbers of a ``ranvier.init`` distribution (``Constant`` value, ``Uniform`` bounds,
``Normal`` mean, ``Cauchy`` location); other distributions are not checked.

Plausible ranges (magnitudes, SI units), wide on purpose: a warning should mean a wrong unit,
which is a factor of 1000 or more, not an unusual but deliberate choice.

============  =================  =====================================================================
dimension     range              why
============  =================  =====================================================================
time          0.1 ms .. 1 s      membrane, synaptic and astrocytic time constants and refractory
                                 periods of point-neuron models; ms values written as seconds (2,
                                 5, 10, 20, 100) land far above, doubly scaled ones (20 * ms * ms)
                                 far below
voltage       1 uV .. 1 V        membrane potentials lie within about -100 .. +60 mV; the bound is
                                 1 V because normalised models (threshold 1, as in snntorch and the
                                 training examples) are common, and mV written as volts (-50, -65,
                                 10, 20) are still far above it
current       1 fA .. 1 uA       single-channel currents (~1 pA) to strong injected currents (~1 nA)
conductance   1 pS .. 1 uS       single channels (~10 pS) to whole-cell leak and synaptic
                                 conductances (~1 .. 100 nS)
capacitance   1 fF .. 1 nF       membrane capacitance of point neurons: ~1 pF (small
                                 compartments) .. ~250 pF (large pyramidal cells)
frequency     1 mHz .. 1 MHz     firing rates are 0.01 .. 1000 Hz, but one Poisson source often
                                 stands for the summed input of thousands of cells (Brunel 2000:
                                 C_E nu_ext ~ 20 kHz; Potjans & Diesmann 2014: K_ext * 8 Hz ~ 17 kHz);
                                 also used for angular frequencies (rad/s) of oscillators
============  =================  =====================================================================

The suggested unit is the prefix unit of :mod:`ranvier.units` (``ms``, ``us``, ``mV``, ``uV``,
``nA``, ``pA``, ``nS``, ``pF``, ``kHz``) that brings the value into range; where several do, the
one whose result is nearest (on a log scale) to a typical value of the dimension (10 ms, 50 mV,
100 pA, 1 nS, 100 pF, 10 Hz). Without one the message just states the range.

Models that ranvier builds from values in another framework's conventions (``ranvier.nir``,
``ranvier.train.from_snntorch``, ``ranvier.hardware.neurobench``, training replicas) or rebuilds
from a saved file are not checked (:func:`unchecked`).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .. import units
from ..errors import RanvierWarning
from .distributions import Cauchy, Constant, Distribution, Normal, Uniform

__all__ = ["DIMENSIONS", "unchecked", "warn_if_implausible"]


@dataclass(frozen=True)
class Dimension:
    """A physical dimension's plausible magnitudes, for :func:`warn_if_implausible`."""

    #: what a value of this dimension is, in messages ("a time constant")
    what: str
    #: the SI symbol ("s")
    symbol: str
    low: float
    high: float
    #: the range as messages show it
    shown: str
    #: a typical magnitude, which picks the suggestion when several units fit
    typical: float
    #: the unit names of ranvier.units that a suggestion may name
    suggest: tuple[str, ...]


DIMENSIONS: dict[str, Dimension] = {
    "time": Dimension("a time constant", "s", 0.1 * units.ms, 1.0, "0.1 ms .. 1 s", 10 * units.ms,
                      ("ms", "us")),
    "voltage": Dimension("a voltage", "V", 1 * units.uV, 1.0, "1 uV .. 1 V in magnitude", 50 * units.mV,
                         ("mV", "uV")),
    "current": Dimension("a current", "A", 1e-15, 1e-6, "1 fA .. 1 uA in magnitude", 100 * units.pA,
                         ("nA", "pA")),
    "conductance": Dimension("a conductance", "S", 1e-12, 1e-6, "1 pS .. 1 uS", 1 * units.nS, ("nS",)),
    "capacitance": Dimension("a capacitance", "F", 1e-15, 1e-9, "1 fF .. 1 nF", 100 * units.pF, ("pF",)),
    "frequency": Dimension("a frequency", "Hz", 1e-3, 1e6, "1 mHz .. 1 MHz", 10 * units.Hz, ("kHz",)),
}

#: bounds are inclusive up to float rounding (0.1 * ms is not exactly 1e-4)
_SLACK = 1e-9

#: the (owner, parameter) pairs that have warned in this process
_warned: set[tuple[str, str]] = set()


def _reset_warned() -> None:
    """Forget which parameters have warned, so they warn again (for tests)."""
    _warned.clear()


#: whether checks are off in this context (see :func:`unchecked`)
_unchecked: contextvars.ContextVar[bool] = contextvars.ContextVar("ranvier_plausibility_unchecked", default=False)


@contextlib.contextmanager
def unchecked() -> Iterator[None]:
    """Turn the checks off inside the block (also usable as a decorator).

    For models that ranvier builds itself from values the user did not write in SI units: the
    NIR, snntorch and NeuroBench converters (normalised thresholds, ``NO_THRESHOLD = 1e30``),
    training replicas and models rebuilt from a saved file.
    """
    token = _unchecked.set(True)
    try:
        yield
    finally:
        _unchecked.reset(token)


def _fixed_numbers(value) -> np.ndarray | None:
    """The finite, nonzero numbers to check in ``value`` (signs kept), or None where it holds none."""
    if isinstance(value, Distribution):
        if isinstance(value, Constant):
            value = [value.value]
        elif isinstance(value, Uniform):
            value = [value.low, value.high]
        elif isinstance(value, Normal):
            value = [value.mean]
        elif isinstance(value, Cauchy):
            value = [value.loc]
        else:
            return None
    try:
        numbers = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return None
    return numbers[np.isfinite(numbers) & (numbers != 0)]


def _outside(magnitude: float, dimension: Dimension) -> float:
    """How far ``magnitude`` lies outside the range, in decades (0 inside)."""
    if magnitude < dimension.low * (1 - _SLACK):
        return math.log10(dimension.low / magnitude)
    if magnitude > dimension.high * (1 + _SLACK):
        return math.log10(magnitude / dimension.high)
    return 0.0


def _suggestion(number: float, dimension: Dimension) -> str | None:
    """The unit that brings ``number`` into range, nearest to the typical value; None if none does."""
    fitting = [(abs(math.log10(abs(number) * getattr(units, name) / dimension.typical)), name)
               for name in dimension.suggest if _outside(abs(number) * getattr(units, name), dimension) == 0]
    return min(fitting)[1] if fitting else None


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside ranvier."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").partition(".")[0] == "ranvier":
        frame, level = frame.f_back, level + 1
    return level


def warn_if_implausible(owner: str, name: str, value, dimension: str) -> None:
    """Warn (:class:`~ranvier.RanvierWarning`, once per ``(owner, name)`` per process) when ``value``
    lies outside the plausible range of ``dimension``.

    ``owner`` names the model class in the message (``"LIF"``), ``name`` the parameter
    (``"tau_m"``); ``value`` is a float, an array or a ``ranvier.init`` distribution, in SI units;
    ``dimension`` is one of ``"time"``, ``"voltage"``, ``"current"``, ``"conductance"``,
    ``"capacitance"``, ``"frequency"`` (ranges in the module docstring). Zero, non-finite entries
    and values that are no numbers are not checked (the models' own validation handles them).
    """
    try:
        plausible = DIMENSIONS[dimension]
    except KeyError:
        raise ValueError(f"warn_if_implausible: unknown dimension {dimension!r}; "
                         f"expected one of {sorted(DIMENSIONS)}") from None
    key = (owner, name)
    if key in _warned or _unchecked.get():
        return
    numbers = _fixed_numbers(value)
    if numbers is None or numbers.size == 0:
        return
    extremes = (numbers[np.argmin(np.abs(numbers))], numbers[np.argmax(np.abs(numbers))])
    distance, number = max((_outside(abs(float(n)), plausible), float(n)) for n in extremes)
    if distance == 0:
        return
    _warned.add(key)
    if isinstance(value, Distribution):
        subject = f"{name} holds {number:g} {plausible.symbol} (in {value!r}), which"
    elif np.ndim(value) > 0:
        subject = f"{name} holds {number:g} {plausible.symbol} (in an array of {np.size(value)}), which"
    else:
        subject = f"{name} = {number:g} {plausible.symbol}"
    unit = _suggestion(number, plausible)
    hint = (f": did you mean {number:g} * {unit}?" if unit is not None
            else "; ranvier takes plain SI floats (see ranvier.units)")
    warnings.warn(f"{owner}: {subject} is outside the plausible range of {plausible.what} "
                  f"({plausible.shown}){hint}", RanvierWarning, stacklevel=_caller_level())

