"""Declaring a network: populations, projections, monitors and callbacks.

Declarations are plain objects holding numpy arrays. ``Network.run`` lowers them into flat
arrays once (see :mod:`ranvier.engine.lowering`) and hands those to a backend; the arrays a
population or projection holds are the ones the backends update, so nothing is copied back.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from ..errors import PlasticityError, PopulationError, ProjectionError, RanvierWarning, RecordingError, RunError
from .connectivity import AllToAll, Conv2d, Convolution, Rule, all_to_all_synapses, sort_rows_by_delay
from .distributions import Distribution, draw_in_blocks, materialise
from .kinds import Kind, ProjectionKind
from .model import Model, ValueModel
from .model_checks import check_model_functions, check_rows
from .monitors import SpikeMonitor, StateMonitor
from .poisson_input import PoissonDrive, PoissonInput, make_drive
from .queue import EventQueue
from .state import RunState
from .stats import Stats

if TYPE_CHECKING:
    from .simulation import Simulation

_MAX_DELAY_STEPS = np.iinfo(np.uint16).max
#: ``Network(precision=...)`` -> the float type of state, constants, synaptic input and weights
PRECISIONS: dict[str, type[np.floating]] = {"single": np.float32, "double": np.float64}

def _per_synapse(value, rng: np.random.Generator, n_synapses: int, dtype, convert, what: str, name: str) -> np.ndarray:
    """``value`` (number, array or distribution) as a ``dtype`` array: one entry if it was one number.

    ``convert`` checks a float64 block and turns it into ``dtype``; distributions are drawn and
    converted block by block (:func:`~.distributions.draw_in_blocks`), so building a projection
    never holds float64 copies of all its weights or delays.
    """
    owner = f"projection {name!r}"
    try:
        if not isinstance(value, Distribution):
            size = 1 if np.ndim(value) == 0 else n_synapses
            return np.asarray(convert(materialise(value, rng, size, what, owner)), dtype=dtype)
        values = np.empty(n_synapses, dtype=dtype)

        def draw(generator: np.random.Generator, start: int, count: int) -> None:
            values[start:start + count] = convert(materialise(value, generator, count, what, owner))

        draw_in_blocks(rng, n_synapses, draw)
        return values
    except ValueError as error:
        if isinstance(error, ProjectionError):
            raise
        raise ProjectionError(str(error)) from None


def _overflowing(values: np.ndarray, dtype: np.dtype) -> float | None:
    """The first of ``values`` that ``dtype`` (the network's precision) cannot hold, or None."""
    too_large = np.abs(values) > np.finfo(dtype).max
    return float(values[too_large][0]) if np.any(too_large) else None


def _to_precision(weights: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    """Float64 ``weights`` as ``dtype`` (the network's precision); a weight it cannot hold is an error."""
    if (value := _overflowing(weights, dtype)) is not None:
        raise ProjectionError(f"projection {name!r}: weight {value!r} overflows {np.dtype(dtype).name}")
    return weights.astype(dtype)


def _check_fits(values: np.ndarray, dtype: np.dtype, what: str, owner: str) -> None:
    """Refuse state values that the network's precision cannot hold (they would become infinite)."""
    if (value := _overflowing(values, dtype)) is not None:
        raise PopulationError(f"{owner}: {what} {value!r} overflows {np.dtype(dtype).name}")


def _remove(items: list, removed: list) -> None:
    """Take the objects ``removed`` out of ``items`` in place (by identity)."""
    gone = {id(item) for item in removed}
    items[:] = [item for item in items if id(item) not in gone]


def _check_finite(values: np.ndarray, what: str, name: str) -> None:
    """Refuse a NaN or infinite weight or delay given to projection ``name``, naming the synapse."""
    bad = ~np.isfinite(values)
    if np.any(bad):
        synapse = int(np.flatnonzero(bad)[0])
        raise ProjectionError(f"projection {name!r}: {what} {float(values[synapse])!r} of synapse {synapse} is not "
                              "finite")


def _sets_state(pre: Population, post: Population, receptor: str) -> bool:
    """Whether ``receptor`` names a state variable of a spiking ``post`` that value population ``pre`` sets."""
    return (isinstance(pre.model, ValueModel) and not isinstance(post.model, ValueModel)
            and receptor not in post.model.receptors and receptor in post.model.state_names)


def _target_width(post: Population, receptor: str) -> int:
    """Target indices of a projection into ``receptor`` of ``post``: its neurons, or a value population's port width."""
    return post.model.ports(post.n)[receptor][0] if isinstance(post.model, ValueModel) else post.n


def _out_of_memory(pre: Population, post: Population, rule, error: MemoryError) -> ProjectionError:
    """A named error for a projection whose synapses do not fit in memory, with the size they need."""
    pairs = pre.n * post.n
    expected = getattr(rule, "p", 1.0) * pairs if isinstance(getattr(rule, "p", None), float) else None
    synapses = pairs if isinstance(rule, AllToAll) else expected
    need = (f"{synapses:.3g} synapses need at least {synapses * 4 / 2**30:.3g} GiB for their target ids alone"
            if synapses is not None else str(error))
    return ProjectionError(f"connect {pre.name!r} -> {post.name!r}: out of memory building the synapses ({need}; "
                           f"numpy: {error}). An AllToAll projection with one weight and one delay stores "
                           "nothing per synapse; otherwise connect fewer pairs")


def _is_one_value(value) -> bool:
    """Whether a weight or delay is one number for every synapse (or None: not given)."""
    return value is None or (not isinstance(value, Distribution) and np.ndim(value) == 0)


def _sends_values(pre: Population, post: Population) -> bool:
    """Whether a projection from ``pre`` to ``post`` carries values (else spikes, or pulses)."""
    return isinstance(pre.model, ValueModel) and (isinstance(post.model, ValueModel) or not pre.model.pulses)


class Population:
    """``n`` neurons of one model.

    ``params`` maps each model parameter to its per-neuron values (float64); ``state`` is the
    ``(n_state, n)`` array the backends advance, in the network's precision (``net.dtype``).
    Read and write state with :meth:`get` and :meth:`set`.
    """

    def __init__(self, network: Network, model: Model, n: int, name: str, index: int,
                 params: dict[str, np.ndarray], state: np.ndarray, period: int = 1):
        self.network = network
        self.model = model
        self.n = n
        self.name = name
        self.index = index
        self.params = params
        self.state = state
        #: steps of the network's dt per update of this population (its own dt / network dt)
        self.period = period

    @property
    def dt(self) -> float:
        """Time step of this population's updates (s)."""
        return self.period * self.network.dt

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Population({self.name!r}, {type(self.model).__name__}, n={self.n})"

    def _row(self, variable: str) -> int:
        names = self.model.state_names
        if variable not in names:
            raise RecordingError(
                f"population {self.name!r}: unknown variable {variable!r}; it has {', '.join(names) or 'none'}"
            )
        return names.index(variable)

    def get(self, variable: str) -> np.ndarray:
        """A copy of state ``variable`` of every neuron (float64)."""
        return self.state[self._row(variable)].astype(np.float64)

    def set(self, variable: str, value) -> None:
        """Set state ``variable`` from a scalar, an array of ``n`` or a distribution."""
        row = self._row(variable)
        try:
            values = materialise(value, self.network._rng(), self.n, f"value of {variable!r}",
                                 f"population {self.name!r}")
        except ValueError as error:
            raise PopulationError(str(error)) from None
        _check_fits(values, self.state.dtype, f"value of {variable!r}", f"population {self.name!r}")
        self.state[row] = values


class Projection:
    """Synapses from ``pre`` to receptor ``receptor`` of ``post``, stored by source (CSR).

    ``pre_ids``, ``post_ids``, ``weights`` (V) and ``delays`` (s) are read-only arrays with one
    entry per synapse, sorted by source neuron. A weight or delay given as one number is stored
    once (``weight_stride == 0``), not per synapse, so such a projection takes 4 bytes per
    synapse (the target index).

    An all-to-all projection with one weight and one delay (``row_ptr`` and ``post_ids`` given
    as None) stores nothing per synapse (``all_to_all``): source ``j`` reaches every target
    index ``0 .. width - 1``, except ``j`` itself when ``autapses`` is False. Its ``row_ptr``,
    ``pre_ids`` and ``post_ids`` are made on each access; ``len``, ``out_degrees``,
    ``in_degrees``, ``weights`` and ``delays`` take no per-synapse memory.

    A convolution (``convolution``, from ``connect.Conv2d`` with one delay) stores its kernel once
    as ``weights`` and ``row_ptr`` (each source's synapse count, summed), no ``post_ids``: the
    backends compute each spike's targets from the geometry. ``post_ids``, ``pre_ids`` and
    ``weights`` then give the equivalent explicit synapses, made on each access.
    """

    def __init__(self, name: str, pre: Population, post: Population, receptor: str, row_ptr: np.ndarray | None,
                 post_ids: np.ndarray | None, weights: np.ndarray, delay_steps: int | np.ndarray,
                 autapses: bool = True, convolution: Convolution | None = None):
        self.name = name
        self.pre = pre
        self.post = post
        self.receptor = receptor
        receptors = post.model.receptors
        self.receptor_index = receptors.index(receptor) if receptor in receptors else -1
        #: whether the synapses are implicit: every source to every target index, nothing stored per synapse
        self.all_to_all = row_ptr is None
        #: the number of target indices: ``post.n``, or the width of a value population's input port
        self.width = _target_width(post, receptor)
        #: False when an all-to-all projection within one population leaves out each j -> j
        self.autapses = autapses
        self._row_ptr = row_ptr
        self._post_ids = post_ids
        self._weights = weights
        #: the geometry of a convolution whose kernel is ``weights`` (:class:`~ranvier.engine.connectivity.Convolution`)
        self.convolution = convolution
        self.weight_stride = 1 if convolution is not None else \
            0 if len(weights) == 1 and (self.all_to_all or len(post_ids) != 1) else 1
        self.delay_steps = delay_steps
        #: how its messages travel (:class:`ProjectionKind`)
        self.kind = (ProjectionKind.SET if _sets_state(pre, post, receptor) else
                     ProjectionKind.VALUE if _sends_values(pre, post) else
                     ProjectionKind.COUNT if isinstance(post.model, ValueModel) else ProjectionKind.SPIKE)
        #: the learning rule (``ranvier.plasticity.STDP``) of a plastic projection, else None
        self.plasticity = None

    def __len__(self) -> int:
        if self.convolution is not None:
            return int(self._row_ptr[-1])
        return self.pre.n * self._out_degree if self.all_to_all else len(self._post_ids)

    def __repr__(self) -> str:
        return f"Projection({self.name!r}, {len(self)} synapses)"

    @staticmethod
    def _read_only(array: np.ndarray) -> np.ndarray:
        view = array.view()
        view.flags.writeable = False
        return view

    @property
    def _out_degree(self) -> int:
        """Synapses of each source of an all-to-all projection."""
        return self.width if self.autapses else self.width - 1

    @property
    def row_ptr(self) -> np.ndarray:
        """Each source's first synapse, and the synapse count at the end (int64, ``pre.n + 1``)."""
        if self.all_to_all:
            return np.arange(self.pre.n + 1, dtype=np.int64) * self._out_degree
        return self._row_ptr

    @property
    def pre_ids(self) -> np.ndarray:
        return self._read_only(np.repeat(np.arange(self.pre.n, dtype=np.int32), self.out_degrees()))

    @property
    def post_ids(self) -> np.ndarray:
        if self.all_to_all:
            return self._read_only(all_to_all_synapses(self.pre.n, self.width, self.autapses)[1])
        if self.convolution is not None:
            return self._read_only(self.convolution.synapses()[1])
        return self._read_only(self._post_ids)

    @property
    def weights(self) -> np.ndarray:
        if self.convolution is not None:
            return self._read_only(self._weights[self.convolution.synapses()[2]])
        if self.weight_stride == 0:
            return self._read_only(np.broadcast_to(self._weights, len(self)))
        return self._read_only(self._weights)

    @property
    def delays(self) -> np.ndarray:
        dt = self.pre.network.dt
        if isinstance(self.delay_steps, np.ndarray):
            return self._read_only(self.delay_steps * dt)
        return self._read_only(np.broadcast_to(np.float64(self.delay_steps * dt), len(self)))

    @property
    def max_delay_steps(self) -> int:
        if isinstance(self.delay_steps, np.ndarray):
            return int(self.delay_steps.max(initial=1))
        return int(self.delay_steps)

    @property
    def min_delay_steps(self) -> int:
        if isinstance(self.delay_steps, np.ndarray):
            return int(self.delay_steps.min(initial=1))
        return int(self.delay_steps)

    @property
    def nbytes(self) -> int:
        """Memory held for the synapses: targets, row pointers, weights and delays."""
        delays = self.delay_steps.nbytes if isinstance(self.delay_steps, np.ndarray) else 0
        if self.all_to_all:
            return self._weights.nbytes + delays
        if self.convolution is not None:
            return self._row_ptr.nbytes + self._weights.nbytes + delays
        return self._post_ids.nbytes + self._row_ptr.nbytes + self._weights.nbytes + delays

    def out_degrees(self) -> np.ndarray:
        """Number of synapses of each source neuron."""
        if self.all_to_all:
            return np.full(self.pre.n, self._out_degree, dtype=np.int64)
        return np.diff(self._row_ptr)

    def in_degrees(self) -> np.ndarray:
        """Number of synapses into each target index (``width`` entries)."""
        if self.all_to_all:
            return np.full(self.width, self.pre.n if self.autapses else self.pre.n - 1, dtype=np.int64)
        if self.convolution is not None:
            return self.convolution.in_degrees()
        return np.bincount(self._post_ids, minlength=self.width)

    def set_weights(self, weights: np.ndarray) -> None:
        """Give every synapse its own weight (V, one per synapse in the order of ``post_ids``).

        An all-to-all projection or a convolution then stores its synapses explicitly, as CSR by source.
        """
        values = np.asarray(weights, dtype=np.float64)
        if values.shape != (len(self),):
            raise ProjectionError(f"projection {self.name!r}: set_weights needs {len(self)} weights (one per "
                                  f"synapse), got shape {values.shape}")
        _check_finite(values, "weight", self.name)
        values = _to_precision(values, self.pre.network.dtype, self.name)
        if self.plasticity is not None:
            self.plasticity._check_bounds(values, self.name)
        if self.all_to_all:
            self._row_ptr = self.row_ptr
            self._post_ids = all_to_all_synapses(self.pre.n, self.width, self.autapses)[1]
            self.all_to_all, self.autapses = False, True
        if self.convolution is not None:
            self._post_ids = self.convolution.synapses()[1]
            self.convolution = None
        self._weights = values
        self.weight_stride = 1
        self.pre.network._changed()

    def set_delays(self, delays: np.ndarray) -> None:
        """Give every synapse its own delay (s, one per synapse in the order of ``post_ids``).

        Rounded to whole steps of the network's ``dt``; each must be at least one step.
        """
        values = np.asarray(delays, dtype=np.float64)
        if values.shape != (len(self),):
            raise ProjectionError(f"projection {self.name!r}: set_delays needs {len(self)} delays (one per "
                                  f"synapse), got shape {values.shape}")
        _check_finite(values, "delay", self.name)
        steps = self.pre.network._to_delay_steps(values, self.name)
        if self.all_to_all or self.convolution is not None:
            self.set_weights(np.array(self.weights))  # per-synapse delays need explicit synapses
        self.delay_steps = steps
        self.pre.network._changed()


class Network:
    """A network of populations and projections, advanced on a grid of step ``dt`` (s).

    ``seed`` fixes every random draw (connectivity, initial values, Poisson input); the same
    seed gives the same spikes on every backend. ``seed=None`` draws one (see ``net.seed``).
    ``precision`` is ``"single"`` (default) or ``"double"``: float32 or float64 state and
    constants, and the same for the synaptic input in flight, the weights and the state
    recordings, on every backend (``net.precision``; ``net.dtype`` is the numpy type).
    Value populations compute in float64 either way; their state is kept in the network's precision.
    """

    def __init__(self, dt: float = 1e-4, seed: int | None = None, precision: str = "single"):
        if isinstance(dt, bool) or not isinstance(dt, int | float | np.integer | np.floating) or not (
                np.isfinite(dt) and dt > 0):
            raise RunError(f"Network: dt must be a positive, finite number of seconds, got {dt!r}")
        if not isinstance(precision, str) or precision not in PRECISIONS:
            raise RunError(f"Network: precision must be 'single' or 'double', got {precision!r}")
        self.dt = float(dt)
        self._precision = precision
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0):
            raise RunError(f"Network: seed must be a whole number >= 0 or None, got {seed!r}")
        self.seed = int(np.random.SeedSequence().entropy % (2**63)) if seed is None else int(seed)
        self._seeds = np.random.SeedSequence(self.seed)
        self.populations: dict[str, Population] = {}
        self.projections: list[Projection] = []
        self.spike_monitors: list[SpikeMonitor] = []
        self.state_monitors: list[StateMonitor] = []
        #: Poisson drives inside their targets (``connect(PoissonInput(...), target, ...)``), in declaration order
        self.poisson_inputs: list[PoissonDrive] = []
        self.stats = Stats()
        self.step = 0
        #: what runs keep besides state variables and weights: rings, published outputs, counts, traces
        self.run_state = RunState()
        self._events = EventQueue()
        self._structure_version = 0
        self._simulation: Simulation | None = None

    # -- declaration ---------------------------------------------------------------------------

    def _rng(self) -> np.random.Generator:
        """A generator with its own stream, derived from the seed in declaration order."""
        return np.random.default_rng(self._seeds.spawn(1)[0])

    def _changed(self) -> None:
        self._structure_version += 1

    @property
    def t(self) -> float:
        """Simulated time so far (s)."""
        return self.step * self.dt

    @property
    def precision(self) -> str:
        """``"single"`` or ``"double"``: the float type of state, constants, synaptic input and weights."""
        return self._precision

    @property
    def dtype(self) -> np.dtype:
        """The numpy float type of :attr:`precision` (float32 or float64)."""
        return np.dtype(PRECISIONS[self._precision])

    def __getitem__(self, name: str) -> Population:
        try:
            return self.populations[name]
        except KeyError:
            raise PopulationError(
                f"no population named {name!r}; the network has {', '.join(self.populations) or 'none'}"
            ) from None

    def population(self, model: Model, n: int | None = None, name: str | None = None,
                   init: Mapping[str, object] | None = None, dt: float | None = None) -> Population:
        """Add ``n`` neurons of ``model``; ``init`` maps state variables to initial values.

        ``dt`` (s) gives a value population its own update step, a whole multiple of the
        network's ``dt`` (default: the network's). A value population then updates once per
        window of that ``dt``; a spiking one advances by its ``dt`` in the last step of each
        window, on the input that arrived during the window, and its spikes carry that step.
        """
        name = f"pop{len(self.populations)}" if name is None else str(name)
        if name in self.populations:
            raise PopulationError(f"population {name!r}: the name is already taken")
        if not isinstance(model, Model):
            raise PopulationError(f"population {name!r}: model must be a ranvier neuron model, got {model!r}")
        # a step that breaks the model language's rules would run differently on different backends
        check_model_functions(model, f"population {name!r} ({type(model).__name__})")
        if n is None:
            n = getattr(model, "size", None)
            if n is None:
                raise PopulationError(f"population {name!r}: n is required for {type(model).__name__}")
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n <= 0:
            raise PopulationError(f"population {name!r}: n must be a positive integer, got {n!r}")
        size = getattr(model, "size", None)
        if size is not None and size != n:
            raise PopulationError(f"population {name!r}: the source has {size} neurons, got n={n}")
        n = int(n)
        owner = f"population {name!r}"
        period = self._period(model, getattr(model, "dt", None) if dt is None else dt, owner)
        rng = self._rng()
        try:
            params = {key: materialise(value, rng, n, f"parameter {key!r}", owner)
                      for key, value in model.parameters.items()}
            constants = model.constants(params, self.dt)  # validates parameter values now, not at run time
            if model.kind == Kind.SCHEDULED:
                model.schedule(self.dt, name)
            initial = dict(model.initial_state())
            for variable in (init or {}):
                if variable not in initial:
                    raise PopulationError(
                        f"{owner}: init names unknown variable {variable!r}; "
                        f"{type(model).__name__} has {', '.join(model.state_names) or 'none'}"
                    )
            initial.update(init or {})
            state = np.zeros((len(model.state_names), n), dtype=self.dtype)
            for row, variable in enumerate(model.state_names):
                values = materialise(initial[variable], rng, n, f"initial {variable!r}", owner)
                _check_fits(values, state.dtype, f"initial {variable!r}", owner)
                state[row] = values
        except ValueError as error:
            if isinstance(error, PopulationError):
                raise
            message = str(error)
            raise PopulationError(message if owner in message else f"{owner}: {message}") from None
        check_rows(model, len(model.state_names), np.shape(constants)[0], f"{owner} ({type(model).__name__})")
        population = Population(self, model, n, name, len(self.populations), params, state, period)
        self.populations[name] = population
        self._changed()
        return population

    def _period(self, model: Model, dt: float | None, owner: str) -> int:
        """Steps of the network's dt per update of a population with its own ``dt``."""
        if dt is None:
            return 1
        period = int(round(dt / self.dt)) if np.isfinite(dt) else 0
        if period < 1 or abs(period * self.dt - dt) > 1e-6 * self.dt:
            raise PopulationError(f"{owner}: dt must be a positive whole multiple of the network's dt = "
                                  f"{self.dt:.6g} s, got {dt!r}")
        if period > 1 and model.kind == Kind.SCHEDULED:
            raise PopulationError(f"{owner}: a {type(model).__name__} emits its spikes at their own times; it "
                                  f"takes no dt of its own, got {dt!r}")
        return period

    def _own(self, population: object, role: str) -> Population:
        if not isinstance(population, Population):
            raise ProjectionError(f"connect: {role} must be a Population, got {population!r}")
        if population.network is not self or self.populations.get(population.name) is not population:
            raise ProjectionError(
                f"connect: {role} population {population.name!r} belongs to another network"
            )
        return population

    def connect(self, pre: Population | Iterable[Population] | PoissonInput,
                post: Population | Iterable[Population], rule: Rule | None = None,
                weight: float | np.ndarray | Distribution | None = None,
                delay: float | np.ndarray | Distribution | None = None,
                receptor: str | None = None, plasticity=None) -> Projection | list[Projection] | PoissonDrive:
        """Connect ``pre`` to ``post`` by ``rule``.

        ``weight`` (V, added to the receptor's current per spike) and ``delay`` (s, at least
        ``dt``, rounded to whole steps) are scalars, per-synapse arrays or distributions;
        ``FromArrays`` may carry its own. ``delay=None`` means one step. ``receptor`` defaults
        to the target model's only receptor. Lists of populations connect every pair and
        return a list of projections. ``plasticity`` (``ranvier.plasticity.STDP``) makes the
        weights learn during runs; a plastic projection keeps one weight per synapse.

        With value populations (``ranvier.engine.values`` has the timing): into a value
        population, ``receptor`` names an input port and ``weight`` scales the spike counts or
        values that reach it; from a value population, ``weight`` scales its output, delivered
        at the target's next update (no ``delay``). A value population may also name a state
        variable of a spiking population as ``receptor`` (``receptor="v"``): each of its updates
        then sets that variable of the targets to ``sum_j w_ij out_j``, as the low-rate network
        of a hybrid ANN-SNN initialises the spiking network's state.

        ``pre`` may be a :class:`~ranvier.connect.PoissonInput` (no ``rule``, no ``delay``): every
        neuron of ``post`` then draws ``n_inputs`` Poisson trains' input into ``receptor`` in each
        step, inside its update, with no spikes travelling (Brian 2's ``PoissonInput``); it
        returns the :class:`~ranvier.engine.poisson_input.PoissonDrive`, listed in ``net.poisson_inputs``.
        """
        single_post = isinstance(post, Population | str)
        posts = [self._named(post)] if single_post else [self._named(target) for target in post]
        if isinstance(pre, PoissonInput):
            drives = []
            try:
                for target in posts:
                    drive = make_drive(self, pre, target, rule, weight, delay, receptor, plasticity)
                    self.poisson_inputs.append(drive)  # before the next: it takes the next free name
                    drives.append(drive)
            except BaseException:
                # all or nothing: a failed target leaves no drive onto the others
                _remove(self.poisson_inputs, drives)
                raise
            self._changed()
            return drives[0] if single_post else drives
        if rule is None:
            raise ProjectionError(f"connect {getattr(pre, 'name', pre)!r} -> {getattr(post, 'name', post)!r}: "
                                  "a connection rule is required (ranvier.connect: AllToAll, OneToOne, ...)")
        single_pre = isinstance(pre, Population | str)
        pres = [self._named(pre)] if single_pre else [self._named(source) for source in pre]
        made = []
        try:
            for a in pres:
                for b in posts:
                    try:
                        made.append(self._connect_one(a, b, rule, weight, delay, receptor, plasticity))
                    except MemoryError as error:
                        raise _out_of_memory(a, b, rule, error) from None
        except BaseException:
            # all or nothing: a failed pair leaves no projection between the others
            _remove(self.projections, made)
            self._changed()
            raise
        return made[0] if single_pre and single_post else made

    def _named(self, population: object) -> object:
        """``population``, or the population of that name (a name this network lacks is an error)."""
        if isinstance(population, str):
            if population not in self.populations:
                raise ProjectionError(f"connect: no population named {population!r}; the network has "
                                      f"{list(self.populations)}")
            return self.populations[population]
        return population

    def _connect_one(self, pre, post, rule, weight, delay, receptor, plasticity=None) -> Projection:
        pre = self._own(pre, "pre")
        post = self._own(post, "post")
        if not isinstance(rule, Rule):
            raise ProjectionError(
                f"connect {pre.name!r} -> {post.name!r}: rule must be a ranvier.connect rule, got {rule!r}"
            )
        receptors = post.model.receptors
        if not receptors and not _sets_state(pre, post, receptor):
            raise ProjectionError(f"connect {pre.name!r} -> {post.name!r}: {post.name!r} takes no synaptic input "
                                  f"(its model, {type(post.model).__name__}, has no receptors)")
        if receptor is None:
            if len(receptors) != 1:
                raise ProjectionError(
                    f"connect {pre.name!r} -> {post.name!r}: say which receptor, one of {list(receptors)}"
                )
            receptor = receptors[0]
        name = f"{pre.name}->{post.name}:{receptor}"
        if receptor not in receptors and not _sets_state(pre, post, receptor):
            settable = (f"; a value population may also set one of its state variables "
                        f"({', '.join(post.model.state_names)})" if post.model.kind == Kind.SPIKING else "")
            raise ProjectionError(
                f"projection {name!r}: unknown receptor {receptor!r}; {post.name!r} has {list(receptors) or 'none'}"
                f"{settable}"
            )
        if post.model.kind not in (Kind.SPIKING, Kind.VALUE):
            raise ProjectionError(f"projection {name!r}: {post.name!r} takes no synaptic input")
        width = self._check_channels(pre, post, receptor, name)
        taken = {p.name for p in self.projections}
        base, copy = name, 1
        while name in taken:
            copy += 1
            name = f"{base}#{copy}"
        rng = self._rng()
        same = pre is post and width == pre.n
        implicit = isinstance(rule, AllToAll) and _is_one_value(weight) and _is_one_value(delay) and plasticity is None
        if isinstance(rule, Conv2d) and weight is not None:
            raise ProjectionError(f"projection {name!r}: a Conv2d's weights are its kernel; scale the kernel instead "
                                  f"of giving weight={weight!r}")
        # spikes between spiking populations with one delay: the kernel is kept once, the targets computed
        convolution = (isinstance(rule, Conv2d) and _is_one_value(delay) and plasticity is None
                       and not isinstance(pre.model, ValueModel) and not isinstance(post.model, ValueModel))
        if convolution:
            geometry = rule.check_sizes(pre.n, width, name)
            row_ptr, post_ids, autapses = geometry.row_ptr(), None, True
            n_synapses = int(row_ptr[-1])
            weight = rule.kernel.ravel()
        elif implicit:
            # one weight and one delay for every pair: nothing to store per synapse
            row_ptr = post_ids = None
            autapses = rule.autapses or not same
            n_synapses = pre.n * (width if autapses else width - 1)
        else:
            synapses = rule.build(pre.n, width, rng, same, name)
            row_ptr, post_ids, autapses = synapses.row_ptr, synapses.post_ids, True
            n_synapses = len(post_ids)
            weight = synapses.weight if weight is None else weight
            delay = synapses.delay if delay is None else delay
        if weight is None:
            raise ProjectionError(f"projection {name!r}: weight is required")
        weights = _to_precision(weight, self.dtype, name) if convolution else _per_synapse(
            weight, rng, n_synapses, self.dtype, lambda w: _to_precision(w, self.dtype, name), "weight", name)
        if delay is not None and _sends_values(pre, post):
            raise ProjectionError(f"projection {name!r}: values from {pre.name!r} reach {post.name!r} at its next "
                                  f"update; a delay cannot be set, got {delay!r}")
        delay_steps = 1 if delay is None else _per_synapse(
            delay, rng, n_synapses, np.uint16, lambda d: self._to_delay_steps(d, name), "delay", name)
        if isinstance(delay_steps, np.ndarray) and len(delay_steps) == 1 and (n_synapses != 1 or implicit
                                                                              or convolution):
            delay_steps = int(delay_steps[0])
        if plasticity is not None and len(weights) == 1 and n_synapses != 1:
            weights = np.repeat(weights, n_synapses)  # each synapse learns its own weight
        if plasticity is None and post_ids is not None and isinstance(delay_steps, np.ndarray):
            # each source's synapses in order of delay, for delivery (no sum changes); a plastic
            # projection keeps its targets ascending, which its learning rule's threads search.
            # Sorted in place: the rule built these arrays and the weights and delays were converted
            # into new ones, so no caller's array changes
            sort_rows_by_delay(row_ptr, delay_steps, post_ids, weights)
        projection = Projection(name, pre, post, receptor, row_ptr, post_ids, weights, delay_steps, autapses,
                                geometry if convolution else None)
        if plasticity is not None:
            # the rule attaches itself: the engine does not import the learning rules built on it
            if not callable(getattr(plasticity, "attach", None)):
                raise PlasticityError(f"projection {name!r}: plasticity must be a ranvier.plasticity.STDP, "
                                      f"got {plasticity!r}")
            plasticity.attach(projection)
        self.projections.append(projection)
        self._changed()
        return projection

    @staticmethod
    def _check_channels(pre: Population, post: Population, receptor: str, name: str) -> int:
        """Check that what ``pre`` sends fits ``post``'s receptor or port; return the target width."""
        if not isinstance(post.model, ValueModel):
            if _sends_values(pre, post) and pre.model.channels != 1:
                raise ProjectionError(
                    f"projection {name!r}: {pre.name!r} emits {pre.model.channels} channels per unit; a spiking "
                    f"population takes one (connect from a one-channel value population, or use its pulses)")
            return post.n
        width, channels = post.model.ports(post.n)[receptor]
        sent = pre.model.channels if isinstance(pre.model, ValueModel) else 1
        if sent != channels:
            raise ProjectionError(f"projection {name!r}: port {receptor!r} of {post.name!r} takes {channels} "
                                  f"channel(s), {pre.name!r} sends {sent}")
        return width

    def _to_delay_steps(self, delays: np.ndarray, name: str) -> np.ndarray:
        if delays.size and delays.min() < self.dt * (1 - 1e-6):
            raise ProjectionError(f"projection {name!r}: delay {delays.min():.6g} s is below dt = {self.dt:.6g} s")
        steps = np.rint(delays / self.dt)
        if steps.size and steps.max() > _MAX_DELAY_STEPS:
            raise ProjectionError(
                f"projection {name!r}: delay {delays.max():.6g} s exceeds {_MAX_DELAY_STEPS} steps of dt"
            )
        return steps.astype(np.uint16)

    def record(self, population: Population | str, variable: str = "spikes", ids=None,
               every: float | None = None) -> SpikeMonitor | StateMonitor:
        """Record ``"spikes"`` or a state variable of ``population`` (all neurons by default).

        State is sampled every ``every`` seconds (default: every step). ``ids`` are recorded once
        each, in ascending order: a state monitor's ``ids`` give the order of its columns.
        """
        if isinstance(population, str):
            population = self[population]
        if not isinstance(population, Population) or population.network is not self:
            raise RecordingError(f"record: {population!r} is not a population of this network")
        owner = f"population {population.name!r}"
        if ids is not None:
            ids = np.unique(np.asarray(ids).ravel())
            if ids.size and not np.issubdtype(ids.dtype, np.integer):
                raise RecordingError(f"{owner}: ids must be integers, got {ids[:5].tolist()}")
            outside = ids[(ids < 0) | (ids >= population.n)]
            if outside.size:
                raise RecordingError(f"{owner}: ids must be in [0, {population.n}), got {outside[:5].tolist()}")
            ids = ids.astype(np.int64)
        model = population.model
        if variable == "spikes":
            if model.kind not in (Kind.SPIKING, Kind.SCHEDULED) and not getattr(model, "pulses", False):
                raise RecordingError(f"{owner}: {type(model).__name__} does not spike")
            monitor = SpikeMonitor(population, ids)
            self.spike_monitors.append(monitor)
        else:
            if variable == "output" and isinstance(model, ValueModel):
                rows = tuple(model.output_rows)
            else:
                rows = (population._row(variable),)
            if ids is None and variable in getattr(model, "population_variables", ()):
                ids = np.zeros(1, dtype=np.int64)
            every = population.dt if every is None and model.kind == Kind.VALUE else every
            if every is not None and (isinstance(every, bool) or not isinstance(every, int | float | np.number)
                                      or not np.isfinite(every)):
                raise RecordingError(f"{owner}: every must be a positive multiple of dt = {self.dt}, got {every!r}")
            every_steps = 1 if every is None else int(round(every / self.dt))
            if every is not None and (every_steps < 1
                                      or abs(every_steps * self.dt - every) > 1e-6 * self.dt + 1e-12):
                raise RecordingError(f"{owner}: every must be a positive multiple of dt = {self.dt}, got {every!r}")
            if every_steps % population.period:
                raise RecordingError(f"{owner}: every must be a multiple of the population's dt = "
                                     f"{population.dt:.6g} s, got {every!r}")
            ids = np.arange(population.n, dtype=np.int64) if ids is None else ids
            monitor = StateMonitor(population, variable, rows, ids, every_steps)
            self.state_monitors.append(monitor)
        self._changed()
        return monitor

    def at(self, t: float, fn: Callable[[Network], object]) -> None:
        """Call ``fn(net)`` when the simulation reaches time ``t`` (s), before that step runs."""
        if not callable(fn):
            raise RunError(f"at({t!r}): fn must be callable, got {fn!r}")
        if not np.isfinite(t):
            raise RunError(f"at: time must be finite, got {t!r}")
        step = int(round(t / self.dt))
        if step < self.step:
            raise RunError(f"at: time {t!r} s is in the past (the network is at {self.t:.6g} s)")
        self._events.push(step, lambda: fn(self))

    # -- running -------------------------------------------------------------------------------

    def run(self, duration: float, backend: str = "numba", progress: bool = False,
            checkpoint: str | os.PathLike | None = None, every: float | None = None) -> None:
        """Advance the network by ``duration`` seconds; a later call continues from here.

        ``backend`` is ``"numba"`` (compiled, default) or ``"numpy"`` (the reference).
        ``progress=True`` shows a progress bar of simulated time. ``checkpoint`` names an HDF5
        file that receives the network, its state and its recordings every ``every`` seconds of
        simulated time and at the end of the run; the recordings written there leave memory.
        A killed run leaves the last complete checkpoint: ``ranvier.load(checkpoint)`` continues
        it with the same spikes as an uninterrupted run (``docs/storage.md``).
        """
        from .simulation import Simulation

        is_number = isinstance(duration, int | float | np.floating | np.integer) and not isinstance(duration, bool)
        if not is_number or not np.isfinite(duration) or duration < 0:
            raise RunError(f"run: duration must be a finite number of seconds >= 0, got {duration!r}")
        if not self.populations:
            raise RunError("run: the network has no populations")
        steps = duration / self.dt
        if abs(steps - round(steps)) > 1e-6:
            # the run ends elsewhere than asked (NEST refuses such a duration; Brian 2 runs whole steps)
            warnings.warn(f"run: duration {float(duration)!r} s is not a whole number of steps of dt = "
                          f"{self.dt:.6g} s ({steps:.6g} steps); running {round(steps)} steps "
                          f"({round(steps) * self.dt:.6g} s)", RanvierWarning, stacklevel=2)
        simulation = self._simulation
        if simulation is not None and simulation.running:
            raise RunError("run: called while the network is running (from a callback of net.at); a callback "
                           "changes the network and returns, and the run goes on")
        if simulation is None or simulation.backend_name != backend or simulation.version != self._structure_version:
            simulation = Simulation(self, backend)
            self._simulation = simulation
        checkpointer = None
        if checkpoint is not None:
            from .storage import Checkpointer

            checkpointer = Checkpointer(self, checkpoint, self._every_steps(every, duration))
        elif every is not None:
            raise RunError(f"run: every={every!r} needs a checkpoint file (checkpoint=path)")
        simulation.run(int(round(steps)), progress, checkpointer)

    def _every_steps(self, every: float | None, duration: float) -> int:
        """Steps between checkpoints: ``every`` seconds, or the whole run when it is None."""
        if every is None:
            return max(1, int(round(duration / self.dt)))
        if isinstance(every, bool) or not isinstance(every, int | float | np.number) or not np.isfinite(every) \
                or every < self.dt * (1 - 1e-6):
            raise RunError(f"run: every must be a time of at least dt = {self.dt:.6g} s, got {every!r}")
        return int(round(every / self.dt))

    def save(self, path: str | os.PathLike) -> None:
        """Write the network, its state and its recordings to the HDF5 file ``path``
        (layout in ``docs/storage.md``; read it back with ``ranvier.load``)."""
        from .storage import save

        save(self, path)
