"""The neuron-astrocyte liquid state machine (NALSM) of Ivanov & Michmizos (NeurIPS 2021).

A liquid of LIF neurons (80 % excitatory) on a 3-D grid, connected with distance-dependent
probability ``C exp(-(D / lambda)^2)`` (Maass, Natschlaeger & Markram 2002), receives an event
stream. STDP learns on every liquid and input synapse; one astrocyte integrates the spikes of the
liquid (weight ``+w_astro``) and of the input (``-w_astro``) with time constant ``tau_astro`` and
sets the rate of the depression that weakens excitation and strengthens inhibition (the paper's
Eq. 7). When the liquid answers its input with more spikes than the astrocyte's balance point, depression
grows and the liquid calms down; with too few, depression shrinks and potentiation takes over. This
self-organises the liquid near a critical branching factor of 1 (the edge of chaos).

Constants follow the authors' code (github.com/combra-lab/NALSM, ``NALSM_RUN_MAIN_SIM_*.py``,
``NALSM_STDP.py``, ``NALSM_ASTRO.py``): dt = 1 ms, potentiation rate 0.15 per trace unit with trace
increments of 0.1 and a 10 ms trace time constant, weight bounds +-3 (their units; ``w_max`` here),
``tau_astro = 100 ms``, ``w_astro = 0.015`` for 1000-neuron liquids, astrocyte bias equal to the
initial depression rate. The astrocyte's output here is that rate divided by the potentiation rate
(1 = balanced), so a spike moves it by ``w_astro / (tau_astro / dt) / 0.15``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..connect import FromArrays
from ..engine import Network, Projection
from ..errors import ProjectionError
from ..neurons import LIF, Astrocyte, SpikeSource
from ..plasticity import STDP
from ..units import ms, mV

#: Maass et al. (2002), p. 2536: C for EE, EI, IE, II connections and the length scale lambda
_C = {("e", "e"): 0.3, ("e", "i"): 0.2, ("i", "e"): 0.4, ("i", "i"): 0.1}
_LAMBDA = 2.0
#: the NALSM's STDP (combra-lab/NALSM ``NALSM_STDP.py``, run files): rate, trace increment, tau
_RATE, _TRACE_STEP, _TAU_STDP = 0.15, 0.1, 10 * ms
_TAU_ASTRO = 100 * ms
_PAPER_W_MAX = 3.0


def _grid(n: int, rng: np.random.Generator) -> np.ndarray:
    side = int(np.ceil(n ** (1 / 3)))
    cells = np.stack(np.meshgrid(np.arange(side), np.arange(side), np.arange(side), indexing="ij"), -1).reshape(-1, 3)
    return cells[np.sort(rng.choice(len(cells), n, replace=False))].astype(np.float64)


def _liquid_synapses(n: int, excitatory: np.ndarray, rng: np.random.Generator, lam: float):
    """Source and target ids of the liquid's synapses, drawn with ``C exp(-(D / lambda)^2)``."""
    positions = _grid(n, rng)
    distance = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    kind = np.where(excitatory, "e", "i")
    c = np.vectorize(lambda a, b: _C[(a, b)])(kind[:, None], kind[None])
    probability = c * np.exp(-(distance / lam) ** 2)
    np.fill_diagonal(probability, 0.0)
    pre, post = np.nonzero(rng.random((n, n)) < probability)
    return pre, post


def nalsm(n_input: int = 288, n_liquid: int = 1000, *, astrocyte: bool = True, weight_scale: float = 1.0,
          w_max: float = 16 * mV, p_input: float = 0.1, w_astro: float | None = None, balance: float | None = None,
          lam: float = _LAMBDA,
          input_source: SpikeSource | None = None, seed: int | None = None) -> Network:
    """A neuron-astrocyte liquid state machine: populations ``"input"``, ``"liquid"`` and ``"astro"``.

    ``input`` is a SpikeSource of ``n_input`` neurons (``input_source``, or a silent one to be
    replaced with :func:`ranvier.datasets.replace_source` or ``run_samples``). The liquid has
    ``n_liquid`` LIF neurons (tau_m 20 ms, threshold 15 mV above rest, 2 ms refractory), the
    first 80 % excitatory. Initial weights are ``weight_scale * w_max / 2`` for excitatory and
    input synapses and ``-weight_scale * w_max / 2`` for inhibitory ones (below 1 a liquid starts
    sub-critical, above it super-critical), all plastic within ``[0, w_max]``
    (``[-w_max, 0]`` inhibitory, ``[-w_max, w_max]`` input), 1 ms delays, dt = 1 ms.

    With ``astrocyte=True`` the astrocyte's output (1 at rest) multiplies the depression of
    excitatory and input synapses and the potentiation of inhibition; ``w_astro`` defaults to
    the paper's ``0.015`` scaled by ``1000 / n_liquid`` (its 0.0075 for 8000 neurons follows
    the same trend). Input spikes move the astrocyte by ``-balance`` times a liquid spike's
    step, so it rests where the liquid fires ``balance`` spikes per input spike. The paper's
    mask weighs both alike (``balance = 1``) for 784 or 2312 inputs into 1000 neurons; with the
    288 inputs of the digit events the default ``balance = n_liquid / 100`` (the same spikes per
    liquid neuron per input spike at any size) settles the branching factor near 1 (measured:
    0.9-1.0 with 200 neurons, ``tests/test_nalsm.py``; 1.05-1.15 with 1000, ``docs/plasticity.md``).
    With ``astrocyte=False`` the same STDP runs with the rate fixed at 1 (the paper's LSM+STDP).
    Projections:
    ``input->liquid:exc``, ``liquid->liquid:exc`` (from excitatory neurons) and
    ``liquid->liquid:inh``; :func:`plastic_projections` lists them.
    """
    for name, value in (("n_input", n_input), ("n_liquid", n_liquid)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 2:
            raise ProjectionError(f"nalsm: {name} must be an integer >= 2, got {value!r}")
    if not np.isfinite(weight_scale) or not 0 <= weight_scale <= 2:
        raise ProjectionError(f"nalsm: weight_scale must be in [0, 2] (initial weights within the bounds), "
                              f"got {weight_scale!r}")
    net = Network(dt=1 * ms, seed=seed)
    rng = np.random.default_rng(net.seed)
    source = input_source if input_source is not None else SpikeSource([], [], n=n_input)
    inputs = net.population(source, name="input")
    lif = LIF(tau_m=20 * ms, v_rest=-65 * mV, v_th=-50 * mV, v_reset=-65 * mV, t_ref=2 * ms,
              tau_syn={"exc": 5 * ms, "inh": 10 * ms})
    liquid = net.population(lif, n=n_liquid, name="liquid",
                            init={"v": np.random.default_rng(net.seed + 1).uniform(-65 * mV, -55 * mV, n_liquid)})
    n_exc = int(round(0.8 * n_liquid))
    excitatory = np.arange(n_liquid) < n_exc
    modulator = None
    if astrocyte:
        w_astro = 0.015 * 1000 / n_liquid if w_astro is None else w_astro
        kick = w_astro / (_TAU_ASTRO / net.dt) / _RATE
        balance = n_liquid / 100 if balance is None else balance
        modulator = net.population(Astrocyte(tau=_TAU_ASTRO, baseline=1.0), n=1, name="astro")
        net.connect(liquid, modulator, FromArrays(np.arange(n_liquid), np.zeros(n_liquid, dtype=int)), weight=kick)
        net.connect(inputs, modulator, FromArrays(np.arange(inputs.n), np.zeros(inputs.n, dtype=int)),
                    weight=-balance * kick)
    rate = _RATE * _TRACE_STEP * w_max / _PAPER_W_MAX  # V per pair at zero lag

    def stdp(low: float, high: float, inhibitory: bool) -> STDP:
        if inhibitory:  # causal pairs strengthen inhibition at the astrocyte's rate, anti-causal weaken it
            return STDP(tau_plus=_TAU_STDP, tau_minus=_TAU_STDP, a_plus=-rate, a_minus=-rate, w_min=low, w_max=high,
                        modulator=modulator, modulates="potentiation")
        return STDP(tau_plus=_TAU_STDP, tau_minus=_TAU_STDP, a_plus=rate, a_minus=rate, w_min=low, w_max=high,
                    modulator=modulator, modulates="depression")

    start = weight_scale * w_max / 2
    pre, post = _liquid_synapses(n_liquid, excitatory, rng, lam)
    from_exc = excitatory[pre]
    input_pre, input_post = np.nonzero(rng.random((inputs.n, n_liquid)) < p_input)
    net.connect(inputs, liquid, FromArrays(input_pre, input_post), weight=start, delay=1 * ms, receptor="exc",
                plasticity=stdp(-w_max, w_max, False))
    net.connect(liquid, liquid, FromArrays(pre[from_exc], post[from_exc]), weight=start, delay=1 * ms,
                receptor="exc", plasticity=stdp(0.0, w_max, False))
    net.connect(liquid, liquid, FromArrays(pre[~from_exc], post[~from_exc]), weight=-start, delay=1 * ms,
                receptor="inh", plasticity=stdp(-w_max, 0.0, True))
    return net


def plastic_projections(net: Network) -> list[Projection]:
    """The projections of ``net`` that learn (to freeze them: ``ranvier.plasticity.freeze``)."""
    return [p for p in net.projections if p.plasticity is not None]


def branching_factor(steps: np.ndarray, ids: np.ndarray, projections: Sequence[Projection] | Projection,
                     window: int = 4) -> float:
    """Descendants per ancestor of a population's spikes (Ivanov & Michmizos 2021, Sec. 3.3).

    For each spike of neuron i in step t, its ancestors are the spikes of i's presynaptic
    neurons in steps ``[t - window, t)`` and its descendants the spikes of i's postsynaptic
    neurons in ``(t, t + window]``, through the recurrent ``projections`` (all from and to the
    population of ``ids``). A spike's ratio is ``descendants / max(ancestors, 1)``; the branching
    factor is the mean over neurons of the mean of their spikes' ratios, as the authors compute
    it (combra-lab/NALSM ``compute_branching_factor.py``, window 4 steps of 1 ms). Below 1 the
    activity dies out (sub-critical), above 1 it grows (super-critical). ``steps`` and ``ids``
    are a SpikeMonitor's ``steps`` and ``ids``; NaN when there are no spikes.
    """
    projections = [projections] if isinstance(projections, Projection) else list(projections)
    steps = np.asarray(steps, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    if not len(steps):
        return float("nan")
    pre_ids = np.concatenate([p.pre_ids for p in projections]).astype(np.int64)
    post_ids = np.concatenate([p.post_ids for p in projections]).astype(np.int64)
    span = int(steps.max() - steps.min()) + 2 * window + 2
    relative = steps - steps.min() + window + 1
    keys = np.sort(ids * span + relative)

    def counted(neighbours_of_source: np.ndarray, neighbours: np.ndarray, low: int, high: int, side: str):
        """Spikes of each spike's neighbours in ``[t + low, t + high)`` (``side`` sets the edge rule)."""
        order = np.argsort(neighbours_of_source, kind="stable")
        by_neuron = np.bincount(neighbours_of_source, minlength=ids.max() + 1)
        ptr = np.concatenate([[0], np.cumsum(by_neuron)])
        linked = neighbours[order]
        size = by_neuron[ids]
        spike = np.repeat(np.arange(len(ids)), size)
        position = np.arange(size.sum()) - np.repeat(np.cumsum(size) - size, size)
        other = linked[ptr[ids][spike] + position]
        base = other * span + relative[spike]
        found = np.searchsorted(keys, base + high, side) - np.searchsorted(keys, base + low, side)
        return np.bincount(spike, weights=found, minlength=len(ids))

    descendants = counted(pre_ids, post_ids, 0, window, "right")
    ancestors = counted(post_ids, pre_ids, -window, 0, "left")
    ratio = descendants / np.maximum(ancestors, 1.0)
    per_neuron = np.bincount(ids, weights=ratio) / np.maximum(np.bincount(ids), 1)
    return float(per_neuron[np.bincount(ids) > 0].mean())


def stream(dataset, indices: Sequence[int], sample_time: float, dt: float = 1 * ms, start: float = 1 * ms,
           sensor_size: Sequence[int] | None = None) -> SpikeSource:
    """The first ``sample_time`` s of each sample of ``dataset``, back to back, as one SpikeSource.

    The NALSM organises its liquid on such a stream (20 ms of each training sample in the
    authors' code, ``INI_SAMPLE_INPUT_DURATION_MS = 20``) before its weights are frozen.
    """
    from ..datasets import event_ids
    from ..datasets.events import MICROSECOND

    sensor_size = dataset.sensor_size if sensor_size is None else sensor_size
    times, neurons = [], []
    for position, index in enumerate(indices):
        events, _ = dataset[index]
        event_times, event_neurons = event_ids(events, sensor_size, "keep", "sort", f"sample {index}")
        seconds = event_times * MICROSECOND
        keep = seconds < sample_time
        times.append(start + position * sample_time + seconds[keep])
        neurons.append(event_neurons[keep])
    size = int(np.prod(sensor_size))
    return SpikeSource(np.concatenate(times) if times else [], np.concatenate(neurons) if neurons else [], n=size)


# ``ranvier.networks.nalsm`` is the builder (the package imports it over this module's name), so
# its helpers are reachable from it too: ``rv.networks.nalsm.branching_factor(...)``.
nalsm.branching_factor = branching_factor
nalsm.plastic_projections = plastic_projections
nalsm.stream = stream
