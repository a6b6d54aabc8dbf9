"""Exact activity counts of a network's runs (``Network.stats``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Stats:
    """Activity counted during every ``run`` of a network since it was built.

    ``spikes_by_population`` and ``neuron_updates_by_population`` are keyed by population name,
    ``synaptic_events_by_projection`` by projection name. A synaptic event is one spike
    delivered through one synapse. ``dense_macs`` counts multiply-accumulates of projections
    that carry values (from value populations, and into them as dense products).
    """

    duration: float = 0.0
    steps: int = 0
    spikes_by_population: dict[str, int] = field(default_factory=dict)
    neuron_updates_by_population: dict[str, int] = field(default_factory=dict)
    synaptic_events_by_projection: dict[str, int] = field(default_factory=dict)
    dense_macs_by_projection: dict[str, int] = field(default_factory=dict)

    @property
    def spikes(self) -> int:
        return sum(self.spikes_by_population.values())

    @property
    def synaptic_events(self) -> int:
        return sum(self.synaptic_events_by_projection.values())

    @property
    def neuron_updates(self) -> int:
        return sum(self.neuron_updates_by_population.values())

    @property
    def dense_macs(self) -> int:
        return sum(self.dense_macs_by_projection.values())

    def rate(self, population: str, n: int) -> float:
        """Mean firing rate (Hz) of a population of ``n`` neurons over the counted time."""
        return self.spikes_by_population.get(population, 0) / n / self.duration if self.duration else 0.0

    def __str__(self) -> str:
        macs = f", {self.dense_macs} dense multiply-adds" if self.dense_macs_by_projection else ""
        lines = [f"{self.duration:.4g} s simulated in {self.steps} steps: {self.spikes} spikes, "
                 f"{self.synaptic_events} synaptic events, {self.neuron_updates} neuron updates{macs}"]
        populations = dict.fromkeys([*self.spikes_by_population, *self.neuron_updates_by_population])
        lines += [f"  {name}: {self.spikes_by_population.get(name, 0)} spikes, "
                  f"{self.neuron_updates_by_population.get(name, 0)} updates" for name in populations]
        lines += [f"  {name}: {count} synaptic events" for name, count in self.synaptic_events_by_projection.items()]
        lines += [f"  {name}: {count} dense multiply-adds" for name, count in self.dense_macs_by_projection.items()]
        return "\n".join(lines)
