"""Long-horizon tasks built from event streams (numpy; no torch needed to generate them)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def delayed_cue_recall(n_samples: int, steps: int = 500, channels: int = 8, cue_steps: int = 10,
                       cue_probability: float = 0.5, noise_probability: float = 0.02,
                       seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Spike trains that show a cue at the start; the label is which cue, to be answered at the last step.

    Each sample is ``channels`` Bernoulli spike trains of ``steps`` steps. In the first
    ``cue_steps`` steps one half of the channels (the first half for label 0, the second for
    label 1) spikes with probability ``cue_probability`` per step; every channel carries
    background spikes with probability ``noise_probability`` per step throughout. A model must
    hold the cue's identity for ``steps - cue_steps`` steps of noise: the delayed-recall
    long-horizon setting of Spieler et al. (2023), built from events instead of SHD digits.

    Returns ``(spikes, labels)``: float32 ``(n_samples, steps, channels)`` of 0/1, int64 ``(n_samples,)``.
    """
    if channels < 2 or channels % 2:
        raise InputError(f"delayed_cue_recall: channels must be an even number >= 2; got {channels!r}")
    if not 0 < cue_steps < steps:
        raise InputError(f"delayed_cue_recall: need 0 < cue_steps < steps; got cue_steps={cue_steps!r}, "
                         f"steps={steps!r}")
    for name, p in (("cue_probability", cue_probability), ("noise_probability", noise_probability)):
        if not 0 <= p <= 1:
            raise InputError(f"delayed_cue_recall: {name} must lie in [0, 1]; got {p!r}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n_samples)
    spikes = rng.random((n_samples, steps, channels)) < noise_probability
    half = channels // 2
    cue = rng.random((n_samples, cue_steps, half)) < cue_probability
    for label in (0, 1):
        rows = labels == label
        spikes[rows, :cue_steps, label * half:(label + 1) * half] |= cue[rows]
    return spikes.astype(np.float32), labels.astype(np.int64)
