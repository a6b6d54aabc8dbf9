"""The result of a hardware estimate: :class:`Report`, with ``table()``, ``to_json()``, ``plot()``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HardwareError
from .cost import CATEGORIES
from .counts import Counts
from .placement import Placement
from .targets import Target


def realtime_text(factor: float) -> str:
    """``factor`` (biological seconds per second on the target) in words that cannot be misread:
    "12.5x faster than real time", "3.2x slower than real time" or "as fast as real time"."""
    if factor == float("inf"):
        return "no measurable time on the target"
    if factor > 0 and "1" in (f"{factor:.3g}", f"{1 / factor:.3g}"):
        return "as fast as real time"
    if factor >= 1:
        return f"{factor:.3g}x faster than real time"
    return f"{1 / factor:.3g}x slower than real time" if factor > 0 else "no simulated time"


@dataclass
class Report:
    """Hardware cost of a network's activity on one target.

    ``energy_by_population`` maps population -> category (``synaptic``, ``dense``, ``neuron``,
    ``spike_out``, ``routing``, ``static``) -> joules over the counted time. ``step_time`` is the latency of
    one time step (s; the mean over steps), ``wall_time`` the time the counted steps take on the target.
    ``step_times`` holds each step's latency when a neuromorphic target timed the run step by step
    from its spike raster (None otherwise); ``step_model`` says how the step was timed.
    ``measured`` is False for estimates from stated rates.

    *Energy per inference* is the counted energy divided by ``counts.inferences``, the number of
    inferences (samples, trials) the counted time holds (``estimate(..., inferences=)``). A plain
    simulation is one inference by default, so its "per inference" figures are those of the whole
    run; :meth:`table` and :func:`plot` then say "over the run" instead.
    """

    target: Target
    counts: Counts
    energy_by_population: dict[str, dict[str, float]]
    step_time: float
    wall_time: float
    placement: Placement | None = None
    fpga: dict[str, object] | None = None
    extra: dict[str, float] = field(default_factory=dict)
    step_times: np.ndarray | None = field(default=None, repr=False)
    step_model: str = ""

    @property
    def step_time_range(self) -> tuple[float, float] | None:
        """Shortest and longest step (s), when the run was timed step by step."""
        if self.step_times is None or not len(self.step_times):
            return None
        return float(self.step_times.min()), float(self.step_times.max())

    @property
    def measured(self) -> bool:
        return self.counts.measured

    @property
    def energy(self) -> float:
        """Total energy (J) over the counted time."""
        return sum(sum(parts.values()) for parts in self.energy_by_population.values())

    @property
    def static_energy(self) -> float:
        return sum(parts["static"] for parts in self.energy_by_population.values())

    @property
    def dynamic_energy(self) -> float:
        return self.energy - self.static_energy

    @property
    def energy_per_inference(self) -> float:
        """Joules per inference: :attr:`energy` / ``counts.inferences`` (see the class docstring)."""
        return self.energy / self.counts.inferences

    @property
    def latency_per_inference(self) -> float:
        """Seconds one inference takes: its share of the counted steps times the step latency."""
        return self.wall_time / self.counts.inferences

    @property
    def throughput(self) -> float:
        """Inferences per second (one after another, not pipelined)."""
        return 1.0 / self.latency_per_inference if self.latency_per_inference else float("inf")

    @property
    def power(self) -> float:
        """Mean power (W) while the counted steps run on the target."""
        return self.energy / self.wall_time if self.wall_time else 0.0

    @property
    def edp(self) -> float:
        """Energy-delay product per inference (J s)."""
        return self.energy_per_inference * self.latency_per_inference

    @property
    def realtime_factor(self) -> float:
        """Simulated (biological) time per second of target time; above 1 is faster than real time."""
        return self.counts.duration / self.wall_time if self.wall_time else float("inf")

    def to_dict(self) -> dict[str, object]:
        result: dict[str, object] = {
            "target": self.target.name, "title": self.target.title, "kind": self.target.kind,
            "estimate": "measured counts" if self.measured else "ESTIMATE from stated rates",
            "counts": self.counts.summary(),
            "energy_J": self.energy, "dynamic_energy_J": self.dynamic_energy, "static_energy_J": self.static_energy,
            "energy_per_inference_J": self.energy_per_inference, "latency_per_step_s": self.step_time,
            "latency_per_step_range_s": self.step_time_range, "step_model": self.step_model,
            "latency_per_inference_s": self.latency_per_inference, "wall_time_s": self.wall_time,
            "throughput_per_s": self.throughput, "power_W": self.power, "edp_Js": self.edp,
            "realtime_factor": self.realtime_factor,
            "energy_by_population_J": self.energy_by_population,
            "unverified_constants": self.target.unverified(),
        }
        if self.placement is not None:
            result["placement"] = self.placement.summary()
        if self.fpga is not None:
            result["fpga"] = self.fpga
        result.update(self.extra)
        return result

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as JSON; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def table(self) -> str:
        """A plain-text summary: totals, placement or resources, and energy per population."""
        c = self.counts
        head = "measured counts" if self.measured else "ESTIMATE from stated rates (the network did not run)"
        lines = [f"{self.target.title} [{self.target.name}]: {head}",
                 f"  activity: {c.spikes:.4g} spikes, {c.synaptic_events:.4g} synaptic events (ACs), "
                 f"{c.dense_macs:.4g} dense MACs, {c.neuron_updates:.4g} neuron updates, "
                 f"{c.bits_moved:.4g} bits moved in {c.duration:.4g} s ({c.steps} steps)"]
        if self.placement is not None:
            p = self.placement
            saved = 1 - p.hops / p.hops_declaration_order if p.hops_declaration_order else 0.0
            lines.append(f"  placement: {len(p.cores)} cores on {p.chips} chip(s), neuron utilisation "
                         f"{p.utilisation['neurons']:.0%}, synaptic memory {p.utilisation['synaptic_memory']:.0%}; "
                         f"{p.packets:.4g} packets, {p.hops:.4g} hops ({saved:.0%} fewer than in declaration "
                         f"order), {p.inter_chip_packets:.4g} between chips; {p.strategy} mapping")
            lines += [f"  LIMIT BROKEN by this mapping: {violation}" for violation in p.violations]
        if self.fpga is not None:
            f = self.fpga
            used = ", ".join(f"{key.upper()} {f['resources'][key]:.0f} ({f['utilisation'][key]:.1%})"
                             for key in ("lut", "ff", "bram", "dsp"))
            lines.append(f"  resources: {used}; clock {f['clock_hz'] / 1e6:.0f} MHz, reuse factor "
                         f"{f['reuse_factor']}, {f['cycles_per_step']:.0f} cycles per step, "
                         f"weights in {f['weights_in']}")
        lines += [f"  energy: {self.energy:.4g} J ({self.dynamic_energy:.4g} dynamic, "
                  f"{self.static_energy:.4g} static), {self.power:.4g} W",
                  self._latency_line(),
                  f"  {'population':<14}" + "".join(f"{name:>11}" for name in CATEGORIES) + f"{'total (J)':>12}"]
        for name, parts in self.energy_by_population.items():
            lines.append(f"  {name:<14}" + "".join(f"{parts[k]:>11.3g}" for k in CATEGORIES)
                         + f"{sum(parts.values()):>12.4g}")
        unverified = self.target.unverified()
        if unverified:
            lines.append(f"  note: {len(unverified)} of {len(self.target.constants)} constants of this target are not "
                         f"yet checked against their cited source's text")
        return "\n".join(lines)

    def _latency_line(self) -> str:
        c = self.counts
        speed = realtime_text(self.realtime_factor)
        line = self._latency_figures(c, speed)
        if not self.step_model:
            return line
        spread = self.step_time_range
        spread_text = f" (mean; {spread[0]:.4g} to {spread[1]:.4g} s)" if spread else ""
        return f"{line}\n  step time{spread_text}: {self.step_model}"

    def _latency_figures(self, c: Counts, speed: str) -> str:
        if c.inferences > 1:
            return (f"  latency: {self.step_time:.4g} s per step, {self.latency_per_inference:.4g} s per inference "
                    f"({c.inferences} in the run; energy per inference {self.energy_per_inference:.4g} J); "
                    f"throughput {self.throughput:.4g} /s; EDP {self.edp:.4g} J s per inference; {speed}")
        return (f"  latency: {self.step_time:.4g} s per step, {self.wall_time:.4g} s for the {c.duration:.4g} s of "
                f"simulated time ({speed}); EDP {self.edp:.4g} J s over the run (one run, no inferences "
                f"declared: pass inferences= for per-inference figures)")

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | Path | None = None, ax=None):
        """Stacked bars of energy per population by category; saved to ``path`` when given.

        Returns the matplotlib figure.
        """
        return plot([self], path, ax, by_population=True)


def plot(reports: list[Report], path: str | Path | None = None, ax=None, by_population: bool = False):
    """Energy of one report by population, or of several targets side by side; saved to ``path``.

    One report (``by_population``): stacked bars of energy by category per population, on a
    linear axis. Several targets: the total energy of each (per inference when the counts declare
    ``inferences``, else over the run) as bars on a log axis, which keeps targets orders of
    magnitude apart all visible, beside a second panel of each target's shares by category
    (stacked on a linear 0-100 % axis; shares stacked on a log axis would be distorted). With
    ``ax`` given, only the totals are drawn, into it. Returns the matplotlib figure.
    """
    reports = list(reports)
    if not reports:
        raise HardwareError("plot: no reports to plot (estimate, or compare, gives them)")
    if by_population:
        return _plot_by_population(reports[0], path, ax)
    if ax is None:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(11, 4))
        ax, shares_ax = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    else:
        figure, shares_ax = ax.figure, None
    labels = [r.target.name for r in reports]
    per_inference = any(r.counts.inferences > 1 for r in reports)
    rows = []
    for r in reports:
        totals = dict.fromkeys(CATEGORIES, 0.0)
        for parts in r.energy_by_population.values():
            for key in CATEGORIES:
                totals[key] += parts[key] / (r.counts.inferences if per_inference else 1)
        rows.append(totals)
    totals = [sum(row.values()) for row in rows]
    bars = ax.bar(labels, totals, color="tab:blue")
    if min(totals) > 0:
        ax.set_yscale("log")
    ax.bar_label(bars, labels=[f"{t:.3g} J" for t in totals], fontsize="small")
    what = "energy per inference" if per_inference else "energy over the run"
    ax.set_ylabel(f"{what} (J, log scale)" if min(totals) > 0 else f"{what} (J)")
    ax.set_title(f"{what} by target")
    ax.tick_params(axis="x", labelrotation=30)
    if shares_ax is not None:
        bottom = [0.0] * len(labels)
        for category in CATEGORIES:
            heights = [100 * row[category] / total if total else 0.0 for row, total in zip(rows, totals, strict=True)]
            shares_ax.bar(labels, heights, bottom=bottom, label=category)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        shares_ax.set_ylim(0, 100)
        shares_ax.set_ylabel("share of the energy (%)")
        shares_ax.set_title("by category")
        shares_ax.tick_params(axis="x", labelrotation=30)
        shares_ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure


def _plot_by_population(report: Report, path: str | Path | None, ax):
    if ax is None:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(7, 4))
        ax = figure.add_subplot()
    else:
        figure = ax.figure
    labels = list(report.energy_by_population)
    rows = [report.energy_by_population[name] for name in labels]
    title = f"{report.target.title}: energy by population"
    if not report.measured:
        title += " (ESTIMATE)"
    bottom = [0.0] * len(labels)
    for category in CATEGORIES:
        heights = [row[category] for row in rows]
        ax.bar(labels, heights, bottom=bottom, label=category)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylabel("energy over the run (J)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure
