"""Kuramoto phase oscillators and their vector-valued form, artificial Kuramoto oscillatory neurons."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..engine.distributions import Uniform
from ..engine.model import ParameterValue, ValueModel
from ..errors import ModelError

_TWO_PI = 2.0 * np.pi


def order_parameter(phases: np.ndarray) -> float:
    """Kuramoto's order parameter ``r = |mean_j exp(i theta_j)|`` (0: incoherent, 1: in phase)."""
    return float(np.abs(np.mean(np.exp(1j * np.asarray(phases, dtype=np.float64)))))


class Kuramoto(ValueModel):
    r"""Kuramoto (1975) phase oscillators, with Sakaguchi's phase lag and an external drive.

    .. math::

        \frac{d\theta_i}{dt} = \omega_i + u_i + \sum_j w_{ij} \sin(\theta_j - \theta_i - \alpha)

    ``omega`` is the natural frequency (rad/s), ``lag`` the phase lag alpha (rad) and ``u_i`` the
    input reaching port ``"drive"`` (rad/s; spike counts or values through projections). The
    coupling reaches port ``"coupling"`` from oscillators, whose output is the two channels
    ``(cos theta, sin theta)``: a projection with weights ``w_ij`` delivers
    ``C_i = sum_j w_ij cos theta_j`` and ``S_i = sum_j w_ij sin theta_j``, and
    ``sum_j w_ij sin(theta_j - theta_i - alpha) = S_i cos(theta_i + alpha) - C_i sin(theta_i + alpha)``.
    All-to-all coupling ``K / n`` is Kuramoto's mean-field model (``networks.kuramoto``).

    Each update is an explicit Euler step of the population's ``dt`` with the coupling of the
    outputs published before it. Phases are kept in ``[0, 2 pi)``; with ``pulses=True`` an
    oscillator whose phase passes ``2 pi`` emits a spike, so oscillators can drive spiking
    populations through ordinary projections.

    State: ``theta`` (rad), ``order`` (the population's order parameter
    ``r = |mean_j exp(i theta_j)|``, the same in every column; ``net.record(pop, "order")``
    records it once), and the output rows ``cos_theta``, ``sin_theta``. Initial phases are
    uniform on ``[0, 2 pi)`` unless ``init`` says otherwise.
    """

    population_variables = ("order",)

    def __init__(self, omega: ParameterValue = 0.0, lag: ParameterValue = 0.0, pulses: bool = False) -> None:
        super().__init__()
        self._check_finite(omega=omega, lag=lag)
        self.emits_pulses = bool(pulses)
        self.parameters = {"omega": omega, "lag": lag}

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("theta", "order", "cos_theta", "sin_theta")

    @property
    def output_rows(self) -> tuple[int, ...]:
        return (2, 3)

    @property
    def pulses(self) -> bool:
        return self.emits_pulses

    def ports(self, n: int) -> dict[str, tuple[int, int]]:
        return {"coupling": (n, 2), "drive": (n, 1)}

    def initial_state(self) -> dict[str, ParameterValue]:
        return {"theta": Uniform(0.0, _TWO_PI), "order": 0.0, "cos_theta": 0.0, "sin_theta": 0.0}

    def derive(self, state: np.ndarray) -> None:
        theta = np.mod(state[0].astype(np.float64), _TWO_PI)
        state[0] = theta
        self._outputs(state, theta)

    @staticmethod
    def _outputs(state: np.ndarray, theta: np.ndarray) -> None:
        cos_theta, sin_theta = np.cos(theta), np.sin(theta)
        state[1] = np.hypot(cos_theta.mean(), sin_theta.mean())
        state[2] = cos_theta
        state[3] = sin_theta

    def advance(self, state: np.ndarray, inputs: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray],
                dt: float) -> np.ndarray | None:
        theta = state[0].astype(np.float64)
        coupling_cos, coupling_sin = inputs["coupling"]
        shifted = theta + params["lag"]
        velocity = params["omega"] + inputs["drive"][0] + coupling_sin * np.cos(shifted) \
            - coupling_cos * np.sin(shifted)
        advanced = theta + dt * velocity
        crossed = advanced >= _TWO_PI
        theta = np.mod(advanced, _TWO_PI)
        state[0] = theta
        self._outputs(state, theta)
        return crossed if self.emits_pulses else None


class AKOrN(ValueModel):
    r"""Artificial Kuramoto oscillatory neurons (Miyato et al., ICLR 2025): unit vectors on a sphere.

    Each unit is a vector ``x_i`` of ``dim`` components with ``|x_i| = 1``:

    .. math::

        \frac{dx_i}{dt} = \Omega_i x_i + P_{x_i}\Big(c_i + \sum_j w_{ij} x_j\Big), \qquad
        P_x(y) = y - \langle y, x\rangle x

    ``Omega_i`` is the antisymmetric natural-frequency matrix: it rotates each pair of components
    ``(x_0, x_1), (x_2, x_3), ...`` at ``omega_i`` rad/s (an odd last component does not rotate).
    The coupling reaches port ``"coupling"`` (``dim`` channels, from AKOrN units), the conditional
    stimulus ``c_i`` port ``"stimulus"`` (``dim`` channels). The tangent projection ``P_x`` keeps
    only the part of the input that turns ``x_i``; each update is an Euler step followed by
    renormalisation onto the sphere. With ``dim = 2`` and no stimulus this is Kuramoto's model:
    ``x_i = (cos theta_i, sin theta_i)``.

    State: the output rows ``x0 ... x{dim-1}`` and ``order = |mean_i x_i|``. Initial vectors are
    drawn uniformly on the sphere (from the network's seed) unless ``init`` says otherwise.
    """

    population_variables = ("order",)

    def __init__(self, dim: int = 4, omega: ParameterValue = 0.0) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 2:
            raise ModelError(f"AKOrN: dim must be an integer >= 2, got {dim!r}")
        self._check_finite(omega=omega)
        self.dim = int(dim)
        self.parameters = {"omega": omega}

    @property
    def state_names(self) -> tuple[str, ...]:
        return (*(f"x{d}" for d in range(self.dim)), "order")

    @property
    def output_rows(self) -> tuple[int, ...]:
        return tuple(range(self.dim))

    def ports(self, n: int) -> dict[str, tuple[int, int]]:
        return {"coupling": (n, self.dim), "stimulus": (n, self.dim)}

    def initial_state(self) -> dict[str, ParameterValue]:
        # normal components, normalised by ``derive``, are uniform on the sphere
        from ..engine.distributions import Normal

        return {**{f"x{d}": Normal(0.0, 1.0) for d in range(self.dim)}, "order": 0.0}

    def derive(self, state: np.ndarray) -> None:
        vectors = state[:self.dim].astype(np.float64)
        norms = np.linalg.norm(vectors, axis=0)
        if np.any(norms == 0):
            raise ModelError(f"AKOrN: unit {int(np.flatnonzero(norms == 0)[0])} has the zero vector as state")
        self._store(state, vectors / norms)

    def _store(self, state: np.ndarray, vectors: np.ndarray) -> None:
        state[:self.dim] = vectors
        state[self.dim] = np.linalg.norm(vectors.mean(axis=1))

    def advance(self, state: np.ndarray, inputs: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray],
                dt: float) -> np.ndarray | None:
        x = state[:self.dim].astype(np.float64)
        drive = inputs["coupling"] + inputs["stimulus"]
        tangent = drive - np.sum(drive * x, axis=0) * x
        rotation = np.zeros_like(x)
        pairs = self.dim // 2
        omega = params["omega"]
        rotation[0:2 * pairs:2] = -omega * x[1:2 * pairs:2]
        rotation[1:2 * pairs:2] = omega * x[0:2 * pairs:2]
        moved = x + dt * (rotation + tangent)
        self._store(state, moved / np.linalg.norm(moved, axis=0))
        return None
