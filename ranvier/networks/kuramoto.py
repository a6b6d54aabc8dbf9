"""Kuramoto's mean-field model: all-to-all coupled phase oscillators with Lorentzian frequencies."""

from __future__ import annotations

from ..connect import AllToAll
from ..engine import Network
from ..init import Cauchy
from ..neurons import Kuramoto


def kuramoto(n: int = 1000, coupling: float = 2.0, spread: float = 0.5, seed: int | None = None,
             dt: float = 1e-3, omega_mean: float = 0.0, pulses: bool = False) -> Network:
    r"""``n`` oscillators coupled all-to-all with strength ``coupling / n`` (population ``"osc"``).

    .. math:: \dot\theta_i = \omega_i + \frac{K}{n} \sum_j \sin(\theta_j - \theta_i)

    Natural frequencies ``omega_i`` (rad/s) are drawn from a Lorentzian (Cauchy) distribution
    centred on ``omega_mean`` with half-width ``spread`` (gamma); initial phases are uniform.
    Kuramoto's self-consistency result for this distribution: below ``K_c = 2 gamma`` the
    oscillators stay incoherent (order parameter ``r -> 0`` as ``n`` grows); above it
    ``r = sqrt(1 - K_c / K)`` in the steady state (Kuramoto 1975; Strogatz 2000, Physica D
    143, eq. 4.8). ``dt`` is the Euler step (s).
    """
    net = Network(dt=dt, seed=seed)
    oscillators = net.population(Kuramoto(omega=Cauchy(omega_mean, spread), pulses=pulses), n=n, name="osc")
    net.connect(oscillators, oscillators, AllToAll(), weight=coupling / n, receptor="coupling")
    return net
