"""Builders of classic networks, each returning a ready :class:`~ranvier.Network`."""

from .brunel import brunel
from .cuba import cuba
from .kuramoto import kuramoto
from .microcircuit import microcircuit

__all__ = ["brunel", "cuba", "kuramoto", "microcircuit"]
