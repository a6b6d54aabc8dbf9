"""Checkpoints: run(..., checkpoint=path, every=...), a killed run, and resuming it."""

import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

import ranvier as rv
from ranvier.errors import RunError, StorageError
from ranvier.units import Hz, ms, mV

# The network of the killed run and of the reference run: built the same way in both processes.
BUILD = textwrap.dedent("""
    import ranvier as rv
    from ranvier.units import Hz, ms, mV

    def build():
        net = rv.networks.cuba(n=400, seed=5, delay=rv.init.Uniform(0.1 * ms, 2 * ms))
        noise = net.population(rv.neurons.PoissonSource(rate=20 * Hz), n=50, name="noise")
        net.connect(noise, net["exc"], rv.connect.Bernoulli(p=0.1), weight=0.5 * mV, delay=1.5 * ms,
                    receptor="exc")
        net.record(net["exc"], "spikes")
        net.record(net["inh"], "spikes", ids=range(0, 80, 3))
        net.record(net["exc"], "v", ids=[1, 2, 3], every=1 * ms)
        return net
""")


def _build() -> rv.Network:
    namespace: dict = {}
    exec(BUILD, namespace)
    return namespace["build"]()


def _assert_same_recordings(a: rv.Network, b: rv.Network) -> None:
    for monitor_a, monitor_b in zip(a.spike_monitors, b.spike_monitors, strict=True):
        np.testing.assert_array_equal(monitor_a.steps, monitor_b.steps)
        np.testing.assert_array_equal(monitor_a.ids, monitor_b.ids)
    for monitor_a, monitor_b in zip(a.state_monitors, b.state_monitors, strict=True):
        np.testing.assert_array_equal(monitor_a.t, monitor_b.t)
        np.testing.assert_array_equal(monitor_a.values, monitor_b.values)


def _checkpoint_step(path) -> int:
    try:
        with h5py.File(path, "r") as file:
            return int(file.attrs["step"])
    except (OSError, KeyError):
        return -1


def test_killed_run_resumes_with_identical_spikes(tmp_path):
    path = tmp_path / "run.h5"
    script = BUILD + textwrap.dedent(f"""
        net = build()
        net.run(1000.0, backend="numba", checkpoint={str(path)!r}, every=10 * ms)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while _checkpoint_step(path) < 300 and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    resumed = rv.load(path)
    assert resumed.step >= 300 and resumed.step % 100 == 0
    extra = 30 * ms
    resumed.run(extra, checkpoint=path, every=10 * ms)  # appends to the file it was loaded from
    reference = _build()
    reference.run(resumed.t)
    assert reference.step == resumed.step
    assert reference.spike_monitors[0].num_spikes > 100
    _assert_same_recordings(reference, resumed)
    _assert_same_recordings(reference, rv.load(path))
    assert resumed.stats.spikes == reference.stats.spikes


def test_recordings_leave_memory_and_read_back_the_same(tmp_path):
    net = _build()
    net.run(60 * ms, backend="numpy", checkpoint=tmp_path / "run.h5", every=20 * ms)
    reference = _build()
    reference.run(60 * ms, backend="numpy")
    for monitor in [*net.spike_monitors, *net.state_monitors]:
        assert monitor._steps == [] and monitor._written is not None
    _assert_same_recordings(reference, net)
    # the file holds the end of the run, and a second checkpointed run appends to it
    assert rv.load(tmp_path / "run.h5").step == net.step
    net.run(20 * ms, backend="numpy", checkpoint=tmp_path / "run.h5", every=5 * ms)
    reference.run(20 * ms, backend="numpy")
    _assert_same_recordings(reference, net)
    _assert_same_recordings(reference, rv.load(tmp_path / "run.h5"))


def test_checkpoints_come_every_interval_and_at_the_end(tmp_path, monkeypatch):
    net = rv.Network(dt=0.1 * ms, seed=2)
    net.population(rv.neurons.PoissonSource(rate=50 * Hz), n=10, name="noise")
    steps = []
    write = rv.engine.storage.Checkpointer.write

    def write_and_note(self):
        steps.append(self.net.step)
        write(self)

    monkeypatch.setattr(rv.engine.storage.Checkpointer, "write", write_and_note)
    net.run(25 * ms, backend="numpy", checkpoint=tmp_path / "run.h5", every=10 * ms)
    assert steps == [100, 200, 250]


def test_a_checkpoint_of_a_damaged_file_is_refused(tmp_path):
    net = _build()
    net.run(10 * ms, backend="numpy", checkpoint=tmp_path / "run.h5")
    data = (tmp_path / "run.h5").read_bytes()
    (tmp_path / "run.h5").write_bytes(data[:-len(data) // 3])
    with pytest.raises(StorageError, match="run.h5"):
        rv.load(tmp_path / "run.h5")


@pytest.mark.parametrize("every", [0.0, -1.0, float("nan"), 0.01 * ms, "1"])
def test_bad_interval_is_a_run_error(tmp_path, every):
    net = rv.Network(seed=1)
    net.population(rv.neurons.LIF(v_rest=-60 * mV), n=2, name="cells")
    with pytest.raises(RunError, match="every"):
        net.run(1 * ms, checkpoint=tmp_path / "run.h5", every=every)


def test_interval_without_file_is_a_run_error():
    net = rv.Network(seed=1)
    net.population(rv.neurons.LIF(), n=2, name="cells")
    with pytest.raises(RunError, match="checkpoint"):
        net.run(1 * ms, every=1 * ms)


def test_saving_and_checkpointing_one_file_never_repeats_recordings(tmp_path):
    path = tmp_path / "run.h5"
    reference = _build()
    reference.run(40 * ms, backend="numpy")
    net = _build()
    net.run(10 * ms, backend="numpy", checkpoint=path)
    loaded = rv.load(path)
    loaded.run(10 * ms, backend="numpy")  # recordings of this run stay in memory
    loaded.save(path)  # ... and now are in the file as well
    loaded.run(10 * ms, backend="numpy", checkpoint=path)
    loaded.save(tmp_path / "copy.h5")
    loaded.run(10 * ms, backend="numpy", checkpoint=path)
    _assert_same_recordings(reference, loaded)
    _assert_same_recordings(reference, rv.load(path))


def _plastic() -> rv.Network:
    """STDP on input and recurrent synapses, gated by an astrocyte (a value population at its own dt)."""
    from ranvier.plasticity import STDP

    net = rv.Network(dt=0.5 * ms, seed=11)
    drive = net.population(rv.neurons.PoissonSource(rate=100.0), n=60, name="drive")
    lif = rv.neurons.LIF(tau_m=20 * ms, v_rest=-65 * mV, v_th=-50 * mV, v_reset=-65 * mV, t_ref=2 * ms,
                         tau_syn={"exc": 5 * ms, "inh": 10 * ms})
    cells = net.population(lif, n=80, name="cells", init={"v": rv.init.Uniform(-65 * mV, -50 * mV)})
    astro = net.population(rv.neurons.Astrocyte(tau=50 * ms, baseline=1.0), n=1, name="astro", dt=2 * ms)
    net.connect(cells, astro, rv.connect.AllToAll(), weight=0.01)
    net.connect(drive, astro, rv.connect.AllToAll(), weight=-0.005)
    stdp = STDP(tau_plus=15 * ms, tau_minus=30 * ms, a_plus=0.05, a_minus=0.06, w_min=0.0, w_max=10 * mV,
                rule="multiplicative", modulator=astro)
    net.connect(drive, cells, rv.connect.Bernoulli(p=0.2), weight=rv.init.Uniform(0, 10 * mV), receptor="exc",
                delay=rv.init.Uniform(0.5 * ms, 3 * ms), plasticity=stdp)
    net.connect(cells, cells, rv.connect.Bernoulli(p=0.1), weight=3 * mV, receptor="exc", delay=1 * ms,
                plasticity=stdp)
    net.record(cells, "spikes")
    net.record(astro, "output", every=2 * ms)
    return net


def test_learning_resumes_from_a_checkpoint(tmp_path):
    reference = _plastic()
    reference.run(0.2, backend="numpy")
    net = _plastic()
    net.run(0.1, backend="numpy", checkpoint=tmp_path / "run.h5", every=0.03)
    resumed = rv.load(tmp_path / "run.h5")
    assert resumed.projections[2].plasticity.modulator is resumed["astro"]
    resumed.run(0.1, backend="numpy")
    _assert_same_recordings(reference, resumed)
    for original, copy in zip(reference.projections, resumed.projections, strict=True):
        np.testing.assert_array_equal(original.weights, copy.weights)
    assert not np.array_equal(reference.projections[3].weights, np.float32(3 * mV))  # it learned
