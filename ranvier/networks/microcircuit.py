"""Potjans & Diesmann (2014): the cell-type specific cortical microcircuit."""

from __future__ import annotations

import numpy as np

from ..engine.connectivity import FixedInDegree, OneToOne
from ..engine.distributions import Normal
from ..engine.network import Network
from ..engine.poisson_input import PoissonInput
from ..errors import PopulationError
from ..neurons.lif import LIF
from ..neurons.sources import PoissonSource
from ..units import ms, mV

#: population names, in the order of the tables below
POPULATIONS = ("L23e", "L23i", "L4e", "L4i", "L5e", "L5i", "L6e", "L6i")
#: neurons per population at full scale (77 169 in all); Potjans & Diesmann 2014, Table 5
FULL_SIZES = (20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948)
#: connection probability, target (row) from source (column); Potjans & Diesmann 2014, Table 5
CONNECTION_PROBABILITY = np.array([
    [0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0.0, 0.0076, 0.0],
    [0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0.0, 0.0042, 0.0],
    [0.0077, 0.0059, 0.0497, 0.1350, 0.0067, 0.0003, 0.0453, 0.0],
    [0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0.0, 0.1057, 0.0],
    [0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.0],
    [0.0548, 0.0269, 0.0257, 0.0022, 0.0600, 0.3158, 0.0086, 0.0],
    [0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252],
    [0.0364, 0.0010, 0.0034, 0.0005, 0.0277, 0.0080, 0.0658, 0.1443],
])
#: external (thalamo-cortical background) inputs per neuron; Potjans & Diesmann 2014, Table 5
EXTERNAL_IN_DEGREE = (1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100)
BACKGROUND_RATE = 8.0  # Hz per external input
PSP_AMPLITUDE = 0.15 * mV  # peak PSP of an excitatory synapse
RELATIVE_INHIBITION = 4.0  # g: inhibitory weights are -g times excitatory ones
TAU_M, TAU_SYN = 10 * ms, 0.5 * ms


def _psp_to_weight(psp: float) -> float:
    """The voltage-equivalent current jump whose PSP peaks at ``psp`` (exponential currents)."""
    ratio = TAU_SYN / TAU_M
    t_peak = TAU_SYN * TAU_M / (TAU_M - TAU_SYN) * np.log(TAU_M / TAU_SYN)
    unit_peak = ratio / (ratio - 1) * (np.exp(-t_peak / TAU_SYN) - np.exp(-t_peak / TAU_M))
    return psp / unit_peak


def in_degrees(scale: float = 1.0) -> np.ndarray:
    """Mean in-degree of each (target, source) pair at full scale, which downscaling keeps.

    Potjans & Diesmann draw ``K = ln(1 - p) / ln(1 - 1 / (N_pre N_post))`` synapses per pair
    (with multapses); per target neuron that is ``K / N_post``.
    """
    sizes = np.asarray(FULL_SIZES, dtype=float)
    pairs = np.outer(sizes, sizes)
    total = np.log(1.0 - CONNECTION_PROBABILITY) / np.log(1.0 - 1.0 / pairs)
    return total / sizes[:, None]


def microcircuit(scale: float = 1.0, seed: int | None = None, dt: float = 0.1 * ms,
                 background: str = "drive") -> Network:
    """Potjans & Diesmann (2014), Cereb. Cortex 24:785, the cortical microcircuit.

    Eight populations of LIF neurons with exponential currents (``tau_m = 10 ms``,
    ``tau_syn = 0.5 ms``, rest and reset at -65 mV, threshold -50 mV, ``t_ref = 2 ms``);
    connection probabilities from Table 5 turned into in-degrees; excitatory weights drawn
    ``Normal(w, 0.1 w)`` with ``w`` giving a 0.15 mV PSP (doubled from L4e to L23e),
    inhibitory ones ``-4`` times that; delays ``Normal(1.5 ms, 0.75 ms)`` (excitatory) and
    ``Normal(0.75 ms, 0.375 ms)`` (inhibitory), redrawn below ``dt``; each neuron gets its
    layer's number ``K_ext`` of 8 Hz Poisson background inputs. With ``background="drive"``
    (default) they are a :class:`~ranvier.connect.PoissonInput` inside each population (each
    neuron draws its ``Poisson(K_ext 8 Hz dt)`` input count per step, no spikes travel; drives
    ``"poisson-><name>:syn"`` in ``net.poisson_inputs``), as NEST's ``poisson_generator``
    sends one multiplicity per step; ``background="sources"`` makes them spikes, one
    ``PoissonSource`` per neuron at the summed rate (populations ``"<name>_bg"``) through
    one-to-one projections of delay ``dt``. Membrane potentials start ``Normal(-58 mV, 10 mV)``.

    ``scale`` shrinks every population and keeps the in-degrees (each neuron still receives
    ~3900 synapses), as the published downscaling with ``K_scaling = 1`` does; at ``scale=1``
    there are 77 169 neurons and ~0.3 G synapses (about 3.3 GB here). At full scale the layer
    rates match the published ones within 11 % (tests/test_microcircuit.py); downscaled, the
    denser connectivity drifts L2/3 and L5 upwards (at 0.1: L2/3e ~2.3 Hz, L5e ~12 Hz).
    Each target receives exactly its mean in-degree from each source population (fixed
    in-degree) where the original draws a fixed total number per pair.

    Populations: ``"L23e"``, ``"L23i"``, ``"L4e"``, ``"L4i"``, ``"L5e"``, ``"L5i"``, ``"L6e"``,
    ``"L6i"`` (and, with ``background="sources"``, their ``"..._bg"`` sources).
    """
    if not 0 < scale <= 1:
        raise PopulationError(f"microcircuit: scale must be in (0, 1], got {scale!r}")
    if background not in ("drive", "sources"):
        raise PopulationError(f"microcircuit: background must be 'drive' or 'sources', got {background!r}")
    net = Network(dt=dt, seed=seed)
    model = LIF(tau_m=TAU_M, v_rest=-65 * mV, v_th=-50 * mV, v_reset=-65 * mV, t_ref=2 * ms,
                tau_syn={"syn": TAU_SYN})
    weight = _psp_to_weight(PSP_AMPLITUDE)
    populations = [
        net.population(model, max(1, int(round(size * scale))), name=name, init={"v": Normal(-58 * mV, 10 * mV)})
        for name, size in zip(POPULATIONS, FULL_SIZES, strict=True)
    ]
    degrees = in_degrees()
    for target_index, target in enumerate(populations):
        for source_index, source in enumerate(populations):
            k = int(round(degrees[target_index, source_index]))
            if k == 0:
                continue
            excitatory = source.name.endswith("e")
            mean = weight * (2.0 if (source.name, target.name) == ("L4e", "L23e") else 1.0)
            mean = mean if excitatory else -RELATIVE_INHIBITION * mean
            low, high = (0.0, np.inf) if excitatory else (-np.inf, 0.0)
            delay = 1.5 * ms if excitatory else 0.75 * ms
            net.connect(source, target, FixedInDegree(k), weight=Normal(mean, 0.1 * abs(mean), low, high),
                        delay=Normal(delay, 0.5 * delay, dt, np.inf))
        if background == "drive":
            net.connect(PoissonInput(BACKGROUND_RATE, EXTERNAL_IN_DEGREE[target_index]), target, weight=weight)
        else:
            sources = PoissonSource(rate=EXTERNAL_IN_DEGREE[target_index] * BACKGROUND_RATE)
            drive = net.population(sources, target.n, name=f"{target.name}_bg")
            net.connect(drive, target, OneToOne(), weight=weight, delay=dt)
    return net
