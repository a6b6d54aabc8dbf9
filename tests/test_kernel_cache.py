"""The numba kernel cache is used only when this user alone can write it; damage is a fallback, not an error."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import ranvier as rv
from ranvier.engine.backends import kernel_cache
from ranvier.errors import RanvierWarning


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.setattr(kernel_cache, "_WARNED", set())
    monkeypatch.setattr(kernel_cache.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    return tmp_path


def test_a_private_cache_directory_is_used(fresh, monkeypatch):
    monkeypatch.setenv("RANVIER_CACHE_DIR", str(fresh / "cache"))
    assert kernel_cache.cache_dir() == fresh / "cache" / "kernels"
    assert (fresh / "cache" / "kernels").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("mode", [0o775, 0o777])
def test_a_cache_others_can_write_is_replaced_by_a_private_one(fresh, monkeypatch, mode):
    shared = fresh / "shared"
    (shared / "kernels").mkdir(parents=True)
    shared.chmod(mode)
    monkeypatch.setenv("RANVIER_CACHE_DIR", str(shared))
    with pytest.warns(RanvierWarning, match="writable by .*Using .*ranvier-"):
        directory = kernel_cache.cache_dir()
    assert directory == fresh / "tmp" / f"ranvier-{os.getuid()}" / "kernels"
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")
        kernel_cache.cache_dir()  # warned once


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to give a file away")
def test_a_cache_owned_by_another_user_is_not_used(fresh, monkeypatch):
    foreign = fresh / "foreign"
    (foreign / "kernels").mkdir(parents=True, mode=0o700)
    os.chown(foreign / "kernels", 12345, -1)
    monkeypatch.setenv("RANVIER_CACHE_DIR", str(foreign))
    with pytest.warns(RanvierWarning, match="owned by user id 12345"):
        assert kernel_cache.cache_dir() != foreign / "kernels"


def test_an_unusable_cache_compiles_without_one(fresh, monkeypatch):
    (fresh / "file").write_text("not a directory")
    monkeypatch.setenv("RANVIER_CACHE_DIR", str(fresh / "file"))
    (fresh / "tmp" / f"ranvier-{os.getuid()}").write_text("nor this")
    with pytest.warns(RanvierWarning, match="compiling kernels without a cache"):
        assert kernel_cache.cache_dir() is None


def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    pid = int(dead.stdout)
    stale, fresh_one, alive = (tmp_path / f".run.h5.{pid}.tmp", tmp_path / f".run.h5.{pid + 1}.tmp",
                               tmp_path / f".run.h5.{os.getppid()}.tmp")
    for path in (stale, fresh_one, alive):
        path.write_bytes(b"half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(alive, (old, old))
    net = rv.Network(seed=1)
    net.population(rv.neurons.LIF(), n=3, name="a")
    net.save(tmp_path / "run.h5")
    assert not stale.exists() and alive.exists()  # a live writer's file stays
    assert fresh_one.exists()  # too recent to be sure


SCRIPT = """
import warnings, ranvier as rv
warnings.simplefilter("always")
net = rv.Network(seed=1)
a = net.population(rv.neurons.PoissonSource(rate=500.0), n=20, name="a")
b = net.population(rv.neurons.LIF(tau_syn={"exc": 5e-3}), n=10, name="b")
net.connect(a, b, rv.connect.AllToAll(), weight=3e-3)
m = net.record(b, "spikes")
net.run(0.05)
print(m.num_spikes)
"""


@pytest.mark.slow
def test_a_damaged_cache_entry_is_compiled_again(tmp_path):
    environment = {**os.environ, "RANVIER_CACHE_DIR": str(tmp_path / "cache")}

    def run():
        return subprocess.run([sys.executable, "-c", SCRIPT], env=environment, capture_output=True, text=True,
                              timeout=600)

    first = run()
    assert first.returncode == 0, first.stderr[-2000:]
    indices = list(Path(tmp_path / "cache" / "kernels" / "__pycache__").glob("ranvier_kernel_*.nbi"))
    assert indices
    for index in indices:
        data = bytearray(index.read_bytes())
        data[len(data) // 2:] = np.random.default_rng(0).bytes(len(data) - len(data) // 2)
        index.write_bytes(bytes(data))
    second = run()
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout == first.stdout
    assert "cannot be loaded" in second.stderr and "RanvierWarning" in second.stderr


WARM_SCRIPT = """
import json
from numba.core import event
import ranvier as rv

compiled = []


class Compiles(event.Listener):
    def on_start(self, ev):
        function = ev.data["dispatcher"].py_func
        compiled.append(function.__module__ + "." + function.__qualname__)

    def on_end(self, ev):
        pass


event.register("numba:compile", Compiles())
net = rv.Network(seed=1)
drive = net.population(rv.neurons.PoissonSource(rate=2000.0), n=20, name="drive")
cells = [net.population(rv.neurons.LIF(tau_syn={"exc": 5e-3}), n=10, name=f"cells{i}") for i in range(3)]
for pre in cells:
    net.connect(drive, pre, rv.connect.FixedInDegree(10), weight=2e-3, receptor="exc")
    for post in cells:
        net.connect(pre, post, rv.connect.FixedInDegree(3), weight=1e-3, receptor="exc")
monitor = net.record(cells[0], "spikes")
net.run(0.05)
print(json.dumps({"projections": len(net.projections), "spikes": monitor.num_spikes, "compiled": compiled}))
"""


@pytest.mark.slow
def test_a_process_with_warm_caches_compiles_nothing(tmp_path):
    """A second process of a network of more than eight projections (whose arrays the kernel takes in typed
    lists) compiles no function at all: numba's typed-list methods, which numba does not cache, cost
    such a process seconds when the lists were built in Python."""
    environment = {**os.environ, "RANVIER_CACHE_DIR": str(tmp_path / "ranvier")}

    def run():
        finished = subprocess.run([sys.executable, "-c", WARM_SCRIPT], env=environment, capture_output=True,
                                  text=True, timeout=900)
        assert finished.returncode == 0, finished.stderr[-2000:]
        return json.loads(finished.stdout.strip().splitlines()[-1])

    cold, warm = run(), run()
    assert cold["projections"] == warm["projections"] == 12
    assert warm["spikes"] == cold["spikes"] > 0
    assert any(name.endswith(".advance") for name in cold["compiled"])  # the network's own kernel
    assert warm["compiled"] == []


_ROW = rv.rows("v")
_GAIN = np.array([0.5], dtype=np.float32)


def _leak_with(scale):
    """A model whose step reads its leak from a closure: each scale compiles a kernel of its own."""
    scale = np.float32(scale)

    def step(state, consts, arriving, i, c, k, key):
        state[_ROW.v, i] = state[_ROW.v, i] * scale + consts[0, c] * _GAIN[0]
        return 0

    class Leak(rv.Model):
        state_rows = _ROW

        def constants(self, params, dt):
            return np.ones((1, 1))

    Leak.step = staticmethod(step)
    return Leak()


def _v_after_ten_steps(model, backend: str) -> np.ndarray:
    net = rv.Network(dt=1e-4, seed=1)
    cells = net.population(model, 2, name="leak", init={"v": 1.0})
    net.run(1e-3, backend=backend)
    return cells.get("v")


def test_a_closure_or_a_global_array_that_changes_compiles_a_new_kernel(monkeypatch):
    slow, fast = _v_after_ten_steps(_leak_with(0.5), "numba"), _v_after_ten_steps(_leak_with(0.9), "numba")
    np.testing.assert_array_equal(slow, _v_after_ten_steps(_leak_with(0.5), "numpy"))
    np.testing.assert_array_equal(fast, _v_after_ten_steps(_leak_with(0.9), "numpy"))
    assert not np.array_equal(slow, fast)
    monkeypatch.setitem(globals(), "_GAIN", np.array([2.0], dtype=np.float32))  # numba freezes global arrays
    np.testing.assert_array_equal(_v_after_ten_steps(_leak_with(0.5), "numba"),
                                  _v_after_ten_steps(_leak_with(0.5), "numpy"))
