"""The spike raster of a run: every spike with the step that fired it, read from the network's spike monitors.

A per-step hardware time (:mod:`ranvier.hardware.steps`) needs to know which neurons fired at each
step, not only how many spikes a run held. The spikes of a population are known step by step when
one of its spike monitors (``net.record(population, "spikes")``, made before the run) holds all of
them: as many as the run counted for the population (``net.stats``; a monitor made after a first
run, or of some neurons only, holds fewer).

The raster is complete when every spiking population with outgoing spike synapses is known step
by step (one that never fired is, recorded or not); a population without outgoing synapses needs
no record (its spikes cost only spike-out work on its own cores, spread over the steps when
unrecorded). Otherwise :func:`spike_raster` says which population is missing, and hardware
estimates fall back to the average step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SpikeRaster:
    """Spikes step by step over the ``steps`` counted steps of a run.

    ``spikes`` maps a population to ``(steps, ids)``: for each of its spikes, the index of the step
    that fired it (0 is the first counted step) and the neuron, sorted by step. Populations
    without outgoing synapses appear only when they were recorded.
    """

    steps: int
    spikes: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)


def _complete_record(net, name: str, counted: int):
    """The spike monitor of population ``name`` holding all of its ``counted`` spikes, or None."""
    for monitor in net.spike_monitors:
        if monitor.population.name == name and monitor.num_spikes == counted:
            return monitor
    return None


def spike_raster(net, senders: set[str]) -> tuple[SpikeRaster | None, str]:
    """The run's spike raster from ``net``'s spike monitors, and ``""``; or None and why it is incomplete.

    ``senders`` names the populations with outgoing spike synapses, which must be recorded.
    """
    stats = net.stats
    if getattr(net, "poisson_inputs", ()):
        names = ", ".join(repr(drive.name) for drive in net.poisson_inputs)
        return None, f"the Poisson drive(s) {names} are drawn inside their targets, spike by spike unrecorded"
    first = net.step - stats.steps
    spikes = {}
    for name in net.populations:
        counted = int(stats.spikes_by_population.get(name, 0))
        monitor = _complete_record(net, name, counted)
        if monitor is None and counted == 0:
            spikes[name] = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))  # silent: nothing to record
            continue
        if monitor is None:
            if name in senders:
                return None, (f"population {name!r} has outgoing synapses but no spike monitor holding its every "
                              f"spike (net.record({name!r}, 'spikes') before the run)")
            continue
        steps = np.asarray(monitor.steps, dtype=np.int64) - first
        if len(steps) and (steps.min() < 0 or steps.max() >= stats.steps):
            return None, f"population {name!r}: its spike monitor holds steps outside the counted run"
        order = np.argsort(steps, kind="stable")
        spikes[name] = (steps[order], np.asarray(monitor.ids, dtype=np.int64)[order])
    return SpikeRaster(int(stats.steps), spikes), ""
