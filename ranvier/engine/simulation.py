"""The run loop: lowered arrays + a backend + the event queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import BackendError, NumericalError
from . import backends
from .kinds import Kind
from .lowering import ArraySteps, Consumer, Status, compiled_monitors, lower
from .queue import PROGRESS
from .values import ValueStage

if TYPE_CHECKING:
    from .network import Network
    from .storage import Checkpointer

_PROGRESS_TICKS = 100
#: where each backend updates the value populations with array steps (:class:`ArraySteps`)
_ARRAY_STEPS = {"numpy": ArraySteps.NUMPY, "numba": ArraySteps.TRACED, "cuda": ArraySteps.TRACED}
#: bytes the state monitors' sample buffers may take together: a backend advances at most the
#: steps whose samples fit, and the host empties the buffers after each such stretch
MONITOR_BUFFER_BYTES = 64 << 20


class Simulation:
    """A network lowered for one backend; ``run`` advances it, handling queued events."""

    def __init__(self, network: Network, backend: str):
        self.network = network
        self.backend_name = backend
        #: whether ``run`` is advancing the network (its callbacks run inside it)
        self.running = False
        self._lower()

    def _lower(self) -> None:
        self.version = self.network._structure_version
        array_steps = _ARRAY_STEPS.get(self.backend_name, ArraySteps.NUMPY)
        self.lowered = lower(self.network, array_steps)
        self.values = ValueStage(self.network, self.lowered)
        self.runner = backends.prepare(self.backend_name, self.lowered)
        # recording changes the structure (a new lowering), so these hold until the next one
        self._spike_monitors_of: dict[str, list] = {}
        for monitor in self.network.spike_monitors:
            self._spike_monitors_of.setdefault(monitor.population.name, []).append(monitor)
        self._monitor_channels = [(monitor, channel)
                                  for monitor in compiled_monitors(self.network, self.lowered.updated)
                                  for channel in range(len(monitor.rows))]

    def run(self, n_steps: int, progress: bool, checkpointer: Checkpointer | None = None) -> None:
        network = self.network
        if self._array_steps_changed():
            self._lower()
        stop = network.step + n_steps
        stretch = self._allocate_monitors(n_steps)
        bar = self._progress_bar(n_steps) if progress else None
        self._collected_from = network.step
        self.running = True
        try:
            self._handle_events()
            self._on_host(self.values.start)
            if checkpointer is not None:
                checkpointer.start(network.step)
            while network.step < stop:
                target = min(network._events.next_step(stop), stop)
                if checkpointer is not None:
                    target = min(target, checkpointer.next_step)
                boundary = self.values.next_boundary(network.step)
                if boundary is not None:
                    target = min(target, boundary)
                for plastic in self.lowered.plastic:
                    plastic.refresh()
                while network.step < target:
                    if network.step == self._collected_from + stretch:
                        self._collect()  # the monitors' buffers are full
                    limit = min(target, self._collected_from + stretch)
                    reached = self.runner.advance(network.step, limit)
                    self.values.advanced(reached)
                    network.step = reached
                    if reached < limit or self.lowered.status[0]:  # not Status.OK, which is 0
                        # a spike buffer could overflow, or a state stopped being finite
                        self._collect()
                        self._check_status()
                if bar is not None:
                    bar.update(network.step - (stop - n_steps) - bar.n)
                self._handle_events()
                if self.version != network._structure_version:
                    self._lower()
                    self._on_host(self.values.start)
                    stretch = self._allocate_monitors(stop - network.step)
                if network.step == boundary:
                    # a GPU backend hands over only the rings and states the update writes into
                    self._on_host(self.values.update, *self.values.written(network.step))
                if checkpointer is not None and network.step in (checkpointer.next_step, stop):
                    self._collect()
                    self.runner.to_host()
                    checkpointer.write()
        finally:
            self.running = False
            self._collect()
            self.runner.to_host()
            if bar is not None:
                bar.close()

    def _array_steps_changed(self) -> bool:
        """Whether a model the backend runs as a traced array step gives a new step (its weights or time unit
        changed since the lowering): the trace holds the old weights, so the network is lowered again."""
        populations = list(self.network.populations.values())
        for value in self.lowered.values:
            if value.array_step is not None:
                population = populations[value.population]
                if population.model.array_step(population.n, population.dt) is not value.array_step:
                    return True
        return False

    def _allocate_monitors(self, n_steps: int) -> int:
        """Size the state monitors' buffers for the longest stretch one ``advance`` may cover
        (:data:`MONITOR_BUFFER_BYTES` of samples, at most the ``n_steps`` left); that stretch."""
        monitors = self.lowered.state_monitors
        per_step = sum(monitor.bytes_per_step() for monitor in monitors)
        stretch = n_steps if per_step == 0 else int(min(n_steps, max(1, MONITOR_BUFFER_BYTES // per_step)))
        for monitor in monitors:
            monitor.allocate(max(1, stretch))
        return max(1, stretch)

    def _on_host(self, value_stage_action, rings: set[int] | None = None, states: set[int] = frozenset()) -> None:
        """Run a value-stage action at the current step on the host arrays.

        A GPU backend hands the state, rings and pulse schedules over (with ``rings`` and ``states``,
        only the rings and the states of those populations) and takes the changes back (the CPU
        backends share the arrays).
        """
        if not self.values.all_populations:
            return
        self.runner.to_host(rings, states)
        value_stage_action(self.network.step)
        self.runner.to_device(rings, states)

    def _handle_events(self) -> None:
        step, events = self.network.step, self.network._events
        if events.next_step(step + 1) > step:
            return
        due = events.pop_due(step)
        callbacks = [event for event in due if event.kind == "callback"]
        if callbacks:
            self._collect()  # callbacks may read monitors and stats
            # Callbacks read and write the host arrays; a GPU backend hands them over and back.
            self.runner.to_host()
            for event in callbacks:
                event.action()
            self.runner.to_device()

    def _progress_bar(self, n_steps: int):
        from tqdm.auto import tqdm

        network = self.network
        tick = max(1, n_steps // _PROGRESS_TICKS)
        for step in range(network.step + tick, network.step + n_steps, tick):
            network._events.push(step, lambda: None, PROGRESS, kind="progress")
        return tqdm(total=n_steps, unit="s", unit_scale=network.dt, desc="simulating",
                    bar_format="{l_bar}{bar}| {n:.3f}/{total:.3f} s biological [{elapsed}<{remaining}]")

    def _collect(self) -> None:
        """Move what the backend produced since the last collection into monitors and stats.

        The backend's spike and sample buffers fill over many ``advance`` calls (a host value
        population's window each, say); they are emptied when one could overflow, before
        callbacks, checkpoints and a new lowering, and at the end of the run.
        """
        network, lowered, stats = self.network, self.lowered, self.network.stats
        start, reached = self._collected_from, network.step
        if reached == start:
            return
        self._collected_from = reached
        steps = reached - start
        stats.steps += steps
        stats.duration = stats.steps * network.dt
        monitors_of = self._spike_monitors_of
        for population in lowered.populations:
            count = int(population.spike_count[0])
            name = population.name
            stats.spikes_by_population[name] = stats.spikes_by_population.get(name, 0) + count
            if population.kind != Kind.SCHEDULED:
                updates = reached // population.period - start // population.period
                stats.neuron_updates_by_population[name] = (
                    stats.neuron_updates_by_population.get(name, 0) + population.n * updates
                )
            for monitor in monitors_of.get(name, ()):
                monitor._append(population.spike_steps[:count], population.spike_ids[:count])
            population.spike_count[0] = 0
            for drive, events in zip(population.drive_names, population.drive_events, strict=True):
                # each input spike a Poisson drive drew is one synaptic event
                if events:
                    by_projection = stats.synaptic_events_by_projection
                    by_projection[drive] = by_projection.get(drive, 0) + int(events)
            population.drive_events[:] = 0
        for projection, events in zip(lowered.projections + lowered.counts,
                                      [*lowered.synaptic_events, *lowered.count_events], strict=True):
            if events:
                stats.synaptic_events_by_projection[projection.name] = (
                    stats.synaptic_events_by_projection.get(projection.name, 0) + int(events)
                )
        lowered.synaptic_events[:] = 0
        lowered.count_events[:] = 0
        self._count_value_updates(start, reached)
        for (monitor, channel), lowered_monitor in zip(self._monitor_channels, lowered.state_monitors, strict=True):
            count = int(lowered_monitor.count[0])
            monitor._append(channel, lowered_monitor.steps[:count], lowered_monitor.values[:count])
            lowered_monitor.count[0] = 0

    def _count_value_updates(self, start: int, reached: int) -> None:
        """Updates and dense MACs of the value populations the backend updated in ``(start, reached]``."""
        stats, lowered = self.network.stats, self.lowered
        updates = {v.population: reached // v.period - start // v.period for v in lowered.values}
        for value in lowered.values:
            if updates[value.population]:
                stats.neuron_updates_by_population[value.name] = (
                    stats.neuron_updates_by_population.get(value.name, 0) + value.n * updates[value.population])
        for value_map in lowered.value_maps:
            if not value_map.compiled:
                continue
            if value_map.consumer is Consumer.INPUTS:
                macs = value_map.synapses * value_map.channels * updates[value_map.post]
            else:
                macs = value_map.synapses * updates[value_map.pre]
            if macs:
                by_projection = stats.dense_macs_by_projection
                by_projection[value_map.name] = by_projection.get(value_map.name, 0) + macs

    def _check_status(self) -> None:
        code, index, step = (int(x) for x in self.lowered.status)
        if code == Status.OK:
            return
        name = self.lowered.populations[index].name
        if code == Status.NOT_FINITE:
            raise NumericalError(name, step, step * self.network.dt)
        model = self.network.populations[name].model
        raise BackendError(f"population {name!r}: more spikes in step {step} than its buffer holds, sized by "
                           f"{type(model).__name__}.spike_bound (the most spikes its neurons emit together in a "
                           "step; by default one per neuron): a model whose neurons emit several spikes in a step "
                           "overrides spike_bound (docs/models.md)")
