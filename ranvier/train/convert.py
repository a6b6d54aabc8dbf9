"""The trainable torch module of a CfC, LTC or ELM model: :func:`to_torch`."""

from __future__ import annotations

from torch import nn

from ..errors import TrainingError
from ..neurons.cfc import CfC
from ..neurons.elm import ELM
from ..neurons.ltc import LTC
from .cfc import CfCModule
from .elm import ELMModule
from .ltc import LTCModule

_MODULES: dict[type, type[nn.Module]] = {CfC: CfCModule, LTC: LTCModule, ELM: ELMModule}


def to_torch(model: CfC | LTC | ELM) -> nn.Module:
    """A ``torch.nn.Module`` computing ``model``'s function with copies of its weights as parameters.

    :class:`~ranvier.train.CfCModule`, :class:`~ranvier.train.LTCModule` or
    :class:`~ranvier.train.ELMModule`, built from ``model.weights``; training it leaves ``model`` as it was.
    """
    for kind, module in _MODULES.items():
        if isinstance(model, kind):
            return module(model.weights)
    raise TrainingError(f"to_torch: {model!r} is not a CfC, LTC or ELM model; "
                        f"one of {sorted(kind.__name__ for kind in _MODULES)} is needed")
