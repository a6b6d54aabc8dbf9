"""Connection rules: ``AllToAll``, ``OneToOne``, ``Bernoulli(p)``, ``FixedInDegree(k)``, ``FromArrays``;
and ``PoissonInput(rate, n_inputs)``, a Poisson drive drawn inside its target (``net.connect(PoissonInput(...),
target, weight=...)``)."""

from .engine.connectivity import AllToAll, Bernoulli, FixedInDegree, FromArrays, OneToOne, Rule
from .engine.poisson_input import PoissonInput

__all__ = ["AllToAll", "Bernoulli", "FixedInDegree", "FromArrays", "OneToOne", "PoissonInput", "Rule"]
