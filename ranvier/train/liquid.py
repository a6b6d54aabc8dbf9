"""What the CfC and LTC torch modules share: their input check and how they turn numpy weights into parameters."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import InputError


def check_sequence(module: str, n_in: int, inputs: torch.Tensor, timespans: torch.Tensor | None) -> None:
    """Raise an :class:`~ranvier.errors.InputError` naming ``module`` unless ``inputs`` is ``(batch, T >= 1, n_in)``,
    finite, and ``timespans`` (if given) ``(batch, T)``."""
    if inputs.dim() != 3 or inputs.shape[-1] != n_in or inputs.shape[1] == 0:
        raise InputError(f"{module}: inputs must have shape (batch, T >= 1, {n_in}); got {tuple(inputs.shape)}")
    # any NaN or infinity makes the float64 sum non-finite: one reduction, where an elementwise isfinite costs more
    # than a CfC forward step; the elementwise check runs only to rule out an overflowing sum of finite values
    if not bool(torch.isfinite(inputs.sum(dtype=torch.float64))) and not bool(torch.isfinite(inputs).all()):
        raise InputError(f"{module}: inputs contain NaN or infinite values")
    if timespans is not None and tuple(timespans.shape) != tuple(inputs.shape[:2]):
        raise InputError(f"{module}: timespans must have shape {tuple(inputs.shape[:2])}; "
                         f"got {tuple(timespans.shape)}")


def parameter(array: np.ndarray) -> nn.Parameter:
    """A float32 parameter holding a copy of ``array``."""
    return nn.Parameter(torch.tensor(np.asarray(array, dtype=np.float32)))

