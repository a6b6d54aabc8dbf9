"""Hardware cost models: from a network and its activity to cores, energy, latency and FPGA resources.

::

    import ranvier as rv
    import ranvier.hardware

    net = rv.networks.cuba(n=4000, seed=1)
    net.run(1.0)
    report = rv.hardware.estimate(net, target="loihi2")
    print(report.table())
    report.plot("cuba_loihi2.png")

Pipeline: :func:`~ranvier.hardware.counts.count` (exact counts of a run, or an estimate from
stated rates) -> a target loaded from its TOML file (:func:`targets`, :func:`load_target`) ->
:func:`~ranvier.hardware.placement.place` on cores (neuromorphic targets) -> energy, latency
and resources (:mod:`ranvier.hardware.cost`) -> :class:`Report`.
"""

from __future__ import annotations

from pathlib import Path

from .cost import fpga, neuromorphic, von_neumann
from .counts import Counts, NotRunError, PopulationCounts, ProjectionCounts, count
from .placement import (
    STRATEGIES,
    DelayLimitError,
    Placement,
    PlacementError,
    PlacementTableError,
    UnsupportedModelError,
    check_strategy,
    place,
)
from .raster import SpikeRaster
from .report import Report, plot, realtime_text
from .targets import Target, TargetFileError, UnknownTargetError, load_target, targets

__all__ = [
    "STRATEGIES", "Counts", "DelayLimitError", "NotRunError", "Placement", "PlacementError", "PlacementTableError",
    "PopulationCounts",
    "ProjectionCounts", "Report", "SpikeRaster", "Target", "TargetFileError", "UnknownTargetError",
    "UnsupportedModelError",
    "compare", "count", "estimate", "load_target", "place", "plot", "realtime_text", "targets",
]


def estimate(net, target: str | Path | Target = "loihi2", rates: dict[str, float] | float | None = None,
             duration: float | None = None, inferences: int = 1,
             placement: str | dict[str, int | list[int]] = "fan_in_aware") -> Report:
    """Cost of ``net``'s activity on ``target`` (a name from :func:`targets` or a TOML path).

    ``net`` is a :class:`~ranvier.Network` that ran (measured counts from ``net.stats``), a
    network with ``rates`` (Hz, a number or population -> rate) for an estimate marked as
    such, or ready :class:`Counts`. ``inferences`` is the number of inferences the counted time
    holds. ``placement`` chooses the mapping on a neuromorphic target: ``"fan_in_aware"`` (every
    core limit held), ``"packed"`` (neurons per core and synaptic memory only) or a hand-given
    ``{population: cores or [slice sizes]}`` table (:func:`~ranvier.hardware.placement.place`);
    limits a mapping breaks are in ``report.placement.violations``.

    On a neuromorphic target, a run whose spike monitors recorded every spike of each population
    with outgoing synapses (``net.record(population, "spikes")`` before the run) is timed step by
    step: each step takes its busiest core's work, and ``report.step_times`` holds them
    (``report.step_time`` is their mean); otherwise the average step is timed.
    ``report.step_model`` says which, and why.
    """
    target = load_target(target)
    check_strategy(placement)  # a misspelt one is an error on every target, not only where it applies
    counts = net if isinstance(net, Counts) else count(net, rates, duration, inferences)
    if target.kind == "neuromorphic":
        placement = place(counts, target, placement)
        result = neuromorphic(counts, target, placement)
        return Report(target, counts, result["energy"], result["step_time"], result["wall_time"], placement=placement,
                      step_times=result["step_times"], step_model=result["step_model"])
    if target.kind == "fpga":
        result = fpga(counts, target)
        return Report(target, counts, result["energy"], result["step_time"], result["wall_time"], fpga=result["fpga"])
    result = von_neumann(counts, target)
    return Report(target, counts, result["energy"], result["step_time"], result["wall_time"],
                  extra={"bytes_moved": result["bytes_moved"]})


def compare(net, target_names: list[str] | None = None, path: str | Path | None = None, **options) -> list[Report]:
    """Estimates of ``net`` on several targets (default: every target that can run it), plotted to ``path``.

    Targets that cannot run the network (an unsupported model, a population that does not
    fit) are left out; ``options`` go to :func:`estimate`.
    """
    counts = net if isinstance(net, Counts) else count(net, options.pop("rates", None), options.pop("duration", None),
                                                       options.pop("inferences", 1))
    reports = []
    for name in target_names or targets():
        try:
            reports.append(estimate(counts, name, **options))
        except PlacementTableError:
            raise
        except (UnsupportedModelError, PlacementError):
            if target_names:
                raise
    if path is not None and reports:
        plot(reports, path)
    return reports
