"""Shared pieces of the CUBA benchmark scripts: model constants, CLI, statistics, output.

Every CUBA script (the Brian 2 and NEST peers here, ``benchmarks/ranvier_cuba.py``) runs in
its own interpreter and virtual environment, so this module depends on numpy and the
standard library only.

The network is Brian 2's CUBA example: N leaky integrate-and-fire neurons, 80 % excitatory,
exponentially decaying current-based synapses, Bernoulli connectivity with p = K/N, so each
neuron receives on average K inputs.  Weights are scaled by 80/K so that the total input per
neuron does not depend on K.
"""

import argparse
import json
import resource
import sys

import numpy as np

#: Time step and synaptic delay, in seconds.
DT = 0.1e-3
DELAY = 0.1e-3
#: Membrane and synaptic time constants, in seconds.
TAU_M = 20e-3
TAU_E = 5e-3
TAU_I = 10e-3
#: Refractory period, in seconds.
T_REF = 5e-3
#: Threshold, reset and resting (leak reversal) potentials, in volts.
V_T = -50e-3
V_R = -60e-3
E_L = -49e-3
#: Fraction of the neurons that are excitatory.
EXC_FRACTION = 0.8


def n_exc(n):
    """Number of excitatory neurons in a CUBA network of ``n`` neurons."""
    return int(EXC_FRACTION * n)


def weights(k):
    """Excitatory and inhibitory weights in volts for mean in-degree ``k``."""
    return 1.62e-3 * 80.0 / k, -9.0e-3 * 80.0 / k


def argument_parser(description):
    """Argument parser with the options common to all CUBA scripts."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, default=4000, help="number of neurons")
    parser.add_argument("--k", type=float, default=80.0, help="mean in-degree")
    parser.add_argument("--duration", type=float, default=1.0, help="biological time in s")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    return parser


def spike_statistics(times, ids, n, duration):
    """Spike count, mean rate and mean ISI coefficient of variation.

    ``times`` (seconds) and ``ids`` are the spikes of the whole run, starting at t = 0;
    ``ids`` must identify neurons uniquely across populations.

    - ``rate_hz`` = total spikes / ``n`` / ``duration``.
    - ``isi_cv`` = mean, over the neurons with at least 3 spikes, of std(ISI) / mean(ISI),
      with the population standard deviation (ddof = 0); ``None`` if no neuron has 3 spikes.
    """
    times = np.asarray(times, dtype=np.float64)
    ids = np.asarray(ids, dtype=np.int64)
    spikes = int(times.size)
    order = np.lexsort((times, ids))
    times, ids = times[order], ids[order]
    same = ids[1:] == ids[:-1]
    isi, owner = np.diff(times)[same], ids[1:][same]
    _, neuron, count = np.unique(owner, return_inverse=True, return_counts=True)
    keep = count >= 2  # ISIs of neurons with at least 3 spikes
    cv = None
    if keep.any():
        mean = np.bincount(neuron, weights=isi) / count
        std = np.sqrt(np.bincount(neuron, weights=(isi - mean[neuron]) ** 2) / count)
        cv = float(np.mean(std[keep] / mean[keep]))
    return {"spikes": spikes, "rate_hz": spikes / n / duration, "isi_cv": cv}


def peak_rss_mb(children=False):
    """Peak resident set size of this process so far, in MiB (Linux reports KiB).

    With ``children``, the largest peak of its terminated child processes instead.
    """
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


def emit(record):
    """Print ``record`` as the single JSON line on stdout that the benchmark driver reads."""
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
