"""Plots people look at: spike rasters, population rates, state traces and the Kuramoto order
parameter (matplotlib, headless: without a display they draw with Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .engine.monitors import SpikeMonitor, StateMonitor
from .errors import RecordingError


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps") and not _has_display():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def population_rate(monitor: SpikeMonitor, duration: float, bin_width: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Population rate (Hz per neuron) in bins of ``bin_width`` seconds: ``(bin centres, rates)``.

    ``rate = spikes in the bin / (recorded neurons * bin_width)``: per neuron the monitor records
    (``net.record(..., ids=...)`` records some), not per neuron of the population.
    """
    n_bins = max(1, int(np.ceil(duration / bin_width - 1e-9)))
    counts, edges = np.histogram(monitor.times, bins=n_bins, range=(0.0, n_bins * bin_width))
    recorded = monitor.population.n if monitor.ids_recorded is None else np.unique(monitor.ids_recorded).size
    return (edges[:-1] + edges[1:]) / 2, counts / (max(recorded, 1) * bin_width)


def raster_and_rate(monitors: SpikeMonitor | Sequence[SpikeMonitor], duration: float, path: str | Path | None = None,
                    title: str = "", bin_width: float = 1e-3, max_neurons: int = 1000):
    """Spike raster (top) and population rates (bottom) of several populations.

    At most ``max_neurons`` neurons per population are drawn in the raster. Saves a PNG when
    ``path`` is given and returns the matplotlib figure.
    """
    monitors = [monitors] if isinstance(monitors, SpikeMonitor) else list(monitors)
    plt = _pyplot()
    figure, (raster, rates) = plt.subplots(2, 1, figsize=(9, 6), sharex=True,
                                           gridspec_kw={"height_ratios": [3, 1]})
    offset = 0
    for monitor in monitors:
        shown = min(monitor.population.n, max_neurons)
        keep = monitor.ids < shown
        raster.scatter(monitor.times[keep] * 1e3, monitor.ids[keep] + offset, s=1.0, marker="|",
                       label=_shown_label(monitor, shown))
        centres, rate = population_rate(monitor, duration, bin_width)
        rates.plot(centres * 1e3, rate, lw=0.8, label=monitor.population.name)
        offset += shown
    raster.set_ylabel("neuron")
    raster.set_ylim(0, max(offset, 1))
    raster.legend(loc="upper right", markerscale=8)
    title = _with_shown(title, monitors, max_neurons)
    if title:
        raster.set_title(title)
    rates.set_xlabel("time (ms)")
    rates.set_ylabel(f"rate (Hz, {bin_width * 1e3:g} ms bins)")
    rates.set_xlim(0, duration * 1e3)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure


def _shown_label(monitor: SpikeMonitor, shown: int) -> str:
    n = monitor.population.n
    return monitor.population.name if shown == n else f"{monitor.population.name} (first {shown} of {n})"


def _with_shown(title: str, monitors: Sequence[SpikeMonitor], max_neurons: int) -> str:
    """``title``, saying how many neurons the raster shows of how many when it leaves some out."""
    total = sum(m.population.n for m in monitors)
    shown = sum(min(m.population.n, max_neurons) for m in monitors)
    if shown == total:
        return title
    note = f"raster: {shown} of {total} neurons shown (at most the first {max_neurons} of each population)"
    return f"{title}\n{note}" if title else note


def _figure(ax, figsize: tuple[float, float]):
    """The axes to draw on: ``ax`` itself, or those of a new figure."""
    if ax is not None:
        return ax.figure, ax
    return _pyplot().subplots(figsize=figsize)


def _finish(figure, path: str | Path | None):
    if path is not None:
        figure.tight_layout()
        figure.savefig(path, dpi=120)
    return figure


def raster(monitors: SpikeMonitor | Sequence[SpikeMonitor], path: str | Path | None = None, title: str = "",
           max_neurons: int = 1000, ax=None):
    """Spike raster of one or several populations, stacked (time in ms, neuron index).

    At most ``max_neurons`` neurons per population are drawn. Draws on ``ax`` when given,
    saves a PNG when ``path`` is given, and returns the figure.
    """
    monitors = [monitors] if isinstance(monitors, SpikeMonitor) else list(monitors)
    figure, ax = _figure(ax, (9, 4))
    offset = 0
    for monitor in monitors:
        shown = min(monitor.population.n, max_neurons)
        times, ids = monitor.times, monitor.ids
        keep = ids < shown
        ax.scatter(times[keep] * 1e3, ids[keep] + offset, s=1.0, marker="|", label=_shown_label(monitor, shown))
        offset += shown
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("neuron")
    ax.set_ylim(0, max(offset, 1))
    if len(monitors) > 1:
        ax.legend(loc="upper right", markerscale=8)
    title = _with_shown(title, monitors, max_neurons)
    if title:
        ax.set_title(title)
    return _finish(figure, path)


def population_rates(monitors: SpikeMonitor | Sequence[SpikeMonitor], duration: float,
                     path: str | Path | None = None, bin_width: float = 1e-3, title: str = "", ax=None):
    """Population rate of each population, ``spikes / (n * bin_width)`` (Hz per neuron), in
    bins of ``bin_width`` seconds over ``[0, duration)``."""
    monitors = [monitors] if isinstance(monitors, SpikeMonitor) else list(monitors)
    figure, ax = _figure(ax, (9, 3))
    for monitor in monitors:
        centres, rate = population_rate(monitor, duration, bin_width)
        ax.plot(centres * 1e3, rate, lw=0.8, label=monitor.population.name)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel(f"rate (Hz, {bin_width * 1e3:g} ms bins)")
    ax.set_xlim(0, duration * 1e3)
    ax.legend(loc="upper right")
    if title:
        ax.set_title(title)
    return _finish(figure, path)


def state_traces(monitor: StateMonitor, path: str | Path | None = None, title: str = "", max_traces: int = 10,
                 scale: float | None = None, unit: str | None = None, ax=None):
    """Recorded state of up to ``max_traces`` neurons against time (ms).

    Values are multiplied by ``scale`` for display, and the axis says ``unit``. By default a
    voltage (a LIF's ``v`` or ``I_<receptor>``, an ``Equations`` variable in volts) is shown in mV,
    any other variable in its own SI unit (``scale=1, unit="V"`` shows volts). A multi-channel
    variable shows its first channel.
    """
    from .engine.monitors import variable_unit

    if scale is None and unit is None:
        declared = variable_unit(monitor.population, monitor.variable)
        scale, unit = (1e3, "mV") if declared == "volt" else (1.0, declared)
    scale = 1.0 if scale is None else scale
    unit = unit or ""
    figure, ax = _figure(ax, (9, 3))
    values = monitor.values
    if values.ndim == 3:
        values = values[:, 0]
    for column, neuron in list(enumerate(monitor.ids))[:max_traces]:
        ax.plot(monitor.t * 1e3, values[:, column] * scale, lw=0.8, label=f"{monitor.population.name}[{neuron}]")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel(f"{monitor.variable} ({unit})" if unit else monitor.variable)
    if 1 < min(len(monitor.ids), max_traces) <= 10:
        ax.legend(loc="upper right", fontsize="small")
    if title:
        ax.set_title(title)
    return _finish(figure, path)


def order_parameter(monitor: StateMonitor, path: str | Path | None = None, title: str = "", ax=None):
    """Kuramoto order parameter ``R(t) = |(1/N) sum_j exp(i theta_j)|`` of a population, from a
    monitor of its ``"order"`` variable (Kuramoto 1975; Strogatz 2000, Physica D 143): 0 for
    incoherent phases, 1 for full synchrony."""
    if monitor.variable != "order":
        raise RecordingError(f"population {monitor.population.name!r}: order_parameter plots a monitor of "
                             f"'order', got one of {monitor.variable!r}")
    figure, ax = _figure(ax, (9, 3))
    values = monitor.values
    ax.plot(monitor.t * 1e3, values.reshape(len(values), -1)[:, 0], lw=1.0, label=monitor.population.name)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("order parameter R")
    ax.set_ylim(0, 1.02)
    if title:
        ax.set_title(title)
    return _finish(figure, path)
