"""Encoding values as spike trains for training."""

from __future__ import annotations

import numpy as np

from ..errors import TrainingError


def latency_encode(values: np.ndarray, steps: int) -> np.ndarray:
    """Time-to-first-spike code: ``(B, n)`` values in [0, 1] -> spikes ``(steps, B, n)`` (float32).

    A value ``x > 0`` spikes once, in step ``round((1 - x) (steps - 1))`` (larger is earlier);
    ``x = 0`` never spikes.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or np.any(values < 0) or np.any(values > 1) or steps < 1:
        raise TrainingError(f"latency_encode: values must be (B, n) in [0, 1] and steps >= 1, got shape "
                            f"{values.shape}, range [{values.min():g}, {values.max():g}], steps={steps}")
    spikes = np.zeros((steps, *values.shape), dtype=np.float32)
    b, i = np.nonzero(values > 0)
    spikes[np.rint((1 - values[b, i]) * (steps - 1)).astype(np.int64), b, i] = 1.0
    return spikes
