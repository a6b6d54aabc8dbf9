"""Running a trained network in the event engine on a batch of inputs: one copy of the network per sample."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from copy import copy as shallow_copy

import numpy as np

from ..connect import FromArrays
from ..engine.network import Network, Population
from ..errors import TrainingError
from ..neurons.sources import SpikeSource


def check_trained_network(net: Network, what: str) -> None:
    """Refuse what training and :func:`simulate` do not model: Poisson drives drawn inside their
    targets and projections that learn by STDP (either would make the engine's run differ)."""
    if net.poisson_inputs:
        drive = net.poisson_inputs[0]
        raise TrainingError(f"{what}: {drive.name!r} draws Poisson input inside {drive.post.name!r}, which "
                            "training does not draw; give that input as spikes of an input population")
    plastic = [p.name for p in net.projections if p.plasticity is not None]
    if plastic:
        raise TrainingError(f"{what}: projection {plastic[0]!r} learns by STDP, which training does not model; "
                            "stop it first (ranvier.plasticity.freeze)")


def simulate(net: Network, inputs: Mapping[str, np.ndarray] | np.ndarray, input_name: str | None = None,
             backend: str = "numba", record_v: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Run ``net`` in the event engine on a batch of input spike trains, one network copy per sample.

    ``inputs`` maps each input population to spikes ``(T, B, n)`` emitted in each step (as given
    to :meth:`SpikingModule.forward`); a single array needs ``input_name``. The engine runs one
    network whose populations hold ``B`` copies of the declared ones (block-diagonal
    projections with the same weights and delays, the same parameters and initial state: the
    populations' state now, which after a ``net.run`` is where that run stopped, without the
    spikes still in flight), so the ``B`` samples run independently in one run. Returns, per population, ``"<name>"`` ->
    spikes ``(T, B, n)`` (bool) and, for each name in ``record_v``, ``"<name>.v"`` -> ``v`` at the
    end of each step ``(T, B, n)``.
    """
    check_trained_network(net, "simulate")
    if not isinstance(inputs, Mapping):
        if input_name is None:
            raise TrainingError("simulate: give input_name with a single input array")
        inputs = {input_name: inputs}
    inputs = {name: np.asarray(value) for name, value in inputs.items()}
    for name, value in inputs.items():
        if name not in net.populations or value.ndim != 3 or value.shape[2] != net[name].n:
            size = net[name].n if name in net.populations else "?"
            raise TrainingError(f"simulate: input {name!r} must be a population's spikes (T, B, {size}), "
                                f"got shape {value.shape}")
    steps, batch = next(iter(inputs.values())).shape[:2]
    copy = Network(dt=net.dt, seed=0, precision=net.precision)
    made: dict[str, Population] = {}
    for name, population in net.populations.items():
        if name in inputs:
            k, b, i = np.nonzero(inputs[name])
            counts = inputs[name][k, b, i].astype(np.int64)
            ids = np.repeat(b * population.n + i, counts)
            times = (np.repeat(k, counts) + 1) * net.dt  # a spike emitted in step k is stamped (k + 1) dt
            made[name] = copy.population(SpikeSource(times, ids, n=batch * population.n), name=name)
            continue
        model = population.model
        # the same model with each parameter as drawn for this population, repeated per sample
        replica = shallow_copy(model)
        replica.parameters = {key: np.tile(value, batch) for key, value in population.params.items()}
        init = {state: np.tile(population.state[row], batch) for row, state in enumerate(model.state_names)}
        made[name] = copy.population(replica, n=batch * population.n, name=name, init=init)
    for projection in net.projections:
        offsets = np.arange(batch)[:, None]
        pre = (projection.pre_ids[None, :] + offsets * projection.pre.n).ravel()
        post = (projection.post_ids[None, :] + offsets * projection.post.n).ravel()
        copy.connect(made[projection.pre.name], made[projection.post.name],
                     FromArrays(pre, post, weight=np.tile(projection.weights, batch),
                                delay=np.tile(projection.delays, batch)), receptor=projection.receptor)
    monitors = {name: copy.record(made[name], "spikes") for name in net.populations if name not in inputs}
    voltages = {name: copy.record(made[name], "v") for name in record_v}
    copy.run(steps * net.dt, backend=backend)
    result = {}
    for name, monitor in monitors.items():
        n = net[name].n
        out = np.zeros((steps, batch, n), dtype=bool)
        out[monitor.steps, monitor.ids // n, monitor.ids % n] = True
        result[name] = out
    for name, monitor in voltages.items():
        result[f"{name}.v"] = monitor.values.reshape(steps, batch, net[name].n)
    return result
