"""Training populations in torch: surrogate-gradient spiking networks (BPTT, SLTT) and liquid networks.

Importing this package imports torch; ``import ranvier`` alone does not.
"""

from .._extras import require

require("torch", "ranvier.train", "torch")  # a MissingExtraError saying what to install, before torch is imported

# ruff: noqa: E402

from .batch import simulate as simulate
from .cfc import CfCModule as CfCModule
from .convert import to_torch as to_torch
from .delays import sigma_schedule as sigma_schedule
from .elm import ELMModule as ELMModule
from .elm import RecurrentLIF as RecurrentLIF
from .encoding import latency_encode as latency_encode
from .ltc import LTCModule as LTCModule
from .recurrence import surrogate_derivative as surrogate_derivative
from .snntorch_import import from_snntorch as from_snntorch
from .spiking import SpikingModule as SpikingModule
from .spiking import Trace as Trace
from .tasks import delayed_coincidence as delayed_coincidence
from .tasks import delayed_cue_recall as delayed_cue_recall
