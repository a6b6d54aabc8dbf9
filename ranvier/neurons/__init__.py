"""Neuron models: one file per model family."""

from .astrocyte import Astrocyte
from .cfc import CfC
from .elm import ELM
from .equations import Equations
from .kuramoto import AKOrN, Kuramoto
from .lif import LIF
from .ltc import LTC
from .rate import Rate
from .sources import PoissonSource, SpikeSource

__all__ = ["AKOrN", "Astrocyte", "CfC", "ELM", "Equations", "Kuramoto", "LTC", "LIF", "PoissonSource", "Rate",
           "SpikeSource"]
