"""The hybrid ANN-SNN: a low-rate ANN initialises the state of an SNN that runs at high resolution."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..connect import Bernoulli, FromArrays, OneToOne
from ..engine import Network
from ..engine.model import Model
from ..errors import ProjectionError
from ..init import Normal
from ..neurons import LIF, Rate
from ..neurons.rate import _input_features


def hybrid(ann: Any, source: Model, ann_dt: float = 50e-3, dt: float = 1e-3, input_weights: np.ndarray | None = None,
           tau_m: float = 20e-3, t_ref: float = 0.0, seed: int | None = None) -> Network:
    r"""A hybrid ANN-SNN (Aydin et al. 2024, "A Hybrid ANN-SNN Architecture for Low-Power and
    Low-Latency Visual Perception"): the ANN runs once every ``ann_dt`` on the input's spike
    counts of the window and sets the membrane potentials of the SNN, which then integrates the
    events at every ``dt`` until the next ANN update.

    Populations: ``"input"`` (the event ``source``, e.g. from ``datasets.from_tonic``), ``"ann"``
    (``Rate(ann, dt=ann_dt)``: input spike counts -> one value per SNN neuron) and ``"snn"``: LIF
    neurons in threshold units (``v_rest = v_reset = 0``, ``v_th = 1``, delta synapses, membrane
    time constant ``tau_m``):

    .. math::

        v_i(t_n) = \mathrm{ann}(c)_i \ \text{at each ANN update } t_n = n\,\Delta_{ann}, \qquad
        v_i(t + dt) = v_i(t) e^{-dt/\tau_m} + \sum_j W_{ij} s_j(t)

    ``input_weights`` ``(n_snn, n_input)`` are the SNN's event weights ``W`` (threshold units per
    spike); by default a sparse random matrix with 10 % connectivity and weights of
    ``N(0, 0.1)``. The SNN's spikes are its high-rate predictions between ANN updates.
    """
    net = Network(dt=dt, seed=seed)
    inputs = net.population(source, name="input")
    features = _input_features(ann)
    if features is not None and features != inputs.n:
        raise ProjectionError(f"hybrid: the ANN takes {features} input features, the source has {inputs.n} neurons")
    ann_population = net.population(Rate(ann, dt=ann_dt, n_in=inputs.n), name="ann")
    n_snn = ann_population.n
    lif = LIF(tau_m=tau_m, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=t_ref, tau_syn={"in": 0.0})
    snn = net.population(lif, n=n_snn, name="snn")
    net.connect(inputs, ann_population, OneToOne(), weight=1.0, receptor="input")
    net.connect(ann_population, snn, OneToOne(), weight=1.0, receptor="v")
    if input_weights is None:
        net.connect(inputs, snn, Bernoulli(0.1), weight=Normal(0.0, 0.1))
    else:
        weights = np.asarray(input_weights, dtype=np.float64)
        post, pre = np.nonzero(weights)
        net.connect(inputs, snn, FromArrays(pre, post), weight=weights[post, pre])
    return net

