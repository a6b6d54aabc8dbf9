"""Plots people look at: spike rasters and population rates (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .engine.monitors import SpikeMonitor


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
    """Population rate (Hz per neuron) in bins of ``bin_width`` seconds: ``(bin centres, rates)``."""
    n_bins = max(1, int(np.ceil(duration / bin_width - 1e-9)))
    counts, edges = np.histogram(monitor.times, bins=n_bins, range=(0.0, n_bins * bin_width))
    return (edges[:-1] + edges[1:]) / 2, counts / (monitor.population.n * bin_width)


def raster_and_rate(monitors: Sequence[SpikeMonitor], duration: float, path: str | Path | None = None,
                    title: str = "", bin_width: float = 1e-3, max_neurons: int = 1000):
    """Spike raster (top) and population rates (bottom) of several populations.

    At most ``max_neurons`` neurons per population are drawn in the raster. Saves a PNG when
    ``path`` is given and returns the matplotlib figure.
    """
    plt = _pyplot()
    figure, (raster, rates) = plt.subplots(2, 1, figsize=(9, 6), sharex=True,
                                           gridspec_kw={"height_ratios": [3, 1]})
    offset = 0
    for monitor in monitors:
        shown = min(monitor.population.n, max_neurons)
        keep = monitor.ids < shown
        raster.scatter(monitor.times[keep] * 1e3, monitor.ids[keep] + offset, s=1.0, marker="|",
                       label=monitor.population.name)
        centres, rate = population_rate(monitor, duration, bin_width)
        rates.plot(centres * 1e3, rate, lw=0.8, label=monitor.population.name)
        offset += shown
    raster.set_ylabel("neuron")
    raster.set_ylim(0, max(offset, 1))
    raster.legend(loc="upper right", markerscale=8)
    if title:
        raster.set_title(title)
    rates.set_xlabel("time (ms)")
    rates.set_ylabel(f"rate (Hz, {bin_width * 1e3:g} ms bins)")
    rates.set_xlim(0, duration * 1e3)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure
