"""Parameter sweeps on Dask: ``ranvier.sweep(fn, grid, client=None)``.

Every point of ``grid`` becomes one Dask task that calls ``fn(**point)``. Without a client the
sweep starts a local cluster (one single-threaded worker process per core, at most
``n_workers``) and closes it afterwards; a scheduler address (``"tcp://host:8786"``) or a
``distributed.Client`` runs it on a cluster that already exists, such as one started on an
HPC system with dask-jobqueue (``docs/sweep.md``).

A point whose ``fn`` raises is reported in its row (``row["error"]``, with the parameters
beside it) and the other points go on. A point whose worker died (killed, out of memory,
node lost) is rescheduled by Dask, and submitted again up to ``retries`` times when Dask
gives up on it (``KilledWorker``).
"""

from __future__ import annotations

import itertools
import os
import sys
import traceback
import types
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import SweepError

#: a worker-side outcome: ("ok", value) or ("error", message)
_Outcome = tuple[str, Any]


class SweepResults(list):
    """One row (a dict) per grid point, in grid order: the point's parameters, then ``fn``'s
    result (its items when it returned a mapping, else under ``"result"``), then ``"error"``
    (``None``, or the message of the exception it raised), then ``"attempts"``."""

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The rows of points whose ``fn`` raised or whose worker kept dying."""
        return [row for row in self if row["error"] is not None]

    def column(self, name: str) -> np.ndarray:
        """One column as an array; rows without it (failed points) hold NaN."""
        if not any(name in row for row in self):
            raise KeyError(f"no column {name!r}; the columns are {sorted({key for row in self for key in row})}")
        return np.array([row.get(name, np.nan) for row in self])


def grid_points(grid: Mapping[str, Iterable[Any]] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The points of ``grid``: every combination of a mapping of name -> values (the first name
    varies slowest), or a sequence of points given one by one."""
    if isinstance(grid, Mapping):
        names = list(grid)
        if not all(isinstance(name, str) for name in names):
            raise SweepError(f"sweep: grid parameter names must be strings, got {names!r}")
        values = []
        for name in names:
            options = grid[name]
            if isinstance(options, str | bytes) or not isinstance(options, Iterable):
                raise SweepError(f"sweep: grid[{name!r}] must be a sequence of values, got {options!r}")
            values.append(list(options))
        return [dict(zip(names, combination, strict=True)) for combination in itertools.product(*values)]
    if isinstance(grid, Sequence) and not isinstance(grid, str | bytes):
        points = [dict(point) if isinstance(point, Mapping) else None for point in grid]
        if any(point is None for point in points):
            raise SweepError("sweep: a grid given as a sequence must hold one mapping of name -> value per point")
        return points
    raise SweepError(f"sweep: grid must be a mapping of name -> values or a sequence of points, got {grid!r}")


def _evaluate(fn: Callable[..., Any], point: dict[str, Any]) -> _Outcome:
    """Run on a worker: ``fn(**point)``, its exception turned into a message."""
    try:
        value = fn(**point)
    except Exception as error:  # noqa: BLE001 - a failing point is reported, never lost with the others
        frames = traceback.format_exception(type(error), error, error.__traceback__)
        return "error", f"{type(error).__name__}: {error}\n{''.join(frames[-3:])}".rstrip()
    try:
        # a value that cannot travel back would fail the whole gather: it fails this point instead
        import cloudpickle

        cloudpickle.dumps(value)
    except Exception as error:  # noqa: BLE001
        return "error", f"the result cannot be pickled to return it ({type(error).__name__}: {error})"
    return "ok", value


def _row(point: dict[str, Any], outcome: _Outcome, attempts: int) -> dict[str, Any]:
    row = dict(point)
    status, value = outcome
    if status == "ok":
        row.update(value if isinstance(value, Mapping) else {"result": value})
    row["error"] = None if status == "ok" else value
    row["attempts"] = attempts
    return row


def _connect(client, n_workers: int | None, connect_timeout: float):
    """The client to use, and whether the sweep owns it (and its cluster) and must close it."""
    from distributed import Client, LocalCluster

    if client is None:
        workers = n_workers or max(1, min(os.cpu_count() or 1, 4))
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), True
    if isinstance(client, str):
        try:
            return Client(client, timeout=f"{connect_timeout}s"), True
        except OSError as error:
            raise SweepError(f"sweep: cannot reach the Dask scheduler at {client!r} ({error})") from None
    if isinstance(client, Client):
        return client, False
    raise SweepError(f"sweep: client must be None, a scheduler address or a distributed.Client, got {client!r}")


def sweep(fn: Callable[..., Any], grid: Mapping[str, Iterable[Any]] | Sequence[Mapping[str, Any]], client=None,
          retries: int = 2, n_workers: int | None = None, progress: bool = False,
          connect_timeout: float = 20.0) -> SweepResults:
    """Call ``fn(**point)`` for every point of ``grid`` on Dask; one row per point, in grid order.

    ``grid`` maps parameter names to the values to try (every combination runs) or is a list
    of points. ``client``: ``None`` starts a local cluster of ``n_workers`` processes (default:
    the cores, at most 4) for this sweep; a scheduler address or a ``distributed.Client`` uses
    that cluster. ``fn`` must be importable or picklable by cloudpickle, and should return a
    mapping of result names to numbers (or any picklable value). A point whose worker died is
    submitted again up to ``retries`` times after Dask gives up on it. ``progress`` shows a
    bar of finished points; ``connect_timeout`` (s) bounds the wait for a scheduler address.
    """
    if not callable(fn):
        raise SweepError(f"sweep: fn must be callable, got {fn!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise SweepError(f"sweep: retries must be an integer >= 0, got {retries!r}")
    points = grid_points(grid)
    if not points:
        return SweepResults()
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    client, owned = _connect(client, n_workers, connect_timeout)
    token = uuid.uuid4().hex[:8]
    rows: list[dict[str, Any] | None] = [None] * len(points)
    attempts = [0] * len(points)

    def submit(index: int):
        attempts[index] += 1
        return client.submit(_evaluate, fn, points[index], pure=False,
                             key=f"ranvier-sweep-{token}-{index}-{attempts[index]}")

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(points), unit="point", desc="sweep")
    try:
        futures = {submit(index): index for index in range(len(points))}
        pending = as_completed(list(futures))
        for future in pending:
            index = futures.pop(future)
            try:
                outcome = future.result()
            except KilledWorker as error:
                if attempts[index] <= retries:
                    retry = submit(index)
                    futures[retry] = index
                    pending.add(retry)
                    continue
                outcome = ("error", f"worker died {attempts[index]} times running this point ({error})")
            rows[index] = _row(points[index], outcome, attempts[index])
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if owned:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
    results = SweepResults(rows)
    for row in results.failed:
        shown = {name: row[name] for name in points[0]}
        warnings.warn(f"sweep point {shown} failed: {row['error'].splitlines()[0]}", RuntimeWarning, stacklevel=2)
    return results


class _CallableModule(types.ModuleType):
    """Importing this module sets the package attribute ``ranvier.sweep`` to the module, so the
    module itself answers ``ranvier.sweep(fn, grid)`` by calling :func:`sweep`."""

    def __call__(self, fn: Callable[..., Any], grid, client=None, **options: Any) -> SweepResults:
        return sweep(fn, grid, client=client, **options)


sys.modules[__name__].__class__ = _CallableModule
