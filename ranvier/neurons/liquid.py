"""What CfC and LTC networks share: a numpy forward pass over a sequence, and the engine population."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.model import ArrayStep, ValueModel
from ..errors import ModelError
from .arrays import cast_floats, check_sequence_inputs, remembered_step


class LiquidModel(ValueModel):
    """Base of :class:`~ranvier.neurons.CfC` and :class:`~ranvier.neurons.LTC`.

    As a population (``net.population(CfC.from_ncps(m), name="cfc", dt=...)``, no ``n`` needed) its
    units are the network's hidden units: ``n = state_size``, state rows ``h`` (the hidden state) and
    ``output``. Each update runs one step of the model on the input vector that reached port
    ``"input"`` (``n_in`` wide: weighted spike counts or values), with ``elapsed = dt / time_unit``
    (ncps's ``timespans``; ``time_unit=None`` makes every update one unit, ncps's default). Its
    ``output`` row holds the model's output: the whole hidden state for a plain model, and for a
    model with fewer outputs than units (motor neurons of a wiring, ``proj_size``) those outputs in
    units ``0 .. output_size - 1`` and zeros after them.

    A subclass gives its sequence function as ``_sequence`` and its step in two parts: ``_arrange``
    (the float64 weights arranged for stepping, which an engine population computes once) and
    ``_step`` (one step from them, ``(xp, weights, terms, x, h, elapsed) -> (output, new h)``), which
    :meth:`array_step` hands to the backends (see :class:`~ranvier.engine.model.ArrayStep`).
    """

    weights: Any
    _sequence: Any
    _arrange: Any
    _step: Any
    n_in: int
    state_size: int
    output_size: int
    #: seconds of engine time per time unit of the model (``timespans`` of 1); None: one unit per update
    time_unit: float | None = None

    @property
    def size(self) -> int:
        return self.state_size

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("h", "output")

    def ports(self, n: int) -> dict[str, tuple[int, int]]:
        return {"input": (self.n_in, 1)}

    def initial_state(self) -> dict[str, Any]:
        if self.output_size > self.state_size:
            raise ModelError(f"{self!r}: its {self.output_size} outputs do not fit its {self.state_size} units; "
                             "as a population, connect a projection as the readout instead of proj_size")
        return {"h": 0.0, "output": 0.0}

    def advance(self, state: np.ndarray, inputs: Any, params: Any, dt: float) -> None:
        # no input check (forward's): projection weights are finite and the engine checks every state after each update
        self.array_step(state.shape[1], dt).run(state, inputs["input"])
        return None

    def array_step(self, n: int, dt: float) -> ArrayStep:
        """One step of the model over ``dt`` seconds (``elapsed = dt / time_unit``, or 1), on the input row
        ``(1, n_in)`` and the hidden state ``(1, state_size)``."""
        return remembered_step(self, n, dt, lambda: self._make_step(dt))

    def _make_step(self, dt: float) -> ArrayStep:
        elapsed = 1.0 if self.time_unit is None else dt / self.time_unit
        weights, terms = self._stepping_terms(elapsed == 1.0)
        step = self._step

        def function(xp: Any, x: Any, h: Any) -> tuple[Any, Any]:
            return step(xp, weights, terms, x, h, elapsed)

        return ArrayStep(function, self._gather, self._destinations)

    @staticmethod
    def _gather(state: np.ndarray, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return inputs[0:1], state[0:1]

    @staticmethod
    def _destinations(state: np.ndarray, output: np.ndarray, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # rows 0 (h) and 1 (output: the model's outputs, then zeros)
        return state[1:2, 0:output.shape[1]], state[0:1]

    def _stepping_terms(self, unit_time: bool) -> tuple[Any, Any]:
        """The float64 weights and ``_arrange``'s terms, computed once per weights object and kind of elapsed time."""
        weights = self._float64_weights()
        cached = getattr(self, "_terms", None)
        if cached is None or cached[0] is not weights or cached[1] != unit_time:
            cached = self._terms = (weights, unit_time, self._arrange(weights, unit_time))
        return weights, cached[2]

    def _float64_weights(self) -> Any:
        """The weights in float64, cast once per weights object (an engine population calls this every update)."""
        cached = getattr(self, "_weights64", None)
        if cached is None or cached[0] is not self.weights:
            cached = self._weights64 = (self.weights, cast_floats(self.weights, np.float64))
        return cached[1]

    def forward(self, inputs: np.ndarray, timespans: np.ndarray | None = None,
                state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run a whole sequence in numpy (float64): ``inputs`` ``(T, n_in)`` or ``(batch, T, n_in)``.

        Returns ``(outputs, last_state)``, outputs ``(T, out)`` or ``(batch, T, out)``; ``timespans``
        (one elapsed time per sample, default 1) and the initial ``state`` (default zeros) as in ncps.
        """
        batched, spans = check_sequence_inputs(repr(self), self.n_in, inputs, timespans)
        batch = batched.shape[0]
        if state is None:
            h = np.zeros((batch, self.state_size))
        else:
            h = np.asarray(state, dtype=np.float64).reshape(batch, self.state_size)
        outputs, h = type(self)._sequence(np, self._float64_weights(), batched, h, spans)
        if np.ndim(inputs) == 2:
            return outputs[0], h[0]
        return outputs, h
