"""Kuramoto phase oscillators and their vector-valued form, artificial Kuramoto oscillatory neurons."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..engine.distributions import Normal, Uniform
from ..engine.model import ParameterValue, ValueModel, fill_row, floor, row_sum, select, sin_cos, sqrt
from ..engine.plausibility import warn_if_implausible
from ..errors import ModelError

_TWO_PI = 2.0 * np.pi


def order_parameter(phases: np.ndarray) -> float:
    """Kuramoto's order parameter ``r = |mean_j exp(i theta_j)|`` (0: incoherent, 1: in phase)."""
    return float(np.abs(np.mean(np.exp(1j * np.asarray(phases, dtype=np.float64)))))


# Kuramoto: state rows, constant rows, input rows (port "coupling": cos, sin; port "drive")
_THETA, _ORDER, _COS_THETA, _SIN_THETA = range(4)
_OMEGA, _LAG, _DT = range(3)
_COUPLING_COS, _COUPLING_SIN, _DRIVE = range(3)


def _kuramoto_step(state, consts, inputs, i, c, k, key):
    """One explicit Euler step of oscillator ``i``; returns 1 when its phase passed 2 pi."""
    theta = np.float64(state[_THETA, i])
    sin_shifted, cos_shifted = sin_cos(theta + consts[_LAG, c])
    velocity = (consts[_OMEGA, c] + inputs[_DRIVE, i] + inputs[_COUPLING_SIN, i] * cos_shifted
                - inputs[_COUPLING_COS, i] * sin_shifted)
    advanced = theta + consts[_DT, c] * velocity
    wrapped = advanced - _TWO_PI * floor(advanced / _TWO_PI)
    state[_THETA, i] = wrapped
    sin_theta, cos_theta = sin_cos(wrapped)
    state[_COS_THETA, i] = cos_theta
    state[_SIN_THETA, i] = sin_theta
    return select(advanced >= _TWO_PI, 1, 0)


def _kuramoto_finish(state, consts):
    """The order parameter ``r = |mean_j (cos theta_j, sin theta_j)|``, in every column."""
    n = state.shape[1]
    mean_cos = row_sum(state, _COS_THETA) / n
    mean_sin = row_sum(state, _SIN_THETA) / n
    fill_row(state, _ORDER, sqrt(mean_cos * mean_cos + mean_sin * mean_sin))


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
    outputs published before it (sines and cosines from the model language's ``sin_cos``).
    Phases are kept in ``[0, 2 pi)``; with ``pulses=True`` an
    oscillator whose phase passes ``2 pi`` emits a spike, so oscillators can drive spiking
    populations through ordinary projections.

    State: ``theta`` (rad), ``order`` (the population's order parameter
    ``r = |mean_j exp(i theta_j)|``, the same in every column; ``net.record(pop, "order")``
    records it once), and the output rows ``cos_theta``, ``sin_theta``. Initial phases are
    uniform on ``[0, 2 pi)`` unless ``init`` says otherwise.
    """

    population_variables = ("order",)
    step = staticmethod(_kuramoto_step)
    finish = staticmethod(_kuramoto_finish)

    def __init__(self, omega: ParameterValue = 0.0, lag: ParameterValue = 0.0, pulses: bool = False) -> None:
        super().__init__()
        self._check_finite(omega=omega, lag=lag)
        warn_if_implausible(type(self).__name__, "omega", omega, "frequency")  # rad/s: the range is wide enough
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

    def constants(self, params: Mapping[str, np.ndarray], dt: float) -> np.ndarray:
        omega, lag = np.broadcast_arrays(params["omega"], params["lag"])
        return np.stack([omega, lag, np.full(omega.shape, dt)]).astype(np.float64)

    def derive(self, state: np.ndarray) -> None:
        theta = np.mod(state[_THETA].astype(np.float64), _TWO_PI)
        state[_THETA] = theta
        state[_SIN_THETA], state[_COS_THETA] = sin_cos(theta)
        _kuramoto_finish(state, None)


_AKORN_OMEGA, _AKORN_DT = range(2)


def _akorn_step(state, consts, inputs, i, c, k, key):
    """Unit ``i``: an Euler step on the sphere, then renormalisation (rows ``x0 .. x{dim-1}``, ``order``).

    ``x_d + dt (Omega x + drive - <drive, x> x)_d`` with ``drive = coupling + stimulus``; the
    rotation turns the pairs ``(x_0, x_1), (x_2, x_3), ...`` (an odd last component does not
    turn). Each pair is read before it is written, and the moved components wait in the
    consumed coupling rows of ``inputs`` until their norm is known.
    """
    dim = state.shape[0] - 1
    along = 0.0
    for d in range(dim):
        along = along + (inputs[d, i] + inputs[dim + d, i]) * np.float64(state[d, i])
    omega = consts[_AKORN_OMEGA, c]
    dt = consts[_AKORN_DT, c]
    squared = 0.0
    for d in range(0, dim, 2):
        x_d = np.float64(state[d, i])
        drive_d = inputs[d, i] + inputs[dim + d, i]
        if d + 1 < dim:
            x_next = np.float64(state[d + 1, i])
            drive_next = inputs[d + 1, i] + inputs[dim + d + 1, i]
            moved_d = x_d + dt * (drive_d - along * x_d - omega * x_next)
            moved_next = x_next + dt * (drive_next - along * x_next + omega * x_d)
            inputs[d + 1, i] = moved_next
            squared = squared + moved_d * moved_d + moved_next * moved_next
        else:
            moved_d = x_d + dt * (drive_d - along * x_d)
            squared = squared + moved_d * moved_d
        inputs[d, i] = moved_d
    scale = 1.0 / sqrt(squared)
    for d in range(dim):
        state[d, i] = inputs[d, i] * scale
    return 0


def _akorn_finish(state, consts):
    """``order = |mean_i x_i|``, in every column."""
    dim = state.shape[0] - 1
    n = state.shape[1]
    squared = 0.0
    for d in range(dim):
        mean = row_sum(state, d) / n
        squared = squared + mean * mean
    fill_row(state, dim, sqrt(squared))


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
    step = staticmethod(_akorn_step)
    finish = staticmethod(_akorn_finish)

    def __init__(self, dim: int = 4, omega: ParameterValue = 0.0) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 2:
            raise ModelError(f"AKOrN: dim must be an integer >= 2, got {dim!r}")
        self._check_finite(omega=omega)
        warn_if_implausible(type(self).__name__, "omega", omega, "frequency")  # rad/s
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
        return {**{f"x{d}": Normal(0.0, 1.0) for d in range(self.dim)}, "order": 0.0}

    def constants(self, params: Mapping[str, np.ndarray], dt: float) -> np.ndarray:
        omega = np.asarray(params["omega"], dtype=np.float64)
        return np.stack([omega, np.full(omega.shape, dt)])

    def derive(self, state: np.ndarray) -> None:
        vectors = state[:self.dim].astype(np.float64)
        norms = np.linalg.norm(vectors, axis=0)
        if np.any(norms == 0):
            raise ModelError(f"AKOrN: unit {int(np.flatnonzero(norms == 0)[0])} has the zero vector as state")
        # only units off the sphere: a unit the step left there keeps its bits, so a run cut in two
        # (each run derives at its start) gives the same states as one
        off = np.abs(norms - 1.0) > 4 * self.dim * np.finfo(state.dtype).eps
        state[:self.dim, off] = vectors[:, off] / norms[off]
        _akorn_finish(state, None)
