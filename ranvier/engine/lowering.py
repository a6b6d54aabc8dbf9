"""Lowering: from declared populations and projections to the flat arrays a backend runs.

The lowered network holds references to the declarations' own arrays (state, synapses,
weights), plus what a run needs besides: per-neuron constants for this ``dt``, a delay ring
buffer per target population, spike buffers, monitor buffers and counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .network import Network, Population, Projection

#: chunk length (steps) of a network without projections
_FREE_CHUNK = 100
_MIN_SPIKE_CAPACITY = 1 << 16
#: ``flags`` is padded to a multiple of this many neurons (four 64-bit words, scanned together)
_FLAG_BLOCK = 16


@dataclass
class LoweredPopulation:
    """One population as flat arrays.

    ``flags`` holds each neuron's spike count of the current step (uint16, padded to a
    multiple of sixteen so it can be scanned four 64-bit words at a time). ``ring`` is the delay ring buffer
    ``(slots, receptors, n)``: slot ``k % slots`` holds the
    input arriving in step ``k``. Spikes of the current stretch collect in ``spike_ids`` /
    ``spike_steps`` (``spike_count[0]`` used).
    """

    name: str
    n: int
    kind: str
    step_function: object
    checks_finite: bool
    state: np.ndarray
    consts: np.ndarray
    ring: np.ndarray
    key: np.uint64
    spike_bound: int
    flags: np.ndarray
    spike_ids: np.ndarray
    spike_steps: np.ndarray
    spike_count: np.ndarray
    source_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    source_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    source_next: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    #: steps of the network's dt per update: a population with its own dt updates in the steps k with
    #: (k + 1) % period == 0, on the input that arrived in the window of steps k - period + 1 .. k
    period: int = 1
    #: a value population: updated on the host (``state`` is its own), a source of pulses to the core
    on_host: bool = False


@dataclass
class LoweredProjection:
    """One projection: CSR synapses, and where its spikes land."""

    name: str
    pre: int
    post: int
    receptor: int
    row_ptr: np.ndarray
    post_ids: np.ndarray
    weights: np.ndarray
    weight_stride: int
    delay_steps: int | np.ndarray

    @property
    def per_synapse_delays(self) -> bool:
        return isinstance(self.delay_steps, np.ndarray)


@dataclass
class LoweredPlasticity:
    """The learning of a plastic projection (``ranvier.plasticity``), as arrays.

    ``projection`` indexes ``LoweredNetwork.projections``. ``col_ptr`` / ``col_synapses`` /
    ``col_sources`` index the synapses by target (CSC: the incoming synapses of target ``q`` are
    ``col_synapses[col_ptr[q]:col_ptr[q + 1]]``, from sources ``col_sources[...]``).
    ``decay_plus[d]`` / ``decay_minus[d]`` hold ``exp(-d dt / tau)`` for the traces: a table both
    backends read, so their traces agree to the bit (d past the table end decays to 0).
    ``params`` is ``(a_plus, a_minus, w_min, w_max, multiplicative)``; ``modulation`` holds the
    factors ``(m_plus, m_minus)`` of each target (``(2, 1)`` when one factor serves all targets),
    refreshed from the modulator's output before every stretch a backend runs.
    """

    projection: int
    pre: int
    post: int
    col_ptr: np.ndarray
    col_synapses: np.ndarray
    col_sources: np.ndarray
    pre_trace: np.ndarray
    pre_seen: np.ndarray
    post_trace: np.ndarray
    post_seen: np.ndarray
    decay_plus: np.ndarray
    decay_minus: np.ndarray
    params: np.ndarray
    modulation: np.ndarray
    modulator: Population | None = None
    modulated: tuple[bool, bool] = (False, False)

    def refresh(self) -> None:
        """Take up the modulator's current output as the factors of the modulated terms."""
        if self.modulator is None or self.modulator._published is None:
            return
        output = self.modulator._published[0]
        for row, modulated in enumerate(self.modulated):
            if modulated:
                self.modulation[row] = output


@dataclass
class LoweredStateMonitor:
    """A state monitor: samples ``state[row, ids]`` of population ``population``."""

    population: int
    row: int
    ids: np.ndarray
    every: int
    values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    count: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))

    def allocate(self, start: int, stop: int) -> None:
        """Room for the samples of steps ``start .. stop - 1``."""
        samples = stop // self.every - start // self.every
        self.values = np.zeros((samples, len(self.ids)), dtype=np.float32)
        self.steps = np.zeros(samples, dtype=np.int64)
        self.count[0] = 0


@dataclass
class LoweredNetwork:
    """Everything a backend needs, as arrays; ``chunk`` is the min-delay chunk length (steps)."""

    dt: float
    chunk: int
    populations: list[LoweredPopulation]
    projections: list[LoweredProjection]
    state_monitors: list[LoweredStateMonitor]
    synaptic_events: np.ndarray
    status: np.ndarray
    plastic: list[LoweredPlasticity] = field(default_factory=list)


def _ring_slots(network: Network, population: Population) -> int:
    """Ring slots for the spikes and held values that reach ``population`` ahead of time."""
    if population.model.kind == "value":
        return 1
    # a population with its own dt also keeps the window of input it has not yet consumed
    spikes = [p.max_delay_steps + population.period for p in network.projections
              if p.post is population and p.kind == "spike"]
    # a value is held in the ring for every step of its source's window
    values = [p.pre.period for p in network.projections if p.post is population and p.kind == "value"]
    return max(spikes + values, default=1)


def _resize_ring(population: Population, slots: int, step: int) -> None:
    """Make the ring buffer ``slots`` long, keeping input already scheduled for later steps."""
    shape = (slots, len(population.model.receptors), population.n)
    old = population.ring
    if old is not None and old.shape == shape:
        return
    ring = np.zeros(shape, dtype=np.float32)
    if old is not None:
        for ahead in range(min(old.shape[0], slots)):
            ring[(step + ahead) % slots] = old[(step + ahead) % old.shape[0]]
    population.ring = ring


def lower(network: Network) -> LoweredNetwork:
    """Lower ``network`` for a run starting at its current step."""
    dt = network.dt
    populations = []
    for population in network.populations.values():
        model = population.model
        _resize_ring(population, _ring_slots(network, population), network.step)
        is_value = model.kind == "value"
        own_dt = population.dt
        bound = (population.n if model.pulses else 0) if is_value else int(
            model.spike_bound(population.params, own_dt, population.n))
        lowered = LoweredPopulation(
            # to the compiled core a value population is a source: its pulses are scheduled at its updates
            name=population.name, n=population.n, kind="scheduled" if is_value else model.kind,
            step_function=getattr(model, "step", None), checks_finite=model.checks_finite,
            state=population.state,
            consts=_shared_column(np.ascontiguousarray(model.constants(population.params, own_dt),
                                                       dtype=np.float32)),
            ring=population.ring, key=np.uint64(_population_key(network.seed, population.index)),
            spike_bound=bound, flags=np.zeros(-(-population.n // _FLAG_BLOCK) * _FLAG_BLOCK, dtype=np.uint16),
            spike_ids=np.zeros(0, dtype=np.int32), spike_steps=np.zeros(0, dtype=np.int64),
            spike_count=np.zeros(1, dtype=np.int64), period=1 if is_value else population.period, on_host=is_value,
        )
        if model.kind == "scheduled":
            steps, ids = model.schedule(dt, population.name)
            lowered.source_steps, lowered.source_ids = steps, ids
            lowered.source_next[0] = np.searchsorted(steps, network.step)
        elif is_value:
            lowered.source_steps = np.full(population.n, NO_PULSE, dtype=np.int64)
            lowered.source_ids = np.zeros(population.n, dtype=np.int32)
        populations.append(lowered)
    spiking = [p for p in network.projections if p.kind == "spike"]
    projections = [_lower_projection(p) for p in spiking]
    chunk = min((p.min_delay_steps for p in spiking), default=_FREE_CHUNK)
    for lowered in populations:
        capacity = max(_MIN_SPIKE_CAPACITY, 4 * lowered.spike_bound * chunk)
        lowered.spike_ids = np.zeros(capacity, dtype=np.int32)
        lowered.spike_steps = np.zeros(capacity, dtype=np.int64)
    monitors = [LoweredStateMonitor(m.population.index, row, m.ids, m.every_steps)
                for m in compiled_monitors(network) for row in m.rows]
    plastic = [_lower_plasticity(p, j, dt) for j, p in enumerate(spiking) if p.plasticity is not None]
    return LoweredNetwork(dt, chunk, populations, projections, monitors,
                          synaptic_events=np.zeros(len(projections), dtype=np.int64),
                          status=np.zeros(3, dtype=np.int64), plastic=plastic)


def compiled_monitors(network: Network) -> list:
    """The state monitors the compiled core samples; value populations' are sampled at their updates."""
    return [m for m in network.state_monitors if m.population.model.kind != "value"]


def _lower_projection(projection: Projection) -> LoweredProjection:
    return LoweredProjection(
        name=projection.name, pre=projection.pre.index, post=projection.post.index,
        receptor=projection.receptor_index, row_ptr=projection.row_ptr,
        post_ids=projection._post_ids, weights=projection._weights, weight_stride=projection.weight_stride,
        delay_steps=projection.delay_steps,
    )


#: trace decay tables stop where exp(-d dt / tau) drops below e^-50 (about 2e-22)
_DECAY_TAUS = 50.0


def _decay_table(tau: float, dt: float) -> np.ndarray:
    return np.exp(-np.arange(int(np.ceil(_DECAY_TAUS * tau / dt)) + 1) * dt / tau)


def _by_target(projection: Projection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSC index of ``projection``'s synapses (made once; the synapses never change)."""
    cached = getattr(projection, "_by_target", None)
    if cached is None:
        synapses = np.argsort(projection._post_ids, kind="stable")
        counts = np.bincount(projection._post_ids, minlength=projection.post.n)
        col_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        sources = np.repeat(np.arange(projection.pre.n, dtype=np.int32), np.diff(projection.row_ptr))[synapses]
        cached = (col_ptr, synapses.astype(np.int64), sources)
        projection._by_target = cached
    return cached


def _lower_plasticity(projection: Projection, index: int, dt: float) -> LoweredPlasticity:
    rule, traces = projection.plasticity, projection._traces
    col_ptr, col_synapses, col_sources = _by_target(projection)
    modulator = rule.modulator
    width = 1 if modulator is None or modulator.n == 1 else projection.post.n
    modulated = (modulator is not None and rule.modulates in ("potentiation", "both"),
                 modulator is not None and rule.modulates in ("depression", "both"))
    lowered = LoweredPlasticity(
        projection=index, pre=projection.pre.index, post=projection.post.index, col_ptr=col_ptr,
        col_synapses=col_synapses, col_sources=col_sources, pre_trace=traces.pre_trace, pre_seen=traces.pre_seen,
        post_trace=traces.post_trace, post_seen=traces.post_seen, decay_plus=_decay_table(rule.tau_plus, dt),
        decay_minus=_decay_table(rule.tau_minus, dt),
        params=np.array([rule.a_plus, rule.a_minus, rule.w_min, rule.w_max, float(rule.rule == "multiplicative")]),
        modulation=np.ones((2, width)), modulator=modulator, modulated=modulated,
    )
    lowered.refresh()
    return lowered


def _shared_column(consts: np.ndarray) -> np.ndarray:
    """One column of constants when every neuron has the same ones (see the model language)."""
    if consts.shape[1] > 1 and np.all(consts == consts[:, :1]):
        return np.ascontiguousarray(consts[:, :1])
    return consts


def _population_key(seed: int, index: int) -> int:
    """A 64-bit key for the counter-based random numbers of population ``index``."""
    return int(np.random.SeedSequence([seed, index, 0x5EED]).generate_state(1, dtype=np.uint64)[0])


#: the step of a value population's pulse slot that holds no pulse (never reached)
NO_PULSE = np.iinfo(np.int64).max

#: status codes a backend leaves in ``LoweredNetwork.status[0]``
STATUS_OK = 0
STATUS_NOT_FINITE = 1
STATUS_SPIKE_OVERFLOW = 2
