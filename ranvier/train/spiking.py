"""Surrogate-gradient training of LIF networks declared with the ranvier API.

:class:`SpikingModule` turns a :class:`~ranvier.Network` into a ``torch.nn.Module`` whose forward
pass is the engine's LIF step (:func:`ranvier.neurons.lif._lif_step`) written in torch, with the
same exact-integration constants (:meth:`ranvier.neurons.LIF.constants`). Per step ``k`` and
population (state ``v``, ``refractory``, currents ``I_r``; arrivals ``A_r[k]``)::

    v_free    = v_eq + (v - v_eq) e^{-dt/tau_m} + sum_r I_r P_r + sum_{r delta} A_r[k]
    I_r       = I_r e^{-dt/tau_r} + A_r[k]                        (current receptors)
    v_new     = v_free if not refractory else v
    s[k]      = H(v_new - v_th)                                   (surrogate gradient backward)
    v         = v_reset if s[k] else v_new; refractory = t_ref / dt if s[k]
    A_r[k]    = sum_{projections p -> r} s_pre[k - d_p] @ W_p     (d_p = round(delay / dt) >= 1)

so a trained network written back with :meth:`SpikingModule.write_back` runs in the event engine
and gives the same spikes up to float32 summation order. Training methods:

* BPTT (:meth:`SpikingModule.loss`): a population with no projection from its own group (a
  feed-forward layer) runs all ``T`` steps in one :class:`~ranvier.train.recurrence.LIFRecurrence`,
  whose backward is the hand-written reverse loop of the recurrence (equations in
  :mod:`ranvier.train.recurrence`); a recurrent group is unrolled under torch autograd. Both use
  the one step :func:`~ranvier.train.recurrence.lif_step`. Arrivals from populations whose whole
  spike train is known (inputs, earlier layers) are computed for all steps at once
  (:func:`~ranvier.train.recurrence.project`: sparse for sparse given spikes).
* SLTT / SLTT-K (Meng et al. 2023, "Towards Memory- and Time-Efficient Backpropagation for
  Training Spiking Neural Networks", ICCV, Sec. 4): the temporal routes ``v[k-1] -> v[k]`` and
  ``I[k-1] -> I[k]`` are left out of the backward pass; only the spatial route (a spike, through
  its projection and delay, into the target's membrane: directly for delta receptors, through one
  step of the current ``P_r`` for current receptors) carries gradient. Gradients are computed
  online, so memory holds a window of ``max lag`` steps, independent of ``T``
  (:meth:`SpikingModule.sltt_backward`). SLTT-K backpropagates from ``K`` random time steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..engine.kinds import Kind
from ..engine.network import Network, Population, Projection
from ..errors import TrainingError
from ..neurons.lif import (
    FIRST_RECEPTOR,
    LIF,
    P_VV,
    RECEPTOR_CONSTS,
    REFRACTORY_STEPS,
    V_EQUILIBRIUM,
    V_RESET,
    V_THRESHOLD,
    V,
)
from .batch import check_trained_network
from .delays import delayed_projection, rounded, shifted_projection
from .model_step import ModelStep
from .recurrence import LayerConstants, LIFRecurrence, lif_step, project
from .sltt import sltt_backward

#: the surrogate's scale (V) for a model other than LIF, unless ``surrogate_scale`` says otherwise
DEFAULT_SURROGATE_SCALE = 10e-3
#: SpikingModule's ways of learning delays (``delay_method``)
DELAY_METHODS = ("dcls", "shift")


@dataclass
class _Population:
    name: str
    n: int
    receptors: tuple[str, ...]
    delta: tuple[bool, ...]
    has_refractory: bool
    #: the model's own step in torch (any model but the LIF fast path), and where ``v`` is in its state
    stepper: ModelStep | None = None
    v_row: int | None = None


@dataclass
class _Projection:
    name: str
    pre: str
    post: str
    receptor: int
    delay: int  # the smallest delay (steps); every synapse's when ``delay_groups`` is empty
    dense_index: np.ndarray  # flat index pre * n_post + post of each synapse, in the engine's order
    #: per-synapse delays: (delay in steps, mask (n_pre, n_post) of the synapses with it), or empty
    delay_groups: list[tuple[int, Tensor]]
    #: whether its delays are trained (``learn_delays``)
    learned: bool = False


@dataclass
class Trace:
    """What a forward pass produced: per population name, ``spikes`` and ``v`` of shape ``(T, B, n)``.

    ``v`` is the membrane potential at the end of each step (after reset), which is what
    ``net.record(pop, "v")`` samples in the engine.
    """

    spikes: dict[str, Tensor]
    v: dict[str, Tensor]


def _check_surrogate(slope: float, surrogate_scale: float | Mapping[str, float] | None, net: Network,
                     inputs: tuple[str, ...]) -> None:
    """Refuse a surrogate slope or scale that is not a positive finite number (its gradient would be
    NaN or of the wrong sign), and a scale given for a population that is not trained."""
    def positive(value) -> bool:
        is_number = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
        return is_number and bool(np.isfinite(value)) and value > 0

    if not positive(slope):
        raise TrainingError(f"slope must be a positive finite number, got {slope!r}")
    scales = surrogate_scale if isinstance(surrogate_scale, Mapping) else {None: surrogate_scale}
    for name, value in scales.items():
        where = "surrogate_scale" if name is None else f"surrogate_scale[{name!r}]"
        if name is not None and (name not in net.populations or name in inputs):
            trained = [p for p in net.populations if p not in inputs]
            raise TrainingError(f"{where}: {name!r} is not a trained population; they are {trained}")
        if value is not None and not positive(value):
            raise TrainingError(f"{where} must be a positive finite number, got {value!r}")


class SpikingModule(torch.nn.Module):
    """A ranvier network of LIF populations as a trainable torch module.

    Parameters
    ----------
    net : the network; every population not named in ``inputs`` must be a :class:`~ranvier.neurons.LIF`.
    inputs : names of the populations whose spikes are given to :meth:`forward` (sources).
    slope : steepness of the fast-sigmoid surrogate, in units of ``scale`` (dimensionless).
    detach_reset : leave the reset ``v -> v_reset`` out of the backward pass (common practice;
        Zenke & Vogels 2021 show it helps).
    generic : run LIF populations through their model step in torch as well (the route every
        other model takes) instead of the fused :class:`~ranvier.train.recurrence.LIFRecurrence`.
    surrogate_scale : the surrogate's scale (V) for the populations of models other than LIF: a
        number, or population name -> number (default 10 mV).
    learn_delays : learn one delay per synapse, jointly with the weights, on every projection
        whose source's spike train is known before its target runs (inputs, earlier layers): the
        DCLS approach (:mod:`ranvier.train.delays`), a Gaussian kernel over lags ``0 ..
        max_delay`` centred on each synapse's delay, of width :attr:`sigma` (steps), which the
        training loop shrinks (:func:`~ranvier.train.delays.sigma_schedule`); ``sigma = 0`` is the
        rounded delay itself, the network the engine runs after :meth:`write_back`. Projections
        inside a recurrent group keep their delays.
    max_delay : the longest learnable delay (s), rounded to steps; needed with ``learn_delays``.
    delay_method : how delays learn: ``"dcls"`` runs the Gaussian kernels forward
        (:func:`~ranvier.train.delays.delayed_projection`); ``"shift"`` runs every synapse at its
        rounded delay forward, the engine's network, and gives the delays the gradient of the
        Gaussian-smoothed arrival (:func:`~ranvier.train.delays.shifted_projection`; CPU, work
        independent of ``max_delay``).

    Any spiking model trains: LIF through its fused recurrence, every other model (an
    ``Equations`` model, one written in the model language) through its own step run in torch
    (:mod:`ranvier.train.model_step`), where ``spike(x)`` is the surrogate-gradient spike. Each
    projection becomes one trainable dense weight matrix ``(n_pre, n_post)`` (V per spike);
    pairs without a synapse are held at zero by a mask, so the engine's connectivity is kept, and
    each synapse keeps its own delay. The surrogate's ``scale`` per LIF population is
    ``|v_th - v_reset|`` (V).
    """

    def __init__(self, net: Network, inputs: str | Sequence[str], slope: float = 5.0,
                 detach_reset: bool = True, generic: bool = False,
                 surrogate_scale: float | Mapping[str, float] | None = None, learn_delays: bool = False,
                 max_delay: float | None = None, delay_method: str = "dcls") -> None:
        super().__init__()
        if delay_method not in DELAY_METHODS:
            raise TrainingError(f"delay_method must be one of {DELAY_METHODS}, got {delay_method!r}")
        #: ``"dcls"`` or ``"shift"``: see ``delay_method``
        self.delay_method = delay_method
        self.generic = bool(generic)
        inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        for name in inputs:
            if name not in net.populations:
                raise TrainingError(f"input population {name!r} is not in the network; "
                                    f"it has {list(net.populations)}")
        _check_surrogate(slope, surrogate_scale, net, inputs)
        check_trained_network(net, "SpikingModule")
        self._surrogate_scale = surrogate_scale
        self.net = net
        self.dt = net.dt
        self.inputs = inputs
        self.input_sizes = {name: net[name].n for name in inputs}
        self.slope = float(slope)
        self.detach_reset = bool(detach_reset)
        self.populations: dict[str, _Population] = {}
        for name, population in net.populations.items():
            if name in inputs:
                continue
            self._add_population(population)
        self.projections: list[_Projection] = []
        self.weights = torch.nn.ParameterList()
        masks = []
        for projection in net.projections:
            if projection.post.name in inputs:
                raise TrainingError(f"projection {projection.name!r}: input population "
                                    f"{projection.post.name!r} takes no synaptic input in training")
            made, weight, mask = self._add_projection(projection)
            self.projections.append(made)
            self.weights.append(torch.nn.Parameter(weight))
            masks.append(mask)
        for index, mask in enumerate(masks):
            self.register_buffer(f"_mask{index}", mask)
        self._full = [bool(mask.all()) for mask in masks]
        self.groups = self._update_groups()
        #: learned delays (steps) by projection index, ``(n_pre, n_post)``; see ``learn_delays``
        self.delays = torch.nn.ParameterDict()
        #: width (steps) of the learned delays' kernels; 0: each synapse at its rounded delay
        self.sigma = 0.0
        self.max_delay_steps = 0
        if learn_delays:
            self._learnable_delays(max_delay)

    # -- building ------------------------------------------------------------------------------

    def _add_population(self, population: Population) -> None:
        model = population.model
        if not isinstance(model, LIF) or self.generic:
            self._add_model_population(population)
            return
        # the module computes in the network's precision, as the engine does
        table = model.constants(population.params, self.dt).astype(population.network.dtype)
        consts = torch.from_numpy(np.broadcast_to(table, (table.shape[0], population.n)).copy())
        delta = tuple(bool(np.all(population.params[f"tau_{r}"] == 0)) for r in model.receptors)
        mixed = [r for r in model.receptors if np.any(population.params[f"tau_{r}"] == 0)
                 and not np.all(population.params[f"tau_{r}"] == 0)]
        if mixed:
            raise TrainingError(f"population {population.name!r}: receptor {mixed[0]!r} mixes delta (tau = 0) "
                                "and current neurons; training needs one kind per receptor")
        name = population.name
        self.register_buffer(f"_consts_{name}", consts)
        self.register_buffer(f"_init_{name}", torch.from_numpy(population.state.copy()))
        scale = (consts[V_THRESHOLD] - consts[V_RESET]).abs()
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        self.register_buffer(f"_scale_{name}", scale)
        self.populations[name] = _Population(name, population.n, model.receptors, delta,
                                             bool(torch.any(consts[REFRACTORY_STEPS] > 0)))

    def _add_model_population(self, population: Population) -> None:
        """A population trained through its model's own step in torch (any spiking model)."""
        model, name = population.model, population.name
        if model.kind != Kind.SPIKING or getattr(model, "step", None) is None:
            what = {Kind.SPIKING: "has no model-language step", Kind.SCHEDULED: "is a source (its spikes are fixed "
                    "before the run)"}.get(model.kind, f"is a {model.kind.value} model")
            raise TrainingError(f"population {name!r}: {type(model).__name__} {what}; trainable populations are "
                                "spiking models with a step (name sources in `inputs`)")
        table = model.constants(population.params, self.dt).astype(population.network.dtype)
        consts = torch.from_numpy(np.broadcast_to(table, (table.shape[0], population.n)).copy())
        self.register_buffer(f"_consts_{name}", consts)
        self.register_buffer(f"_init_{name}", torch.from_numpy(population.state.copy()))
        if isinstance(model, LIF) and self._surrogate_scale is None:
            scale = (consts[V_THRESHOLD] - consts[V_RESET]).abs()
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        else:
            value = self._surrogate_scale
            value = value.get(name, DEFAULT_SURROGATE_SCALE) if isinstance(value, Mapping) else value
            scale = torch.full((population.n,), DEFAULT_SURROGATE_SCALE if value is None else float(value),
                               dtype=consts.dtype)
        self.register_buffer(f"_scale_{name}", scale)
        names = model.state_names
        v_row = names.index("v") if "v" in names else None
        try:
            stepper = ModelStep(model.step, self.slope, v_row)
        except TrainingError as error:
            raise TrainingError(f"population {name!r}: {type(model).__name__} cannot train: {error} (name sources "
                                "in `inputs`)") from None
        self.populations[name] = _Population(name, population.n, model.receptors,
                                             tuple(False for _ in model.receptors), False, stepper, v_row)

    def _add_projection(self, projection: Projection) -> tuple[_Projection, Tensor, Tensor]:
        pre, post = projection.pre, projection.post
        pre_ids = np.asarray(projection.pre_ids, dtype=np.int64)
        post_ids = np.asarray(projection.post_ids, dtype=np.int64)
        flat = pre_ids * post.n + post_ids
        if np.unique(flat).size != flat.size:
            raise TrainingError(f"projection {projection.name!r}: repeated (pre, post) pairs cannot be trained "
                                "as one weight matrix; merge them first")
        weight = np.zeros(pre.n * post.n, dtype=projection.weights.dtype)
        weight[flat] = projection.weights
        mask = np.zeros(pre.n * post.n, dtype=bool)
        mask[flat] = True
        steps = np.broadcast_to(np.asarray(projection.delay_steps, dtype=np.int64), flat.shape)
        groups = []
        if steps.size and steps.min() != steps.max():
            for delay in np.unique(steps):
                chosen = np.zeros(pre.n * post.n, dtype=bool)
                chosen[flat[steps == delay]] = True
                groups.append((int(delay), torch.from_numpy(chosen.reshape(pre.n, post.n))))
        made = _Projection(projection.name, pre.name, post.name, projection.receptor_index,
                           int(steps.min()) if steps.size else 1, flat, groups)
        return (made, torch.from_numpy(weight.reshape(pre.n, post.n)),
                torch.from_numpy(mask.reshape(pre.n, post.n)))

    def _learnable_delays(self, max_delay: float | None) -> None:
        is_number = isinstance(max_delay, int | float | np.integer | np.floating) and not isinstance(max_delay, bool)
        if not is_number or not np.isfinite(max_delay) or not max_delay >= self.dt:
            raise TrainingError(f"learn_delays needs max_delay (s), a finite time of at least one step "
                                f"(dt = {self.dt:g} s), got {max_delay!r}")
        self.max_delay_steps = int(round(max_delay / self.dt))
        group_of = {name: i for i, group in enumerate(self.groups) for name in group}
        by_name = {p.name: p for p in self.net.projections}
        for index, projection in enumerate(self.projections):
            if projection.pre in self.populations and group_of[projection.pre] == group_of[projection.post]:
                continue  # recurrent: its arrivals depend on this step's spikes
            declared = np.broadcast_to(np.asarray(by_name[projection.name].delay_steps, dtype=np.float64),
                                       projection.dense_index.shape)
            if declared.size and declared.max() > self.max_delay_steps:
                raise TrainingError(f"projection {projection.name!r}: its delays reach {int(declared.max())} steps "
                                    f"({declared.max() * self.dt:.6g} s), beyond max_delay = "
                                    f"{self.max_delay_steps} steps; learned delays stay within max_delay, so give "
                                    "one at least as long")
            initial = np.ones(self.weights[index].numel())
            initial[projection.dense_index] = np.minimum(declared, self.max_delay_steps)
            self.delays[str(index)] = torch.nn.Parameter(
                torch.from_numpy(initial.reshape(self.weights[index].shape)).to(self.weights[index].dtype))
            projection.learned = True
        self.sigma = self.max_delay_steps / 2

    def clamp_delays(self) -> None:
        """Hold the learned delays within ``[1, max_delay]`` steps (call after each optimiser step)."""
        with torch.no_grad():
            for delay in self.delays.values():
                delay.clamp_(1.0, float(self.max_delay_steps))

    def _update_groups(self) -> list[list[str]]:
        """Populations in update order: strongly connected groups, each after every group feeding it."""
        names = list(self.populations)
        reach = {a: {a} for a in names}
        edges = {(p.pre, p.post) for p in self.projections if p.pre in self.populations}
        changed = True
        while changed:
            changed = False
            for a, b in edges:
                for start in names:
                    if a in reach[start] and b not in reach[start]:
                        reach[start].add(b)
                        changed = True
        groups: list[list[str]] = []
        seen: set[str] = set()
        for a in names:
            if a not in seen:
                group = [b for b in names if b in reach[a] and a in reach[b]]
                seen.update(group)
                groups.append(group)
        # a group comes after every group that reaches it
        groups.sort(key=lambda group: sum(group[0] in reach[a] for a in names))
        return groups

    def weight(self, index: int) -> Tensor:
        """Projection ``index``'s weights with absent synapses held at zero."""
        mask = getattr(self, f"_mask{index}")
        return self.weights[index] if self._full[index] else self.weights[index] * mask

    # -- forward -------------------------------------------------------------------------------

    def as_inputs(self, x: Tensor | Mapping[str, Tensor]) -> dict[str, Tensor]:
        if not isinstance(x, Mapping):
            if len(self.inputs) != 1:
                raise TrainingError(f"give inputs as a dict, one tensor per input population {list(self.inputs)}")
            x = {self.inputs[0]: x}
        out = {}
        dtype = self.weights[0].dtype if len(self.weights) else torch.float32  # float64 after .double()
        for name in self.inputs:
            if name not in x:
                raise TrainingError(f"input population {name!r}: no spikes given")
            tensor = torch.as_tensor(x[name], dtype=dtype)
            if tensor.ndim != 3 or tensor.shape[2] != self.input_sizes[name]:
                raise TrainingError(f"input population {name!r}: spikes must have shape (T, B, "
                                    f"{self.input_sizes[name]}), got {tuple(tensor.shape)}")
            out[name] = tensor
        shapes = {tuple(t.shape[:2]) for t in out.values()}
        if len(shapes) != 1:
            raise TrainingError(f"input spikes disagree on (T, B): {sorted(shapes)}")
        steps, batch = shapes.pop()
        if steps < 1 or batch < 1:
            raise TrainingError(f"input spikes need at least one step and one sample, got (T, B) = {(steps, batch)}")
        return out

    def forward(self, x: Tensor | Mapping[str, Tensor]) -> Trace:
        """Run the network on input spikes ``x`` (``(T, B, n_in)``, spikes emitted by the input in each step)."""
        spikes = self.as_inputs(x)
        steps, batch = next(iter(spikes.values())).shape[:2]
        voltages: dict[str, Tensor] = {}
        for group in self.groups:
            inside = set(group)
            # arrivals from populations whose whole spike train is known: one matmul over all steps
            arriving = {name: [None] * len(self.populations[name].receptors) for name in group}
            recurrent = []
            for index, projection in enumerate(self.projections):
                if projection.post not in inside:
                    continue
                if projection.pre in inside:
                    recurrent.append(index)
                    continue
                if projection.delay >= steps:
                    continue
                current = self._arrivals(index, spikes[projection.pre])
                slot = arriving[projection.post]
                slot[projection.receptor] = current if slot[projection.receptor] is None \
                    else slot[projection.receptor] + current
            out_spikes, out_v = self._run_group(group, arriving, recurrent, steps, batch)
            spikes.update(out_spikes)
            voltages.update(out_v)
        return Trace({name: spikes[name] for name in self.populations}, voltages)

    def _arrivals(self, index: int, pre: Tensor) -> Tensor:
        """Projection ``index``'s arrivals ``(T, B, n_post)`` from its source's whole spike train ``pre``."""
        projection = self.projections[index]
        if projection.learned:
            learned = shifted_projection if self.delay_method == "shift" else delayed_projection
            return learned(pre, self.weight(index), self.delays[str(index)], self.sigma, self.max_delay_steps)
        if not projection.delay_groups:
            return project(pre, self.weight(index), projection.delay)
        weight = self.weights[index]
        total = None
        for delay, chosen in projection.delay_groups:
            if delay >= pre.shape[0]:
                continue
            current = project(pre, weight * chosen, delay)
            total = current if total is None else total + current
        return total if total is not None else torch.zeros(*pre.shape[:2], weight.shape[1], dtype=weight.dtype)

    def _recurrent_arrival(self, index: int, spikes: list[Tensor], k: int, weights: dict[int, Tensor]) -> Tensor | None:
        """Projection ``index``'s arrivals in step ``k`` from the spikes its source emitted so far."""
        projection = self.projections[index]
        groups = projection.delay_groups or [(projection.delay, None)]
        total = None
        for delay, chosen in groups:
            if k < delay:
                continue
            weight = weights[index] if chosen is None else weights[index] * chosen
            current = spikes[k - delay] @ weight
            total = current if total is None else total + current
        return total

    def layer_constants(self, name: str) -> LayerConstants:
        """Population ``name``'s step constants (rows of its ``LIF.constants``)."""
        population = self.populations[name]
        consts = getattr(self, f"_consts_{name}")
        v_eq = consts[V_EQUILIBRIUM]
        receptor_rows = [FIRST_RECEPTOR + RECEPTOR_CONSTS * r for r in range(len(population.receptors))]
        return LayerConstants(
            v_eq=None if not torch.any(v_eq) else v_eq, p_vv=consts[P_VV], v_th=consts[V_THRESHOLD],
            v_reset=consts[V_RESET], t_ref=consts[REFRACTORY_STEPS] if population.has_refractory else None,
            decay=tuple(None if delta else consts[row] for row, delta in zip(receptor_rows, population.delta,
                                                                              strict=True)),
            propagator=tuple(None if delta else consts[row + 1] for row, delta in zip(receptor_rows, population.delta,
                                                                                       strict=True)),
            scale=getattr(self, f"_scale_{name}"), slope=self.slope, detach_reset=self.detach_reset,
            init=getattr(self, f"_init_{name}"))

    #: run a population with no projection from its own group through :class:`LIFRecurrence`
    #: (hand-written backward), or its model's step traced over all steps
    #: (:meth:`~ranvier.train.model_step.ModelStep.sequence`, derived backward); False unrolls it
    #: under autograd like a recurrent group
    _fused = True

    def _run_group(self, group: list[str], arriving: dict[str, list[Tensor | None]], recurrent: list[int],
                   steps: int, batch: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        layers = {name: self.layer_constants(name) for name in group if self.populations[name].stepper is None}
        if self._fused and not recurrent and len(layers) == 1 == len(group):
            (name,) = group
            spikes, v = LIFRecurrence.apply(layers[name], steps, batch, *arriving[name])
            return {name: spikes}, {name: v}
        if self._fused and not recurrent and len(group) == 1 and not layers:
            (name,) = group
            ran = self.populations[name].stepper.sequence(
                arriving[name], steps, batch, getattr(self, f"_init_{name}"), getattr(self, f"_consts_{name}"),
                getattr(self, f"_scale_{name}"))
            if ran is not None:
                return {name: ran[0]}, {} if ran[1] is None else {name: ran[1]}
        states = {name: layers[name].initial(batch) if name in layers else self._initial(name, batch)
                  for name in group}
        out_spikes: dict[str, list[Tensor]] = {name: [] for name in group}
        out_v: dict[str, list[Tensor]] = {name: [] for name in group}
        weights = {index: self.weight(index) for index in recurrent}
        # unbind once: indexing a[k] in the loop would make backward build a (T, B, n) tensor per step
        per_step = {name: [None if a is None else a.unbind(0) for a in arriving[name]] for name in group}
        for k in range(steps):
            for name in group:
                now: list[Tensor | None] = [None if a is None else a[k] for a in per_step[name]]
                for index in recurrent:
                    projection = self.projections[index]
                    if projection.post != name:
                        continue
                    current = self._recurrent_arrival(index, out_spikes[projection.pre], k, weights)
                    if current is not None:
                        r = projection.receptor
                        now[r] = current if now[r] is None else now[r] + current
                population = self.populations[name]
                if population.stepper is None:
                    out_spikes[name].append(lif_step(layers[name], states[name], now)[0])
                    out_v[name].append(states[name][V])
                    continue
                fired, states[name] = population.stepper(states[name], now, k, getattr(self, f"_consts_{name}"),
                                                         getattr(self, f"_scale_{name}"))
                out_spikes[name].append(fired)
                if population.v_row is not None:
                    out_v[name].append(states[name][population.v_row])
        return ({name: torch.stack(s) for name, s in out_spikes.items()},
                {name: torch.stack(v) for name, v in out_v.items() if v})

    def _initial(self, name: str, batch: int) -> list[Tensor]:
        """A model population's initial state, one ``(B, n)`` row per state variable."""
        initial = getattr(self, f"_init_{name}")
        return [row.expand(batch, -1) for row in initial]

    # -- losses and training -------------------------------------------------------------------

    def readout_scale(self, readout: str) -> Tensor:
        """``|v_th - v_reset|`` of the readout population (V): divides voltages into logits."""
        return getattr(self, f"_scale_{readout}")

    def loss(self, x: Tensor | Mapping[str, Tensor], target: Tensor, readout: str,
             step_loss: Callable[[Tensor, Tensor], Tensor] | None = None) -> tuple[Tensor, Trace]:
        """BPTT objective ``(1/T) sum_k step_loss(v_readout[k] / scale, target)`` and the forward trace.

        ``step_loss`` defaults to cross entropy, so the readout's membrane potentials (in units of
        ``|v_th - v_reset|``) are the logits at every step, as in Deng et al. 2022 (TET) and SLTT.
        """
        self.check_readout(readout)
        step_loss = step_loss or torch.nn.functional.cross_entropy
        trace = self(x)
        logits = trace.v[readout] / self.readout_scale(readout)
        if step_loss is torch.nn.functional.cross_entropy:
            # one call over all steps: the mean over T * B equals the mean over steps of batch means
            steps = logits.shape[0]
            return step_loss(logits.reshape(-1, logits.shape[2]), target.repeat(steps)), trace
        return sum(step_loss(step, target) for step in logits.unbind(0)) / logits.shape[0], trace

    def check_readout(self, readout: str) -> None:
        if readout not in self.populations:
            raise TrainingError(f"readout population {readout!r} is not a trained population; "
                                f"choose one of {list(self.populations)}")
        population = self.populations[readout]
        if population.stepper is not None and population.v_row is None:
            raise TrainingError(f"readout population {readout!r}: its model has no state variable 'v' to read "
                                "scores from")

    def lags(self, readout: str) -> tuple[dict[str, int], list[int]]:
        """Steps by which each population's error trails the readout's, and the spatial projections."""
        group_of = {name: i for i, group in enumerate(self.groups) for name in group}
        spatial = [i for i, p in enumerate(self.projections)
                   if p.pre in self.populations and group_of[p.pre] != group_of[p.post]]
        lags = {readout: 0}
        for group in reversed(self.groups):
            for name in group:
                for i in spatial:
                    p = self.projections[i]
                    if p.pre == name and p.post in lags:
                        through_current = 0 if self.populations[p.post].delta[p.receptor] else 1
                        lags[name] = max(lags.get(name, 0), lags[p.post] + p.delay + through_current)
        return lags, spatial


    def sltt_backward(self, x: Tensor | Mapping[str, Tensor], target: Tensor, readout: str,
                      step_loss: Callable[[Tensor, Tensor], Tensor] | None = None, k: int | None = None,
                      generator: torch.Generator | None = None) -> tuple[float, Tensor]:
        """SLTT (``k=None``) or SLTT-K: accumulate weight gradients into ``.grad``, online
        (:func:`ranvier.train.sltt.sltt_backward`). Returns the loss and the readout's voltages."""
        return sltt_backward(self, x, target, readout, step_loss, k, generator)

    # -- back to the engine --------------------------------------------------------------------

    def write_back(self) -> None:
        """Copy the trained weights (V per spike) and learned delays (rounded to steps) into the network."""
        by_name = {p.name: p for p in self.net.projections}
        for index, made in enumerate(self.projections):
            projection = by_name[made.name]
            trained = self.weight(index).detach().cpu().numpy().reshape(-1)[made.dense_index]
            # the engine stores a weight given as one number once; trained weights differ per synapse
            projection.set_weights(trained)
            if made.learned:
                steps = rounded(self.delays[str(index)], self.max_delay_steps).reshape(-1)[made.dense_index]
                projection.set_delays(steps * self.dt)
