"""Streaming: feeding an event recording longer than memory into a network, chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from ..engine import Network, Population
from ..errors import DatasetError
from ..neurons.sources import SpikeSource
from .events import DEFAULT_START, MICROSECOND, event_ids, source_size
from .runner import replace_source


def chunked(events, chunk_size: int) -> Iterator[np.ndarray]:
    """Consecutive pieces of ``chunk_size`` events of ``events``, read one at a time.

    ``events`` is anything that slices lazily: an array opened with ``np.load(path,
    mmap_mode="r")`` or ``np.memmap``, or an h5py dataset, so only one piece is in memory.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise DatasetError(f"chunked: chunk_size must be a positive integer, got {chunk_size!r}")
    for begin in range(0, len(events), chunk_size):
        yield np.asarray(events[begin:begin + chunk_size])


def stream(net: Network, chunks: Iterable[np.ndarray], sensor_size: Sequence[int], *,
           input: Population | str = "input", polarity: str = "keep", start: float = DEFAULT_START,
           duration: float | None = None, backend: str = "numba", progress: bool = False) -> int:
    """Feed a long event stream, given as time-ordered chunks of tonic events, into ``net``.

    Each chunk (a structured array, see :func:`chunked`) replaces the spikes of the ``input``
    source population and the network runs up to the chunk's last event, so memory holds one
    chunk at a time whatever the stream's length (events sharing the last event's time step
    wait for the next chunk). Events map to neurons as in :func:`from_tonic`; an event at ``t``
    us is sent ``start + t * 1e-6`` s after the network's time when ``stream`` is called.
    Timestamps must not decrease, within or across chunks
    (:class:`~ranvier.errors.DatasetError` names the chunk otherwise).

    The run ends when the last event has been sent, or at ``duration`` s after the stream
    began if that is later; events after ``duration`` are not read. Returns the number of
    events sent. ``progress`` shows a bar over chunks.
    """
    dt = net.dt
    population = net[input] if isinstance(input, str) else input
    n = source_size(sensor_size, polarity)
    if n != population.n:
        raise DatasetError(f"stream: sensor_size {tuple(sensor_size)} ({polarity} polarity) gives {n} neurons, "
                           f"input population {population.name!r} has {population.n}")
    if not np.isfinite(start) or start < dt * (1 - 1e-6):
        raise DatasetError(f"stream: start must be at least dt = {dt:g} s, got {start!r}")
    origin = net.step
    end = None if duration is None else origin + int(round(duration / dt))
    from tqdm.auto import tqdm

    original = population.model
    pending_times = np.zeros(0)
    pending_ids = np.zeros(0, dtype=np.int64)
    latest = -np.inf
    sent = 0

    def send(times: np.ndarray, ids: np.ndarray, until: int) -> None:
        """Emit ``times``/``ids`` (s) and run the network up to step ``until``."""
        nonlocal sent
        if until <= net.step:
            return
        replace_source(population, SpikeSource(times, ids, n=population.n))
        net.run((until - net.step) * dt, backend=backend)
        sent += len(times)

    try:
        for number, chunk in enumerate(tqdm(chunks, desc="chunks", unit="chunk", disable=not progress)):
            t_us, ids = event_ids(chunk, sensor_size, polarity, "error", f"stream chunk {number}")
            if not len(t_us):
                continue
            if t_us[0] < latest:
                raise DatasetError(f"stream chunk {number}: its first timestamp {t_us[0]:g} us is earlier than "
                                   f"the previous chunk's last, {latest:g} us")
            latest = t_us[-1]
            times = np.concatenate([pending_times, origin * dt + start + t_us * MICROSECOND])
            ids = np.concatenate([pending_ids, ids])
            grid = np.rint(times / dt).astype(np.int64)
            # an event at grid step g is emitted in step g - 1: running to step `last - 1` sends every
            # event before the last one's step; those at its step may have company in the next chunk
            last = int(grid[-1]) if end is None else min(int(grid[-1]), end + 1)
            now = grid < last
            send(times[now], ids[now], last - 1)
            later = (grid >= last) & (grid <= (last if end is None else end))
            pending_times, pending_ids = times[later], ids[later]
            if end is not None and grid[-1] > end:
                break
        final = int(np.rint(pending_times[-1] / dt)) if len(pending_times) else net.step
        send(pending_times, pending_ids, final if end is None else end)
    finally:
        replace_source(population, original)
    return sent
