"""Recordings as `Neo <https://neuralensemble.org/neo/>`_ objects, for Elephant and the rest of the field.

::

    import elephant.statistics
    import ranvier as rv

    net = rv.networks.cuba(n=4000, seed=1)
    spikes = net.record(net["exc"], "spikes")
    v = net.record(net["exc"], "v", ids=[0, 1, 2], every=1e-3)
    net.run(1.0)
    trains = spikes.to_neo()                 # list of neo.SpikeTrain, one per recorded neuron, in s
    signal = v.to_neo()                      # neo.AnalogSignal in V, one channel per recorded neuron
    elephant.statistics.cv(elephant.statistics.isi(trains[0]))

A spike train holds one neuron's spike times (s) from ``t_start = 0`` to ``t_stop``, the
network's time at the conversion (``net.t``), annotated with its ``population`` and neuron
``id``. A state recording becomes an :class:`neo.AnalogSignal` sampled every ``every`` seconds
from the first sample time, with the units of its variable: volts for a LIF's ``v`` and its
voltage-equivalent currents ``I_<receptor>``, the declared unit of an ``Equations`` variable,
dimensionless otherwise (``unit=`` overrides). neo and quantities are imported only here; they
come with ``pip install 'ranvier[neo]'`` (with elephant).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ._extras import load as _load

neo = _load("neo", "ranvier.neo_io", "neo")
pq = _load("quantities", "ranvier.neo_io", "neo")

__all__ = ["analog_signal", "segment", "spike_trains", "unit_of"]


def spike_trains(monitor, t_stop: float | None = None, ids: Iterable[int] | None = None) -> list:
    """One ``neo.SpikeTrain`` per neuron of ``monitor`` (a :class:`~ranvier.engine.monitors.SpikeMonitor`).

    ``ids`` defaults to the neurons the monitor records (every neuron of the population unless
    ``record(..., ids=)`` chose some), including those that did not spike (empty trains), in id
    order. ``t_stop`` (s) defaults to the network's time now.
    """
    population = monitor.population
    t_stop = float(population.network.t if t_stop is None else t_stop)
    if ids is None:
        ids = monitor.ids_recorded if monitor.ids_recorded is not None else np.arange(population.n)
    times, spike_ids = monitor.times, monitor.ids
    if len(times) and times.max() > t_stop * (1 + 1e-12):
        from .errors import RecordingError

        raise RecordingError(f"population {population.name!r}: t_stop {t_stop:g} s is before the last spike "
                             f"({times.max():g} s)")
    order = np.argsort(spike_ids, kind="stable")
    sorted_ids, sorted_times = spike_ids[order], times[order]
    trains = []
    for neuron in np.asarray(list(ids), dtype=np.int64):
        start, stop = np.searchsorted(sorted_ids, [neuron, neuron + 1])
        trains.append(neo.SpikeTrain(sorted_times[start:stop], units="s", t_start=0.0 * pq.s, t_stop=t_stop * pq.s,
                                     name=f"{population.name}[{int(neuron)}]", population=population.name,
                                     id=int(neuron)))
    return trains


def unit_of(population, variable: str) -> str:
    """The unit (a quantities name) of ``population``'s state ``variable``: see the module docstring."""
    from .engine.monitors import variable_unit

    text = variable_unit(population, variable)
    if text in ("", "radian"):
        return "rad" if text else "dimensionless"
    if text == "volt":
        return "V"
    try:
        pq.Quantity(1.0, text)
    except (LookupError, ValueError, SyntaxError, TypeError, AttributeError):
        return "dimensionless"
    return text


def analog_signal(monitor, unit: str | None = None):
    """A ``neo.AnalogSignal`` of ``monitor`` (a :class:`~ranvier.engine.monitors.StateMonitor`):
    samples by recorded neuron, ``sampling_period`` the monitor's ``every``, ``t_start`` its first
    sample time, in ``unit`` (default :func:`unit_of` the variable). A multi-channel variable
    gives one signal channel per (channel, neuron), with ``channel`` and ``id`` array annotations."""
    population = monitor.population
    t, values = monitor.t, monitor.values
    ids = np.asarray(monitor.ids, dtype=np.int64)
    channel = np.zeros(len(ids), dtype=np.int64)
    if values.ndim == 3:
        channels = values.shape[1]
        values = values.reshape(len(t), -1)
        channel, ids = np.repeat(np.arange(channels), len(ids)), np.tile(ids, channels)
    period = monitor.every_steps * population.network.dt
    t_start = float(t[0]) if len(t) else period
    return neo.AnalogSignal(values, units=unit or unit_of(population, monitor.variable), sampling_period=period * pq.s,
                            t_start=t_start * pq.s, name=f"{population.name}.{monitor.variable}",
                            population=population.name, variable=monitor.variable,
                            array_annotations={"id": ids, "channel": channel})


def segment(monitors: Iterable, name: str = "ranvier run", t_stop: float | None = None):
    """A ``neo.Segment`` holding the spike trains of every SpikeMonitor and the signal of every
    StateMonitor in ``monitors``."""
    from .engine.monitors import SpikeMonitor, StateMonitor

    result = neo.Segment(name=name)
    for monitor in monitors:
        if isinstance(monitor, SpikeMonitor):
            result.spiketrains.extend(spike_trains(monitor, t_stop=t_stop))
        elif isinstance(monitor, StateMonitor):
            result.analogsignals.append(analog_signal(monitor))
        else:
            raise TypeError(f"segment: expected SpikeMonitor or StateMonitor, got {type(monitor).__name__}")
    return result
