"""Event streams (tonic's structured arrays) as spike sources.

tonic represents an event stream as a numpy structured array with fields ``x``, ``y`` (image
sensors only), ``p`` (polarity) and ``t`` (microseconds), and a sensor by ``sensor_size = (W, H,
P)``: width, height and number of polarities; an audio sensor such as SHD's cochlea is
``(700, 1, 1)`` with events ``(t, x, p)``.

Neuron index
    An event ``(x, y, p)`` drives neuron ``(p * H + y) * W + x`` of a source of ``W * H * P``
    neurons, the order of tonic's ``ToFrame`` frames ``(P, H, W)`` flattened, so
    ``frame.ravel()[i]`` counts the events of neuron ``i``. With ``polarity="merge"`` both
    polarities drive neuron ``y * W + x`` of a source of ``W * H`` neurons. A missing ``y`` is
    0 (``H`` must then be 1); a missing ``p`` is 0, and a sensor with one polarity channel
    (``P = 1``) ignores ``p`` (tonic's SHD reader sets ``p = 1`` on a ``(700, 1, 1)`` sensor).

Time
    An event at tonic time ``t`` (us) is a spike at ``start + t * 1e-6`` seconds. ``start``
    (default 1 ms) exists because a source's spike at time ``s`` reaches its targets at ``s +
    delay`` and ranvier needs ``s >= dt``: an event at ``t = 0`` cannot be sent before the
    first step. Spike times are rounded to the step grid by the network.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import DatasetError
from ..neurons.sources import SpikeSource

#: tonic's timestamps are microseconds
MICROSECOND = 1e-6
#: default time (s) of tonic's t = 0
DEFAULT_START = 1e-3
_POLARITY_MODES = ("keep", "merge")


class UnsortedEventsWarning(UserWarning):
    """Events were not in time order and were sorted (``on_unsorted="sort"``)."""


def _sensor(sensor_size, what: str) -> tuple[int, int, int]:
    try:
        size = tuple(int(s) for s in sensor_size)
    except TypeError:
        raise DatasetError(f"{what}: sensor_size must be (W, H, P), got {sensor_size!r}") from None
    if len(size) != 3 or min(size) < 1:
        raise DatasetError(f"{what}: sensor_size must be three positive integers (W, H, P), got {sensor_size!r}")
    return size


def source_size(sensor_size: Sequence[int], polarity: str = "keep") -> int:
    """Number of neurons of a source for ``sensor_size`` (``W * H * P``, or ``W * H`` merged)."""
    width, height, polarities = _sensor(sensor_size, "source_size")
    return width * height * (polarities if polarity == "keep" else 1)


def event_ids(events: np.ndarray, sensor_size: Sequence[int], polarity: str = "keep",
              on_unsorted: str = "sort", what: str = "events") -> tuple[np.ndarray, np.ndarray]:
    """Checked timestamps (us, float64, ascending) and neuron indices (int64) of tonic ``events``.

    Raises :class:`~ranvier.errors.DatasetError` naming ``what`` for a missing field, a
    negative or non-finite timestamp, or a coordinate outside ``sensor_size``. Timestamps out
    of order are sorted with an :class:`UnsortedEventsWarning` (``on_unsorted="sort"``) or
    refused (``"error"``). An empty stream gives empty arrays.
    """
    width, height, polarities = _sensor(sensor_size, what)
    if polarity not in _POLARITY_MODES:
        raise DatasetError(f"{what}: polarity must be one of {_POLARITY_MODES}, got {polarity!r}")
    if on_unsorted not in ("sort", "error"):
        raise DatasetError(f"{what}: on_unsorted must be 'sort' or 'error', got {on_unsorted!r}")
    names = getattr(getattr(events, "dtype", None), "names", None)
    if not names:
        raise DatasetError(f"{what}: expected a structured event array with fields x, t (and y, p), "
                           f"got {type(events).__name__} {getattr(events, 'dtype', '')}")
    required = ["x", "t"] + (["y"] if height > 1 else [])
    missing = [name for name in required if name not in names]
    if missing:
        raise DatasetError(f"{what}: events lack field(s) {missing} for sensor_size {(width, height, polarities)}; "
                           f"they have {list(names)}")
    events = np.asarray(events).ravel()
    times = np.asarray(events["t"], dtype=np.float64)
    if times.size and not np.all(np.isfinite(times)):
        raise DatasetError(f"{what}: timestamps must be finite, got {times[~np.isfinite(times)][:3].tolist()}")
    if times.size and times.min() < 0:
        raise DatasetError(f"{what}: timestamps must be >= 0 us, got {times.min():g} "
                           f"at event {int(np.argmin(times))}")
    ids = np.zeros(len(events), dtype=np.int64)
    stride = 1
    for field, extent in (("x", width), ("y", height), ("p", polarities)):
        if field not in names or (field == "p" and polarities == 1):
            continue
        values = np.asarray(events[field])
        if field == "p" and values.dtype == np.bool_:
            values = values.astype(np.int64)
        bad = (values < 0) | (values >= extent) | (values != np.floor(values))
        if np.any(bad):
            raise DatasetError(f"{what}: {field} = {values[bad][0].item()!r} at event {int(np.argmax(bad))} is outside "
                               f"sensor_size {(width, height, polarities)} (0 <= {field} < {extent})")
        if field != "p" or polarity == "keep":
            ids += values.astype(np.int64) * stride
        stride *= extent
    if times.size > 1 and np.any(np.diff(times) < 0):
        if on_unsorted == "error":
            first = int(np.argmax(np.diff(times) < 0)) + 1
            raise DatasetError(f"{what}: timestamps decrease at event {first} ({times[first - 1]:g} -> "
                               f"{times[first]:g} us)")
        warnings.warn(f"{what}: timestamps were not in time order; sorted them", UnsortedEventsWarning,
                      stacklevel=3)
        order = np.argsort(times, kind="stable")
        times, ids = times[order], ids[order]
    return times, ids


def frame_ids(frames: np.ndarray, sensor_size: Sequence[int], polarity: str, frame_time: float | None,
              what: str) -> tuple[np.ndarray, np.ndarray]:
    """Spike times (us from the first frame) and ids of frames ``(T, P, H, W)`` of event counts.

    Frame ``k`` holds the counts of the window ``[k, k + 1) * frame_time``; its ``c`` events of
    neuron ``i`` become ``c`` spikes of ``i`` at the window's start. ``polarity="merge"`` adds
    the polarity channels (axis 1).
    """
    if frame_time is None or not np.isfinite(frame_time) or frame_time <= 0:
        raise DatasetError(f"{what}: frames (ToFrame output) need frame_time, the window length in s, "
                           f"got {frame_time!r}")
    frames = np.asarray(frames)
    width, height, polarities = _sensor(sensor_size, what)
    if frames.ndim < 2 or frames[0].size != width * height * polarities:
        raise DatasetError(f"{what}: frames of shape {frames.shape} do not hold (P, H, W) = "
                           f"{(polarities, height, width)} counts per frame")
    counts = frames.reshape(len(frames), polarities, -1)
    if counts.size and (counts.min() < 0 or np.any(counts != np.floor(counts))):
        raise DatasetError(f"{what}: frames must hold non-negative event counts, got min {counts.min()!r}")
    counts = (counts.sum(axis=1) if polarity == "merge" else counts.reshape(len(frames), -1)).astype(np.int64)
    frame_index, ids = np.nonzero(counts)
    repeats = counts[frame_index, ids]
    times = np.repeat(frame_index * (frame_time / MICROSECOND), repeats).astype(np.float64)
    return times, np.repeat(ids, repeats).astype(np.int64)


def _unpack(events_or_sample, sensor_size, index: int | None, what: str):
    """The events and sensor size of a tonic dataset, a ``(events, target)`` sample or an array."""
    if hasattr(events_or_sample, "__getitem__") and hasattr(events_or_sample, "sensor_size") \
            and not isinstance(events_or_sample, np.ndarray):
        dataset = events_or_sample
        sensor_size = dataset.sensor_size if sensor_size is None else sensor_size
        index = 0 if index is None else index
        if not 0 <= index < len(dataset):
            raise DatasetError(f"{what}: index {index} out of range for a dataset of {len(dataset)} samples")
        events_or_sample = dataset[index]
    if isinstance(events_or_sample, tuple):
        if len(events_or_sample) != 2:
            raise DatasetError(f"{what}: a sample is (events, target), got a tuple of {len(events_or_sample)}")
        events_or_sample = events_or_sample[0]
    if sensor_size is None:
        raise DatasetError(f"{what}: sensor_size is required for an event array (e.g. tonic's "
                           "datasets.NMNIST.sensor_size = (34, 34, 2))")
    return events_or_sample, sensor_size


def from_tonic(events_or_sample, sensor_size: Sequence[int] | None = None, *, polarity: str = "keep",
               start: float = DEFAULT_START, transform: Callable | None = None, frame_time: float | None = None,
               index: int | None = None, on_unsorted: str = "sort") -> SpikeSource:
    """A :class:`~ranvier.neurons.SpikeSource` that replays a tonic event stream.

    ``events_or_sample`` is a structured event array, a tonic sample ``(events, target)`` or a
    tonic dataset (sample ``index``, default 0, whose ``sensor_size`` is used). Event ``(x, y,
    p)`` at ``t`` us becomes a spike of neuron ``(p * H + y) * W + x`` at ``start + t * 1e-6``
    s (``polarity="merge"``: neuron ``y * W + x``); see :mod:`ranvier.datasets.events`. The
    source has ``W * H * P`` neurons (``W * H`` merged) whether or not all of them fire, so
    ``net.population(source, name="input")`` needs no ``n``.

    ``transform`` (any tonic transform or ``tonic.transforms.Compose``) is applied to the
    events first. A transform that returns frames (``ToFrame``, counts ``(T, P, H, W)``) gives
    a rate input: frame ``k``'s counts become spikes at ``start + k * frame_time`` (tonic's
    windows begin at the first event unless ``ToFrame`` is given ``start_time=0``).

    Bad input raises :class:`~ranvier.errors.DatasetError`: missing fields, negative
    timestamps, coordinates outside ``sensor_size``. Unsorted timestamps are sorted with an
    :class:`UnsortedEventsWarning` (``on_unsorted="error"`` refuses them). An empty stream
    gives a silent source of the full size.
    """
    what = "from_tonic"
    if not np.isfinite(start) or start < 0:
        raise DatasetError(f"{what}: start must be a finite time >= 0 s, got {start!r}")
    if polarity not in _POLARITY_MODES:
        raise DatasetError(f"{what}: polarity must be one of {_POLARITY_MODES}, got {polarity!r}")
    events, sensor_size = _unpack(events_or_sample, sensor_size, index, what)
    n = source_size(_sensor(sensor_size, what), polarity)
    if transform is not None:
        events = transform(events)
    if isinstance(events, np.ndarray) and events.dtype.names is None and events.ndim >= 2:
        times, ids = frame_ids(events, sensor_size, polarity, frame_time, what)
    else:
        times, ids = event_ids(events, sensor_size, polarity, on_unsorted, what)
    return SpikeSource(start + times * MICROSECOND, ids, n=n)
