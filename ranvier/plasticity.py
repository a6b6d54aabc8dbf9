"""Synaptic plasticity: pair-based STDP with traces, optionally gated by a modulator (astrocyte).

``net.connect(pre, post, rule, weight=..., plasticity=STDP(...))`` makes a projection plastic:
its weights change during runs and ``projection.weights`` shows them afterwards. Updates are
event-driven (architecture principle 3): a synapse changes only when its source or target spikes,
and each trace decays exactly from the step it was last touched, never step by step.

For a pair with ``dt = t_post - t_pre`` (emission times of the two spikes) the weight changes by

.. math::

    \\Delta w = A_+ m_+ e^{-\\Delta t/\\tau_+} \\quad (\\Delta t \\ge 0), \\qquad
    \\Delta w = -A_- m_- e^{\\Delta t/\\tau_-} \\quad (\\Delta t < 0)

(Bi & Poo 1998; the trace form of Song, Miller & Abbott 2000 and Morrison, Diesmann & Gerstner
2008, Sec. 4.1, all-to-all pairing). ``m_+``, ``m_-`` are 1, or the modulator's current output
for the terms it modulates. With ``rule="multiplicative"`` (weight-dependent soft bounds, Guetig et al.
2003 with mu = 1) the changes are ``A_+ m_+ (w_max - w) x_pre`` and ``-A_- m_- (w - w_min) x_post``, so
weights approach their bounds softly; with ``"additive"`` the amplitudes are in volts. Weights
are always clipped to ``[w_min, w_max]``.

Timing within a run: the spikes of one min-delay chunk are delivered with the weights the chunk
started with; the chunk's pre and post spikes then update traces and weights in time order (at
equal steps, pre spikes first, so a pair in one step potentiates). Every backend does the same,
so numpy and numba agree to the bit. See ``docs/plasticity.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import PlasticityError

if TYPE_CHECKING:
    from .engine.network import Population, Projection

_RULES = ("additive", "multiplicative")
_MODULATED = ("depression", "potentiation", "both")


class STDP:
    """Pair-based spike-timing-dependent plasticity of one projection.

    Parameters
    ----------
    tau_plus, tau_minus : decay times (s) of the presynaptic and postsynaptic traces
    a_plus, a_minus : amplitudes of potentiation and depression (V for ``"additive"``,
        dimensionless for ``"multiplicative"``); negative values turn a term around
        (anti-Hebbian, e.g. for inhibitory synapses whose weights are negative)
    w_min, w_max : weight bounds (V)
    rule : ``"additive"`` or ``"multiplicative"`` (weight-dependent)
    modulator : a value population (e.g. :class:`~ranvier.neurons.Astrocyte`) of one unit, or of
        as many units as the target population; its output multiplies the modulated terms
    modulates : which terms the modulator scales: ``"depression"`` (as in the NALSM of Ivanov &
        Michmizos 2021, Eq. 7), ``"potentiation"`` or ``"both"``
    """

    def __init__(self, tau_plus: float = 20e-3, tau_minus: float = 20e-3, a_plus: float = 1e-4,
                 a_minus: float = 1.05e-4, w_min: float = 0.0, w_max: float = 1e-3, rule: str = "additive",
                 modulator: Population | None = None, modulates: str = "depression") -> None:
        for name, value in (("tau_plus", tau_plus), ("tau_minus", tau_minus)):
            if not _is_number(value) or not np.isfinite(value) or value <= 0:
                raise PlasticityError(f"STDP: {name} must be a positive time in seconds, got {value!r}")
        for name, value in (("a_plus", a_plus), ("a_minus", a_minus), ("w_min", w_min), ("w_max", w_max)):
            if not _is_number(value) or not np.isfinite(value):
                raise PlasticityError(f"STDP: {name} must be a finite number, got {value!r}")
        if w_min > w_max:
            raise PlasticityError(f"STDP: w_min must not exceed w_max, got w_min={w_min!r} > w_max={w_max!r}")
        if rule not in _RULES:
            raise PlasticityError(f"STDP: rule must be one of {_RULES}, got {rule!r}")
        if modulates not in _MODULATED:
            raise PlasticityError(f"STDP: modulates must be one of {_MODULATED}, got {modulates!r}")
        self.tau_plus = float(tau_plus)
        self.tau_minus = float(tau_minus)
        self.a_plus = float(a_plus)
        self.a_minus = float(a_minus)
        self.w_min = float(w_min)
        self.w_max = float(w_max)
        self.rule = rule
        self.modulator = modulator
        self.modulates = modulates

    def __repr__(self) -> str:
        modulator = f", modulator={self.modulator.name!r}" if self.modulator is not None else ""
        return (f"STDP(tau_plus={self.tau_plus!r}, tau_minus={self.tau_minus!r}, a_plus={self.a_plus!r}, "
                f"a_minus={self.a_minus!r}, w_min={self.w_min!r}, w_max={self.w_max!r}, rule={self.rule!r}"
                f"{modulator})")

    def attach(self, projection: Projection) -> None:
        """Make ``projection`` learn by this rule (``Network.connect(..., plasticity=rule)`` calls it).

        Its traces are run state (:mod:`ranvier.engine.state`), made by its first run.
        """
        self._check(projection)
        projection.plasticity = self

    def _check(self, projection: Projection) -> None:
        """Refuse what this rule cannot learn on ``projection``: value sources, foreign modulators, bad weights."""
        from .engine.model import ValueModel
        from .engine.network import Population

        name = projection.name
        if projection.kind != "spike":
            source = "a value population" if isinstance(projection.pre.model, ValueModel) else "spikes"
            raise PlasticityError(f"projection {name!r}: STDP needs spikes delivered to a spiking population; it "
                                  f"carries {source} from {projection.pre.name!r} to {projection.post.name!r} "
                                  f"({projection.kind!r} projection)")
        modulator = self.modulator
        if modulator is not None:
            network = projection.pre.network
            if not isinstance(modulator, Population) or network.populations.get(modulator.name) is not modulator:
                raise PlasticityError(f"projection {name!r}: the STDP modulator {modulator!r} is not a population "
                                      "of this network")
            if not isinstance(modulator.model, ValueModel):
                raise PlasticityError(f"projection {name!r}: the STDP modulator {modulator.name!r} must be a value "
                                      f"population (e.g. an Astrocyte), it is a {type(modulator.model).__name__}")
            if modulator.n not in (1, projection.post.n):
                raise PlasticityError(f"projection {name!r}: the STDP modulator {modulator.name!r} has "
                                      f"{modulator.n} units; it needs 1 or one per target neuron "
                                      f"({projection.post.n})")
        self._check_bounds(projection._weights, name)

    def _check_bounds(self, weights: np.ndarray, name: str) -> None:
        """Refuse weights of projection ``name`` outside ``[w_min, w_max]``, which learning would clip."""
        low, high = weights.dtype.type(self.w_min), weights.dtype.type(self.w_max)
        outside = (weights < low) | (weights > high)
        if np.any(outside):
            raise PlasticityError(f"projection {name!r}: weight {float(weights[outside][0]):.6g} of synapse "
                                  f"{int(np.flatnonzero(outside)[0])} lies outside the STDP bounds "
                                  f"[{self.w_min!r}, {self.w_max!r}]")


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def freeze(projections: Projection | list[Projection]) -> None:
    """Stop the learning of ``projections``: their weights stay as they are now."""
    for projection in [projections] if not isinstance(projections, list | tuple) else projections:
        if projection.plasticity is not None:
            projection.plasticity = None
            projection.pre.network._changed()


__all__ = ["STDP", "freeze"]
