"""Builders of classic networks, each returning a ready :class:`~ranvier.Network`."""

from .brunel import brunel
from .cuba import cuba
from .hybrid import hybrid
from .kuramoto import kuramoto
from .microcircuit import microcircuit
from .nalsm import nalsm

__all__ = ["brunel", "cuba", "hybrid", "kuramoto", "microcircuit", "nalsm"]
