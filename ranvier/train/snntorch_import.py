"""Build an engine network from an snnTorch model: nn.Sequential of nn.Linear and snn.Leaky or snn.Synaptic.

snnTorch 1.0 (``snntorch/_neurons/leaky.py``, ``synaptic.py``) updates, per step ``t``, with
``reset[t] = H(mem[t-1] - threshold)`` and ``reset_mechanism="zero"``::

    Leaky:    mem[t] = beta (1 - reset[t]) mem[t-1] + x[t]
    Synaptic: syn[t] = alpha syn[t-1] + x[t];  mem[t] = (1 - reset[t]) (beta mem[t-1] + syn[t])
    spk[t]   = H(mem[t] - threshold)

Mapping onto ranvier's LIF (units: snnTorch's dimensionless membrane becomes volts):

* ``beta = exp(-dt / tau_m)``, ``alpha = exp(-dt / tau_syn)``, ``v_rest = v_reset = 0``,
  ``v_th`` the next float above ``threshold`` (``H`` is 1 only above 0: snnTorch spikes where
  ``mem > threshold``, a LIF where ``v >= v_th``; :func:`ranvier.neurons.lif.spiking_above`).
* Leaky: a delta receptor ``"in"`` takes the weights; ranvier's reset to 0 followed by
  ``v = beta * 0 + x`` in the next step is snnTorch's zero reset, so ``t_ref = 0``.
* Synaptic: ``beta mem + alpha syn[t-1] + x[t]`` is a delta receptor ``"in"`` (weight ``w``) plus a
  current receptor ``"syn"`` with ``tau_syn`` (weight ``w alpha / P``, ``P`` the exact propagator
  of :func:`ranvier.neurons.lif._propagator`, so ``P I = alpha syn``), as
  :mod:`ranvier.neurons.discrete_synaptic` builds it (the NIR loader too). snnTorch zeroes ``mem``
  (input included) in the step after a spike and keeps ``syn``: one refractory step, during
  which ranvier also keeps the currents.
* ``nn.Linear`` biases arrive from a ``"bias"`` clock neuron that spikes in every step, with
  weight ``b``, delayed so they start when the layer's first input does.

Every projection delays by one step, so layer ``l`` (1-based) of the engine network spikes
in step ``t + l`` where snnTorch's spikes in step ``t``; :func:`from_snntorch` returns the layers'
names and ``simulate`` output can be shifted by ``l``.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import connect
from ..engine.network import Network
from ..engine.plausibility import unchecked
from ..errors import TrainingError
from ..neurons.discrete_synaptic import _discrete_synaptic
from ..neurons.lif import LIF, spiking_above
from ..neurons.sources import SpikeSource

SUPPORTED = "nn.Sequential of nn.Linear followed by snn.Leaky or snn.Synaptic with reset_mechanism='zero'"


def _decay_to_tau(value, name: str, layer: str, dt: float, n: int) -> np.ndarray:
    decay = np.broadcast_to(np.asarray(torch.as_tensor(value).detach().cpu(), dtype=np.float64), (n,)).copy()
    if np.any(decay <= 0) or np.any(decay >= 1):
        raise TrainingError(f"snnTorch layer {layer!r}: {name} must be in (0, 1) to map onto a time constant, "
                            f"got {decay.min():g}..{decay.max():g}")
    return -dt / np.log(decay)


def _check_neuron(neuron, layer: str) -> None:
    mechanism = getattr(neuron, "reset_mechanism", None)
    if mechanism != "zero":
        raise TrainingError(f"snnTorch layer {layer!r}: reset_mechanism={mechanism!r} is not supported; ranvier's "
                            f"LIF resets to v_reset, which is snnTorch's 'zero'. Supported: {SUPPORTED}")
    if getattr(neuron, "inhibition", False) or getattr(neuron, "state_quant", False) \
            or not getattr(neuron, "reset_delay", True) or float(getattr(neuron, "graded_spikes_factor", 1.0)) != 1:
        raise TrainingError(f"snnTorch layer {layer!r}: inhibition, state_quant, reset_delay=False and graded spikes "
                            f"are not supported. Supported: {SUPPORTED}")


@unchecked()  # snntorch's units: thresholds near 1, not volts
def from_snntorch(model: torch.nn.Module, dt: float = 1e-3, seed: int | None = None) -> tuple[Network, list[str]]:
    """An engine network equivalent to the snnTorch ``model`` and the names of its layers.

    ``model`` is an ``nn.Sequential`` alternating ``nn.Linear`` and ``snn.Leaky``/``snn.Synaptic``
    (module docstring for the mapping). ``dt`` (s) is the step the snnTorch loop stands for.
    The network has a ``SpikeSource`` population ``"input"`` (empty; give spikes to
    :func:`ranvier.train.simulate`) and LIF populations ``"layer1"``, ``"layer2"``, ...; layer
    ``l`` spikes ``l`` steps after snnTorch's.
    """
    import snntorch as snn

    modules = list(model) if isinstance(model, torch.nn.Sequential) else None
    if not modules or len(modules) % 2:
        raise TrainingError(f"from_snntorch: expected {SUPPORTED}, got {type(model).__name__} "
                            f"with {len(modules or [])} modules")
    net = Network(dt=dt, seed=seed)
    first = modules[0]
    if not isinstance(first, torch.nn.Linear):
        raise TrainingError(f"from_snntorch: module 0 is {type(first).__name__}; expected {SUPPORTED}")
    previous = net.population(SpikeSource([], [], n=first.in_features), name="input")
    clock = None
    names = []
    for depth, index in enumerate(range(0, len(modules), 2), start=1):
        linear, neuron = modules[index], modules[index + 1]
        layer = f"layer{depth}"
        if not isinstance(linear, torch.nn.Linear) or not isinstance(neuron, snn.Leaky | snn.Synaptic):
            raise TrainingError(f"from_snntorch: modules {index}, {index + 1} are {type(linear).__name__}, "
                                f"{type(neuron).__name__}; expected {SUPPORTED}")
        if linear.in_features != previous.n:
            raise TrainingError(f"from_snntorch: {layer} takes {linear.in_features} inputs but the layer before "
                                f"has {previous.n} neurons")
        _check_neuron(neuron, layer)
        n = linear.out_features
        tau_m = _decay_to_tau(neuron.beta, "beta", layer, dt, n)
        # snnTorch spikes where mem > threshold, a LIF where v >= v_th
        threshold = spiking_above(np.broadcast_to(np.asarray(torch.as_tensor(neuron.threshold).detach(),
                                                             dtype=np.float64), (n,)), net.dtype)
        if isinstance(neuron, snn.Synaptic):
            lif, targets = _discrete_synaptic(tau_m, _decay_to_tau(neuron.alpha, "alpha", layer, dt, n), dt,
                                              v_rest=0.0, v_th=threshold.copy(), v_reset=0.0, t_ref=dt)
        else:
            lif = LIF(tau_m=tau_m, v_rest=0.0, v_th=threshold.copy(), v_reset=0.0, t_ref=0.0, tau_syn={"in": 0.0})
            targets = {"in": np.ones(n)}
        population = net.population(lif, n=n, name=layer)
        weight = linear.weight.detach().cpu().numpy().astype(np.float64).T  # (pre, post)
        pre, post = np.nonzero(np.ones_like(weight, dtype=bool))
        for receptor, factor in targets.items():
            net.connect(previous, population, connect.FromArrays(pre, post, weight=(weight * factor).ravel()),
                        receptor=receptor)
        if linear.bias is not None and torch.any(linear.bias != 0):
            if clock is None:
                # i_bias far above threshold: spikes in every step from step 0 on
                clock = net.population(LIF(tau_m=dt, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=0.0,
                                           tau_syn={"in": 0.0}, i_bias=10.0), n=1, name="bias")
            bias = linear.bias.detach().cpu().numpy().astype(np.float64)
            for receptor, factor in targets.items():
                net.connect(clock, population, connect.FromArrays(np.zeros(n, dtype=np.int64), np.arange(n),
                                                                  weight=bias * factor, delay=depth * dt),
                            receptor=receptor)
        names.append(layer)
        previous = population
    return net, names
