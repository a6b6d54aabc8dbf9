"""Neuron models: one file per model family."""

from .lif import LIF
from .sources import PoissonSource, SpikeSource

__all__ = ["LIF", "PoissonSource", "SpikeSource"]
