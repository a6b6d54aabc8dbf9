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
from ranvier.engine import journal
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


# A run to `total` s that resumes from its checkpoint file when there is one, and kills itself with
# SIGKILL at the kill_at-th call of os.<kind> (pwrite, fsync, ftruncate) that storage and journal make while
# checkpointing: before the call, or for pwrite halfway through the bytes (a torn write).
RESUMING = BUILD + textwrap.dedent("""
    import os
    import signal
    import sys
    from pathlib import Path

    from ranvier.engine import journal, storage

    path, total, kind, kill_at = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3], int(sys.argv[4])


    class DyingOs:
        def __init__(self):
            self.calls = 0

        def __getattr__(self, name):
            return getattr(os, name)

        def _due(self, name):
            self.calls += name == kind
            return name == kind and self.calls == kill_at

        def pwrite(self, fd, data, offset):
            if self._due("pwrite"):
                os.pwrite(fd, memoryview(data)[:len(data) // 2], offset)
                os.kill(os.getpid(), signal.SIGKILL)
            return os.pwrite(fd, data, offset)

        def fsync(self, fd):
            if self._due("fsync"):
                os.kill(os.getpid(), signal.SIGKILL)
            return os.fsync(fd)

        def ftruncate(self, fd, length):
            if self._due("ftruncate"):
                os.kill(os.getpid(), signal.SIGKILL)
            return os.ftruncate(fd, length)


    net = rv.load(path) if path.exists() else build()
    # one counter for the calls of both modules: storage's save, the journal's checkpoints
    storage.os = journal.os = DyingOs()
    net.run(total - net.t, backend="numba", checkpoint=path, every=10 * ms)
""")


def _run_resuming(path, total: float, kind: str, kill_at: int = 0, seconds: float = 300) -> int:
    """RESUMING to ``total`` s, killed at the ``kill_at``-th os.``kind`` (``"none"``: never) or from
    outside after ``seconds``; its exit status."""
    command = [sys.executable, "-c", RESUMING, str(path), str(total), kind, str(kill_at)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode in (0, -signal.SIGKILL), stderr
    return process.returncode


def _resume_until_done(path, total: float, kills) -> list[str | None]:
    """Run RESUMING once per kill, ``(kind, kill_at)`` or ``(None, seconds)`` (SIGKILL from outside
    after that long), then to the end; what each kill left at the end of the file (journal._tail)."""
    left = []
    for kind, when in kills:
        if kind is None:
            _run_resuming(path, total, "none", seconds=when)  # the run may finish first
        else:
            assert _run_resuming(path, total, kind, when) == -signal.SIGKILL
        with open(path, "rb") as handle:
            left.append(journal._tail(handle.fileno()))
    assert _run_resuming(path, total, "none") == 0
    return left


def _assert_same_as_uninterrupted(path, total: float) -> None:
    resumed = rv.load(path)
    reference = _build()
    reference.run(total, backend="numba")
    assert resumed.step == reference.step == round(total / reference.dt)
    assert reference.spike_monitors[0].num_spikes > 100
    _assert_same_recordings(reference, resumed)
    for name, population in reference.populations.items():
        np.testing.assert_array_equal(population.state, resumed.populations[name].state)
    assert resumed.stats == reference.stats


def test_killed_in_every_phase_of_a_checkpoint_resumes_identically(tmp_path):
    path = tmp_path / "run.h5"
    # a fresh run saves (fsync 1), then each checkpoint flushes its new bytes, its journal record
    # and its pages in place: fsync 5 comes before the second append writes its record, fsync 3 of
    # a resumed run after its first append wrote its record and pages
    left = _resume_until_done(path, 0.2, [("fsync", 5), ("fsync", 3), ("pwrite", 40)])
    assert left[:2] == ["uncommitted", "committed"], left
    _assert_same_as_uninterrupted(path, 0.2)


@pytest.mark.slow
def test_killed_at_random_moments_resumes_identically(tmp_path):
    path = tmp_path / "run.h5"
    rng = np.random.default_rng(18)
    # an append makes about 14 pwrites, 3 fsyncs and 3 ftruncates: each kill lands within a few
    # checkpoints (at most 0.6 s of the run for the 12 of them); the kills from outside, after a
    # stretch of wall time, come last, since how far a run gets in that time varies with the machine
    kills = [("pwrite", int(rng.integers(1, 60))) if index % 4 == 0 else
             ("fsync", int(rng.integers(2, 15))) if index % 4 == 1 else
             ("ftruncate", int(rng.integers(1, 15))) if index % 4 == 2 else
             (None, float(rng.uniform(1.0, 3.0)))
             for index in range(16)]
    kills.sort(key=lambda kill: kill[0] is None)
    left = _resume_until_done(path, 1.0, kills)
    assert {"uncommitted", "committed"} <= set(left), left
    _assert_same_as_uninterrupted(path, 1.0)


def test_an_uncommitted_tail_is_ignored_then_cut(tmp_path):
    """What a checkpoint killed before its commit marker appended: a reader skips it, and it is cut
    once no other process has the file open."""
    path = tmp_path / "run.h5"
    net = _build()
    net.run(30 * ms, backend="numpy", checkpoint=path, every=10 * ms)
    committed = path.stat().st_size
    tail = np.random.default_rng(3).bytes(100_000)
    with open(path, "ab") as handle:
        handle.write(tail)
    reference = _build()
    reference.run(30 * ms, backend="numpy")
    with h5py.File(path, "r"):  # open elsewhere: the tail stays, and is not read
        _assert_same_recordings(reference, rv.load(path))
        assert path.stat().st_size == committed + len(tail)
    resumed = rv.load(path)
    assert path.stat().st_size == committed and resumed.step == 300
    with open(path, "ab") as handle:
        handle.write(tail)
    resumed.run(20 * ms, backend="numpy", checkpoint=path, every=10 * ms)
    reference.run(20 * ms, backend="numpy")
    _assert_same_recordings(reference, resumed)
    _assert_same_recordings(reference, rv.load(path))


def test_a_committed_checkpoint_is_completed_before_it_is_read(tmp_path):
    path = tmp_path / "run.h5"
    # killed before its third fsync (the first is the save's, the second flushes the first append's new
    # bytes): that append's journal record is written, its pages are not yet in place
    assert _run_resuming(path, 0.1, "fsync", 3) == -signal.SIGKILL
    with open(path, "rb") as handle:
        assert journal._tail(handle.fileno()) == "committed"
    with h5py.File(path, "r") as file:
        assert file.attrs["step"] == 100  # the image still holds the first checkpoint
        with pytest.raises(StorageError, match="committed but not yet in place"):
            rv.load(path)
    resumed = rv.load(path)
    assert resumed.step == 200
    reference = _build()
    reference.run(20 * ms, backend="numba")
    _assert_same_recordings(reference, resumed)


def test_a_checkpoint_to_a_file_open_elsewhere_replaces_it_with_a_copy(tmp_path):
    path = tmp_path / "run.h5"
    net = _build()
    net.run(10 * ms, backend="numpy", checkpoint=path)
    first = path.stat().st_ino
    net.run(10 * ms, backend="numpy", checkpoint=path)
    assert path.stat().st_ino == first  # appended in place
    with h5py.File(path, "r") as file:
        net.run(10 * ms, backend="numpy", checkpoint=path)
        assert file.attrs["step"] == 200  # the reader keeps the file it opened
    assert path.stat().st_ino != first
    copied = path.stat().st_ino
    net.run(10 * ms, backend="numpy", checkpoint=path)
    assert path.stat().st_ino == copied
    reference = _build()
    reference.run(40 * ms, backend="numpy")
    _assert_same_recordings(reference, net)
    _assert_same_recordings(reference, rv.load(path))


def test_a_checkpoint_to_a_file_replaced_since_is_refused(tmp_path):
    path = tmp_path / "run.h5"
    net = _build()
    net.run(10 * ms, backend="numpy", checkpoint=path)
    other = rv.load(path)
    other.run(10 * ms, backend="numpy", checkpoint=path)  # the file now holds other's run
    with pytest.raises(StorageError, match="replaced since the last checkpoint"):
        net.run(10 * ms, backend="numpy", checkpoint=path)
    assert rv.load(path).step == 200
