"""What populations and projections are to the engine: the kinds backends and lowering branch on."""

from __future__ import annotations

import enum


class Kind(str, enum.Enum):
    """What a model's populations are to the engine (a ``str``, so ``kind == "spiking"`` still holds)."""

    #: a model-language step per neuron, emitting spikes
    SPIKING = "spiking"
    #: a dense vector of values (and, for some, pulses), updated once per window
    VALUE = "value"
    #: spikes fixed before the run (spike and Poisson sources)
    SCHEDULED = "scheduled"

    def __str__(self) -> str:
        return self.value


class ProjectionKind(str, enum.Enum):
    """How a projection's messages travel (a ``str``, so ``kind == "spike"`` still holds)."""

    #: spikes through the delay rings, delivered by the compiled core
    SPIKE = "spike"
    #: spikes counted over a value population's window
    COUNT = "count"
    #: a value population's output, a linear map into a value population's port or a spiking receptor
    VALUE = "value"
    #: a value population's output written into a state variable of a spiking population
    SET = "set"

    def __str__(self) -> str:
        return self.value
