"""Connection rules: ``AllToAll``, ``OneToOne``, ``Bernoulli(p)``, ``FixedInDegree(k)``, ``FromArrays``."""

from .engine.connectivity import AllToAll, Bernoulli, FixedInDegree, FromArrays, OneToOne, Rule

__all__ = ["AllToAll", "Bernoulli", "FixedInDegree", "FromArrays", "OneToOne", "Rule"]
