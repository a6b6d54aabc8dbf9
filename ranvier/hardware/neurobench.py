"""The ranvier twin of a feed-forward snnTorch network, for checks against NeuroBench.

An ``nn.Sequential`` of bias-free ``nn.Linear`` layers, each followed by ``snn.Leaky`` with
``reset_mechanism="zero"``, is the same network as ranvier LIF populations with a delta
receptor (``tau_syn={"in": 0}``), ``v_rest = v_reset = 0``, ``t_ref = 0``, ``v_th`` the
threshold and ``tau_m = -dt / ln(beta)``, so ``v <- beta v + W x`` in both. A synapse exists
for every nonzero weight (NeuroBench counts those). snnTorch passes a layer's spikes on in the
same step; a ranvier projection delays by one step, and a source's earliest spike is at
``t = dt``, so input step ``t`` is sent at step ``t + 1``, layer ``L`` (from 1) of ranvier
spikes ``L + 1`` steps after snnTorch's, and a run of ``T + depth`` steps covers the ``T``
steps of snnTorch (the last layer's spikes feed nothing, so their step does not matter).

torch and snnTorch are imported by the caller, never here: the functions take the layers'
weights as numpy arrays.
"""

from __future__ import annotations

import math

import numpy as np

from ..engine.connectivity import FromArrays
from ..engine.network import Network
from ..engine.plausibility import unchecked
from ..errors import HardwareError
from ..neurons.lif import LIF
from ..neurons.sources import SpikeSource


def leaky_twin(weights: list[np.ndarray], beta: float, threshold: float, inputs: np.ndarray,
               dt: float = 1e-3) -> Network:
    """A ranvier network equal to Linear/Leaky layers with ``weights`` (each ``(out, in)``).

    ``inputs`` is one sample's binary input spikes, ``(T, n_in)``; they become a
    ``SpikeSource`` named ``"input"``; layer ``i`` is population ``"layer{i}"``.
    """
    if not 0 < beta < 1:
        raise HardwareError(f"leaky_twin: beta must be in (0, 1), got {beta!r}")
    inputs = np.asarray(inputs)
    if inputs.ndim != 2 or not np.isin(inputs, (0, 1)).all():
        raise HardwareError(f"leaky_twin: inputs must be binary spikes of shape (T, n_in), got {inputs.shape}")
    net = Network(dt=dt, seed=0)
    steps, ids = np.nonzero(inputs)
    previous = net.population(SpikeSource(times=(steps + 1) * dt, ids=ids, n=inputs.shape[1]), name="input")
    with unchecked():  # snntorch's units: threshold 1, not 1 V
        lif = LIF(tau_m=-dt / math.log(beta), v_rest=0.0, v_th=threshold, v_reset=0.0, t_ref=0.0, tau_syn={"in": 0.0})
    for index, matrix in enumerate(weights):
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.shape[1] != previous.n:
            raise HardwareError(f"leaky_twin: layer {index} takes {matrix.shape[1]} inputs, the layer before "
                                f"has {previous.n} neurons")
        layer = net.population(lif, matrix.shape[0], name=f"layer{index}")
        post, pre = np.nonzero(matrix)
        net.connect(previous, layer, FromArrays(pre, post, weight=matrix[post, pre]), delay=dt)
        previous = layer
    return net
