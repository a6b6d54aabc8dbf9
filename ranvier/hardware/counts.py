"""Activity and structure counts of a network: what a hardware estimate is computed from.

Measured counts come from ``net.stats`` of a run (architecture principle 5); without a run,
:func:`count` estimates activity from firing rates the caller states, and the counts (and
every report built on them) say so.

Definitions (per run, or per estimated ``duration``):

* spikes of population p: ``S_p``; neuron updates ``U_p = n_p * steps`` (sources: none);
* synaptic events (accumulates, ACs) of a spiking projection: one per spike per synapse,
  ``E = sum over spikes of the source's out-degree``;
* dense multiply-accumulates (MACs) of a projection from a value population: one per synapse
  per update of the target;
* a Poisson drive inside a target (``connect(PoissonInput(rate, K), target)``) is costed as the
  spike traffic it stands for: an input population (``model="PoissonInput"``, kind
  ``scheduled``) of one Poisson train per target neuron at the summed rate ``K rate``, named
  as the drive, through a one-to-one projection of the same name; each drawn input spike is one
  spike of that input and one synaptic event (exactly as a ``PoissonSource`` per neuron);
* bits moved: spike packets of ``ceil(log2 N)`` address bits (``N`` neurons in all) plus, for
  value populations, one ``value_bits`` word per neuron per update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import HardwareError
from .raster import SpikeRaster, spike_raster

#: word size of a value population's output (float32)
VALUE_BITS = 32


class NotRunError(HardwareError):
    """Measured counts were asked of a network that never ran."""


@dataclass
class PopulationCounts:
    """One population: ``n`` neurons of ``model`` (class name) of ``kind`` (``Model.kind``)."""

    name: str
    model: str
    kind: str
    n: int
    spikes: float
    updates: float
    state_variables: int = 2

    @property
    def is_input(self) -> bool:
        """Sources (scheduled or Poisson spike trains) enter a chip from outside and take no cores."""
        return self.kind == "scheduled" or self.model in ("PoissonSource", "SpikeSource", "PoissonInput")


@dataclass
class ProjectionCounts:
    """One projection's synapses and the work they did.

    ``row_ptr`` / ``post_ids`` (the CSR structure) are kept when the counts come from a
    network, so placement can count fan-in and fan-out exactly; counts built by hand leave
    them ``None`` and placement assumes uniformly random targets. An implicit all-to-all
    projection has no CSR structure either: ``all_to_all`` (every source to every target, without
    j -> j when ``autapses`` is False) tells placement so.
    """

    name: str
    pre: str
    post: str
    synapses: int
    events: float
    macs: float
    dense: bool
    weight_bits_needed: int
    max_fan_in: int
    max_fan_out: int
    row_ptr: np.ndarray | None = field(default=None, repr=False)
    post_ids: np.ndarray | None = field(default=None, repr=False)
    all_to_all: bool = False
    autapses: bool = True
    #: the longest synaptic delay, in steps of the network's dt (1 when unknown)
    max_delay_steps: int = 1
    #: synapses an all-to-all source makes onto each target neuron: 1, or for a value population
    #: whose input port is ``width`` channels over its ``n`` units, ``width / n``
    synapses_per_target: float = 1.0


@dataclass
class Counts:
    """Everything a hardware estimate needs: structure, activity and the time they cover.

    ``measured`` is False when activity was estimated from stated rates. ``inferences`` is the
    number of inferences (trials, samples) the counted time holds; per-inference figures
    divide by it. ``raster`` holds the run's spikes step by step when its spike monitors recorded
    them all (:mod:`ranvier.hardware.raster`); else it is None and ``no_raster`` says why.
    """

    populations: dict[str, PopulationCounts]
    projections: dict[str, ProjectionCounts]
    duration: float
    steps: int
    dt: float
    measured: bool
    inferences: int = 1
    raster: SpikeRaster | None = field(default=None, repr=False)
    no_raster: str = "the counts were given without a spike raster"

    @property
    def neurons(self) -> int:
        return sum(p.n for p in self.populations.values())

    @property
    def synapses(self) -> int:
        return sum(p.synapses for p in self.projections.values())

    @property
    def spikes(self) -> float:
        return sum(p.spikes for p in self.populations.values())

    @property
    def neuron_updates(self) -> float:
        return sum(p.updates for p in self.populations.values())

    @property
    def computed_updates(self) -> float:
        """Neuron updates the hardware computes: inputs (sources) arrive as data and are not computed."""
        return sum(p.updates for p in self.populations.values() if not p.is_input)

    @property
    def synaptic_events(self) -> float:
        """Accumulate operations (ACs): spikes delivered through synapses."""
        return sum(p.events for p in self.projections.values())

    @property
    def dense_macs(self) -> float:
        """Multiply-accumulates of dense (value) projections."""
        return sum(p.macs for p in self.projections.values())

    @property
    def address_bits(self) -> int:
        return max(1, math.ceil(math.log2(max(2, self.neurons))))

    @property
    def bits_moved(self) -> float:
        """Spike packets times their address bits, plus the words value populations send."""
        spike_bits = sum(p.spikes for p in self.populations.values() if p.kind != "value") * self.address_bits
        value_bits = sum(p.updates for p in self.populations.values() if p.kind == "value") * VALUE_BITS
        return spike_bits + value_bits

    def sends(self, projection: ProjectionCounts) -> float:
        """Messages a source neuron sends through ``projection`` over the counted time.

        Spikes for spiking projections; one value per update of the source for dense ones.
        """
        p = self.populations[projection.pre]
        return (p.updates if projection.dense else p.spikes) / p.n

    def fan_in(self) -> dict[str, int]:
        """Largest number of synapses onto one neuron, per population (over all its projections)."""
        result = {name: 0 for name in self.populations}
        for projection in self.projections.values():
            result[projection.post] = max(result[projection.post], projection.max_fan_in)
        return result

    def summary(self) -> dict[str, float]:
        return {
            "measured": self.measured, "duration_s": self.duration, "steps": self.steps, "neurons": self.neurons,
            "synapses": self.synapses, "spikes": self.spikes, "neuron_updates": self.neuron_updates,
            "synaptic_events": self.synaptic_events, "dense_macs": self.dense_macs, "bits_moved": self.bits_moved,
            "inferences": self.inferences,
        }


def _weight_bits_needed(weights: np.ndarray) -> int:
    """Bits that index the distinct weight values losslessly (32 for more than 2**16 values)."""
    distinct = len(np.unique(weights[: 1 << 20]))
    if distinct > 1 << 16:
        return 32
    return max(1, math.ceil(math.log2(max(2, distinct))))


def _is_dense(projection) -> bool:
    """Whether a projection carries values (a linear map applied at each update of its target).

    Projections say so by their ``kind`` (``"spike"`` or a value kind); a value population's
    pulses (Kuramoto phase crossings) travel as spikes.
    """
    kind = getattr(projection, "kind", None)
    if kind is not None:
        return kind != "spike"
    return getattr(projection.pre.model, "kind", "") == "value"


def count(net, rates: dict[str, float] | float | None = None, duration: float | None = None,
          inferences: int = 1) -> Counts:
    """Counts of ``net``: measured from ``net.stats`` if it ran, else estimated from ``rates``.

    ``rates`` (Hz), one number for every spiking population or a name -> rate mapping, asks
    for an estimate even after a run; ``duration`` (s, default: the run's, or 1 s) is the
    time the estimate covers. A network that never ran and has no ``rates`` raises
    :class:`NotRunError`.
    """
    stats = net.stats
    measured = rates is None
    if measured and stats.steps == 0:
        raise NotRunError("the network has not run, so there are no measured counts; run it first, "
                          "or pass rates={'population': Hz, ...} for an estimate")
    if not measured:
        duration = duration if duration is not None else (stats.duration or 1.0)
        if not (isinstance(duration, int | float) and math.isfinite(duration) and duration > 0):
            raise HardwareError(f"estimate: duration must be a positive number of seconds, got {duration!r}")
        steps = int(round(duration / net.dt))
        spike_rates = _rates_by_population(net, rates)
    else:
        duration, steps = stats.duration, stats.steps
    if isinstance(inferences, bool) or not isinstance(inferences, int) or inferences < 1:
        raise HardwareError(f"estimate: inferences must be a positive integer, got {inferences!r}")

    populations = {}
    for name, population in net.populations.items():
        model = population.model
        kind = getattr(model, "kind", "spiking")
        if measured:
            spikes = float(stats.spikes_by_population.get(name, 0))
            updates = float(stats.neuron_updates_by_population.get(name, 0))
        else:
            spikes = spike_rates.get(name, 0.0) * population.n * duration
            updates = 0.0 if kind == "scheduled" else float(population.n * steps)
        populations[name] = PopulationCounts(name, type(model).__name__, kind, population.n, spikes, updates,
                                             max(1, len(getattr(model, "state_names", ()) or ())))
    projections = {}
    for drive in getattr(net, "poisson_inputs", ()):
        _add_drive(drive, stats, measured, duration, populations, projections)
    for projection in net.projections:
        name = projection.name
        all_to_all = projection.all_to_all
        row_ptr = None if all_to_all else np.asarray(projection.row_ptr)
        post_ids = None if all_to_all else np.asarray(projection.post_ids)
        out_degrees, in_degrees = projection.out_degrees(), projection.in_degrees()
        per_target = 1.0
        if projection.width != projection.post.n:
            # a value population's port (ELM: each unit's n_in channels; CfC, LTC, Rate: n_in channels
            # that all units read): its channels are spread evenly over the units, whose cores hold them
            per_target = projection.width / projection.post.n
            if post_ids is not None:
                post_ids = post_ids.astype(np.int64) * projection.post.n // projection.width
                in_degrees = np.bincount(post_ids, minlength=projection.post.n)
            else:
                in_degrees = np.ceil(in_degrees.sum() / projection.post.n) * np.ones(1, dtype=np.int64)
        dense = _is_dense(projection)
        pre, post = projection.pre.name, projection.post.name
        if dense:
            events = 0.0
            if measured and name in stats.dense_macs_by_projection:
                macs = float(stats.dense_macs_by_projection[name])
            else:
                macs = float(len(projection)) * populations[post].updates / max(1, projection.post.n)
        else:
            macs = 0.0
            if measured:
                events = float(stats.synaptic_events_by_projection.get(name, 0))
            else:
                events = populations[pre].spikes * len(projection) / projection.pre.n
        projections[name] = ProjectionCounts(
            name, pre, post, len(projection), events, macs, dense, _weight_bits_needed(projection.weights),
            int(in_degrees.max(initial=0)), int(out_degrees.max(initial=0)), row_ptr, post_ids, all_to_all,
            projection.autapses, projection.max_delay_steps, per_target)
    if measured:
        raster, no_raster = spike_raster(net, {p.pre for p in projections.values() if not p.dense and p.synapses})
    else:
        raster, no_raster = None, "an estimate from stated rates has no spikes step by step"
    return Counts(populations, projections, float(duration), int(steps), float(net.dt), measured, inferences,
                  raster, no_raster)


def _add_drive(drive, stats, measured: bool, duration: float, populations: dict, projections: dict) -> None:
    """A Poisson drive as the input population and one-to-one projection whose spikes it stands for."""
    n = drive.post.n
    if measured:
        events = float(stats.synaptic_events_by_projection.get(drive.name, 0))
    else:
        events = drive.rate * drive.n_inputs * n * duration
    populations[drive.name] = PopulationCounts(drive.name, "PoissonInput", "scheduled", n, events, 0.0, 1)
    identity = np.arange(n + 1, dtype=np.int64)
    projections[drive.name] = ProjectionCounts(drive.name, drive.name, drive.post.name, n, events, 0.0, False, 1,
                                               1, 1, identity, identity[:-1].astype(np.int32))


def _rates_by_population(net, rates) -> dict[str, float]:
    spiking = [name for name, p in net.populations.items() if getattr(p.model, "kind", "spiking") != "value"]
    if isinstance(rates, int | float) and not isinstance(rates, bool):
        rates = {name: float(rates) for name in spiking}
    if not isinstance(rates, dict):
        raise HardwareError(f"estimate: rates must be a number (Hz) or a population -> Hz mapping, got {rates!r}")
    for name, rate in rates.items():
        if name not in net.populations:
            raise HardwareError(f"estimate: rates name unknown population {name!r}; "
                                f"the network has {', '.join(net.populations)}")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or rate < 0:
            raise HardwareError(f"estimate: rate of population {name!r} must be a number of Hz >= 0, got {rate!r}")
    return {name: float(rate) for name, rate in rates.items()}
