"""Lowering: from declared populations and projections to the flat arrays a backend runs.

The lowered network holds references to the declarations' own arrays (state, synapses,
weights) and to the network's run state (rings, published outputs, pending counts, traces:
:mod:`ranvier.engine.state`), plus what a run needs besides: per-neuron constants for this
``dt``, spike buffers, monitor buffers and counters.
"""

from __future__ import annotations

import enum
import warnings
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import RanvierWarning
from .array_trace import Trace, UntraceableError, trace
from .kinds import Kind, ProjectionKind
from .poisson_input import drive_key
from .state import Traces

if TYPE_CHECKING:
    from .model import ArrayStep
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
    multiple of sixteen so it can be scanned four 64-bit words at a time). ``state``,
    ``consts`` and ``ring`` are in the network's precision. ``ring`` is the delay ring buffer
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
    #: a value population updated on the host (``advance``): a source of pulses to the core whose
    #: state the host owns
    on_host: bool = False
    #: Poisson drives inside this population (``ranvier.engine.poisson_input``), one entry each in
    #: declaration order: before the update of step k, neuron i draws ``count = poisson_count(
    #: uniform01(drive_keys[m], k, i), *drive_params[m])`` (params: mean per update, exp(-mean)) and
    #: adds ``dtype(count) * drive_weights[m]`` to receptor ``drive_receptors[m]``'s input where
    #: count > 0; ``drive_events[m]`` sums the counts (synaptic events)
    drive_names: list[str] = field(default_factory=list)
    drive_receptors: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    drive_params: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.float64))
    drive_weights: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    drive_keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    drive_events: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass
class LoweredProjection:
    """One projection: CSR synapses, and where its spikes land.

    An implicit all-to-all projection (``all_to_all``) has no ``row_ptr`` / ``post_ids``: each
    spike of source ``j`` reaches targets ``0 .. width - 1`` in order, skipping ``j`` unless
    ``autapses``, with the one weight ``weights[0]`` and the one delay ``delay_steps``.

    A convolution has a ``geometry`` (int64, ``connectivity.GEOMETRY_FIELDS``), its kernel as
    ``weights``, one delay and ``row_ptr`` (each source's synapse count, summed; no ``post_ids``):
    each spike's targets are computed (``connectivity.Convolution``), one addition per target.
    """

    name: str
    pre: int
    post: int
    receptor: int
    row_ptr: np.ndarray | None
    post_ids: np.ndarray | None
    weights: np.ndarray
    weight_stride: int
    delay_steps: int | np.ndarray
    all_to_all: bool = False
    width: int = 0
    autapses: bool = True
    geometry: np.ndarray | None = None

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
    #: the modulator's published output (its run state)
    modulator_output: np.ndarray | None = None

    def refresh(self) -> None:
        """Take up the modulator's current output as the factors of the modulated terms."""
        if self.modulator_output is None:
            return
        for row, modulated in enumerate(self.modulated):
            if modulated:
                self.modulation[row] = self.modulator_output[0]


@dataclass
class LoweredStateMonitor:
    """A state monitor: samples ``state[row, ids]`` of population ``population``."""

    population: int
    row: int
    ids: np.ndarray
    every: int
    #: sampled at the population's updates ``k`` (an elementwise value population), as the sample after step ``k - 1``
    at_updates: bool = False
    #: the type of the samples: the state's (the network's precision)
    dtype: np.dtype = np.dtype(np.float32)
    values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    count: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))

    def allocate(self, steps: int) -> None:
        """Room for the samples of any ``steps`` consecutive steps: the host empties the buffer
        after every stretch the backend advances (at most ``steps`` long), so it is sized by the
        stretch, not the run. Kept when it already has that room (the backends keep their
        arguments while the buffers stay the same)."""
        samples = steps // self.every + 1
        if self.values.shape != (samples, len(self.ids)) or self.values.dtype != self.dtype:
            self.values = np.zeros((samples, len(self.ids)), dtype=self.dtype)
            self.steps = np.zeros(samples, dtype=np.int64)
        self.count[0] = 0

    def bytes_per_step(self) -> float:
        """The buffer's bytes per simulated step."""
        return (len(self.ids) * self.dtype.itemsize + 8) / self.every


class Operator(enum.IntEnum):
    """How a value projection computes ``y = W x`` from its source's published output."""

    #: one weight between every source and every target: ``y_i = w sum_j x_j`` (minus ``w x_i``
    #: without autapses), O(n) work and O(1) memory
    ALL_TO_ALL = 0
    #: compressed sparse rows by target: ``y_i = sum_e values[e] x[columns[e]]`` over row ``i``
    SPARSE = 1
    #: the same with one weight for every synapse: ``y_i = w sum_e x[columns[e]]`` (no weights stored)
    UNIFORM_SPARSE = 2


class Consumer(enum.IntEnum):
    """What receives a value projection's ``y``."""

    #: the input rows of a value population, at its update
    INPUTS = 0
    #: a spiking population's receptor, in every step of the source's window (held)
    HOLD = 1
    #: a state variable of a spiking population, written at the source's update
    SET = 2


@dataclass
class LoweredValueMap:
    """A value or set projection as an operator ``y = W x`` (float64).

    Sums run left to right over the sources (all-to-all) or over a row's entries, which are in
    the order of the projection's synapses: every backend adds in the same order, so their
    results agree to the bit. ``destination`` is the first input row (``INPUTS``), the
    receptor (``HOLD``) or the state row (``SET``) of ``post``; ``scratch`` holds ``y``.
    ``compiled``: the backend applies it (into an elementwise value population's inputs, or a
    hold or set from one); otherwise the host value stage does.
    """

    name: str
    pre: int
    post: int
    consumer: Consumer
    destination: int
    channels: int
    synapses: int
    operator: Operator
    weight: float
    autapses: bool
    row_ptr: np.ndarray
    columns: np.ndarray
    values: np.ndarray
    targets: np.ndarray
    scratch: np.ndarray
    compiled: bool


@dataclass
class LoweredCount:
    """Spikes counted into a value population's windows (a "count" projection), delivered by the backend.

    A spike of source ``j`` sent in step ``s`` with delay ``d`` adds ``float64(w)`` to
    ``pending[((s + d) // period) % windows, target]``; the update ending window ``m`` adds
    row ``m % windows`` to input row ``row`` and clears it.
    """

    name: str
    pre: int
    post: int
    row: int
    row_ptr: np.ndarray
    post_ids: np.ndarray
    weights: np.ndarray
    weight_stride: int
    delay_steps: np.ndarray
    per_synapse_delays: bool
    all_to_all: bool
    autapses: bool
    pending: np.ndarray
    period: int


@dataclass
class LoweredValuePopulation:
    """A value population the backend updates: an elementwise one (a model-language ``step``), or one
    whose :class:`~ranvier.engine.model.ArrayStep` traced (``array_step`` and its ``trace``).

    It updates at the steps ``k`` that are multiples of ``period``, over the window
    ``[k - period, k)``: ``inputs`` (float64, one row per port channel, ``n`` wide, or the ports'
    width for an array step) gathers its value maps and counts in declaration order (``sources``:
    ``("map", index)`` / ``("count", index)``), then ``step`` runs for every unit, then ``finish``
    (an array step instead runs once; ``consts`` then holds its trace's constants, packed); the
    output rows go to ``published``
    (``previous`` keeps the output before the update, for host populations that read it at
    the same step). ``population`` indexes ``LoweredNetwork.populations``, whose pulse
    schedule receives its pulses.
    """

    population: int
    name: str
    n: int
    period: int
    step_function: object
    finish_function: object
    state: np.ndarray
    consts: np.ndarray
    key: np.uint64
    inputs: np.ndarray
    published: np.ndarray
    #: the same values unit by unit, ``(n, channels)``, for the compiled sparse products that read them
    published_by_unit: np.ndarray
    previous: np.ndarray | None
    output_rows: np.ndarray
    pulses: bool
    sources: list[tuple[str, int]]
    #: indices of the value maps this population's output feeds at its update (holds and sets)
    feeds: list[int]
    #: ``(plastic index, row)`` of the modulation rows its output sets
    modulates: list[tuple[int, int]]
    array_step: ArrayStep | None = None
    trace: Trace | None = None


@dataclass
class LoweredNetwork:
    """Everything a backend needs, as arrays; ``chunk`` is the min-delay chunk length (steps),
    ``dtype`` the network's precision (float32 or float64 state, constants, rings and weights)."""

    dt: float
    chunk: int
    populations: list[LoweredPopulation]
    projections: list[LoweredProjection]
    state_monitors: list[LoweredStateMonitor]
    synaptic_events: np.ndarray
    status: np.ndarray
    dtype: np.dtype
    plastic: list[LoweredPlasticity] = field(default_factory=list)
    values: list[LoweredValuePopulation] = field(default_factory=list)
    value_maps: list[LoweredValueMap] = field(default_factory=list)
    counts: list[LoweredCount] = field(default_factory=list)
    count_events: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: population index -> published output (float64 ``(channels, n)``) of every value population
    published: dict[int, np.ndarray] = field(default_factory=dict)
    #: indices of the value populations the backend updates (the rest update on the host)
    updated: frozenset[int] = frozenset()

    def next_value_boundary(self, step: int) -> int | None:
        """The first step after ``step`` at which an elementwise value population updates."""
        return min((step // v.period + 1) * v.period for v in self.values) if self.values else None


def _ring_slots(network: Network, population: Population) -> int:
    """Ring slots for the spikes and held values that reach ``population`` ahead of time."""
    if population.model.kind == Kind.VALUE:
        return 1
    # a population with its own dt also keeps the window of input it has not yet consumed
    spikes = [p.max_delay_steps + population.period for p in network.projections
              if p.post is population and p.kind == ProjectionKind.SPIKE]
    # a value is held in the ring for every step of its source's window
    values = [p.pre.period for p in network.projections if p.post is population and p.kind == ProjectionKind.VALUE]
    return max(spikes + values, default=1)


def _resize_ring(population: Population, slots: int, step: int) -> np.ndarray:
    """The ring buffer of ``population``, made ``slots`` long, keeping input already scheduled for later steps."""
    shape = (slots, len(population.model.receptors), population.n)
    run = population.network.run_state.population(population.name)
    old = run.ring
    if old is not None and old.shape == shape:
        return old
    ring = np.zeros(shape, dtype=population.network.dtype)
    if old is not None:
        for ahead in range(min(old.shape[0], slots)):
            ring[(step + ahead) % slots] = old[(step + ahead) % old.shape[0]]
    run.ring = ring
    return ring


class ArraySteps(enum.Enum):
    """Where value populations with an :class:`~ranvier.engine.model.ArrayStep` update."""

    #: on the host, between the backend's stretches (the cuda backend)
    HOST = "host"
    #: in the backend, as numpy code (the numpy backend)
    NUMPY = "numpy"
    #: in the backend, traced and compiled (the numba backend); a step that cannot be traced stays on the host
    TRACED = "traced"


def lower(network: Network, array_steps: ArraySteps = ArraySteps.NUMPY) -> LoweredNetwork:
    """Lower ``network`` for a run starting at its current step, its array-step populations where
    ``array_steps`` says (see :func:`backend_values`)."""
    dt = network.dt
    updated = backend_values(network, array_steps)
    populations = []
    for population in network.populations.values():
        model = population.model
        ring = _resize_ring(population, _ring_slots(network, population), network.step)
        is_value = model.kind == Kind.VALUE
        own_dt = population.dt
        bound = (population.n if model.pulses else 0) if is_value else int(
            model.spike_bound(population.params, own_dt, population.n))
        lowered = LoweredPopulation(
            # to the compiled core a value population is a source: its pulses are scheduled at its updates
            name=population.name, n=population.n, kind=Kind.SCHEDULED if is_value else model.kind,
            step_function=getattr(model, "step", None), checks_finite=model.checks_finite,
            state=population.state,
            consts=_shared_column(np.ascontiguousarray(model.constants(population.params, own_dt),
                                                       dtype=network.dtype)),
            ring=ring, key=np.uint64(_population_key(network.seed, population.index)),
            spike_bound=bound, flags=np.zeros(-(-population.n // _FLAG_BLOCK) * _FLAG_BLOCK, dtype=np.uint16),
            spike_ids=np.zeros(0, dtype=np.int32), spike_steps=np.zeros(0, dtype=np.int64),
            spike_count=np.zeros(1, dtype=np.int64), period=1 if is_value else population.period,
            on_host=is_value and population.index not in updated,
        )
        if model.kind == Kind.SCHEDULED:
            steps, ids = model.schedule(dt, population.name)
            lowered.source_steps, lowered.source_ids = steps, ids
            lowered.source_next[0] = np.searchsorted(steps, network.step)
        elif is_value:
            lowered.source_steps = np.full(population.n, NO_PULSE, dtype=np.int64)
            lowered.source_ids = np.zeros(population.n, dtype=np.int32)
        _lower_drives(network, population, lowered)
        populations.append(lowered)
    spiking = [p for p in network.projections if p.kind == ProjectionKind.SPIKE]
    projections = [_lower_projection(p) for p in spiking]
    counted = [p for p in network.projections if p.kind == ProjectionKind.COUNT]
    # counts are delivered by the backend at the end of each chunk, like spikes
    chunk = min((p.min_delay_steps for p in spiking + counted), default=_FREE_CHUNK)
    for lowered in populations:
        # a population that never spikes (a value population without pulses, an empty source) needs no buffer
        capacity = max(_MIN_SPIKE_CAPACITY, 4 * lowered.spike_bound * chunk) if lowered.spike_bound else 0
        lowered.spike_ids = np.zeros(capacity, dtype=np.int32)
        lowered.spike_steps = np.zeros(capacity, dtype=np.int64)
    monitors = [LoweredStateMonitor(m.population.index, row, m.ids, m.every_steps,
                                    at_updates=m.population.index in updated, dtype=network.dtype)
                for m in compiled_monitors(network, updated) for row in m.rows]
    plastic = [_lower_plasticity(p, j, dt) for j, p in enumerate(spiking) if p.plasticity is not None]
    value_maps = [_lower_value_map(p, updated) for p in network.projections
                  if p.kind in (ProjectionKind.VALUE, ProjectionKind.SET)]
    counts = [_lower_count(p) for p in counted]
    values = [_lower_value_population(network, p, value_maps, counts, plastic, populations[p.index].key,
                                      updated)
              for p in network.populations.values() if p.index in updated]
    return LoweredNetwork(dt, chunk, populations, projections, monitors,
                          synaptic_events=np.zeros(len(projections), dtype=np.int64),
                          status=np.zeros(3, dtype=np.int64), dtype=network.dtype, plastic=plastic, values=values,
                          value_maps=value_maps, counts=counts, count_events=np.zeros(len(counts), dtype=np.int64),
                          published={p.index: published_output(p) for p in network.populations.values()
                                     if p.model.kind == Kind.VALUE}, updated=frozenset(updated))


def _lower_drives(network: Network, population: Population, lowered: LoweredPopulation) -> None:
    """The Poisson drives into ``population`` as the small arrays of :class:`LoweredPopulation`."""
    drives = [(ordinal, d) for ordinal, d in enumerate(network.poisson_inputs) if d.post is population]
    if not drives:
        lowered.drive_weights = np.zeros(0, dtype=network.dtype)
        return
    means = np.array([d.mean_per_step() for _, d in drives], dtype=np.float64)
    lowered.drive_names = [d.name for _, d in drives]
    lowered.drive_receptors = np.array([d.receptor_index for _, d in drives], dtype=np.int64)
    lowered.drive_params = np.ascontiguousarray(np.stack([means, np.exp(-means)], axis=1))
    lowered.drive_weights = np.array([d.weight for _, d in drives], dtype=network.dtype)
    lowered.drive_keys = np.array([drive_key(network.seed, population.index, ordinal) for ordinal, _ in drives],
                                  dtype=np.uint64)
    lowered.drive_events = np.zeros(len(drives), dtype=np.int64)


def backend_values(network: Network,
                   array_steps: ArraySteps) -> dict[int, tuple[ArrayStep, Trace | None] | None]:
    """The value populations the backend updates, by index: None for an elementwise one, and, unless
    ``array_steps`` is ``HOST``, ``(step, its trace or None)`` for one with a
    :meth:`~ranvier.engine.model.ValueModel.array_step`, its ports all of one width
    (``TRACED``: and whose step traces; one that does not says why in a warning). The others update
    on the host."""
    updated: dict[int, tuple[ArrayStep, Trace] | None] = {}
    for population in network.populations.values():
        model = population.model
        if model.kind != Kind.VALUE:
            continue
        if model.elementwise:
            updated[population.index] = None
            continue
        step = model.array_step(population.n, population.dt) if array_steps is not ArraySteps.HOST else None
        if step is None:
            continue
        ports = model.ports(population.n)
        widths = {width for width, _ in ports.values()}
        if len(widths) != 1:
            continue
        if array_steps is ArraySteps.NUMPY:
            updated[population.index] = (step, None)
            continue
        inputs = np.zeros((sum(channels for _, channels in ports.values()), widths.pop()))
        try:
            updated[population.index] = (step, trace(step.function, *step.gather(population.state, inputs)))
        except UntraceableError as error:
            warnings.warn(f"population {population.name!r} ({model!r}): its array step cannot be compiled "
                          f"({error}); it runs in numpy on the host", RanvierWarning, stacklevel=4)
    return updated


def compiled_monitors(network: Network, updated: dict[int, object] | frozenset[int]) -> list:
    """The state monitors the backend samples: all but those of host value populations (``updated``:
    the value populations the backend updates, :func:`backend_values`).

    A value population's are sampled at its updates (:attr:`LoweredStateMonitor.at_updates`).
    """
    return [m for m in network.state_monitors if m.population.model.kind != Kind.VALUE or m.population.index in updated]


def published_output(population: Population) -> np.ndarray:
    """The array holding ``population``'s published output (float64 ``(channels, n)``), made once."""
    shape = (population.model.channels, population.n)
    run = population.network.run_state.population(population.name)
    if run.published is None or run.published.shape != shape:
        run.published = np.zeros(shape, dtype=np.float64)
    return run.published


def _lower_value_map(projection: Projection, updated: dict[int, object]) -> LoweredValueMap:
    post, pre = projection.post, projection.pre
    consumer = (Consumer.SET if projection.kind == ProjectionKind.SET else
                Consumer.INPUTS if post.model.kind == Kind.VALUE else Consumer.HOLD)
    if consumer is Consumer.INPUTS:
        destination = _input_row(post.model, post.n, projection.receptor)
    elif consumer is Consumer.HOLD:
        destination = projection.receptor_index
    else:
        destination = post.model.state_names.index(projection.receptor)
    width = projection.width
    empty_index = np.zeros(0, dtype=np.int64)
    if projection.all_to_all:
        operator, row_ptr, columns, values = Operator.ALL_TO_ALL, empty_index, empty_index.astype(np.int32), \
            np.zeros(0)
        targets = np.arange(width, dtype=np.int64)
    else:
        operator = Operator.UNIFORM_SPARSE if projection.weight_stride == 0 else Operator.SPARSE
        post_ids = projection._post_ids
        order = np.argsort(post_ids, kind="stable")
        row_ptr = np.zeros(width + 1, dtype=np.int64)
        np.cumsum(np.bincount(post_ids, minlength=width), out=row_ptr[1:])
        columns = projection.pre_ids[order].astype(np.int32)
        values = np.zeros(0) if operator is Operator.UNIFORM_SPARSE else \
            np.asarray(projection.weights, dtype=np.float64)[order]
        targets = np.flatnonzero(np.diff(row_ptr))
    return LoweredValueMap(
        name=projection.name, pre=pre.index, post=post.index, consumer=consumer, destination=destination,
        channels=pre.model.channels if consumer is Consumer.INPUTS else 1, synapses=len(projection),
        operator=operator, weight=float(projection._weights[0]), autapses=projection.autapses, row_ptr=row_ptr,
        columns=columns, values=values, targets=targets, scratch=np.zeros((1, width)),
        compiled=(post if consumer is Consumer.INPUTS else pre).index in updated,
    )


def _input_row(model, n: int, port: str) -> int:
    """The first input row of ``port`` (the ports in order, each taking one row per channel)."""
    row = 0
    for name, (_, channels) in model.ports(n).items():
        if name == port:
            return row
        row += channels
    raise KeyError(port)


def count_windows(projection: Projection) -> int:
    """Windows of pending counts a count projection keeps: its longest delay, plus the current one."""
    return -(-projection.max_delay_steps // projection.post.period) + 2


def _lower_count(projection: Projection) -> LoweredCount:
    post = projection.post
    width = projection.width
    run = projection.pre.network.run_state.projection(projection.name)
    if run.pending is None or run.pending.shape != (count_windows(projection), width):
        run.pending = np.zeros((count_windows(projection), width), dtype=np.float64)
    per_synapse = isinstance(projection.delay_steps, np.ndarray)
    empty_index = np.zeros(0, dtype=np.int64)
    return LoweredCount(
        name=projection.name, pre=projection.pre.index, post=post.index,
        row=_input_row(post.model, post.n, projection.receptor),
        row_ptr=empty_index if projection.all_to_all else projection.row_ptr,
        post_ids=empty_index.astype(np.int32) if projection.all_to_all else projection._post_ids,
        weights=projection._weights, weight_stride=projection.weight_stride,
        delay_steps=projection.delay_steps if per_synapse else np.array([projection.delay_steps], dtype=np.uint16),
        per_synapse_delays=per_synapse, all_to_all=projection.all_to_all, autapses=projection.autapses,
        pending=run.pending, period=post.period,
    )


def _lower_value_population(network: Network, population: Population, value_maps: list[LoweredValueMap],
                            counts: list[LoweredCount], plastic: list[LoweredPlasticity],
                            key: np.uint64,
                            updated: dict[int, tuple[ArrayStep, Trace | None] | None]) -> LoweredValuePopulation:
    model = population.model
    sources: list[tuple[str, int]] = []
    maps_in = iter(j for j, m in enumerate(value_maps) if m.post == population.index and m.consumer is Consumer.INPUTS)
    counts_in = iter(j for j, c in enumerate(counts) if c.post == population.index)
    for projection in network.projections:
        if projection.post is population:
            counted = projection.kind == ProjectionKind.COUNT
            sources.append(("count", next(counts_in)) if counted else ("map", next(maps_in)))
    feeds = [j for j, m in enumerate(value_maps) if m.pre == population.index and m.consumer is not Consumer.INPUTS]
    read_by_host = any(m.pre == population.index and m.consumer is Consumer.INPUTS and m.post not in updated
                       for m in value_maps)
    modulates = [(q, row) for q, lowered in enumerate(plastic) if lowered.modulator is population
                 for row, modulated in enumerate(lowered.modulated) if modulated]
    published = published_output(population)
    ports = model.ports(population.n)
    rows = sum(channels for _, channels in ports.values())
    array_step, traced = updated[population.index] or (None, None)
    width = population.n if array_step is None else next(iter(ports.values()))[0]
    if traced is None:
        consts = _shared_column(np.ascontiguousarray(model.constants(population.params, population.dt),
                                                     dtype=np.float64))
    else:
        consts = traced.packed_constants()
    return LoweredValuePopulation(
        population=population.index, name=population.name, n=population.n, period=population.period,
        step_function=model.step, finish_function=model.finish, state=population.state, consts=consts,
        key=key, inputs=np.zeros((rows, width)), published=published,
        published_by_unit=np.ascontiguousarray(published.T),
        previous=np.zeros_like(published) if read_by_host else None,
        output_rows=np.array(model.output_rows, dtype=np.int64), pulses=model.pulses, sources=sources,
        feeds=feeds, modulates=modulates, array_step=array_step, trace=traced,
    )


def _lower_projection(projection: Projection) -> LoweredProjection:
    return LoweredProjection(
        name=projection.name, pre=projection.pre.index, post=projection.post.index,
        receptor=projection.receptor_index, row_ptr=None if projection.all_to_all else projection.row_ptr,
        post_ids=projection._post_ids, weights=projection._weights,
        weight_stride=projection.weight_stride, delay_steps=projection.delay_steps,
        all_to_all=projection.all_to_all, width=projection.width, autapses=projection.autapses,
        geometry=None if projection.convolution is None else projection.convolution.geometry(),
    )


#: trace decay tables stop where exp(-d dt / tau) drops below e^-50 (about 2e-22)
_DECAY_TAUS = 50.0


def _decay_table(tau: float, dt: float) -> np.ndarray:
    return np.exp(-np.arange(int(np.ceil(_DECAY_TAUS * tau / dt)) + 1) * dt / tau)


#: the CSC index of each plastic projection, made at its first lowering (its synapses never change)
_BY_TARGET: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _by_target(projection: Projection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSC index of ``projection``'s synapses: ``(col_ptr, synapses, sources)``."""
    cached = _BY_TARGET.get(projection)
    if cached is None:
        post_ids = projection.post_ids
        synapses = np.argsort(post_ids, kind="stable")
        counts = np.bincount(post_ids, minlength=projection.post.n)
        col_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        sources = np.repeat(np.arange(projection.pre.n, dtype=np.int32), np.diff(projection.row_ptr))[synapses]
        cached = _BY_TARGET[projection] = (col_ptr, synapses.astype(np.int64), sources)
    return cached


def _lower_plasticity(projection: Projection, index: int, dt: float) -> LoweredPlasticity:
    rule = projection.plasticity
    run = projection.pre.network.run_state.projection(projection.name)
    if run.traces is None or len(run.traces.pre_trace) != projection.pre.n:
        run.traces = Traces.zeros(projection.pre.n, projection.post.n)
    traces = run.traces
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
        modulator_output=None if modulator is None else published_output(modulator),
    )
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

class Status(enum.IntEnum):
    """The outcome a backend leaves in ``LoweredNetwork.status[0]`` (with the population and step after it)."""

    OK = 0
    NOT_FINITE = 1
    SPIKE_OVERFLOW = 2
    #: the cuda kernels stopped before a chunk that could overflow a spike buffer, at step ``status[2]``; the
    #: cuda runner takes it back (the host empties the buffers and goes on), so it never reaches the simulation
    PAUSED = 3
