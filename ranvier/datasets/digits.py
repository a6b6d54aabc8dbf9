"""The scikit-learn digits as event streams: real data that ships with scikit-learn, offline.

``sklearn.datasets.load_digits`` holds 1797 handwritten digits as 8 x 8 images with 17 grey
levels (0-16), from the UCI "Optical Recognition of Handwritten Digits" set. Two codings turn
them into tonic-style event streams:

``"saccade"``
    As N-MNIST was recorded (Orchard et al. 2015, Front. Neurosci. 9:437, Sec. 2.2): a sensor
    moves over the still image in three saccades forming a triangle and reports brightness
    changes. The N-MNIST triangle (tonic's ``stabilize``: +3.5, +7 px; +3.5, -7 px; -7, 0 px on
    28 px digits, about 100 ms each) is scaled to 8 px digits: (+1, +2), (+1, -2), (-2, 0) px.
    The image moves linearly within each saccade and is resampled bilinearly every
    ``resolution`` s on a 12 x 12 sensor; a pixel emits an ON (p = 1) or OFF (p = 0) event each
    time its log intensity ``log(I + 0.1)`` (``I`` in [0, 1]) crosses a level ``k * threshold``
    from its starting value, at the crossing time found by linear interpolation between
    samples, the level-crossing model of a DVS pixel without refractory period or noise.
    ``sensor_size = (12, 12, 2)``.
``"latency"``
    One event per lit pixel, earlier for brighter ones: a pixel of grey level ``g`` in 1..16
    fires at ``window * (1 - g / 16)``. ``sensor_size = (8, 8, 1)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .events import MICROSECOND

#: N-MNIST's saccade triangle (Orchard et al. 2015) scaled from 28 px to 8 px digits, in px
SACCADES = np.array([[1.0, 2.0], [1.0, -2.0], [-2.0, 0.0]])
#: where the digit's top-left corner sits on the 12 x 12 sensor before the first saccade
_ORIGIN = 1
_SENSOR = 12
_GREY_LEVELS = 16.0
#: keeps log intensity finite on black pixels; sets how strongly dark edges respond
_LOG_EPSILON = 0.1
EVENT_DTYPE = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])


class EventDataset:
    """Labelled event streams indexed like a tonic dataset: ``dataset[i] -> (events, label)``.

    ``events`` is a structured array with fields ``x, y, t, p`` (``t`` in us). ``sensor_size``,
    ``classes`` and ``targets`` (all labels) are as in tonic; ``transform`` (a tonic transform)
    is applied to each sample's events, as tonic datasets do.
    """

    def __init__(self, images: np.ndarray, targets: np.ndarray, sensor_size: tuple[int, int, int],
                 encode: Callable[[np.ndarray], np.ndarray], transform: Callable | None = None,
                 name: str = "events"):
        self.images = images
        self.targets = targets
        self.sensor_size = sensor_size
        self.classes = [str(digit) for digit in range(10)]
        self.dtype = EVENT_DTYPE
        self.ordering = EVENT_DTYPE.names
        self.transform = transform
        self.name = name
        self._encode = encode

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} samples")
        events = self._encode(self.images[index])
        if self.transform is not None:
            events = self.transform(events)
        return events, int(self.targets[index])

    def __repr__(self) -> str:
        return f"EventDataset({self.name!r}, {len(self)} samples, sensor_size={self.sensor_size})"


def _structured(x, y, t, p) -> np.ndarray:
    order = np.argsort(t, kind="stable")
    events = np.empty(len(t), dtype=EVENT_DTYPE)
    for field, values in zip("xytp", (x, y, t, p), strict=True):
        events[field] = np.asarray(values)[order]
    return events


def _positions(saccade_time: float, resolution: float) -> np.ndarray:
    """Offset (dx, dy) in px of the image at every sample time of the three saccades."""
    per_saccade = int(round(saccade_time / resolution))
    fraction = np.arange(per_saccade) / per_saccade
    corners = np.vstack([np.zeros(2), np.cumsum(SACCADES, axis=0)])
    path = [corners[s] + fraction[:, None] * SACCADES[s] for s in range(len(SACCADES))]
    return np.vstack(path + [corners[-1:]])


def _render(image: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The image (8 x 8, in [0, 1]) shifted by each position on the sensor, bilinear: (T, H, W)."""
    frames = np.zeros((len(positions), _SENSOR, _SENSOR))
    whole = np.floor(positions).astype(np.int64)
    part = positions - whole
    k = np.arange(len(positions))[:, None, None]
    rows = np.arange(image.shape[0])[None, :, None]
    columns = np.arange(image.shape[1])[None, None, :]
    for dy in (0, 1):
        for dx in (0, 1):
            weight = (part[:, 0] if dx else 1 - part[:, 0]) * (part[:, 1] if dy else 1 - part[:, 1])
            y = _ORIGIN + whole[:, 1, None, None] + dy + rows
            x = _ORIGIN + whole[:, 0, None, None] + dx + columns
            frames[k, y, x] += weight[:, None, None] * image[None]
    return frames


def saccade_events(image: np.ndarray, threshold: float = 0.2, saccade_time: float = 0.1,
                   resolution: float = 1e-3) -> np.ndarray:
    """Events of a sensor making N-MNIST's three saccades over ``image`` (grey levels 0-16).

    See the module docstring for the model; ``threshold`` is the log-intensity step per event,
    ``saccade_time`` (s) the length of each saccade, ``resolution`` (s) the sampling interval.
    """
    log_intensity = np.log(_render(np.asarray(image, dtype=np.float64) / _GREY_LEVELS,
                                   _positions(saccade_time, resolution)) + _LOG_EPSILON)
    # level a covers [a, a + 1) * threshold above the start and (a - 1, a] * threshold below it, so
    # the start is the middle of a band of +-threshold, as a DVS pixel's reference is
    levels = np.trunc((log_intensity - log_intensity[0]) / threshold).astype(np.int64)
    before, after = levels[:-1], levels[1:]
    k, y, x = np.nonzero(after != before)
    change = after[k, y, x] - before[k, y, x]
    count = np.abs(change)
    direction = np.repeat(np.sign(change), count)
    j = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    # the j-th crossing is between levels lower and lower + 1
    lower = np.repeat(before[k, y, x], count) + np.where(direction > 0, j, -j - 1)
    level = np.where(lower >= 0, lower + 1, lower)
    start = np.repeat(log_intensity[k, y, x], count)
    stop = np.repeat(log_intensity[k + 1, y, x], count)
    crossing = (log_intensity[0][np.repeat(y, count), np.repeat(x, count)] + level * threshold - start) / (stop - start)
    times = (np.repeat(k, count) + np.clip(crossing, 0.0, 1.0)) * resolution
    t_us = np.rint(times / MICROSECOND).astype(np.int64)
    return _structured(np.repeat(x, count), np.repeat(y, count), t_us, (direction > 0).astype(np.int64))


def latency_events(image: np.ndarray, window: float = 0.05) -> np.ndarray:
    """One ON event per lit pixel of ``image`` (grey levels 0-16) at ``window * (1 - level / 16)`` s."""
    image = np.asarray(image, dtype=np.float64)
    y, x = np.nonzero(image > 0)
    times = window * (1.0 - image[y, x] / _GREY_LEVELS)
    return _structured(x, y, np.rint(times / MICROSECOND).astype(np.int64), np.zeros(len(x), dtype=np.int64))


@functools.cache
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Images (1797, 8, 8) and labels of ``sklearn.datasets.load_digits``.

    Read from the file scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``: 64 pixels
    and the label per row, as ``load_digits`` reads it) when it is there, which spares the
    seconds importing scikit-learn takes.
    """
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz" if spec else None
    if path is not None and path.is_file():
        with gzip.open(path, "rt") as file:
            data = np.loadtxt(file, delimiter=",")
        return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)
    from .._extras import require

    require("sklearn", "ranvier.datasets (the digits)", "datasets")
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target


def _split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices: ``round(test_fraction * count)`` random samples of each label go to test."""
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        test.append(members[:int(round(test_fraction * len(members)))])
    test_index = np.concatenate(test)
    return np.setdiff1d(np.arange(len(labels)), test_index), np.sort(test_index)


def digits_events(train: bool = True, coding: str = "saccade", *, test_fraction: float = 0.25, seed: int = 0,
                  transform: Callable | None = None, threshold: float = 0.2, saccade_time: float = 0.1,
                  window: float = 0.05) -> EventDataset:
    """The scikit-learn digits as event streams with labels, split into train and test sets.

    ``train`` picks the training or test part of a split stratified by digit (``test_fraction``
    of each digit goes to test; ``seed`` fixes it, so train and test never overlap). ``coding``
    is ``"saccade"`` (N-MNIST-like, ``sensor_size (12, 12, 2)``, ``3 * saccade_time`` s long) or
    ``"latency"`` (``(8, 8, 1)``, within ``window`` s); see :mod:`ranvier.datasets.digits`.
    ``transform`` is a tonic transform applied to each sample. Samples are encoded when read.
    """
    if coding not in ("saccade", "latency"):
        raise DatasetError(f"digits_events: coding must be 'saccade' or 'latency', got {coding!r}")
    if not 0 < test_fraction < 1:
        raise DatasetError(f"digits_events: test_fraction must be in (0, 1), got {test_fraction!r}")
    for name, value in (("threshold", threshold), ("saccade_time", saccade_time), ("window", window)):
        if not np.isfinite(value) or value <= 0:
            raise DatasetError(f"digits_events: {name} must be positive, got {value!r}")
    images, targets = _load_digits()
    chosen = _split(targets, test_fraction, seed)[0 if train else 1]
    if coding == "saccade":
        def encode(image):
            return saccade_events(image, threshold, saccade_time)
        sensor_size = (_SENSOR, _SENSOR, 2)
    else:
        def encode(image):
            return latency_events(image, window)
        sensor_size = (8, 8, 1)
    name = f"digits_events({'train' if train else 'test'}, {coding})"
    return EventDataset(images[chosen], targets[chosen], sensor_size, encode, transform, name)
