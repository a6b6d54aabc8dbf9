"""Expressive Leaky Memory (ELM) neuron (Spieler et al. 2023), written once for numpy and torch.

One ELM neuron has ``n_in`` synapses, ``n_memory`` leaky memory units with per-unit timescales
and a small MLP that integrates synaptic input with memory. Per step ``dt`` (in the model's time
unit: steps of the input stream)::

    s_t  = kappa_s * s_{t-1} + w_s * x_t                       synaptic traces,  kappa_s = exp(-dt / tau_s)
    dm_t = 1.7159 tanh(2/3 MLP([s_t, kappa_m * m_{t-1}]))      nonlinear (two-layer) integration
    m_t  = kappa_m * m_{t-1} + lam (1 - kappa_m) * dm_t        leaky memory,     kappa_m = exp(-dt / tau_m)
    y_t  = W_y m_t + b_y                                       output

Spieler, Rahaman, Martius, Schölkopf & Levina (2023), "The Expressive Leaky Memory Neuron: an
Efficient and Expressive Phenomenological Neuron Model Can Solve Long-Horizon Tasks", ICLR 2024,
with the defaults of the authors' reference implementation: ``tau_s = 5`` steps, ``w_s = 0.5``
(kept non-negative by a ReLU), ``tau_m`` log-spaced over ``[1, 1000]`` steps, ``lam = 5``, an MLP
with one hidden ReLU layer of ``2 n_memory`` units. Long timescales ``tau_m`` are what let the
neuron carry information over hundreds of steps; a LIF membrane forgets within a few ``tau_m``.

How a population of ELM neurons maps inputs to neurons: a population of ``N`` ELM neurons is a
batch of ``N`` neurons sharing one set of weights (:class:`ELMWeights`), each with its own state
``[s, m]`` (``n_in + n_memory`` values) and its own ``n_in`` synapses. Input arrives per neuron
and per synapse, ``x_t`` of shape ``(N, n_in)``: synapse ``k`` of neuron ``i`` receives the summed
events of the presynaptic sources a projection routes to address ``(i, k)`` in that step (a spike
train, a count, or a value). The output ``y_t`` ``(N, n_out)`` is what the population emits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.model import ArrayStep, ValueModel
from ..errors import InputError, ModelError
from .arrays import cast_floats, check_sequence_inputs, remembered_step, time_steps


@dataclass(frozen=True)
class ELMWeights:
    """An ELM neuron's parameters: ``w_s`` ``(n_in,)`` (ReLU applied), ``tau_s`` ``(n_in,)``, ``tau_m``
    ``(n_memory,)`` (both in steps), ``mlp`` ``((W, b), ...)`` in ``nn.Linear`` layout whose first layer
    takes ``[s, kappa_m m]``, the readout ``w_y`` ``(n_out, n_memory)``, ``b_y`` and ``lam``."""

    w_s: Any
    tau_s: Any
    tau_m: Any
    mlp: tuple[tuple[Any, Any], ...]
    w_y: Any
    b_y: Any
    lam: float = 5.0

    @property
    def n_in(self) -> int:
        return int(self.w_s.shape[0])

    @property
    def n_memory(self) -> int:
        return int(self.tau_m.shape[0])


def _relu(xp: Any, x: Any) -> Any:
    return 0.5 * (x + xp.abs(x))


def elm_step(xp: Any, weights: ELMWeights, x_t: Any, state: Any, dt: Any = 1.0) -> tuple[Any, Any]:
    """Advance ELM neurons one step: ``(y_t, new_state)``; ``state`` ``(batch, n_in + n_memory)`` is ``[s, m]``.

    The equations are in the module docstring. ``dt`` is in the unit of ``tau_s`` and ``tau_m``.
    """
    kappa_s = xp.exp(-dt / weights.tau_s)
    kappa_m = xp.exp(-dt / weights.tau_m)
    s, m = state[:, : weights.n_in], state[:, weights.n_in:]
    s = kappa_s * s + _relu(xp, weights.w_s) * x_t
    memory_in = kappa_m * m
    z = xp.concatenate([s, memory_in], 1)
    for index, (weight, bias) in enumerate(weights.mlp):
        z = z @ weight.T + bias
        if index < len(weights.mlp) - 1:
            z = _relu(xp, z)
    delta = 1.7159 * xp.tanh(z * (2.0 / 3.0))
    m = memory_in + weights.lam * (1.0 - kappa_m) * delta
    return m @ weights.w_y.T + weights.b_y, xp.concatenate([s, m], 1)


def elm_sequence(xp: Any, weights: ELMWeights, inputs: Any, state: Any, dt: Any = 1.0) -> tuple[Any, Any]:
    """Run ELM neurons over ``inputs`` ``(batch, T, n_in)``; return outputs ``(batch, T, n_out)`` and the last state."""
    outputs = []
    for x_t in time_steps(inputs):
        output, state = elm_step(xp, weights, x_t, state, dt)
        outputs.append(output)
    return xp.stack(outputs, 1), state


class ELM(ValueModel):
    """Expressive Leaky Memory neuron: weights, a numpy forward pass and a population.

    ``ELM(n_in, n_out, n_memory=100, ...)`` draws weights as the paper initialises them
    (``nn.Linear``'s uniform fan-in rule); the equations and how a population maps inputs to
    neurons are in :mod:`ranvier.neurons.elm`. :class:`ranvier.train.ELMModule` trains the same
    neuron in torch (``ELMModule(model.weights)``).

    As an engine population of ``N`` neurons (``net.population(ELM(...), n=N, dt=...)``) its port
    ``"input"`` is ``N * n_in`` wide: synapse ``k`` of neuron ``i`` is target ``i * n_in + k``. State
    rows ``s0 .. s{n_in-1}``, ``m0 .. m{n_memory-1}`` and the output rows ``y0 .. y{n_out-1}`` (the
    population's ``n_out`` output channels). Each update is one step of :func:`elm_step` with
    ``dt / time_unit`` time units (``time_unit=None``: one unit, one input step, per update).
    """

    #: seconds of engine time per time unit of ``tau_s`` and ``tau_m``; None: one unit per update
    time_unit: float | None = None

    def __init__(self, n_in: int, n_out: int, n_memory: int = 100, hidden: int | None = None,
                 mlp_layers: int = 1, tau_s: float = 5.0, tau_m_range: tuple[float, float] = (1.0, 1000.0),
                 w_s: float = 0.5, lam: float = 5.0, seed: int | None = None,
                 weights: ELMWeights | None = None):
        for name, value in (("n_in", n_in), ("n_out", n_out), ("n_memory", n_memory), ("mlp_layers", mlp_layers)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ModelError(f"ELM: {name} must be a positive integer; got {value!r}")
        low, high = tau_m_range
        if not (0 < low <= high and np.isfinite(high)) or not tau_s > 0:
            raise ModelError(f"ELM: time constants must be positive and finite; got tau_s={tau_s!r}, "
                             f"tau_m_range={tau_m_range!r}")
        if weights is None:
            rng = np.random.default_rng(seed)
            hidden = 2 * n_memory if hidden is None else hidden
            sizes = [n_in + n_memory] + [hidden] * mlp_layers + [n_memory]
            mlp = tuple(_linear(rng, sizes[k], sizes[k + 1]) for k in range(len(sizes) - 1))
            w_y, b_y = _linear(rng, n_memory, n_out)
            weights = ELMWeights(w_s=np.full(n_in, w_s, np.float32), tau_s=np.full(n_in, tau_s, np.float32),
                                 tau_m=np.geomspace(low, high, n_memory).astype(np.float32), mlp=mlp, w_y=w_y,
                                 b_y=b_y, lam=float(lam))
        super().__init__()
        self.weights = weights

    @property
    def n_in(self) -> int:
        return self.weights.n_in

    @property
    def state_size(self) -> int:
        return self.weights.n_in + self.weights.n_memory

    def __repr__(self) -> str:
        return f"ELM(n_in={self.n_in}, n_memory={self.weights.n_memory}, n_out={self.weights.w_y.shape[0]})"

    def forward(self, inputs: np.ndarray, dt: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Run a sequence in numpy (float64), ``inputs`` ``(T, n_in)`` or ``(batch, T, n_in)``, from zero state."""
        if not (np.isfinite(dt) and dt > 0):
            raise InputError(f"{self!r}: dt must be positive and finite; got {dt!r}")
        batched, _ = check_sequence_inputs(repr(self), self.n_in, inputs, None)
        weights = self._float64_weights()
        outputs, state = elm_sequence(np, weights, batched, np.zeros((batched.shape[0], self.state_size)), dt)
        if np.ndim(inputs) == 2:
            return outputs[0], state[0]
        return outputs, state

    def _float64_weights(self) -> ELMWeights:
        """The weights in float64, cast once per weights object (an engine population calls this every update)."""
        cached = getattr(self, "_weights64", None)
        if cached is None or cached[0] is not self.weights:
            cached = self._weights64 = (self.weights, cast_floats(self.weights, np.float64))
        return cached[1]

    @property
    def n_out(self) -> int:
        return int(self.weights.w_y.shape[0])

    @property
    def state_names(self) -> tuple[str, ...]:
        return (*(f"s{k}" for k in range(self.n_in)), *(f"m{k}" for k in range(self.weights.n_memory)),
                *(f"y{k}" for k in range(self.n_out)))

    @property
    def output_rows(self) -> tuple[int, ...]:
        return tuple(range(self.state_size, self.state_size + self.n_out))

    def ports(self, n: int) -> dict[str, tuple[int, int]]:
        return {"input": (n * self.n_in, 1)}

    def advance(self, state: np.ndarray, inputs: Any, params: Any, dt: float) -> None:
        self.array_step(state.shape[1], dt).run(state, inputs["input"])
        return None

    def array_step(self, n: int, dt: float) -> ArrayStep:
        """One step of ``n`` neurons over ``dt`` seconds, on their inputs ``(n, n_in)`` and their state rows
        transposed, ``(n, n_in + n_memory + n_out)`` (the step reads the first ``n_in + n_memory``)."""
        return remembered_step(self, n, dt, lambda: self._make_step(dt))

    def _make_step(self, dt: float) -> ArrayStep:
        elapsed = 1.0 if self.time_unit is None else dt / self.time_unit
        weights = self._float64_weights()
        size = self.state_size

        def function(xp: Any, x: Any, state: Any) -> tuple[Any, Any]:
            return elm_step(xp, weights, x, state[:, :size], elapsed)

        return ArrayStep(function, self._gather, self._destinations)

    @staticmethod
    def _gather(state: np.ndarray, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = state.shape[1]
        return inputs[0].reshape(n, inputs.shape[1] // n), state.T

    @staticmethod
    def _destinations(state: np.ndarray, output: np.ndarray, memory: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = memory.shape[1]
        return state[size:].T, state[0:size].T


def _linear(rng: np.random.Generator, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """``nn.Linear``'s default initialisation: uniform in ``+-1/sqrt(n_in)``."""
    bound = 1.0 / np.sqrt(n_in)
    return (rng.uniform(-bound, bound, (n_out, n_in)).astype(np.float32),
            rng.uniform(-bound, bound, n_out).astype(np.float32))
