"""Parameter sweeps on Dask: ``ranvier.sweep(fn, grid, client=None)``.

Every point of ``grid`` becomes one Dask task that calls ``fn(**point)``. Without a client the
sweep starts a local cluster (one single-threaded worker process per core, at most
``n_workers``) and closes it afterwards; a scheduler address (``"tcp://host:8786"``) or a
``distributed.Client`` runs it on a cluster that already exists, such as one started on an
HPC system with dask-jobqueue (``docs/sweep.md``).

A point whose ``fn`` raises, returns something that cannot be pickled, runs past ``timeout=``
seconds or kills its worker is reported in its own row (``row["error"]``, with the parameters
beside it) and the other points go on. A point whose worker died (killed, out of memory, node
lost) is submitted again up to ``retries`` times. At most one point runs per worker thread at a
time, so a dying worker takes only its own point with it. Ctrl-C (``KeyboardInterrupt``) during
a sweep returns the points finished so far; ``results=path`` also writes every finished point to
a JSON lines file as it arrives (:func:`load_results` reads it back).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import threading
import time
import traceback
import types
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SweepError

#: a worker-side outcome: ("ok", value) or ("error", message)
_Outcome = tuple[str, Any]


class SweepResults(list):
    """One row (a dict) per grid point, in grid order: the point's parameters, then ``fn``'s
    result (its items when it returned a mapping, else under ``"result"``), then ``"error"``
    (``None``, or the message of the exception it raised), then ``"attempts"``.
    ``interrupted`` is True when Ctrl-C stopped the sweep: the rows are then those of the points
    that had finished, still in grid order."""

    interrupted: bool = False

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The rows of points whose ``fn`` raised or whose worker kept dying."""
        return [row for row in self if row["error"] is not None]

    def column(self, name: str) -> np.ndarray:
        """One column as an array; rows without it (failed points) hold NaN."""
        if not any(name in row for row in self):
            raise KeyError(f"no column {name!r}; the columns are {sorted({key for row in self for key in row})}")
        return np.array([row.get(name, np.nan) for row in self])


def _jsonable(value: Any) -> Any:
    """``value`` for a JSON line: numpy scalars and arrays as numbers and lists, anything else as its repr."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return {"__repr__": repr(value)}


def load_results(path: str | os.PathLike) -> SweepResults:
    """The rows a sweep with ``results=path`` wrote, in grid order (those of finished points
    only when it was interrupted). Each line of the file is one finished point: a JSON object
    with ``"index"`` (its place in the grid) and ``"row"`` (its row; numpy values as numbers and
    lists, values JSON cannot hold as ``{"__repr__": "..."}``). A last line cut short by a crash
    is skipped."""
    rows: dict[int, dict[str, Any]] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise SweepError(f"sweep: cannot read the results file {os.fspath(path)!r} ({error})") from None
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
            rows[int(entry["index"])] = dict(entry["row"])
        except (ValueError, KeyError, TypeError) as error:
            if number == len(lines):
                break  # a line cut short as the process died
            raise SweepError(f"sweep: {os.fspath(path)!r} line {number} is not a sweep result ({error})") from None
    return SweepResults(rows[index] for index in sorted(rows))


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


def _call(fn: Callable[..., Any], point: dict[str, Any]) -> _Outcome:
    """``fn(**point)``, its exception turned into a message."""
    try:
        value = fn(**point)
    except BaseException as error:  # noqa: BLE001 - a failing point is reported, never lost with the others
        frames = traceback.format_exception(type(error), error, error.__traceback__)
        return "error", f"{type(error).__name__}: {error}\n{''.join(frames[-3:])}".rstrip()
    try:
        # a value that cannot travel back would fail the whole gather: it fails this point instead
        import cloudpickle

        cloudpickle.dumps(value)
    except Exception as error:  # noqa: BLE001
        return "error", f"the result cannot be pickled to return it ({type(error).__name__}: {error})"
    if isinstance(value, Mapping):
        taken = [name for name in value if name in point or name in ("error", "attempts")]
        if taken:
            return "error", (f"the result names {', '.join(map(repr, taken))}, which the row holds itself (the "
                             "point's parameters, 'error' and 'attempts'); return it under another name")
    return "ok", value


def _evaluate(fn: Callable[..., Any], point: dict[str, Any], timeout: float | None = None) -> _Outcome:
    """Run on a worker: ``fn(**point)``; with ``timeout``, in a thread given that many seconds.
    A point over it is ("timeout", {"message", "worker"}): the thread cannot be stopped, so the
    sweep restarts that worker."""
    if timeout is None:
        return _call(fn, point)
    box: list[_Outcome] = []
    thread = threading.Thread(target=lambda: box.append(_call(fn, point)), name="ranvier-sweep-point", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive() or not box:
        try:
            from distributed import get_worker

            worker = get_worker().address
        except (ImportError, ValueError):
            worker = None
        return "timeout", {"message": f"timed out: still running after timeout={timeout:g} s", "worker": worker}
    return box[0]


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
        import dask

        workers = n_workers or max(1, min(os.cpu_count() or 1, 4))
        # a task is given up at its worker's first death: the sweep's own retries (and the row's
        # "attempts") count the deaths, instead of Dask running a killing point on 4 workers in turn
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
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


#: seconds a cluster that had workers may be without any before the remaining points fail
NO_WORKER_SECONDS = 60.0
#: seconds the sweep's own local cluster may be without any worker before it is started again
REBUILD_SECONDS = 10.0
#: seconds a worker that joined during the sweep waits before it counts as a free slot
_SETTLE = 1.0
#: seconds between looks at the running points
_POLL = 0.25


#: worker address -> when a sweep first saw it (kept across sweeps: a worker restarted at the end
#: of one sweep is still starting at the beginning of the next)
_FIRST_SEEN: dict[str, float] = {}


def _seen(nthreads: Mapping[str, int], now: float) -> dict[str, float]:
    """When each worker of ``nthreads`` was first seen; forgets workers gone for a minute."""
    for address, since in list(_FIRST_SEEN.items()):
        if address not in nthreads and now - since > 60.0:
            del _FIRST_SEEN[address]
    for address in nthreads:
        _FIRST_SEEN.setdefault(address, now)
    return {address: _FIRST_SEEN[address] for address in nthreads}


def _backstop(timeout: float) -> float:
    """Seconds after submission at which the sweep itself gives up on a point (when its worker
    cannot even report the timeout, e.g. ``fn`` holds the GIL in compiled code)."""
    return 2 * timeout + 30.0


def _restart(client, workers: Iterable[str | None]) -> str:
    """Restart ``workers`` (to stop a timed-out point's thread); a note when that is impossible."""
    addresses = [worker for worker in workers if worker is not None]
    if not addresses:
        return ""
    try:
        client.restart_workers(addresses, timeout=30, raise_for_error=True)
    except Exception as error:  # noqa: BLE001 - a cluster without nannies cannot restart workers
        return f"; its worker could not be restarted and may still be busy ({type(error).__name__}: {error})"
    return "; its worker was restarted"


def sweep(fn: Callable[..., Any], grid: Mapping[str, Iterable[Any]] | Sequence[Mapping[str, Any]], client=None,
          retries: int = 2, n_workers: int | None = None, progress: bool = False,
          connect_timeout: float = 20.0, timeout: float | None = None,
          results: str | os.PathLike | None = None) -> SweepResults:
    """Call ``fn(**point)`` for every point of ``grid`` on Dask; one row per point, in grid order.

    ``grid`` maps parameter names to the values to try (every combination runs) or is a list
    of points. ``client``: ``None`` starts a local cluster of ``n_workers`` processes (default:
    the cores, at most 4) for this sweep; a scheduler address or a ``distributed.Client`` uses
    that cluster. ``fn`` must be importable or picklable by cloudpickle, and should return a
    mapping of result names to numbers (or any picklable value). A point whose worker died is
    submitted again up to ``retries`` times. ``timeout`` (s) bounds each point's run: a point
    over it fails in its row ("timed out") and its worker is restarted. ``results``: a path to
    which every finished row is written as one JSON line as it arrives (:func:`load_results`).
    Ctrl-C returns the rows finished so far (``results.interrupted``). ``progress`` shows a
    bar of finished points; ``connect_timeout`` (s) bounds the wait for a scheduler address.
    """
    if not callable(fn):
        raise SweepError(f"sweep: fn must be callable, got {fn!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise SweepError(f"sweep: retries must be an integer >= 0, got {retries!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                or not math.isfinite(timeout) or timeout <= 0):
        raise SweepError(f"sweep: timeout must be a positive number of seconds or None, got {timeout!r}")
    if n_workers is not None and (isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1):
        raise SweepError(f"sweep: n_workers must be an integer >= 1 or None, got {n_workers!r}")
    points = grid_points(grid)
    sink = None
    if results is not None:
        try:
            sink = open(results, "w")  # noqa: SIM115 - written as points finish, closed at the end
        except OSError as error:
            raise SweepError(f"sweep: cannot write the results file {os.fspath(results)!r} ({error})") from None
    if not points:
        if sink is not None:
            sink.close()
        return SweepResults()
    from distributed import wait
    from distributed.scheduler import KilledWorker

    try:
        client, owned = _connect(client, n_workers, connect_timeout)
    except BaseException:
        if sink is not None:
            sink.close()
        raise
    token = uuid.uuid4().hex[:8]
    rows: list[dict[str, Any] | None] = [None] * len(points)
    attempts = [0] * len(points)
    queue = deque(range(len(points)))
    running: dict[Any, tuple[int, float]] = {}  # future -> (point, when submitted)
    interrupted = False

    def finish(index: int, outcome: _Outcome) -> None:
        rows[index] = row = _row(points[index], outcome, attempts[index])
        if sink is not None:
            sink.write(json.dumps({"index": index, "row": row}, default=_jsonable) + "\n")
            sink.flush()
        if bar is not None:
            bar.update(1)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(points), unit="point", desc="sweep")
    try:
        if owned:  # the workers of a cluster just started have finished starting
            _FIRST_SEEN.update(dict.fromkeys(client.nthreads(), -math.inf))
        no_worker_since, had_workers, rebuilds = None, False, 0
        while queue or running:
            now = time.monotonic()
            nthreads = client.nthreads()
            seen = _seen(nthreads, now)
            # one point per worker thread: a worker that dies takes only its own point with it; a
            # worker that just joined is given a moment to finish starting (a nanny whose new
            # worker dies while starting stops restarting it)
            slots = sum(threads for address, threads in nthreads.items() if now - seen[address] >= _SETTLE)
            while queue and len(running) < max(1, slots):
                index = queue.popleft()
                attempts[index] += 1
                future = client.submit(_evaluate, fn, points[index], timeout, pure=False,
                                       key=f"ranvier-sweep-{token}-{index}-{attempts[index]}")
                running[future] = (index, time.monotonic())
            try:
                done, _ = wait(list(running), timeout=_POLL, return_when="FIRST_COMPLETED")
            except TimeoutError:  # nothing finished in this look
                done = ()
            for future in done:
                index, _ = running.pop(future)
                try:
                    outcome = future.result()
                except KilledWorker as error:
                    if attempts[index] <= retries:
                        queue.appendleft(index)
                        continue
                    outcome = ("error", f"worker died {attempts[index]} times running this point ({error})")
                except Exception as error:  # noqa: BLE001 - Dask lost the task: this point fails, not the sweep
                    outcome = ("error", f"the task failed in Dask ({type(error).__name__}: {error})")
                finally:
                    future.release()  # the result is here: Dask must not compute it again if its worker dies
                if outcome[0] == "timeout":
                    outcome = ("error", outcome[1]["message"] + _restart(client, [outcome[1]["worker"]]))
                finish(index, outcome)
            done = ()
            if timeout is not None:
                now = time.monotonic()
                late = [future for future, (_, since) in running.items() if now - since > _backstop(timeout)]
                if late:
                    keys = {future.key for future in late}
                    workers = [worker for worker, tasks in client.processing().items() if keys & set(tasks)]
                    client.cancel(late)
                    note = _restart(client, workers)
                    for future in late:
                        index, since = running.pop(future)
                        finish(index, ("error", f"timed out: no answer {now - since:.0f} s after it was submitted "
                                                f"(timeout={timeout:g} s){note}"))
            if nthreads or not (queue or running):
                no_worker_since, had_workers = None, had_workers or bool(nthreads)
                continue
            no_worker_since = now if no_worker_since is None else no_worker_since
            waited = time.monotonic() - no_worker_since
            if owned and waited > REBUILD_SECONDS and rebuilds < 3:
                # every worker of the sweep's own cluster is gone and none came back (their nannies
                # failed): start the cluster again; the points in flight run again, not counted as attempts
                cluster = client.cluster
                client.close()
                cluster.close()
                client, _ = _connect(None, n_workers, connect_timeout)
                for index, _ in running.values():
                    attempts[index] -= 1
                    queue.appendleft(index)
                running.clear()
                _FIRST_SEEN.update(dict.fromkeys(client.nthreads(), -math.inf))
                no_worker_since, rebuilds = None, rebuilds + 1
            elif (owned or had_workers) and waited > NO_WORKER_SECONDS:
                client.cancel(list(running))
                reason = ("error", f"no Dask worker was alive for {NO_WORKER_SECONDS:g} s")
                for index, _ in running.values():
                    finish(index, reason)
                for index in queue:
                    attempts[index] += 1
                    finish(index, reason)
                queue.clear()
                running.clear()
    except KeyboardInterrupt:
        interrupted = True
        try:
            client.cancel(list(running))
        except Exception:  # noqa: BLE001, S110 - the finished points are returned whatever the cluster does
            pass
    finally:
        if bar is not None:
            bar.close()
        if sink is not None:
            sink.close()
        if owned:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
    found = SweepResults(row for row in rows if row is not None)
    found.interrupted = interrupted
    if interrupted:
        warnings.warn(f"sweep interrupted: returning the {len(found)} of {len(points)} points that finished"
                      + (f" (also in {os.fspath(results)!r})" if results is not None else ""),
                      RuntimeWarning, stacklevel=2)
    for point, row in zip(points, rows, strict=True):
        if row is None or row["error"] is None:
            continue
        shown = {name: row[name] for name in point}
        warnings.warn(f"sweep point {shown} failed: {row['error'].splitlines()[0]}", RuntimeWarning, stacklevel=2)
    return found


class _CallableModule(types.ModuleType):
    """Importing this module sets the package attribute ``ranvier.sweep`` to the module, so the
    module itself answers ``ranvier.sweep(fn, grid)`` by calling :func:`sweep`."""

    def __call__(self, fn: Callable[..., Any], grid, client=None, **options: Any) -> SweepResults:
        return sweep(fn, grid, client=client, **options)


sys.modules[__name__].__class__ = _CallableModule
