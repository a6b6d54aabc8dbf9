"""The Spiking Heidelberg Digits (and any tonic audio-event set) as training spike tensors.

tonic's ``tonic.datasets.SHD`` (Cramer et al. 2020) reads the dataset's HDF5 files
(``shd_train.h5``, ``shd_test.h5``: ragged ``spikes/times`` (s, float) and ``spikes/units``
(channel 0..699, int) per sample, ``labels``, ``extra/keys``, ``extra/speaker``) into
``(events, label)`` samples with fields ``t`` (us), ``x`` (channel) and ``p = 1`` on a
``(700, 1, 1)`` sensor. :func:`shd_to_spikes` bins such samples into the ``(T, B, n)`` spike
tensors that :class:`~ranvier.train.SpikingModule` and :func:`~ranvier.train.simulate` take.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DatasetError
from .events import DEFAULT_START, from_tonic


def shd_to_spikes(dataset, dt: float = 1e-3, steps: int | None = None, indices: Sequence[int] | None = None, *,
                  start: float = DEFAULT_START, counts: bool = False,
                  sensor_size: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Spikes ``(T, B, n)`` (float32) and labels ``(B,)`` (int64) of samples of a tonic dataset.

    ``dataset`` is a tonic dataset (e.g. ``tonic.datasets.SHD``), or any sequence of
    ``(events, label)`` samples (then ``sensor_size`` is needed unless it has a ``sensor_size``);
    ``indices`` picks samples (default all, in order). Events map to neurons as in
    :func:`~ranvier.datasets.from_tonic` (SHD: neuron = channel ``x``, ``n = 700``), and an
    event at ``t`` us falls in step ``k = round((start + t 1e-6) / dt) - 1``: the step in which
    the engine emits the spike of ``from_tonic(sample, start=start)``, so these tensors given
    to :func:`~ranvier.train.simulate` and the sample run through ``from_tonic`` drive a network
    identically (with ``counts=True``). The default ``start = 1 ms`` with ``dt = 1 ms`` gives
    ``k = round(t / dt)``.

    ``steps`` (default: enough for the latest event of the chosen samples) cuts later events
    off. With ``counts=False`` a neuron with several events in one step spikes once (0/1
    tensors); ``counts=True`` keeps the number of events. Labels are ``int(label)``.
    """
    what = "shd_to_spikes"
    if not (np.isfinite(dt) and dt > 0):
        raise DatasetError(f"{what}: dt must be a positive time step (s), got {dt!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
        raise DatasetError(f"{what}: steps must be an integer >= 1, got {steps!r}")
    if sensor_size is None:
        sensor_size = getattr(dataset, "sensor_size", None)
    if sensor_size is None:
        raise DatasetError(f"{what}: give sensor_size (e.g. (700, 1, 1) for SHD) for a dataset without one")
    chosen = range(len(dataset)) if indices is None else [int(i) for i in indices]
    emitted, labels = [], []
    for index in chosen:
        events, label = dataset[index]
        source = from_tonic(events, sensor_size, start=start)
        emitted.append(source.schedule(dt, what) if source.ids.size else (np.zeros(0, np.int64),) * 2)
        labels.append(int(label))
        n = source.size
    if not labels:
        raise DatasetError(f"{what}: no samples chosen")
    if steps is None:
        steps = max((int(k.max()) + 1 for k, _ in emitted if k.size), default=1)
    spikes = np.zeros((steps, len(labels), n), dtype=np.float32)
    for b, (k, ids) in enumerate(emitted):
        keep = k < steps
        if counts:
            np.add.at(spikes, (k[keep], b, ids[keep]), 1.0)
        else:
            spikes[k[keep], b, ids[keep]] = 1.0
    return spikes, np.asarray(labels, dtype=np.int64)
