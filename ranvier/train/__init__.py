"""Training populations in torch: surrogate-gradient spiking networks (BPTT, SLTT) and liquid networks.

Importing this package imports torch; ``import ranvier`` alone does not.
"""

from .spiking import SpikingModule, Trace, latency_encode, simulate, surrogate_derivative
