"""Neuron models: one file per model family."""

from .cfc_ltc import LTC, CfC
from .kuramoto import AKOrN, Kuramoto
from .lif import LIF
from .sources import PoissonSource, SpikeSource

__all__ = ["AKOrN", "CfC", "Kuramoto", "LTC", "LIF", "PoissonSource", "SpikeSource"]
