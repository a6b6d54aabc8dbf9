"""Neuron models: one file per model family."""

from .astrocyte import Astrocyte
from .cfc import CfC
from .elm import ELM
from .kuramoto import AKOrN, Kuramoto
from .lif import LIF
from .ltc import LTC
from .rate import Rate
from .sources import PoissonSource, SpikeSource


def __getattr__(name):
    # Equations parses and checks units with sympy, which ``import ranvier`` does not import
    # (it takes longer than the rest of ranvier, and comes with the [equations] extra)
    if name == "Equations":
        from .._extras import require

        require("sympy", "ranvier.neurons.Equations", "equations")
        from .equations import Equations

        globals()["Equations"] = Equations
        return Equations
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AKOrN", "Astrocyte", "CfC", "ELM", "Equations", "Kuramoto", "LTC", "LIF", "PoissonSource", "Rate",
           "SpikeSource"]
