"""Connection rules: ``AllToAll``, ``OneToOne``, ``Bernoulli(p)``, ``FixedInDegree(k)``, ``FromArrays``,
``Conv2d(kernel, input_shape, ...)`` (a convolution whose kernel is stored once); and
``PoissonInput(rate, n_inputs)``, a Poisson drive drawn inside its target
(``net.connect(PoissonInput(...), target, weight=...)``)."""

from .engine.connectivity import AllToAll, Bernoulli, Conv2d, FixedInDegree, FromArrays, OneToOne, Rule
from .engine.poisson_input import PoissonInput

__all__ = ["AllToAll", "Bernoulli", "Conv2d", "FixedInDegree", "FromArrays", "OneToOne", "PoissonInput", "Rule"]
