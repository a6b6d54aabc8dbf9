"""NIR (Neuromorphic Intermediate Representation, Pedersen et al. 2024) import and export.

NIR's neurons (``nir`` 1.0.8, ``nir/ir/neuron.py``), for input ``I(t)`` arriving through edges::

    LIF:      tau dv/dt = (v_leak - v) + R I;       v > v_threshold -> spike, v = v_reset
    CubaLIF:  tau_syn dI_s/dt = -I_s + w_in I;  tau_mem dv/dt = (v_leak - v) + R I_s
    LI:       tau dv/dt = (v_leak - v) + R I        (no threshold)
    I:        dv/dt = R I                            (integrator, no threshold)

ranvier's LIF (``tau_m dv/dt = v_eq - v + sum_r I_r``) maps with ``v_eq = v_leak`` and
voltage-equivalent currents ``I_r = R I_s``. Spike inputs are read in the discrete-time
convention snnTorch and Norse export with: a spike of weight ``w`` in a step of ``dt`` adds
``w dt / tau`` of input, so it jumps ``v`` by ``R w dt / tau`` (LIF, a delta receptor) or ``I_r`` by
``R w_in w dt / tau_syn`` (CubaLIF, a current receptor). Leaks follow ``integration``:
``"exact"`` (ranvier's ``e^{-dt/tau}``) or ``"euler"`` (``1 - dt/tau``, what snnTorch's
``beta`` means: its exporter writes ``tau = dt / (1 - beta)`` with ``dt = 1e-4``, ``r = tau / dt``
and, for ``Synaptic``, ``w_in = tau_syn / dt``). With ``"euler"`` a ``CubaLIF`` steps the discrete
form snnTorch's ``Synaptic`` and Norse's ``LIFCell`` share, ``I[t] = (1 - dt/tau_syn) I[t-1] + k x[t]``,
``v[t] = v[t-1] + dt/tau_mem (v_leak - v[t-1] + R I[t])`` (the current updated first, entering ``v`` in
the same step; ``k = w_in dt / tau_syn``, Norse's ``k = w_in``): ranvier's LIF with a delta receptor
``"in"`` and a current receptor ``"syn"`` (:mod:`ranvier.neurons.discrete_synaptic`), so a chain
into it becomes two projections. ``convention="snntorch"`` adds snnTorch's dt and zero-reset
refractory step (:func:`_snntorch_t_ref`). Graphs ranvier writes carry ``dt``,
``integration = "exact"``, each population's refractory period and its ``v_rest`` (NIR only has
``v_leak = v_rest + i_bias``; ``v_rest`` is the initial ``v``) in their metadata. NIR holds no
state: a loaded network starts from ``v = v_rest`` and zero currents.

Edges: a chain ``population -> [Delay] -> Linear | Affine -> population`` is one projection;
a ``Delay`` of ``d`` seconds becomes ``round(d / dt)`` steps, and a chain without one gets the
engine's minimum of one step; ``Flatten`` passes through and ``Scale`` multiplies. ``Affine``
biases act as in snnTorch, from the step the inputs' spikes first arrive (:func:`_bias_clock`).
Nested graphs are flattened (:func:`_flatten`). ``Conv2d``, ``SumPool2d`` and ``AvgPool2d`` become
``connect.Conv2d`` projections, their kernel stored once (:func:`_connect_convolution_chain`).
docs/nir.md has the details, Norse's time-constant convention and the resets.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import numpy as np

from .. import connect
from ..engine.connectivity import outgoing_synapses
from ..engine.network import Network, Population
from ..engine.plausibility import unchecked
from ..errors import NIRError, ProjectionError
from ..neurons.discrete_synaptic import _discrete_synaptic
from ..neurons.lif import LIF, spiking_above, spiking_at
from ..neurons.sources import PoissonSource, SpikeSource

#: NIR node types ``load`` accepts (``NIRGraph``: a nested graph, flattened into its parent)
SUPPORTED_NODES = ("Input", "Output", "LIF", "CubaLIF", "LI", "I", "IF", "Threshold", "Linear", "Affine", "Scale",
                   "Delay", "Flatten", "Conv2d", "SumPool2d", "AvgPool2d", "NIRGraph")
#: readings of a graph ``load`` knows: NIR's own, Norse 1.1's ``to_nir`` (``tau = dt / tau_inv``), and
#: snnTorch 1.0's ``export_to_nir`` with ``reset_mechanism="zero"`` (its dt, each layer's refractory step)
CONVENTIONS = ("nir", "norse", "snntorch")
#: the step (s) snnTorch 1.0's exporter writes its time constants for: ``tau = dt / (1 - beta)``
SNNTORCH_DT = 1e-4
#: NIR node types loaded as a convolution (``connect.Conv2d``: a projection whose kernel is stored once)
CONVOLUTIONS = ("Conv2d", "SumPool2d", "AvgPool2d")
#: time constant standing for "no memory" (a nir.Threshold): the exact decay per step is exp(-1000) = 0,
#: as a fraction of dt
NO_MEMORY_TAU = 1e-3
#: thresholds at or above this make a population non-spiking (LI / I on export and import)
NO_THRESHOLD = 1e30
#: time constant standing for "no leak" (nir.I) in ranvier's LIF, which needs a finite tau_m (s)
NO_LEAK_TAU = 1e9


def _is_source(model) -> bool:
    """A population that nothing can feed: what NIR calls an ``Input`` (spike, Poisson or any other
    spiking source without receptors)."""
    if isinstance(model, SpikeSource | PoissonSource):
        return True
    if isinstance(model, LIF) or str(getattr(model, "kind", "")) == "value":  # value models have no NIR node
        return False
    return not tuple(getattr(model, "receptors", ()) or ())


def _nir():
    """The ``nir`` package, or a MissingExtraError saying to install ``ranvier[nir]``."""
    from .._extras import load as load_extra

    return load_extra("nir", "ranvier.nir", "nir")


def _array(value, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64).reshape(-1) if np.ndim(value) else
                           np.asarray(value, dtype=np.float64), (n,)).copy()


def _single(values: np.ndarray, what: str, owner: str) -> float:
    if not np.allclose(values, values[0]):
        raise NIRError(f"{owner}: export needs one {what} per population, got {values.min():g}..{values.max():g}")
    return float(values[0])


# -- export ------------------------------------------------------------------------------------

def to_nir(net: Network):
    """The ``nir.NIRGraph`` of ``net``: sources (SpikeSource, PoissonSource, any model without receptors)
    as ``Input`` nodes, LIF populations as LIF/CubaLIF/LI/I nodes. NIR holds no source's statistics:
    what drives an ``Input`` is the caller's (``metadata["source"]`` names the model)."""
    nir = _nir()

    dt = net.dt
    nodes: dict = {}
    edges: list[tuple[str, str]] = []
    # a population that feeds no other is an output of the graph; if every one feeds another (a
    # loop), every non-source population is, as NIR's graphs need at least one output
    has_output = {name: False for name in net.populations}
    for projection in net.projections:
        if projection.post is not projection.pre:
            has_output[projection.pre.name] = True
    if all(has_output[name] or _is_source(population.model) for name, population in net.populations.items()):
        has_output = dict.fromkeys(net.populations, False)
    for name, population in net.populations.items():
        model = population.model
        owner = f"population {name!r}"
        if _is_source(model):
            nodes[name] = nir.Input(input_type={"input": np.array([population.n])},
                                    metadata={"source": type(model).__name__})
            continue
        params = population.params
        if not isinstance(model, LIF):
            # an Equations model that is a LIF exports as one
            params = getattr(model, "lif_parameters", lambda params: None)(params)
            if params is None:
                raise NIRError(f"{owner}: {type(model).__name__} has no NIR node; export supports LIF populations "
                               "(also Equations that are a LIF) and sources (SpikeSource, PoissonSource, models "
                               "without receptors) as Input")
        taus = {r: _single(params[f"tau_{r}"], f"tau_{r}", owner) for r in model.receptors}
        if len(set(taus.values())) != 1:
            raise NIRError(f"{owner}: receptors with different time constants {taus} have no single NIR node; "
                           "NIR's CubaLIF has one synapse")
        tau_syn = next(iter(taus.values()))
        tau_m = params["tau_m"]
        v_eq = params["v_rest"] + params["i_bias"]
        v_th = params["v_th"]
        # NIR spikes where v > v_threshold, a LIF where v >= v_th
        v_threshold = spiking_at(v_th, net.dtype)
        # NIR has no refractoriness, and only v_leak = v_rest + i_bias; the split sets the initial v
        metadata = {"t_ref": params["t_ref"], "v_rest": params["v_rest"], "dt": dt, "integration": "exact"}
        spiking = bool(np.all(v_th < NO_THRESHOLD))
        if not spiking and np.all(tau_m >= NO_LEAK_TAU) and tau_syn == 0:
            node = nir.I(r=tau_m / dt, metadata=metadata)
        elif not spiking and tau_syn == 0:
            node = nir.LI(tau=tau_m, r=tau_m / dt, v_leak=v_eq, metadata=metadata)
        elif tau_syn == 0:
            node = nir.LIF(tau=tau_m, r=tau_m / dt, v_leak=v_eq, v_threshold=v_threshold, v_reset=params["v_reset"],
                           metadata=metadata)
        else:
            n = population.n
            node = nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=tau_m, r=np.ones(n), v_leak=v_eq,
                               v_threshold=v_threshold, v_reset=params["v_reset"], w_in=np.full(n, tau_syn / dt),
                               metadata=metadata)
        nodes[name] = node
        if not has_output[name]:
            nodes[f"{name}_output"] = nir.Output(output_type={"output": np.array([population.n])})
            edges.append((name, f"{name}_output"))
    for index, projection in enumerate(net.projections):
        pre, post = projection.pre, projection.post
        if projection.all_to_all:  # one weight for every pair: no synapse lists to scatter
            weight = np.full((post.n, pre.n), float(projection.weights[0]))
            if not projection.autapses:
                np.fill_diagonal(weight, 0.0)
        else:
            weight = np.zeros((post.n, pre.n))
            np.add.at(weight, (projection.post_ids, projection.pre_ids), projection.weights)
        steps = np.unique(np.atleast_1d(projection.delay_steps))
        if steps.size > 1:
            raise NIRError(f"projection {projection.name!r}: export needs one delay per projection, got "
                           f"{steps.min()}..{steps.max()} steps")
        linear = f"w{index}_{pre.name}_{post.name}"
        nodes[linear] = nir.Linear(weight=weight)
        if int(steps[0]) > 1:
            delay = f"d{index}_{pre.name}_{post.name}"
            nodes[delay] = nir.Delay(delay=np.full(pre.n, int(steps[0]) * net.dt))
            edges += [(pre.name, delay), (delay, linear)]
        else:
            edges.append((pre.name, linear))
        edges.append((linear, post.name))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": dt, "integration": "exact"})


def save(net: Network, path: str | os.PathLike | None = None):
    """Export ``net`` as NIR; write it to ``path`` (HDF5, ``nir.write``) when given. Returns the graph."""
    nir = _nir()

    graph = to_nir(net)
    if path is not None:
        nir.write(path, graph)
    return graph


# -- import ------------------------------------------------------------------------------------

def _leak_tau(tau: np.ndarray, dt: float, integration: str) -> np.ndarray:
    """ranvier tau whose exact decay equals the graph's decay per step."""
    if integration == "exact":
        return tau
    decay = 1.0 - dt / tau
    if np.any(decay <= 0):
        raise NIRError(f"euler integration needs tau > dt = {dt:g} s, got {tau.min():g} s")
    return -dt / np.log(decay)


def _taus(node, name: str, fields: tuple[str, ...], n: int, dt: float, convention: str) -> list[np.ndarray]:
    """The time constants ``fields`` of ``node`` in seconds, in NIR's convention.

    Norse 1.1's ``to_nir`` writes ``tau = dt / tau_inv`` (with Norse's dt, 1 ms by default: 1e-5 s for
    its default ``tau_mem_inv = 100 /s``) where NIR means ``tau = 1 / tau_inv``; with
    ``convention="norse"`` they are read back as ``tau / dt``. Without it, a time constant shorter
    than dt is refused with an error saying so, since no integration of NIR's equations steps it."""
    values = [_array(getattr(node, field), n) for field in fields]
    if convention == "norse":
        return [value / dt for value in values]
    for field, value in zip(fields, values, strict=True):
        if np.any(value < dt):
            raise NIRError(f"NIR node {name!r}: {field} = {value.min():g} s is shorter than dt = {dt:g} s. Norse 1.1's "
                           f"to_nir writes tau = dt / tau_inv (here {value.min():g} s would be tau = "
                           f"{value.min() / dt:g} s for a graph run at dt = {dt:g} s); load it with "
                           "convention='norse' and Norse's dt, or pass the dt the graph was exported for")
    return values


@unchecked()  # NIR graphs from other tools are often in normalised units
def _population(net: Network, name: str, node, dt: float, integration: str, n: int,
                convention: str = "nir", t_ref: float | None = None) -> tuple[Population, dict[str, np.ndarray]]:
    """The population for ``node`` and, per receptor, the factor turning a NIR weight into a ranvier
    weight (a chain into the population becomes one projection per receptor)."""
    nir = _nir()

    meta = dict(getattr(node, "metadata", {}) or {})
    t_ref = _array(meta.get("t_ref", 0.0) if t_ref is None else t_ref, n)
    if isinstance(node, nir.CubaLIF):
        tau_mem, tau_syn = _taus(node, name, ("tau_mem", "tau_syn"), n, dt, convention)
        r, w_in = _array(node.r, n), _array(node.w_in, n)
        # NIR: a spike of weight w adds w_in w dt / tau_syn to I; Norse adds w_in w (its i jumps by the input)
        current_jump = w_in * (1.0 if convention == "norse" else dt / tau_syn)
        v_leak = _array(node.v_leak, n)
        v_rest = _array(meta.get("v_rest", v_leak), n)
        parameters = {"v_rest": v_rest, "i_bias": v_leak - v_rest, "v_th": spiking_above(_array(node.v_threshold, n),
                                                                                           net.dtype),
                      "v_reset": _array(node.v_leak if node.v_reset is None else node.v_reset, n), "t_ref": t_ref}
        tau_m, tau_s = _leak_tau(tau_mem, dt, integration), _leak_tau(tau_syn, dt, integration)
        if integration == "exact":
            model = LIF(tau_m=tau_m, tau_syn={"syn": tau_s}, **parameters)
            return net.population(model, n=n, name=name), {"syn": r * current_jump}
        # the discrete form snnTorch and Norse step: the current updated first, v moved by
        # r dt / tau_mem times it in the same step
        model, receptors = _discrete_synaptic(tau_m, tau_s, dt, **parameters)
        voltage_jump = r * dt / tau_mem * current_jump
        return net.population(model, n=n, name=name), {key: voltage_jump * value for key, value in receptors.items()}
    if isinstance(node, nir.I | nir.IF):  # dv/dt = R I, without (I) or with (IF) a threshold
        tau, v_leak, threshold, reset = np.full(n, NO_LEAK_TAU), np.zeros(n), np.full(n, NO_THRESHOLD), np.zeros(n)
        if isinstance(node, nir.IF):
            threshold, reset = spiking_above(_array(node.v_threshold, n), net.dtype), _array(node.v_reset, n)
        r = _array(node.r, n)
        # NIR: a spike of weight w in a step moves v by r w dt; Norse's IAFCell by r w (v += input)
        factor = r * (1.0 if convention == "norse" else dt)
        tau_m = tau
    elif isinstance(node, nir.Threshold):  # a spike where this step's input exceeds the threshold; no memory
        v_leak, threshold, reset = np.zeros(n), spiking_above(_array(node.threshold, n), net.dtype), np.zeros(n)
        factor = np.ones(n)
        tau_m = np.full(n, NO_MEMORY_TAU * dt)
    else:
        (tau,) = _taus(node, name, ("tau",), n, dt, convention)
        r = _array(node.r, n)
        v_leak = _array(node.v_leak, n)
        spiking = isinstance(node, nir.LIF)
        threshold = spiking_above(_array(node.v_threshold, n), net.dtype) if spiking else np.full(n, NO_THRESHOLD)
        reset = _array(node.v_reset if spiking and node.v_reset is not None else node.v_leak, n)
        factor = r * dt / tau
        tau_m = _leak_tau(tau, dt, integration)
    v_rest = _array(meta.get("v_rest", v_leak), n)
    model = LIF(tau_m=tau_m, v_rest=v_rest, v_th=threshold, v_reset=reset, t_ref=t_ref, tau_syn={"in": 0.0},
                i_bias=v_leak - v_rest)
    return net.population(model, n=n, name=name), {"in": factor}


def from_nir(graph, dt: float | None = None, integration: str | None = None, seed: int | None = None,
             convention: str = "nir", t_ref: float | None = None) -> Network:
    """A :class:`~ranvier.Network` from a ``nir.NIRGraph`` (module docstring for the mapping).

    ``dt`` (s) and ``integration`` (``"exact"`` or ``"euler"``) default to the graph's metadata,
    which ranvier writes; other graphs need ``dt`` and default to ``"euler"`` (the discrete-time
    convention of snnTorch and Norse). Input nodes become empty ``SpikeSource`` populations of
    the same name; nested ``NIRGraph`` nodes (snnTorch's ``RLeaky``) are flattened into the graph,
    their nodes named ``outer.inner``. ``convention="norse"`` reads the time constants Norse 1.1's
    ``to_nir`` writes (``tau = dt / tau_inv``; see :func:`_taus`). ``t_ref`` (s) sets the
    refractory period of every neuron node (NIR has none; ranvier's own graphs carry theirs):
    snnTorch's ``reset_mechanism="zero"`` zeroes the membrane again in the step after a spike,
    losing that step's input, which is NIR's reset with ``t_ref=dt`` (then its exports run with
    snnTorch's spikes exactly, tested). ``convention="snntorch"`` reads a graph as snnTorch 1.0's
    ``export_to_nir`` writes it with ``reset_mechanism="zero"``: ``dt`` defaults to its exporter's
    ``1e-4`` s and, unless ``t_ref`` is given, each node gets its layer's refractory step
    (:func:`_snntorch_t_ref`).
    """
    nir = _nir()

    if convention not in CONVENTIONS:
        raise NIRError(f"from_nir: convention must be one of {', '.join(map(repr, CONVENTIONS))}, got {convention!r}")
    meta = dict(graph.metadata or {})
    dt = float(dt if dt is not None else meta.get("dt", SNNTORCH_DT if convention == "snntorch" else 0.0))
    if not dt > 0:
        raise NIRError("from_nir: the graph has no dt in its metadata; pass dt (s), e.g. 1e-4 for snnTorch graphs")
    integration = integration or meta.get("integration", "euler")
    if integration not in ("exact", "euler"):
        raise NIRError(f"from_nir: integration must be 'exact' or 'euler', got {integration!r}")
    _check_types(graph)
    graph = _flatten(graph)
    net = Network(dt=dt, seed=seed)
    neurons = (nir.LIF, nir.CubaLIF, nir.LI, nir.I, nir.IF, nir.Threshold)
    sizes = _sizes(graph)
    populations: dict[str, Population] = {}
    factors: dict[str, dict[str, np.ndarray]] = {}
    successors: dict[str, list[str]] = {}
    for source, target in graph.edges:
        successors.setdefault(source, []).append(target)
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Input):
            n = int(np.prod(next(iter(node.input_type.values()))))
            populations[name] = net.population(SpikeSource([], [], n=n), name=name)
        elif isinstance(node, neurons):
            refractory = _snntorch_t_ref(graph, name, successors, dt) if t_ref is None and \
                convention == "snntorch" else t_ref
            populations[name], factors[name] = _population(net, name, node, dt, integration, sizes[name],
                                                           convention, refractory)
    biases: list[tuple[Population, dict[str, np.ndarray], int]] = []
    for start in populations:
        for first in successors.get(start, []):
            bias = _connect_chain(net, graph, start, first, successors, populations, factors, dt)
            if bias is not None:
                biases.append(bias)
    if biases:
        _bias_clock(net, biases, _arrival_steps(net, populations))
    return net


def _snntorch_t_ref(graph, name: str, successors: Mapping[str, list[str]], dt: float) -> float:
    """The refractory period (s) reproducing snnTorch's ``reset_mechanism="zero"`` for neuron node ``name``.

    ``Synaptic`` (a ``CubaLIF``; ``mem[t] = (1 - reset[t]) (beta mem[t-1] + syn[t])``) and
    ``RLeaky``/``RSynaptic`` (a neuron node that feeds itself through its recurrent weights;
    ``mem[t] = (1 - reset[t]) (beta mem[t-1] + x[t] + W spk[t-1])``) zero the membrane, input
    included, in the step after a spike: one refractory step, ``dt``. ``Leaky`` zeroes only the old
    membrane (``mem[t] = beta (1 - reset[t]) mem[t-1] + x[t]``): that is NIR's reset alone, 0."""
    nir = _nir()
    if isinstance(graph.nodes[name], nir.CubaLIF):
        return dt
    populations = (nir.Input, nir.LIF, nir.CubaLIF, nir.LI, nir.I, nir.IF, nir.Threshold)  # where a chain ends
    seen, frontier = set(), list(successors.get(name, []))
    while frontier:
        node_name = frontier.pop()
        if node_name == name:
            return dt
        if node_name in seen or node_name not in graph.nodes or isinstance(graph.nodes[node_name], populations):
            continue
        seen.add(node_name)
        frontier += successors.get(node_name, [])
    return 0.0


def _check_types(graph) -> None:
    nir = _nir()
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if node is None:
            raise NIRError(f"NIR node {name!r} is None: the exporter did not convert that module (Norse 1.1's to_nir "
                           "writes None for torch.nn.Flatten, AvgPool2d, MaxPool2d and any other module it does not "
                           "know); rebuild the network without it or replace the node")
        if kind not in SUPPORTED_NODES:
            raise NIRError(f"NIR node {name!r}: type {kind} is not supported; supported: {', '.join(SUPPORTED_NODES)}")
        if isinstance(node, nir.NIRGraph):
            _check_types(node)


def _flatten(graph):
    """``graph`` with every nested ``NIRGraph`` node replaced by its nodes (named ``outer.inner``).

    An edge into the nested graph (to ``outer`` or ``outer.<its Input>``) goes on to what its
    Input nodes feed; an edge out of it (from ``outer`` or ``outer.<its Output>``) starts at what
    feeds its Output nodes. Edges may name the nested graph's nodes directly (``outer.inner``)."""
    nir = _nir()
    if not any(isinstance(node, nir.NIRGraph) for node in graph.nodes.values()):
        return graph
    nodes: dict = {}
    entries: dict[str, list[str]] = {}  # nested graph or its Input -> the flattened nodes it feeds
    exits: dict[str, list[str]] = {}  # nested graph or its Output -> the flattened nodes that feed it
    inner_edges: list[tuple[str, str]] = []
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.NIRGraph):
            nodes[name] = node
            continue
        inner = _flatten(node)
        inputs = [key for key, value in inner.nodes.items() if isinstance(value, nir.Input)]
        outputs = [key for key, value in inner.nodes.items() if isinstance(value, nir.Output)]
        for key, value in inner.nodes.items():
            if key not in inputs and key not in outputs:
                nodes[f"{name}.{key}"] = value
        for source, target in inner.edges:
            if source in inputs:
                entries.setdefault(name, []).append(f"{name}.{target}")
                entries.setdefault(f"{name}.{source}", []).append(f"{name}.{target}")
            elif target in outputs:
                exits.setdefault(name, []).append(f"{name}.{source}")
                exits.setdefault(f"{name}.{target}", []).append(f"{name}.{source}")
            else:
                inner_edges.append((f"{name}.{source}", f"{name}.{target}"))
    edges = list(inner_edges)
    for source, target in graph.edges:
        for start in exits.get(source, [source]):
            for end in entries.get(target, [target]):
                edges.append((start, end))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata or {}), type_check=False)


def _arrival_steps(net: Network, populations: Mapping[str, Population]) -> dict[str, int]:
    """Steps after the start at which spikes of the inputs first reach each population (shortest path)."""
    sources = [p.name for p in populations.values() if isinstance(p.model, SpikeSource)]
    arrival = dict.fromkeys(sources, 0)
    changed = True
    while changed:
        changed = False
        for projection in net.projections:
            pre, post = projection.pre.name, projection.post.name
            if pre not in arrival:
                continue
            steps = arrival[pre] + int(np.min(projection.delay_steps))
            if steps < arrival.get(post, np.iinfo(np.int64).max):
                arrival[post], changed = steps, True
    return arrival


@unchecked()
def _bias_clock(net: Network, biases: list[tuple[Population, Mapping[str, np.ndarray], int]],
                arrival: Mapping[str, int]) -> None:
    """Affine biases as snnTorch applies them: ``W x[t] + b`` together, so a bias acts from the step
    the spikes of the inputs first arrive (not from step 0, as an ``i_bias`` would). One neuron
    (``_bias_clock``) spikes every step from step 0; a projection of the bias as weights (one per
    receptor the weighted spikes go to), delayed by that arrival step, delivers it each step from
    then on."""
    clock = net.population(LIF(tau_m=NO_MEMORY_TAU * net.dt, v_rest=0.0, i_bias=1.0, v_th=0.5, v_reset=0.0,
                               t_ref=0.0, tau_syn={"in": 0.0}), n=1, name="_bias_clock")
    for post, weights, chain_steps in biases:
        steps = max(1, arrival.get(post.name, chain_steps))
        for receptor, weight in weights.items():
            post_ids = np.flatnonzero(weight)
            net.connect(clock, post, connect.FromArrays(np.zeros(len(post_ids), dtype=np.int64), post_ids,
                                                        weight=weight[post_ids], delay=steps * net.dt),
                        receptor=receptor)


def _leading_ones_dropped(shape) -> tuple[int, ...]:
    """A NIR type as a map shape: leading sizes of 1 beyond three dimensions dropped (Norse's batch of 1)."""
    shape = tuple(int(d) for d in np.ravel(shape))
    while len(shape) > 3 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _pairs(value) -> tuple[int, int]:
    values = np.ravel(np.asarray(value))
    return (int(values[0]), int(values[-1]))


def _convolution_rule(name: str, node, shape: tuple[int, ...]) -> connect.Conv2d:
    """The ``Conv2d`` rule of a NIR ``Conv2d``, ``SumPool2d`` (a kernel of ones, one channel per
    group) or ``AvgPool2d`` (``1 / (kh kw)``, torch's default of counting padding) on ``shape``."""
    nir = _nir()
    if isinstance(node, nir.Conv2d):
        spatial = tuple(np.ravel(node.input_shape)) if node.input_shape is not None else None
        weight = np.asarray(node.weight, dtype=np.float64)
        if len(shape) != 3 and spatial is not None and int(np.prod(shape)) == weight.shape[1] * node.groups * \
                int(np.prod(spatial)):
            shape = (weight.shape[1] * node.groups, *spatial)
    if len(shape) != 3:
        raise NIRError(f"NIR node {name!r}: a {type(node).__name__} needs a (C, H, W) input, got shape {shape}")
    try:
        if isinstance(node, nir.Conv2d):
            return connect.Conv2d(weight, shape, stride=node.stride, padding=node.padding, dilation=node.dilation,
                                  groups=node.groups)
        size = _pairs(node.kernel_size)
        value = 1.0 if isinstance(node, nir.SumPool2d) else 1.0 / (size[0] * size[1])
        return connect.Conv2d(np.full((shape[0], 1, *size), value), shape, stride=_pairs(node.stride),
                              padding=_pairs(node.padding), groups=shape[0])
    except ProjectionError as error:
        raise NIRError(f"NIR node {name!r}: {error}") from None


def _map_shapes(graph) -> dict[str, tuple[int, ...]]:
    """The shape of what each node sends, where it can be told: from Input types and neuron parameters,
    through convolutions, pooling, Flatten, weights, Scale and Delay. A neuron node takes the shape
    of the map arriving at it when that has its size (its parameters may be flat)."""
    nir = _nir()
    shapes: dict[str, tuple[int, ...]] = {}
    neurons = (nir.LIF, nir.CubaLIF, nir.LI, nir.I, nir.IF, nir.Threshold)
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Input):
            shapes[name] = _leading_ones_dropped(next(iter(node.input_type.values())))
        for field in ("tau", "tau_mem", "r", "v_threshold", "threshold"):
            value = getattr(node, field, None)
            if value is not None and np.ndim(value):
                shapes[name] = tuple(np.shape(value))
                break
    changed = True
    while changed:
        changed = False
        for source, target in graph.edges:
            node = graph.nodes.get(target)
            if source not in shapes or node is None:
                continue
            shape = shapes[source]
            if type(node).__name__ in CONVOLUTIONS:
                try:
                    shape = _convolution_rule(target, node, shape).convolution.out_shape
                except NIRError:
                    continue  # its input may still take a map shape; connecting it names what is wrong
            elif isinstance(node, nir.Flatten):
                end = node.end_dim % len(shape) if len(shape) else 0
                start = node.start_dim % len(shape) if len(shape) else 0
                shape = (*shape[:start], int(np.prod(shape[start:end + 1])), *shape[end + 1:])
            elif isinstance(node, nir.Linear | nir.Affine):
                shape = (int(np.shape(node.weight)[0]),)
            known = shapes.get(target)
            if isinstance(node, neurons) and known is not None:
                # a flat neuron node takes the map shape arriving at it
                if len(shape) <= len(known) or np.prod(shape) != np.prod(known):
                    continue
            elif known is not None:
                continue
            shapes[target], changed = shape, True
    return shapes


def _sizes(graph) -> dict[str, int]:
    """Neuron count of each neuron node: from its parameters, else from the weights or convolution
    feeding it (through Flatten, Scale and Delay nodes)."""
    nir = _nir()
    sizes = {}
    for name, node in graph.nodes.items():
        for field in ("tau", "tau_mem", "r", "v_threshold", "threshold"):
            value = getattr(node, field, None)
            if value is not None and np.ndim(value):
                sizes[name] = int(np.size(value))
                break
    passing = (nir.Flatten, nir.Scale, nir.Delay)
    maps = _map_shapes(graph)
    changed = True
    while changed:
        changed = False
        for source, target in graph.edges:
            node = graph.nodes[source]
            if target in sizes or target not in graph.nodes:
                continue
            if type(node).__name__ in CONVOLUTIONS:
                if source in maps:
                    sizes[target], changed = int(np.prod(maps[source])), True
            elif hasattr(node, "weight"):
                sizes[target], changed = int(np.shape(node.weight)[0]), True
            elif isinstance(node, passing) and source in sizes:
                sizes[target], changed = sizes[source], True
    return sizes


def _only_successor(successors: Mapping[str, list[str]], node_name: str, node) -> str:
    """The one node that ``node`` (named ``node_name``) leads to, inside a chain of weights."""
    following = successors.get(node_name, [])
    if len(following) != 1:
        raise NIRError(f"NIR node {node_name!r}: a {type(node).__name__} must lead to exactly one node, "
                       f"got {following}")
    return following[0]


def _connect_chain(net: Network, graph, start: str, first: str, successors: Mapping[str, list[str]],
                   populations: Mapping[str, Population], factors: Mapping[str, Mapping[str, np.ndarray]],
                   dt: float):
    """Connect the chain of nodes from population ``start`` through ``first`` to the next
    population, one projection per receptor of ``factors[post]``; returns ``(post, receptor ->
    bias weights, delay steps)`` when the chain carries an Affine bias, else None. ``Flatten`` is
    the identity on ranvier's flat neuron index; a ``Scale`` multiplies what passes it (the inputs
    before the weights, the outputs and bias after). A chain with a convolution or pooling node is
    connected by :func:`_connect_convolution_chain`."""
    nir = _nir()

    delay_steps, weight, bias, node_name = 1, None, None, first
    pre_scale = np.ones(populations[start].n)
    while node_name not in populations:
        node = graph.nodes[node_name]
        if isinstance(node, nir.Output):
            return None
        if isinstance(node, nir.Scale):
            scale = np.asarray(node.scale, dtype=np.float64).reshape(-1)
            if weight is None:
                pre_scale = pre_scale * scale
            else:
                weight = scale[:, None] * weight
                bias = None if bias is None else scale * bias
        if isinstance(node, nir.Delay):
            delays = np.unique(np.atleast_1d(np.asarray(node.delay, dtype=np.float64)))
            if delays.size > 1:
                raise NIRError(f"NIR node {node_name!r}: ranvier loads one delay per Delay node, got {delays}")
            delay_steps = max(1, int(round(delays[0] / dt)))
        elif isinstance(node, nir.Linear | nir.Affine):
            if weight is not None:
                raise NIRError(f"NIR node {node_name!r}: two weight nodes in a row between {start!r} and a population")
            weight = np.asarray(node.weight, dtype=np.float64) * pre_scale[None, :]
            bias = np.asarray(node.bias, dtype=np.float64) if isinstance(node, nir.Affine) else None
        elif type(node).__name__ in CONVOLUTIONS:
            return _connect_convolution_chain(net, graph, start, first, successors, populations, factors, dt)
        node_name = _only_successor(successors, node_name, node)
    post = populations[node_name]
    pre = populations[start]
    if weight is None:
        if post.n != pre.n:
            raise NIRError(f"NIR edge {start!r} -> {node_name!r}: no weights between {pre.n} and {post.n} neurons")
        weight = np.diag(pre_scale)
    if weight.shape != (post.n, pre.n):
        raise NIRError(f"NIR edge {start!r} -> {node_name!r}: weight shape {weight.shape} does not match "
                       f"({post.n}, {pre.n})")
    post_ids, pre_ids = np.nonzero(weight)
    for receptor, factor in factors[node_name].items():
        net.connect(pre, post, connect.FromArrays(pre_ids, post_ids, weight=weight[post_ids, pre_ids]
                                                  * factor[post_ids], delay=delay_steps * dt), receptor=receptor)
    if bias is not None and np.any(bias != 0):
        # b enters like the weighted spikes, W x + b: the same factors, every step from the inputs' arrival
        return post, {receptor: np.broadcast_to(bias, (post.n,)) * factor
                      for receptor, factor in factors[node_name].items()}, delay_steps
    return None


def _stage_matrix(stage: tuple, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """A chain stage as a sparse matrix: ``(rows, columns, values, rows in all)`` (targets, sources)."""
    kind, operator = stage[0], stage[1]
    if kind == "scale":
        return np.arange(n_in), np.arange(n_in), operator, n_in
    if kind == "dense":
        rows, columns = np.nonzero(operator)
        return rows, columns, operator[rows, columns], operator.shape[0]
    convolution = operator.convolution
    row_ptr, rows, kernel_index = convolution.synapses()
    return rows, np.repeat(np.arange(n_in), np.diff(row_ptr)), operator.kernel.ravel()[kernel_index], \
        convolution.n_post


def _compose(first: tuple, then: tuple, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The sparse matrix of ``then`` applied after ``first`` (both as :func:`_stage_matrix` gives them),
    each entry summed in float64."""
    rows_a, columns_a, values_a, n_mid = first
    rows_b, columns_b, values_b, n_out = then
    order = np.argsort(columns_b, kind="stable")
    by_column = np.zeros(n_mid + 1, dtype=np.int64)
    np.cumsum(np.bincount(columns_b, minlength=n_mid), out=by_column[1:])
    entries, lengths = outgoing_synapses(by_column, rows_a)
    entries = order[entries]
    keys = rows_b[entries].astype(np.int64) * n_in + np.repeat(columns_a, lengths)
    unique, inverse = np.unique(keys, return_inverse=True)
    values = np.bincount(inverse, weights=values_b[entries] * np.repeat(values_a, lengths), minlength=len(unique))
    return unique // n_in, unique % n_in, values, n_out


def _is_pooling(rule: connect.Conv2d) -> bool:
    """Whether ``rule`` is sum or average pooling: each channel alone, one value in every tap."""
    one_value = bool(np.all(rule.kernel == rule.kernel.flat[0]))
    return rule.groups == rule.input_shape[0] == rule.kernel.shape[0] and one_value


def _pool_then_convolution(pool: connect.Conv2d, conv: connect.Conv2d) -> connect.Conv2d | None:
    """One convolution doing ``pool`` (sum or average pooling) then ``conv``, or None where they do not
    make one. The pooled map's index ``u`` reads inputs ``u s_1 .. u s_1 + k_1 - 1``, so ``conv``'s tap
    ``i`` reads input rows ``(v s_2 - p_2 + i d_2) s_1 + t``: stride ``s_1 s_2``, padding ``p_2 s_1``,
    taps ``i d_2 s_1 + t``. That holds when the pooling is unpadded and, where ``conv`` pads, its
    windows neither overlap (``k_1 <= s_1``) nor leave input rows past the last (``U s_1 >= H``)."""
    first, second = pool.convolution, conv.convolution
    size = pool.kernel.shape[2:]
    for axis in (0, 1):
        height, pooled = first.in_shape[1 + axis], first.out_shape[1 + axis]
        if first.padding[axis] or (second.padding[axis] and (size[axis] > first.stride[axis]
                                                              or pooled * first.stride[axis] < height)):
            return None
    taps = tuple((k - 1) * d * s + p for k, d, s, p in
                 zip(conv.kernel.shape[2:], second.dilation, first.stride, size, strict=True))
    kernel = np.zeros((*conv.kernel.shape[:2], *taps))
    for i in range(conv.kernel.shape[2]):
        for j in range(conv.kernel.shape[3]):
            y, x = i * second.dilation[0] * first.stride[0], j * second.dilation[1] * first.stride[1]
            kernel[:, :, y:y + size[0], x:x + size[1]] += pool.kernel[0, 0, 0, 0] * conv.kernel[:, :, i, j, None, None]
    composed = connect.Conv2d(kernel, first.in_shape, stride=tuple(a * b for a, b in zip(first.stride, second.stride,
                                                                                              strict=True)),
                              padding=tuple(p * s for p, s in zip(second.padding, first.stride, strict=True)),
                              groups=conv.groups)
    return composed if composed.convolution.out_shape == second.out_shape else None


def _connect_convolution_chain(net: Network, graph, start: str, first: str, successors: Mapping[str, list[str]],
                               populations: Mapping[str, Population], factors: Mapping[str, Mapping[str, np.ndarray]],
                               dt: float):
    """Connect a chain holding ``Conv2d``, ``SumPool2d`` or ``AvgPool2d`` nodes (see :func:`_connect_chain`).

    A chain with one convolution (besides Flatten, Delay and Scales of one value) becomes a
    ``connect.Conv2d`` projection, its kernel stored once; so does pooling followed by a
    convolution where the two make one (:func:`_pool_then_convolution`). Other chains (pooling
    then ``Linear``, a ``Scale`` per neuron, factors that differ within a channel) become their
    explicit synapses, the stages' matrices multiplied out. Biases (a ``Conv2d``'s per channel,
    an ``Affine``'s) pass through the later stages and act from the inputs' arrival, as in
    :func:`_connect_chain`."""
    nir = _nir()
    pre = populations[start]
    shape = _map_shapes(graph).get(start, (pre.n,))
    stages: list[tuple] = []
    bias, delay_steps, node_name, size = np.zeros(pre.n), 1, first, pre.n
    while node_name not in populations:
        node = graph.nodes[node_name]
        stage = None
        if isinstance(node, nir.Output):
            return None
        if isinstance(node, nir.Delay):
            delays = np.unique(np.atleast_1d(np.asarray(node.delay, dtype=np.float64)))
            if delays.size > 1:
                raise NIRError(f"NIR node {node_name!r}: ranvier loads one delay per Delay node, got {delays}")
            delay_steps = max(1, int(round(delays[0] / dt)))
        elif isinstance(node, nir.Scale):
            stage = ("scale", np.broadcast_to(np.asarray(node.scale, dtype=np.float64).reshape(-1), (size,)).copy())
        elif isinstance(node, nir.Linear | nir.Affine):
            stage = ("dense", np.asarray(node.weight, dtype=np.float64),
                     np.asarray(node.bias, dtype=np.float64) if isinstance(node, nir.Affine) else None)
            shape = (stage[1].shape[0],)
        elif type(node).__name__ in CONVOLUTIONS:
            rule = _convolution_rule(node_name, node, shape)
            shape = rule.convolution.out_shape
            per_channel = getattr(node, "bias", None)
            stage = ("conv", rule, None if per_channel is None else
                     np.repeat(np.asarray(per_channel, dtype=np.float64), shape[1] * shape[2]))
        if stage is not None:
            if stage[0] == "dense" and stage[1].shape[1] != size:
                raise NIRError(f"NIR node {node_name!r}: weight shape {stage[1].shape} does not take the {size} "
                               f"values arriving from {start!r}")
            if np.any(bias != 0):  # a bias met before passes this stage (its matrix made for that only)
                rows, columns, values, size = _stage_matrix(stage, size)
                bias = np.bincount(rows, weights=values * bias[columns], minlength=size)
            else:
                size = stage[1].shape[0] if stage[0] == "dense" else \
                    stage[1].convolution.n_post if stage[0] == "conv" else size
                bias = np.zeros(size)
            if len(stage) > 2 and stage[2] is not None:
                bias = bias + stage[2]
            stages.append(stage)
        node_name = _only_successor(successors, node_name, node)
    post = populations[node_name]
    if size != post.n:
        raise NIRError(f"NIR edge {start!r} -> {node_name!r}: the chain sends {size} values to {post.n} neurons")
    scalar = np.prod([stage[1][0] for stage in stages if stage[0] == "scale" and np.all(stage[1] == stage[1][0])])
    operators = [stage for stage in stages if not (stage[0] == "scale" and np.all(stage[1] == stage[1][0]))]
    rule = None
    if len(operators) == 1 and operators[0][0] == "conv":
        rule = operators[0][1]
    elif [o[0] for o in operators] == ["conv", "conv"] and _is_pooling(operators[0][1]):
        rule = _pool_then_convolution(operators[0][1], operators[1][1])
    matrix = None
    for receptor, factor in factors[node_name].items():
        channels = None if rule is None else factor.reshape(rule.convolution.out_shape[0], -1)
        if rule is not None and np.all(channels == channels[:, :1]):
            # one kernel for all positions: the factor of each output channel and the scales go into it
            kernel = rule.kernel * scalar * channels[:, 0, None, None, None]
            net.connect(pre, post, dataclasses.replace(rule, kernel=kernel), delay=delay_steps * dt, receptor=receptor)
            continue
        if matrix is None:
            matrix = _stage_matrix(stages[0], pre.n)
            for stage in stages[1:]:
                matrix = _compose(matrix, _stage_matrix(stage, matrix[3]), pre.n)
        rows, columns, values, _ = matrix
        kept = values != 0
        net.connect(pre, post, connect.FromArrays(columns[kept], rows[kept], weight=values[kept] * factor[rows[kept]],
                                                  delay=delay_steps * dt), receptor=receptor)
    if np.any(bias != 0):
        return post, {receptor: bias * factor for receptor, factor in factors[node_name].items()}, delay_steps
    return None


def _read(nir, path) -> object:
    """``nir.read(path)``; a file that is missing, not HDF5 or not a NIR graph is a :class:`NIRError`."""
    if not os.path.isfile(path):
        raise NIRError(f"{path}: no such file")
    try:
        return nir.read(path)
    except (OSError, KeyError, ValueError, TypeError, AttributeError, RuntimeError) as error:
        raise NIRError(f"{path}: not a NIR file nir.read can load ({type(error).__name__}: {error})") from None


def load(path_or_graph, dt: float | None = None, integration: str | None = None, seed: int | None = None,
         convention: str = "nir", t_ref: float | None = None) -> Network:
    """Load a NIR graph (a ``nir.NIRGraph`` or a file ``nir.write`` wrote) into an engine network
    (see :func:`from_nir`)."""
    nir = _nir()

    graph = path_or_graph if isinstance(path_or_graph, nir.NIRGraph) else _read(nir, path_or_graph)
    return from_nir(graph, dt=dt, integration=integration, seed=seed, convention=convention, t_ref=t_ref)
