"""Training populations in torch: surrogate-gradient spiking networks (BPTT, SLTT) and liquid networks.

Importing this package imports torch; ``import ranvier`` alone does not.
"""

from .snntorch_import import from_snntorch as from_snntorch
from .spiking import SpikingModule as SpikingModule
from .spiking import Trace as Trace
from .spiking import latency_encode as latency_encode
from .spiking import simulate as simulate
from .spiking import surrogate_derivative as surrogate_derivative
