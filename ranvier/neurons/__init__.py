"""Neuron models: one file per model family."""

from .kuramoto import AKOrN, Kuramoto
from .lif import LIF
from .sources import PoissonSource, SpikeSource

__all__ = ["AKOrN", "Kuramoto", "LIF", "PoissonSource", "SpikeSource"]
