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
and, for ``Synaptic``, ``w_in = tau_syn / dt``). Graphs ranvier writes carry ``dt``,
``integration = "exact"``, each population's refractory period and its ``v_rest`` (NIR only has
``v_leak = v_rest + i_bias``; ``v_rest`` is the initial ``v``) in their metadata. NIR holds no
state: a loaded network starts from ``v = v_rest`` and zero currents.

Edges: a chain ``population -> [Delay] -> Linear | Affine -> population`` is one projection;
a ``Delay`` of ``d`` seconds becomes ``round(d / dt)`` steps, and a chain without one gets the
engine's minimum of one step. ``Affine`` biases become ``i_bias`` (their steady effect
``R b``, or ``R w_in b`` through a CubaLIF synapse).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from .. import connect
from ..engine.network import Network, Population
from ..engine.plausibility import unchecked
from ..errors import NIRError
from ..neurons.lif import LIF
from ..neurons.sources import SpikeSource

#: NIR node types ``load`` accepts
SUPPORTED_NODES = ("Input", "Output", "LIF", "CubaLIF", "LI", "I", "Linear", "Affine", "Delay")
#: thresholds at or above this make a population non-spiking (LI / I on export and import)
NO_THRESHOLD = 1e30
#: time constant standing for "no leak" (nir.I) in ranvier's LIF, which needs a finite tau_m (s)
NO_LEAK_TAU = 1e9


def _array(value, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64).reshape(-1) if np.ndim(value) else
                           np.asarray(value, dtype=np.float64), (n,)).copy()


def _single(values: np.ndarray, what: str, owner: str) -> float:
    if not np.allclose(values, values[0]):
        raise NIRError(f"{owner}: export needs one {what} per population, got {values.min():g}..{values.max():g}")
    return float(values[0])


# -- export ------------------------------------------------------------------------------------

def to_nir(net: Network):
    """The ``nir.NIRGraph`` of ``net``: SpikeSources as inputs, LIF populations as LIF/CubaLIF/LI/I nodes."""
    import nir

    dt = net.dt
    nodes: dict = {}
    edges: list[tuple[str, str]] = []
    has_output = {name: False for name in net.populations}
    for projection in net.projections:
        has_output[projection.pre.name] = True
    for name, population in net.populations.items():
        model = population.model
        owner = f"population {name!r}"
        if isinstance(model, SpikeSource):
            nodes[name] = nir.Input(input_type={"input": np.array([population.n])})
            continue
        if not isinstance(model, LIF):
            raise NIRError(f"{owner}: {type(model).__name__} has no NIR node; export supports SpikeSource and LIF")
        params = population.params
        taus = {r: _single(params[f"tau_{r}"], f"tau_{r}", owner) for r in model.receptors}
        if len(set(taus.values())) != 1:
            raise NIRError(f"{owner}: receptors with different time constants {taus} have no single NIR node; "
                           "NIR's CubaLIF has one synapse")
        tau_syn = next(iter(taus.values()))
        tau_m = params["tau_m"]
        v_eq = params["v_rest"] + params["i_bias"]
        v_th = params["v_th"]
        # NIR has no refractoriness, and only v_leak = v_rest + i_bias; the split sets the initial v
        metadata = {"t_ref": params["t_ref"], "v_rest": params["v_rest"], "dt": dt, "integration": "exact"}
        spiking = bool(np.all(v_th < NO_THRESHOLD))
        if not spiking and np.all(tau_m >= NO_LEAK_TAU) and tau_syn == 0:
            node = nir.I(r=tau_m / dt, metadata=metadata)
        elif not spiking and tau_syn == 0:
            node = nir.LI(tau=tau_m, r=tau_m / dt, v_leak=v_eq, metadata=metadata)
        elif tau_syn == 0:
            node = nir.LIF(tau=tau_m, r=tau_m / dt, v_leak=v_eq, v_threshold=v_th, v_reset=params["v_reset"],
                           metadata=metadata)
        else:
            n = population.n
            node = nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=tau_m, r=np.ones(n), v_leak=v_eq,
                               v_threshold=v_th, v_reset=params["v_reset"], w_in=np.full(n, tau_syn / dt),
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
    import nir

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


@unchecked()  # NIR graphs from other tools are often in normalised units
def _population(net: Network, name: str, node, dt: float, integration: str, n: int) -> tuple[Population, np.ndarray]:
    """The population for ``node`` and the factor turning a NIR weight into a ranvier weight."""
    import nir

    meta = dict(getattr(node, "metadata", {}) or {})
    t_ref = _array(meta.get("t_ref", 0.0), n)
    if isinstance(node, nir.CubaLIF):
        tau_mem, tau_syn = _array(node.tau_mem, n), _array(node.tau_syn, n)
        r, w_in = _array(node.r, n), _array(node.w_in, n)
        factor = r * w_in * dt / tau_syn
        v_leak = _array(node.v_leak, n)
        v_rest = _array(meta.get("v_rest", v_leak), n)
        model = LIF(tau_m=_leak_tau(tau_mem, dt, integration), v_rest=v_rest, i_bias=v_leak - v_rest,
                    v_th=_array(node.v_threshold, n),
                    v_reset=_array(node.v_leak if node.v_reset is None else node.v_reset, n), t_ref=t_ref,
                    tau_syn={"syn": _leak_tau(tau_syn, dt, integration)})
        return net.population(model, n=n, name=name), factor
    if isinstance(node, nir.I):
        tau, v_leak, threshold, reset = np.full(n, NO_LEAK_TAU), np.zeros(n), np.full(n, NO_THRESHOLD), np.zeros(n)
        r = _array(node.r, n)
        factor = r * dt
        tau_m = tau
    else:
        tau = _array(node.tau, n)
        r = _array(node.r, n)
        v_leak = _array(node.v_leak, n)
        spiking = isinstance(node, nir.LIF)
        threshold = _array(node.v_threshold, n) if spiking else np.full(n, NO_THRESHOLD)
        reset = _array(node.v_reset if spiking and node.v_reset is not None else node.v_leak, n)
        factor = r * dt / tau
        tau_m = _leak_tau(tau, dt, integration)
    v_rest = _array(meta.get("v_rest", v_leak), n)
    model = LIF(tau_m=tau_m, v_rest=v_rest, v_th=threshold, v_reset=reset, t_ref=t_ref, tau_syn={"in": 0.0},
                i_bias=v_leak - v_rest)
    return net.population(model, n=n, name=name), factor


def from_nir(graph, dt: float | None = None, integration: str | None = None, seed: int | None = None) -> Network:
    """A :class:`~ranvier.Network` from a ``nir.NIRGraph`` (module docstring for the mapping).

    ``dt`` (s) and ``integration`` (``"exact"`` or ``"euler"``) default to the graph's metadata,
    which ranvier writes; other graphs need ``dt`` and default to ``"euler"`` (the discrete-time
    convention of snnTorch and Norse). Input nodes become empty ``SpikeSource`` populations of
    the same name.
    """
    import nir

    meta = dict(graph.metadata or {})
    dt = float(dt if dt is not None else meta.get("dt", 0.0))
    if not dt > 0:
        raise NIRError("from_nir: the graph has no dt in its metadata; pass dt (s), e.g. 1e-4 for snnTorch graphs")
    integration = integration or meta.get("integration", "euler")
    if integration not in ("exact", "euler"):
        raise NIRError(f"from_nir: integration must be 'exact' or 'euler', got {integration!r}")
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if kind not in SUPPORTED_NODES:
            raise NIRError(f"NIR node {name!r}: type {kind} is not supported; supported: {', '.join(SUPPORTED_NODES)}")
    net = Network(dt=dt, seed=seed)
    neurons = (nir.LIF, nir.CubaLIF, nir.LI, nir.I)
    sizes = _sizes(graph)
    populations: dict[str, Population] = {}
    factors: dict[str, np.ndarray] = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Input):
            n = int(np.prod(next(iter(node.input_type.values()))))
            populations[name] = net.population(SpikeSource([], [], n=n), name=name)
        elif isinstance(node, neurons):
            populations[name], factors[name] = _population(net, name, node, dt, integration, sizes[name])
    successors: dict[str, list[str]] = {}
    for source, target in graph.edges:
        successors.setdefault(source, []).append(target)
    for start in populations:
        for first in successors.get(start, []):
            _connect_chain(net, graph, start, first, successors, populations, factors, dt)
    return net


def _sizes(graph) -> dict[str, int]:
    """Neuron count of each neuron node: from its parameters, else from the Linear feeding it."""
    sizes = {}
    for name, node in graph.nodes.items():
        for field in ("tau", "tau_mem", "r", "v_threshold"):
            value = getattr(node, field, None)
            if value is not None and np.ndim(value):
                sizes[name] = int(np.size(value))
                break
    for source, target in graph.edges:
        node = graph.nodes[source]
        if target not in sizes and hasattr(node, "weight"):
            sizes[target] = int(np.shape(node.weight)[0])
    return sizes


def _connect_chain(net: Network, graph, start: str, first: str, successors: Mapping[str, list[str]],
                   populations: Mapping[str, Population], factors: Mapping[str, np.ndarray], dt: float) -> None:
    import nir

    delay_steps, weight, bias, node_name = 1, None, None, first
    while node_name not in populations:
        node = graph.nodes[node_name]
        if isinstance(node, nir.Output):
            return
        if isinstance(node, nir.Delay):
            delays = np.unique(np.atleast_1d(np.asarray(node.delay, dtype=np.float64)))
            if delays.size > 1:
                raise NIRError(f"NIR node {node_name!r}: ranvier loads one delay per Delay node, got {delays}")
            delay_steps = max(1, int(round(delays[0] / dt)))
        elif isinstance(node, nir.Linear | nir.Affine):
            if weight is not None:
                raise NIRError(f"NIR node {node_name!r}: two weight nodes in a row between {start!r} and a population")
            weight = np.asarray(node.weight, dtype=np.float64)
            bias = np.asarray(node.bias, dtype=np.float64) if isinstance(node, nir.Affine) else None
        following = successors.get(node_name, [])
        if len(following) != 1:
            raise NIRError(f"NIR node {node_name!r}: a {type(node).__name__} must lead to exactly one node, "
                           f"got {following}")
        node_name = following[0]
    post = populations[node_name]
    pre = populations[start]
    if weight is None:
        weight = np.eye(post.n, pre.n)
    if weight.shape != (post.n, pre.n):
        raise NIRError(f"NIR edge {start!r} -> {node_name!r}: weight shape {weight.shape} does not match "
                       f"({post.n}, {pre.n})")
    factor = factors[node_name]
    post_ids, pre_ids = np.nonzero(weight)
    net.connect(pre, post, connect.FromArrays(pre_ids, post_ids, weight=weight[post_ids, pre_ids] * factor[post_ids],
                                              delay=delay_steps * dt))
    if bias is not None and np.any(bias != 0):
        # the steady effect of a constant input b: R b (LIF) or R w_in b (CubaLIF) on v
        node = graph.nodes[node_name]
        gain = _array(node.r, post.n) * (_array(node.w_in, post.n) if isinstance(node, nir.CubaLIF) else 1.0)
        post.params["i_bias"] = post.params["i_bias"] + gain * bias
        post.model.parameters["i_bias"] = post.params["i_bias"]


def load(path_or_graph, dt: float | None = None, integration: str | None = None, seed: int | None = None) -> Network:
    """Load a NIR graph (a ``nir.NIRGraph`` or a file ``nir.write`` wrote) into an engine network."""
    import nir

    graph = path_or_graph if isinstance(path_or_graph, nir.NIRGraph) else nir.read(path_or_graph)
    return from_nir(graph, dt=dt, integration=integration, seed=seed)
