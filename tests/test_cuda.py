"""The CUDA backend, on numba's CUDA simulator (a GPU is not needed).

The simulator runs every CUDA thread as a Python thread, so these runs are small and marked
slow; each runs in a subprocess because NUMBA_ENABLE_CUDASIM must be set before numba.cuda
is imported.
"""


import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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


_FAILURES = """
import json, numpy as np, ranvier as rv
from ranvier.engine.model import Model, rows, select

class Runaway(Model):
    '''Grows tenfold a step and never checks itself: infinite in float32 after 38 steps.'''
    state_rows = rows("v")
    def constants(self, params, dt):
        return np.array([[10.0], [1.0]])
    def initial_state(self):
        return {"v": 1.0}
    @staticmethod
    def step(state, consts, arriving, i, c, k, key):
        state[0, i] = state[0, i] * consts[0, c] + consts[1, c]
        return 0

class Burst(Model):
    '''Claims at most one spike a step and emits 20 000 a neuron: its spike buffer overflows.'''
    state_rows = rows("v")
    def constants(self, params, dt):
        return np.array([[0.0]])
    def spike_bound(self, params, dt, n):
        return 1
    @staticmethod
    def step(state, consts, arriving, i, c, k, key):
        return select(state[0, i] == consts[0, c], 20000, 0)

messages = {}
for case, model, n, backends in (("runaway", Runaway(), 3, ("numpy", "numba", "cuda")),
                                 ("burst", Burst(), 4, ("numpy", "numba", "cuda"))):
    for backend in backends:
        net = rv.Network(seed=3)
        net.population(rv.neurons.PoissonSource(rate=500.0), 20, name="drive")  # population 0 is fine
        net.population(model, n, name=case)
        try:
            net.run(0.01, backend=backend)
            messages[f"{case}/{backend}"] = None
        except (rv.NumericalError, rv.BackendError) as error:
            messages[f"{case}/{backend}"] = f"{type(error).__name__}: {error}"
print(json.dumps(messages))
"""


@pytest.mark.slow
def test_failures_name_their_population_and_step_as_on_the_cpu(on_cuda_simulator):
    """A model that does not check itself becomes infinite; another overflows its spike buffer."""
    messages = on_cuda_simulator(_FAILURES)
    assert messages["runaway/numba"].startswith("NumericalError: population 'runaway'")
    assert "step 38" in messages["runaway/numba"]
    assert messages["runaway/cuda"] == messages["runaway/numba"] == messages["runaway/numpy"]
    assert messages["burst/numba"].startswith("BackendError: population 'burst': more spikes in step 0 than its "
                                              "buffer holds, sized by Burst.spike_bound")
    assert messages["burst/cuda"] == messages["burst/numba"] == messages["burst/numpy"]


_LEARNING = """
import json, numpy as np, ranvier as rv
from ranvier.plasticity import STDP
from ranvier.units import ms, mV

def run(backend, precision):
    net = rv.Network(dt=0.1 * ms, seed=5, precision=precision)
    drive = net.population(rv.neurons.PoissonSource(rate=2500.0), n=30, name="drive")
    cells = net.population(rv.neurons.LIF(tau_syn={"exc": 2 * ms}), n=40, name="cells",
                           init={"v": rv.init.Uniform(-65 * mV, -50 * mV)})
    inputs = net.connect(drive, cells, rv.connect.Bernoulli(p=0.3), weight=rv.init.Uniform(0, 6 * mV), delay=2 * ms,
                         plasticity=STDP(tau_plus=5 * ms, tau_minus=8 * ms, a_plus=0.05, a_minus=0.06,
                                         w_max=10 * mV, rule="multiplicative"))
    recurrent = net.connect(cells, cells, rv.connect.Bernoulli(p=0.2), weight=2 * mV, delay=2 * ms,
                            plasticity=STDP(tau_plus=5 * ms, tau_minus=8 * ms, a_plus=0.3 * mV, a_minus=0.3 * mV,
                                            w_max=10 * mV))
    drive_spikes, spikes = net.record(drive, "spikes"), net.record(cells, "spikes")
    net.run(15 * ms, backend=backend)
    net.run(15 * ms, backend=backend)  # the traces carry over: wrong ones would show in this run's weights
    _, repeats = np.unique(np.stack([drive_spikes.steps, drive_spikes.ids]), axis=1, return_counts=True)
    return ([inputs.weights.tolist(), recurrent.weights.tolist(), spikes.steps.tolist(), spikes.ids.tolist()],
            int(spikes.num_spikes), int(repeats.max()), bool(np.any(recurrent.weights != np.float32(2 * mV))))

result = {}
for precision in ("single", "double"):
    reference, simulated = run("numpy", precision), run("cuda", precision)
    result[precision] = {"same": [a == b for a, b in zip(reference[0], simulated[0])], "spikes": reference[1],
                         "most_in_a_step": reference[2], "learned": reference[3]}
print(json.dumps(result))
"""


@pytest.mark.slow
def test_parallel_stdp_learns_exactly_as_numpy_on_the_simulator(on_cuda_simulator):
    """Chunks of 20 steps, sources that spike several times a step, recurrent learning, both precisions:
    input and recurrent weights and the spikes they cause equal numpy's."""
    for precision, outcome in on_cuda_simulator(_LEARNING).items():
        assert outcome["same"] == [True] * 4, precision
        assert outcome["spikes"] > 100 and outcome["most_in_a_step"] > 1 and outcome["learned"], precision


@pytest.mark.slow
def test_the_prepared_gpu_script_runs_end_to_end_on_the_simulator(tmp_path):
    """``benchmarks/gpu/run.sh --small``: every section, its JSON and its report, with no GPU. The GPU's time
    bounds (420 s of sections, 480 s in all) are lifted: the simulator's runs time nothing, and take 340-450 s
    on a 2-core machine."""
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# Benchmarks\n\n## Other\n\nkept\n")
    repo = Path(__file__).resolve().parents[1]
    environment = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "OUT": str(tmp_path), "REPORT": str(report),
                   "PYTHON": sys.executable, "TIMEOUT_S": "1700"}
    finished = subprocess.run(["bash", str(repo / "benchmarks" / "gpu" / "run.sh"), "--small", "--budget", "1500"],
                              env=environment, capture_output=True, text=True, timeout=1800)
    assert finished.returncode == 0, finished.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_checks.json").read_text())
    assert results["machine"]["simulator"]
    for section in ("equality", "cuba", "cuba_dense", "mixed", "chunk_costs", "microcircuit", "delivery", "launches",
                    "launch_modes", "training", "shapes", "rate"):
        assert "error" not in results[section] and "skipped" not in results[section], (section, results[section])
    for name, shape in results["shapes"].items():
        assert shape["spikes"] > 0 and shape["by_target"] == shape["by_spike"] == {
            "spikes_identical": True, "values_max_difference": 0.0}, (name, shape)
    assert results["equality"]["identical"] and results["equality"]["learned"]
    for name in ("cuba", "cuba_dense"):
        delivery = results["delivery"][name]
        assert delivery["spikes"] > 0 and delivery["faster"] in ("by_target", "by_spike")
        assert delivery["by_target"]["spikes_identical_to_numba"] and delivery["by_spike"]["spikes_identical_to_numba"]
    assert results["cuba"]["spikes_identical_to_numba"] and results["mixed"]["spikes_identical_to_numba"]
    for name, modes in results["launch_modes"].items():
        assert modes["spikes_identical"] and modes["spikes"] > 0 and modes["cooperative_used"], (name, modes)
    for costs in results["chunk_costs"].values():  # the simulator runs kernels on the host: no waits to speak of
        assert costs["chunks"] == 20 and costs["host_us_per_chunk"] > costs["waits_us_per_chunk"] >= 0
    launches = results["launches"]
    # 20 chunks in one cooperative launch
    assert launches["cuba"]["chunks"] == 20 and launches["cuba"]["launches"] == 1
    assert launches["most_per_chunk"] == 1 / 20
    # a copy per chunk or per value window (the mixed network's astrocyte updates every chunk) would give >= 1;
    # what a longer run adds is the new spikes of populations that first spike in it
    assert all(launches[name]["copies_to_host_per_chunk"] < 0.5 for name in ("cuba", "cuba_dense", "mixed"))
    rate = results["rate"]  # torch on the CPU on both sides: the same float32 products
    assert rate["spikes"] > 0 and rate["spikes_identical"] and rate["output_max_difference"] == 0.0
    # a window of 2 ms over 10 ms; each hands over the excitatory rings and the Rate's count window (not the
    # excitatory state, which the Rate's output does not set, the inhibitory population, the spiking
    # populations' source positions, or a schedule of pulses the Rate does not emit)
    assert rate["window"]["windows"] == 5 and rate["window"]["copies_to_host"] == 2
    text = report.read_text()
    assert "## Other\n\nkept" in text and "## GPU" in text and "not GPU timings" in text


_LAUNCHES = """
import json, os, sys
import ranvier as rv
from ranvier.units import mV, ms
sys.path.insert(0, os.path.join(TESTS, os.pardir, "benchmarks", "gpu"))
from gpu_checks import counting_chunks, counting_launches, launching

def build():
    net = rv.networks.cuba(n=120, seed=3, delay=0.3 * ms)  # CSR projections; chunks of 3 steps
    net.connect(net["inh"], net["exc"], rv.connect.AllToAll(), weight=-0.2 * mV, delay=0.5 * ms, receptor="inh")
    net.connect(rv.connect.PoissonInput(2000.0, 20), net["exc"], weight=1.0 * mV, receptor="exc")
    return net

def run(backend, steps, cooperative=True):
    with launching(cooperative):
        net = build()
        spikes = [net.record(name, "spikes") for name in ("exc", "inh")]
        v = net.record("exc", "v", ids=[0, 5, 5], every=2 * net.dt)
        net.run(2 * net.dt, backend=backend)  # lowers and compiles
    lowered = net._simulation.lowered
    chunks = counting_chunks(lowered)
    with counting_launches() as counted:
        net.run(steps * net.dt, backend=backend)
    return ([[m.steps.tolist(), m.ids.tolist()] for m in spikes], v.values.tolist(),
            dict(net.stats.synaptic_events_by_projection), lowered.chunk, chunks["n"], counted)

reference, short, long = run("numpy", 30), run("cuda", 30), run("cuda", 60)
two = run("cuda", 30, cooperative=False)
print(json.dumps({"same": reference[:3] == short[:3] == two[:3], "spikes": sum(len(ids) for _, ids in reference[0]),
                  "chunk": short[3], "chunks": [short[4], long[4], two[4]],
                  "launches": [short[5]["launches"], long[5]["launches"], two[5]["launches"]],
                  "copies": [short[5]["copies"], long[5]["copies"]]}))
"""


@pytest.mark.slow
def test_a_run_takes_one_cooperative_launch_and_no_copy_to_the_host_on_the_simulator(on_cuda_simulator):
    """LIF populations, CSR and all-to-all projections, a Poisson drive and a state monitor: a run's chunks
    (10 and 20, fewer than ``CHUNKS_PER_LAUNCH``, with room in every spike buffer) are one cooperative
    launch; as two launches each (``update``, ``deliver``) they give the same spikes, samples and events;
    and the copies of a run do not grow with its chunks."""
    result = on_cuda_simulator(_LAUNCHES)
    assert result["same"] and result["spikes"] > 50
    assert result["chunk"] == 3 and result["chunks"] == [10, 20, 10]
    assert result["launches"] == [1, 1, 20]
    assert result["copies"][0] == result["copies"][1]


_PAUSES = """
import json, os, sys
import numpy as np
import ranvier as rv
from ranvier.engine import lowering
from ranvier.units import mV, ms
sys.path.insert(0, os.path.join(TESTS, os.pardir, "benchmarks", "gpu"))
from gpu_checks import counting_launches, launching, mixed_network
lowering._MIN_SPIKE_CAPACITY = 1  # spike buffers of four chunks at the populations' bounds

def burst(net):
    # 50 sources spiking in every step: their buffer fills within a few chunks, so the kernels pause often
    steps, ids = np.meshgrid(np.arange(1, 80), np.arange(50), indexing="ij")
    source = net.population(rv.neurons.SpikeSource(steps.ravel() * net.dt, ids.ravel()), name="burst")
    net.connect(source, net["exc"], rv.connect.FixedInDegree(5), weight=0.05 * mV, delay=0.3 * ms, receptor="exc")

def cuba():
    net = rv.networks.cuba(n=120, seed=3, delay=0.3 * ms)  # chunks of 3 steps
    net.connect(rv.connect.PoissonInput(2000.0, 20), net["exc"], weight=1.0 * mV, receptor="exc")
    burst(net)
    return net, ("exc", "inh", "burst"), None

def mixed():
    net = mixed_network(120, 10, cfc_units=8)
    net.connect(rv.connect.PoissonInput(2000.0, 20), net["exc"], weight=1.0 * mV, receptor="exc")
    burst(net)
    return net, ("exc", "inh", "osc", "burst"), "cfc"

def run(build, backend, cooperative=True):
    with launching(cooperative):
        net, names, value = build()
        spikes = [net.record(name, "spikes") for name in names]
        v = net.record("exc", "v", ids=[0, 3, 3], every=2 * net.dt)
        output = net.record(value, "output") if value else None
        with counting_launches() as counted:
            net.run(60 * net.dt, backend=backend)
    return ([[m.steps.tolist(), m.ids.tolist()] for m in spikes], v.values.tolist(), v.t.tolist(),
            dict(net.stats.synaptic_events_by_projection), [] if output is None else output.values.tolist(),
            counted["launches"])

record = {}
for name, build in (("cuba", cuba), ("mixed", mixed)):
    reference = run(build, "numpy")
    record[name] = {"spikes": sum(len(ids) for _, ids in reference[0]), "launches": {}, "same": {}}
    for mode in ("cooperative", "two_launches") if name == "cuba" else ("cooperative",):
        result = run(build, "cuda", mode == "cooperative")
        record[name]["same"][mode] = result[:5] == reference[:5]
        record[name]["launches"][mode] = result[5]
print(json.dumps(record))
"""


@pytest.mark.slow
def test_the_kernels_pause_before_a_chunk_that_could_overflow_a_spike_buffer_on_the_simulator(on_cuda_simulator):
    """Spike buffers of four chunks at their populations' bounds, and a source that fills its buffer: the kernels
    stop themselves before each chunk that could overflow one, the host takes back the monitor samples it had
    recorded for the chunks not run, the simulation empties the buffers and goes on. Spikes, state samples and
    their times, a CfC's recorded outputs and synaptic events stay numpy's, in cooperative launches and in two
    launches a chunk."""
    result = on_cuda_simulator(_PAUSES)
    for name, record in result.items():
        assert record["spikes"] > 3000 and all(record["same"].values()), (name, record)
    # 3000 burst spikes into buffers of 600 (chunks of 3 steps) or 200 (1 step): a launch per pause, and more
    assert result["cuba"]["launches"]["cooperative"] >= 5 and result["mixed"]["launches"]["cooperative"] >= 15
    # two launches a chunk for 20 chunks, and for the chunks planned after a pause (they return at once)
    assert result["cuba"]["launches"]["two_launches"] > 40


_MIXED_COPIES = """
import json, os, sys
import numpy as np
import ranvier as rv
from ranvier.units import mV
sys.path.insert(0, os.path.join(TESTS, os.pardir, "benchmarks", "gpu"))
from gpu_checks import counting_chunks, counting_launches, mixed_network

def run(backend, steps):
    net = mixed_network(120, 10, cfc_units=8)
    net.connect(rv.connect.PoissonInput(2000.0, 20), net["exc"], weight=1.0 * mV, receptor="exc")
    spikes = [net.record(name, "spikes") for name in ("exc", "inh", "osc")]
    output = net.record("cfc", "output")
    net.run(2 * net.dt, backend=backend)  # lowers and compiles
    lowered = net._simulation.lowered
    chunks = counting_chunks(lowered)
    with counting_launches() as counted:
        net.run(steps * net.dt, backend=backend)
    on_device = sorted(v.name for v in lowered.values)
    return ([[m.steps.tolist(), m.ids.tolist()] for m in spikes], output.values, counted["copies"], on_device,
            [counted["launches"], chunks["n"]])

reference, short, long = run("numpy", 100), run("cuda", 50), run("cuda", 100)
print(json.dumps({"same_spikes": reference[0] == long[0], "spikes": sum(len(ids) for _, ids in reference[0]),
                  "output_difference": float(np.abs(reference[1] - long[1]).max()),
                  "output_range": float(np.ptp(reference[1])), "copies": [short[2], long[2]],
                  "on_device": long[3], "launches_and_chunks": [short[4], long[4]]}))
"""


@pytest.mark.slow
def test_a_mixed_network_takes_one_launch_a_run_and_stays_on_the_device_on_the_simulator(on_cuda_simulator):
    """CUBA with an STDP projection, Kuramoto oscillators, an astrocyte at the network's dt and a CfC: learning
    and every value window run in the delivery part's last block, so a run of 50 or 100 chunks is one
    cooperative launch, copies no more to the host when it spans twice the value windows, and matches numpy."""
    result = on_cuda_simulator(_MIXED_COPIES)
    assert result["on_device"] == ["astro", "cfc", "osc"]
    for launches, chunks in result["launches_and_chunks"]:
        assert chunks >= 50 and launches == 1
    assert result["copies"][0] == result["copies"][1]
    assert result["same_spikes"] and result["spikes"] > 20
    assert result["output_range"] > 1e-3 and result["output_difference"] <= 1e-11


_DELIVERIES = """
import json
import numpy as np
import ranvier as rv
from ranvier.engine.backends import cuda_chunk
from ranvier.units import ms

def build(unsorted):
    net = rv.Network(seed=3)
    drive = net.population(rv.neurons.PoissonSource(rate=2000.0), 20, name="drive")
    cells = net.population(rv.neurons.LIF(v_th=-64.0e-3), 15, name="cells")
    # 40 synapses onto each of 15 cells from 20 sources (multapses), weights that round differently when
    # summed in another order, per-synapse delays: several inputs reach one cell in one step
    net.connect(drive, cells, rv.connect.FixedInDegree(40), weight=rv.init.Uniform(0.1e-3, 0.7e-3),
                delay=rv.init.Uniform(0.1 * ms, 1 * ms), receptor="exc")
    net.connect(cells, cells, rv.connect.AllToAll(), weight=0.3e-3, delay=0.3e-3, receptor="exc")
    if unsorted:  # rows whose targets do not ascend
        rng = np.random.default_rng(0)
        net.connect(drive, cells, rv.connect.FromArrays(rng.integers(0, 20, 60), rng.integers(0, 15, 60),
                                                        weight=0.2e-3), delay=0.2e-3, receptor="inh")
    return net

def run(backend, unsorted):
    net = build(unsorted)
    spikes = net.record("cells", "spikes")
    v = net.record("cells", "v", every=0.1 * ms)
    net.run(20 * ms, backend=backend)
    by_target = cuda_chunk.delivers_by_target(net._simulation.lowered)
    return [spikes.steps.tolist(), spikes.ids.tolist(), net.stats.synaptic_events, v.values.tolist()], by_target

results = {}
for unsorted in (False, True):
    reference, _ = run("numpy", unsorted)
    default, by_target = run("cuda", unsorted)
    cuda_chunk.TARGET_DELIVERY_MAX_SYNAPSES = 0
    by_spike, forced = run("cuda", unsorted)
    cuda_chunk.TARGET_DELIVERY_MAX_SYNAPSES = 100_000
    results["unsorted" if unsorted else "sorted"] = {
        "by_target": [by_target, forced], "same": [default == reference, by_spike == reference],
        "spikes": len(reference[1]), "events": reference[2]}
print(json.dumps(results))
"""


@pytest.mark.slow
def test_delivery_by_target_and_by_spike_both_match_numpy_on_the_simulator(on_cuda_simulator):
    """Multapses, per-synapse delays, uniform weights and an all-to-all projection: delivered by target (a thread
    per target neuron gathering in the reference order) and by spike (atomic adds), cuda gives numpy's spikes,
    events and voltages; rows whose targets do not ascend are delivered by spike."""
    result = on_cuda_simulator(_DELIVERIES)
    assert result["sorted"]["by_target"] == [True, False]
    assert result["unsorted"]["by_target"] == [False, False]
    for case in result.values():
        assert case["same"] == [True, True]
        assert case["spikes"] > 100 and case["events"] > 10_000


def test_delivery_by_target_is_chosen_where_rows_ascend_and_no_convolution(monkeypatch):
    """CSR rows whose targets ascend and all-to-all projections, up to the synapse bound: by target."""
    from ranvier.engine.backends import cuda_chunk
    from ranvier.engine.lowering import lower

    cuba = rv.networks.cuba(n=200, seed=1)
    assert cuda_chunk.delivers_by_target(lower(cuba))
    monkeypatch.setattr(cuda_chunk, "TARGET_DELIVERY_MAX_SYNAPSES", len(cuba.projections[0]) - 1)
    assert not cuda_chunk.delivers_by_target(lower(cuba))
    monkeypatch.undo()
    net = rv.Network(seed=1)
    a = net.population(rv.neurons.LIF(), 4, name="a")
    b = net.population(rv.neurons.LIF(), 4, name="b")
    net.connect(a, b, rv.connect.AllToAll(), weight=1e-3, receptor="exc")
    assert cuda_chunk.delivers_by_target(lower(net))
    net.connect(a, b, rv.connect.FromArrays([0, 0], [3, 1], weight=1e-3), receptor="exc")
    assert not cuda_chunk.delivers_by_target(lower(net))
    image = rv.Network(seed=1)
    pixels = image.population(rv.neurons.LIF(), 16, name="pixels")
    maps = image.population(rv.neurons.LIF(), 9, name="maps")
    image.connect(pixels, maps, rv.connect.Conv2d(np.ones((1, 1, 2, 2)), (1, 4, 4)), receptor="exc")
    assert not cuda_chunk.delivers_by_target(lower(image))


@pytest.mark.slow
def test_every_generated_kernel_compiles_for_a_gpu_without_one():
    """``benchmarks/gpu/ptx_check.py``: the cooperative ``chunks`` kernel and the update and delivery kernels of
    the GPU check's networks (and of per-synapse delays, a convolution, Poisson drives, an LTC, Equations models),
    delivered by target and by spike, compile to PTX for compute capability 9.0 with NVVM alone, which the
    simulator (untyped) cannot show."""
    repo = Path(__file__).resolve().parents[1]
    environment = {name: value for name, value in os.environ.items() if name != "NUMBA_ENABLE_CUDASIM"}
    finished = subprocess.run([sys.executable, str(repo / "benchmarks" / "gpu" / "ptx_check.py")], env=environment,
                              capture_output=True, text=True, timeout=1200)
    record = json.loads(finished.stdout.strip().splitlines()[-1])
    if "unavailable" in record:
        pytest.skip(f"no NVVM to compile CUDA kernels with: {record['unavailable']}")
    assert finished.returncode == 0 and record["failures"] == [], record["failures"]
    assert len(record["networks"]) == 16
    for name, kernels in record["networks"].items():
        assert sorted(kernel["kernel"] for kernel in kernels) == ["chunks", "deliver", "update"], name
        assert all(kernel["ptx_lines"] > 500 and 0 < kernel["parameter_bytes"] <= 32_764 for kernel in kernels)


def test_a_chunk_kernel_marshals_its_arguments_once_and_again_after_a_reset(monkeypatch):
    """``cuda_backend._Launch`` (no GPU: numba's dispatcher and ``cuda.core``'s launch stand in): the first
    launch goes through numba; later ones reuse its converted parameters with only the changing integers
    replaced; a reset, or a host array (which numba copies at every launch), sends launches through numba; a
    kernel that synchronises its grid is launched cooperatively."""
    import ctypes
    import types as pytypes

    from numba import types
    from numba.cuda import dispatcher

    from ranvier.engine.backends import cuda_backend

    launched = []
    monkeypatch.setattr(cuda_backend, "_SIMULATED", False)
    monkeypatch.setattr(dispatcher, "launch", lambda stream, config, kernel, *parameters: launched.append(
        (stream, config, kernel, parameters)), raising=False)
    monkeypatch.setattr(dispatcher, "LaunchConfig", lambda **options: options, raising=False)
    monkeypatch.setattr(dispatcher, "CUDA_CORE_GE_1_0", True, raising=False)

    class Compiled:
        argument_types = (types.int64[:], types.int64, types.int32)
        cooperative = False  # numba's flag: the kernel synchronises its grid
        _codelibrary = pytypes.SimpleNamespace(get_cufunc=lambda: pytypes.SimpleNamespace(kernel="kernel"))

        def __init__(self):
            self.conversions = 0

        def _prepare_args(self, argument_type, value, stream, written_back, parameters):
            self.conversions += 1
            if isinstance(value, np.ndarray):
                written_back.append(value)  # numba copies a host array back after the launch
            parameters.extend(["meminfo", "parent", id(value)] if isinstance(argument_type, types.Array)
                              else [getattr(ctypes, f"c_{argument_type}")(value)])

    class Configured:
        griddim, blockdim, sharedmem, stream = (4, 1, 1), (128, 1, 1), 0, "stream"

        def __init__(self):
            self.compiled, self.calls = Compiled(), []
            self.dispatcher = pytypes.SimpleNamespace(overloads={"signature": self.compiled})

        def __call__(self, *values):
            self.calls.append(values)

    device_array, configured = object(), Configured()
    launch = cuda_backend._Launch(configured, ("ring", "start", "length"), changing=("start", "length", "m0_base"))
    assert launch.changing == ["start", "length"]
    for start in (0, 1, 2):
        launch({"ring": device_array, "start": start, "length": 3})
    assert configured.calls == [(device_array, 0, 3)] and configured.compiled.conversions == 3
    assert [(stream, kernel) for stream, _, kernel, _ in launched] == [("stream", "kernel")] * 2
    assert launched[0][1] == {"grid": (4, 1, 1), "block": (128, 1, 1), "shmem_size": 0, "is_cooperative": False}
    parameters = [(p[:3], p[3].value, type(p[3]), p[4].value, type(p[4])) for *_, p in launched]
    assert parameters == [(("meminfo", "parent", id(device_array)), start, ctypes.c_int64, 3, ctypes.c_int32)
                          for start in (1, 2)]
    launch.reset()
    launch({"ring": device_array, "start": 7, "length": 1})
    assert configured.calls[-1] == (device_array, 7, 1) and len(launched) == 2
    host_array, host = np.zeros(3, dtype=np.int64), Configured()
    through_numba = cuda_backend._Launch(host, ("ring", "start", "length"), changing=("start",))
    for start in (0, 1):
        through_numba({"ring": host_array, "start": start, "length": 3})
    assert len(host.calls) == 2 and len(launched) == 2
    # a kernel with a grid-wide barrier (``chunks``) is launched cooperatively, as numba would
    cooperative = Configured()
    cooperative.compiled.cooperative = True
    chunks = cuda_backend._Launch(cooperative, ("ring", "start", "length"), changing=("start",))
    for start in (0, 1):
        chunks({"ring": device_array, "start": start, "length": 3})
    assert len(cooperative.calls) == 1 and launched[-1][1]["is_cooperative"] is True


def test_a_numba_cuda_that_wants_np_row_stack_is_a_clear_error():
    """numba-cuda 0.30.4 beside numpy 2.5 fails at its first compile; the backend says why and what to do."""
    from ranvier.engine.backends import cuda_backend

    def configured(*values):
        raise AttributeError("module 'numpy' has no attribute 'row_stack'")

    with pytest.raises(rv.BackendError, match=r"cuda: .*np\.row_stack.*numpy < 2\.5"):
        cuda_backend._Launch(configured, ("start",), changing=("start",))({"start": 0})
