"""Backends: each executes a lowered network for a stretch of steps.

A backend module provides ``prepare(lowered)`` returning a :class:`Runner`: ``advance(start,
stop) -> reached`` runs min-delay chunks from step ``start`` until ``stop`` or until a spike
buffer needs emptying, leaves the spikes, counters and monitor samples of the stretch in the
lowered arrays and a status code in ``lowered.status``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Collection

from ...errors import BackendError


class Runner:
    """What a backend's runner does; CPU backends work on the lowered host arrays directly."""

    def advance(self, start: int, stop: int) -> int:
        raise NotImplementedError

    def to_host(self, rings: Collection[int] | None = None, states: Collection[int] = ()) -> None:
        """Bring state and ring buffers into the lowered host arrays (a GPU backend copies).

        With ``rings`` (lowered indices), only those populations' rings come and the state of
        ``states`` (lowered indices), with the value populations' outputs and
        what host value populations read and reschedule (their count windows, and their pulse
        schedules where they pulse): what a host value population's update reads and writes when it
        holds its output in the rings of ``rings`` and sets the state of ``states`` (learned weights
        stay where they are).
        """

    def to_device(self, rings: Collection[int] | None = None, states: Collection[int] = ()) -> None:
        """Take up changes made on the host (by callbacks and value populations) before advancing again:
        spiking state, ring buffers and the pulses value populations scheduled (with ``rings`` and
        ``states``, as :meth:`to_host` brought them)."""


_MODULES = {"numpy": "numpy_backend", "numba": "numba_backend", "cuda": "cuda_backend"}


def available() -> dict[str, str]:
    """Backend name -> ``"yes"`` or the reason it cannot run here."""
    status = {"numpy": "yes", "numba": "yes"}
    try:
        from numba import cuda

        simulated = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
        status["cuda"] = "yes" if (simulated or cuda.is_available()) else (
            "no CUDA GPU found (set NUMBA_ENABLE_CUDASIM=1 to run on numba's CUDA simulator)")
    except ImportError as error:  # pragma: no cover - numba always ships numba.cuda
        status["cuda"] = f"numba.cuda unavailable ({error})"
    return status


def prepare(name: str, lowered):
    """The runner of backend ``name`` for ``lowered``."""
    if name not in _MODULES:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(_MODULES)}")
    reason = available()[name]
    if reason != "yes":
        raise BackendError(f"backend {name!r} cannot run here: {reason}")
    module = importlib.import_module(f".{_MODULES[name]}", __name__)
    return module.prepare(lowered)
