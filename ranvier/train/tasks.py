"""Long-horizon tasks built from event streams (numpy; no torch needed to generate them)."""

from __future__ import annotations

import math

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


def delayed_coincidence(n_samples: int, channels: int = 8, steps: int = 100, classes: int = 4, gap: int = 3,
                        noise_probability: float = 0.01, jitter: int = 0, seed: int | None = None,
                        motif_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Spiking motifs told apart only by the relative timing of their spikes across channels.

    Class ``c`` is a fixed motif: each of the ``channels`` input channels spikes exactly once,
    channel ``i`` at offset ``o_ci = gap * pi_c(i)`` after the motif's onset, ``pi_c`` a
    permutation of ``0 .. channels - 1`` (one per class, all different). A sample is one
    class's motif at an onset drawn uniformly from ``[0, steps - span]`` (``span = gap
    (channels - 1) + 1``), each spike moved by up to ``jitter`` steps either way (clipped to
    the sample), in Bernoulli background spikes of probability ``noise_probability`` per
    channel and step. The motifs come from ``motif_seed`` alone, so sets drawn with different
    ``seed`` (train, test) share them; ``seed`` draws labels, onsets, jitter and noise.

    Why delays matter: every class drives the same channels with one spike each, at the same
    set of offsets, at a random onset, so spike counts, channel identity, absolute times and
    the set of inter-spike intervals carry no information: only which channel comes when
    (``o_ci - o_cj``) does. A neuron whose synapse from channel ``i`` has delay
    ``d_i = D - o_ci`` receives class ``c``'s whole motif in one step, ``D`` after the onset
    (``channels`` coincident inputs, against at most a few for the other classes), and a
    threshold tells the classes apart: coincidence detection after per-synapse delays (the
    polychronous groups of Izhikevich 2006; the spiking-motif detectors with heterogeneous
    delays of Grimaldi et al. 2023). No two spikes of a motif are closer than ``gap`` steps, so
    without delays a feed-forward LIF neuron whose membrane time constant is short against
    ``gap`` sees them one at a time; fixed random delays align a motif only by chance; learned
    delays need ``max_delay >= span - 1`` to align a whole motif.

    Returns ``(spikes, labels)``: float32 ``(n_samples, steps, channels)`` of 0/1, int64 ``(n_samples,)``.
    """
    what = "delayed_coincidence"
    for name, value, low in (("n_samples", n_samples, 0), ("channels", channels, 2), ("classes", classes, 2),
                             ("gap", gap, 1), ("jitter", jitter, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{what}: {name} must be an integer >= {low}; got {value!r}")
    span = gap * (channels - 1) + 1
    if span > steps:
        raise InputError(f"{what}: a motif spans gap * (channels - 1) + 1 = {span} steps, more than steps={steps!r}")
    if classes > math.factorial(min(channels, 20)):
        raise InputError(f"{what}: {channels} channels give fewer than {classes} distinct motifs")
    if not 0 <= noise_probability <= 1:
        raise InputError(f"{what}: noise_probability must lie in [0, 1]; got {noise_probability!r}")
    motif_rng = np.random.default_rng(motif_seed)
    orders: list[np.ndarray] = []
    while len(orders) < classes:
        drawn = motif_rng.permutation(channels)
        if not any(np.array_equal(drawn, other) for other in orders):
            orders.append(drawn)
    offsets = gap * np.array(orders, dtype=np.int64)  # (classes, channels)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n_samples)
    spikes = rng.random((n_samples, steps, channels)) < noise_probability
    onsets = rng.integers(0, steps - span + 1, n_samples)
    times = onsets[:, None] + offsets[labels]
    if jitter:
        times = np.clip(times + rng.integers(-jitter, jitter + 1, times.shape), 0, steps - 1)
    spikes[np.arange(n_samples)[:, None], times, np.arange(channels)[None, :]] = True
    return spikes.astype(np.float32), labels.astype(np.int64)
