"""The CUDA backend, on numba's CUDA simulator (a GPU is not needed).

The simulator runs every CUDA thread as a Python thread, so these runs are small and marked
slow; each runs in a subprocess because NUMBA_ENABLE_CUDASIM must be set before numba.cuda
is imported.
"""


import pytest

import ranvier as rv
from ranvier.engine import backends

_COMPARE = """
import json, numpy as np, ranvier as rv
from ranvier.units import ms

def run(backend, build):
    net = build()
    spikes = {name: net.record(p, "spikes") for name, p in net.populations.items()}
    v = net.record(net.populations[next(iter(net.populations))], "v", ids=[0, 3], every=1 * ms) if TRACE else None
    net.run(DURATION, backend=backend)
    return ({name: [m.steps.tolist(), m.ids.tolist()] for name, m in spikes.items()},
            net.stats.synaptic_events, None if v is None else v.values.tolist())

build = lambda: BUILD
reference, compiled = run("numpy", build), run("cuda", build)
print(json.dumps({"same_spikes": reference[0] == compiled[0], "same_events": reference[1] == compiled[1],
                  "same_trace": reference[2] == compiled[2], "events": reference[1],
                  "spikes": sum(len(ids) for _, ids in reference[0].values())}))
"""


def _comparison(build: str, duration: float, trace: bool = True) -> str:
    """The script that runs ``build`` on numpy and on cuda and compares them."""
    return _COMPARE.replace("BUILD", build).replace("DURATION", repr(duration)).replace("TRACE", repr(trace))


@pytest.mark.slow
@pytest.mark.parametrize("delay", ["0.1 * ms", "rv.init.Uniform(0.1 * ms, 2 * ms)"])
def test_cuba_with_delays_matches_numpy_on_the_simulator(delay, on_cuda_simulator):
    result = on_cuda_simulator(_comparison(f"rv.networks.cuba(n=300, seed=7, delay={delay})", 0.03))
    assert result["spikes"] > 10 and result["events"] > 100
    assert result["same_spikes"] and result["same_events"] and result["same_trace"]


@pytest.mark.slow
def test_poisson_and_spike_sources_match_numpy_on_the_simulator(on_cuda_simulator):
    build = ("(lambda net: (net.connect(net.population(rv.neurons.PoissonSource(rate=3000.0), 12, name='drive'), "
             "net.population(rv.neurons.LIF(v_th=-64.5e-3, tau_syn={'d': 0.0}), 12, name='cells'), "
             "rv.connect.FixedInDegree(3), weight=0.3e-3, delay=0.4e-3), "
             "net.connect(net.population(rv.neurons.SpikeSource([1e-3, 2e-3, 2e-3], [0, 1, 1]), name='times'), "
             "net['cells'], rv.connect.AllToAll(), weight=1e-3, delay=0.2e-3), net)[-1])(rv.Network(seed=4))")
    result = on_cuda_simulator(_comparison(build, 0.01, trace=False))
    assert result["spikes"] > 50
    assert result["same_spikes"] and result["same_events"]


def test_cuda_without_gpu_or_simulator_is_a_clear_error():
    status = backends.available()["cuda"]
    if status == "yes":  # a GPU (or the simulator) is present: the backend must run
        net = rv.networks.cuba(n=200, seed=1)
        net.run(0.002, backend="cuda")
        assert net.stats.steps == 20
    else:
        net = rv.networks.cuba(n=200, seed=1)
        with pytest.raises(rv.BackendError, match="cuda.*no CUDA GPU.*NUMBA_ENABLE_CUDASIM"):
            net.run(0.002, backend="cuda")


@pytest.mark.slow
def test_callbacks_see_and_change_device_state_on_the_simulator(on_cuda_simulator):
    build = ("(lambda net: (net.at(3e-3, lambda n: [n[p].set('v', n[p].get('v') - 5e-3) for p in ('exc', 'inh')]), "
             "net)[-1])(rv.networks.cuba(n=300, seed=2))")
    result = on_cuda_simulator(_comparison(build, 0.03))
    assert result["spikes"] > 0
    # the v traces include the callback's 5 mV step, so equal traces mean it reached the device
    assert result["same_spikes"] and result["same_trace"]
